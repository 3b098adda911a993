// One cold start in a process of its own, for bench/coldstart.ts:
//   node --expose-gc <the scheduler's flags, src/cli/nodeFlags.ts> dist/bench/support/coldStartOnce.js URL STREAM BUCKET
// prints one JSON line: the cold start's figures and the state hash after every row is built.
//
// Why a fresh process per run: the bench's own process has just written and folded 10M events,
// and a cold start measured there ran beside the garbage of a 3.5 GiB writer state and with the
// fold's code already optimized. A scheduler that starts cold has neither. One run in that process
// took 9.1, 12.0 and 14.5 s on three days; only several runs, each as a scheduler would start,
// give a median and a spread worth quoting.

import { openJetStreamLog } from "../../src/eventlog/jetstream.js";
import { stateHash } from "../../src/replay/hash.js";
import { coldStart } from "../../src/storage/coldStart.js";
import { SnapshotStore } from "../../src/storage/snapshotStore.js";

async function main(): Promise<void> {
  const [url, stream, bucket] = process.argv.slice(2);
  if (!url || !stream || !bucket) throw new Error("usage: coldStartOnce.js URL STREAM BUCKET");
  // No warmTaskTable(): a scheduler asks the task machine for each table entry as its fold first
  // needs it, and so does this cold start.
  const log = await openJetStreamLog({ servers: url, stream, replicas: 1 });
  try {
    const store = await SnapshotStore.forLog(log, { bucket });
    const r = await coldStart(log, store);
    const heapAfterStart = process.memoryUsage().heapUsed;
    const coldRows = r.state.tasks.coldRows;
    const tw = performance.now();
    r.state.tasks.warm(Number.POSITIVE_INFINITY);
    const warmMs = performance.now() - tw;
    (globalThis as { gc?: () => void }).gc?.();
    const heapAfterWarm = process.memoryUsage().heapUsed;
    const out = {
      ms: r.ms,
      fromSnapshot: r.fromSnapshot,
      skipped: r.skipped.length,
      snapshotLoadMs: r.snapshotLoadMs,
      snapshotFetchMs: r.snapshotFetchMs,
      snapshotDecodeMs: r.snapshotDecodeMs,
      snapshotVerify: r.snapshotVerify ?? "none",
      snapshotVerifyMs: r.snapshotVerifyMs,
      snapshotVerifyWaitMs: r.snapshotVerifyWaitMs,
      snapshotCopyMs: r.snapshotCopyMs,
      snapshotIndexBy: r.snapshotIndexBy ?? "none",
      snapshotIndexFailure: r.snapshotIndexFailure ?? "",
      snapshotBytes: r.snapshotBytes,
      snapshotSeq: r.snapshotSeq,
      tailMs: r.tailMs,
      tailRecords: r.tailRecords,
      tailEvents: r.tailEvents,
      heapAfterStart,
      coldRows,
      warmMs,
      heapAfterWarm,
      stateHash: stateHash(r.state),
    };
    await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(out)}\n`, () => resolve()));
  } finally {
    await log.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`coldStartOnce: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
