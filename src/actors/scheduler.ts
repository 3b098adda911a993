// A scheduler replica. Without a lease (tests, the simulator, a lone scheduler) it replays the log
// and takes over at once. With a lease (roost scheduler) it is a hot standby that follows and
// folds the log until it wins the lease, then takes over:
//   1. fold to the end of the log, append LeaderElected fenced on that sequence (a deposed
//      leader's later records are refused; if one slipped in first, fold it and retry);
//   2. reconciliation window: announce itself on roost.leader; agents re-register and report
//      what they run (AgentRegistry reconciles); wait until every known agent has, or the window
//      ends;
//   3. only then resume placement, timers, preemption and agent health checks.
// It renews the lease every leaseMs/3; a failed renewal, or a fenced append, makes it step down
// at once and go back to following the log.
//
// Its actors, while it leads:
//
//   JobIntake      client requests → JobCreated / TaskCreated / JobKillRequested
//   Placement      PENDING tasks → TaskAssigned               (scheduling/)
//   Launcher       LAUNCH and KILL effects → requests to agents, retried
//   Rescheduler    RESCHEDULE effects → TaskCreated for the next run of the instance
//   StatusIngest   agent status updates → TaskStateChanged, acknowledged after commit
//   AgentRegistry  registrations → AgentRegistered; reconciles what an agent runs
//   AgentHealth    missed heartbeats → AgentStateChanged UNREACHABLE
//   Timers, Preemptor (see their files)
//
// Invariant 1 is kept in one place: commit() appends through the fenced Appender, whose
// onCommit folds each committed record in sequence order and only then hands the effects the
// fold produced to the actors. Nothing mutates the state or touches the world before that.

import { hostname } from "node:os";
import { Appender } from "../eventlog/appender.js";
import { FencedError, LogUnavailableError } from "../eventlog/log.js";
import { makeEnvelope, type AnyEnvelope, type LogEntry } from "../eventlog/envelope.js";
import type { EventPayloads, EventType } from "../domain/events.js";
import type { EventLog } from "../eventlog/log.js";
import type { Bus } from "../bus/bus.js";
import { subjects } from "../bus/bus.js";
import { BatchOverlay, foldRecord, overtaken, rejection, TIMED_STATES, touches, type Effect } from "../replay/fold.js";
import { checkEventData } from "../domain/events.js";
import { formatProblem } from "../domain/validate.js";
import { DEFAULT_ALLOWED_ENVIRONMENTS } from "../spec/jobSpec.js";
import { ClusterState } from "../replay/state.js";
import { coldStart } from "../storage/coldStart.js";
import type { BaseSnapshotStore } from "../storage/snapshotStore.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { AgentHealth } from "./agentHealth.js";
import { AgentRegistry } from "./agentRegistry.js";
import type { Lease } from "./lease.js";
import type { MemberBoard, MemberStatus } from "./members.js";
import { runSliced, snapshotPoint, writesSnapshot } from "./snapshotWriter.js";
import { encodeSnapshotSteps, type EncodedSnapshot } from "../replay/snapshot.js";
import { runSteps } from "../replay/steps.js";
import { JobIntake } from "./jobIntake.js";
import { Launcher } from "./launcher.js";
import { Placement } from "./placement.js";
import { AURORA_POLICY, type SchedulingPolicy } from "./policy.js";
import { randomIds, systemClock, type Clock, type Ids } from "./ports.js";
import { Preemptor } from "./preemptor.js";
import { Rescheduler } from "./rescheduler.js";
import { Timers } from "./timers.js";
import { StatusIngest } from "./statusIngest.js";

