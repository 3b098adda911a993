// Job updates in the fold: what the events do to the state, what it refuses (as anomalies, the
// same on every replica), and that updates hash, compare and snapshot like the rest of the state.

import { describe, expect, it } from "vitest";
import { type AnyEnvelope, type EventPayloads, type EventType, makeEnvelope } from "../src/domain/events.js";
import { asJobKey } from "../src/domain/types.js";
import { decodeSnapshot, encodeSnapshot } from "../src/replay/snapshot.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { firstDifference } from "../src/replay/compare.js";
import { ClusterState } from "../src/replay/state.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { normaliseUpdateConfig } from "../src/updater/settings.js";
import { testSpec } from "./support/specs.js";

const JOB = asJobKey("www-data/devel/web");
let ts = 1_000;
const ev = <T extends EventType>(type: T, data: EventPayloads[T], reason = `${type} for the test`): AnyEnvelope =>
  makeEnvelope(type, data, { epoch: 1, ts: (ts += 1000), corr: "c", reason }) as AnyEnvelope;

const v1 = validateJobSpec(testSpec("web", { instances: 3, service: true }));
const v2 = validateJobSpec(testSpec("web", { instances: 4, service: true, processes: [{ name: "main", cmdline: "sleep 2000" }] }));
const settings = normaliseUpdateConfig({ batchSize: 2, watchSecs: 10 }, 4);

function folded(records: AnyEnvelope[][]): ClusterState {
  const s = new ClusterState();
  for (const [i, r] of records.entries()) foldRecord(s, i + 1, r);
  return s;
}

const started = (over: Partial<EventPayloads["JobUpdateStarted"]> = {}) =>
  ev("JobUpdateStarted", {
    updateId: "u-1",
    job: JOB,
    fromVersion: 1,
    toVersion: 2,
    config: v2,
    settings,
    instances: null,
    status: "ROLLING_FORWARD",
    user: "alice",
    ...over,
  });

describe("job updates in the fold", () => {
  it("registers the new config, records instance actions and failures, and makes it the job's once ROLLED_FORWARD", () => {
    const s = folded([
      [ev("JobCreated", { job: v1, configVersion: 1 })],
      [started()],
      [ev("JobInstanceUpdateEvent", { updateId: "u-1", instance: 3, action: "INSTANCE_UPDATING" }, "instance 3 added")],
      [ev("JobInstanceUpdateEvent", { updateId: "u-1", instance: 3, action: "INSTANCE_UPDATED" })],
      [ev("JobInstanceUpdateEvent", { updateId: "u-1", instance: 0, action: "INSTANCE_UPDATE_FAILED" })],
    ]);
    const job = s.jobs.get(JOB)!;
    expect(job.configVersion).toBe(1);
    expect(job.configs[2]).toEqual(v2.task);
    const u = s.updates.get("u-1")!;
    expect(u).toMatchObject({ status: "ROLLING_FORWARD", fromVersion: 1, toVersion: 2, failedInstances: [0] });
    expect(u.instanceActions["3"]).toMatchObject({ action: "INSTANCE_UPDATED", seq: 4 });
    expect(s.activeUpdate(JOB)?.updateId).toBe("u-1");

    foldRecord(s, 6, [ev("JobUpdateStateChanged", { updateId: "u-1", to: "ROLLED_FORWARD" })]);
    expect(s.activeUpdate(JOB)).toBeUndefined();
    expect(job.configVersion).toBe(2);
    expect(job.config.instances).toBe(4);
    expect(s.anomalyCount).toBe(0);
  });

  it("refuses, as anomalies, what Aurora's update machine and rules refuse", () => {
    const s = folded([
      [ev("JobCreated", { job: v1, configVersion: 1 })],
      [started()],
      [started({ updateId: "u-2", toVersion: 3 })], // a second active update of the job
      [ev("JobUpdateStateChanged", { updateId: "u-1", to: "ROLLED_BACK" })], // ROLLING_FORWARD → ROLLED_BACK is not allowed
      [ev("JobUpdateStateChanged", { updateId: "u-1", to: "ABORTED" })],
      [ev("JobUpdatePulsed", { updateId: "u-1", user: "alice" })], // over
      [ev("JobInstanceUpdateEvent", { updateId: "nope", instance: 0, action: "INSTANCE_UPDATING" })],
      [started({ updateId: "u-3", toVersion: 2 })], // version 2 is not new
      [started({ updateId: "u-4", job: asJobKey("www-data/devel/other"), toVersion: 3 })],
    ]);
    expect(s.anomalies.map((a) => [a.seq, a.why])).toEqual([
      [3, "job www-data/devel/web already has an active update, u-1 (ROLLING_FORWARD)"],
      [4, "update u-1: ROLLING_FORWARD → ROLLED_BACK is not a transition of the update machine"],
      [6, "update u-1 is over (ABORTED)"],
      [7, "unknown update nope"],
      [8, "config version 2 of job www-data/devel/web is not new"],
      [9, "unknown job www-data/devel/other"],
    ]);
    expect(s.updates.get("u-1")!.status).toBe("ABORTED");
    expect(s.jobs.get(JOB)!.configVersion).toBe(1);
  });

  it("hashes, compares and snapshots updates; a state without any hashes as before", () => {
    const before = folded([[ev("JobCreated", { job: v1, configVersion: 1 })]]);
    const hashBefore = stateHash(before);
    ts = 1_000;
    const s = folded([[ev("JobCreated", { job: v1, configVersion: 1 })], [started()]]);
    expect(stateHash(s)).not.toBe(hashBefore);
    const back = decodeSnapshot(encodeSnapshot(s));
    expect(back.updates.get("u-1")).toEqual(s.updates.get("u-1"));
    expect(stateHash(back)).toBe(stateHash(s));
    ts = 1_000; // the same times: only the update's user differs
    const other = folded([[ev("JobCreated", { job: v1, configVersion: 1 })], [started({ user: "bob" })]]);
    expect(firstDifference(s, other)).toMatchObject({ part: "updates", key: "u-1" });
  });
});
