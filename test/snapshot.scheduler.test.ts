// Snapshots in the scheduler: the leader writes one every N events; a scheduler starting cold
// loads the newest valid one and folds only the tail, ending with the state a fold from genesis
// gives. A snapshot that will not decode is skipped.

import { describe, expect, it } from "vitest";
import { Scheduler } from "../src/actors/scheduler.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { MemorySnapshotStore } from "../src/storage/snapshotStore.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { testSpec } from "./support/specs.js";
import { asJobKey } from "../src/domain/types.js";

async function genesis(log: MemoryLog): Promise<ClusterState> {
  const s = new ClusterState();
  for await (const r of log.read(1)) foldRecord(s, r.seq, r.events);
  return s;
}

async function waitForSnapshot(store: MemorySnapshotStore, atLeastSeq: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if ((await store.list()).some((s) => s.seq >= atLeastSeq)) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error("no snapshot was written");
}

describe("snapshots in the scheduler", () => {
  it("the leader writes snapshots; a cold start loads the newest and folds only the tail", async () => {
    const log = new MemoryLog();
    const store = new MemorySnapshotStore();
    const bus = new MemoryBus();
    const first = new Scheduler({ log, bus, schedulerId: "a", snapshots: store, snapshotEvery: 20 });
    await first.start();
    await first.intake.create({ spec: testSpec("j1", { instances: 30 }), user: "t" });
    await waitForSnapshot(store, 1);
    await first.intake.create({ spec: testSpec("j2", { instances: 5 }), user: "t" });
    await first.stop();
    const snaps = await store.list();
    expect(snaps.length).toBeGreaterThan(0);
    expect(snaps[0]!.seq).toBeLessThan(log.length); // the tail is not empty

    const second = new Scheduler({ log, bus: new MemoryBus(), schedulerId: "b", snapshots: store });
    await second.start();
    expect(second.startedFrom).toMatchObject({ snapshot: snaps[0]!.name, snapshotSeq: snaps[0]!.seq, skipped: 0 });
    expect(second.startedFrom!.tailRecords).toBe(log.length - 1 - snaps[0]!.seq); // its own LeaderElected came after
    // Its state is the log's, whether it came from a snapshot or not: compare before its own LeaderElected.
    const replayed = await genesis(log);
    expect(stateHash(second.state)).toBe(stateHash(replayed));
    expect(second.state.jobs.has(asJobKey("www-data/devel/j2"))).toBe(true);
    await second.stop();
  });

  it("a leader with no standby leaves a snapshot of a state over its limit unwritten (the pause could cost it the lease)", async () => {
    const log = new MemoryLog();
    const store = new MemorySnapshotStore();
    const lone = new Scheduler({
      log,
      bus: new MemoryBus(),
      schedulerId: "a",
      snapshots: store,
      snapshotEvery: 20,
      leaderSnapshotMaxTasks: 10,
    });
    await lone.start();
    await lone.intake.create({ spec: testSpec("j1", { instances: 30 }), user: "t" }); // 30 tasks: over 10
    for (let i = 0; i < 1000 && lone.snapshotsLeftByLeader === 0; i++) await new Promise((r) => setImmediate(r));
    expect(lone.snapshotsLeftByLeader).toBeGreaterThan(0);
    expect(lone.snapshotsWritten).toBe(0);
    expect(await store.list()).toEqual([]);
    await lone.stop();
  });

  it("skips a snapshot that will not decode and falls back to an older one, or to the log", async () => {
    const log = new MemoryLog();
    const store = new MemorySnapshotStore();
    const s1 = new Scheduler({ log, bus: new MemoryBus(), schedulerId: "a", snapshots: store, snapshotEvery: 10 });
    await s1.start();
    await s1.intake.create({ spec: testSpec("j", { instances: 12 }), user: "t" });
    await waitForSnapshot(store, 1);
    await s1.stop();
    const newest = (await store.list())[0]!;
    await store.putBytes(`snap/${String(newest.seq + 1).padStart(12, "0")}`, new Uint8Array([1, 2, 3]), {
      description: "garbage",
      eventCount: 0,
      stateHash: "x",
      createdTs: 0,
      tasks: 0,
    });
    const s2 = new Scheduler({ log, bus: new MemoryBus(), schedulerId: "b", snapshots: store });
    await s2.start();
    expect(s2.startedFrom).toMatchObject({ snapshot: newest.name, skipped: 1 });
    expect(stateHash(s2.state)).toBe(stateHash(await genesis(log)));
    await s2.stop();
  });
});
