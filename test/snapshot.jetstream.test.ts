// SnapshotStore on a real nats-server (JetStream object store), and a cold start from it over a
// JetStream log: put/list/load, a corrupt newest snapshot skipped for an older one, snapshot plus
// tail equal to the fold from genesis, prune.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeRecord, type AnyEnvelope } from "../src/eventlog/envelope.js";
import { openJetStreamLog, type JetStreamLog } from "../src/eventlog/jetstream.js";
import { DEFAULT_SNAPSHOT_BUCKET, SnapshotStore, snapshotName } from "../src/storage/snapshotStore.js";
import { startNatsCluster, type NatsClusterHandle } from "../src/natsServer/cluster.js";
import { coldStart } from "../src/storage/coldStart.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { readSnapshotHeader } from "../src/replay/snapshot.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { withNats } from "./support/nats.js";
import { roost } from "./support/roost.js";

const nats = withNats();

const records = [...syntheticLog({ seed: 404, events: 30_000, agents: 20, eventsPerRecord: 200 })];

function foldPrefix(n: number): ClusterState {
  const s = new ClusterState();
  for (let i = 0; i < n; i++) foldRecord(s, i + 1, records[i]!);
  return s;
}

async function writeLog(log: JetStreamLog, recs: readonly AnyEnvelope[][]): Promise<void> {
  for (let i = 0; i < recs.length; i++) await log.append(encodeRecord(recs[i]!), i, `r${i}`);
}

/** Garbage under a snapshot name, written straight into the bucket (as a broken writer would). */
async function putGarbage(log: JetStreamLog, bucket: string, seq: number): Promise<void> {
  const os = await new Objm(jetstream(log.nc)).open(bucket);
  await os.putBlob({ name: snapshotName(seq) }, new TextEncoder().encode("this is not a snapshot"));
}

