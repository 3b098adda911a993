// The deterministic simulator: the REAL scheduler actors (src/actors/Scheduler) with N simulated
// agents (simAgent.ts) on an in-memory bus and log, a virtual clock and a seed. The same seed
// (and the same calls) give the same log, byte for byte: ids come from seededIds(seed), dice
// from a seeded Rng, time from the VirtualClock, and nothing on the path reads real time or
// Math.random.
//
//   const sim = await Sim.start({ seed: 7, agents: [{ count: 3, cpus: 4, ramMb: 4096, diskMb: 8192 }] });
//   sim.behave("www-data/prod/batch", { runMs: 30_000, exitCode: 0 });
//   const { taskIds } = await sim.createJob(spec);
//   await sim.runUntil((s) => s.tasks.get(taskIds[0])!.state === "FINISHED", 60_000, "batch finished");
//   await sim.stop();
//
// Time only moves in advance() and runUntil(): between calls the simulation sits at one instant,
// quiet (settle()). Everything a call starts runs to quiescence before it returns.

import { createHash } from "node:crypto";
import type { SchedulingPolicy } from "../actors/policy.js";
import { seededIds } from "../actors/clock.js";
import { Scheduler } from "../actors/scheduler.js";
import type { LaunchRequest } from "../agent/protocol.js";
import { addressFor } from "../api/v1.js";
import type { ApiErrorBody } from "../api/errors.js";
import { MemoryBus } from "../bus/memory.js";
import { asAgentId, jobKeyString, parseJobKey, type AgentResources, type JobKeyString, type TaskId } from "../domain/types.js";
import { encodeRecord, type AnyEnvelope, type LogEntry } from "../eventlog/envelope.js";
import type { EventLog } from "../eventlog/log.js";
import { MemoryLog } from "../eventlog/memory.js";
import { jobStatus, type JobStatus } from "../replay/queries.js";
import type { ClusterState } from "../replay/state.js";
import { DEFAULT_SIM_EPOCH, VirtualClock } from "./clock.js";
import { Rng } from "./rng.js";
import { MemoryLeaseBoard } from "../actors/lease.js";
import { SimAgent, type TaskBehavior } from "./simAgent.js";

export type { TaskBehavior } from "./simAgent.js";

export interface SimAgentGroup {
  count: number;
  /** Agent ids (and host names) are `<prefix>-<n>`, n counting from 1 per prefix (default "agent"). */
  prefix?: string;
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus?: number;
  /** Inclusive port ranges (default [[31000, 32000]]). */
  ports?: [number, number][];
  /** Attributes of the group's i-th agent (i from 0), merged over the default {host: <id>}. */
  attributes?: (i: number) => Record<string, string>;
}

export interface SimOptions {
  seed: number;
  agents: SimAgentGroup[];
  policy?: Partial<SchedulingPolicy>;
  /** Default: a fresh MemoryLog. A log that already holds records is replayed first. */
  log?: EventLog;
  /** Virtual epoch ms at start (default Date.UTC(2026, 0, 1)). */
  startTs?: number;
  /** How tasks of jobs without a behave() entry behave (default: keep running). */
  defaultBehavior?: TaskBehavior;
  /** The scheduler's first retry delay for launches and kills (virtual ms, default 1000). */
  retryMs?: number;
  /** Every simulated agent's heartbeat period (virtual ms, default 1000). Raise agentTimeoutMs with it. */
  agentHeartbeatMs?: number;
  /** Most setImmediate turns one settle() may take before it gives up (default 200,000). */
  maxSettleTurns?: number;
  /**
   * High availability: this many scheduler replicas compete for one lease (leaseMs, default
   * 3000) instead of one scheduler taking over at once.
   */
  replicas?: number;
  leaseMs?: number;
  /**
   * Told of every record any replica folds (the leader's commits and the standbys' follows, and
   * the replays of replicas started later), right after the fold; the state is the replica's.
   */
  onFold?: (replica: Scheduler, seq: number, events: readonly LogEntry[]) => void;
}

