// `npm run bench -- replay`: how fast a scheduler rebuilds its state from the log.
//
// A 1M-event log of a realistic mix (src/sim/synthetic.ts: 200 agents, ~3,800 jobs, ~240k tasks;
// task lifecycle events dominate) in records of up to 1,000 events (what group commit writes
// under load).
//   foldEventsPerSec           fold from memory (events already decoded), median of 5
//   jetstreamReadEventsPerSec  read from a JetStream R1 stream, decode and fold, median of 5
//   naiveEventsPerSec          the anchor (bench/support/naive.ts): the library's ordered consumer,
//                              unpack, a count per type; run back to back with each Roost read
//   jetstreamReadVsNaive       median over runs of (Roost's read rate / the naive rate of the same
//                              run): a ratio that holds on a slow day and a fast one (goal ≥ 1.0)
//   foldDecodedEventsPerSec    the fold alone, of the records as the read decodes them (each decoded
//                              untimed, then folded timed, record by record; median of 3). Slower
//                              than foldEventsPerSec: the generator's events carry the very id
//                              strings the state stores, and decoded ones are new strings
//   foldDecodedVsNaive         foldDecodedEventsPerSec / naiveEventsPerSec: what a read whose fetch
//                              and decode cost nothing (done on another core, say) would reach
//                              with this fold, so what a faster read alone can buy
// Every entry of the task table is made before timing (a one-off ~0.2 s, reported apart as
// tableCompileMs; a scheduler makes only the entries its log needs, as it first needs them).

import { Appender } from "../src/eventlog/appender.js";
import { decodeRecord, type AnyEnvelope } from "../src/eventlog/envelope.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { warmTaskTable } from "../src/statemachines/taskTable.js";
import { naiveRead } from "./support/naive.js";
import { median } from "./support/stats.js";

const EVENTS = Number(process.env.ROOST_BENCH_EVENTS ?? 1_000_000);
const PER_RECORD = 1000;
const STREAM = "REPLAYBENCH";
/** Read runs, each a Roost read and a naive read back to back (ROOST_BENCH_RUNS, default 5). */
const RUNS = Number(process.env.ROOST_BENCH_RUNS ?? 5);
const round2 = (x: number) => Math.round(x * 100) / 100;

const note = (msg: string) => process.stderr.write(`replay: ${msg}\n`);

export default async function replayBench(): Promise<Record<string, number | string>> {
  let t = performance.now();
  warmTaskTable();
  const tableCompileMs = performance.now() - t;

  let records: AnyEnvelope[][] = [...syntheticLog({ seed: 20261121, events: EVENTS, eventsPerRecord: PER_RECORD })];
  const events = records.reduce((n, r) => n + r.length, 0);
  note(`${events} events in ${records.length} records`);

  const foldRates: number[] = [];
  let tasks = 0;
  for (let run = 0; run < 5; run++) {
    const state = new ClusterState();
    t = performance.now();
    for (let i = 0; i < records.length; i++) foldRecord(state, i + 1, records[i]!);
    const ms = performance.now() - t;
    foldRates.push((state.eventCount / ms) * 1000);
    tasks = state.tasks.size;
    if (state.anomalies.length) throw new Error(`fold anomalies: ${JSON.stringify(state.anomalies.slice(0, 3))}`);
    note(`fold run ${run + 1}: ${Math.round(foldRates[run]!)} events/s`);
  }

  const server = await startNatsServer();
  try {
    const log = await openJetStreamLog({ servers: server.url, stream: STREAM, replicas: 1 });
    const appender = new Appender(log, { lastSeq: 0, writerId: "bench", maxEventsPerRecord: PER_RECORD });
    t = performance.now();
    await Promise.all(records.map((r) => appender.append(r)));
    note(`wrote ${await log.lastSeq()} records in ${Math.round(performance.now() - t)} ms`);
    // A scheduler starting up holds only the log it reads: drop the in-memory copy.
    const nRecords = records.length;
    records = [];
    const lastSeq = await log.lastSeq();
    const readRates: number[] = [];
    const naiveRates: number[] = [];
    const ratios: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      // Back to back, alternating which goes first, so a slow moment of the machine lands on both.
      const roost = async () => {
        const state = new ClusterState();
        const t0 = performance.now();
        for await (const r of log.read(1)) foldRecord(state, r.seq, r.events);
        return (state.eventCount / (performance.now() - t0)) * 1000;
      };
      const naive = async () => {
        const n = await naiveRead(server.url, STREAM, lastSeq);
        if (n.events !== events) throw new Error(`naive read saw ${n.events} events, not ${events}`);
        return n.eventsPerSec;
      };
      let r: number;
      let n: number;
      if (run % 2 === 0) {
        r = await roost();
        n = await naive();
      } else {
        n = await naive();
        r = await roost();
      }
      readRates.push(r);
      naiveRates.push(n);
      ratios.push(r / n);
      note(
        `run ${run + 1}: roost read+decode+fold ${Math.round(r)} events/s, naive consume+unpack+count ${Math.round(n)} events/s: ${(r / n).toFixed(2)}`,
      );
    }
    // Decode alone, for the breakdown.
    const raw: Uint8Array[] = [];
    for await (const r of log.readRaw(1)) raw.push(r.data);
    t = performance.now();
    let n = 0;
    for (const b of raw) n += decodeRecord(b).length;
    const decodeEventsPerSec = (n / (performance.now() - t)) * 1000;
    // The fold alone, of decoded records.
    const decodedRates: number[] = [];
    for (let run = 0; run < 3; run++) {
      const state = new ClusterState();
      let ms = 0;
      for (let i = 0; i < raw.length; i++) {
        const events = decodeRecord(raw[i]!);
        const t0 = performance.now();
        foldRecord(state, i + 1, events);
        ms += performance.now() - t0;
      }
      decodedRates.push((state.eventCount / ms) * 1000);
    }
    const foldDecodedEventsPerSec = median(decodedRates);
    await log.close();
    return {
      jetstreamReadVsNaive: round2(median(ratios)),
      jetstreamReadVsNaiveRuns: ratios.map(round2).join(","),
      foldDecodedVsNaive: round2(foldDecodedEventsPerSec / median(naiveRates)),
      naiveEventsPerSec: Math.round(median(naiveRates)),
      foldEventsPerSec: Math.round(median(foldRates)),
      foldDecodedEventsPerSec: Math.round(foldDecodedEventsPerSec),
      jetstreamReadEventsPerSec: Math.round(median(readRates)),
      decodeEventsPerSec: Math.round(decodeEventsPerSec),
      events,
      records: nRecords,
      tasks,
      tableCompileMs: Math.round(tableCompileMs),
      foldRuns: foldRates.map(Math.round).join(","),
      readRuns: readRates.map(Math.round).join(","),
      naiveRuns: naiveRates.map(Math.round).join(","),
    };
  } finally {
    await server.stop();
  }
}
