// The job update machine against Aurora's JobUpdateStateMachine ALLOWED_TRANSITIONS, transcribed
// here independently as the oracle (apache/aurora 11ebaee), for every (from, to) pair; then the
// fold's fast path against the XState machine itself; then the verbs' helpers and the per-instance
// action map.

import { describe, expect, it } from "vitest";
import {
  ACTIVE_UPDATE_STATES,
  awaitingPulseFor,
  failedStatusFor,
  INSTANCE_ACTIONS,
  initialStatusFor,
  instanceAction,
  pausedFor,
  resumedFor,
  rollingBackFor,
  succeededStatusFor,
  TERMINAL_UPDATE_STATES,
  UPDATE_STATES,
  type UpdateStatus,
  unblockedFor,
  updateMachine,
  updateMachineStep,
  updateStep,
} from "../src/statemachines/update.js";

const ACTIVE = [
  "ROLLING_FORWARD",
  "ROLLING_BACK",
  "ROLL_FORWARD_PAUSED",
  "ROLL_BACK_PAUSED",
  "ROLL_FORWARD_AWAITING_PULSE",
  "ROLL_BACK_AWAITING_PULSE",
];
const TERMINAL = ["ROLLED_FORWARD", "ROLLED_BACK", "ABORTED", "ERROR", "FAILED"];

/** Aurora's table, row by row; every pair not listed is refused. */
const ALLOWED: Record<string, string[]> = {
  ROLLING_FORWARD: ["ROLLING_BACK", "ROLL_FORWARD_PAUSED", "ROLL_FORWARD_AWAITING_PULSE", "ROLLED_FORWARD", "ABORTED", "FAILED", "ERROR"],
  ROLLING_BACK: ["ROLL_BACK_PAUSED", "ROLL_BACK_AWAITING_PULSE", "ROLLED_BACK", "ABORTED", "ERROR", "FAILED"],
  ROLL_FORWARD_PAUSED: ["ROLLING_BACK", "ROLLING_FORWARD", "ROLL_FORWARD_AWAITING_PULSE", "ABORTED", "ERROR"],
  ROLL_BACK_PAUSED: ["ROLLING_BACK", "ROLL_BACK_AWAITING_PULSE", "ABORTED", "ERROR"],
  ROLL_FORWARD_AWAITING_PULSE: ["ROLLING_BACK", "ROLLING_FORWARD", "ROLL_FORWARD_PAUSED", "ABORTED", "ERROR"],
  ROLL_BACK_AWAITING_PULSE: ["ROLLING_BACK", "ROLL_BACK_PAUSED", "ABORTED", "ERROR"],
};

describe("update machine: Aurora's JobUpdateStateMachine table", () => {
  it("has Aurora's statuses, active and terminal", () => {
    expect([...UPDATE_STATES].sort()).toEqual([...ACTIVE, ...TERMINAL].sort());
    expect([...ACTIVE_UPDATE_STATES].sort()).toEqual([...ACTIVE].sort());
    expect([...TERMINAL_UPDATE_STATES].sort()).toEqual([...TERMINAL].sort());
  });

  for (const from of UPDATE_STATES) {
    it(`every request from ${from}`, () => {
      for (const to of UPDATE_STATES) {
        const step = updateMachineStep(from, to);
        const legal = (ALLOWED[from] ?? []).includes(to);
        const where = `${from} → ${to}`;
        expect(step, where).toEqual(legal ? { next: to, changed: true, allowed: true } : { next: from, changed: false, allowed: false });
      }
    });
  }

  it("allows exactly the table's pairs, and nothing out of a terminal status", () => {
    const allowed = UPDATE_STATES.flatMap((f) => UPDATE_STATES.filter((t) => updateMachineStep(f, t).allowed).map((t) => `${f}→${t}`));
    const expected = Object.entries(ALLOWED).flatMap(([f, ts]) => ts.map((t) => `${f}→${t}`));
    expect(allowed.sort()).toEqual(expected.sort());
    expect(allowed).toHaveLength(7 + 6 + 5 + 4 + 5 + 4);
    for (const f of TERMINAL)
      expect(
        allowed.some((p) => p.startsWith(`${f}→`)),
        f,
      ).toBe(false);
  });

  it("marks the terminal statuses final, for the graph", () => {
    for (const s of UPDATE_STATES) expect(updateMachine.root.states[s]!.type, s).toBe(TERMINAL.includes(s) ? "final" : "atomic");
  });
});

describe("fast path", () => {
  it("agrees with the XState machine on every (from, to) pair", () => {
    let n = 0;
    for (const from of UPDATE_STATES) {
      for (const to of UPDATE_STATES) {
        expect({ ...updateStep(from, to) }, `${from} → ${to}`).toEqual(updateMachineStep(from, to));
        n++;
      }
    }
    expect(n).toBe(11 * 11);
  });

  it("refuses a status it does not know", () => {
    expect(() => updateStep("ROLLING_FORWARD", "BOGUS" as UpdateStatus)).toThrow(/unknown update status/);
  });
});

