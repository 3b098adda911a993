// A leader term: from the LeaderElected this replica appended to its step-down. It owns what only
// a leader has: the fenced Appender, the actors (created when the term begins, all stopped when
// it ends), and the one place where invariant 1 is kept: commit() appends through the Appender,
// whose onCommit folds each committed record in sequence order and only then hands the effects the
// fold produced to the actors, as messages. Nothing mutates the state or touches the world before.
//
//   bus roost.api.v1.>     → JobIntake (writes, one at a time), Reads (questions)
//   bus roost.agent.*.status → StatusIngest → commit; stray copies → Launcher
//   bus roost.agent.*.register/heartbeat → AgentRegistry → commit; owed kills → Launcher
//   fold effects: LAUNCH, KILL → Launcher; TIMER → Timers; RESCHEDULE → Rescheduler;
//                 PENDING tasks left → Placement (kick)
//   records touching an active update (its events, its job's tasks) → Updater
//   records touching a cron job → Cron (its timer: the next fire time; cron writes run in its mailbox)
//   records moving a host or a window → Maintenance (drains, DRAINED, windows; its writes run in its mailbox)
//   periodic: AgentHealth (missed heartbeats), Preemptor (blocked groups)
//   fold → EndpointIndex: endpoints wanted or withdrawn → Announcer (the discovery bucket)
//
// A term begins reconciling: it announces itself on roost.leader and waits until every agent the
// log holds ACTIVE has registered with it (or the window ends); only then do placement, timers,
// preemption and agent health checks start, so a leader change reschedules no healthy task.

