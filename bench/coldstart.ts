// `npm run bench -- coldstart`: how fast a scheduler starts from a snapshot plus the log's tail.
//
// A log of ROOST_BENCH_EVENTS events (default 10,000,000) of the realistic mix
// (src/sim/synthetic.ts, as bench/replay.ts: ~240k tasks per million events, since a state keeps
// every task ever created) is written to a JetStream R1 stream in records of ~1,000 events,
// streaming: each record is generated, appended (pipelined group commit) and folded as it
// commits, so only the state and the records on the wire are in memory. At ~95% of the log the
// folded state is written to the object store as a snapshot; the rest of the log is its tail.
// Then, with the writer's state dropped, ROOST_BENCH_RUNS (default 3) cold starts, each in a fresh
// process (support/coldStartOnce.ts: a scheduler starts cold, not beside a writer's garbage with
// its fold already optimized); figures are medians over them, with every run's value alongside:
//   coldStartMs           coldStart(): newest snapshot fetched, its body digest checked and its
//                         columns decoded (tasks stay columns until used: src/replay/taskMap.ts),
//                         the tail read from JetStream and folded. The state hash is not recomputed:
//                         the writer checked these bytes before storing them (SNAPSHOT_CODEC)
//   coldStart10MEventsMs  the same figure, named for the goal, when the log has ≥ 10M events
//   coldStartRunsMs, snapshotDecodeRunsMs, tailRunsMs   every run's figure, in order
//   heapAfterStartBytes   the heap when the cold start returned
//   heapAfterWarmBytes    the heap after every row was built, after GC (the whole state as objects)
//   snapshotLoadMs        of which: finding, fetching and decoding the snapshot
//   snapshotFetchMs, snapshotDecodeMs   ... split (decoding includes the state hash check only
//                         when it ran inline)
//   snapshotVerify        where the check ran: "writer" (the writer's check taken, body digest
//                         checked), "worker" or "inline"
//   snapshotWriterCheckMs the writer's check before storing (decode + state hash, in a worker)
//   coldRowsAfterStart, tasksWarmMs   task rows still columns when the cold start returned, and
//                         building them all after it (the scheduler does it in the background);
//                         every cold-started state is then checked against the writer's (state hash)
//   snapshotVerifyMs      how long the check took on its thread (in the worker: decode + hash)
//   snapshotVerifyWaitMs  how long the main thread waited for the worker's verdict after the tail
//   snapshotCopyMs        placing the bytes where the worker reads them (0: fetched into shared
//                         memory)
//   snapshotIndexBy       where each run built the task id index: "thread" (src/storage/
//                         indexWorker.ts, while the main thread decoded the rest) or "here"
//   tailMs, tailRecords, tailEvents
//   snapshotBytes, snapshotEncodeMs, snapshotWriteMs (the writer's side)
//   coldStartInlineCheckMs  for comparison, a cold start in the bench's own process with the state
//                         hash checked inline (decode + hash, then the tail, all on the main
//                         thread: the check a build of another codec makes)
//   foldFromGenesisMs     coldStart() without a snapshot, for comparison (only ≤ 2M events)
//   naiveEventsPerSec     the day's anchor, run right after the cold start: bench replay's naive
//                         read (bench/support/naive.ts) over the log's first ~1M events. The goal
//                         (coldStart10MEventsMs ≤ 10 s) is for a day when it reads ≥ 200k/s
// The cold-started state is checked against the writer's state (state hash) before reporting.
//
// Memory: a state keeps every task, so 10M events hold ~2.4M tasks; the writer's state needs
// ~4.5 GB of heap, more than Node's default limit on most machines:
//   NODE_OPTIONS=--max-old-space-size=12000 npm run bench -- coldstart
// Writing the log (generate, append, fold) takes ~13 minutes at 10M on 2 cores.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Appender } from "../src/eventlog/appender.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { SnapshotStore } from "../src/storage/snapshotStore.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { coldStart } from "../src/storage/coldStart.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { SCHEDULER_NODE_FLAGS } from "../src/cli/nodeFlags.js";
import { warmTaskTable } from "../src/statemachines/taskTable.js";
import { naiveRead } from "./support/naive.js";
import { median } from "./support/stats.js";
import { gc } from "./support/gc.js";

interface ColdRun {
  ms: number;
  fromSnapshot: string | null;
  skipped: number;
  snapshotLoadMs: number;
  snapshotFetchMs: number;
  snapshotDecodeMs: number;
  snapshotVerify: string;
  snapshotVerifyMs: number;
  snapshotVerifyWaitMs: number;
  snapshotCopyMs: number;
  snapshotIndexBy: string;
  snapshotIndexFailure: string;
  snapshotBytes: number;
  snapshotSeq: number;
  tailMs: number;
  tailRecords: number;
  tailEvents: number;
  heapAfterStart: number;
  coldRows: number;
  warmMs: number;
  heapAfterWarm: number;
  stateHash: string;
}