describe("the verbs", () => {
  const every = (f: (s: UpdateStatus) => UpdateStatus | null) =>
    Object.fromEntries(UPDATE_STATES.map((s) => [s, f(s)]).filter(([, v]) => v !== null));

  it("start: a coordinated update waits for its first pulse", () => {
    expect(initialStatusFor(false)).toBe("ROLLING_FORWARD");
    expect(initialStatusFor(true)).toBe("ROLL_FORWARD_AWAITING_PULSE");
  });

  it("pause (Aurora's PAUSE_BEHAVIOR)", () => {
    expect(every(pausedFor)).toEqual({
      ROLLING_FORWARD: "ROLL_FORWARD_PAUSED",
      ROLLING_BACK: "ROLL_BACK_PAUSED",
      ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_PAUSED",
      ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_PAUSED",
      ROLL_FORWARD_PAUSED: "ROLL_FORWARD_PAUSED",
      ROLL_BACK_PAUSED: "ROLL_BACK_PAUSED",
    });
  });

  it("resume: to rolling, or to awaiting a pulse when a coordinated update's pulse expired", () => {
    expect(every((s) => resumedFor(s))).toEqual({
      ROLL_FORWARD_PAUSED: "ROLLING_FORWARD",
      ROLL_BACK_PAUSED: "ROLLING_BACK",
      ROLLING_FORWARD: "ROLLING_FORWARD",
      ROLLING_BACK: "ROLLING_BACK",
    });
    expect(every((s) => resumedFor(s, true))).toEqual({
      ROLL_FORWARD_PAUSED: "ROLL_FORWARD_AWAITING_PULSE",
      ROLL_BACK_PAUSED: "ROLL_BACK_AWAITING_PULSE",
      ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_AWAITING_PULSE",
      ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_AWAITING_PULSE",
    });
  });

  it("block without pulses, unblock on a pulse", () => {
    expect(every(awaitingPulseFor)).toEqual({
      ROLLING_FORWARD: "ROLL_FORWARD_AWAITING_PULSE",
      ROLLING_BACK: "ROLL_BACK_AWAITING_PULSE",
      ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_AWAITING_PULSE",
      ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_AWAITING_PULSE",
    });
    expect(every(unblockedFor)).toEqual({
      ROLL_FORWARD_AWAITING_PULSE: "ROLLING_FORWARD",
      ROLL_BACK_AWAITING_PULSE: "ROLLING_BACK",
      ROLLING_FORWARD: "ROLLING_FORWARD",
      ROLLING_BACK: "ROLLING_BACK",
      ROLL_FORWARD_PAUSED: "ROLL_FORWARD_PAUSED",
      ROLL_BACK_PAUSED: "ROLL_BACK_PAUSED",
    });
  });

  it("rollback: wherever the table allows ROLLING_BACK", () => {
    expect(Object.keys(every(rollingBackFor)).sort()).toEqual(
      ["ROLLING_FORWARD", "ROLL_FORWARD_PAUSED", "ROLL_FORWARD_AWAITING_PULSE", "ROLL_BACK_PAUSED", "ROLL_BACK_AWAITING_PULSE"].sort(),
    );
  });

  it("success and failure of one direction (UpdateFactory)", () => {
    expect(every(succeededStatusFor)).toEqual({ ROLLING_FORWARD: "ROLLED_FORWARD", ROLLING_BACK: "ROLLED_BACK" });
    expect(every((s) => failedStatusFor(s, true))).toEqual({ ROLLING_FORWARD: "ROLLING_BACK", ROLLING_BACK: "FAILED" });
    expect(every((s) => failedStatusFor(s, false))).toEqual({ ROLLING_FORWARD: "FAILED", ROLLING_BACK: "FAILED" });
  });

  it("every verb's answer is a transition the machine allows (or a no-op)", () => {
    const verbs = [pausedFor, (s: UpdateStatus) => resumedFor(s), (s: UpdateStatus) => resumedFor(s, true), awaitingPulseFor, unblockedFor];
    const more = [
      rollingBackFor,
      succeededStatusFor,
      (s: UpdateStatus) => failedStatusFor(s, true),
      (s: UpdateStatus) => failedStatusFor(s, false),
    ];
    for (const s of UPDATE_STATES) {
      for (const v of [...verbs, ...more]) {
        const to = v(s);
        if (to !== null && to !== s) expect(updateStep(s, to).allowed, `${s} → ${to}`).toBe(true);
      }
    }
  });
});

describe("per-instance actions (JobUpdateControllerImpl's STATE_MAP)", () => {
  it("maps instance status × direction", () => {
    const table = (["WORKING", "SUCCEEDED", "FAILED"] as const).map((s) => [s, instanceAction(s, false), instanceAction(s, true)]);
    expect(table).toEqual([
      ["WORKING", "INSTANCE_UPDATING", "INSTANCE_ROLLING_BACK"],
      ["SUCCEEDED", "INSTANCE_UPDATED", "INSTANCE_ROLLED_BACK"],
      ["FAILED", "INSTANCE_UPDATE_FAILED", "INSTANCE_ROLLBACK_FAILED"],
    ]);
    expect(new Set(table.flatMap(([, f, b]) => [f, b]))).toEqual(new Set(INSTANCE_ACTIONS));
  });
});