/** A behaviour for a job's tasks, fixed or chosen per launch (e.g. by instance). */
export type JobBehavior = TaskBehavior | ((launch: LaunchRequest) => TaskBehavior);

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Quiet turns in a row that settle() wants before it believes it. */
const QUIET_TURNS = 3;

export class Sim {
  readonly clock: VirtualClock;
  readonly bus: MemoryBus;
  readonly log: EventLog;
  readonly agents: SimAgent[] = [];
  readonly seed: number;
  /** The simulator's dice (failProbability). */
  readonly rng: Rng;
  /** Virtual epoch ms at start. */
  readonly startTs: number;
  private current: Scheduler;
  /** Every replica (HA mode), in start order; one scheduler otherwise. */
  readonly replicas: Scheduler[] = [];
  /** Agents with a message on the wire (kept by their onBusyChange). */
  private busyAgents = 0;
  private leaseBoard: MemoryLeaseBoard | null = null;
  private readonly opts: SimOptions;
  private readonly ownsLog: boolean;
  private readonly behaviors = new Map<string, JobBehavior>();
  private leaderCount = 1;
  private fatal: Error | null = null;
  /** Set by halt(): the next settle turn throws it. */
  private halted: Error | null = null;
  private readonly onFold: SimOptions["onFold"];
  private stopped = false;

  private constructor(opts: SimOptions) {
    if (!Number.isInteger(opts.seed)) throw new Error(`sim: seed must be an integer (got ${String(opts.seed)})`);
    this.opts = opts;
    this.seed = opts.seed;
    this.startTs = opts.startTs ?? DEFAULT_SIM_EPOCH;
    this.clock = new VirtualClock(this.startTs);
    this.bus = new MemoryBus({ requestTimeouts: false });
    this.ownsLog = opts.log === undefined;
    this.log = opts.log ?? new MemoryLog();
    this.rng = new Rng(opts.seed);
    this.onFold = opts.onFold;
    if ((opts.replicas ?? 1) > 1) {
      this.leaseBoard = new MemoryLeaseBoard(this.clock, opts.leaseMs ?? 3000);
      for (let i = 0; i < opts.replicas!; i++) {
        if (i > 0) this.leaderCount++;
        this.replicas.push(this.newScheduler());
      }
      this.current = this.replicas[0]!;
    } else {
      this.current = this.newScheduler();
      this.replicas.push(this.current);
    }
  }

  /** A scheduler and every agent, registered and settled. */
  static async start(opts: SimOptions): Promise<Sim> {
    const sim = new Sim(opts);
    for (const r of sim.replicas) await r.start();
    await sim.settle();
    const counters = new Map<string, number>();
    for (const [gi, g] of opts.agents.entries()) {
      if (!Number.isInteger(g.count) || g.count < 0) throw new Error(`sim: agents[${gi}].count must be an integer ≥ 0`);
      const prefix = g.prefix ?? "agent";
      for (let i = 0; i < g.count; i++) {
        const n = (counters.get(prefix) ?? 0) + 1;
        counters.set(prefix, n);
        const agentId = asAgentId(`${prefix}-${n}`);
        if (sim.agents.some((a) => a.agentId === agentId)) throw new Error(`sim: two agents would be called ${agentId}`);
        const resources: AgentResources = {
          cpus: g.cpus,
          ramMb: g.ramMb,
          diskMb: g.diskMb,
          gpus: g.gpus ?? 0,
          ports: (g.ports ?? [[31000, 32000]]).map(([lo, hi]) => [lo, hi] as [number, number]),
        };
        const agent = new SimAgent({
          bus: sim.bus,
          clock: sim.clock,
          agentId,
          host: agentId,
          attributes: { host: agentId, ...(g.attributes?.(i) ?? {}) },
          resources,
          rng: sim.rng,
          behavior: (launch) => sim.behaviorFor(launch),
          ...(opts.agentHeartbeatMs !== undefined ? { heartbeatMs: opts.agentHeartbeatMs } : {}),
          onBusyChange: (busy) => {
            sim.busyAgents += busy ? 1 : -1;
          },
        });
        sim.agents.push(agent);
        void agent.start();
        await sim.settle();
      }
    }
    const missing = sim.agents.filter((a) => sim.state.agents.get(a.agentId)?.state !== "ACTIVE").map((a) => a.agentId);
    if (missing.length > 0) throw new Error(`sim: agents did not register: ${missing.join(", ")}`);
    return sim;
  }

