// Fenced, group-committed appends to a JetStream R1 stream through the Appender.
//
// Starts its own nats-server in a temp dir; each run appends ROOST_BENCH_EVENTS (default 1,000,000)
// realistic events (TaskStateChanged / TaskAssigned envelopes, ~150 B payloads) issued as small
// requests of 1–10 events, at most ROOST_BENCH_WINDOW events outstanding, so group commit batches
// them. Each run uses a fresh stream. Reports the median of ROOST_BENCH_RUNS runs (default 5).
// Tunables: ROOST_BENCH_MAX_EVENTS (maxEventsPerRecord), ROOST_BENCH_MAX_INFLIGHT (maxInFlight),
// ROOST_BENCH_FRESH_EVENTS=1 (build every event inside the timed loop instead of using the pool).

import { Appender } from "../src/eventlog/appender.js";
import { makeEnvelope, type AnyEnvelope } from "../src/eventlog/envelope.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { Rng } from "../src/sim/rng.js";
import type { TaskStateName } from "../src/statemachines/taskStates.js";
import { asAgentId, asTaskId } from "../src/domain/types.js";
import { median } from "./support/stats.js";

const env = (k: string, d: number): number => {
  const v = process.env[k];
  return v === undefined || v === "" ? d : Number(v);
};

const STATES: TaskStateName[] = ["ASSIGNED", "STARTING", "RUNNING", "FINISHED", "FAILED", "KILLING", "KILLED", "LOST"];
const JOBS = ["www-data/prod/hello", "www-data/prod/frontend", "batch/devel/reindex", "infra/prod/log-shipper"];

function makeEvent(i: number, r: () => number): AnyEnvelope {
  const job = JOBS[i & 3];
  const taskId = asTaskId(`${job}/${i % 500}-${(0x10000000 + ((i * 2654435761) >>> 4)).toString(16)}-${(i >>> 9).toString(36)}`);
  const meta = { epoch: 7, ts: 1_760_000_000_000 + i, corr: `req-${(i >>> 3).toString(36)}`, reason: "agent status update" };
  if (r() < 0.3) {
    const agent = asAgentId(`agent-${i % 97}`);
    return makeEnvelope(
      "TaskAssigned",
      { taskId, agentId: agent, host: `${agent}.dc1.example.net`, ports: { http: 31000 + (i % 1000), admin: 32000 + (i % 1000) } },
      { ...meta, reason: "placement: best fit" },
    );
  }
  return makeEnvelope(
    "TaskStateChanged",
    { taskId, to: STATES[i % STATES.length]!, agentSeq: (i % 50) + 1, message: "status from agent" },
    meta,
  );
}

// Events are built before the clock starts (a pool of distinct envelopes, reused cyclically): the
// bench measures the append path (group commit, encoding, publish, ack), not event construction.
const POOL_SIZE = 1 << 16;
const POOL_MASK = POOL_SIZE - 1;
let poolCache: AnyEnvelope[] | null = null;
function eventPool(): AnyEnvelope[] {
  if (poolCache) return poolCache;
  const rand = new Rng(7);
  const r = () => rand.next();
  const pool = new Array<AnyEnvelope>(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = makeEvent(i, r);
  return (poolCache = pool);
}

interface RunResult {
  seconds: number;
  events: number;
  records: number;
}

async function oneRun(url: string, stream: string, totalEvents: number, window: number): Promise<RunResult> {
  const log = await openJetStreamLog({ servers: url, stream });
  try {
    const base = await log.lastSeq();
    const appender = new Appender(log, {
      lastSeq: base,
      writerId: `bench-${stream}`,
      maxEventsPerRecord: env("ROOST_BENCH_MAX_EVENTS", 1000),
      maxInFlight: env("ROOST_BENCH_MAX_INFLIGHT", 32),
    });
    const rand = new Rng(42);
    const r = () => rand.next();
    const fresh = env("ROOST_BENCH_FRESH_EVENTS", 0) === 1;
    const pool = fresh ? [] : eventPool();
    let issued = 0;
    let outstanding = 0;
    let committedEvents = 0;
    let failure: unknown = null;
    let wake: (() => void) | null = null;
    const t0 = performance.now();
    while (issued < totalEvents && failure === null) {
      // A burst of requests per tick, like a busy scheduler turning many inputs into decisions.
      for (let k = 0; k < 2000 && issued < totalEvents && outstanding < window; k++) {
        const n = Math.min(1 + Math.floor(r() * 10), totalEvents - issued);
        const events = new Array<AnyEnvelope>(n);
        if (fresh) for (let j = 0; j < n; j++) events[j] = makeEvent(issued + j, r);
        else for (let j = 0; j < n; j++) events[j] = pool[(issued + j) & POOL_MASK]!;
        issued += n;
        outstanding += n;
        appender.append(events).then(
          () => {
            outstanding -= n;
            committedEvents += n;
            if (wake !== null && outstanding <= window / 2) {
              const w = wake;
              wake = null;
              w();
            }
          },
          (err: unknown) => {
            failure ??= err;
            if (wake !== null) {
              const w = wake;
              wake = null;
              w();
            }
          },
        );
      }
      if (outstanding >= window) await new Promise<void>((res) => (wake = res));
      else await new Promise<void>((res) => setImmediate(res));
    }
    await appender.flush();
    const seconds = (performance.now() - t0) / 1000;
    if (failure !== null) throw failure;
    const last = await log.lastSeq();
    if (committedEvents !== totalEvents || last - base !== appender.committedRecords) {
      throw new Error(
        `bench invariant: committed ${committedEvents}/${totalEvents} events, ` +
          `${appender.committedRecords} records but the stream grew by ${last - base}`,
      );
    }
    return { seconds, events: committedEvents, records: appender.committedRecords };
  } finally {
    // Free the disk and the server's memory before the next run.
    await log.close();
  }
}

export default async function appendBench(): Promise<Record<string, number | string>> {
  const totalEvents = env("ROOST_BENCH_EVENTS", 1_000_000);
  const runs = env("ROOST_BENCH_RUNS", 5);
  const window = env("ROOST_BENCH_WINDOW", 100_000);
  const server = await startNatsServer();
  const results: RunResult[] = [];
  try {
    for (let i = 1; i <= runs; i++) {
      const stream = `BENCH_APPEND_${i}`;
      const res = await oneRun(server.url, stream, totalEvents, window);
      results.push(res);
      process.stderr.write(
        `append run ${i}/${runs}: ${res.events} events in ${res.records} records, ${res.seconds.toFixed(2)} s, ` +
          `${Math.round(res.events / res.seconds)} events/s\n`,
      );
      await deleteStream(server.url, stream);
    }
  } finally {
    await server.stop();
  }
  const eps = results.map((r) => r.events / r.seconds);
  const rps = results.map((r) => r.records / r.seconds);
  const events = results.reduce((a, r) => a + r.events, 0);
  const records = results.reduce((a, r) => a + r.records, 0);
  return {
    appendEventsPerSec: Math.round(median(eps)),
    appendRecordsPerSec: Math.round(median(rps)),
    eventsPerRecord: Math.round((events / records) * 10) / 10,
    appendEventsPerSecMin: Math.round(Math.min(...eps)),
    appendEventsPerSecMax: Math.round(Math.max(...eps)),
    eventsPerRun: totalEvents,
    runs,
    storage: "file R1",
    events: env("ROOST_BENCH_FRESH_EVENTS", 0) === 1 ? "built in loop" : "prebuilt pool",
  };
}

async function deleteStream(url: string, stream: string): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.delete(stream);
  } finally {
    await nc.close();
  }
}
