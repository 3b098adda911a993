// `npm run bench -- replay-at`: how long it takes to show the cluster at an arbitrary moment of a
// long log, as `roost replay --at` and the web UI's time travel do it (history/timeMachine.ts):
// the newest snapshot at or before the moment, fetched, its body digest checked (the writer checked
// its state hash before storing it: SNAPSHOT_CODEC) and its columns decoded, then the records after
// it folded, then the overview the UI's first page shows (summary and a page of jobs).
//
// A log of ROOST_BENCH_EVENTS events (default 10,000,000) of the realistic mix
// (src/sim/synthetic.ts: ~240k tasks per million events, since a state keeps every task) is
// written to a JetStream R1 stream, folded as it commits, with a snapshot every
// ROOST_BENCH_SNAPSHOT_EVERY events (default 100,000, as `roost scheduler --snapshot-every`). Then ROOST_BENCH_SAMPLES moments
// (default 20), drawn from a seeded generator over the whole log, are each shown by a fresh
// HistoryService (nothing cached: a new SRE's first look), and timed.
//   replayAtP50Ms, replayAtP99Ms   the time to show one moment (p99 = max for fewer than 100 samples)
//   replayAtMaxMs, replayAtMinMs
//   snapshots, events, records, tasksAtEnd
//
// Memory: at 10M events the writer's state needs ~4.5 GB of heap:
//   NODE_OPTIONS=--max-old-space-size=12000 npm run bench -- replay-at
// Writing 10M events takes ~13 minutes on 2 cores; ROOST_BENCH_EVENTS=1000000 takes ~1.5.

import { Appender } from "../src/eventlog/appender.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { HistoryService } from "../src/history/service.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { Rng } from "../src/sim/rng.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { warmTaskTable } from "../src/statemachines/taskTable.js";
import { SnapshotStore } from "../src/storage/snapshotStore.js";
import { gc } from "./support/gc.js";

const EVENTS = Number(process.env.ROOST_BENCH_EVENTS ?? 10_000_000);
const SNAPSHOT_EVERY = Number(process.env.ROOST_BENCH_SNAPSHOT_EVERY ?? 100_000);
const SAMPLES = Number(process.env.ROOST_BENCH_SAMPLES ?? 20);
const PER_RECORD = 1000;
const WINDOW = 64;

const note = (msg: string) => process.stderr.write(`replay-at: ${msg}\n`);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

export default async function replayAtBench(): Promise<Record<string, number | string>> {
  warmTaskTable();
  const server = await startNatsServer();
  try {
    const log = await openJetStreamLog({ servers: server.url, stream: "REPLAYATBENCH", replicas: 1 });
    const store = await SnapshotStore.forLog(log, { bucket: "replay_at_bench" });
    let writer: ClusterState | null = new ClusterState();
    const appender = new Appender(log, {
      lastSeq: 0,
      writerId: "replay-at-bench",
      maxEventsPerRecord: PER_RECORD,
      onCommit: (seq, events) => foldRecord(writer!, seq, events),
    });
    const window: Promise<number>[] = [];
    let generated = 0;
    let nextSnapshot = SNAPSHOT_EVERY;
    let snapshots = 0;
    const t0 = performance.now();
    for (const record of syntheticLog({ seed: 20261202, events: EVENTS, eventsPerRecord: PER_RECORD })) {
      window.push(appender.append(record));
      generated += record.length;
      if (window.length >= WINDOW) await window.shift();
      if (generated >= nextSnapshot) {
        await Promise.all(window.splice(0));
        const s = await store.put(writer);
        snapshots++;
        nextSnapshot += SNAPSHOT_EVERY;
        note(`${generated} events; snapshot ${s.name} (${writer.tasks.size} tasks) after ${Math.round((performance.now() - t0) / 1000)} s`);
      }
    }
    await Promise.all(window.splice(0));
    const records = writer.seq;
    const events = writer.eventCount;
    const tasksAtEnd = writer.tasks.size;
    writer = null;
    gc();

    const rng = new Rng(7);
    const times: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const seq = 1 + rng.int(records);
      const h = new HistoryService({ log, store });
      const t1 = performance.now();
      const summary = await h.summary({ at: seq });
      await h.jobs({ at: seq, limit: 50 });
      const ms = performance.now() - t1;
      times.push(ms);
      note(`sample ${i + 1}: sequence ${seq} (${summary.tasks.total} tasks): ${Math.round(ms)} ms`);
      gc();
    }
    const sorted = [...times].sort((a, b) => a - b);
    return {
      replayAtP50Ms: Math.round(quantile(sorted, 0.5)),
      replayAtP99Ms: Math.round(quantile(sorted, 0.99)),
      replayAtMinMs: Math.round(sorted[0]!),
      replayAtMaxMs: Math.round(sorted.at(-1)!),
      samples: SAMPLES,
      snapshots,
      snapshotEvery: SNAPSHOT_EVERY,
      events,
      records,
      tasksAtEnd,
    };
  } finally {
    await server.stop();
  }
}