  /** The leading scheduler (a new one after failover()). */
  get scheduler(): Scheduler {
    if (this.leaseBoard) return this.replicas.find((r) => r.leading) ?? this.current;
    return this.current;
  }

  get state(): ClusterState {
    return this.scheduler.state;
  }

  /** Virtual ms since start. */
  get elapsed(): number {
    return this.clock.now() - this.startTs;
  }

  /** The sim agent with this id. */
  agent(agentId: string): SimAgent {
    const a = this.agents.find((x) => x.agentId === agentId);
    if (!a) throw new Error(`sim: no agent ${agentId}; agents: ${this.agents.map((x) => x.agentId).join(", ")}`);
    return a;
  }

  /** The sim agent the log places a task on (null while it has none). */
  agentOf(taskId: TaskId): SimAgent | null {
    const id = this.state.tasks.get(taskId)?.agentId;
    return id ? this.agent(id) : null;
  }

  /** How that job's tasks behave from their next launch on (a fixed behaviour, or one per launch). */
  behave(jobKey: string, b: JobBehavior): void {
    this.behaviors.set(jobKeyString(parseJobKey(jobKey)), b);
  }

  private behaviorFor(launch: LaunchRequest): TaskBehavior {
    const b = this.behaviors.get(launch.job);
    if (typeof b === "function") return b(launch);
    return b ?? this.opts.defaultBehavior ?? {};
  }

  /** Creates a job through the scheduler's JobIntake, then settles. Throws the refusal. */
  async createJob(spec: object, opts: { user?: string } = {}): Promise<{ job: JobKeyString; taskIds: TaskId[] }> {
    const r = await this.current.intake.create({ spec, user: opts.user ?? "sim" });
    await this.settle();
    return { job: r.job, taskIds: r.taskIds };
  }

  /** Kills a job (or some instances) through JobIntake, then settles. Throws the refusal. */
  async killJob(job: string, instances: number[] | null = null, opts: { user?: string } = {}): Promise<void> {
    await this.current.intake.kill({ job, instances, user: opts.user ?? "sim" });
    await this.settle();
  }

  /**
   * Any API v1 op over the bus (on the role its request names, else `role`), then settles. Returns
   * the value; throws Error(message) on a refusal, with the error's `code`.
   */
  async request<T>(op: string, data: unknown, role?: string): Promise<T> {
    const subject = addressFor(op, data, role);
    if (subject === null) throw new Error(`sim: ${op}: the request names no role to send it on`);
    const reply = await this.bus.request<{ ok: true; value: T } | { ok: false; error: ApiErrorBody }>(subject, data);
    await this.settle();
    if (!reply || typeof reply !== "object" || !("ok" in reply)) throw new Error(`sim: ${op}: malformed reply ${JSON.stringify(reply)}`);
    if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
    return reply.value;
  }

  /** A job's status as `roost job status` shows it (with pending reasons), or throws if unknown. */
  status(job: string): JobStatus {
    const st = jobStatus(this.state, job, this.current.placement.pendingReasons);
    if (!st) throw new Error(`sim: job ${job} does not exist`);
    return st;
  }

