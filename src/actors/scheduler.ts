// The leader: replays the log, takes over (a fenced LeaderElected), then runs its actors.
//
//   JobIntake      client requests → JobCreated / TaskCreated / JobKillRequested
//   Placement      PENDING tasks → TaskAssigned               (scheduling/firstFit.ts)
//   Launcher       LAUNCH and KILL effects → requests to agents, retried
//   Rescheduler    RESCHEDULE effects → TaskCreated for the next run of the instance
//   StatusIngest   agent status updates → TaskStateChanged, acknowledged after commit
//   AgentRegistry  registrations → AgentRegistered; reconciles what an agent runs
//
// Invariant 1 is kept in one place: commit() appends through the fenced Appender, whose
// onCommit folds each committed record in sequence order and only then hands the effects the
// fold produced to the actors. Nothing mutates the state or touches the world before that.

import { hostname } from "node:os";
import { Appender } from "../eventlog/appender.js";
import { makeEnvelope, type AnyEnvelope } from "../eventlog/envelope.js";
import type { EventPayloads, EventType } from "../eventlog/events.js";
import type { EventLog } from "../eventlog/log.js";
import type { Bus } from "../bus/bus.js";
import { subjects } from "../bus/bus.js";
import { foldRecord, TIMED_STATES, type Effect } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { AgentRegistry } from "./agentRegistry.js";
import { JobIntake } from "./jobIntake.js";
import { Launcher } from "./launcher.js";
import { Placement } from "./placement.js";
import { AURORA_POLICY, type SchedulingPolicy } from "./policy.js";
import { randomIds, systemClock, type Clock, type Ids } from "./ports.js";
import { Preemptor } from "./preemptor.js";
import { Rescheduler } from "./rescheduler.js";
import { Timers } from "./timers.js";
import { StatusIngest } from "./statusIngest.js";

export interface SchedulerOptions {
  log: EventLog;
  bus: Bus;
  clock?: Clock;
  ids?: Ids;
  logger?: Logger;
  schedulerId?: string;
  host?: string;
  pid?: number;
  /** How long an agent request may take before it is retried (ms). */
  agentRequestTimeoutMs?: number;
  /** First retry delay for launches and kills (ms); doubles up to 8×. */
  retryMs?: number;
  /** Called once if this scheduler loses the log (fenced) or fails; default: log it. */
  onFatal?: (err: Error) => void;
  /** Scheduling rules' timings and knobs; defaults are Aurora's. */
  policy?: Partial<SchedulingPolicy>;
}

export class Scheduler {
  readonly state = new ClusterState();
  readonly clock: Clock;
  readonly ids: Ids;
  readonly log: Logger;
  readonly bus: Bus;
  readonly schedulerId: string;
  readonly host: string;
  readonly pid: number;
  readonly agentRequestTimeoutMs: number;
  readonly retryMs: number;
  readonly policy: SchedulingPolicy;
  epoch = 0;
  role: "replaying" | "leader" | "stopped" = "replaying";

  readonly intake: JobIntake;
  readonly placement: Placement;
  readonly launcher: Launcher;
  readonly rescheduler: Rescheduler;
  readonly statusIngest: StatusIngest;
  readonly agents: AgentRegistry;
  readonly timers: Timers;
  readonly preemptor: Preemptor;

  private appender: Appender | null = null;
  /** The log itself, for reads (task history reasons). Writes go through commit(). */
  readonly eventLog: EventLog;
  private readonly unserve: Array<() => void> = [];
  private readonly onFatal: (err: Error) => void;
  private corrCounter = 0;
  private readonly listeners = new Set<(seq: number, events?: readonly AnyEnvelope[]) => void>();

  constructor(opts: SchedulerOptions) {
    this.eventLog = opts.log;
    this.bus = opts.bus;
    this.clock = opts.clock ?? systemClock;
    this.ids = opts.ids ?? randomIds;
    this.log = opts.logger ?? silentLogger;
    this.host = opts.host ?? hostname();
    this.pid = opts.pid ?? process.pid;
    this.schedulerId = opts.schedulerId ?? `${this.host}:${this.pid}`;
    this.agentRequestTimeoutMs = opts.agentRequestTimeoutMs ?? 5000;
    this.retryMs = opts.retryMs ?? 1000;
    this.policy = { ...AURORA_POLICY, ...opts.policy };
    this.onFatal = opts.onFatal ?? ((err) => this.log.fatal({ err }, "scheduler stopped"));
    this.intake = new JobIntake(this);
    this.placement = new Placement(this);
    this.launcher = new Launcher(this);
    this.rescheduler = new Rescheduler(this);
    this.statusIngest = new StatusIngest(this);
    this.agents = new AgentRegistry(this);
    this.timers = new Timers(this);
    this.preemptor = new Preemptor(this);
  }