describe("SnapshotStore (JetStream object store)", () => {
  it("puts, lists newest first with what it covers, and loads the newest", async () => {
    const log = await nats.openLog("SNAP_PUT");
    const store = await SnapshotStore.forLog(log, { bucket: "snap_put" });
    expect(store.bucket).toBe("snap_put");
    for (const cut of [30, records.length, 90]) await store.put(foldPrefix(cut), { createdTs: 1000 + cut });
    const list = await store.list();
    expect(list.map((s) => s.seq)).toEqual([records.length, 90, 30]);
    const newest = foldPrefix(records.length);
    expect(list[0]).toMatchObject({
      name: snapshotName(records.length),
      eventCount: newest.eventCount,
      stateHash: stateHash(newest),
      createdTs: 1000 + records.length,
      tasks: newest.tasks.size,
    });
    expect(list[0]!.size).toBeGreaterThan(512 * 1024); // several object-store chunks
    expect(list[0]!.description).toMatch(new RegExp(`^seq ${records.length}, ${newest.eventCount} events`));

    // getBytes reads the chunks itself: exactly what the object store's own reader returns.
    const own = await store.getBytes(snapshotName(records.length));
    const lib = await (await new Objm(jetstream(log.nc)).open("snap_put")).getBlob(snapshotName(records.length));
    expect(own!.length).toBe(list[0]!.size);
    expect(Buffer.compare(Buffer.from(own!), Buffer.from(lib!))).toBe(0);
    expect(await store.getBytes(snapshotName(12345))).toBeNull();

    const loaded = await store.loadNewest();
    expect(loaded).not.toBeNull();
    expect(loaded!.name).toBe(snapshotName(records.length));
    expect(loaded!.skipped).toEqual([]);
    expect(stateHash(loaded!.state)).toBe(stateHash(newest));
    const older = await store.loadNewest(89);
    expect(older!.seq).toBe(30);
    expect(older!.skipped.map((s) => s.name)).toEqual([snapshotName(records.length), snapshotName(90)]);
    expect(stateHash(older!.state)).toBe(stateHash(foldPrefix(30)));
  });

  it("skips a corrupt newest snapshot, records why, and uses the older one", async () => {
    const log = await nats.openLog("SNAP_CORRUPT");
    const store = await SnapshotStore.forLog(log, { bucket: "snap_corrupt" });
    await store.put(foldPrefix(50));
    await putGarbage(log, "snap_corrupt", 120);
    const loaded = await store.loadNewest();
    expect(loaded!.seq).toBe(50);
    expect(loaded!.skipped).toHaveLength(1);
    expect(loaded!.skipped[0]!.name).toBe(snapshotName(120));
    expect(loaded!.skipped[0]!.error).toMatch(/not a snapshot/);
    expect(stateHash(loaded!.state)).toBe(stateHash(foldPrefix(50)));
  });

  it("cold start: snapshot plus tail equals the fold from genesis; without a snapshot it folds the log", async () => {
    const log = await nats.openLog("SNAP_COLD");
    await writeLog(log, records);
    const full = foldPrefix(records.length);
    const store = await SnapshotStore.forLog(log); // the default bucket
    expect(store.bucket).toBe(DEFAULT_SNAPSHOT_BUCKET);

    const genesis = await coldStart(log, store);
    expect(genesis.fromSnapshot).toBeNull();
    expect(genesis.snapshotSeq).toBe(0);
    expect(genesis.tailRecords).toBe(records.length);
    expect(genesis.skipped).toEqual([]);
    expect(stateHash(genesis.state)).toBe(stateHash(full));

    const cut = Math.floor(records.length * 0.7);
    await store.put(foldPrefix(cut));
    await putGarbage(log, DEFAULT_SNAPSHOT_BUCKET, cut + 5); // newer, corrupt: skipped
    const r = await coldStart(log, store);
    expect(r.fromSnapshot).toBe(snapshotName(cut));
    expect(r.snapshotSeq).toBe(cut);
    expect(r.tailRecords).toBe(records.length - cut);
    expect(r.tailEvents).toBe(records.slice(cut).reduce((n, x) => n + x.length, 0));
    expect(r.skipped.map((s) => s.name)).toEqual([snapshotName(cut + 5)]);
    expect(r.snapshotBytes).toBeGreaterThan(0);
    expect(stateHash(r.state)).toBe(stateHash(full));
    expect(r.state.anomalies).toEqual([]);
  });

  it("cold start ignores a snapshot beyond the log's end (another log's), folding from genesis", async () => {
    const log = await nats.openLog("SNAP_SHORT");
    await writeLog(log, records.slice(0, 20));
    const store = await SnapshotStore.forLog(log, { bucket: "snap_short" });
    await store.put(foldPrefix(40));
    const r = await coldStart(log, store);
    expect(r.fromSnapshot).toBeNull();
    expect(r.skipped[0]!.error).toMatch(/beyond the log's last sequence 20/);
    expect(stateHash(r.state)).toBe(stateHash(foldPrefix(20)));
  });

  it("prune keeps the N newest", async () => {
    const log = await nats.openLog("SNAP_PRUNE");
    const store = await SnapshotStore.forLog(log, { bucket: "snap_prune" });
    for (const cut of [10, 20, 30, 40, 50]) await store.put(foldPrefix(cut));
    expect(await store.prune(2)).toEqual([snapshotName(30), snapshotName(20), snapshotName(10)]);
    expect((await store.list()).map((s) => s.seq)).toEqual([50, 40]);
    expect(await store.prune()).toEqual([]);
    expect((await store.loadNewest())!.seq).toBe(50);
  });

  it("cold start with the check in a worker (the bytes fetched into shared memory) equals the fold from genesis", async () => {
    const log = await nats.openLog("SNAP_WORKER");
    await writeLog(log, records);
    const store = await SnapshotStore.forLog(log, { bucket: "snap_worker" });
    const cut = Math.floor(records.length * 0.6);
    await store.put(foldPrefix(cut));
    const shared = await store.getBytes(snapshotName(cut), { shared: true });
    expect(shared!.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Buffer.compare(Buffer.from(shared!), Buffer.from((await store.getBytes(snapshotName(cut)))!))).toBe(0);
    const r = await coldStart(log, store, { verify: "worker" });
    expect(r).toMatchObject({ fromSnapshot: snapshotName(cut), snapshotVerify: "worker", skipped: [], tailRecords: records.length - cut });
    expect(stateHash(r.state)).toBe(stateHash(foldPrefix(records.length)));
  });

  it("a snapshot of another stream (named in its header) is skipped", async () => {
    const logA = await nats.openLog("SNAP_STREAM_A");
    const logB = await nats.openLog("SNAP_STREAM_B");
    await writeLog(logA, records.slice(0, 40));
    await writeLog(logB, records.slice(0, 40));
    const storeA = await SnapshotStore.forLog(logA, { bucket: "snap_streams" });
    expect(storeA.stream).toBe("SNAP_STREAM_A");
    await storeA.put(foldPrefix(30));
    expect((await storeA.loadNewest())!.header.stream).toBe("SNAP_STREAM_A");
    const storeB = await SnapshotStore.forLog(logB, { bucket: "snap_streams" }); // the same bucket
    const b = await coldStart(logB, storeB);
    expect(b.fromSnapshot).toBeNull();
    expect(b.skipped).toEqual([{ name: snapshotName(30), error: expect.stringMatching(/stream SNAP_STREAM_A, not of SNAP_STREAM_B/) }]);
    expect(stateHash(b.state)).toBe(stateHash(foldPrefix(40)));
    expect((await coldStart(logA, storeA)).fromSnapshot).toBe(snapshotName(30));
  });

  it("open without create refuses a bucket that does not exist", async () => {
    const log = await nats.openLog("SNAP_OPEN");
    await expect(SnapshotStore.open(log.nc, { bucket: "snap_missing", create: false })).rejects.toThrow(/snap_missing/);
  });
});

// A cold start against an empty (new) bucket must cost about nothing. Every store here waits up to
// 60 s for a request (timeoutMs), and every test may take half that at most: a cold start that waits
// out a request fails the test instead of passing slowly. (The 3-node test once took over 10 s on a
// loaded 2-core CI machine: electing the new bucket's stream leader is slow there, and legitimately
// waited for. Alone it takes about 1 s.)
describe("an empty snapshot bucket", () => {
  it("a cold start against a new bucket resolves without waiting out a request", async () => {
    const log = await nats.openLog("SNAP_EMPTY");
    await writeLog(log, records.slice(0, 10));
    const store = await SnapshotStore.forLog(log, { bucket: "snap_empty", timeoutMs: 60_000 });
    expect(await store.list()).toEqual([]);
    const r = await coldStart(log, store);
    expect(r).toMatchObject({ fromSnapshot: null, skipped: [], tailRecords: 10 });
    expect(stateHash(r.state)).toBe(stateHash(foldPrefix(10)));
  }, 30_000);

  describe("3 nodes, R3: replicas starting at once on a new bucket", () => {
    let cluster: NatsClusterHandle | null = null;
    beforeAll(async () => {
      cluster = await startNatsCluster();
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });

    // The first replica to get there creates the bucket; the others find its stream while it has no
    // leader yet. Reading that stream (as os.list() does) is not answered until it has one: each of
    // them waited out the whole request timeout (10 s by default) before folding from genesis.
    it("every replica's cold start resolves without waiting out a request", async () => {
      const urls = cluster!.urls;
      const first = await openJetStreamLog({ servers: urls, stream: "SNAP_RACE", replicas: 3 });
      const logs = [first];
      try {
        await writeLog(first, records.slice(0, 10));
        for (let i = 0; i < 2; i++) logs.push(await openJetStreamLog({ servers: urls, stream: "SNAP_RACE", create: false }));
        const results = await Promise.all(
          logs.map(async (log) => coldStart(log, await SnapshotStore.forLog(log, { bucket: "snap_race", timeoutMs: 60_000 }))),
        );
        for (const r of results) {
          expect(r).toMatchObject({ fromSnapshot: null, skipped: [], tailRecords: 10 });
          expect(stateHash(r.state)).toBe(stateHash(foldPrefix(10)));
        }
      } finally {
        await Promise.all(logs.map((l) => l.close()));
      }
    }, 30_000);
  });
});

describe("roost snapshot list / verify (the built CLI)", () => {
  it("lists snapshots, verifies a good one (exit 0), and reports a mismatch or a broken one (exit 1)", async () => {
    const log = await nats.openLog("SNAP_CLI");
    await writeLog(log, records.slice(0, 60));
    const store = await SnapshotStore.forLog(log, { bucket: "snap_cli" });
    await store.put(foldPrefix(40));
    // A snapshot that decodes fine but is not this log's state at seq 50.
    const other = new ClusterState();
    const foreign = [...syntheticLog({ seed: 405, events: 30_000, agents: 20, eventsPerRecord: 200 })];
    for (let i = 0; i < 50; i++) foldRecord(other, i + 1, foreign[i]!);
    await store.put(other);
    await putGarbage(log, "snap_cli", 55);
    const dir = mkdtempSync(join(tmpdir(), "roost-snap-cli-"));
    const args = ["--nats", nats.url, "--stream", "SNAP_CLI", "--bucket", "snap_cli"];
    try {
      const list = await roost(["snapshot", "list", ...args, "--json"], dir);
      expect(list.code).toBe(0);
      expect(JSON.parse(list.stdout).map((x: { name: string }) => x.name)).toEqual([snapshotName(55), snapshotName(50), snapshotName(40)]);
      const human = await roost(["snapshot", "list", ...args], dir);
      expect(human.stdout).toMatch(/^NAME\s+SEQ\s+EVENTS/);
      expect(human.stdout).toContain(snapshotName(40));

      const good = await roost(["snapshot", "verify", ...args, "--name", snapshotName(40), "--json"], dir);
      expect(good.code).toBe(0);
      const goodReport = JSON.parse(good.stdout);
      expect(goodReport).toMatchObject({
        name: snapshotName(40),
        seq: 40,
        match: true,
        snapshotHash: stateHash(foldPrefix(40)),
        logHash: stateHash(foldPrefix(40)),
      });
      const goodText = await roost(["snapshot", "verify", ...args, "--name", snapshotName(40)], dir);
      expect(goodText.stdout).toMatch(/^match: snap\/000000000040/);

      const bad = await roost(["snapshot", "verify", ...args, "--name", snapshotName(50)], dir);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/^MISMATCH: snap\/000000000050/);
      expect(bad.stdout).toContain(stateHash(other));
      expect(bad.stdout).toContain(stateHash(foldPrefix(50)));

      const newest = await roost(["snapshot", "verify", ...args, "--json"], dir); // default: the newest, garbage
      expect(newest.code).toBe(1);
      expect(JSON.parse(newest.stdout)).toMatchObject({
        name: snapshotName(55),
        match: false,
        problem: expect.stringMatching(/does not decode/),
      });

      writeFileSync(join(dir, "cluster.json"), JSON.stringify({ mode: "embedded", http: "http://127.0.0.1:9" }));
      const embedded = await roost(["snapshot", "list", "--cluster", join(dir, "cluster.json")], dir);
      expect(embedded.code).toBe(1);
      expect(embedded.stderr).toMatch(/not available on an embedded dev cluster/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("roost snapshot write (the built CLI)", () => {
  it("writes the state at a moment, which verifies; keeps the newest 3; refuses a moment outside the log", async () => {
    const log = await nats.openLog("SNAP_WRITE");
    await writeLog(log, records.slice(0, 60));
    const store = await SnapshotStore.forLog(log, { bucket: "snap_write" });
    await store.put(foldPrefix(20));
    const dir = mkdtempSync(join(tmpdir(), "roost-snap-write-"));
    const args = ["--nats", nats.url, "--stream", "SNAP_WRITE", "--bucket", "snap_write"];
    try {
      const at = await roost(["snapshot", "write", ...args, "--at", "45", "--json"], dir);
      expect(at.code, at.stderr).toBe(0);
      expect(JSON.parse(at.stdout)).toMatchObject({ name: snapshotName(45), seq: 45, pruned: [] });
      const stored = await store.loadNewestReport(45, { verify: "inline" });
      expect(stored.loaded?.seq).toBe(45);
      expect(stateHash(stored.loaded!.state)).toBe(stateHash(foldPrefix(45)));
      expect(readSnapshotHeader((await store.getBytes(snapshotName(45)))!).stream).toBe("SNAP_WRITE"); // as a scheduler's names it

      // Default: the end of the log; it verifies against a fold from genesis.
      const end = await roost(["snapshot", "write", ...args], dir);
      expect(end.code, end.stderr).toBe(0);
      expect(end.stdout).toMatch(/^wrote snap\/000000000060: seq 60, /);
      const verified = await roost(["snapshot", "verify", ...args, "--json"], dir);
      expect(JSON.parse(verified.stdout)).toMatchObject({ name: snapshotName(60), match: true });

      // A fourth: the oldest goes, as a scheduler's writer prunes.
      const fourth = await roost(["snapshot", "write", ...args, "--at", "50", "--json"], dir);
      expect(JSON.parse(fourth.stdout)).toMatchObject({ seq: 50, pruned: [snapshotName(20)] });
      expect((await store.list()).map((s) => s.seq)).toEqual([60, 50, 45]);

      // Moments outside the log, and garbage: refused, naming --at, and nothing written.
      for (const [bad, why] of [
        ["61", /beyond the end of the log/],
        ["0", /before the first record/],
        ["-1", /--at <seq\|time>.*must be a log sequence/],
        ["yesterday", /must be a log sequence/],
        ["1999-01-01T00:00:00Z", /before the first record/],
      ] as const) {
        const r = await roost(["snapshot", "write", ...args, "--at", bad], dir);
        expect(r.code, bad).toBe(1);
        expect(r.stderr, bad).toMatch(why);
        expect(r.stderr, bad).not.toMatch(/at .*\.js:\d+/);
      }
      expect((await store.list()).map((s) => s.seq)).toEqual([60, 50, 45]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
