// Who writes snapshots (src/actors/snapshotWriter.ts): a standby, encoding a slice at a time; the leader
// only when no standby is on the members board. And the sliced encoder writes exactly the bytes
// the one-shot encoder writes.

import { describe, expect, it } from "vitest";
import { runSliced, snapshotPoint, writesSnapshot } from "../src/actors/snapshotWriter.js";
import { MemoryLeaseBoard } from "../src/actors/lease.js";
import { MemoryMemberBoard, type MemberStatus } from "../src/actors/members.js";
import { systemClock } from "../src/actors/clock.js";
import { Scheduler } from "../src/actors/scheduler.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { MemorySnapshotStore } from "../src/storage/snapshotStore.js";
import { decodeRecord, encodeRecord } from "../src/eventlog/envelope.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash, stateHashSteps } from "../src/replay/hash.js";
import { runSteps, sortStrings, sortStringsSteps } from "../src/replay/steps.js";
import { encodeSnapshot, encodeSnapshotSteps, readSnapshot } from "../src/replay/snapshot.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { waitFor } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";

const member = (id: string, role: "leader" | "standby", ts: number): MemberStatus => ({
  id,
  role,
  ts,
  pid: 1,
  host: "h",
  epoch: 1,
  appliedSeq: 0,
});

function syntheticState(events: number): ClusterState {
  const s = new ClusterState();
  let seq = 0;
  for (const r of syntheticLog({ seed: 7, events, eventsPerRecord: 100 })) foldRecord(s, ++seq, decodeRecord(encodeRecord(r)));
  return s;
}

async function waitForSnapshot(store: MemorySnapshotStore): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if ((await store.list()).length > 0) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error("no snapshot was written");
}

describe("who writes snapshots", () => {
  it("a snapshot is due each time the event count crosses a multiple of --snapshot-every", () => {
    expect([0, 99, 100, 199, 200, 1050].map((n) => snapshotPoint(n, 100))).toEqual([0, 0, 1, 1, 2, 10]);
    expect(snapshotPoint(12345, 0)).toBe(0); // 0: never
    // Due when the point grows: at 25,000 events, after a snapshot at 0 or 15,000 yes; at 20,000 no.
    const due = (now: number, last: number, every: number) => snapshotPoint(now, every) > snapshotPoint(last, every);
    expect(due(25_000, 0, 10_000)).toBe(true);
    expect(due(25_000, 20_000, 10_000)).toBe(false);
    expect(due(25_000, 15_000, 10_000)).toBe(true);
    expect(due(25_000, 0, 0)).toBe(false);
  });

  it("the standby with the smallest id writes; the leader only when no standby is fresh", () => {
    const now = 100_000;
    const board = [member("a", "leader", now), member("b", "standby", now - 1000), member("c", "standby", now)];
    expect(writesSnapshot({ id: "a", role: "leader" }, board, now)).toBe(false);
    expect(writesSnapshot({ id: "b", role: "standby" }, board, now)).toBe(true);
    expect(writesSnapshot({ id: "c", role: "standby" }, board, now)).toBe(false);
    // b's entry is stale (it died): c writes.
    const staleB = [member("a", "leader", now), member("b", "standby", now - 60_000), member("c", "standby", now)];
    expect(writesSnapshot({ id: "c", role: "standby" }, staleB, now)).toBe(true);
    // No fresh standby: the leader writes.
    expect(writesSnapshot({ id: "a", role: "leader" }, [member("a", "leader", now), member("b", "standby", now - 60_000)], now)).toBe(true);
    // No board: the leader writes, standbys cannot know of each other and do not.
    expect(writesSnapshot({ id: "a", role: "leader" }, null, now)).toBe(true);
    expect(writesSnapshot({ id: "b", role: "standby" }, null, now)).toBe(false);
    // A standby not yet on the board (its own entry missing) still counts itself.
    expect(writesSnapshot({ id: "b", role: "standby" }, [member("a", "leader", now)], now)).toBe(true);
  });
});

