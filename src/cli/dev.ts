// `roost dev`: a whole cluster in the foreground. A nats-server child (JetStream under
// .roost/nats) when nats-server is on PATH, or an existing server with --nats; a scheduler and
// N agents as child processes (`roost scheduler`, `roost agent`), each with its log under
// .roost/logs. Without any nats-server it runs embedded: an in-process log and bus, reachable by
// other `roost` commands through a loopback bridge (cli/bridge.ts).
//
// It owns its directory and its children:
// - The directory's lock (devLock.ts): a second `roost dev` there refuses at once, touching nothing.
// - Children run in process groups of their own, so a terminal's Ctrl-C or hangup reaches only
//   `roost dev`, which orchestrates; and they die with it even after kill -9: the node children
//   stop when their stdin (a pipe from here, also their control channel, control.ts) reaches
//   EOF, nats-server gets SIGTERM as its parent's death signal (setpriv --pdeathsig).
// - SIGINT, SIGTERM and SIGHUP start an ordered stop: the schedulers quiesce (no more placement,
//   rescheduling or preemption), then the agents kill their tasks and wait until the leader has
//   recorded each KILLED with the true reason ("roost dev is shutting down (SIGINT)"), then the
//   schedulers stop, then the nats-servers (never one given with --nats). A second signal makes
//   it fast (tasks SIGKILLed, little waiting); no child is left behind either way.
// - "cluster ready" and cluster.json come once a leader answers and every agent is ACTIVE.
// - A child that dies is restarted with backoff (0.5 s doubling to 10 s; reset after 10 s of
//   life), nats-server included (same ports and store: clients reconnect); each restart is said
//   on the output. A failed start stops whatever was started.

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DEV_POLICY, type SchedulingPolicy } from "../actors/policy.js";
import { Scheduler } from "../actors/scheduler.js";
import { Agent } from "../agent/agent.js";
import { readCreds } from "../bus/creds.js";
import { MemoryBus } from "../bus/memory.js";
import { NatsBus } from "../bus/nats.js";
import { MemoryLog } from "../eventlog/memory.js";
import { parseTokens, startHttpGateway } from "../gateway/http.js";
import { startReplicaReads } from "../ui/replica.js";
import { authorizationConf, type Identity } from "../natsServer/auth.js";
import { discoveryBucket } from "../views/discovery.js";
import { type NatsClusterHandle, startNatsCluster } from "../natsServer/cluster.js";
import { findNatsServer, freePort, type NatsServerHandle, startNatsServer } from "../natsServer/server.js";
import { makeLogger } from "../util/logger.js";
import { startBridge } from "./bridge.js";
import type { ClusterFile } from "../client/transport.js";
import { connectClient } from "../client/transport.js";
import { acquireDevLock, type DevLock, DevLockHeldError } from "./devLock.js";
import { SCHEDULER_NODE_FLAGS } from "./nodeFlags.js";

export interface DevFlags {
  agents: number;
  nats?: string;
  /** Run on the in-process log and bus even when a nats-server is available. */
  embedded?: boolean;
  /** High availability: 3 nats-servers (an R3 stream) and 3 scheduler replicas. */
  ha?: boolean;
  dir: string;
  json: boolean;
  /** Users and permissions on the nats-server(s) it starts; credentials in <dir>/creds (secureCell). */
  secure?: boolean;
  /** --roles: the roles given a user of their own with --secure. Default ["www-data"]. */
  roles?: string[];
  /** --policy: scheduling timings over the dev ones (e.g. minRequiredInstances for SLA-aware drains). */
  policy?: Partial<SchedulingPolicy>;
}

/** The dev cluster's policy: DEV_POLICY, and --policy over it. */
function devPolicy(f: DevFlags): Partial<SchedulingPolicy> {
  return { ...DEV_POLICY, ...f.policy };
}

const ROOST_BIN = fileURLToPath(new URL("../../../bin/roost.js", import.meta.url));

/** Restart backoff: from RESTART_MIN_MS, doubling up to RESTART_MAX_MS; reset after RESTART_RESET_MS of life. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 10_000;
const RESTART_RESET_MS = 10_000;
/** How long the ordered stop gives each step before it kills. */
const QUIESCE_WAIT_MS = 3000;
const AGENT_STOP_WAIT_MS = 30_000;
const SCHEDULER_STOP_WAIT_MS = 12_000;
const FAST_STOP_WAIT_MS = 5000;

