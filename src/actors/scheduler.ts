// A scheduler replica. Without a lease (tests, the simulator, a lone scheduler) it replays the log
// and takes over at once. With a lease (roost scheduler) it is a hot standby that follows and
// folds the log until it wins the lease, then takes over:
//   1. fold to the end of the log, append LeaderElected fenced on that sequence (a deposed
//      leader's later records are refused; if one slipped in first, fold it and retry; a log
//      that does not answer, a stream electing its leader, is asked again while the lease holds);
//   2. begin a leader term (term.ts): its actors, the reconciliation window, then placement,
//      timers, preemption and agent health checks;
//   3. renew the lease every leaseMs/3; a failed renewal, a fenced append, or a record in the log
//      it did not write ends the term at once, and the replica follows the log again.
// A standby does not wait out a dead leader's lease: it evicts a holder whose process no longer
// answers on its alive subject ("no responders", not a timeout: lease.ts says why that is safe).
//
// Three parts, one concern each: this file is the replica (cold start, following, the lease and
// election, the members board); term.ts is a leader term (commit → fold → effects, and the
// actors); snapshotWriter.ts decides who writes snapshots and writes them.

import type { IntakeSource } from "../eventlog/intake.js";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Appender } from "../eventlog/appender.js";
import { FencedError, LogUnavailableError } from "../eventlog/log.js";
import { makeEnvelope, type AnyEnvelope, type LogEntry } from "../eventlog/envelope.js";
import type { EventPayloads, EventType } from "../domain/events.js";
import type { EventLog } from "../eventlog/log.js";
import { NoResponderError, subjects, type Bus } from "../bus/bus.js";
import { foldRecord } from "../replay/fold.js";
import { DEFAULT_ALLOWED_ENVIRONMENTS } from "../spec/jobSpec.js";
import { ClusterState } from "../replay/state.js";
import { coldStart } from "../storage/coldStart.js";
import type { BaseSnapshotStore } from "../storage/snapshotStore.js";
import type { EndpointStore } from "../storage/discoveryBucket.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { SchedulerMetrics } from "../metrics/scheduler.js";
import type { ActorStats } from "./actor.js";
import type { Lease } from "./lease.js";
import type { MemberBoard, MemberStatus } from "./members.js";
import { SnapshotWriter } from "./snapshotWriter.js";
import { AURORA_POLICY, type SchedulingPolicy } from "./policy.js";
import { randomIds, systemClock, type Clock, type Ids } from "./clock.js";
import { LeaderTerm } from "./term.js";

export { RefusedEventError } from "./term.js";

/**
 * Between the two "no responders" that evict a lease holder (actors/lease.ts): longer than a live
 * holder takes to reconnect to another nats-server when its own dies (the client tries the next
 * server at once; its subscriptions follow), so that loss alone does not cost a leader change.
 */
const PROBE_GAP_MS = 300;
/** Cold task rows built per turn after a cold start (~10 ms of work at ~2.5 µs a row). */
const WARM_ROWS = 4096;
/** A holder that has not answered by then is alive but slow: not evicted. */
const PROBE_TIMEOUT_MS = 250;
/** Takeover attempts refused by the fence (a deposed leader's records kept landing) before giving up. */
const TAKEOVER_FENCED_RETRIES = 20;
/**
 * How long a takeover keeps trying a log that does not answer, while the lease is its own: past
 * a stream's leader election on nats-server 2.9.10 (4-9 s in the failover bench).
 */
