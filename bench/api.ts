// `npm run bench -- api`: the front door's figures, against an in-process scheduler on a real
// nats-server (R1, its own temp dir), with no agents (created tasks stay PENDING: this measures the
// API, not placement).
//
//   natsCreateP99Ms      keyed job.create over NATS request/reply, offered at ROOST_BENCH_RATE
//                        (default 200/s) for ROOST_BENCH_CREATES (default 2,000); p99 latency
//   intakeCreatesPerSec  ROOST_BENCH_INTAKE (default 5,000) keyed creates published on the durable
//                        intake at once; creates decided per second, first publish to last commit
//   natsStatusPerSec     job.status over NATS, 64 in flight, for 5 s
//   httpCreateP99Ms      as natsCreateP99Ms, through the HTTP gateway (POST /v1/jobs)
//   httpStatusPerSec     GET /v1/jobs/{role}/{env}/{name}, 64 in flight, for 5 s
//
// Goals (issue 10): p99 ≤ 20 ms at 200 creates/s; ≥ 2,000 intake creates/s; ≥ 10,000 status
// reads/s over NATS; ≥ 5,000/s over HTTP.

import { jetstream } from "@nats-io/jetstream";
import { Scheduler } from "../src/actors/scheduler.js";
import { NatsBus } from "../src/bus/nats.js";
import { pack } from "../src/eventlog/envelope.js";
import { openIntake } from "../src/eventlog/intake.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { startHttpGateway } from "../src/gateway/http.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { silentLogger } from "../src/util/logger.js";

const env = (k: string, d: number): number => {
  const v = process.env[k];
  return v === undefined || v === "" ? d : Number(v);
};
const RATE = env("ROOST_BENCH_RATE", 200);
const CREATES = env("ROOST_BENCH_CREATES", 2000);
const INTAKE = env("ROOST_BENCH_INTAKE", 5000);
const READ_MS = 5000;
const IN_FLIGHT = 64;

const spec = (name: string) => ({
  role: "bench",
  environment: "devel",
  name,
  instances: 1,
  resources: { cpus: 0.01, ramMb: 1, diskMb: 1 },
  processes: [{ name: "main", cmdline: "sleep 1" }],
});

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Offer `n` requests at `rate`/s (open loop: a slow reply does not delay the next send); latencies in ms. */
async function offered(n: number, rate: number, send: (i: number) => Promise<void>): Promise<number[]> {
  const lat: number[] = [];
  const start = performance.now();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const t0 = performance.now();
    pending.push(send(i).then(() => void lat.push(performance.now() - t0)));
  }
  await Promise.all(pending);
  return lat;
}

/** Requests per second with `inFlight` outstanding, for `ms`. */
async function closedLoop(ms: number, inFlight: number, send: () => Promise<void>): Promise<number> {
  let done = 0;
  const until = performance.now() + ms;
  const worker = async () => {
    while (performance.now() < until) {
      await send();
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / ((performance.now() - t0) / 1000);
}

export default async function api(): Promise<Record<string, number | string>> {
  const nats = await startNatsServer();
  const schedBus = await NatsBus.connect(nats.url, "bench-scheduler");
  const log = await openJetStreamLog({ servers: nats.url, stream: "ROOST" });
  const intake = await openIntake(schedBus.nc, { stream: "ROOST_INTAKE" });
  const scheduler = new Scheduler({ log, bus: schedBus, logger: silentLogger, schedulerId: "bench", intake });
  await scheduler.start();
  const client = await NatsBus.connect(nats.url, "bench-client");
  const gwBus = await NatsBus.connect(nats.url, "bench-gateway");
  const gw = await startHttpGateway({ transport: gwBus, tokens: null, host: "127.0.0.1", port: 0 });
  try {
    const create = async (subject: string, body: unknown) => {
      const r = await client.request<{ ok: boolean; error?: { message: string } }>(subject, body, 10_000);
      if (!r.ok) throw new Error(r.error?.message);
    };
    // Warm up (JIT, connections, the first records).
    for (let i = 0; i < 50; i++) await create("roost.api.v1.bench.job.create", { spec: spec(`warm-${i}`), key: `warm-${i}` });

    process.stderr.write(`api: ${CREATES} creates over NATS at ${RATE}/s\n`);
    const natsLat = await offered(CREATES, RATE, (i) =>
      create("roost.api.v1.bench.job.create", { spec: spec(`nats-${i}`), key: `nats-${i}` }),
    );

    process.stderr.write(`api: ${INTAKE} creates published on the intake\n`);
    const js = jetstream(client.nc);
    const jobsBefore = scheduler.state.jobs.size;
    const t0 = performance.now();
    const pubs: Array<Promise<unknown>> = [];
    for (let i = 0; i < INTAKE; i++) {
      pubs.push(js.publish("roost.intake.v1.bench.job.create", pack({ spec: spec(`intake-${i}`) }), { msgID: `bench/intake-${i}` }));
      if (pubs.length >= 512) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    while (scheduler.state.jobs.size < jobsBefore + INTAKE) await sleep(5);
    const intakeSecs = (performance.now() - t0) / 1000;

    process.stderr.write("api: job.status over NATS\n");
    const natsStatus = await closedLoop(READ_MS, IN_FLIGHT, async () => {
      const r = await client.request<{ ok: boolean }>("roost.api.v1.bench.job.status", { job: "bench/devel/nats-1" }, 10_000);
      if (!r.ok) throw new Error("status refused");
    });

    process.stderr.write(`api: ${CREATES / 2} creates over HTTP at ${RATE}/s\n`);
    const httpLat = await offered(CREATES / 2, RATE, async (i) => {
      const res = await fetch(`${gw.url}/v1/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ spec: spec(`http-${i}`), key: `http-${i}` }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`HTTP ${res.status}`);
    });

    process.stderr.write("api: GET /v1/jobs/… over HTTP\n");
    const httpStatus = await closedLoop(READ_MS, IN_FLIGHT, async () => {
      const res = await fetch(`${gw.url}/v1/jobs/bench/devel/nats-1`);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    });

    return {
      natsCreateP99Ms: round(percentile(natsLat, 99)),
      natsCreateP50Ms: round(percentile(natsLat, 50)),
      intakeCreatesPerSec: Math.round(INTAKE / intakeSecs),
      natsStatusPerSec: Math.round(natsStatus),
      httpCreateP99Ms: round(percentile(httpLat, 99)),
      httpCreateP50Ms: round(percentile(httpLat, 50)),
      httpStatusPerSec: Math.round(httpStatus),
      offeredCreatesPerSec: RATE,
      creates: CREATES,
      intakeCreates: INTAKE,
    };
  } finally {
    await gw.close();
    await gwBus.close();
    await client.close();
    await scheduler.stop();
    await schedBus.close();
    await log.close();
    await nats.stop();
  }
}
