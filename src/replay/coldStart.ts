// A cold start: the newest usable snapshot plus the log after it, or the whole log.
//
// The snapshot must cover a sequence the log holds (seq ≤ the log's last); snapshots that do not
// decode to their recorded state hash are skipped (and reported), falling back to an older one
// and finally to folding from genesis. Either way the result is the fold of the log.

import type { EventLog } from "../eventlog/log.js";
import type { SkippedSnapshot, SnapshotSource } from "../eventlog/snapshots.js";
import { foldRecord } from "./fold.js";
import { ClusterState } from "./state.js";

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
  /** Snapshots passed over, newest first, with why (a store that could not be read is one too). */
  skipped: SkippedSnapshot[];
  /** Snapshot bytes loaded (0 without one). */
  snapshotBytes: number;
  /** Time to find, fetch and decode the snapshot, ms (0 without a store)... */
  snapshotLoadMs: number;
  /** ...of which fetching the bytes of the one used, and decoding them (hash check included). */
  snapshotFetchMs: number;
  snapshotDecodeMs: number;
  /** Time to read and fold the tail, ms. */
  tailMs: number;
  /** Wall time of the whole cold start, ms. */
  ms: number;
}

export async function coldStart(log: EventLog, store?: SnapshotSource): Promise<ColdStartResult> {
  const t0 = performance.now();
  const last = await log.lastSeq();
  let state = new ClusterState();
  let fromSnapshot: string | null = null;
  let snapshotSeq = 0;
  let snapshotBytes = 0;
  let snapshotFetchMs = 0;
  let snapshotDecodeMs = 0;
  let skipped: SkippedSnapshot[] = [];
  if (store) {
    try {
      const report = await store.loadNewestReport(last);
      skipped = report.skipped;
      if (report.loaded) {
        state = report.loaded.state;
        fromSnapshot = report.loaded.name;
        snapshotSeq = report.loaded.seq;
        snapshotBytes = report.loaded.bytes;
        snapshotFetchMs = report.loaded.fetchMs;
        snapshotDecodeMs = report.loaded.decodeMs;
      }
    } catch (err) {
      // The store itself failed (unreachable, no bucket): the log alone still gives the state.
      skipped = [{ name: "(snapshot store)", error: (err as Error).message }];
    }
  }
  const t1 = performance.now();
  let tailRecords = 0;
  let tailEvents = 0;
  if (last > snapshotSeq) {
    for await (const r of log.read(snapshotSeq + 1)) {
      foldRecord(state, r.seq, r.events);
      tailRecords++;
      tailEvents += r.events.length;
    }
  }
  const t2 = performance.now();
  return { state, fromSnapshot, snapshotSeq, tailRecords, tailEvents, skipped, snapshotBytes, snapshotLoadMs: t1 - t0, snapshotFetchMs, snapshotDecodeMs, tailMs: t2 - t1, ms: t2 - t0 };
}

/** Is it time for the leader to write a snapshot? Every `every` events (0 or less: never). */
export function shouldSnapshot(state: ClusterState, lastSnapshotEventCount: number, every: number): boolean {
  return every > 0 && state.eventCount - lastSnapshotEventCount >= every;
}
