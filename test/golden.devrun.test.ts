// The golden log of a real dev-cluster run (test/golden/make-devrun.ts: `roost dev --ha` driven by
// the real CLI through a failure, a flap penalty, a preemption, a leader failover, a job kill and
// an orderly stop), loaded into a real JetStream stream the way Roost creates its log, and read
// back by the cold start a scheduler does: it must fold to the state hash recorded when it was
// written, with no anomaly and every invariant holding. It pins that logs real clusters wrote
// keep their meaning in later builds, through the real read path, not only through the fold.

import { describe, expect, it } from "vitest";
import { decodeRecord } from "../src/eventlog/envelope.js";
import { STATE_DIGEST_VERSION, stateHash } from "../src/replay/hash.js";
import { checkInvariants } from "../src/replay/invariants.js";
import { coldStart } from "../src/storage/coldStart.js";
import { loadGoldenIntoStream, readGolden } from "./support/golden.js";
import { withNats } from "./support/nats.js";

const nats = withNats();
const { records, meta } = readGolden("v1-devrun");

describe("golden log v1-devrun (a real roost dev --ha run)", () => {
  it("loaded into a stream, holds the same bytes and cold-starts to the recorded state hash", async () => {
    const last = await loadGoldenIntoStream(nats.url, "v1-devrun");
    expect(last).toBe(meta.records);
    const log = await nats.openLog("ROOST", { create: false });
    let seq = 0;
    for await (const r of log.readRaw(1)) {
      seq++;
      expect(r.seq).toBe(seq);
      expect(Buffer.compare(Buffer.from(r.data), Buffer.from(records[seq - 1]!)), `record ${seq}`).toBe(0);
    }
    expect(seq).toBe(meta.records);
    const cold = await coldStart(log);
    expect(cold.fromSnapshot).toBeNull();
    expect(cold.tailRecords).toBe(meta.records);
    const s = cold.state;
    expect(s.anomalyCount).toBe(0);
    expect(checkInvariants(s)).toEqual([]);
    expect({ events: s.eventCount, tasks: s.tasks.size, jobs: s.jobs.size, agents: s.agents.size }).toEqual({
      events: meta.events,
      tasks: meta.tasks,
      jobs: meta.jobs,
      agents: meta.agents,
    });
    expect(meta.stateDigest).toBe(STATE_DIGEST_VERSION);
    expect(stateHash(s)).toBe(meta.stateHash);
  }, 30_000);

  it("loads into a stream of another name too", async () => {
    expect(await loadGoldenIntoStream(nats.url, "v1-devrun", { stream: "GOLDEN_DEVRUN" })).toBe(meta.records);
    const log = await nats.openLog("GOLDEN_DEVRUN", { create: false });
    expect(await log.lastSeq()).toBe(meta.records);
  }, 30_000);

  it("covers a failure, its flap penalty, a preemption and kills, under two leaders", () => {
    expect(meta.covers).toEqual(
      expect.arrayContaining([
        "TaskStateChanged:FAILED",
        "TaskCreated:THROTTLED",
        "TaskStateChanged:PREEMPTING",
        "TaskStateChanged:KILLED",
        "SlotReserved",
        "JobKillRequested",
      ]),
    );
    const epochs = meta.epochs ?? [];
    expect(epochs.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]!).toBeGreaterThan(epochs[i - 1]!);
    // The meta says what the log holds: recount it from the records.
    const seen = new Set<string>();
    const elected: number[] = [];
    for (const r of records) {
      for (const e of decodeRecord(r)) {
        const d = e.data as { to?: string; state?: string; epoch?: number };
        seen.add(e.type === "TaskStateChanged" ? `${e.type}:${d.to}` : e.type === "TaskCreated" ? `${e.type}:${d.state}` : e.type);
        if (e.type === "LeaderElected") elected.push(d.epoch!);
      }
    }
    expect([...seen].sort()).toEqual(meta.covers);
    expect(elected).toEqual(epochs);
  });

  it("names ten points of interest, in log order, each at its record's time", () => {
    const points = meta.points ?? [];
    expect(points).toHaveLength(10);
    let prev = 0;
    for (const p of points) {
      expect(p.seq).toBeGreaterThanOrEqual(prev);
      expect(p.seq).toBeLessThanOrEqual(meta.records);
      prev = p.seq;
      expect(p.ts).toBe(Math.max(...decodeRecord(records[p.seq - 1]!).map((e) => e.ts)));
      expect(p.what.length).toBeGreaterThan(0);
    }
    expect(points.at(-1)!.seq).toBe(meta.records);
  });
});
