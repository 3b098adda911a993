// Fold determinism. The same log folds to the same state hash every time, and golden logs
// (test/golden) written by earlier versions fold to the hash recorded when they were written:
// a change that breaks this changes history, and is a bug.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeRecord, encodeRecord, makeEnvelope, UNREADABLE, unpack, type AnyEnvelope, type LogEntry } from "../src/eventlog/envelope.js";
import { foldRecord, type Effect } from "../src/replay/fold.js";
import { STATE_DIGEST_VERSION, stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { asTaskId } from "../src/domain/types.js";

function foldAll(records: readonly LogEntry[][]): ClusterState {
  const s = new ClusterState();
  for (const [i, r] of records.entries()) foldRecord(s, i + 1, r);
  return s;
}

describe("fold determinism", () => {
  it("the same log folded twice gives the same state hash", () => {
    const log = [...syntheticLog({ seed: 42, events: 20_000, agents: 30 })];
    const a = foldAll(log);
    const b = foldAll(log);
    expect(a.anomalies).toEqual([]);
    expect(a.eventCount).toBeGreaterThanOrEqual(20_000);
    expect(stateHash(a)).toBe(stateHash(b));
  });

  it("different logs give different hashes", () => {
    const a = foldAll([...syntheticLog({ seed: 1, events: 2_000, agents: 5 })]);
    const b = foldAll([...syntheticLog({ seed: 2, events: 2_000, agents: 5 })]);
    expect(stateHash(a)).not.toBe(stateHash(b));
  });

  it("folding through the wire codec gives the same state as folding the events", () => {
    const log = [...syntheticLog({ seed: 7, events: 5_000, agents: 10 })];
    const viaWire = foldAll(log.map((r) => decodeRecord(encodeRecord(r))));
    expect(stateHash(viaWire)).toBe(stateHash(foldAll(log)));
  });

  it("never reads the clock: folding at another time gives the same state", () => {
    const log = [...syntheticLog({ seed: 9, events: 3_000, agents: 5 })];
    const before = stateHash(foldAll(log));
    const realNow = Date.now;
    const realRandom = Math.random;
    Date.now = () => 0;
    Math.random = () => 0.5;
    try {
      expect(stateHash(foldAll(log))).toBe(before);
    } finally {
      Date.now = realNow;
      Math.random = realRandom;
    }
  });

  it("refuses records out of order", () => {
    const s = new ClusterState();
    const r = [
      makeEnvelope(
        "LeaderElected",
        { schedulerId: "a", epoch: 1, host: "h", pid: 1 },
        { epoch: 1, ts: 1, corr: "c", reason: "r" },
      ) as AnyEnvelope,
    ];
    foldRecord(s, 2, r);
    expect(() => foldRecord(s, 2, r)).toThrow(/folded after record 2/);
  });

  it("records an event it cannot apply as an anomaly instead of throwing, and goes on", () => {
    const s = new ClusterState();
    const meta = { epoch: 1, ts: 5, corr: "c", reason: "r" };
    foldRecord(s, 1, [makeEnvelope("TaskStateChanged", { taskId: asTaskId("nope"), to: "RUNNING" }, meta) as AnyEnvelope]);
    expect(s.anomalies).toEqual([{ seq: 1, index: 0, type: "TaskStateChanged", why: "unknown task nope" }]);
    expect(s.seq).toBe(1);
  });

  it("emits effects only when asked (the leader), never during replay", () => {
    const log = [...syntheticLog({ seed: 3, events: 2_000, agents: 5 })];
    const s = new ClusterState();
    const out: Effect[] = [];
    for (const [i, r] of log.entries()) foldRecord(s, i + 1, r, out);
    expect(out.some((e) => e.kind === "LAUNCH")).toBe(true);
    expect(out.some((e) => e.kind === "RESCHEDULE")).toBe(true);
    expect(stateHash(s)).toBe(stateHash(foldAll(log)));
  });
});

describe("golden logs", () => {
  for (const name of ["v1-synthetic", "v1-rules", "v1-poisoned", "v1-devrun", "v1-services", "v1-deploys"]) {
    it(`${name} folds to the state hash recorded when it was written`, () => {
      const dir = new URL("./golden/", import.meta.url);
      const expected = JSON.parse(readFileSync(new URL(`${name}.json`, dir), "utf8"));
      const records = unpack<Uint8Array[]>(readFileSync(new URL(`${name}.log`, dir)));
      expect(records.length).toBe(expected.records);
      const decoded = records.map((r) => decodeRecord(r));
      // The codec is stable: re-encoding gives the bytes on disk.
      decoded.forEach((events, i) => {
        if (events.some((e) => e.type === UNREADABLE)) return; // foreign bytes are not re-encodable
        expect(Buffer.compare(Buffer.from(encodeRecord(events as AnyEnvelope[])), Buffer.from(records[i]!))).toBe(0);
      });
      const s = foldAll(decoded);
      // v1-poisoned holds foreign records (test/golden/make-poisoned.ts): each folds to the same anomaly.
      expect(s.anomalies.map((a) => ({ seq: a.seq, index: a.index, type: a.type }))).toEqual(expected.anomalies ?? []);
      expect({ events: s.eventCount, tasks: s.tasks.size, jobs: s.jobs.size, agents: s.agents.size }).toEqual({
        events: expected.events,
        tasks: expected.tasks,
        jobs: expected.jobs,
        agents: expected.agents,
      });
      expect(expected.stateDigest).toBe(STATE_DIGEST_VERSION);
      expect(stateHash(s)).toBe(expected.stateHash);
    });
  }
});