function devAgentSpec(i: number) {
  const lo = 20000 + i * 1000;
  return {
    id: `agent-${i}`,
    host: `host-${i}`,
    attributes: { host: `host-${i}`, rack: `rack-${((i - 1) % 3) + 1}`, zone: `zone-${((i - 1) % 2) + 1}` },
    resources: { cpus: 4, ramMb: 4096, diskMb: 16384, gpus: 0, ports: [[lo, lo + 999]] as Array<[number, number]> },
  };
}

/** A secured dev cell: the nats-server's authorization block and each identity's credentials file. */
interface SecureCell {
  conf: string;
  /** Identity name → its credentials file. */
  creds: Map<string, string>;
  tokensFile: string;
}

/**
 * `roost dev --secure`: a user per identity (natsServer/auth.ts), a fresh random password each,
 * written to <dir>/creds/<name>.json (mode 0600, in a 0700 directory) and nowhere else; and a
 * bearer token per role and for admin in <dir>/gateway-tokens.json for the HTTP gateway.
 */
function secureCell(dir: string, agentIds: string[], roles: string[]): SecureCell {
  const ids: Identity[] = [
    { kind: "scheduler", name: "scheduler", password: secret() },
    { kind: "admin", name: "admin", password: secret() },
    { kind: "gateway", name: "gateway", password: secret() },
    ...agentIds.map((name): Identity => ({ kind: "agent", name, password: secret() })),
    ...roles.map((name): Identity => ({ kind: "role", name, password: secret() })),
  ];
  const conf = authorizationConf(ids, "roost.events");
  const credsDir = join(dir, "creds");
  rmSync(credsDir, { recursive: true, force: true });
  mkdirSync(credsDir, { recursive: true, mode: 0o700 });
  const creds = new Map<string, string>();
  for (const id of ids) {
    const file = join(credsDir, `${id.name}.json`);
    writeFileSync(file, `${JSON.stringify({ user: id.name, pass: id.password })}\n`, { mode: 0o600 });
    creds.set(id.name, file);
  }
  const tokensFile = join(dir, "gateway-tokens.json");
  const tokens = [{ token: secret(), name: "admin", admin: true }, ...roles.map((role) => ({ token: secret(), name: role, role }))];
  writeFileSync(tokensFile, `${JSON.stringify({ tokens }, null, 2)}\n`, { mode: 0o600 });
  return { conf, creds, tokensFile };
}

const secret = (): string => randomBytes(24).toString("base64url");

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };
type Say = (msg: string, data?: Record<string, unknown>) => void;

class Stopping extends Error {
  constructor() {
    super("roost dev is stopping");
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Something roost dev runs and restarts when it dies: a node child or a nats-server. */
abstract class Supervised {
  pid = 0;
  /** False once roost dev stops: an exit is then no reason to restart. */
  wanted = true;
  private startedAt = 0;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private current: Promise<ExitStatus> | null = null;

  constructor(
    readonly name: string,
    protected readonly say: Say,
  ) {}

  /** Start the process; resolves with its pid and its exit. */
  protected abstract launch(): Promise<{ pid: number; exited: Promise<ExitStatus> }>;

  get running(): boolean {
    return this.current !== null;
  }

  /** Resolves when the current process (if any) has exited. */
  exited(): Promise<void> {
    return this.current ? this.current.then(() => {}) : Promise.resolve();
  }

  async start(): Promise<void> {
    const { pid, exited } = await this.launch();
    this.pid = pid;
    this.startedAt = Date.now();
    const current = exited;
    this.current = current;
    void current.then((st) => {
      if (this.current === current) this.current = null;
      this.onExit(st);
    });
  }

  /** No more restarts (roost dev is stopping). */
  release(): void {
    this.wanted = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  private onExit(st: ExitStatus): void {
    if (!this.wanted) return;
    if (Date.now() - this.startedAt >= RESTART_RESET_MS) this.failures = 0;
    const delay = Math.min(RESTART_MIN_MS * 2 ** this.failures, RESTART_MAX_MS);
    this.failures++;
    const how = st.signal ?? `code ${st.code}`;
    this.say(`${this.name} exited (${how}); restarting it in ${delay / 1000} s`, {
      exited: this.name,
      code: st.code,
      signal: st.signal,
      restartInMs: delay,
    });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.wanted) return;
      this.start().then(
        () => {
          if (!this.wanted) return; // stopping began while it started: the stop takes care of it
          this.say(`${this.name} restarted (pid ${this.pid}) after it exited (${how})`, {
            restarted: this.name,
            pid: this.pid,
            code: st.code,
            signal: st.signal,
          });
        },
        (err: Error) => {
          if (!this.wanted) return;
          this.say(`${this.name} did not restart: ${err.message}`, { restartFailed: this.name, error: err.message });
          this.onExit(st); // try again, later
        },
      );
    }, delay);
  }
}

