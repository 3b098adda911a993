// A snapshot's task id index built in a worker thread while the main thread decodes the rest.
//
// Why: at 2.4M task ids the index (src/replay/idIndex.ts: a hash of every id, and a table of
// positions filled by linear probing) took 0.65-0.7 s of a ~2.9 s decode on the main thread
// (profiled 2026-12-05), while the other core sat idle: the nats-server had sent the bytes, and
// the decode does nothing else in parallel. The index needs only the id table's bytes and offsets
// (src/replay/packedIds.ts), which the decode reaches first; everything after it (the small
// part's jobs and agents, the columns' checks) does not need the index until the task table is
// made, last. So the thread starts before the fetch (loading its two small modules while the bytes
// arrive), is handed the bytes and offsets in shared memory, and writes the hashes and the slots
// into shared memory too; the main thread waits for them only when it makes the task table.
//
// Why the tables can be taken as they are: the thread runs this build's own hashIdsInto and
// fillIdSlots on the same bytes (read by both, written by neither), which is exactly what IdIndex
// does inline; a snapshot holding an id twice is refused the same way (SnapshotError naming it).
//
// The wait is synchronous (Atomics.wait: the decode is a pure function and does not yield), and
// bounded: if the thread did not start in time, failed, or has not finished within WAIT_MS, the
// index is built on the main thread instead, so a broken thread costs time, never correctness.

import { MessageChannel, type MessagePort, parentPort, receiveMessageOnPort, Worker, workerData } from "node:worker_threads";
import { fillIdSlots, idSlots, type IdTables } from "../replay/idIndex.js";
import { hashIdsInto, type PackedIds, sameIdBytes } from "../replay/packedIds.js";
import { workerTarget } from "./workerTarget.js";

const INDEXER = "roost-snapshot-indexer";

/** Explicit limit: how long the decode waits for the thread's tables before building them itself
 *  (the thread takes ~0.7 s at 2.4M ids on this machine). */
const WAIT_MS = 20_000;

/** status[0]: what the thread says. */
const RUNNING = 0;
const DONE = 1;
const DUPLICATE = 2;
const FAILED = 3;

/** main → worker */
interface IndexRequest {
  bytes: Uint8Array;
  start: Uint32Array;
  n: number;
  /** [state]: RUNNING, then DONE, DUPLICATE or FAILED (a duplicate is named by the inline build). */
  status: Int32Array;
  /** Where the tables go (IdTables, their buffers transferred), before the state says DONE. */
  port: MessagePort;
}

export interface Indexer {
  /** For ReadOptions.indexTables (src/replay/snapshot.ts): hands the ids to the thread and returns
   *  the wait for its tables; null when the thread cannot be used (not started yet, failed, or the
   *  ids are not in shared memory). Call once. */
  tablesFor(ids: PackedIds, n: number): (() => IdTables | null) | null;
  /** Why the last wait built nothing (the thread's failure), if it did not. */
  readonly failure: string | null;
  /** Whether a wait returned the thread's tables (the index was built there). */
  readonly built: boolean;
  /** Settles once the thread can take ids (or cannot ever). */
  readonly ready: Promise<void>;
  /** Stop the thread. */
  stop(): void;
}

/** Start an index thread now (before fetching the bytes: it loads its modules meanwhile). */
export function startIndexer(): Indexer {
  return new IndexerThread();
}

class IndexerThread implements Indexer {
  private worker: Worker | null = null;
  private online = false;
  failure: string | null = null;
  built = false;
  readonly ready: Promise<void>;
  private settleReady: () => void = () => {};

  constructor() {
    this.ready = new Promise<void>((resolve) => (this.settleReady = resolve));
    try {
      const { target, eval: isEval } = workerTarget(import.meta.url);
      this.worker = new Worker(target, { eval: isEval, workerData: { [INDEXER]: true } });
    } catch (err) {
      this.failure = `the index thread did not start: ${(err as Error).message}`;
      this.settleReady();
      return;
    }
    this.worker.on("message", (m: unknown) => {
      if (m === "ready") this.online = true;
      this.settleReady();
    });
    this.worker.on("error", (err: Error) => {
      this.failure ??= `the index thread failed: ${err.message}`;
      this.online = false;
      this.settleReady();
    });
    this.worker.on("exit", (code: number) => {
      this.failure ??= `the index thread exited (code ${code})`;
      this.online = false;
      this.settleReady();
    });
  }

  tablesFor(ids: PackedIds, n: number): (() => IdTables | null) | null {
    const w = this.worker;
    const parts = ids.shared();
    if (w === null || !this.online || parts === null) {
      this.failure ??=
        w === null ? "no index thread" : !this.online ? "the index thread was not ready" : "the ids are not in shared memory";
      this.stop();
      return null;
    }
    const status = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    w.postMessage({ bytes: parts.bytes, start: parts.start, n, status, port: port2 } satisfies IndexRequest, [port2]);
    return () => {
      const woke = Atomics.wait(status, 0, RUNNING, WAIT_MS);
      const state = Atomics.load(status, 0);
      // Read on this thread while it waits (no turn of the event loop): the tables come back in
      // buffers of their own, not shared memory, where the tail's lookups ran ~0.3-0.6 s slower
      // over 0.5M events (3 runs each way, 2026-12-05).
      const reply = state === DONE ? (receiveMessageOnPort(port1)?.message as IdTables | undefined) : undefined;
      port1.close();
      this.stop();
      if (reply !== undefined && reply.slots instanceof Int32Array && reply.hashes instanceof Int32Array) {
        this.built = true;
        return reply;
      }
      // A duplicate: the tables are not usable, and IdIndex, built here, refuses the snapshot
      // with the same error (it finds the same duplicate).
      if (state === DUPLICATE) return null;
      this.failure =
        woke === "timed-out"
          ? `the index thread did not finish within ${WAIT_MS} ms`
          : state === DONE
            ? "the index thread's tables did not arrive"
            : "the index thread failed";
      return null;
    };
  }

  stop(): void {
    const w = this.worker;
    this.settleReady();
    if (w === null) return;
    this.worker = null;
    this.online = false;
    w.removeAllListeners();
    w.on("error", () => {});
    w.terminate().catch(() => {});
  }
}

// ---- the worker ---------------------------------------------------------------------------------

if (parentPort !== null && (workerData as Record<string, unknown> | null)?.[INDEXER] === true) {
  const port = parentPort;
  port.once("message", ({ bytes, start, n, status, port: out }: IndexRequest) => {
    let state = FAILED;
    try {
      const slots = new Int32Array(idSlots(n));
      const hashes = new Int32Array(n);
      hashIdsInto(bytes, start, n, hashes);
      const dup = fillIdSlots(hashes, n, slots, (p, q) => sameIdBytes(bytes, start, p, q));
      if (dup < 0) out.postMessage({ slots, hashes } satisfies IdTables, [slots.buffer, hashes.buffer]);
      state = dup < 0 ? DONE : DUPLICATE;
    } finally {
      Atomics.store(status, 0, state);
      Atomics.notify(status, 0);
    }
  });
  port.postMessage("ready");
}