/** The leader would not append an event its fold would reject (Scheduler.commit). */
export class RefusedEventError extends Error {
  override name = "RefusedEventError";
  constructor(
    readonly event: AnyEnvelope,
    readonly why: string,
  ) {
    super(`invariant: the leader refused to append ${event.type} (${why}); the fold would skip it`);
  }
}

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
  /** Environments a job may name (Aurora's allowed_job_environments); default ^(prod|devel|test|staging\d*)$. */
  allowedEnvironments?: RegExp;
  /** High availability: compete for this lease instead of taking over at once. */
  lease?: Lease;
  /** Where replicas say who they are (roost cluster status). */
  members?: MemberBoard;
  /** Snapshots: a cold start loads the newest valid one; one is written every snapshotEvery
   *  events, by a standby when there is one (see snapshotWriter.ts). */
  snapshots?: BaseSnapshotStore;
  snapshotEvery?: number;
  /** A standby encodes a snapshot this many ms at a time between turns of its event loop. Default 10. */
  snapshotSliceMs?: number;
}

export class Scheduler {
  /** The folded state. Replaced once, at start, when a snapshot is loaded; only the fold changes it. */
  state = new ClusterState();
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
  readonly allowedEnvironments: RegExp;
  epoch = 0;
  role: "replaying" | "standby" | "leader" | "stopped" = "replaying";
  /** True between LeaderElected and the end of the reconciliation window. */
  reconciling = false;
  /** Leader changes this replica went through (for tests and metrics). */
  terms = 0;
  /** Why this replica stopped placing (quiesce()); null while it places. */
  quiesced: string | null = null;

  // The actors of one term as leader; a replica that steps down gets fresh ones next term.
  intake!: JobIntake;
  placement!: Placement;
  launcher!: Launcher;
  rescheduler!: Rescheduler;
  statusIngest!: StatusIngest;
  agents!: AgentRegistry;
  timers!: Timers;
  preemptor!: Preemptor;
  health!: AgentHealth;

  private readonly lease: Lease | null;
  private readonly members: MemberBoard | null;
  private readonly snapshots: BaseSnapshotStore | null;
  private readonly snapshotEvery: number;
  private readonly snapshotSliceMs: number;
  /** snapshotPoint() of the state last folded: a snapshot is due when it grows. */
  private snapshotPointSeen = 0;
  /** The members board as last read (null: no board, or not read yet). */
  private membersSeen: MemberStatus[] | null = null;
  private membersReadAt = -Infinity;
  /** How this replica's state was built at start: from which snapshot (null: the whole log). */
  startedFrom: { snapshot: string | null; snapshotSeq: number; tailRecords: number; skipped: number } | null = null;
  private snapshotting = false;
  /** Snapshots this replica encoded and began storing (for tests and the log). */
  snapshotsWritten = 0;
  private holdEnd: ((why: string) => void) | null = null;
  private checkingLog = false;
  private renewTimer: unknown = null;
  private memberTimer: unknown = null;
  private electing: Promise<void> | null = null;
  private standbyAbort: AbortController | null = null;

