// Prometheus metrics of one scheduler replica (prom-client). Scraped from the replica's HTTP port
// (http.ts mounts GET /metrics); ops/grafana/roost-dashboard.json charts every one of them.
//
// An adapter: the replica and its actors tell it what happened (a counter inc, a histogram
// observe), and the folded state is read only when Prometheus scrapes (collect() callbacks), so
// the hot paths pay nothing else. The pure core never imports this folder
// (.dependency-cruiser.cjs); what a pure function decides, its caller in src/actors/ reports.
//
// Choices, and what taught them:
// - Each SchedulerMetrics owns its own Registry, never prom-client's global one: the tests and the
//   simulator run several schedulers in one process, and a second `new Counter()` of the same
//   name on the global registry throws. Node's own metrics (process_*, nodejs_*) go only on the
//   registry of a real daemon (defaultMetrics: true): they describe the process, not a replica.
// - Names follow Prometheus' rules (and kube-scheduler's, where Roost does the same thing): one
//   prefix, roost_; base units (_seconds, _bytes); counters end in _total. No label ever holds a
//   task, job, agent or request id: each label value comes from a closed set (a state, an API op,
//   an error code, an outcome), or is capped (pending reasons, below). An unbounded label set
//   would grow Prometheus' memory with every task the cell ever ran.
// - Pending reasons are the placement stack's veto texts ("Insufficient: ramMb", "Limit not
//   satisfied: host"), whose attribute names come from job specs. Only the known shapes are kept,
//   and at most MAX_REASON_LABELS distinct ones per replica; the rest count as "other".

import { Counter, collectDefaultMetrics, exponentialBuckets, Gauge, Histogram, Registry } from "prom-client";
import type { JobKeyString } from "../domain/types.js";
import type { ClusterState } from "../replay/state.js";
import { AGENT_STATES } from "../statemachines/agent.js";
import type { TaskStateName } from "../statemachines/taskStates.js";

/** kube-scheduler's buckets for scheduling attempts: 1 ms, doubling, 15 buckets (to ~16 s). */
const ATTEMPT_BUCKETS = exponentialBuckets(0.001, 2, 15);
/** Appends and status updates: 0.5 ms, doubling, 16 buckets (to ~16 s: an append retries for 20 s). */
const LATENCY_BUCKETS = exponentialBuckets(0.0005, 2, 16);

/** Distinct veto texts kept as pending reasons; past this, "other" (attribute names come from specs). */
const MAX_REASON_LABELS = 32;
/** A veto text of a known shape (scheduling/vetoes.ts vetoText), with a bounded attribute name. */
const VETO_SHAPE =
  /^(?:Host is dedicated|Host in maintenance|Insufficient: [a-zA-Z]+(?:, [a-zA-Z]+)*|(?:Constraint|Limit) not satisfied: [A-Za-z0-9_.-]{1,64})$/;
/** The placement stack's reason when no agent is active (scheduling/stack.ts). */
const NO_AGENTS = "No active agents";

type AttemptResult = "scheduled" | "unschedulable" | "error";
/** One labels object per result, made once: an observe per placed task allocates no labels. */
const ATTEMPT_LABELS: Record<AttemptResult, { result: AttemptResult }> = {
  scheduled: { result: "scheduled" },
  unschedulable: { result: "unschedulable" },
  error: { result: "error" },
};
type AppendResult = "ok" | "fenced" | "unavailable" | "error";
type StatusResult = "committed" | "duplicate" | "stray" | "refused" | "error";

/** What a replica shows when it is scraped (read only then). */
export interface ReplicaView {
  state(): ClusterState;
  leading(): boolean;
  /** The epoch it leads at, or the newest it has folded. */
  epoch(): number;
  /** Why a job's PENDING tasks of one config version wait, as the leader's placement sees them
   *  (undefined: not evaluated, or not leading). */
  pendingReason(job: JobKeyString, configVersion: number): string | undefined;
  /** The leader's actors and their mailbox depths (none on a standby). */
  mailboxes(): ReadonlyArray<{ name: string; depth: number }>;
  /** The log's last sequence (a network round trip on JetStream). */
  logLastSeq(): Promise<number>;
}

