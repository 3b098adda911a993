// A real high-availability cell for fault tests (test/ha.faults.test.ts) and the failover bench:
// 3 nats-servers (an R3 stream), N `roost scheduler` child processes and M `roost agent` child
// processes, all in one temp directory. Every daemon is a child of this process that can be
// SIGKILLed, SIGSTOPped, SIGCONTed and restarted with the same arguments; the log is watched with
// `roost log tail --follow --json` (restarted from where it was if a nats-server loss ends it).
//
// stop() tears everything down: schedulers and agents (SIGCONT, SIGTERM, SIGKILL after 5 s), then
// every task process started under the temp dir (found through /proc: their environment names a
// sandbox under it; each is SIGKILLed with its process group), then the nats-servers; it reports
// whatever is still alive, and removes the directory.

import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { ClusterStatus } from "../../src/cli/cluster.js";
import { type NatsClusterHandle, startNatsCluster } from "../../src/natsServer/cluster.js";
import { ROOST, type RunResult, roost } from "./roost.js";

// ---- daemons ----------------------------------------------------------------------------------

/** A long-running `roost` child (scheduler, agent, log tail): its stdout and stderr lines, awaitable. */
export class Daemon {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private waiters: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly args: string[],
    readonly cwd: string,
    readonly logFile: string,
    onLine?: (line: string) => void,
  ) {
    this.child = spawn(process.execPath, [ROOST, ...args], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      // Daemons log at info (vitest's environment would make it warn): tests await "registered".
      env: { ...process.env, ROOST_LOG_LEVEL: "info" },
    });
    liveChildren.add(this.child);
    const take = (l: string) => {
      this.lines.push(l);
      appendFileSync(logFile, `${l}\n`);
      onLine?.(l);
      for (const w of this.waiters.splice(0)) w();
    };
    createInterface({ input: this.child.stdout! }).on("line", take);
    createInterface({ input: this.child.stderr! }).on("line", take);
    this.exited = new Promise((r) =>
      this.child.once("exit", (code, signal) => {
        liveChildren.delete(this.child);
        this.exitInfo = { code, signal };
        for (const w of this.waiters.splice(0)) w();
        r({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** How many lines so far: pass it to until() to wait only for later lines. */
  mark(): number {
    return this.lines.length;
  }

  /** The first line from index `from` on (seen or still to come) that satisfies `pred`. */
  async until(pred: (line: string) => boolean, what: string, timeoutMs = 30_000, from = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.lines.length; i++) if (pred(this.lines[i]!)) return this.lines[i]!;
      const left = deadline - Date.now();
      if (left <= 0 || !this.running) {
        throw new Error(
          `${this.name}: ${this.running ? "timed out" : `exited (${JSON.stringify(this.exitInfo)})`} waiting for ${what}; last lines:\n${this.lines.slice(-15).join("\n")}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, sig);
  }

  /** kill -9, and wait until it is gone. */
  async kill9(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }

  /** SIGCONT (it may be stopped), SIGTERM, SIGKILL after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.signal("SIGCONT");
    this.signal("SIGTERM");
    const t = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** Children still running if this process exits without stopping them (a crashed test run). */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of liveChildren) {
    try {
      c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
});

// ---- the log, as `roost log tail --follow --json` prints it -------------------------------------

/** One event as `roost log tail --json` prints it: the envelope, with its record's seq and index. */
export interface LogEvent {
  seq: number;
  idx: number;
  type: string;
  v: number;
  epoch: number;
  ts: number;
  corr: string;
  reason: string;
  // biome-ignore lint/suspicious/noExplicitAny: an event's payload, as any type of event prints it
  data: any;
}

/**
 * Every event of the log, in order, as printed by `roost log tail --follow --json`. If the tail
 * exits (its consumer can end when a nats-server goes away), it is started again from the last
 * record it printed, and events already seen are skipped.
 */
export class LogTail {
  readonly events: LogEvent[] = [];
  private daemon: Daemon | null = null;
  private stopped = false;
  private waiters: Array<() => void> = [];
  restarts = 0;

  private watchdog: NodeJS.Timeout | null = null;

  /**
   * `streamLastSeq` (optional) lets a watchdog restart a tail that sits behind the stream: after
   * the nats-server holding its consumer dies, the client may take 30 s or more to notice.
   */
  constructor(
    private readonly cell: { dir: string; url: string },
    private readonly logFile: string,
    streamLastSeq?: () => Promise<number>,
  ) {
    this.spawn(1);
    if (streamLastSeq) {
      let behindAt = -1;
      const check = async () => {
        const last = await streamLastSeq().catch(() => -1);
        if (this.stopped) return;
        if (last > this.lastSeq) {
          // Behind twice in a row without moving: the follower is stuck.
          if (behindAt === this.lastSeq) {
            this.stuck++;
            this.restart();
          }
          behindAt = this.lastSeq;
        } else behindAt = -1;
        this.watchdog = setTimeout(() => void check(), 1500);
      };
      this.watchdog = setTimeout(() => void check(), 1500);
    }
  }

  /** Times the watchdog found the follower stuck behind the stream and restarted it. */
  stuck = 0;

  /** Start the follower again from the last record it printed (after a nats-server loss). */
  restart(): void {
    this.daemon?.signal("SIGKILL"); // its exit starts the next one
  }

  get lastSeq(): number {
    return this.events.at(-1)?.seq ?? 0;
  }

  private spawn(from: number): void {
    const d = new Daemon(
      "log-tail",
      ["log", "tail", "--follow", "--json", "--from", String(from), "--nats", this.cell.url],
      this.cell.dir,
      this.logFile,
      (l) => {
        if (!l.startsWith("{")) return;
        let e: LogEvent;
        try {
          e = JSON.parse(l) as LogEvent;
        } catch {
          return;
        }
        if (typeof e.seq !== "number" || typeof e.type !== "string") return;
        const last = this.events.at(-1);
        if (last && (e.seq < last.seq || (e.seq === last.seq && e.idx <= last.idx))) return; // seen before a restart
        this.events.push(e);
        for (const w of this.waiters.splice(0)) w();
      },
    );
    this.daemon = d;
    void d.exited.then(() => {
      if (this.stopped) return;
      this.restarts++;
      // From the last record printed: it may have been cut short; what was seen is skipped.
      setTimeout(() => !this.stopped && this.spawn(Math.max(1, this.lastSeq)), 200);
    });
  }

  /** The index the next event will have: pass it to until() to wait only for later events. */
  mark(): number {
    return this.events.length;
  }

  /** The first event from index `from` on (seen or still to come) that satisfies `pred`. */
  async until(pred: (e: LogEvent) => boolean, what: string, timeoutMs = 30_000, from = 0): Promise<LogEvent> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.events.length; i++) if (pred(this.events[i]!)) return this.events[i]!;
      const left = deadline - Date.now();
      if (left <= 0) {
        const last = this.events
          .slice(-8)
          .map((e) => `${e.seq}.${e.idx} e${e.epoch} ${e.type} ${JSON.stringify(e.data).slice(0, 120)} — ${e.reason}`);
        throw new Error(`log tail: timed out after ${timeoutMs} ms waiting for ${what}; last events:\n${last.join("\n")}`);
      }
      await this.wait(left);
    }
  }

  /** Resolve once the tail has printed every record up to `seq`. */
  async reach(seq: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastSeq < seq) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`log tail: at seq ${this.lastSeq}, wanted ${seq}`);
      await this.wait(left);
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    await this.daemon?.stop();
  }
}

// ---- the cell -----------------------------------------------------------------------------------

export interface AgentConfig {
  id: string;
  host: string;
  attrs: Record<string, string>;
  cpus: number;
  ramMb: number;
  diskMb: number;
  /** e.g. "41000-41099"; ranges of different agents must not overlap. */
  ports: string;
}

export interface HaCellOptions {
  schedulers?: number;
  agents?: number;
  /** Scheduling policy (JSON for --policy). */
  policy?: Record<string, number | string>;
  leaseMs?: number;
  /** Per agent: cpus, ram and disk it offers. */
  agentResources?: { cpus: number; ramMb: number; diskMb: number };
  /** Start `roost log tail --follow --json` (default true). */
  tail?: boolean;
  /** Temp dir name prefix. */
  prefix?: string;
  /** The nats-servers' ping interval and unanswered-ping limit (NatsServerOptions; default nats-server's). */
  natsPing?: { intervalMs: number; max: number };
  /** Run against the nats-servers before any scheduler starts (e.g. create a stream as a test wants it). */
  beforeSchedulers?: (nc: NatsConnection) => Promise<void>;
}

export interface Leader {
  id: string;
  pid: number;
  epoch: number;
  daemon: Daemon;
}

/** What stop() found still alive after tearing down (all empty when the cell left nothing). */
export interface Leftovers {
  daemons: string[];
  /** nats-servers started for the cell still alive (by pid, or by a config path under the cell's dir). */
  natsServers: number[];
  taskProcesses: Array<{ pid: number; args: string }>;
}

export class HaCell {
  readonly schedulers = new Map<string, Daemon>();
  readonly agents = new Map<string, Daemon>();
  readonly agentConfigs = new Map<string, AgentConfig>();
  tail: LogTail | null = null;
  private natsPids = new Set<number>();
  /** The test's own connection, for stream info (the tail's watchdog, waitStreamCurrent). */
  private nc: NatsConnection | null = null;

  private constructor(
    readonly dir: string,
    readonly nats: NatsClusterHandle,
    readonly opts: Required<Pick<HaCellOptions, "policy" | "leaseMs">>,
  ) {}

  get url(): string {
    return this.nats.urls.join(",");
  }

  static async start(o: HaCellOptions = {}): Promise<HaCell> {
    const dir = mkdtempSync(join(tmpdir(), o.prefix ?? "roost-ha-"));
    mkdirSync(join(dir, "logs"));
    let nats: NatsClusterHandle;
    try {
      nats = await startNatsCluster({ dir: join(dir, "nats"), pingIntervalMs: o.natsPing?.intervalMs, pingMax: o.natsPing?.max });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const cell = new HaCell(dir, nats, { policy: o.policy ?? {}, leaseMs: o.leaseMs ?? 2000 });
    for (const s of nats.servers) if (s) cell.natsPids.add(s.pid);
    try {
      if (o.beforeSchedulers) {
        const nc = await connect({ servers: nats.urls });
        try {
          await o.beforeSchedulers(nc);
        } finally {
          await nc.close();
        }
      }
      for (let i = 1; i <= (o.schedulers ?? 3); i++) cell.startScheduler(`scheduler-${i}`);
      // Port ranges: 100 per agent from a random base in 20000–30999, away from 4222, the dev
      // cluster's (31000–32000) and the ephemeral ports (32768–60999) that the nats-servers and every
      // outgoing connection take (see support/cluster.ts).
      const base = 20000 + Math.floor(Math.random() * 108) * 100;
      const res = o.agentResources ?? { cpus: 8, ramMb: 8192, diskMb: 16384 };
      for (let i = 1; i <= (o.agents ?? 3); i++) {
        const lo = base + (i - 1) * 100;
        cell.startAgent({
          id: `agent-${i}`,
          host: `host-${i}`,
          attrs: { rack: `rack-${i}`, zone: `zone-${((i - 1) % 2) + 1}` },
          ...res,
          ports: `${lo}-${lo + 99}`,
        });
      }
      cell.nc = await connect({ servers: nats.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      const jsm = await jetstreamManager(cell.nc, { timeout: 2000 });
      if (o.tail ?? true)
        cell.tail = new LogTail(cell, join(dir, "logs", "log-tail.log"), async () => (await jsm.streams.info("ROOST")).state.last_seq);
      await cell.healthy(90_000);
    } catch (err) {
      await cell.stop().catch(() => {});
      throw err;
    }
    return cell;
  }

  schedulerArgs(id: string): string[] {
    return [
      "scheduler",
      "--nats",
      this.url,
      "--replicas",
      "3",
      "--id",
      id,
      "--policy",
      JSON.stringify(this.opts.policy),
      "--lease-ms",
      String(this.opts.leaseMs),
    ];
  }

  agentArgs(a: AgentConfig): string[] {
    return [
      "agent",
      // These cells test failover, not isolation: agents killed -9 would leave cgroups behind.
      "--no-isolation",
      "--nats",
      this.url,
      "--id",
      a.id,
      "--host",
      a.host,
      ...Object.entries(a.attrs).flatMap(([k, v]) => ["--attr", `${k}=${v}`]),
      "--cpus",
      String(a.cpus),
      "--ram-mb",
      String(a.ramMb),
      "--disk-mb",
      String(a.diskMb),
      "--ports",
      a.ports,
      "--work-dir",
      join(this.dir, "agents", a.id),
    ];
  }

  startScheduler(id: string): Daemon {
    const d = new Daemon(id, this.schedulerArgs(id), this.dir, join(this.dir, "logs", `${id}.log`));
    this.schedulers.set(id, d);
    return d;
  }

  startAgent(a: AgentConfig): Daemon {
    this.agentConfigs.set(a.id, a);
    const d = new Daemon(a.id, this.agentArgs(a), this.dir, join(this.dir, "logs", `${a.id}.log`));
    this.agents.set(a.id, d);
    return d;
  }

  /** Start a scheduler or agent again with the same arguments (its previous process must be gone). */
  async restart(id: string): Promise<Daemon> {
    const old = this.schedulers.get(id) ?? this.agents.get(id);
    if (!old) throw new Error(`no daemon ${id}`);
    if (old.running) throw new Error(`${id} (pid ${old.pid}) is still running`);
    const d = new Daemon(id, old.args, this.dir, old.logFile);
    (this.schedulers.has(id) ? this.schedulers : this.agents).set(id, d);
    return d;
  }

  // ---- the CLI --------------------------------------------------------------------------------

  roost(args: string[]): Promise<RunResult> {
    return roost([...args, "--nats", this.url], this.dir);
  }

  async roostJson<T>(args: string[]): Promise<T> {
    const r = await this.roost([...args, "--json"]);
    if (r.code !== 0) throw new Error(`roost ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** Write a job spec into the cell's directory; returns its path. */
  spec(name: string, spec: Record<string, unknown>): string {
    const file = join(this.dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return file;
  }

  status(): Promise<ClusterStatus> {
    return this.roostJson<ClusterStatus>(["cluster", "status"]);
  }

  /**
   * Poll `roost cluster status --json` until `pred` holds (leadership and liveness produce no log
   * event of their own to wait on). A failing CLI run counts as "not yet".
   */
  async waitStatus(pred: (s: ClusterStatus) => boolean, what: string, timeoutMs = 30_000): Promise<ClusterStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: ClusterStatus | string = "no answer yet";
    for (;;) {
      try {
        const s = await this.status();
        last = s;
        if (pred(s)) return s;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; last cluster status: ${typeof last === "string" ? last : JSON.stringify(last)}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /**
   * Wait until the cell is whole: every scheduler and agent process running, every nats-server up;
   * on the members board each replica fresh (seen < 2.5 s ago, its pid ours), one leader, the
   * others standby, all having folded the whole log; every agent ACTIVE.
   */
  async healthy(timeoutMs = 60_000): Promise<ClusterStatus> {
    return this.waitStatus(
      (s) => {
        if (![...this.schedulers.values(), ...this.agents.values()].every((d) => d.running)) return false;
        if (this.nats.servers.some((x) => x === null) || s.leader === null || s.log === null) return false;
        const fresh = s.schedulers.filter((m) => m.seenMsAgo < 2500 && this.schedulers.get(m.id)?.pid === m.pid);
        return (
          fresh.length === this.schedulers.size &&
          fresh.filter((m) => m.role === "leader").length === 1 &&
          fresh.every((m) => m.appliedSeq >= s.log!.lastSeq) &&
          s.agents.filter((a) => a.state === "ACTIVE").length === this.agents.size
        );
      },
      `a whole cell (${this.schedulers.size} replicas caught up, one leader, ${this.agents.size} agents ACTIVE)`,
      timeoutMs,
    );
  }

  /** The leader, as `roost cluster status` names it, with its process (checked against the members board). */
  async leader(timeoutMs = 30_000, not?: string): Promise<Leader> {
    const s = await this.waitStatus(
      (st) => st.leader !== null && st.leader.schedulerId !== not && this.schedulers.get(st.leader.schedulerId)?.running === true,
      not ? `a leader other than ${not}` : "a leader",
      timeoutMs,
    );
    const id = s.leader!.schedulerId;
    const daemon = this.schedulers.get(id)!;
    const member = s.schedulers.find((m) => m.id === id);
    if (member && member.pid !== daemon.pid)
      throw new Error(`the members board says ${id} is pid ${member.pid}, but its process is ${daemon.pid}`);
    return { id, pid: daemon.pid, epoch: s.leader!.epoch, daemon };
  }

  /** Index (into nats.servers) of the nats-server leading the log's stream: log.leader is "n1".."n3". */
  async streamLeader(): Promise<number> {
    const s = await this.waitStatus((st) => /^n\d+$/.test(st.log?.leader ?? ""), "a stream leader");
    return Number(s.log!.leader!.slice(1)) - 1;
  }

  /** SIGKILL nats-server i; the log tail starts again (its consumer may have lived there). */
  async killNats(i: number): Promise<void> {
    await this.nats.kill(i);
    this.tail?.restart();
  }

  async restartNats(i: number): Promise<void> {
    const s = await this.nats.restart(i);
    this.natsPids.add(s.pid);
  }

  /**
   * Poll JetStream until every stream (the log, the lease and members buckets) has a leader and
   * all its other replicas current and online: a restarted nats-server has caught up.
   */
  async waitStreamCurrent(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    {
      const jsm = await jetstreamManager(this.nc!, { timeout: 2000 });
      for (;;) {
        try {
          const behind: string[] = [];
          for await (const si of jsm.streams.list()) {
            const c = si.cluster;
            const peers = c?.replicas ?? [];
            if (!c?.leader || peers.length !== si.config.num_replicas - 1 || peers.some((r) => !r.current || r.offline)) {
              behind.push(
                `${si.config.name}: leader ${c?.leader ?? "-"}, peers ${JSON.stringify(peers.map((r) => [r.name, r.current, r.offline ?? false]))}`,
              );
            }
          }
          if (behind.length === 0) return;
          last = behind.join("; ");
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`streams not caught up within ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** The pids a task's RUNNING report named ("processes started (pids N, M)"), from `roost task history`. */
  async taskPids(taskId: string): Promise<number[]> {
    const h = await this.roostJson<{ events: Array<{ state: string; reason?: string }> }>(["task", "history", taskId]);
    const running = h.events.filter((e) => e.state === "RUNNING").at(-1);
    const m = /processes started \(pids ([\d, ]+)\)/.exec(running?.reason ?? "");
    if (!m) throw new Error(`task ${taskId} has no RUNNING report with pids: ${JSON.stringify(h.events)}`);
    return m[1]!.split(",").map((p) => Number(p.trim()));
  }

  // ---- tear-down ------------------------------------------------------------------------------

  /** Task processes started by this cell's agents (their environment names a sandbox under dir). */
  taskProcesses(...alsoContaining: string[]): Array<{ pid: number; pgrp: number; args: string }> {
    return cellProcesses(`ROOST_SANDBOX=${join(this.dir, "agents")}/`, ...alsoContaining);
  }

  async stop(): Promise<Leftovers> {
    await this.tail?.stop();
    await this.nc?.close().catch(() => {});
    // Schedulers first (no more launches), then agents (they leave their tasks running).
    await Promise.all([...this.schedulers.values()].map((d) => d.stop()));
    await Promise.all([...this.agents.values()].map((d) => d.stop()));
    // Tasks: SIGKILL every process group of a task, until none is left.
    for (let round = 0; round < 20; round++) {
      const procs = this.taskProcesses();
      if (procs.length === 0) break;
      for (const p of procs) {
        for (const target of [-p.pgrp, p.pid]) {
          try {
            process.kill(target, "SIGKILL");
          } catch {
            // gone already
          }
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.nats.stop();
    const leftovers: Leftovers = {
      daemons: [...this.schedulers.values(), ...this.agents.values()].filter((d) => d.running).map((d) => `${d.name} (pid ${d.pid})`),
      natsServers: [
        ...new Set([
          ...[...this.natsPids].filter((pid) => isAlive(pid)),
          ...processesWhere((a) => a.includes("nats-server") && a.includes(this.dir)),
        ]),
      ],
      taskProcesses: this.taskProcesses().map((p) => ({ pid: p.pid, args: p.args })),
    };
    // ROOST_KEEP_HA_DIR=1 keeps the logs (daemons', nats-servers') for a post-mortem.
    if (process.env.ROOST_KEEP_HA_DIR) console.error(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
    return leftovers;
  }
}

// ---- /proc --------------------------------------------------------------------------------------

/** True if the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Live processes whose environment contains every one of `needles` (readable ones: ours). */
export function cellProcesses(...needles: string[]): Array<{ pid: number; pgrp: number; args: string }> {
  const out: Array<{ pid: number; pgrp: number; args: string }> = [];
  const ns = needles.map((n) => Buffer.from(n));
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      if (!ns.every((n) => env.includes(n))) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (f[0] === "Z" || f[0] === "X") continue;
      out.push({ pid, pgrp: Number(f[2]), args: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** Live processes whose command line satisfies `pred` (arguments joined by spaces). */
export function processesWhere(pred: (args: string) => boolean): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (pred(readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim()) && isAlive(Number(name))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}
