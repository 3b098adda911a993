// `npm run bench -- api`: the front door's figures, against a scheduler on a real nats-server (R1,
// its own temp dir), with no agents (created tasks stay PENDING: this measures the API, not
// placement). The HTTP gateway runs in its own process, as in production (`roost gateway`, the
// built CLI: run `npm run build` first, as `npm run bench` does); the load generator stays here.
// The scheduler runs in this process (its NATS figures as before); ROOST_BENCH_SCHEDULER=process
// runs `roost scheduler` in its own process instead (as in production, with its lease and member
// board; the intake's end is then seen as its work queue emptying).
//
//   natsCreateP99Ms      keyed job.create over NATS request/reply, offered at ROOST_BENCH_RATE
//                        (default 200/s) for ROOST_BENCH_CREATES (default 2,000); p99 latency
//   intakeCreatesPerSec  ROOST_BENCH_INTAKE (default 5,000) keyed creates published on the durable
//                        intake at once; creates decided per second, first publish to last commit
//   natsStatusPerSec     job.status over NATS, 64 in flight, for 5 s
//   httpCreateP99Ms      as natsCreateP99Ms, through the HTTP gateway (POST /v1/jobs)
//   httpStatusPerSec     GET /v1/jobs/{role}/{env}/{name}, 64 in flight, for 5 s
//
// The NATS figures follow 50 warm-up creates; the HTTP ones follow 50 warm-up creates and 500
// reads through the gateway (added when it moved to its own process: its first requests compile
// its checkers and JIT its code, which the scheduler in the same process had done before; cold,
// the gateway's first request takes ~80 ms and httpCreateP99Ms read ~50 ms). The HTTP client is
// node:http with keep-alive connections, one request at a time on each (64 connections for the
// reads), no pipelining; it was fetch, whose own CPU held httpStatusPerSec down.
//
// Goals (issue 10): p99 ≤ 20 ms at 200 creates/s; ≥ 2,000 intake creates/s; ≥ 10,000 status
// reads/s over NATS; ≥ 5,000/s over HTTP.

import { type ChildProcess, spawn } from "node:child_process";
import { Agent, request as httpRequest } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Scheduler } from "../src/actors/scheduler.js";
import { NatsBus } from "../src/bus/nats.js";
import { pack } from "../src/eventlog/envelope.js";
import { openIntake } from "../src/eventlog/intake.js";
import { openJetStreamLog } from "../src/eventlog/jetstream.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { silentLogger } from "../src/util/logger.js";
import { percentile } from "./support/stats.js";

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

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const ROOST_BIN = fileURLToPath(new URL("../../bin/roost.js", import.meta.url));