  /**
   * Runs until nothing is pending at the current virtual time: the scheduler is not busy, no
   * request or delivery is on the bus, no agent has an update or registration on the wire, and
   * no timer is due now (due timers fire one at a time, each only once the rest is quiet). It
   * takes QUIET_TURNS quiet event-loop turns in a row to believe it.
   */
  async settle(): Promise<void> {
    const max = this.opts.maxSettleTurns ?? 200_000;
    let quiet = 0;
    for (let i = 0; i < max; i++) {
      this.throwIfFatal();
      if (this.busyNow()) {
        quiet = 0;
      } else if (this.clock.hasDueNow()) {
        quiet = 0;
        this.clock.fireNext(this.clock.now());
      } else if (quiet >= QUIET_TURNS) {
        return;
      } else {
        quiet++;
      }
      await turn();
    }
    throw new Error(`sim: did not settle within ${max} turns at +${this.elapsed} ms (${this.describeBusy()})`);
  }

  private busyNow(): boolean {
    // Busy agents are counted as they change (SimAgent's onBusyChange): asking each of 10,000
    // agents on every turn made a large world's settle quadratic.
    return this.replicas.some((r) => r.busy()) || this.current.busy() || this.bus.inFlight > 0 || this.busyAgents > 0;
  }

  private describeBusy(): string {
    const parts: string[] = [];
    if (this.current.busy()) parts.push("the scheduler is busy");
    if (this.bus.inFlight > 0)
      parts.push(
        `bus in flight: ${this.bus
          .inFlightSubjects()
          .map(([s, n]) => `${s} ×${n}`)
          .join(", ")}`,
      );
    const busyAgents = this.agents.filter((a) => a.busy).map((a) => a.agentId);
    if (busyAgents.length) parts.push(`agents busy: ${busyAgents.join(", ")}`);
    if (this.clock.hasDueNow()) parts.push("timers keep falling due at the same instant");
    return parts.join("; ") || "nothing visible is busy";
  }

  /** Moves virtual time forward by `ms`, firing timers in order and settling after each. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new Error(`sim: advance(ms) needs a finite ms ≥ 0 (got ${ms})`);
    const target = this.clock.now() + ms;
    await this.settle();
    for (;;) {
      const next = this.clock.nextDue();
      if (next === null || next > target) break;
      this.clock.fireNext(target);
      await this.settle();
    }
    this.clock.advanceTo(target);
    await this.settle();
  }

  /**
   * Advances timer by timer until `pred` holds at a quiet moment; returns the virtual ms taken
   * (0 if it already held). Throws, naming `what`, when it does not hold within maxMs (the clock
   * is then at the deadline).
   */
  async runUntil(pred: (s: ClusterState) => boolean, maxMs: number, what: string): Promise<number> {
    const t0 = this.clock.now();
    const deadline = t0 + maxMs;
    await this.settle();
    if (pred(this.state)) return 0;
    for (;;) {
      const next = this.clock.nextDue();
      if (next === null || next > deadline) {
        this.clock.advanceTo(deadline);
        await this.settle();
        if (pred(this.state)) return this.clock.now() - t0;
        throw new Error(
          `sim: timed out after ${maxMs} virtual ms waiting for: ${what} ` +
            `(at +${this.elapsed} ms; ${next === null ? "nothing was left to happen" : `next timer at +${next - this.startTs} ms`})`,
        );
      }
      this.clock.fireNext(deadline);
      await this.settle();
      if (pred(this.state)) return this.clock.now() - t0;
    }
  }

  /**
   * The scheduler stops and a new one takes over on the same log and bus (replay, a fenced
   * LeaderElected, a roost.leader announcement the agents re-register on), then settles.
   */
  async failover(): Promise<Scheduler> {
    await this.settle();
    await this.current.stop();
    return this.replace(this.current);
  }

