// The task machine against Aurora's transition table (its TaskStateMachine),
// transcribed here independently as the oracle, for every (from, to, guard input) triple:
// legal rows move with their side effects, illegal rows stay put (never throw) and only the
// zombie rows order a KILL. Then the fold's fast path is checked against the machine itself.

import { describe, expect, it } from "vitest";
import type { TaskAction, TaskGuardInput } from "../src/statemachines/task.js";
import { bitsToGuard, machineStep, taskStep, warmTaskTable } from "../src/statemachines/taskTable.js";
import { TASK_STATES, type TaskStateName } from "../src/statemachines/taskStates.js";

const S = "SAVE_STATE",
  R = "RESCHEDULE",
  K = "KILL",
  INC = "INCREMENT_FAILURES",
  TTL = "TRANSITION_TO_LOST",
  DEL = "DELETE";
type Row = (g: TaskGuardInput) => TaskAction[];
const fixed =
  (...a: TaskAction[]): Row =>
  () =>
    a;
const finished: Row = (g) => (g.isService ? [S, R] : [S]);
const failed: Row = (g) => (g.isService || g.belowMaxFailures ? [INC, S, R] : [INC, S]);
const dying = (extra: Row = fixed(S, K)) => ({ KILLING: extra, RESTARTING: extra, DRAINING: extra, PREEMPTING: extra });

const LEGAL: Record<TaskStateName, Partial<Record<TaskStateName, Row>>> = {
  INIT: { PENDING: fixed(S), THROTTLED: fixed(S) },
  PENDING: { ASSIGNED: fixed(S, "LAUNCH"), KILLING: fixed(DEL) },
  THROTTLED: { PENDING: fixed(S), KILLING: fixed(DEL) },
  ASSIGNED: {
    STARTING: fixed(S),
    RUNNING: fixed(S),
    FINISHED: finished,
    FAILED: failed,
    KILLED: fixed(S, R),
    LOST: fixed(S, R, K),
    ...dying(),
  },
  STARTING: {
    RUNNING: fixed(S),
    FINISHED: finished,
    FAILED: failed,
    KILLED: fixed(S, R),
    LOST: fixed(S, R),
    PARTITIONED: fixed(S),
    ...dying(),
  },
  RUNNING: { FINISHED: finished, FAILED: failed, KILLED: fixed(S, R), LOST: fixed(S, R), PARTITIONED: fixed(S), ...dying() },
  KILLING: { FINISHED: fixed(S), FAILED: fixed(S), KILLED: fixed(S), LOST: fixed(S), DELETED: fixed(DEL), PARTITIONED: fixed(S, TTL) },
  RESTARTING: {
    FINISHED: fixed(S, R),
    FAILED: fixed(S, R),
    KILLED: fixed(S, R),
    LOST: fixed(S, R, K),
    KILLING: fixed(S),
    PARTITIONED: fixed(S, TTL),
  },
  PREEMPTING: {
    FINISHED: fixed(S, R),
    FAILED: fixed(S, R),
    KILLED: fixed(S, R),
    LOST: fixed(S, R, K),
    KILLING: fixed(S),
    PARTITIONED: fixed(S, TTL),
  },
  DRAINING: {
    FINISHED: fixed(S, R),
    FAILED: fixed(S, R),
    KILLED: fixed(S, R),
    LOST: fixed(S, R, K),
    KILLING: fixed(S),
    PARTITIONED: fixed(S, TTL),
  },
  PARTITIONED: {
    ASSIGNED: fixed(S),
    STARTING: fixed(S),
    RUNNING: fixed(S),
    FINISHED: finished,
    FAILED: failed,
    LOST: (g) => (g.everKilling ? [S, K] : [S, R, K]),
    ...dying(fixed(S, TTL)),
  },
  FINISHED: { DELETED: fixed(DEL) },
  FAILED: { DELETED: fixed(DEL) },
  KILLED: { DELETED: fixed(DEL) },
  LOST: { DELETED: fixed(DEL) },
  DELETED: {},
};
/** Illegal, but a stray status update from a task we believe dead or dying is killed. */
const ZOMBIE_FROM = new Set<TaskStateName>([
  "KILLING",
  "RESTARTING",
  "PREEMPTING",
  "DRAINING",
  "FINISHED",
  "FAILED",
  "KILLED",
  "LOST",
  "DELETED",
]);
const ZOMBIE_TO = new Set<TaskStateName>(["ASSIGNED", "STARTING", "RUNNING"]);

const GUARDS = Array.from({ length: 8 }, (_, b) => b);

describe("task machine: Aurora's transition table", () => {
  for (const from of TASK_STATES) {
    it(`every request from ${from}`, () => {
      for (const to of TASK_STATES) {
        for (const bits of GUARDS) {
          const g = bitsToGuard(bits);
          const step = machineStep(from, to, g);
          const row = LEGAL[from][to];
          const where = `${from} → ${to} with ${JSON.stringify(g)}`;
          if (row) {
            expect(step.next, where).toBe(to);
            expect(step.changed, where).toBe(true);
            expect(step.actions, where).toEqual(row(g));
          } else {
            expect(step.next, where).toBe(from);
            expect(step.changed, where).toBe(false);
            expect(step.actions, where).toEqual(ZOMBIE_FROM.has(from) && ZOMBIE_TO.has(to) ? [K] : []);
          }
        }
      }
    });
  }

  it("refuses the two transitions Aurora singles out", () => {
    expect(machineStep("ASSIGNED", "PARTITIONED", bitsToGuard(0)).changed).toBe(false);
    expect(machineStep("PENDING", "LOST", bitsToGuard(0)).changed).toBe(false);
  });

  it("counts: the table has the legal rows it should", () => {
    const legal = TASK_STATES.flatMap((f) => TASK_STATES.filter((t) => machineStep(f, t, bitsToGuard(0)).changed));
    expect(legal.length).toBe(Object.values(LEGAL).reduce((n, r) => n + Object.keys(r).length, 0));
  });
});

describe("fast path", () => {
  it("agrees with the XState machine on every (state, event, guard input) triple", () => {
    let n = 0;
    for (const from of TASK_STATES) {
      for (const to of TASK_STATES) {
        for (const bits of GUARDS) {
          const slow = machineStep(from, to, bitsToGuard(bits));
          const fast = taskStep(from, to, bits);
          expect({ ...fast, actions: [...fast.actions] }, `${from} → ${to} bits ${bits}`).toEqual(slow);
          n++;
        }
      }
    }
    expect(n).toBe(16 * 16 * 8);
  });

  it("gives the same entry every time, asked first or warmed (entries are made when first needed)", () => {
    const first = taskStep("RUNNING", "FAILED", 3);
    warmTaskTable();
    expect(taskStep("RUNNING", "FAILED", 3)).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.actions)).toBe(true);
  });

  it("refuses a guard input that is not an integer 0-7, rather than reading another entry", () => {
    for (const bad of [8, -1, 1.5, Number.NaN]) expect(() => taskStep("RUNNING", "FAILED", bad)).toThrow(/guard input/);
  });
});