describe("the sliced encoder", () => {
  const state = syntheticState(30_000);

  it("writes exactly the bytes of the one-shot encoder, a slice at a time", async () => {
    expect(state.tasks.size).toBeGreaterThan(4096 * 1.5); // several slices
    let turns = 0;
    const counting = setInterval(() => turns++, 0);
    const sliced = await runSliced(encodeSnapshotSteps(state, { createdTs: 42 }), { sliceMs: 0 });
    clearInterval(counting);
    expect(sliced).not.toBeNull();
    expect(Buffer.from(sliced!.bytes).equals(Buffer.from(encodeSnapshot(state, { createdTs: 42 })))).toBe(true);
    expect(readSnapshot(sliced!.bytes).header.stateHash).toBe(stateHash(state));
    expect(runSteps(stateHashSteps(state))).toBe(stateHash(state));
    expect(turns).toBeGreaterThan(0); // the event loop turned between slices
  });

  it("sorts task ids in slices into exactly sortStrings' order", () => {
    let x = 12345;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    const ids = Array.from({ length: 70_000 }, (_, i) => `role/env/job-${rnd() % 5000}-${i % 7 === 0 ? "é" : ""}${rnd()}`);
    ids.push("a", "a", "", "\uffff", "Z");
    expect(runSteps(sortStringsSteps(ids))).toEqual(sortStrings(ids));
    expect(runSteps(sortStringsSteps(["b", "a"]))).toEqual(["a", "b"]);
  });

  it("stops between slices once aborted", async () => {
    const abort = new AbortController();
    let steps = 0;
    const counted = (function* () {
      const inner = encodeSnapshotSteps(state, { createdTs: 42 });
      for (;;) {
        const r = inner.next();
        if (r.done) return r.value;
        if (++steps === 2) abort.abort();
        yield;
      }
    })();
    expect(await runSliced(counted, { sliceMs: 0, signal: abort.signal })).toBeNull();
    expect(steps).toBe(2);
  });
});

describe("snapshots in a replicated scheduler", () => {
  async function cell(ids: string[]) {
    const log = new MemoryLog();
    const store = new MemorySnapshotStore("ROOST_TEST");
    const bus = new MemoryBus();
    const board = new MemoryLeaseBoard(systemClock, 3000);
    const members = new MemoryMemberBoard();
    const replicas: Scheduler[] = [];
    for (const id of ids) {
      const s = new Scheduler({
        log,
        bus,
        schedulerId: id,
        lease: board.lease(),
        members,
        snapshots: store,
        snapshotEvery: 20,
        snapshotSliceMs: 0,
      });
      await s.start();
      if (replicas.length === 0) await waitFor(s, () => s.leading && !s.reconciling, `${id} leading`, 10_000);
      replicas.push(s);
    }
    for (const s of replicas) await s.readMembers();
    return { log, store, replicas };
  }

  it("a standby writes them, not the leader, and they hold the log's state", async () => {
    const { log, store, replicas } = await cell(["a", "b", "c"]);
    const [a, b, c] = replicas as [Scheduler, Scheduler, Scheduler];
    try {
      expect(a.leading).toBe(true);
      await a.intake.create({ spec: testSpec("j", { instances: 30 }), user: "t" });
      await waitForSnapshot(store);
      expect(b.snapshotsWritten).toBeGreaterThan(0);
      expect(a.snapshotsWritten).toBe(0);
      expect(c.snapshotsWritten).toBe(0);
      const newest = (await store.list())[0]!;
      const loaded = await store.load(newest.name);
      expect(loaded.header.stream).toBe("ROOST_TEST"); // a snapshot names the log it is a fold of
      const replayed = new ClusterState();
      for await (const r of log.read(1)) if (r.seq <= newest.seq) foldRecord(replayed, r.seq, r.events);
      expect(stateHash(loaded.state)).toBe(stateHash(replayed));
    } finally {
      for (const s of replicas) await s.stop();
    }
  });

  it("a lone leader on a board writes them itself", async () => {
    const { store, replicas } = await cell(["a"]);
    const [a] = replicas as [Scheduler];
    try {
      await a.intake.create({ spec: testSpec("j", { instances: 30 }), user: "t" });
      await waitForSnapshot(store);
      expect(a.snapshotsWritten).toBeGreaterThan(0);
    } finally {
      await a.stop();
    }
  });
});