export class SchedulerMetrics {
  readonly registry = new Registry();
  private view: ReplicaView | null = null;
  private readonly reasonLabels = new Set<string>();

  private readonly attempts: Counter<"result">;
  private readonly attemptSeconds: Histogram<"result">;
  private readonly placements: Counter;
  private readonly preemptions: Counter;
  private readonly victims: Counter;
  private readonly appends: Counter<"result">;
  private readonly appendSeconds: Histogram;
  private readonly appendedEvents: Counter;
  private readonly appendedBytes: Counter;
  private readonly elections: Counter;
  private readonly evictions: Counter;
  private readonly takeoverSeconds: Gauge;
  private readonly reconcileSeconds: Gauge;
  private readonly coldStartSeconds: Gauge;
  private readonly statusUpdates: Counter<"result">;
  private readonly statusSeconds: Histogram;
  private readonly busRequests: Counter<"op" | "result">;
  private readonly updateTransitions: Counter<"status">;
  private readonly updateInstanceTransitions: Counter<"action">;
  private readonly cronTriggers: Counter<"outcome">;
  private readonly cronMisfires: Counter;
  private readonly cronCollisions: Counter;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });

    // ---- placement (kube-scheduler's names) --------------------------------------------------
    this.attempts = new Counter({
      name: "roost_scheduling_attempts_total",
      help: "Placement attempts of single tasks, by result: scheduled (its TaskAssigned committed), unschedulable (fits no agent), error (the commit failed)",
      labelNames: ["result"],
      registers,
    });
    this.attemptSeconds = new Histogram({
      name: "roost_scheduling_attempt_duration_seconds",
      help: "Placement decision time per task attempt (a group's batch is timed whole and shared among the tasks it decided), by result",
      labelNames: ["result"],
      buckets: ATTEMPT_BUCKETS,
      registers,
    });
    for (const result of ["scheduled", "unschedulable", "error"] as const) {
      this.attempts.inc({ result }, 0);
      this.attemptSeconds.zero({ result });
    }
    this.placements = new Counter({
      name: "roost_placements_total",
      help: "Tasks placed: TaskAssigned events this replica committed as leader",
      registers,
    });
    this.preemptions = new Counter({
      name: "roost_preemptions_total",
      help: "Slots the preemptor reserved for a pending task (SlotReserved committed)",
      registers,
    });
    this.victims = new Counter({
      name: "roost_preemption_victims_total",
      help: "Tasks preempted to free reserved slots",
      registers,
    });
    const view = () => this.view;
    const reasonLabel = (r: string | undefined) => this.reasonLabel(r);
    new Gauge({
      name: "roost_pending_tasks",
      help: "Tasks waiting to be placed, by why (leader only): a veto of the closest agent, throttled, reserved, no active agent, not evaluated, other",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        const v = view();
        if (!v?.leading()) return;
        const st = v.state();
        const counts = new Map<string, number>();
        const add = (reason: string, n: number) => counts.set(reason, (counts.get(reason) ?? 0) + n);
        // A pending task a slot is held for counts as reserved, not under its group's reason.
        const held = new Map<string, number>();
        for (const taskId of st.reservations.keys()) {
          const t = st.pending.has(taskId) ? st.tasks.get(taskId) : undefined;
          if (t === undefined) continue;
          add("reserved", 1);
          const key = `${t.job}#${t.configVersion}`;
          held.set(key, (held.get(key) ?? 0) + 1);
        }
        // The rest under their group's reason: a pass over placement's groups (a reason is a
        // group's), not over every pending task, which cost O(pending) on the leader per scrape.
        for (const [job, versions] of st.pendingGroups()) {
          for (const [version, ids] of versions) {
            const n = ids.size - (held.get(`${job}#${version}`) ?? 0);
            if (n > 0) add(reasonLabel(v.pendingReason(job, version)), n);
          }
        }
        const throttled = st.taskStateCounts().get("THROTTLED")!;
        if (throttled > 0) counts.set("throttled", throttled);
        for (const [reason, n] of counts) this.set({ reason }, n);
      },
    });

    // ---- the log ------------------------------------------------------------------------------
    this.appends = new Counter({
      name: "roost_log_appends_total",
      help: "Records this replica appended to the log as leader, by outcome: ok, fenced (another writer), unavailable (retries ran out), error",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["ok", "fenced", "unavailable", "error"] as const) this.appends.inc({ result }, 0);
    this.appendSeconds = new Histogram({
      name: "roost_log_append_duration_seconds",
      help: "From a record's first send to its acknowledgement by the log (retries included), committed records only",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.appendedEvents = new Counter({
      name: "roost_log_appended_events_total",
      help: "Events in the records this replica committed (events / records = the group commit's batching)",
      registers,
    });
    this.appendedBytes = new Counter({
      name: "roost_log_appended_bytes_total",
      help: "Encoded bytes of the records this replica committed",
      registers,
    });
    new Gauge({
      name: "roost_folded_seq",
      help: "Sequence of the last log record this replica folded",
      registers,
      collect() {
        const v = view();
        if (v) this.set(v.state().seq);
      },
    });
    new Gauge({
      name: "roost_fold_lag_records",
      help: "Records the log holds that this replica has not folded yet (absent when the log cannot be read)",
      registers,
      async collect() {
        this.reset();
        const v = view();
        if (!v) return;
        try {
          const last = await v.logLastSeq();
          this.set(Math.max(0, last - v.state().seq));
        } catch {
          // the log is unreachable: no sample, rather than a stale one
        }
      },
    });
    new Gauge({
      name: "roost_fold_anomalies",
      help: "Log entries the fold could not apply and skipped (README: the fold is total)",
      registers,
      collect() {
        const v = view();
        if (v) this.set(v.state().anomalyCount);
      },
    });

    // ---- leadership ---------------------------------------------------------------------------
    new Gauge({
      name: "roost_leader",
      help: "1 while this replica leads, 0 while it is a standby (or replaying)",
      registers,
      collect() {
        this.set(view()?.leading() ? 1 : 0);
      },
    });
    new Gauge({
      name: "roost_epoch",
      help: "The epoch this replica leads at, or the newest it has folded",
      registers,
      collect() {
        const v = view();
        if (v) this.set(v.epoch());
      },
    });
    this.elections = new Counter({
      name: "roost_leader_elections_total",
      help: "Times this replica became leader (appended LeaderElected)",
      registers,
    });
    this.evictions = new Counter({
      name: "roost_leader_lease_evictions_total",
      help: "Times this replica, as a standby, evicted a lease holder whose connection was gone (no responders twice) instead of waiting out the lease",
      registers,
    });
    this.takeoverSeconds = new Gauge({
      name: "roost_failover_replay_seconds",
      help: "The last takeover: from starting it (the lease won) to LeaderElected committed, folding the log's tail included",
      registers,
    });
    this.reconcileSeconds = new Gauge({
      name: "roost_reconciliation_seconds",
      help: "The last reconciliation window: from LeaderElected until every agent re-registered (or the window ended) and placement resumed",
      registers,
    });
    this.coldStartSeconds = new Gauge({
      name: "roost_cold_start_seconds",
      help: "How long this replica's start took to load a snapshot and replay the log",
      registers,
    });

    // ---- agents' status updates ---------------------------------------------------------------
    this.statusUpdates = new Counter({
      name: "roost_status_updates_total",
      help: "Agent status updates the leader handled, by outcome: committed, duplicate, stray (a task the log does not place there), refused, error",
      labelNames: ["result"],
      registers,
    });
    this.statusSeconds = new Histogram({
      name: "roost_status_update_latency_seconds",
      help: "From the leader's receipt of an agent status update to its TaskStateChanged being committed (the agent's acknowledgement)",
      buckets: LATENCY_BUCKETS,
      registers,
    });

    // ---- the API on the bus -------------------------------------------------------------------
    this.busRequests = new Counter({
      name: "roost_bus_requests_total",
      help: 'API v1 requests on the bus, by op (job.create, job.status, …; "unknown" for a subject naming none) and result ("ok" or the error code)',
      labelNames: ["op", "result"],
      registers,
    });

    // ---- cron (Aurora's cron_job_triggers, cron_job_misfires, cron_job_collisions) -------------
    this.cronTriggers = new Counter({
      name: "roost_cron_job_triggers_total",
      help: "Cron triggers this replica committed as leader (CronTriggered), by outcome: fired (a run created), skipped (CANCEL_NEW), collided (KILL_EXISTING killed the previous run)",
      labelNames: ["outcome"],
      registers,
    });
    for (const outcome of ["fired", "skipped", "collided"] as const) this.cronTriggers.inc({ outcome }, 0);
    this.cronMisfires = new Counter({
      name: "roost_cron_job_misfires_total",
      help: "Cron triggers missed while no leader ran and not replayed: a new leader catching up fires once for the latest",
      registers,
    });
    this.cronCollisions = new Counter({
      name: "roost_cron_job_collisions_total",
      help: "Cron triggers that found the job's previous run still active (then skipped or killed, by the job's collision policy)",
      registers,
    });

    // ---- job updates (Aurora's update_transition_<STATUS>, update_instance_transition_<ACTION>) ----
    this.updateTransitions = new Counter({
      name: "roost_update_transitions_total",
      help: "Job update statuses this replica committed as leader (JobUpdateStarted, JobUpdateStateChanged), by status",
      labelNames: ["status"],
      registers,
    });
    this.updateInstanceTransitions = new Counter({
      name: "roost_update_instance_transitions_total",
      help: "Instance update actions this replica committed as leader (JobInstanceUpdateEvent), by action (INSTANCE_UPDATING, INSTANCE_UPDATED, …)",
      labelNames: ["action"],
      registers,
    });

    // ---- the folded state and the actors, read at scrape time ---------------------------------
    new Gauge({
      name: "roost_tasks",
      help: "Tasks in the folded state, by state (ended ones included, as the state keeps them)",
      labelNames: ["state"],
      registers,
      collect() {
        const v = view();
        if (!v) return;
        // Kept by the fold (ClusterState.taskStateCounts): a scrape walks no task.
        for (const [state, n] of v.state().taskStateCounts()) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "roost_agents",
      help: "Agents in the folded state, by state",
      labelNames: ["state"],
      registers,
      collect() {
        const v = view();
        if (!v) return;
        const counts = new Map<string, number>(AGENT_STATES.map((s) => [s, 0]));
        for (const a of v.state().agents.values()) counts.set(a.state, (counts.get(a.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "roost_actor_mailbox_depth",
      help: "Messages waiting in each of the leader's actors' mailboxes (none on a standby)",
      labelNames: ["actor"],
      registers,
      collect() {
        this.reset();
        for (const m of view()?.mailboxes() ?? []) this.set({ actor: m.name }, m.depth);
      },
    });
  }

  /** The replica this registry describes at scrape time (one replica per SchedulerMetrics). */
  watch(view: ReplicaView): void {
    this.view = view;
  }

  /** Placement's attempts, for one Placement actor (one per term). */
  placementAttempts(): PlacementAttempts {
    return new PlacementAttempts((result, tasks, seconds) => {
      const labels = ATTEMPT_LABELS[result];
      this.attempts.inc(labels, tasks);
      for (let i = 0; i < tasks; i++) this.attemptSeconds.observe(labels, seconds);
    });
  }

  /** Committed TaskAssigned events. */
  placed(n: number): void {
    this.placements.inc(n);
  }

  /** Slots reserved by one committed preemption pass, and the tasks preempted for them. */
  preempted(slots: number, victims: number): void {
    this.preemptions.inc(slots);
    this.victims.inc(victims);
  }

  /** One record's append (the Appender's observer). */
  appended(result: AppendResult, seconds: number, events: number, bytes: number): void {
    this.appends.inc({ result });
    if (result !== "ok") return;
    this.appendSeconds.observe(seconds);
    this.appendedEvents.inc(events);
    this.appendedBytes.inc(bytes);
  }

  /** This replica became leader: LeaderElected committed `seconds` after the takeover began. */
  elected(seconds: number): void {
    this.elections.inc();
    this.takeoverSeconds.set(seconds);
  }

  /** As a standby, deleted the lease of a holder that no longer answers (actors/lease.ts). */
  leaseEvicted(): void {
    this.evictions.inc();
  }

  reconciled(seconds: number): void {
    this.reconcileSeconds.set(seconds);
  }

  coldStarted(seconds: number): void {
    this.coldStartSeconds.set(seconds);
  }

  /** An agent status update handled; `seconds` from its receipt, for a committed one. */
  statusUpdate(result: StatusResult, seconds?: number): void {
    this.statusUpdates.inc({ result });
    if (seconds !== undefined) this.statusSeconds.observe(seconds);
  }

  /** One API request answered: `result` is "ok" or its error code. */
  busRequest(op: string, result: string): void {
    this.busRequests.inc({ op, result });
  }

  /** A committed update event: its status (an update started or moved), or an instance's action. */
  updateEvent(e: { status?: string; action?: string }): void {
    if (e.status !== undefined) this.updateTransitions.inc({ status: e.status });
    if (e.action !== undefined) this.updateInstanceTransitions.inc({ action: e.action });
  }

  /** A committed cron trigger: what it came to, the triggers it did not replay, and whether the previous run was active. */
  cronTriggered(outcome: "fired" | "skipped" | "collided", missed: number, collided: boolean): void {
    this.cronTriggers.inc({ outcome });
    if (missed > 0) this.cronMisfires.inc(missed);
    if (collided) this.cronCollisions.inc();
  }

  /** A pending reason as a bounded label (see the file comment). */
  private reasonLabel(reason: string | undefined): string {
    if (reason === undefined) return "not evaluated";
    if (reason === NO_AGENTS) return "no active agent";
    // The closest agent's vetoes, most decisive first ("Host in maintenance; Insufficient: cpus").
    const semi = reason.indexOf("; ");
    const first = semi < 0 ? reason : reason.slice(0, semi);
    if (!VETO_SHAPE.test(first)) return "other";
    if (this.reasonLabels.has(first)) return first;
    if (this.reasonLabels.size >= MAX_REASON_LABELS) return "other";
    this.reasonLabels.add(first);
    return first;
  }
}

/**
 * Placement's attempts in one round: the tasks it places are counted once their commit lands
 * (scheduled) or fails (error), as kube-scheduler counts a pod scheduled after it is bound; a
 * group that fits nowhere is counted unschedulable at once. No allocation per placement: the
 * round's batches wait in two arrays that are reused.
 */
export class PlacementAttempts {
  private readonly tasks: number[] = [];
  private readonly seconds: number[] = [];

  constructor(private readonly record: (result: AttemptResult, tasks: number, secondsEach: number) => void) {}

  /** One group's batch: `placed` tasks decided, and whether its next task fit nowhere, in `seconds`. */
  decided(placed: number, blocked: boolean, seconds: number): void {
    const n = placed + (blocked ? 1 : 0);
    if (n === 0) return;
    const each = seconds / n;
    if (blocked) this.record("unschedulable", 1, each);
    if (placed > 0) {
      this.tasks.push(placed);
      this.seconds.push(each);
    }
  }

  /** The round's commit landed (ok) or failed. */
  settled(ok: boolean): void {
    for (let i = 0; i < this.tasks.length; i++) this.record(ok ? "scheduled" : "error", this.tasks[i]!, this.seconds[i]!);
    this.tasks.length = 0;
    this.seconds.length = 0;
  }
}
