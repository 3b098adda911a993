// The task id index built in a thread (src/storage/indexWorker.ts): the same index IdIndex builds
// inline, the same refusal of a snapshot holding an id twice, and the inline build whenever the
// thread cannot be used. Also a cold start from a JetStream store large enough to use it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskId } from "../src/domain/types.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { Appender } from "../src/eventlog/appender.js";
import { startNatsServer, type NatsServerHandle } from "../src/natsServer/server.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { IdIndex } from "../src/replay/idIndex.js";
import { PackedIds } from "../src/replay/packedIds.js";
import { encodeSnapshot, readSnapshot } from "../src/replay/snapshot.js";
import { SnapshotError } from "../src/replay/snapshotError.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { coldStart } from "../src/storage/coldStart.js";
import { startIndexer } from "../src/storage/indexWorker.js";
import { SnapshotStore } from "../src/storage/snapshotStore.js";
import { toShared } from "../src/storage/verifyWorker.js";

/** n ids in shared memory, as a decode of a fetched snapshot has them. */
function sharedIds(ids: readonly string[]): PackedIds {
  const joined = Buffer.from(ids.join(""), "latin1");
  const bytes = Buffer.from(new SharedArrayBuffer(joined.length));
  joined.copy(bytes);
  return PackedIds.fromBytes(bytes, ids.length, (i) => ids[i]!.length)!;
}

const ids = Array.from(
  { length: 20_000 },
  (_, i) => `role${i % 7}-prod-job${(i / 50) | 0}-${i % 50}-${((i * 2654435761) >>> 0).toString(16)}`,
);

describe("the index thread", () => {
  it("builds the index IdIndex builds: every id found at its position, others missed", async () => {
    const indexer = startIndexer();
    await indexer.ready;
    const table = sharedIds(ids);
    const wait = indexer.tablesFor(table, ids.length);
    expect(wait).not.toBeNull();
    const tables = wait!();
    expect(tables).not.toBeNull();
    expect(indexer.failure).toBeNull();
    expect(tables!.slots.buffer).not.toBeInstanceOf(SharedArrayBuffer); // transferred, not shared
    const fromThread = new IdIndex(table, ids.length, tables!);
    const inline = new IdIndex(PackedIds.of(ids as TaskId[]), ids.length);
    for (let p = 0; p < ids.length; p++) {
      expect(fromThread.find(ids[p] as TaskId)).toBe(p);
      expect(inline.find(ids[p] as TaskId)).toBe(p);
    }
    for (const miss of ["", "role0-prod-job0-0", `${ids[5]}x`]) expect(fromThread.find(miss as TaskId)).toBe(-1);
    // Ids the lookups did not reach are still bytes (the thread made no string).
    expect(table.unmade).toBeLessThan(ids.length);
  });

  it("a table holding an id twice gives no tables, and the index built inline refuses it, naming the id", async () => {
    const indexer = startIndexer();
    await indexer.ready;
    const twice = [...ids.slice(0, 100), ids[42]!, ...ids.slice(100, 200)];
    const table = sharedIds(twice);
    const wait = indexer.tablesFor(table, twice.length)!;
    expect(wait()).toBeNull();
    expect(() => new IdIndex(table, twice.length)).toThrow(SnapshotError);
    expect(() => new IdIndex(table, twice.length)).toThrow(`snapshot holds task ${ids[42]} twice`);
  });

  it("is not used, and says why, when it is not ready or the ids are not in shared memory", async () => {
    const early = startIndexer();
    expect(early.tablesFor(sharedIds(ids.slice(0, 10)), 10)).toBeNull();
    expect(early.failure).toBe("the index thread was not ready");
    const notShared = startIndexer();
    await notShared.ready;
    const plain = PackedIds.fromBytes(Buffer.from(ids.slice(0, 3).join(""), "latin1"), 3, (i) => ids[i]!.length)!;
    expect(notShared.tablesFor(plain, 3)).toBeNull();
    expect(notShared.failure).toBe("the ids are not in shared memory");
  });

  it("a snapshot read with the thread's index is the snapshot read without it", async () => {
    const state = new ClusterState();
    let seq = 0;
    for (const r of syntheticLog({ seed: 5, events: 30_000, agents: 20 })) foldRecord(state, ++seq, r);
    const bytes = toShared(encodeSnapshot(state));
    const indexer = startIndexer();
    await indexer.ready;
    let used = false;
    const read = readSnapshot(bytes, {
      verify: false,
      indexTables: (t, n) => {
        const wait = indexer.tablesFor(t, n);
        if (wait === null) return null;
        return () => {
          used = true;
          return wait();
        };
      },
    });
    expect(used).toBe(true);
    expect(indexer.failure).toBeNull();
    expect(stateHash(read.state)).toBe(stateHash(state));
    for (const id of state.tasks.keys()) expect(read.state.tasks.get(id)?.taskId).toBe(id);
  });
});

describe("a cold start from a JetStream store whose snapshot is large enough", () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("builds the index in the thread and reaches the fold from genesis", async () => {
    const log = await openJetStreamLog({ servers: server.url, stream: "INDEXTHREAD", replicas: 1 });
    try {
      const store = await SnapshotStore.forLog(log, { bucket: "indexthread" });
      const writer = new ClusterState();
      const appender = new Appender(log, {
        lastSeq: 0,
        writerId: "t",
        maxEventsPerRecord: 1000,
        onCommit: (s, e) => foldRecord(writer, s, e),
      });
      // 50k tasks or more: a snapshot the store treats as large (WORKER_MIN_TASKS).
      const records = [...syntheticLog({ seed: 9, events: 250_000, agents: 50, eventsPerRecord: 1000 })];
      const cut = Math.floor(records.length * 0.9);
      await Promise.all(records.slice(0, cut).map((r) => appender.append(r)));
      expect(writer.tasks.size).toBeGreaterThanOrEqual(50_000);
      await store.put(writer);
      await Promise.all(records.slice(cut).map((r) => appender.append(r)));
      const r = await coldStart(log, store);
      expect(r.fromSnapshot).not.toBeNull();
      expect(r.tailRecords).toBeGreaterThan(0);
      expect(r.snapshotIndexFailure).toBeNull();
      expect(r.snapshotIndexBy).toBe("thread");
      expect(stateHash(r.state)).toBe(stateHash(writer));
    } finally {
      await log.close();
    }
  }, 60_000);
});
