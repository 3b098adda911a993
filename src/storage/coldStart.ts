// A cold start: the newest usable snapshot plus the log after it, or the whole log.
//
// The snapshot must cover a sequence the log holds (seq ≤ the log's last) and, when its header
// names one, be of the log's stream; snapshots that do not decode to their recorded state hash
// are skipped (and reported), falling back to an older one and finally to folding from genesis.
// Either way the result is the fold of the log.
//
// A snapshot of this build's codec was checked by the build that stored it (SNAPSHOT_CODEC in
// src/replay/snapshot.ts): only its body digest is compared, and its tasks decoded as columns. For
// a large snapshot of another codec the state hash is checked in a worker thread (src/storage/verifyWorker.ts)
// while this thread decodes the same bytes unchecked and folds the tail; the verdict is awaited
// before returning. If it says the snapshot is not what was written, the state folded on from it
// is dropped and the cold start goes on exactly as if the snapshot had failed inline: from the
// next older snapshot, or genesis, folding the tail again.

import type { EventLog } from "../eventlog/log.js";
import type { LoadedSnapshot, SkippedSnapshot, SnapshotSource, VerifyWhere } from "./snapshotStore.js";
import { foldRecord } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";

export interface ColdStartOptions {
  /**
   * Where the snapshot's state hash is checked: "worker", in a worker thread while this thread
   * decodes and folds the tail; "inline", before the tail; "auto" (default), the worker for large
   * snapshots only (see WORKER_MIN_BYTES in src/storage/snapshotStore.ts).
   */
  verify?: VerifyWhere;
}

export interface ColdStartResult {
  state: ClusterState;
  /** Name of the snapshot the state started from; null when folded from genesis. */
  fromSnapshot: string | null;
  /** Sequence the snapshot covered (0 from genesis). */
  snapshotSeq: number;
  /** Records folded after the snapshot. */
  tailRecords: number;
  /** Events in those records. */
  tailEvents: number;
  /** Snapshots passed over, newest first, with why (a store that could not be read is one too;
   *  so is one whose deferred check failed after its tail was folded). */
  skipped: SkippedSnapshot[];
  /** Snapshot bytes loaded (0 without one). */
  snapshotBytes: number;
  /** Time to find, fetch and decode the snapshot, ms (0 without a store), over every attempt... */
  snapshotLoadMs: number;
  /** ...of which fetching the bytes of the one used, and decoding them (the hash check included
   *  when it ran inline). */
  snapshotFetchMs: number;
  snapshotDecodeMs: number;
  /** Where the state hash of the snapshot used was checked (null without one). "inline" also when
   *  the worker failed (not: rejected the snapshot) and the check ran here instead; "writer": by
   *  the build that stored it, of this codec (only the body digest is checked here). */
  snapshotVerify: "inline" | "worker" | "writer" | null;
  /** How long that check took on the thread it ran on (in a worker: its decode and hash), ms. */
  snapshotVerifyMs: number;
  /** How long this thread waited for the worker's verdict after folding the tail, ms. */
  snapshotVerifyWaitMs: number;
  /** Time to place the bytes where the worker reads them (0: fetched into shared memory), ms. */
  snapshotCopyMs: number;
  /** Where the snapshot's task id index was built ("thread": src/storage/indexWorker.ts; null
   *  without a snapshot), and why not in the thread when it was asked to and could not. */
  snapshotIndexBy: "thread" | "here" | null;
  snapshotIndexFailure: string | null;
  /** Time to read and fold the tail, ms (over every attempt). */
  tailMs: number;
  /** Wall time of the whole cold start, ms. */
  ms: number;
}

export async function coldStart(log: EventLog, store?: SnapshotSource, opts: ColdStartOptions = {}): Promise<ColdStartResult> {
  const t0 = performance.now();
  const last = await log.lastSeq();
  const stream = log.stream;
  const skipped: SkippedSnapshot[] = [];
  let snapshotLoadMs = 0;
  let tailMs = 0;
  let snapshotVerifyWaitMs = 0;
  /** After a deferred check failed: only snapshots older than that one. */
  let below = Number.POSITIVE_INFINITY;
  for (;;) {
    const t1 = performance.now();
    let loaded: LoadedSnapshot | null = null;
    if (store) {
      try {
        const report = await store.loadNewestReport(last, { verify: opts.verify ?? "auto", stream, below });
        skipped.push(...report.skipped);
        loaded = report.loaded;
      } catch (err) {
        // The store itself failed (unreachable, no bucket): the log alone still gives the state.
        skipped.push({ name: "(snapshot store)", error: (err as Error).message });
      }
    }
    const state = loaded?.state ?? new ClusterState();
    const snapshotSeq = loaded?.seq ?? 0;
    const t2 = performance.now();
    snapshotLoadMs += t2 - t1;
    let tailRecords = 0;
    let tailEvents = 0;
    try {
      if (last > snapshotSeq) {
        for await (const r of log.read(snapshotSeq + 1)) {
          foldRecord(state, r.seq, r.events);
          tailRecords++;
          tailEvents += r.events.length;
        }
      }
    } catch (err) {
      loaded?.cancelVerify();
      throw err;
    }
    const t3 = performance.now();
    tailMs += t3 - t2;
    let verdict = null;
    if (loaded) {
      try {
        verdict = await loaded.verified;
      } catch (err) {
        // Not the state that was written: neither is anything folded onto it. As if it had
        // failed inline: the next older snapshot, or genesis, and the tail folded again.
        snapshotVerifyWaitMs += performance.now() - t3;
        skipped.push({ name: loaded.name, error: (err as Error).message });
        below = loaded.seq;
        continue;
      }
    }
    const t4 = performance.now();
    snapshotVerifyWaitMs += t4 - t3;
    return {
      state,
      fromSnapshot: loaded?.name ?? null,
      snapshotSeq,
      tailRecords,
      tailEvents,
      skipped,
      snapshotBytes: loaded?.bytes ?? 0,
      snapshotLoadMs,
      snapshotFetchMs: loaded?.fetchMs ?? 0,
      snapshotDecodeMs: loaded?.decodeMs ?? 0,
      snapshotVerify: verdict?.by ?? null,
      snapshotVerifyMs: verdict?.ms ?? 0,
      snapshotVerifyWaitMs,
      snapshotCopyMs: loaded?.copyMs ?? 0,
      snapshotIndexBy: loaded?.indexBuiltBy ?? null,
      snapshotIndexFailure: loaded?.indexFailure ?? null,
      tailMs,
      ms: t4 - t0,
    };
  }
}