/** `roost scheduler` or `roost agent` as a child: its own process group, stdin its control pipe. */
class NodeChild extends Supervised {
  private proc: ChildProcess | null = null;
  private readonly replyWaiters = new Set<(line: string) => void>();

  constructor(
    name: string,
    say: Say,
    private readonly args: string[],
    private readonly logFile: string,
  ) {
    super(name, say);
  }

  protected launch(): Promise<{ pid: number; exited: Promise<ExitStatus> }> {
    // stderr (its log) goes straight to the file: it outlives us. stdout carries control answers.
    const fd = openSync(this.logFile, "a");
    let c: ChildProcess;
    try {
      c = spawn(process.execPath, [...SCHEDULER_NODE_FLAGS, ROOST_BIN, ...this.args, "--control-stdin"], {
        stdio: ["pipe", "pipe", fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    this.proc = c;
    c.stdin!.on("error", () => {}); // it died: its exit is handled below
    createInterface({ input: c.stdout! }).on("line", (line) => {
      for (const w of [...this.replyWaiters]) w(line);
      if (line.trim() !== "quiesced") appendFileSync(this.logFile, `${line}\n`); // not an answer: keep it
    });
    const exited = new Promise<ExitStatus>((res) => {
      c.once("exit", (code, signal) => res({ code, signal }));
      c.once("error", () => res({ code: null, signal: null }));
    });
    if (c.pid === undefined)
      return exited.then((st) => Promise.reject(new Error(`could not start ${this.name} (${st.code ?? st.signal ?? "spawn failed"})`)));
    return Promise.resolve({ pid: c.pid, exited });
  }

  /** Write a control line; false when the child is not running. */
  send(line: string): boolean {
    if (!this.running || !this.proc?.stdin?.writable) return false;
    this.proc.stdin.write(`${line}\n`);
    return true;
  }

  /** Send a line and wait (at most ms) for the answer `reply`. */
  async ask(line: string, reply: string, ms: number): Promise<boolean> {
    let done!: (ok: boolean) => void;
    const answered = new Promise<boolean>((r) => (done = r));
    const w = (l: string) => l.trim() === reply && done(true);
    this.replyWaiters.add(w);
    const timer = setTimeout(() => done(false), ms);
    void this.exited().then(() => done(false));
    try {
      return this.send(line) ? await answered : false;
    } finally {
      clearTimeout(timer);
      this.replyWaiters.delete(w);
    }
  }

  /** Send `line` (stop …/kill …) and wait for the exit; after ms, SIGKILL its process group. */
  async stop(line: string, ms: number): Promise<void> {
    this.release();
    if (!this.running) return;
    this.send(line);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.exited().then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
    ]);
    clearTimeout(timer);
    if (late) {
      this.say(`${this.name} did not stop within ${ms / 1000} s; killing it`, { killed: this.name });
      this.kill();
      await this.exited();
    }
  }

  kill(): void {
    if (!this.running || !this.proc?.pid) return;
    try {
      process.kill(-this.proc.pid, "SIGKILL");
    } catch {
      this.proc.kill("SIGKILL");
    }
  }
}

/** The nats-server `roost dev` started: restarted with the same ports and store when it dies. */
class NatsChild extends Supervised {
  handle: NatsServerHandle | null = null;
  constructor(
    name: string,
    say: Say,
    private readonly startIt: (previous: NatsServerHandle | null) => Promise<NatsServerHandle>,
  ) {
    super(name, say);
  }

  protected async launch(): Promise<{ pid: number; exited: Promise<ExitStatus> }> {
    const h = await this.startIt(this.handle);
    this.handle = h;
    return { pid: h.pid, exited: h.exited };
  }

  async stop(): Promise<void> {
    this.release();
    if (this.running) await this.handle?.stop().catch(() => {});
  }
}

export async function runDev(f: DevFlags): Promise<void> {
  if (f.ha && (f.embedded || f.nats))
    throw new Error("--ha starts its own 3 nats-servers: it cannot be combined with --embedded or --nats");
  if (f.ha && !findNatsServer()) throw new Error("--ha needs nats-server on PATH (apt-get install nats-server)");
  if (f.secure && (f.embedded || f.nats))
    throw new Error("--secure configures the nats-servers it starts: it cannot be combined with --embedded or --nats");
  if (f.secure && !findNatsServer()) throw new Error("--secure needs nats-server on PATH (apt-get install nats-server)");
  const dir = resolve(f.dir);
  mkdirSync(dir, { recursive: true });
  let lock: DevLock;
  try {
    lock = await acquireDevLock(dir);
  } catch (err) {
    if (!(err instanceof DevLockHeldError)) throw err;
    // Exactly this, and nothing touched: not the other one's cluster.json, store or children.
    console.error(f.json ? JSON.stringify({ error: err.message, pid: err.pid }) : err.message);
    process.exit(1);
  }
  process.on("exit", () => lock.release());
  // A closed terminal makes writes to it fail (EIO): that must not end the stop half way.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  mkdirSync(join(dir, "logs"), { recursive: true });
  const say: Say = (msg, data = {}) => {
    try {
      console.log(f.json ? JSON.stringify({ msg, ...data }) : msg);
    } catch {
      // the terminal is gone
    }
  };
  const clusterFile = join(dir, "cluster.json");

  // What a stop undoes, set as things start. `stop` runs once; a second signal makes it fast.
  let stopping = false;
  let fast = false;
  let orderly: ((why: string) => Promise<void>) | null = null;
  let hurried: ((why: string) => Promise<void>) | null = null;
  let exiting = false;
  const finish = (code: number) => {
    if (exiting) return;
    exiting = true;
    rmSync(clusterFile, { force: true });
    say("stopped", { stopped: true, code });
    lock.release();
    process.exit(code);
  };
  let exitCode = 0;
  const run = (how: ((why: string) => Promise<void>) | null, why: string) =>
    void (how ?? (async () => {}))(why)
      .catch((err: Error) => say(`a step of the stop failed: ${err.message}`, { error: err.message }))
      .finally(() => finish(exitCode));
  const stop = (why: string, code: number) => {
    if (!stopping) {
      stopping = true;
      exitCode = code;
      say(`stopping the dev cluster: ${why}…`, { stopping: why });
      run(orderly, why);
    } else if (!fast) {
      fast = true;
      say(`stopping at once: ${why}`, { stoppingFast: why });
      run(hurried, why);
    }
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => stop(`roost dev is shutting down (${sig})`, 0));
  }
  const check = () => {
    if (stopping) throw new Stopping();
  };

  try {
    if (f.embedded || (!f.nats && !f.ha && !findNatsServer())) {
      await runEmbedded(f, dir, say, clusterFile, check, (o, h) => {
        orderly = o;
        hurried = h;
      });
    } else {
      await runWithNats(f, dir, say, clusterFile, check, (o, h) => {
        orderly = o;
        hurried = h;
      });
    }
  } catch (err) {
    if (err instanceof Stopping || stopping) return; // a signal came during the start: the stop is under way
    const msg = `roost dev could not start: ${(err as Error).message}`;
    console.error(f.json ? JSON.stringify({ error: msg }) : msg);
    stop("its start failed", 1);
    return;
  }
  say(`dev timings (shorter than Aurora's): ${JSON.stringify(devPolicy(f))}`, { policy: devPolicy(f) });
  say(`cluster ready: ${clusterFile}. Try: roost job create examples/hello-service.yaml   (Ctrl-C stops everything)`, { clusterFile });
}

type SetStops = (orderly: (why: string) => Promise<void>, hurried: (why: string) => Promise<void>) => void;

async function runWithNats(f: DevFlags, dir: string, say: Say, clusterFile: string, check: () => void, setStops: SetStops): Promise<void> {
  const servers: NatsChild[] = [];
  const schedulers: NodeChild[] = [];
  const agents: NodeChild[] = [];
  const everything = () => [...servers, ...schedulers, ...agents];

  let stopGateway = async () => {};
  const stopServers = async () => {
    await stopGateway();
    await Promise.all(servers.map((s) => s.stop()));
  };
  setStops(
    async (why) => {
      for (const c of everything()) c.release();
      // 1. No more placement, rescheduling or preemption (every replica: a standby may take over).
      await Promise.all(schedulers.map((s) => s.ask(`quiesce ${why}`, "quiesced", QUIESCE_WAIT_MS)));
      // 2. The agents kill their tasks; the leader records each KILLED with `why`.
      await Promise.all(agents.map((a) => a.stop(`stop ${why}`, AGENT_STOP_WAIT_MS)));
      // 3. The schedulers, then the servers we started.
      await Promise.all(schedulers.map((s) => s.stop(`stop ${why}`, SCHEDULER_STOP_WAIT_MS)));
      await stopServers();
    },
    async (why) => {
      for (const c of everything()) c.release();
      // Tasks SIGKILLed at once by their agents (an agent killed outright would leave them).
      await Promise.all(agents.map((a) => a.stop(`kill ${why}`, FAST_STOP_WAIT_MS)));
      for (const s of schedulers) s.kill();
      await Promise.all(schedulers.map((s) => s.exited()));
      await stopServers();
    },
  );

  let natsUrl = f.nats;
  const agentIds = Array.from({ length: f.agents }, (_, i) => devAgentSpec(i + 1).id);
  const secure = f.secure ? secureCell(dir, agentIds, f.roles ?? ["www-data"]) : null;
  const natsOpts = { ownProcessGroup: true, dieWithParent: true, extraConf: secure?.conf };
  const credsArgs = (name: string): string[] => (secure ? ["--creds", secure.creds.get(name)!] : []);
  if (f.ha) {
    let cluster: NatsClusterHandle | null = null;
    const natsDir = join(dir, "nats-ha");
    for (let i = 0; i < 3; i++) {
      servers.push(
        new NatsChild(`nats-server-${i + 1}`, say, async (previous) => {
          if (previous === null) return cluster!.servers[i]!;
          return cluster!.restart(i);
        }),
      );
    }
    cluster = await startNatsCluster({ dir: natsDir, name: "roost", ...natsOpts });
    // Together (startNatsCluster), then each supervised on its own.
    await Promise.all(servers.map((s) => s.start()));
    natsUrl = cluster.urls.join(",");
    const pids = servers.map((s) => s.pid);
    say(`3 nats-servers ${cluster.urls.join(" ")} (JetStream R3 in ${natsDir}, pids ${pids.join(" ")})`, { nats: cluster.urls, pids });
  } else if (!natsUrl) {
    const natsDir = join(dir, "nats");
    const server = new NatsChild("nats-server", say, (previous) =>
      startNatsServer({
        dir: natsDir,
        ...natsOpts,
        ...(previous ? { port: previous.port, httpPort: Number(new URL(previous.monitorUrl).port) } : {}),
      }),
    );
    servers.push(server);
    await server.start();
    natsUrl = server.handle!.url;
    say(`nats-server ${natsUrl} (JetStream in ${natsDir}, pid ${server.pid})`, { nats: natsUrl, pid: server.pid });
  }
  check();

  const url = natsUrl!;
  const logFile = (name: string) => join(dir, "logs", `${name}.log`);
  const replicas = f.ha ? 3 : 1;
  // Each replica serves the web UI and its metrics on a loopback port; each agent its metrics.
  const httpPorts: number[] = [];
  for (let i = 1; i <= replicas; i++) httpPorts.push(await freePort());
  const agentPorts: number[] = [];
  for (let i = 1; i <= f.agents; i++) agentPorts.push(await freePort());
  for (let i = 1; i <= replicas; i++) {
    const name = `scheduler-${i}`;
    schedulers.push(
      new NodeChild(
        name,
        say,
        [
          "scheduler",
          "--nats",
          url,
          "--id",
          name,
          "--replicas",
          String(replicas),
          "--policy",
          JSON.stringify(devPolicy(f)),
          "--http",
          `127.0.0.1:${httpPorts[i - 1]}`,
          ...credsArgs("scheduler"),
        ],
        logFile(name),
      ),
    );
  }
  for (let i = 1; i <= f.agents; i++) {
    const a = devAgentSpec(i);
    agents.push(
      new NodeChild(
        a.id,
        say,
        [
          "agent",
          "--nats",
          url,
          "--id",
          a.id,
          "--host",
          a.host,
          ...Object.entries(a.attributes)
            .filter(([k]) => k !== "host")
            .flatMap(([k, v]) => ["--attr", `${k}=${v}`]),
          "--cpus",
          String(a.resources.cpus),
          "--ram-mb",
          String(a.resources.ramMb),
          "--disk-mb",
          String(a.resources.diskMb),
          "--ports",
          a.resources.ports.map(([lo, hi]) => `${lo}-${hi}`).join(","),
          "--work-dir",
          join(dir, "agents", a.id),
          "--kill-tasks-on-exit",
          "--metrics",
          `127.0.0.1:${agentPorts[i - 1]}`,
          ...credsArgs(a.id),
        ],
        logFile(a.id),
      ),
    );
  }
  for (const c of [...schedulers, ...agents]) {
    check();
    await c.start();
  }
  await waitReady(
    url,
    agents.map((a) => a.name),
    check,
    join(dir, "logs"),
    secure?.creds.get("admin"),
  );
  check();
  // The HTTP gateway, in this process, on a free loopback port. Open in a dev cluster; with
  // --secure it takes the bearer tokens of gateway-tokens.json and speaks as the gateway user.
  const gwBus = await NatsBus.connect(url, "roost-dev-gateway", secure ? readCreds(secure.creds.get("gateway")!) : undefined);
  const tokens = secure ? parseTokens(readFileSync(secure.tokensFile, "utf8"), secure.tokensFile) : null;
  const http = await startHttpGateway({ transport: gwBus, tokens, host: "127.0.0.1", port: 0 });
  stopGateway = async () => {
    await http.close().catch(() => {});
    await gwBus.close();
  };
  const replicaUrls = httpPorts.map((port, i) => ({
    id: `scheduler-${i + 1}`,
    ui: `http://127.0.0.1:${port}/ui/`,
    metrics: `http://127.0.0.1:${port}/metrics`,
  }));
  const leaderId = await leaderOf(url, secure?.creds.get("admin"));
  const lead = replicaUrls.find((r) => r.id === leaderId) ?? replicaUrls[0]!;
  const file: ClusterFile = {
    mode: "nats",
    nats: url,
    stream: "ROOST",
    discovery: discoveryBucket("ROOST"),
    http: http.url,
    ui: lead.ui,
    metrics: lead.metrics,
    replicas: replicaUrls,
    agentMetrics: agentPorts.map((port, i) => ({ id: `agent-${i + 1}`, metrics: `http://127.0.0.1:${port}/metrics` })),
    pid: process.pid,
    startedAt: new Date().toISOString(),
    ...(secure ? { creds: secure.creds.get("admin")! } : {}),
  };
  writeFileSync(clusterFile, `${JSON.stringify(file, null, 2)}\n`);
  const pids = Object.fromEntries(everything().map((c) => [c.name, c.pid]));
  say(
    `${f.ha ? "3 scheduler replicas" : "a scheduler"} and ${f.agents} agents started (pids ${Object.entries(pids)
      .map(([n, p]) => `${n} ${p}`)
      .join(", ")}); logs in ${join(dir, "logs")}; HTTP gateway ${http.url}`,
    {
      agents: f.agents,
      schedulers: replicas,
      pids,
      http: http.url,
    },
  );
  say(`web UI ${lead.ui} (every replica serves one: ${replicaUrls.map((r) => r.ui).join(", ")}); metrics ${lead.metrics}`, {
    ui: lead.ui,
    metrics: lead.metrics,
  });
  if (secure)
    say(
      `secure: every identity is a NATS user with its own permissions; credentials in ${join(dir, "creds")} (${[...secure.creds.keys()].join(", ")}); this directory's CLI uses admin's; gateway tokens in ${secure.tokensFile}`,
      { secure: true, creds: Object.fromEntries(secure.creds), tokens: secure.tokensFile },
    );
}

/** The scheduler id of the replica leading now (null when none answers). */
async function leaderOf(nats: string, creds?: string): Promise<string | null> {
  const client = await connectClient({ nats, creds });
  try {
    return (await client.request<{ schedulerId: string }>("cluster.info", {}, 2000)).schedulerId;
  } catch {
    return null;
  } finally {
    await client.close();
  }
}

/** Wait until a leader answers and every agent is ACTIVE and has spoken to it. */
async function waitReady(
  nats: string,
  agentIds: string[],
  check: () => void,
  logs: string,
  creds?: string,
  timeoutMs = 60_000,
): Promise<void> {
  const client = await connectClient({ nats, creds });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      check();
      try {
        const info = await client.request<{ agents: Array<{ agentId: string; state: string; lastHeartbeat: number | null }> }>(
          "cluster.info",
          {},
          1000,
        );
        const ready = new Set(info.agents.filter((a) => a.state === "ACTIVE" && a.lastHeartbeat !== null).map((a) => a.agentId));
        if (agentIds.every((id) => ready.has(id))) return;
      } catch {
        // no leader yet
      }
      if (Date.now() > deadline) throw new Error(`the dev cluster did not become ready within ${timeoutMs / 1000} s; see ${logs}`);
      await sleep(100);
    }
  } finally {
    await client.close();
  }
}