/** A `roost` command in its own process; resolves once a line of its output matches `ready`. */
async function daemon(args: string[], ready: RegExp): Promise<{ match: RegExpExecArray; stop(): Promise<void> }> {
  const proc: ChildProcess = spawn(process.execPath, [ROOST_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  // Not left behind when this process exits without stopping it (a bench that threw: run.ts exits).
  const orphaned = () => proc.kill("SIGKILL");
  process.once("exit", orphaned);
  void exited.then(() => process.off("exit", orphaned));
  const tail: string[] = [];
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const onLine = (l: string) => {
      tail.push(l);
      if (tail.length > 20) tail.shift();
      const m = ready.exec(l);
      if (m) resolve(m);
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    void exited.then(() => reject(new Error(`roost ${args[0]} exited before it was ready:\n${tail.join("\n")}`)));
  });
  return {
    match,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * The HTTP client: node:http over keep-alive connections (one request at a time on each, no
 * pipelining). fetch (undici as bundled in Node 20) cost more CPU per request than the gateway
 * itself and held httpStatusPerSec down to what it could send (~450/s alone against a gateway
 * that served ~2,400/s to this client, on this 2-core machine).
 */
const agent = new Agent({ keepAlive: true });
function httpCall(url: URL, method: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname,
        headers: body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

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
  const inproc = process.env.ROOST_BENCH_SCHEDULER !== "process";
  let schedBus: NatsBus | null = null;
  let log: Awaited<ReturnType<typeof openJetStreamLog>> | null = null;
  let scheduler: Scheduler | null = null;
  let schedProc: Awaited<ReturnType<typeof daemon>> | null = null;
  if (inproc) {
    schedBus = await NatsBus.connect(nats.url, "bench-scheduler");
    log = await openJetStreamLog({ servers: nats.url, stream: "ROOST" });
    const intake = await openIntake(schedBus.nc, { stream: "ROOST_INTAKE" });
    scheduler = new Scheduler({ log, bus: schedBus, logger: silentLogger, schedulerId: "bench", intake });
    await scheduler.start();
  } else {
    schedProc = await daemon(["scheduler", "--nats", nats.url, "--stream", "ROOST", "--id", "bench"], /"msg":"reconciled/);
  }
  const client = await NatsBus.connect(nats.url, "bench-client");
  const gwProc = await daemon(["gateway", "--listen", "127.0.0.1:0", "--nats", nats.url], /listening on (\S+)/);
  const gw = { url: gwProc.match[1]! };
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
    const jsm = scheduler ? null : await jetstreamManager(client.nc);
    const jobsBefore = scheduler?.state.jobs.size ?? 0;
    const t0 = performance.now();
    const pubs: Array<Promise<unknown>> = [];
    for (let i = 0; i < INTAKE; i++) {
      pubs.push(js.publish("roost.intake.v1.bench.job.create", pack({ spec: spec(`intake-${i}`) }), { msgID: `bench/intake-${i}` }));
      if (pubs.length >= 512) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    if (scheduler) while (scheduler.state.jobs.size < jobsBefore + INTAKE) await sleep(5);
    // The intake is a work queue: a message goes once acknowledged, after its create is committed.
    else while ((await jsm!.streams.info("ROOST_INTAKE")).state.messages > 0) await sleep(5);
    const intakeSecs = (performance.now() - t0) / 1000;

    process.stderr.write("api: job.status over NATS\n");
    const natsStatus = await closedLoop(READ_MS, IN_FLIGHT, async () => {
      const r = await client.request<{ ok: boolean }>("roost.api.v1.bench.job.status", { job: "bench/devel/nats-1" }, 10_000);
      if (!r.ok) throw new Error("status refused");
    });

    // Warm up the gateway (its own process: JIT, connections, the checkers), as NATS was above.
    const jobsUrl = new URL(`${gw.url}/v1/jobs`);
    const statusUrl = new URL(`${gw.url}/v1/jobs/bench/devel/nats-1`);
    for (let i = 0; i < 50; i++) {
      const status = await httpCall(jobsUrl, "POST", JSON.stringify({ spec: spec(`http-warm-${i}`), key: `http-warm-${i}` }));
      if (status !== 201) throw new Error(`HTTP ${status}`);
    }
    for (let i = 0; i < 500; i++) await httpCall(statusUrl, "GET");

    process.stderr.write(`api: ${CREATES / 2} creates over HTTP at ${RATE}/s\n`);
    const httpLat = await offered(CREATES / 2, RATE, async (i) => {
      const status = await httpCall(jobsUrl, "POST", JSON.stringify({ spec: spec(`http-${i}`), key: `http-${i}` }));
      if (status !== 201) throw new Error(`HTTP ${status}`);
    });

    process.stderr.write("api: GET /v1/jobs/… over HTTP\n");
    const httpStatus = await closedLoop(READ_MS, IN_FLIGHT, async () => {
      const status = await httpCall(statusUrl, "GET");
      if (status !== 200) throw new Error(`HTTP ${status}`);
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
    agent.destroy();
    await gwProc.stop();
    await client.close();
    await scheduler?.stop();
    await schedProc?.stop();
    await schedBus?.close();
    await log?.close();
    await nats.stop();
  }
}