  /**
   * The leader dies as under SIGKILL (Scheduler.crash: its lease, if any, runs out). Without a
   * lease a new scheduler takes over at once, as a supervisor would restart it; with one, the
   * standbys compete for the lease, and restart() brings a replica back later.
   */
  async crashLeader(): Promise<Scheduler> {
    const leader = this.scheduler;
    if (!leader.leading) throw new Error(`sim: no replica leads (${this.replicas.map((r) => `${r.schedulerId} ${r.role}`).join(", ")})`);
    leader.crash();
    if (!this.leaseBoard) return this.replace(leader);
    await this.settle();
    return leader;
  }

  /** A new replica in place of a stopped or crashed one (a new id, the same log, bus and lease), started and settled. */
  async restart(replica: Scheduler): Promise<Scheduler> {
    if (replica.role !== "stopped") throw new Error(`sim: ${replica.schedulerId} still runs (${replica.role}); crash or stop it first`);
    return this.replace(replica);
  }

  private async replace(old: Scheduler): Promise<Scheduler> {
    this.leaderCount++;
    const next = this.newScheduler();
    const i = this.replicas.indexOf(old);
    if (i >= 0) this.replicas[i] = next;
    else this.replicas.push(next);
    if (this.current === old) this.current = next;
    // Not awaited: without a lease start() resolves only after the reconciliation window, which
    // may wait on virtual time (an agent that never heard the announcement), and only advance()
    // moves it. A start that fails stops the run as a scheduler failure would.
    next.start().catch((err: Error) => {
      this.fatal ??= err;
    });
    await this.settle();
    return next;
  }

  /** High availability: the leader's lease runs out now (as when it stalls past it); it steps down at its next renewal. */
  expireLease(): void {
    const held = this.leaseBoard?.held;
    if (held) held.expires = this.clock.now();
  }

  /** Stops the run: the settle turn under way (or the next) throws `err`. For checks that fail inside a callback. */
  halt(err: Error): void {
    this.halted ??= err;
  }

  /** Every event in the log, in order, with where it sits. */
  async events(): Promise<Array<{ seq: number; idx: number; event: LogEntry }>> {
    const out: Array<{ seq: number; idx: number; event: LogEntry }> = [];
    for await (const r of this.log.read(1)) for (const [idx, event] of r.events.entries()) out.push({ seq: r.seq, idx, event });
    return out;
  }

  /**
   * sha256 (hex) over every record's bytes, in order: the raw bytes for a MemoryLog; for other
   * logs, each record re-encoded from its decoded events.
   */
  async logBytesHash(): Promise<string> {
    const h = createHash("sha256");
    if (this.log instanceof MemoryLog) {
      for (let seq = 1; seq <= this.log.length; seq++) h.update(this.log.raw(seq)!);
    } else {
      for await (const r of this.log.read(1)) h.update(encodeRecord(r.events as AnyEnvelope[]));
    }
    return h.digest("hex");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const a of this.agents) a.stop();
    for (const r of this.replicas) if (r !== this.current) await r.stop();
    await this.current.stop();
    await this.bus.close();
    if (this.ownsLog) await this.log.close();
  }

  private newScheduler(): Scheduler {
    const n = this.leaderCount;
    const s = new Scheduler({
      log: this.log,
      bus: this.bus,
      clock: this.clock,
      // The first leader's ids are seededIds(seed); a later one gets its own deterministic stream.
      ids: seededIds(n === 1 ? this.seed : (this.seed ^ Math.imul(n, 0x9e3779b1)) >>> 0),
      schedulerId: n === 1 ? "sim-scheduler" : `sim-scheduler-${n}`,
      host: "sim",
      pid: n,
      retryMs: this.opts.retryMs,
      policy: this.opts.policy,
      ...(this.leaseBoard ? { lease: this.leaseBoard.lease() } : {}),
      onFatal: (err) => {
        this.fatal ??= err;
      },
    });
    const onFold = this.onFold;
    if (onFold) s.onChange((seq, events) => events && onFold(s, seq, events));
    return s;
  }

  private throwIfFatal(): void {
    if (this.halted) throw this.halted;
    if (this.fatal) throw new Error(`sim: the scheduler stopped: ${this.fatal.message}`);
  }
}
