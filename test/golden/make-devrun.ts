// Records the golden log of a REAL dev-cluster run: `npx tsx test/golden/make-devrun.ts NAME`
// (needs nats-server on PATH and a built dist/: `npm run build`).
//
// The other golden logs come from the synthetic generator or the simulator. This one is what
// `roost dev --ha --agents 3` (3 nats-servers, an R3 stream, 3 scheduler replicas, real agents and
// real task processes) writes while the real CLI drives it through a scenario: a service and a
// batch job created; a server killed with -9 (FAILED, then a THROTTLED successor that serves its
// flap penalty and runs again); a quota, preemptible filler and a production service that
// preempts one (SlotReserved, PREEMPTING, KILLED); the leading scheduler killed with -9 (a standby
// takes over: a second LeaderElected, with a higher epoch); a `job kill` (KILLED tasks); and last
// roost dev's orderly stop on SIGINT (the agents kill their tasks, each KILLED with its reason).
//
// The stream is read raw (each JetStream message's bytes, in sequence order): live while the run
// goes on, and again after roost dev has stopped, from its own store (the 3 nats-servers started
// once more on their directories), so the records of the orderly stop are all in. The two reads
// must agree. NAME.log is then msgpack pack() of those records and NAME.json its meta (see make.ts),
// plus covers, epochs and ten points of interest. Golden logs are forever: never regenerate an
// existing one (see make.ts). It takes a minute or so.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { AnyEnvelope, LogEntry } from "../../src/domain/events.js";
import { decodeRecord } from "../../src/eventlog/envelope.js";
import { openJetStreamLog } from "../../src/eventlog/jetstream.js";
import { startNatsCluster } from "../../src/natsServer/cluster.js";
import { findNatsServer } from "../../src/natsServer/server.js";
import { foldRecord } from "../../src/replay/fold.js";
import { checkInvariants } from "../../src/replay/invariants.js";
import { ClusterState } from "../../src/replay/state.js";
import { ROOST, roost } from "../support/roost.js";
import { writeGolden } from "../support/golden.js";

const name = process.argv[2];
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make-devrun.ts NAME (and ${name}.log must not exist yet)`);
if (!findNatsServer()) throw new Error("make-devrun.ts needs nats-server on PATH (try PATH=$PATH:/usr/sbin)");
if (!existsSync(new URL("../../dist/src/cli/main.js", import.meta.url))) throw new Error("build first: npm run build");

const examples = new URL("../../examples/", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "roost-devrun-"));
const dir = join(tmp, ".roost");
const clusterFile = join(dir, "cluster.json");
const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- roost dev, a child whose output lines can be awaited ------------------------------------------

class Dev {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private wake: Array<() => void> = [];
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [ROOST, ...args], { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
    const onLine = (l: string) => {
      this.lines.push(l);
      for (const w of this.wake.splice(0)) w();
    };
    createInterface({ input: this.child.stdout! }).on("line", onLine);
    createInterface({ input: this.child.stderr! }).on("line", onLine);
    this.exited = new Promise((r) => this.child.once("exit", (code) => r(code)));
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async until(pred: (l: string) => boolean, what: string, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    for (let i = 0; ; ) {
      for (; i < this.lines.length; i++) if (pred(this.lines[i]!)) return this.lines[i]!;
      if (!this.running) throw new Error(`roost dev exited while waiting for ${what}:\n${this.lines.slice(-20).join("\n")}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${this.lines.slice(-20).join("\n")}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 250);
        this.wake.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

// ---- the stream, followed live --------------------------------------------------------------------

interface Rec {
  seq: number;
  data: Uint8Array;
  events: LogEntry[];
}
const live: Rec[] = [];
const liveWake: Array<() => void> = [];
let lastRecordAt = Date.now();