/** One cold start in a fresh `node` (support/coldStartOnce.ts); its JSON line. */
function coldStartInChild(url: string, stream: string, bucket: string): Promise<ColdRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--max-old-space-size=8000", ...SCHEDULER_NODE_FLAGS, ONCE_JS, url, stream, bucket],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`the cold start's process exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!) as ColdRun);
      } catch (err) {
        reject(new Error(`the cold start's process printed no result: ${(err as Error).message}`));
      }
    });
  });
}

const EVENTS = Number(process.env.ROOST_BENCH_EVENTS ?? 10_000_000);
const PER_RECORD = 1000;
const SNAPSHOT_AT = 0.95;
const GENESIS_MAX_EVENTS = 2_000_000;
/** Records appended but not yet committed, at most. */
const WINDOW = 64;

/** Cold starts measured, each in a fresh process (ROOST_BENCH_RUNS, default 3). */
const RUNS = Math.max(1, Number(process.env.ROOST_BENCH_RUNS ?? 3));
const ONCE_JS = fileURLToPath(new URL("./support/coldStartOnce.js", import.meta.url));

const note = (msg: string) => process.stderr.write(`coldstart: ${msg}\n`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

export default async function coldStartBench(): Promise<Record<string, number | string>> {
  warmTaskTable();
  const server = await startNatsServer();
  try {
    const log = await openJetStreamLog({ servers: server.url, stream: "COLDSTARTBENCH", replicas: 1 });
    const store = await SnapshotStore.forLog(log, { bucket: "coldstart_bench" });

    // ---- write the log, folding as it commits; snapshot at ~95% ----------------------------
    let writer: ClusterState | null = new ClusterState();
    const appender = new Appender(log, {
      lastSeq: 0,
      writerId: "coldstart-bench",
      maxEventsPerRecord: PER_RECORD,
      onCommit: (seq, events) => foldRecord(writer!, seq, events),
    });
    const window: Promise<number>[] = [];
    let generated = 0;
    let nextNote = 1_000_000;
    let snap: Awaited<ReturnType<SnapshotStore["put"]>> | null = null;
    const t0 = performance.now();
    for (const record of syntheticLog({ seed: 20261121, events: EVENTS, eventsPerRecord: PER_RECORD })) {
      window.push(appender.append(record));
      generated += record.length;
      if (window.length >= WINDOW) await window.shift();
      if (generated >= nextNote) {
        note(`${generated} events written (${Math.round((performance.now() - t0) / 1000)} s, heap ${mib(process.memoryUsage().heapUsed)})`);
        nextNote += 1_000_000;
      }
      if (snap === null && generated >= EVENTS * SNAPSHOT_AT) {
        await Promise.all(window.splice(0));
        snap = await store.put(writer);
        note(
          `snapshot ${snap.name}: ${writer.tasks.size} tasks, ${mib(snap.size)}, encoded in ${Math.round(snap.encodeMs)} ms, checked in ${Math.round(snap.checkMs)} ms, stored in ${Math.round(snap.writeMs)} ms`,
        );
      }
    }
    await Promise.all(window.splice(0));
    const writeMs = performance.now() - t0;
    if (snap === null) throw new Error("no snapshot was taken");
    if (writer.anomalies.length) throw new Error(`fold anomalies: ${JSON.stringify(writer.anomalies.slice(0, 3))}`);
    const expected = stateHash(writer);
    const records = writer.seq;
    const events = writer.eventCount;
    const tasks = writer.tasks.size;
    note(`log: ${events} events in ${records} records, ${tasks} tasks, written and folded in ${Math.round(writeMs / 1000)} s`);
    writer = null; // a starting scheduler holds nothing but what it loads
    gc();

    // ---- cold starts: snapshot + tail, each in a fresh process (support/coldStartOnce.ts) ------
    const runs: ColdRun[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await coldStartInChild(server.url, "COLDSTARTBENCH", "coldstart_bench");
      if (r.fromSnapshot !== snap.name) throw new Error(`cold start used ${r.fromSnapshot}, not ${snap.name} (${r.skipped} skipped)`);
      if (r.stateHash !== expected) throw new Error(`cold-started state ${r.stateHash} differs from the writer's ${expected}`);
      note(
        `cold start ${i + 1}/${RUNS}: ${Math.round(r.ms)} ms (snapshot ${Math.round(r.snapshotLoadMs)} ms: fetch ${Math.round(r.snapshotFetchMs)}, decode ${Math.round(r.snapshotDecodeMs)}; ` +
          `tail of ${r.tailRecords} records / ${r.tailEvents} events ${Math.round(r.tailMs)} ms; ` +
          `check ${r.snapshotVerify} ${Math.round(r.snapshotVerifyMs)} ms, waited ${Math.round(r.snapshotVerifyWaitMs)} ms; id index built ${r.snapshotIndexBy === "thread" ? "in a thread" : `here${r.snapshotIndexFailure ? ` (${r.snapshotIndexFailure})` : ""}`}), heap ${mib(r.heapAfterStart)}; ` +
          `then the ${r.coldRows} rows left as columns built in ${Math.round(r.warmMs)} ms (the scheduler does it in the background), heap then ${mib(r.heapAfterWarm)}`,
      );
      runs.push(r);
    }
    const med = (f: (r: ColdRun) => number) => Math.round(median(runs.map(f)));
    const each = (f: (r: ColdRun) => number) => runs.map((r) => Math.round(f(r))).join(",");
    const first = runs[0]!;
    const result: Record<string, number | string> = {
      coldStartMs: med((r) => r.ms),
      ...(events >= 10_000_000 ? { coldStart10MEventsMs: med((r) => r.ms) } : {}),
      coldStartRunsMs: each((r) => r.ms),
      snapshotLoadMs: med((r) => r.snapshotLoadMs),
      snapshotFetchMs: med((r) => r.snapshotFetchMs),
      snapshotDecodeMs: med((r) => r.snapshotDecodeMs),
      snapshotDecodeRunsMs: each((r) => r.snapshotDecodeMs),
      snapshotVerify: first.snapshotVerify,
      snapshotVerifyMs: med((r) => r.snapshotVerifyMs),
      snapshotVerifyWaitMs: med((r) => r.snapshotVerifyWaitMs),
      snapshotCopyMs: med((r) => r.snapshotCopyMs),
      snapshotIndexBy: runs.map((r) => r.snapshotIndexBy).join(","),
      tailMs: med((r) => r.tailMs),
      tailRunsMs: each((r) => r.tailMs),
      tailRecords: first.tailRecords,
      tailEvents: first.tailEvents,
      snapshotBytes: first.snapshotBytes,
      snapshotSeq: first.snapshotSeq,
      snapshotEncodeMs: Math.round(snap.encodeMs),
      snapshotWriteMs: Math.round(snap.writeMs),
      snapshotWriterCheckMs: Math.round(snap.checkMs),
      heapAfterStartBytes: med((r) => r.heapAfterStart),
      heapAfterWarmBytes: med((r) => r.heapAfterWarm),
      coldRowsAfterStart: first.coldRows,
      tasksWarmMs: med((r) => r.warmMs),
      events,
      records,
      tasks,
      writeAndFoldMs: Math.round(writeMs),
      stateHashChecked: "yes",
    };

    // ---- the day's anchor: bench replay's naive read, here, over the log's first ~1M events ----
    const anchor = await naiveRead(server.url, "COLDSTARTBENCH", Math.min(records, Math.ceil(1_000_000 / PER_RECORD)));
    result.naiveEventsPerSec = Math.round(anchor.eventsPerSec);
    note(
      `naive anchor: ${Math.round(anchor.eventsPerSec)} events/s over ${anchor.events} events (the goal holds on a day it reads ≥ 200k/s)`,
    );

    // ---- for comparison: the same cold start with the check inline ---------------------------
    const inline = await coldStart(log, store, { verify: "inline" });
    if (inline.fromSnapshot !== snap.name || stateHash(inline.state) !== expected)
      throw new Error("the cold start with the check inline differs");
    result.coldStartInlineCheckMs = Math.round(inline.ms);
    note(
      `cold start, check inline: ${Math.round(inline.ms)} ms (fetch ${Math.round(inline.snapshotFetchMs)}, decode + check ${Math.round(inline.snapshotDecodeMs)}, tail ${Math.round(inline.tailMs)})`,
    );
    inline.state = new ClusterState();
    gc();

    // ---- for comparison: the whole log from genesis (only for small logs) ---------------------
    if (events <= GENESIS_MAX_EVENTS) {
      const g = await coldStart(log);
      if (stateHash(g.state) !== expected) throw new Error("the fold from genesis differs from the writer's state");
      result.foldFromGenesisMs = Math.round(g.ms);
      note(`fold from genesis: ${Math.round(g.ms)} ms`);
    }
    await log.close();
    return result;
  } finally {
    await server.stop();
  }
}