  /** Replay the whole log, take over as leader, start serving. */
  async start(): Promise<void> {
    const t0 = Date.now();
    for await (const r of this.eventLog.read(this.state.seq + 1)) foldRecord(this.state, r.seq, r.events);
    this.log.info({ seq: this.state.seq, events: this.state.eventCount, ms: Date.now() - t0 }, "replayed the log");
    const epoch = (this.state.leader?.epoch ?? 0) + 1;
    this.appender = new Appender(this.eventLog, {
      lastSeq: this.state.seq,
      writerId: `${this.schedulerId}:${epoch}`,
      onCommit: (seq, events) => this.onCommit(seq, events),
    });
    this.epoch = epoch;
    await this.commit([
      this.event("LeaderElected", { schedulerId: this.schedulerId, epoch, host: this.host, pid: this.pid }, `${this.schedulerId} took over after replaying ${this.state.seq} records`),
    ]);
    this.role = "leader";
    this.unserve.push(...this.intake.serve(), ...this.statusIngest.serve(), ...this.agents.serve());
    this.bus.publish(subjects.leader, { schedulerId: this.schedulerId, epoch });
    this.resumeObligations();
    this.log.info({ epoch, seq: this.state.seq }, "leading");
  }

  async stop(): Promise<void> {
    if (this.role === "stopped") return;
    this.role = "stopped";
    for (const u of this.unserve.splice(0)) u();
    this.launcher.stop();
    this.placement.stop();
    this.timers.stop();
    this.preemptor.stop();
    await this.appender?.flush().catch(() => {});
  }

  get leading(): boolean {
    return this.role === "leader";
  }

  /**
   * True while work started by an event is still under way inside the scheduler (appends on the
   * wire, a placement round, reschedules being written). The simulator settles on !busy().
   */
  busy(): boolean {
    const a = this.appender?.pending;
    return (a !== undefined && (a.requests > 0 || a.records > 0)) || this.placement.busy || this.rescheduler.busy;
  }

  /** A new correlation id for a request that starts here. */
  corr(prefix = "s"): string {
    return `${prefix}-${this.epoch}-${++this.corrCounter}`;
  }

  event<T extends EventType>(type: T, data: EventPayloads[T], reason: string, corr?: string): AnyEnvelope {
    return makeEnvelope(type, data, { epoch: this.epoch, ts: this.clock.now(), corr: corr ?? this.corr(), reason }) as AnyEnvelope;
  }

  /** Append events atomically; resolves after they are committed and folded. */
  async commit(events: AnyEnvelope[]): Promise<number> {
    const appender = this.appender;
    if (!appender || this.role === "stopped") throw new Error("this scheduler is not the leader");
    try {
      return await appender.append(events);
    } catch (err) {
      if (appender.failure && this.leading) {
        void this.stop();
        this.onFatal(appender.failure);
      }
      throw err;
    }
  }

  /**
   * Be told after each committed record is folded, and when in-memory views (pending reasons)
   * change. Tests and watchers await state this way.
   */
  onChange(listener: (seq: number, events?: readonly AnyEnvelope[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `events` is set when the change is a committed record (then they are its events). */
  notifyChange(events?: readonly AnyEnvelope[]): void {
    for (const l of this.listeners) l(this.state.seq, events);
  }

  private onCommit(seq: number, events: AnyEnvelope[]): void {
    const effects: Effect[] = [];
    foldRecord(this.state, seq, events, effects);
    this.notifyChange(events);
    if (this.role === "stopped") return;
    for (const e of effects) {
      if (e.kind === "LAUNCH") this.launcher.launch(e.taskId);
      else if (e.kind === "KILL") this.launcher.kill(e.taskId, e.agentId, "the task machine ordered a kill");
      else if (e.kind === "TIMER") this.timers.watch(e.taskId);
      else this.rescheduler.reschedule(e.taskId);
    }
    if (this.state.pending.size > 0) this.placement.kick();
  }

  /** After a takeover, the obligations a previous leader may have left half done. */
  private resumeObligations(): void {
    for (const t of this.state.tasks.values()) {
      if (TIMED_STATES.includes(t.state)) this.timers.watch(t.taskId);
      if (t.rescheduleWanted) this.rescheduler.reschedule(t.taskId);
      else if (t.state === "ASSIGNED") this.launcher.launch(t.taskId);
      else if (t.state === "KILLING" || t.state === "RESTARTING" || t.state === "PREEMPTING" || t.state === "DRAINING") {
        this.launcher.kill(t.taskId, t.agentId, `resuming the kill of a ${t.state} task after a leader change`);
      }
    }
    for (const r of this.state.reservations.values()) this.timers.watch(r.taskId);
    if (this.state.pending.size > 0) this.placement.kick();
    this.preemptor.start();
  }
}