  private appender: Appender | null = null;
  /** The log itself, for reads (task history reasons). Writes go through commit(). */
  readonly eventLog: EventLog;
  private readonly unserve: Array<() => void> = [];
  private readonly onFatal: (err: Error) => void;
  private corrCounter = 0;
  private readonly listeners = new Set<(seq: number, events?: readonly LogEntry[]) => void>();

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
    this.allowedEnvironments = opts.allowedEnvironments ?? DEFAULT_ALLOWED_ENVIRONMENTS;
    this.onFatal = opts.onFatal ?? ((err) => this.log.fatal({ err }, "scheduler stopped"));
    this.lease = opts.lease ?? null;
    this.members = opts.members ?? null;
    this.snapshots = opts.snapshots ?? null;
    this.snapshotEvery = opts.snapshotEvery ?? 100_000;
    this.snapshotSliceMs = opts.snapshotSliceMs ?? 10;
    this.makeActors();
  }

  private makeActors(): void {
    this.intake = new JobIntake(this);
    this.placement = new Placement(this);
    this.launcher = new Launcher(this);
    this.rescheduler = new Rescheduler(this);
    this.statusIngest = new StatusIngest(this);
    this.agents = new AgentRegistry(this);
    this.timers = new Timers(this);
    this.preemptor = new Preemptor(this);
    this.health = new AgentHealth(this);
    if (this.quiesced !== null) this.quiesceActors();
  }

  /**
   * Stop placing, rescheduling and preempting, for good (a cluster shutting down: its tasks are
   * about to be killed, and replacements would only be launched on agents that are going away).
   * Everything else goes on: requests are answered, status updates recorded (the KILLEDs of the
   * shutdown reach the log), kills carried out, timers and agent health kept. Obligations such as
   * rescheduleWanted stay in the state, for a later leader to resume. A replica told this stays
   * quiesced if it steps down and leads again; a standby told this is quiesced once it leads.
   */
  quiesce(why: string): void {
    if (this.quiesced !== null) return;
    this.quiesced = why;
    this.quiesceActors();
    this.log.info({ why, role: this.role, epoch: this.epoch }, "quiesced: no more placement, rescheduling or preemption");
  }

  private quiesceActors(): void {
    this.placement.stop();
    this.rescheduler.stop();
    this.preemptor.stop();
  }

  /**
   * Replay the log. Without a lease, take over at once (resolves once leading). With a lease,
   * become a standby that competes for it in the background (resolves once caught up).
   */
  async start(): Promise<void> {
    const t0 = Date.now();
    if (this.snapshots && this.state.seq === 0) {
      const cold = await coldStart(this.eventLog, this.snapshots);
      this.state = cold.state;
      this.startedFrom = {
        snapshot: cold.fromSnapshot,
        snapshotSeq: cold.snapshotSeq,
        tailRecords: cold.tailRecords,
        skipped: cold.skipped.length,
      };
      // Points passed since the snapshot started from (all of them, from genesis) make the next
      // one due at once: a cell restarted over a long log gets a snapshot soon.
      this.snapshotPointSeen = snapshotPoint(cold.fromSnapshot ? this.state.eventCount - cold.tailEvents : 0, this.snapshotEvery);
      for (const k of cold.skipped) this.log.warn({ snapshot: k.name, error: k.error }, "skipped a snapshot that would not load");
      this.log.info({ snapshot: cold.fromSnapshot, snapshotSeq: cold.snapshotSeq, tailRecords: cold.tailRecords }, "cold start");
    }
    // A replica that starts while the stream elects a leader (a nats-server was lost) waits for it
    // instead of exiting.
    for (;;) {
      try {
        await this.catchUp();
        break;
      } catch (err) {
        if (!(err instanceof LogUnavailableError) || this.stopped) throw err;
        this.log.warn({ err: err.message, seq: this.state.seq }, "the log is unavailable; replaying again shortly");
        await this.sleep(500);
      }
    }
    this.log.info({ seq: this.state.seq, events: this.state.eventCount, ms: Date.now() - t0 }, "replayed the log");
    this.publishMember();
    if (!this.lease) return this.takeOver((this.state.leader?.epoch ?? 0) + 1);
    this.role = "standby";
    this.electing = this.elect(this.lease);
  }

  async stop(): Promise<void> {
    if (this.role === "stopped") return;
    const wasLeader = this.role === "leader";
    this.role = "stopped";
    this.standbyAbort?.abort();
    this.wakeSleepers();
    this.notifyChange(); // wakes a reconciliation window that waits on changes
    this.holdEnd?.("stopping");
    this.stopTerm();
    if (this.memberTimer !== null) this.clock.clearTimeout(this.memberTimer);
    await this.appender?.flush().catch(() => {});
    if (wasLeader) await this.lease?.release();
    await this.electing?.catch(() => {});
  }

  /**
   * Die abruptly, as under SIGKILL: stop acting at once, keep the lease (it expires), flush
   * nothing. For the simulator and fault tests.
   */
  crash(): void {
    if (this.role === "stopped") return;
    this.role = "stopped";
    this.standbyAbort?.abort();
    this.wakeSleepers();
    this.notifyChange();
    if (this.renewTimer !== null) this.clock.clearTimeout(this.renewTimer);
    this.holdEnd = null;
    this.stopTerm();
    if (this.memberTimer !== null) this.clock.clearTimeout(this.memberTimer);
  }

  /** Fold every record the log holds beyond what this replica has folded. */
  private async catchUp(): Promise<void> {
    for await (const r of this.eventLog.read(this.state.seq + 1)) this.foldFollowed(r.seq, r.events);
  }

  /** Fold a record read from the log (not one this replica just committed): no effects. */
  private foldFollowed(seq: number, events: LogEntry[]): void {
    if (seq <= this.state.seq) return; // already folded (our own commit, seen again)
    foldRecord(this.state, seq, events);
    this.notifyChange(events);
  }

  /** Standby: follow the live log until aborted, retrying after errors. */
  private async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const r of this.eventLog.follow(this.state.seq + 1, signal)) {
          this.foldFollowed(r.seq, r.events);
          if (this.snapshotDue() && this.writesSnapshot("standby")) await this.checkpoint(signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn({ err: (err as Error).message }, "following the log failed; retrying");
        await this.sleep(500);
      }
    }
  }

  /** Sleeps end early when the replica stops (the clock may be virtual and stand still). */
  private readonly sleepers = new Set<() => void>();
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const h = this.clock.setTimeout(() => {
        this.sleepers.delete(wake);
        resolve();
      }, ms);
      const wake = () => {
        this.clock.clearTimeout(h);
        resolve();
      };
      this.sleepers.add(wake);
    });
  }

  private wakeSleepers(): void {
    for (const w of [...this.sleepers]) w();
    this.sleepers.clear();
  }

  /** Standby until the lease is won; lead until it is lost; and again, until stopped. */
  private async elect(lease: Lease): Promise<void> {
    const me = { id: this.schedulerId, host: this.host, pid: this.pid };
    while (!this.stopped) {
      this.standbyAbort = new AbortController();
      const following = this.follow(this.standbyAbort.signal);
      let epoch: number | null = null;
      while (!this.stopped) {
        epoch = await lease.tryAcquire(me);
        if (epoch !== null) break;
        await this.sleep(lease.leaseMs / 4);
      }
      this.standbyAbort.abort();
      await following;
      if (this.stopped || epoch === null) {
        if (epoch !== null) await lease.release();
        return;
      }
      let why: string;
      try {
        const held = this.hold(lease);
        await this.takeOver(epoch);
        why = await held;
      } catch (err) {
        why = `the takeover failed: ${(err as Error).message}`;
        // Stop renewing and give the lease up: a replica that renews a lease it does not use
        // keeps every other replica from taking over, and the cell has no leader at all.
        this.holdEnd?.(why);
        await lease.release();
      }
      this.stepDown(why);
    }
  }

  /** Renew the lease every leaseMs/3; resolves with why leadership ended. */
  private hold(lease: Lease): Promise<string> {
    return new Promise<string>((resolve) => {
      this.holdEnd = (why) => {
        this.holdEnd = null;
        if (this.renewTimer !== null) this.clock.clearTimeout(this.renewTimer);
        this.renewTimer = null;
        resolve(why);
      };
      const tick = async () => {
        this.renewTimer = null;
        if (this.holdEnd === null) return;
        try {
          await lease.renew();
        } catch (err) {
          return this.holdEnd?.((err as Error).message);
        }
        if (this.holdEnd !== null) this.renewTimer = this.clock.setTimeout(() => void tick(), lease.leaseMs / 3);
        // Not awaited: a slow log must not delay the next renewal.
        if (!this.checkingLog) {
          this.checkingLog = true;
          void this.supersededInLog()
            .then((yes) => {
              if (yes) this.holdEnd?.("another writer appended to the log while this replica held the lease");
            })
            .finally(() => {
              this.checkingLog = false;
            });
        }
      };
      this.renewTimer = this.clock.setTimeout(() => void tick(), lease.leaseMs / 3);
    });
  }

  /**
   * True when the log holds a record this leader did not write. A leader does not follow the log,
   * so without this it learns of a successor only when its own next append is refused, and an idle
   * leader never does: it keeps answering requests from a stale state. It happens when the lease
   * is granted twice (seen on nats-server 2.9.10 after a member's loss: one replica kept renewing
   * while another was granted the lease and took over the log). Checked after each renewal, only
   * with nothing of ours on the wire (a record of ours that landed is then already folded).
   */
  private async supersededInLog(): Promise<boolean> {
    const a = this.appender;
    if (!this.leading || !a) return false;
    const seq = this.state.seq;
    const idle = () => a.pending.records === 0 && a.pending.requests === 0;
    if (!idle()) return false;
    let last: number;
    try {
      last = await this.eventLog.lastSeq();
    } catch {
      return false; // the log is unreachable: the lease decides
    }
    return last > seq && this.state.seq === seq && idle() && this.appender === a && this.leading;
  }

  /** Fenced takeover, reconciliation window, then resume (see the file comment). */
  private async takeOver(leaseEpoch: number): Promise<void> {
    let epoch = leaseEpoch;
    for (let attempt = 0; ; attempt++) {
      await this.catchUp();
      // Epochs only grow along the log. The lease revision normally does too, but not always: after
      // a nats-server loss the lease bucket's sequence can restart lower (seen on 2.9.10: a
      // LeaderElected at epoch 141 after one at 148), and agents refuse to register with a
      // leader older than one that announced itself, forever.
      epoch = Math.max(leaseEpoch, (this.state.leader?.epoch ?? 0) + 1);
      this.epoch = epoch;
      const appender = new Appender(this.eventLog, {
        lastSeq: this.state.seq,
        writerId: `${this.schedulerId}:${epoch}:${attempt}`,
        onCommit: (seq, events) => this.onCommit(seq, events),
      });
      this.appender = appender;
      const elected = this.event(
        "LeaderElected",
        { schedulerId: this.schedulerId, epoch, host: this.host, pid: this.pid },
        `${this.schedulerId} took over at epoch ${epoch} after folding ${this.state.seq} records`,
      );
      try {
        await appender.append([elected]);
        break;
      } catch (err) {
        // A deposed leader's record landed after we caught up: fold it and try again.
        if (!(err instanceof FencedError) || attempt >= 20 || this.stopped) throw err;
      }
    }
    if (this.stopped) return;
    this.role = "leader";
    this.terms++;
    this.reconciling = true;
    this.agents.beginTerm();
    this.unserve.push(...this.intake.serve(), ...this.statusIngest.serve(), ...this.agents.serve());
    this.bus.publish(subjects.leader, { schedulerId: this.schedulerId, epoch });
    this.publishMember();
    this.log.info({ epoch, seq: this.state.seq }, "leading; reconciling with the agents");
    await this.agents.reconciled(this.policy.reconcileWindowMs);
    if (!this.leading) return;
    this.reconciling = false;
    this.resumeObligations();
    this.notifyChange(); // the role changed: watchers waiting for a settled leader
    this.log.info({ epoch, seq: this.state.seq }, "reconciled; placement and timers resume");
  }

  /** End this term: stop serving and acting, forget in-memory views, follow the log again. */
  private stepDown(why: string): void {
    if (this.role === "stopped") return;
    this.log.warn({ why, epoch: this.epoch }, "stepping down");
    this.stopTerm();
    this.role = "standby";
    this.reconciling = false;
    this.appender = null;
    this.makeActors();
    this.publishMember();
  }

  private stopTerm(): void {
    for (const u of this.unserve.splice(0)) u();
    this.launcher.stop();
    this.placement.stop();
    this.timers.stop();
    this.preemptor.stop();
    this.health.stop();
  }

  /** Say who this replica is and how far it has folded (every second, while it runs). */
  private publishMember(): void {
    if (!this.members || this.role === "stopped") return;
    if (this.memberTimer !== null) this.clock.clearTimeout(this.memberTimer);
    void this.members
      .put({
        id: this.schedulerId,
        pid: this.pid,
        host: this.host,
        role: this.role === "leader" ? "leader" : "standby",
        epoch: this.role === "leader" ? this.epoch : (this.state.leader?.epoch ?? 0),
        appliedSeq: this.state.seq,
        ts: this.clock.now(),
      })
      .catch(() => {});
    if (this.clock.now() - this.membersReadAt >= 2000) void this.readMembers();
    this.memberTimer = this.clock.setTimeout(() => {
      this.memberTimer = null;
      this.publishMember();
    }, 1000);
  }

  /** Read the members board: who else is there, for choosing the snapshot writer (snapshotWriter.ts). */
  async readMembers(): Promise<void> {
    if (!this.members) return;
    this.membersReadAt = this.clock.now();
    try {
      this.membersSeen = await this.members.list();
    } catch {
      // keep the last view; the board is only a hint
    }
  }

  get leading(): boolean {
    return this.role === "leader";
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  get stopped(): boolean {
    return this.role === "stopped";
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

  /**
   * Append events atomically; resolves after they are committed and folded.
   *
   * The leader never appends an event its own fold would reject: each event is checked against
   * its schema and against the state (rejection(), the fold's own test, with what the batch
   * itself creates) first. A refusal appends nothing and throws RefusedEventError: a decision
   * that names what does not exist is a bug, and a test or the simulator fails on it.
   *
   * With `recheck`, the batch is checked once every record ahead of it is folded (see
   * Appender's recheck), and the events that no longer apply are dropped instead: for decisions
   * a record on the wire may overtake (Placement's TaskAssigned of a task being killed).
   */
  async commit(events: AnyEnvelope[], opts: { recheck?: boolean } = {}): Promise<number> {
    const appender = this.appender;
    if (!appender || this.role === "stopped") throw new Error("this scheduler is not the leader");
    if (!opts.recheck) this.checkBatch(events, false);
    const recheck = opts.recheck ? (batch: AnyEnvelope[]) => this.checkBatch(batch, true) : undefined;
    const overtakenBy = opts.recheck ? this.overtakers(events) : undefined;
    try {
      return await appender.append(events, { recheck, overtakenBy });
    } catch (err) {
      if (appender.failure && this.leading && appender === this.appender) {
        // With a lease, step down and stay a standby. holdEnd may already be null: the lease was
        // lost (a failed renewal, often in the same moment as this refusal) and the step-down
        // is under way; that is no reason to stop the process.
        if (this.lease) this.holdEnd?.(`the log refused our append: ${appender.failure.message}`);
        else {
          void this.stop();
          this.onFatal(appender.failure);
        }
      }
      throw err;
    }
  }

  /** Which events ahead of this batch may change what it decides: those acting on its tasks or jobs. */
  private overtakers(events: readonly AnyEnvelope[]): (ahead: AnyEnvelope) => boolean {
    const keys = new Set<string>();
    const add = (k: string): boolean => {
      keys.add(k);
      const job = this.state.tasks.get(k)?.job;
      if (job !== undefined) keys.add(job);
      return false;
    };
    for (const e of events) touches(e, add);
    const hit = (k: string): boolean => keys.has(k);
    return (ahead) => touches(ahead, hit);
  }

  /**
   * The events of a batch the fold would apply, in order. An event that breaks its schema always
   * throws RefusedEventError (only a bug builds one). One the state rejects throws too, unless
   * `dropStale`: then it is a decision a committed record overtook, and is left out.
   */
  private checkBatch(events: readonly AnyEnvelope[], dropStale: boolean): AnyEnvelope[] {
    const kept: AnyEnvelope[] = [];
    const overlay = new BatchOverlay();
    for (const e of events) {
      const bad = checkEventData(e.type, e.data);
      const why = bad ? formatProblem(bad, "data") : (rejection(this.state, e, overlay) ?? (dropStale ? overtaken(this.state, e) : null));
      if (why !== null) {
        if (dropStale && !bad) {
          this.log.info({ type: e.type, why }, "dropped a decision a committed record overtook");
          continue;
        }
        const err = new RefusedEventError(e, why);
        this.log.error({ err: err.message }, "refused to append an event the fold would reject");
        throw err;
      }
      overlay.note(e);
      kept.push(e);
    }
    return kept;
  }

  /**
   * Be told after each committed record is folded, and when in-memory views (pending reasons)
   * change. Tests and watchers await state this way.
   */
  onChange(listener: (seq: number, events?: readonly LogEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `events` is set when the change is a committed record (then they are its events). */
  notifyChange(events?: readonly LogEntry[]): void {
    for (const l of this.listeners) l(this.state.seq, events);
  }

  private onCommit(seq: number, events: LogEntry[]): void {
    if (seq <= this.state.seq) return; // a deposed term's record, already folded from the log
    const effects: Effect[] = [];
    foldRecord(this.state, seq, events, effects);
    this.notifyChange(events);
    if (this.role !== "leader") return; // effects belong to the term that is leading
    this.maybeSnapshot();
    for (const e of effects) {
      if (e.kind === "LAUNCH") this.launcher.launch(e.taskId);
      else if (e.kind === "KILL") this.launcher.kill(e.taskId, e.agentId, "the task machine ordered a kill");
      else if (e.kind === "TIMER") this.timers.watch(e.taskId);
      else this.rescheduler.reschedule(e.taskId);
    }
    if (this.state.pending.size > 0) this.placement.kick();
  }

  /** True once per snapshot point the fold passes (see snapshotWriter.ts); every replica calls it after each fold. */
  private snapshotDue(): boolean {
    if (!this.snapshots) return false;
    const point = snapshotPoint(this.state.eventCount, this.snapshotEvery);
    if (point <= this.snapshotPointSeen) return false;
    this.snapshotPointSeen = point;
    return !this.snapshotting;
  }

  /** Whether this replica, in this role, writes the snapshot that is due (snapshotWriter.ts). */
  private writesSnapshot(role: "leader" | "standby"): boolean {
    return writesSnapshot({ id: this.schedulerId, role }, this.members ? this.membersSeen : null, this.clock.now());
  }

  /**
   * The leader, when no standby can: it decides on a fresh read of the board (a stale view could
   * pause it for nothing), then encodes the state as it is by then, at once (its loop pauses).
   */
  private maybeSnapshot(): void {
    if (!this.snapshotDue()) return;
    this.snapshotting = true;
    void this.readMembers().then(() => {
      this.snapshotting = false;
      if (!this.leading || !this.writesSnapshot("leader")) return;
      const t0 = performance.now();
      const encoded = runSteps(encodeSnapshotSteps(this.state, { createdTs: this.clock.now(), stream: this.snapshots?.stream }));
      this.storeSnapshot(encoded, performance.now() - t0);
    });
  }

  /**
   * A standby writes the snapshot: folding stops (the caller awaits this) while the state is
   * encoded a slice at a time; the upload runs after folding resumes. Dropped if the replica
   * stops following (it won the lease, or stops).
   */
  private async checkpoint(signal: AbortSignal): Promise<void> {
    const t0 = performance.now();
    const state = this.state;
    const seq = state.seq;
    const encoded = await runSliced(encodeSnapshotSteps(state, { createdTs: this.clock.now(), stream: this.snapshots?.stream }), {
      sliceMs: this.snapshotSliceMs,
      signal,
    });
    if (encoded === null) {
      this.log.info({ seq: this.state.seq }, "dropped a snapshot half encoded: this replica stopped following");
      return;
    }
    // The state must have held still: a fold during the encoding would have mixed two states.
    if (this.state !== state || state.seq !== seq || encoded.header.seq !== seq) {
      throw new Error(`invariant: the state moved from seq ${seq} to ${this.state.seq} while a snapshot of it was encoded`);
    }
    this.storeSnapshot(encoded, performance.now() - t0);
  }

  private storeSnapshot(encoded: EncodedSnapshot, encodeMs: number): void {
    const store = this.snapshots!;
    this.snapshotting = true;
    this.snapshotsWritten++;
    store
      .putEncoded(encoded)
      .then((p) => {
        this.log.info(
          { snapshot: p.name, seq: p.seq, bytes: p.size, encodeMs: Math.round(encodeMs), writeMs: Math.round(p.writeMs), role: this.role },
          "wrote a snapshot",
        );
        return store.prune(3);
      })
      .catch((err: Error) => this.log.warn({ err: err.message }, "writing a snapshot failed; the log still has everything"))
      .finally(() => {
        this.snapshotting = false;
      });
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
    if (this.quiesced === null) this.preemptor.start();
    this.health.start();
  }
}