/** Follow the stream from 1, copying each message's bytes, until `signal` aborts. */
async function follow(urls: string[], signal: AbortSignal): Promise<void> {
  const log = await openJetStreamLog({ servers: urls, create: false, name: "roost-make-devrun" });
  try {
    for await (const r of log.followRaw(1, signal)) {
      const data = Uint8Array.from(r.data); // r.data may be a view into the receive buffer
      live.push({ seq: r.seq, data, events: decodeRecord(data) });
      lastRecordAt = Date.now();
      for (const w of liveWake.splice(0)) w();
    }
  } finally {
    await log.close();
  }
}

type Ev = AnyEnvelope & { seq: number };
const tsc = (e: LogEntry): { taskId?: string; to?: string; ancestorId?: string | null; state?: string } => e.data as never;

/** The first event (from record index `from` on) that satisfies `pred`. */
async function event(pred: (e: Ev) => boolean, what: string, ms = 30_000, from = 0): Promise<Ev> {
  const deadline = Date.now() + ms;
  for (let i = from; ; ) {
    for (; i < live.length; i++) {
      const r = live[i]!;
      for (const e of r.events) {
        const ev = { ...(e as AnyEnvelope), seq: r.seq } as Ev;
        if (pred(ev)) return ev;
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting in the log for ${what} (at seq ${live.length})`);
    await new Promise<void>((r) => {
      const t = setTimeout(r, 250);
      liveWake.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }
}
const stateOf = (taskId: string, to: string) => (e: Ev) => e.type === "TaskStateChanged" && tsc(e).taskId === taskId && tsc(e).to === to;

/** Wait until the stream has been quiet for `quietMs`. */
async function settle(quietMs: number, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() - lastRecordAt < quietMs && Date.now() < deadline) await sleep(100);
}

// ---- the CLI ---------------------------------------------------------------------------------------

async function cli(args: string[]): Promise<string> {
  const r = await roost([...args, "--cluster", clusterFile], tmp);
  if (r.code !== 0) throw new Error(`roost ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const cliJson = async <T>(args: string[]): Promise<T> => JSON.parse(await cli([...args, "--json"])) as T;
/** `job create FILE --wait --json`: JSON lines; the first says what was created. */
async function create(file: string): Promise<{ job: string; taskIds: string[] }> {
  const out = await cli(["job", "create", join(examples, file), "--wait", "--timeout", "60", "--json"]);
  const lines = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string; job: string; taskIds: string[]; status?: string });
  const done = lines.find((l) => l.event === "done");
  if (!done) throw new Error(`job create ${file}: no "done" line in ${out}`);
  return lines.find((l) => l.event === "created")!;
}
type JobStatus = { instances: Array<{ instance: number; taskId: string; state: string; host: string | null }> };
type ClusterStatus = { schedulers: Array<{ id: string; pid: number; role: string; epoch: number }>; leader: { epoch: number } | null };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---- the run ---------------------------------------------------------------------------------------

let dev: Dev | null = null;
const followAbort = new AbortController();
let following: Promise<void> = Promise.resolve();
let restarted: Awaited<ReturnType<typeof startNatsCluster>> | null = null;
let records: Uint8Array[] = [];
let extraAfterLive = 0;

try {
  say(`roost dev --ha --agents 3 --dir ${dir}`);
  dev = new Dev(["dev", "--ha", "--agents", "3", "--dir", dir]);
  await dev.until((l) => l.includes("cluster ready"), '"cluster ready"', 120_000);
  const urls = (JSON.parse(readFileSync(clusterFile, "utf8")) as { nats: string }).nats.split(",");
  say(`cluster ready; NATS ${urls.join(" ")}`);
  following = follow(urls, followAbort.signal).catch((err: Error) => say(`the live read ended: ${err.message}`));
  await event((e) => e.type === "LeaderElected", "the first LeaderElected");

  // 1. A service and a batch job.
  const hello = await create("hello-service.yaml");
  say(`hello RUNNING: ${hello.taskIds.join(" ")}`);
  const batch = await create("batch-job.yaml");
  await event(stateOf(batch.taskIds[0]!, "FINISHED"), "the batch task FINISHED");
  say("batch FINISHED");

  // 2. kill -9 a hello server: FAILED, a THROTTLED successor (flap penalty), then it runs again.
  const status = await cliJson<JobStatus>(["job", "status", "www-data/devel/hello"]);
  const victim = status.instances.find((i) => i.instance === 0)!;
  const agentId = victim.host!.replace(/^host-/, "agent-");
  const taskFile = join(dir, "agents", agentId, "sandboxes", victim.taskId, "task.json");
  const pid = (JSON.parse(readFileSync(taskFile, "utf8")) as { pids: Record<string, number> }).pids.server!;
  if (!alive(pid)) throw new Error(`the server of ${victim.taskId} (pid ${pid}) is not running`);
  say(`kill -9 ${pid} (the server of ${victim.taskId} on ${victim.host})`);
  process.kill(pid, "SIGKILL");
  await event(stateOf(victim.taskId, "FAILED"), `${victim.taskId} FAILED`);
  const successor = await event(
    (e) => e.type === "TaskCreated" && tsc(e).ancestorId === victim.taskId,
    `the successor of ${victim.taskId}`,
  );
  const succId = tsc(successor).taskId!;
  if (tsc(successor).state !== "THROTTLED") throw new Error(`the successor ${succId} is ${tsc(successor).state}, not THROTTLED`);
  await event(stateOf(succId, "PENDING"), `${succId} PENDING (penalty served)`);
  await event(stateOf(succId, "RUNNING"), `${succId} RUNNING`);
  say(`${victim.taskId} FAILED; successor ${succId} THROTTLED, PENDING, RUNNING`);

  // 3. Quota, preemptible filler, then production: it preempts a filler after the delay.
  await cli(["quota", "set", "www-data", "--cpus", "4", "--ram-mb", "4096", "--disk-mb", "1024"]);
  await create("filler.yaml");
  say("filler RUNNING; creating prod-service");
  const prod = await cli(["job", "create", join(examples, "prod-service.yaml"), "--json"]);
  const prodTask = (JSON.parse(prod) as { taskIds: string[] }).taskIds[0]!;
  const reserved = await event((e) => e.type === "SlotReserved" && tsc(e).taskId === prodTask, "a slot held for prod", 60_000);
  const preempted = (reserved.data as { victims: string[] }).victims[0]!;
  await event(stateOf(preempted, "PREEMPTING"), `${preempted} PREEMPTING`);
  await event(stateOf(preempted, "KILLED"), `${preempted} KILLED`);
  await event(stateOf(prodTask, "RUNNING"), `prod ${prodTask} RUNNING`, 60_000);
  say(`prod ${prodTask} preempted ${preempted} and RUNNING`);
  await settle(1500);

  // 4. kill -9 the leading scheduler: a standby takes over with a higher epoch.
  const cs = await cliJson<ClusterStatus>(["cluster", "status"]);
  const leader = cs.schedulers.find((s) => s.role === "leader");
  if (!leader?.pid) throw new Error(`no leader with a pid in cluster status: ${JSON.stringify(cs.schedulers)}`);
  const firstEpochs = live.flatMap((r) =>
    r.events.filter((e) => e.type === "LeaderElected").map((e) => (e.data as { epoch: number }).epoch),
  );
  const oldEpoch = Math.max(...firstEpochs);
  say(`kill -9 ${leader.pid} (${leader.id}, the leader, epoch ${oldEpoch})`);
  const before = live.length;
  process.kill(leader.pid, "SIGKILL");
  const elected = await event(
    (e) => e.type === "LeaderElected" && (e.data as { epoch: number }).epoch > oldEpoch,
    "a new LeaderElected",
    60_000,
    before,
  );
  const newLeader = elected.data as { schedulerId: string; epoch: number };
  say(`${newLeader.schedulerId} leads at epoch ${newLeader.epoch}`);
  // The new leader answers (and roost dev has restarted the killed replica as a standby).
  await dev.until((l) => l.includes(`${leader.id} restarted`), `${leader.id} restarted`, 30_000);
  for (let i = 0; ; i++) {
    const s = await cliJson<ClusterStatus>(["cluster", "status"]).catch(() => null);
    if (s?.leader?.epoch === newLeader.epoch && s.schedulers.length >= 3) break;
    if (i > 100) throw new Error("the new leader does not answer");
    await sleep(200);
  }
  await settle(1500);

  // 5. Kill the hello job under the new leader: every instance KILLED.
  const killed = await cliJson<{ status: JobStatus }>(["job", "kill", "www-data/devel/hello"]);
  say(`job kill hello: ${killed.status.instances.map((i) => i.state).join(" ")}`);
  await settle(2000);

  // 6. The orderly stop: the stream is read once more afterwards, from roost dev's store.
  say(`the live read holds ${live.length} records; SIGINT to roost dev`);
  dev.child.kill("SIGINT");
  const code = await dev.exited;
  say(`roost dev exited (${code})`);
  if (code !== 0) throw new Error(`roost dev exited with ${code}:\n${dev.lines.slice(-20).join("\n")}`);
  followAbort.abort();
  await following;

  say("starting its 3 nats-servers again on their stores, to read the stream as the stop left it");
  restarted = await startNatsCluster({ dir: join(dir, "nats-ha"), name: "roost" });
  const log = await openJetStreamLog({ servers: restarted.urls, create: false, name: "roost-make-devrun", readyTimeoutMs: 60_000 });
  try {
    for await (const r of log.readRaw(1)) {
      if (r.seq !== records.length + 1) throw new Error(`record ${r.seq} read after ${records.length}`);
      records.push(Uint8Array.from(r.data));
    }
  } finally {
    await log.close();
  }
  await restarted.stop();
  restarted = null;
  // The live read must be a prefix of the whole stream.
  if (records.length < live.length) throw new Error(`the stream holds ${records.length} records, the live read ${live.length}`);
  for (const [i, r] of live.entries()) {
    if (Buffer.compare(Buffer.from(r.data), Buffer.from(records[i]!)) !== 0)
      throw new Error(`record ${i + 1} differs between the two reads`);
  }
  extraAfterLive = records.length - live.length;
  say(`read ${records.length} records from the store; the live read had ${live.length} (${extraAfterLive} more now)`);
} catch (err) {
  console.error(`make-devrun: ${(err as Error).stack ?? err}`);
  if (dev) console.error(`roost dev said:\n${dev.lines.slice(-30).join("\n")}`);
  records = [];
} finally {
  followAbort.abort();
  if (dev?.running) {
    dev.child.kill("SIGINT");
    const hurry = setTimeout(() => dev?.child.kill("SIGINT"), 20_000);
    const kill = setTimeout(() => dev?.child.kill("SIGKILL"), 40_000);
    await dev.exited;
    clearTimeout(hurry);
    clearTimeout(kill);
  }
  await following;
  await restarted?.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}
if (records.length === 0) process.exit(1);

// ---- fold, check, and write ----------------------------------------------------------------------

const state = new ClusterState();
const types = new Set<string>();
const epochs: number[] = [];
const decoded = records.map((r) => decodeRecord(r));
for (const [i, events] of decoded.entries()) {
  foldRecord(state, i + 1, events);
  for (const e of events) {
    if (e.type === "TaskStateChanged") types.add(`TaskStateChanged:${tsc(e).to}`);
    else if (e.type === "TaskCreated") types.add(`TaskCreated:${tsc(e).state}`);
    else types.add(e.type);
    if (e.type === "LeaderElected") epochs.push((e.data as { epoch: number }).epoch);
  }
}
const broken = checkInvariants(state);
if (state.anomalyCount !== 0) throw new Error(`the log folds with ${state.anomalyCount} anomalies: ${JSON.stringify(state.anomalies)}`);
if (broken.length > 0) throw new Error(`invariants broken at the end:\n${broken.join("\n")}`);
if (epochs.length < 2 || epochs.some((e, i) => i > 0 && e <= epochs[i - 1]!)) throw new Error(`epochs ${epochs} do not increase`);
for (const must of [
  "JobCreated",
  "TaskStateChanged:FAILED",
  "TaskCreated:THROTTLED",
  "TaskStateChanged:PENDING",
  "TaskAssigned",
  "TaskStateChanged:PREEMPTING",
  "TaskStateChanged:KILLED",
  "JobKillRequested",
]) {
  if (!types.has(must)) throw new Error(`the log lacks ${must}; it covers ${[...types].sort().join(", ")}`);
}

// Ten points of interest, found in the log itself.
type Found = { seq: number; ts: number; what: string };
const all = decoded.flatMap((events, i) => events.map((e) => ({ ...(e as AnyEnvelope), seq: i + 1 }) as Ev));
const at = (seq: number, what: string): Found => ({ seq, ts: Math.max(...decoded[seq - 1]!.map((e) => e.ts)), what });
const first = (pred: (e: Ev) => boolean, what: string): Ev => {
  const e = all.find(pred);
  if (!e) throw new Error(`no ${what} in the log`);
  return e;
};
const jobOfTask = new Map(all.filter((e) => e.type === "TaskCreated").map((e) => [tsc(e).taskId!, (e.data as { job: string }).job]));
const helloCreated = first((e) => e.type === "JobCreated", "JobCreated");
const failed = first((e) => e.type === "TaskStateChanged" && tsc(e).to === "FAILED", "FAILED");
const throttled = first((e) => e.type === "TaskCreated" && tsc(e).state === "THROTTLED", "THROTTLED successor");
const served = first(stateOf(tsc(throttled).taskId!, "RUNNING"), "the successor RUNNING");
const reservedEv = first((e) => e.type === "SlotReserved", "SlotReserved");
const prodCreated = first((e) => e.type === "TaskCreated" && tsc(e).taskId === tsc(reservedEv).taskId, "the production task");
const victimId = (reservedEv.data as { victims: string[] }).victims[0]!;
const preemptedKilled = first(stateOf(victimId, "KILLED"), "the preempted task KILLED");
const secondLeader = all.filter((e) => e.type === "LeaderElected")[1]!;
const killReq = first((e) => e.type === "JobKillRequested", "JobKillRequested");
const killedByKill = all.filter(
  (e) =>
    e.seq >= killReq.seq &&
    e.type === "TaskStateChanged" &&
    tsc(e).to === "KILLED" &&
    jobOfTask.get(tsc(e).taskId!) === "www-data/devel/hello",
);
const lastKilled = killedByKill.at(-1);
if (!lastKilled) throw new Error("no KILLED after the job kill");
const points: Found[] = [
  at(helloCreated.seq, `after job create: ${(helloCreated.data as { job: { name: string } }).job.name} created, its tasks PENDING`),
  at(failed.seq, `after the failure: ${tsc(failed).taskId} FAILED (its server killed with -9)`),
  at(throttled.seq, `during throttling: successor ${tsc(throttled).taskId} THROTTLED (flap penalty)`),
  at(served.seq, `the successor RUNNING after its penalty`),
  at(prodCreated.seq, "before the preemption: production created on a cell full of filler, its task PENDING"),
  at(preemptedKilled.seq, `after the preemption: ${victimId} KILLED`),
  at(secondLeader.seq - 1, `before failover: the last record of epoch ${epochs[0]}`),
  at(secondLeader.seq, `after failover: ${(secondLeader.data as { schedulerId: string }).schedulerId} elected at epoch ${epochs[1]}`),
  at(lastKilled.seq, "after the kill: every hello instance KILLED"),
  at(records.length, "the end: roost dev stopped in order (its tasks KILLED)"),
];

const counts: Record<string, number> = {};
for (const e of all) counts[e.type] = (counts[e.type] ?? 0) + 1;
writeGolden(base, records, state, { covers: [...types].sort(), epochs, points });
say(`wrote ${base}.log and .json: ${records.length} records, ${state.eventCount} events, epochs ${epochs.join(" ")}`);
say(`events by type: ${JSON.stringify(counts)}`);