import { EventFeed } from "./eventFeed.js";
import { agentOfSubject, subjects, type Bus } from "../bus/bus.js";
import { checkEventData, makeEnvelope, type AnyEnvelope, type EventPayloads, type EventType, type LogEntry } from "../domain/events.js";
import type { JobKeyString, TaskId } from "../domain/types.js";
import { formatProblem } from "../domain/validate.js";
import type { Appender } from "../eventlog/appender.js";
import type { EventLog } from "../eventlog/log.js";
import { BatchOverlay, foldRecord, overtaken, rejection, TIMED_STATES, touches, type Effect } from "../replay/fold.js";
import type { ClusterState } from "../replay/state.js";
import { KILL_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import type { Logger } from "../util/logger.js";
import type { SchedulerMetrics } from "../metrics/scheduler.js";
import type { ActorStats } from "./actor.js";
import { AgentHealth } from "./agentHealth.js";
import { AgentRegistry } from "./agentRegistry.js";
import type { IntakeSource } from "../eventlog/intake.js";
import { type IntakeStats, serveIntake } from "./intakeConsumer.js";
import { serveApi } from "./api.js";
import type { Clock, Ids } from "./clock.js";
import type { TermContext } from "./context.js";
import { JobIntake } from "./jobIntake.js";
import { Launcher } from "./launcher.js";
import { Placement } from "./placement.js";
import type { SchedulingPolicy } from "./policy.js";
import { Preemptor } from "./preemptor.js";
import { Reads } from "./reads.js";
import { Rescheduler } from "./rescheduler.js";
import { StatusIngest } from "./statusIngest.js";
import { Timers } from "./timers.js";
import { Cron } from "./cron.js";
import { Updater } from "./updater.js";
import { Maintenance } from "./maintenance.js";
import type { EndpointStore } from "../storage/discoveryBucket.js";
import { EndpointIndex } from "../views/discovery.js";
import { Announcer } from "./announcer.js";

/** The leader would not append an event its fold would reject (LeaderTerm.commit). */
export class RefusedEventError extends Error {
  override name = "RefusedEventError";
  constructor(
    readonly event: AnyEnvelope,
    readonly why: string,
  ) {
    super(`invariant: the leader refused to append ${event.type} (${why}); the fold would skip it`);
  }
}

/** What the replica gives a term. */
export interface TermOptions {
  state: ClusterState;
  eventLog: EventLog;
  bus: Bus;
  clock: Clock;
  ids: Ids;
  log: Logger;
  policy: SchedulingPolicy;
  allowedEnvironments: RegExp;
  schedulerId: string;
  agentRequestTimeoutMs: number;
  retryMs: number;
  epoch: number;
  appender: Appender;
  /** The replica's metrics (its actors report to them). */
  metrics: SchedulerMetrics;
  /** The durable intake to consume while the term lasts, if the replica has one. */
  intake?: IntakeSource | null;
  /** The discovery bucket the term keeps equal to its fold (actors/announcer.ts), if the replica has one. */
  discovery?: EndpointStore | null;
  /** Why the replica stopped placing (quiesce), or null. */
  quiesced: string | null;
  /** A committed record was folded (the replica tells its watchers, and checks for a snapshot point). */
  folded(seq: number, events: readonly LogEntry[]): void;
  /** In-memory views changed (pending reasons, registrations): the replica tells its watchers. */
  changed(): void;
  /** The Appender died under a commit (fenced, or the log lost): the replica ends the term. */
  appendFailed(err: Error): void;
}

export class LeaderTerm {
  readonly epoch: number;
  readonly appender: Appender;
  private readonly ctx: TermContext;
  private readonly o: TermOptions;
  private ended = false;
  private reconciling = true;
  private corrCounter = 0;
  private readonly unserve: Array<() => void> = [];
  /** The durable intake's counts this term (null: the replica has no intake). */
  intakeStats: IntakeStats | null = null;

  readonly intake: JobIntake;
  readonly reads: Reads;
  /** The event stream's pages and long polls (not an actor: see eventFeed.ts). */
  readonly events: EventFeed;
  readonly placement: Placement;
  readonly launcher: Launcher;
  readonly rescheduler: Rescheduler;
  readonly statusIngest: StatusIngest;
  readonly registry: AgentRegistry;
  readonly timers: Timers;
  readonly preemptor: Preemptor;
  readonly health: AgentHealth;
  /** Job updates and rolling restarts (actors/updater.ts). */
  readonly updater: Updater;
  /** Cron jobs' triggers, and the cron writes (actors/cron.ts). */
  readonly cron: Cron;
  /** Host maintenance: SLA-aware drains and windows, and the maintenance writes (actors/maintenance.ts). */
  readonly maintenance: Maintenance;
  /** Service discovery's writer (null: the replica announces nothing). */
  readonly announcer: Announcer | null;
  /** The endpoints the fold wants announced, kept record by record once the term began. */
  private readonly endpoints = new EndpointIndex();
  private endpointsIndexed = false;

  constructor(o: TermOptions) {
    this.o = o;
    this.epoch = o.epoch;
    this.appender = o.appender;
    this.ctx = {
      state: o.state,
      policy: o.policy,
      allowedEnvironments: o.allowedEnvironments,
      clock: o.clock,
      ids: o.ids,
      log: o.log,
      bus: o.bus,
      eventLog: o.eventLog,
      schedulerId: o.schedulerId,
      epoch: o.epoch,
      agentRequestTimeoutMs: o.agentRequestTimeoutMs,
      retryMs: o.retryMs,
      metrics: o.metrics,
      leading: () => !this.ended,
      reconciling: () => this.reconciling,
      commit: (events, opts) => this.commit(events, opts),
      event: (type, data, reason, corr) => this.event(type, data, reason, corr),
      corr: (prefix) => this.corr(prefix),
      changed: () => {
        o.changed();
        this.poke();
      },
    };
    const c = this.ctx;
    this.launcher = new Launcher(c);
    this.placement = new Placement(c);
    this.timers = new Timers(c);
    this.rescheduler = new Rescheduler(c);
    this.cron = new Cron(c);
    this.maintenance = new Maintenance(c);
    this.intake = new JobIntake(c, this.cron, this.maintenance);
    this.statusIngest = new StatusIngest(c, this.launcher);
    this.registry = new AgentRegistry(c, this.launcher);
    this.health = new AgentHealth(c, this.registry);
    this.preemptor = new Preemptor(c, this.placement);
    this.updater = new Updater(c);
    this.announcer = o.discovery ? new Announcer(c, o.discovery, this.endpoints) : null;
    this.events = new EventFeed(o.state, o.eventLog);
    this.reads = new Reads(
      c,
      this.placement,
      this.registry,
      () => this.stats(),
      (key) => this.intake.isPending(key),
      () => this.intakeStats,
    );
    if (o.quiesced !== null) this.quiesce();
  }

  /** Every actor of the term, for cluster status and busy(). */
  private get actors() {
    return [
      this.intake,
      this.reads,
      this.statusIngest,
      this.registry,
      this.placement,
      this.launcher,
      this.rescheduler,
      this.timers,
      this.preemptor,
      this.health,
      this.updater,
      this.cron,
      this.maintenance,
      ...(this.announcer ? [this.announcer] : []),
    ] as const;
  }

  stats(): ActorStats[] {
    return this.actors.map((a) => a.stats());
  }

  get isReconciling(): boolean {
    return this.reconciling;
  }

  /**
   * The term begins: serve the bus, announce the leader, wait for the agents (the reconciliation
   * window), then resume what a previous leader may have left half done. Resolves once it leads in
   * full (or it ended meanwhile).
   */
  async begin(announce: { schedulerId: string }): Promise<void> {
    const { bus } = this.o;
    if (this.announcer) {
      // The bucket follows the fold from now on: all of it once, then record by record (onCommit).
      this.endpoints.reset(this.o.state);
      this.endpointsIndexed = true;
      this.announcer.send({ type: "reconcile" });
    }
    this.unserve.push(
      serveApi(
        bus,
        {
          write: (op, req, caller, key) => this.intake.write(op, req, caller, key),
          read: (op, req, caller) => (op === "events" ? this.events.read(req, caller) : this.reads.read(op, req, caller)),
        },
        this.o.log,
        (op, result) => this.o.metrics.busRequest(op, result),
      ),
      bus.serve(subjects.anyAgent.status, (data, subject) => ownSubject(data, subject) ?? this.statusIngest.handle(data)),
      bus.serve(subjects.anyAgent.register, (data, subject) => ownSubject(data, subject) ?? this.registry.register(data)),
      bus.serve(subjects.anyAgent.heartbeat, (data, subject) => {
        if (ownSubject(data, subject) === null) this.registry.send({ type: "heartbeat", data });
      }),
    );
    if (this.o.intake) {
      const consumer = serveIntake(
        this.o.intake,
        {
          write: (op, req, caller, key) => this.intake.write(op, req, caller, key),
          refuse: (op, caller, key, err) => this.intake.refuse(op, caller, key, err),
        },
        this.o.log,
      );
      this.intakeStats = consumer.stats;
      this.unserve.push(consumer.stop);
    }
    bus.publish(subjects.leader, { schedulerId: announce.schedulerId, epoch: this.epoch });
    this.o.log.info({ epoch: this.epoch, seq: this.o.state.seq }, "leading; reconciling with the agents");
    const t0 = performance.now();
    await this.reconciled(this.o.policy.reconcileWindowMs);
    if (this.ended) return;
    this.reconciling = false;
    this.o.metrics.reconciled((performance.now() - t0) / 1000);
    this.resumeObligations();
    this.o.changed(); // watchers waiting for a settled leader
    this.o.log.info({ epoch: this.epoch, seq: this.o.state.seq }, "reconciled; placement and timers resume");
  }

  /** The window ends once every agent the log holds ACTIVE has registered with this term, or after windowMs. */
  private reconciled(windowMs: number): Promise<void> {
    if (this.registry.allRegistered()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.o.clock.clearTimeout(timer);
        this.waiter = null;
        resolve();
      };
      const timer = this.o.clock.setTimeout(done, windowMs);
      this.waiter = () => {
        if (this.ended || this.registry.allRegistered()) done();
      };
    });
  }

  /** Checks the reconciliation window after each change (registrations commit, or only change views). */
  private waiter: (() => void) | null = null;
  poke(): void {
    this.waiter?.();
  }

  /** Stop placing, rescheduling and preempting, for the rest of the term (roost dev shutting down). */
  quiesce(): void {
    this.placement.stop();
    this.rescheduler.stop();
    this.updater.stop();
    this.cron.quiesce();
    this.maintenance.quiesce();
    this.preemptor.stop();
  }

  /** The term ends: stop serving and every actor (what they queued is dropped; askers are told). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const u of this.unserve.splice(0)) u();
    for (const a of this.actors) a.stop();
    this.events.stop();
    this.waiter?.();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Work under way inside the term: appends on the wire, messages queued or being handled. */
  busy(): boolean {
    const p = this.appender.pending;
    return p.requests > 0 || p.records > 0 || this.actors.some((a) => a.busy);
  }

  corr(prefix = "s"): string {
    return `${prefix}-${this.epoch}-${++this.corrCounter}`;
  }

  event<T extends EventType>(type: T, data: EventPayloads[T], reason: string, corr?: string): AnyEnvelope {
    return makeEnvelope(type, data, { epoch: this.epoch, ts: this.o.clock.now(), corr: corr ?? this.corr(), reason }) as AnyEnvelope;
  }

  /**
   * Append events atomically; resolves after they are committed and folded.
   *
   * The leader never appends an event its own fold would reject: each event is checked against
   * its schema and against the state (rejection(), the fold's own test, with what the batch
   * itself creates) first. A refusal appends nothing and throws RefusedEventError: a decision
   * that names what does not exist is a bug, and a test or the simulator fails on it.
   *
   * With `recheck`, the batch is checked once every record ahead of it that could change it is
   * folded (see Appender's recheck), and the events that no longer apply are dropped instead: for
   * decisions a record on the wire may overtake (Placement's TaskAssigned of a task being killed,
   * the Rescheduler's next run of an instance being killed).
   */
  async commit(events: AnyEnvelope[], opts: { recheck?: boolean } = {}): Promise<number> {
    const appender = this.appender;
    if (this.ended) throw new Error("this scheduler is not the leader");
    if (!opts.recheck) this.checkBatch(events, false);
    const recheck = opts.recheck ? (batch: AnyEnvelope[]) => this.checkBatch(batch, true) : undefined;
    const overtakenBy = opts.recheck ? this.overtakers(events) : undefined;
    try {
      return await appender.append(events, { recheck, overtakenBy });
    } catch (err) {
      if (appender.failure && !this.ended) this.o.appendFailed(appender.failure);
      throw err;
    }
  }

  /** Which events ahead of this batch may change what it decides: those acting on its tasks or jobs. */
  private overtakers(events: readonly AnyEnvelope[]): (ahead: AnyEnvelope) => boolean {
    // Task ids and job keys, in one set (the task ids the leader makes hold no "/", job keys two).
    const keys = new Set<string>();
    const { state } = this.o;
    const addTask = (id: TaskId): boolean => {
      keys.add(id);
      const job = state.tasks.get(id)?.job;
      if (job !== undefined) keys.add(job);
      return false;
    };
    const addJob = (key: JobKeyString): boolean => {
      keys.add(key);
      return false;
    };
    for (const e of events) touches(e, addTask, addJob);
    const hit = (k: string): boolean => keys.has(k);
    return (ahead) => touches(ahead, hit, hit);
  }

  /**
   * The events of a batch the fold would apply, in order. An event that breaks its schema always
   * throws RefusedEventError (only a bug builds one). One the state rejects throws too, unless
   * `dropStale`: then it is a decision a committed record overtook, and is left out.
   */
  private checkBatch(events: readonly AnyEnvelope[], dropStale: boolean): AnyEnvelope[] {
    const { state, log } = this.o;
    const kept: AnyEnvelope[] = [];
    const overlay = new BatchOverlay();
    for (const e of events) {
      const bad = checkEventData(e.type, e.data);
      const why = bad ? formatProblem(bad, "data") : (rejection(state, e, overlay) ?? (dropStale ? overtaken(state, e) : null));
      if (why !== null) {
        if (dropStale && !bad) {
          log.info({ type: e.type, why }, "dropped a decision a committed record overtook");
          continue;
        }
        const err = new RefusedEventError(e, why);
        log.error({ err: err.message }, "refused to append an event the fold would reject");
        throw err;
      }
      overlay.note(e);
      kept.push(e);
    }
    return kept;
  }

  /** The Appender's onCommit: fold the committed record, then hand its effects to the actors. */
  onCommit(seq: number, events: LogEntry[]): void {
    const { state } = this.o;
    if (seq <= state.seq) return; // a deposed term's record, already folded from the log
    const effects: Effect[] = [];
    foldRecord(state, seq, events, effects);
    const announce = this.endpointsIndexed ? this.endpoints.update(state, events) : null;
    let placed = 0;
    for (const e of events) {
      if (e.type === "TaskAssigned") placed++;
      else if (e.type === "JobUpdateStarted") this.o.metrics.updateEvent({ status: e.data.status });
      else if (e.type === "JobUpdateStateChanged") this.o.metrics.updateEvent({ status: e.data.to });
      else if (e.type === "JobInstanceUpdateEvent") this.o.metrics.updateEvent({ action: e.data.action });
    }
    if (placed > 0) this.o.metrics.placed(placed);
    this.o.folded(seq, events);
    this.events.folded();
    this.poke();
    if (this.ended) return; // effects belong to the term that is leading
    if (announce !== null && announce.length > 0) this.announcer?.send({ type: "changed", keys: announce });
    this.updater.folded(events);
    this.cron.folded(events);
    this.maintenance.folded(events);
    for (const e of effects) {
      if (e.kind === "LAUNCH") this.launcher.send({ type: "launch", taskId: e.taskId });
      else if (e.kind === "KILL")
        this.launcher.send({ type: "kill", taskId: e.taskId, agentId: e.agentId, why: "the task machine ordered a kill" });
      else if (e.kind === "TIMER") this.timers.send({ type: "watch", taskId: e.taskId });
      else this.rescheduler.send({ type: "reschedule", taskId: e.taskId });
    }
    if (state.pending.size > 0) this.placement.kick();
  }

  /** After a takeover, the obligations a previous leader may have left half done. */
  private resumeObligations(): void {
    const { state } = this.o;
    // Only the tasks with an obligation: a snapshot's cold rows are tested on their columns, not built.
    const owes = (st: TaskStateName, reschedule: boolean) =>
      reschedule || st === "ASSIGNED" || TIMED_STATES.includes(st) || KILL_STATES.has(st);
    for (const t of state.tasks.matching(owes)) {
      if (TIMED_STATES.includes(t.state)) this.timers.send({ type: "watch", taskId: t.taskId });
      if (t.rescheduleWanted) this.rescheduler.send({ type: "reschedule", taskId: t.taskId });
      else if (t.state === "ASSIGNED") this.launcher.send({ type: "launch", taskId: t.taskId });
      else if (KILL_STATES.has(t.state)) {
        this.launcher.send({
          type: "kill",
          taskId: t.taskId,
          agentId: t.agentId,
          why: `resuming the kill of a ${t.state} task after a leader change`,
        });
      }
    }
    for (const r of state.reservations.values()) this.timers.send({ type: "watch", taskId: r.taskId });
    if (state.pending.size > 0) this.placement.kick();
    if (this.o.quiesced === null) {
      this.preemptor.start();
      this.updater.start();
    }
    this.health.start();
    this.cron.start(); // quiesced, it takes no trigger
    this.maintenance.start(); // quiesced, it decides nothing
  }
}

/**
 * An agent's message must name the agent of its subject (roost.agent.<id>.<verb>): nats-server's
 * permissions let an agent's user publish only there, and this check holds where no permissions
 * are configured. A refusal, or null when the two agree.
 */
function ownSubject(data: unknown, subject: string): { ok: false; error: string } | null {
  const id = agentOfSubject(subject);
  const named = typeof data === "object" && data !== null ? (data as { agentId?: unknown }).agentId : undefined;
  if (id !== null && named === id) return null;
  return {
    ok: false,
    error: `agentId: ${JSON.stringify(named ?? null)} is not the agent of subject ${subject}; rule: an agent speaks only on roost.agent.<its id>.*`,
  };
}