async function runEmbedded(f: DevFlags, dir: string, say: Say, clusterFile: string, check: () => void, setStops: SetStops): Promise<void> {
  say(
    `${f.embedded ? "--embedded" : "no nats-server found on PATH"}: running embedded (in-process log and bus; the log is not kept after exit)`,
    { embedded: true },
  );
  const bus = new MemoryBus();
  const log = new MemoryLog();
  const logger = makeLogger("dev");
  const scheduler = new Scheduler({ log, bus, logger, schedulerId: "scheduler-1", policy: devPolicy(f) });
  const agents: Agent[] = [];
  let gw: Awaited<ReturnType<typeof startBridge>> | null = null;
  let stopReads: () => Promise<void> = async () => {};
  const rest = async () => {
    await stopReads().catch(() => {});
    await scheduler.stop().catch(() => {});
    await gw?.close().catch(() => {});
  };
  setStops(
    async (why) => {
      scheduler.quiesce(why);
      await Promise.all(agents.map((a) => a.stop({ killTasks: true, reason: why, statusWaitMs: 10_000 }).catch(() => {})));
      await rest();
    },
    async (why) => {
      scheduler.quiesce(why);
      await Promise.all(agents.map((a) => a.stop({ killTasks: true, reason: why, graceMs: 0, statusWaitMs: 1000 }).catch(() => {})));
      await rest();
    },
  );
  await scheduler.start();
  for (let i = 1; i <= f.agents; i++) {
    check();
    const a = devAgentSpec(i);
    const agent = new Agent({
      bus,
      agentId: a.id,
      host: a.host,
      attributes: a.attributes,
      resources: a.resources,
      workDir: join(dir, "agents", a.id),
      logger: logger.child({ agentId: a.id }),
    });
    agents.push(agent);
    await agent.start();
  }
  check();
  gw = await startBridge(bus, log);
  check();
  const reads = await startReplicaReads({
    replica: scheduler,
    log,
    bus,
    logger,
    http: { host: "127.0.0.1", port: 0 },
    registry: scheduler.metrics.registry,
  });
  stopReads = () => reads.stop();
  const ui = reads.ui!.url;
  const metrics = ui.replace(/ui\/$/, "metrics");
  const file: ClusterFile = { mode: "embedded", bridge: gw.url, ui, metrics, pid: process.pid, startedAt: new Date().toISOString() };
  writeFileSync(clusterFile, `${JSON.stringify(file, null, 2)}\n`);
  say(`scheduler and ${f.agents} agents running in-process; bridge ${gw.url}; web UI ${ui}; metrics ${metrics}`, {
    bridge: gw.url,
    agents: f.agents,
    ui,
    metrics,
  });
}