const TAKEOVER_UNAVAILABLE_MS = 15_000;
/** Between takeover attempts on a log that did not answer. */
const TAKEOVER_UNAVAILABLE_PAUSE_MS = 250;
/** How long a takeover attempt waits for the log to say where it ends (EventLog.probe). */
const TAKEOVER_PROBE_TIMEOUT_MS = 1000;

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
  /**
   * How often a standby looks at the lease and asks its holder whether it lives (ms, default
   * 100). A dead holder is evicted after two "no responders" in a row (actors/lease.ts).
   */
  leaseProbeMs?: number;
  /** The durable intake (roost.intake.v1.>), consumed while this replica leads. */
  intake?: IntakeSource;
  /** Where replicas say who they are (roost cluster status). */
  members?: MemberBoard;
  /** Service discovery: the bucket a leader keeps equal to its fold (announcer.ts); none: nothing is announced. */
  discovery?: EndpointStore;
  /** Snapshots: a cold start loads the newest valid one; one is written every snapshotEvery
   *  events, by a standby when there is one (see snapshotWriter.ts). */
  snapshots?: BaseSnapshotStore;
  snapshotEvery?: number;
  /** A standby encodes a snapshot this many ms at a time between turns of its event loop. Default 10. */
  snapshotSliceMs?: number;
  /** A leader with no standby encodes snapshots of at most this many tasks (snapshotWriter.ts). Default LEADER_ENCODE_MAX_TASKS. */
  leaderSnapshotMaxTasks?: number;
  /** Where this replica's Prometheus metrics go (one SchedulerMetrics per replica); default: a fresh one. */
  metrics?: SchedulerMetrics;
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
  /** Leader changes this replica went through (for tests and metrics). */
  terms = 0;
  /** Its Prometheus metrics: serve `metrics.registry` (metrics/http.ts). */
  readonly metrics: SchedulerMetrics;
  /** Why this replica stopped placing (quiesce()); null while it places. */
  quiesced: string | null = null;

  /** The term this replica leads, while it leads. */
  term: LeaderTerm | null = null;

  private readonly lease: Lease | null;
  private readonly leaseProbeMs: number;
  /** This process's token: it answers on subjects.schedulerAlive(token) while it lives (actors/lease.ts). */
  private readonly token = randomBytes(8).toString("hex");
  private unserveAlive: (() => void) | null = null;
  private readonly intakeSource: IntakeSource | null;
  private readonly discovery: EndpointStore | null;
  private readonly members: MemberBoard | null;
  private readonly snapshots: BaseSnapshotStore | null;
  private readonly snapshotWriter: SnapshotWriter | null;
  /** The members board as last read (null: no board, or not read yet). */
  private membersSeen: MemberStatus[] | null = null;
  private membersReadAt = -Infinity;
  /** How this replica's state was built at start: from which snapshot (null: the whole log). */
  startedFrom: { snapshot: string | null; snapshotSeq: number; tailRecords: number; skipped: number } | null = null;
  private holdEnd: ((why: string) => void) | null = null;
  private checkingLog = false;
  private renewTimer: unknown = null;
  private memberTimer: unknown = null;
  private electing: Promise<void> | null = null;
  private standbyAbort: AbortController | null = null;

  /** The log itself, for reads (task history reasons). Writes go through the term's commit(). */
  readonly eventLog: EventLog;
  private readonly onFatal: (err: Error) => void;
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
    this.leaseProbeMs = opts.leaseProbeMs ?? 100;
    this.intakeSource = opts.intake ?? null;
    this.discovery = opts.discovery ?? null;
    this.members = opts.members ?? null;
    this.snapshots = opts.snapshots ?? null;
    this.metrics = opts.metrics ?? new SchedulerMetrics();
    this.metrics.watch({
      state: () => this.state,
      leading: () => this.leading,
      epoch: () => (this.leading ? this.epoch : (this.state.leader?.epoch ?? 0)),
      pendingReason: (job, configVersion) => this.term?.placement.reasonForGroup(job, configVersion),
      mailboxes: () => this.actorStats(),
      logLastSeq: () => this.eventLog.lastSeq(),
    });
    this.snapshotWriter = this.snapshots
      ? new SnapshotWriter({
          store: this.snapshots,
          every: opts.snapshotEvery ?? 100_000,
          sliceMs: opts.snapshotSliceMs ?? 10,
          id: this.schedulerId,
          clock: this.clock,
          log: this.log,
          members: () => (this.members ? this.membersSeen : null),
          readMembers: () => this.readMembers(),
          ...(opts.leaderSnapshotMaxTasks !== undefined ? { leaderMaxTasks: opts.leaderSnapshotMaxTasks } : {}),
        })
      : null;
  }

  /** The current term, or an error naming why there is none (for the actor getters below). */
  private leaderTerm(): LeaderTerm {
    if (!this.term) throw new Error(`this scheduler is not the leader (${this.role})`);
    return this.term;
  }

  // The current term's actors, for tests and tools: each is reached only by messages (these
  // objects' public methods send them).
  get intake() {
    return this.leaderTerm().intake;
  }
  get reads() {
    return this.leaderTerm().reads;
  }
  get placement() {
    return this.leaderTerm().placement;
  }
  get launcher() {
    return this.leaderTerm().launcher;
  }
  get rescheduler() {
    return this.leaderTerm().rescheduler;
  }
  get statusIngest() {
    return this.leaderTerm().statusIngest;
  }
  get agents() {
    return this.leaderTerm().registry;
  }
  get timers() {
    return this.leaderTerm().timers;
  }
  get preemptor() {
    return this.leaderTerm().preemptor;
  }
  get health() {
    return this.leaderTerm().health;
  }
  get announcer() {
    return this.leaderTerm().announcer;
  }

  /** The leader's actors: mailbox depth and what each is handling (empty when not leading). */
  actorStats(): ActorStats[] {
    return this.term?.stats() ?? [];
  }

  /** True between LeaderElected and the end of the reconciliation window. */
  get reconciling(): boolean {
    return this.term?.isReconciling ?? false;
  }

  /** Snapshots this replica encoded and began storing (for tests and the log). */
  get snapshotsWritten(): number {
    return this.snapshotWriter?.written ?? 0;
  }

  /** Snapshots due that this replica, leading with no standby, left to others: its state was too large to encode on its own loop. */
  get snapshotsLeftByLeader(): number {
    return this.snapshotWriter?.leaderSkipped ?? 0;
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
    this.term?.quiesce();
    this.log.info({ why, role: this.role, epoch: this.epoch }, "quiesced: no more placement, rescheduling or preemption");
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
      this.snapshotWriter?.startedAt(cold.fromSnapshot ? this.state.eventCount - cold.tailEvents : 0);
      for (const k of cold.skipped) this.log.warn({ snapshot: k.name, error: k.error }, "skipped a snapshot that would not load");
      this.log.info({ snapshot: cold.fromSnapshot, snapshotSeq: cold.snapshotSeq, tailRecords: cold.tailRecords }, "cold start");
      this.warmTasks(this.state);
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
    this.metrics.coldStarted((Date.now() - t0) / 1000);
    this.publishMember();
    if (!this.lease) return this.takeOver((this.state.leader?.epoch ?? 0) + 1);
    this.unserveAlive = this.bus.serve(subjects.schedulerAlive(this.token), () => ({ ok: true, id: this.schedulerId }));
    this.role = "standby";
    this.electing = this.elect(this.lease);
  }

  /**
   * Build the snapshot's cold task rows into records in the background, WARM_ROWS a turn, so that
   * the first full scan (a view, a snapshot of this replica's own) finds objects and does not pause
   * the replica for the seconds building millions of them takes (src/replay/taskMap.ts). Lookups
   * build the rows they need meanwhile.
   */
  private warmTasks(state: ClusterState): void {
    const slice = () => {
      if (this.role === "stopped" || this.state !== state) return;
      if (state.tasks.warm(WARM_ROWS) > 0) this.clock.setTimeout(slice, 0);
      else this.log.info({ tasks: state.tasks.size }, "every task of the snapshot is built");
    };
    if (state.tasks.coldRows > 0) this.clock.setTimeout(slice, 0);
  }

  async stop(): Promise<void> {
    if (this.role === "stopped") return;
    const wasLeader = this.role === "leader";
    this.role = "stopped";
    this.standbyAbort?.abort();
    this.wakeSleepers();
    this.notifyChange(); // wakes a reconciliation window that waits on changes
    this.holdEnd?.("stopping");
    const appender = this.term?.appender;
    this.endTerm();
    if (this.memberTimer !== null) this.clock.clearTimeout(this.memberTimer);
    await appender?.flush().catch(() => {});
    if (wasLeader) await this.lease?.release();
    this.unserveAlive?.();
    this.unserveAlive = null;
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
    this.endTerm();
    if (this.memberTimer !== null) this.clock.clearTimeout(this.memberTimer);
    // Its connection dies with it: standbys asking whether it lives hear "no responders".
    this.unserveAlive?.();
    this.unserveAlive = null;
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
          await this.snapshotWriter?.asStandby(() => this.state, signal);
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
    const me = { id: this.schedulerId, host: this.host, pid: this.pid, token: this.token };
    while (!this.stopped) {
      this.standbyAbort = new AbortController();
      const following = this.follow(this.standbyAbort.signal);
      let epoch: number | null = null;
      let asked = 0;
      while (!this.stopped) {
        asked = this.clock.now();
        epoch = await lease.tryAcquire(me);
        if (epoch !== null) break;
        await this.awaitVacancy(lease);
      }
      // Renew from the moment the lease was asked for, while the follower winds down: that can
      // take seconds (a consumer on a nats-server that just died), and a lease first renewed a
      // third of a lease after that ran out under its new holder (the failover bench's nats-loss
      // runs: a second replica won the lease 2-4 s after the first, whose appends the log fenced).
      let lost: string | null = null;
      const held = epoch !== null && !this.stopped ? this.hold(lease, asked).then((why) => (lost = why)) : null;
      this.standbyAbort.abort();
      await following;
      if (this.stopped || epoch === null) {
        this.holdEnd?.("stopping");
        if (epoch !== null) await lease.release();
        return;
      }
      if (lost !== null) {
        this.log.warn({ why: lost }, "the lease was lost before the takeover began");
        continue;
      }
      let why: string;
      try {
        await this.takeOver(epoch, () => lost === null);
        why = await held!;
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

  /**
   * Standby: returns when the lease may be free: no holder, a dead holder evicted, or leaseMs/4
   * passed (try again anyway). Every leaseProbeMs it reads the lease and asks the holder whether
   * it lives.
   */
  private async awaitVacancy(lease: Lease): Promise<void> {
    const until = this.clock.now() + lease.leaseMs / 4;
    while (!this.stopped && this.clock.now() < until) {
      await this.sleep(Math.min(this.leaseProbeMs, lease.leaseMs / 4));
      if (this.stopped) return;
      const h = await lease.holder().catch(() => undefined);
      if (h === null) return;
      if (h === undefined || h.token === undefined || h.token === this.token) continue;
      if (!(await this.holderGone(h.token))) continue;
      if (await lease.evict(h.revision)) {
        this.metrics.leaseEvicted();
        this.log.warn(
          { holder: h.id, host: h.host, pid: h.pid, revision: h.revision },
          "the lease holder is gone (its connection closed: no responders twice): evicted it",
        );
      }
      return;
    }
  }

  /**
   * True when the holder's alive subject has no subscriber at all, twice, PROBE_GAP_MS apart. An
   * answer, a timeout (alive but slow: a stalled event loop) or any other error is "not gone".
   */
  private async holderGone(token: string): Promise<boolean> {
    for (let i = 0; i < 2; i++) {
      if (i > 0) await this.sleep(PROBE_GAP_MS);
      if (this.stopped) return false;
      try {
        await this.bus.request(subjects.schedulerAlive(token), {}, PROBE_TIMEOUT_MS);
        return false;
      } catch (err) {
        if (!(err instanceof NoResponderError) || err.timedOut) return false;
      }
    }
    return true;
  }

  /**
   * Renew the lease every leaseMs/3, counted from when the last renewal that landed was sent, or
   * the lease was asked for (`since`) (a slow renewal or a stalled event loop does not push the
   * next one later); resolves with why
   * leadership ended. A renewal keeps trying (the same write, idempotent) until the lease it
   * extends could have expired: the lease is lost only when the fence refuses it (someone else
   * wrote) or when it could not be confirmed for a whole lease. One timed-out renewal used to end
   * the term, so a leader that was only slow could hand over (one suspect for the 3 false
   * failovers a 10-minute soak once saw; none since, over two soaks).
   */
  private hold(lease: Lease, since: number): Promise<string> {
    return new Promise<string>((resolve) => {
      // Everything here belongs to this term. A renewal still out when the term ends (it retries
      // for up to a lease) must neither end the next term nor start a second renewal chain in it:
      // the failover bench saw exactly that, a replica that won the lease again stepping down
      // 0.4 s later with "leader lease lost: wrong last sequence" because its previous term's
      // renewal had re-armed itself into the new one and the two chains raced.
      let timer: unknown = null;
      const end = (why: string) => {
        if (this.holdEnd !== end) return;
        this.holdEnd = null;
        if (timer !== null) this.clock.clearTimeout(timer);
        timer = null;
        this.renewTimer = null;
        resolve(why);
      };
      this.holdEnd = end;
      /** This term still holds (not ended, not crashed). */
      const live = () => this.holdEnd === end;
      const arm = (ms: number) => {
        timer = this.renewTimer = this.clock.setTimeout(() => void tick(), ms);
      };
      let renewedAt = since;
      const tick = async () => {
        timer = this.renewTimer = null;
        if (!live()) return;
        const sent = this.clock.now();
        try {
          // Until the lease we hold could have run out (it runs from when the last one landed,
          // which was after renewedAt), with a margin for the clocks.
          await lease.renew(Math.max(0, renewedAt + lease.leaseMs * 0.9 - sent));
        } catch (err) {
          return end((err as Error).message);
        }
        if (!live()) return;
        renewedAt = sent;
        arm(Math.max(0, renewedAt + lease.leaseMs / 3 - this.clock.now()));
        // Not awaited: a slow log must not delay the next renewal.
        if (!this.checkingLog) {
          this.checkingLog = true;
          void this.supersededInLog()
            .then((yes) => {
              if (yes && live()) end("another writer appended to the log while this replica held the lease");
            })
            .finally(() => {
              this.checkingLog = false;
            });
        }
      };
      arm(Math.max(0, since + lease.leaseMs / 3 - this.clock.now()));
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
    const term = this.term;
    const a = term?.appender;
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
    return last > seq && this.state.seq === seq && idle() && this.term === term && this.leading;
  }

  /**
   * Fenced takeover, then the term begins (see the file comment). `held` says whether the lease
   * is still this replica's (without a lease there is no one to hand over to).
   */
  private async takeOver(leaseEpoch: number, held: () => boolean = () => false): Promise<void> {
    const t0 = performance.now();
    let term: LeaderTerm;
    for (let attempt = 0; ; attempt++) {
      try {
        term = await this.takeOverOnce(leaseEpoch, attempt);
        break;
      } catch (err) {
        if (this.stopped) throw err;
        // A deposed leader's record landed after we caught up: fold it and try again.
        if (err instanceof FencedError && attempt < TAKEOVER_FENCED_RETRIES) continue;
        // The log did not answer: its stream is electing a leader (its nats-server died, often
        // with the scheduler that led), or this replica's connection is moving to another
        // server. Try again while the lease is ours. Giving the lease up instead (as this did)
        // cost the failover bench's nats-loss runs 3 s: another replica had to win it, and the
        // log was back by then for this one too.
        if (err instanceof LogUnavailableError && held() && performance.now() - t0 < TAKEOVER_UNAVAILABLE_MS) {
          this.log.warn({ err: err.message, attempt }, "the log did not answer the takeover; trying again while the lease is ours");
          await this.sleep(TAKEOVER_UNAVAILABLE_PAUSE_MS);
          if (held() && !this.stopped) continue;
        }
        throw err;
      }
    }
    if (this.stopped) {
      term.end();
      return;
    }
    this.term = term;
    this.role = "leader";
    this.terms++;
    this.metrics.elected((performance.now() - t0) / 1000);
    this.publishMember();
    await term.begin({ schedulerId: this.schedulerId });
  }

  /** One attempt: fold to the end of the log, then append LeaderElected fenced on it; the term, if it landed. */
  private async takeOverOnce(leaseEpoch: number, attempt: number): Promise<LeaderTerm> {
    // Is the log there? Asked with a short timeout of its own (EventLog.probe): the first read of
    // a takeover during a stream's election waited out the log's 5 s request timeout, and the
    // attempt after it, 250 ms later, found the log answering. Only with a lease: without one
    // nothing tries again, and the read below waits for the log as long as it takes.
    if (this.lease) await this.eventLog.probe?.(TAKEOVER_PROBE_TIMEOUT_MS);
    await this.catchUp();
    // Epochs only grow along the log. The lease revision normally does too, but not always: after
    // a nats-server loss the lease bucket's sequence can restart lower (seen on 2.9.10: a
    // LeaderElected at epoch 141 after one at 148), and agents refuse to register with a
    // leader older than one that announced itself, forever.
    const epoch = Math.max(leaseEpoch, (this.state.leader?.epoch ?? 0) + 1);
    this.epoch = epoch;
    const appender: Appender = new Appender(this.eventLog, {
      lastSeq: this.state.seq,
      writerId: `${this.schedulerId}:${epoch}:${attempt}`,
      onCommit: (seq, events) => candidate.onCommit(seq, events),
      observe: (outcome, seconds, events, bytes) => this.metrics.appended(outcome, seconds, events, bytes),
    });
    const candidate: LeaderTerm = new LeaderTerm({
      state: this.state,
      eventLog: this.eventLog,
      bus: this.bus,
      clock: this.clock,
      ids: this.ids,
      log: this.log,
      policy: this.policy,
      allowedEnvironments: this.allowedEnvironments,
      schedulerId: this.schedulerId,
      agentRequestTimeoutMs: this.agentRequestTimeoutMs,
      retryMs: this.retryMs,
      epoch,
      appender,
      metrics: this.metrics,
      intake: this.intakeSource,
      discovery: this.discovery,
      quiesced: this.quiesced,
      folded: (_seq, events) => {
        this.notifyChange(events);
        const mine = () => this.term === candidate && this.leading;
        if (mine()) this.snapshotWriter?.asLeader(() => this.state, mine);
      },
      changed: () => this.notifyChange(),
      appendFailed: (failure) => this.appendFailed(candidate, failure),
    });
    const elected = candidate.event(
      "LeaderElected",
      { schedulerId: this.schedulerId, epoch, host: this.host, pid: this.pid },
      `${this.schedulerId} took over at epoch ${epoch} after folding ${this.state.seq} records`,
    );
    try {
      await appender.append([elected]);
    } catch (err) {
      candidate.end();
      throw err;
    }
    return candidate;
  }

  /** The term's Appender died (fenced, or the log lost): with a lease, step down; without, stop. */
  private appendFailed(term: LeaderTerm, failure: Error): void {
    if (this.term !== term || !this.leading) return;
    // holdEnd may already be null: the lease was lost (a failed renewal, often in the same moment
    // as this refusal) and the step-down is under way; that is no reason to stop the process.
    if (this.lease) this.holdEnd?.(`the log refused our append: ${failure.message}`);
    else {
      void this.stop();
      this.onFatal(failure);
    }
  }

  /** End this term: stop serving and acting, forget in-memory views, follow the log again. */
  private stepDown(why: string): void {
    if (this.role === "stopped") return;
    this.log.warn({ why, epoch: this.epoch }, "stepping down");
    this.endTerm();
    this.role = "standby";
    this.publishMember();
  }

  private endTerm(): void {
    this.term?.end();
    this.term = null;
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
   * wire, messages queued for or being handled by an actor). The simulator settles on !busy().
   */
  busy(): boolean {
    return this.term?.busy() ?? false;
  }

  /** An envelope stamped with the current term's epoch (tests build events with it). */
  event<T extends EventType>(type: T, data: EventPayloads[T], reason: string, corr?: string): AnyEnvelope {
    if (this.term) return this.term.event(type, data, reason, corr);
    return makeEnvelope(type, data, { epoch: this.epoch, ts: this.clock.now(), corr: corr ?? "s", reason }) as AnyEnvelope;
  }

  /** Append through the current term (see LeaderTerm.commit). */
  commit(events: AnyEnvelope[], opts: { recheck?: boolean } = {}): Promise<number> {
    if (!this.term || this.role === "stopped") return Promise.reject(new Error("this scheduler is not the leader"));
    return this.term.commit(events, opts);
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
}
