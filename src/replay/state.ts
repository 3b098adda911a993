// ClusterState: what the scheduler knows, and nothing it could not rebuild from the log.
//
// The fold (fold.ts) is the only writer. Everyone else reads. Containers are mutable Maps owned
// by the fold (immer would cost 20–120 ms per event at 100k tasks, measured); records are
// plain data, so a state can be hashed, snapshotted and compared.

import type { AgentId, AgentResources, JobConfig, JobKeyString, TaskConfig, TaskId } from "../domain/types.js";
import type { AgentStateName } from "../statemachines/agent.js";
import type { DrainRequest } from "../domain/maintenance.js";
import type { HostMode } from "../statemachines/host.js";
import { type InstanceAction, TERMINAL_UPDATE_STATES as UPDATE_TERMINAL, type UpdateStatus } from "../statemachines/update.js";
import type { UpdateSettings } from "../domain/update.js";

import { TASK_STATE_CODE, TASK_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import type { TaskRecord } from "./taskRecord.js";
import { TaskMap } from "./taskMap.js";
export { HISTORY_STRIDE, type TaskRecord } from "./taskRecord.js";

/** A slot the preemptor holds on an agent for a pending task (Aurora holds it 5 min). */
export interface Reservation {
  taskId: TaskId;
  agentId: AgentId;
  victims: TaskId[];
  expiresTs: number;
}

export interface Quota {
  cpus: number;
  ramMb: number;
  diskMb: number;
}

export interface JobRecord {
  key: JobKeyString;
  config: JobConfig;
  configVersion: number;
  configs: Record<number, TaskConfig>;
  createdSeq: number;
  createdTs: number;
  /** instance id → its newest task id. */
  instances: Map<number, TaskId>;
  /** Instances a user killed: never rescheduled again. */
  killedInstances: Set<number>;
}

export interface AgentRecord {
  agentId: AgentId;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  bootId: string;
  /** How it confines tasks, as it said at its last registration (absent: it did not say). */
  isolation?: { mode: string; detail: string };
  state: AgentStateName;
  registeredSeq: number;
  registeredTs: number;
  used: { cpus: number; ramMb: number; diskMb: number; gpus: number };
  usedPorts: Set<number>;
  /** Tasks holding resources on this agent (ASSIGNED … PARTITIONED). */
  tasks: Set<TaskId>;
}

/**
 * A job update (Aurora's JobUpdate), as folded from its events: what it rolls, how, and where it
 * is. Plain data (records and arrays, no Maps), so it hashes and snapshots as it is.
 */
export interface UpdateRecord {
  updateId: string;
  job: JobKeyString;
  fromVersion: number;
  toVersion: number;
  /** The job's config after the update (its instance count included). */
  config: JobConfig;
  settings: UpdateSettings;
  /** Aurora's updateOnlyTheseInstances; null: every instance. */
  instances: number[] | null;
  status: UpdateStatus;
  user: string;
  message: string | null;
  createdSeq: number;
  createdTs: number;
  /** Log time of its newest event: the updater's waits count from the log, not from a clock. */
  lastTs: number;
  /** Log time of its newest pulse (a coordinated update), else null. */
  pulseTs: number | null;
  /** Each instance's newest action, and the event that logged it (its reason is in the log). */
  instanceActions: Record<string, { action: InstanceAction; seq: number; ts: number }>;
  /** Instances whose update failed, ascending. */
  failedInstances: number[];
  /** A rolling restart (roost job restart): the job's own config, rolled through RESTARTING. */
  restart: boolean;
  /** Every instance action, in log order, with its reason (Aurora's JobInstanceUpdateEvents: update info). */
  actions: UpdateActionRecord[];
  /** Every status it went through, the first included, in log order (Aurora's JobUpdateEvents). */
  statuses: UpdateStatusRecord[];
}

/** One instance's progress in an update, as `update info` lists it. */
export interface UpdateActionRecord {
  instance: number;
  action: InstanceAction;
  seq: number;
  ts: number;
  reason: string;
}

/** One status of an update, who moved it there, and why. */
export interface UpdateStatusRecord {
  status: UpdateStatus;
  seq: number;
  ts: number;
  user: string | null;
  message: string | null;
  reason: string;
}

/** A cron job's newest trigger, as CronTriggered logged it (the reason is the event's). */
export interface CronTriggerRecord {
  minuteMs: number;
  outcome: "fired" | "skipped" | "collided";
  missed: number;
  /** Who started it by hand (roost cron start), or null for the schedule. */
  user: string | null;
  seq: number;
  ts: number;
  reason: string;
}

/**
 * A scheduled cron job (roost cron schedule), as folded from its events: the template each
 * trigger runs, and where its schedule stands. Its runs are ordinary jobs under the same key
 * (`jobs`), each created by a fired trigger. Plain data, so it hashes and snapshots as it is.
 */
export interface CronJobRecord {
  key: JobKeyString;
  /** The template a run is created from (cronSchedule set). */
  config: JobConfig;
  user: string;
  /** The newest CronJobScheduled: triggers count from its time (the log's, not a clock). */
  scheduledSeq: number;
  scheduledTs: number;
  /** The newest minute a scheduled trigger was taken for (fired, skipped or collided); null until one was. */
  lastFiredMinuteMs: number | null;
  lastTrigger: CronTriggerRecord | null;
  /**
   * KILL_EXISTING after a collision: the run that waits for the previous run's tasks to end
   * (the leader then fires it). Null when none waits.
   */
  pendingRun: { minuteMs: number; user: string | null; seq: number; ts: number } | null;
}

/**
 * A host's maintenance (Aurora's HostStatus and its HostMaintenanceRequest), by host name. Plain
 * data, hashed and snapshotted as it is. A host ended (NONE) keeps its record, so its story reads on.
 */
export interface HostRecord {
  host: string;
  mode: HostMode;
  /** When it entered its mode: the record, and its log time. */
  sinceSeq: number;
  sinceTs: number;
  /** Who asked for the mode (null: the leader moved it, e.g. DRAINED). */
  user: string | null;
  /** The drain request while DRAINING or DRAINED (its log time: the forced drain counts from it), else null. */
  drain: (DrainRequest & { requestedSeq: number; requestedTs: number }) | null;
  /** The window that moved it, if one did. */
  windowId: string | null;
  /** The newest SLA denial of each task of the host not drained yet (SlaDrainDenied; its reason from the log). */
  denials: Record<string, { seq: number; ts: number; reason: string }>;
}

/** A maintenance window (MaintenanceWindowScheduled … MaintenanceWindowEnded). */
export interface MaintenanceWindowRecord {
  windowId: string;
  hosts: string[];
  startTs: number;
  durationMs: number;
  user: string;
  drain: DrainRequest;
  createdSeq: number;
  /** Its hosts were moved to DRAINING (the window opened), at this record. */
  openedSeq: number | null;
  /** It is over: elapsed or cancelled, at this record. */
  ended: { seq: number; ts: number; cancelled: boolean; user: string | null } | null;
}

/** A keyed request's first outcome (RequestDecided), by "<role>/<key>". */
export interface RequestOutcome {
  op: string;
  outcome: "done" | "rejected";
  value?: unknown;
  error?: { code: string; message: string; field?: string };
  /** The record that holds it, and its time (log time: it expires REQUEST_KEY_RETENTION_MS later). */
  seq: number;
  ts: number;
}

/**
 * A log entry the fold could not apply, kept instead of thrown (fold.ts): where it is, what it
 * claimed to be, and why it was skipped.
 */
export interface Anomaly {
  seq: number;
  /** Its position within the record. */
  index: number;
  /** Its event type, as far as it could be read ("(unreadable)" when it named none). */
  type: string;
  why: string;
}

/**
 * The state keeps the first this-many anomalies and counts the rest (anomalyCount): a stream of
 * garbage must not grow the state without bound.
 */
export const MAX_ANOMALIES_KEPT = 1000;

export class ClusterState {
  /** Sequence of the last record folded. */
  seq = 0;
  /** Events folded (a record holds many). */
  eventCount = 0;
  leader: { schedulerId: string; epoch: number; host: string; pid: number; seq: number; ts: number } | null = null;
  readonly jobs = new Map<JobKeyString, JobRecord>();
  /** Every task ever created (rows of a decoded snapshot stay columns until used: taskMap.ts). */
  readonly tasks: TaskMap;
  readonly agents = new Map<AgentId, AgentRecord>();
  /** Production quota per role. A role without an entry has none (zero). */
  readonly quotas = new Map<string, Quota>();
  /** Keyed requests' first outcomes, oldest first; those older than REQUEST_KEY_RETENTION_MS (log time) are dropped. */
  readonly requests = new Map<string, RequestOutcome>();
  /** Held slots, by the pending task they are held for. */
  readonly reservations = new Map<TaskId, Reservation>();
  /** Job updates, by update id, oldest first. */
  readonly updates = new Map<string, UpdateRecord>();
  /** Scheduled cron jobs, by job key, in the order they were first scheduled. */
  readonly cronJobs = new Map<JobKeyString, CronJobRecord>();
  /** Hosts in maintenance (any mode but NONE, and those that left it: their last NONE), by host name. */
  readonly hosts = new Map<string, HostRecord>();
  /** Maintenance windows, by id, oldest first. */
  readonly windows = new Map<string, MaintenanceWindowRecord>();
  /** Derived counters (not hashed): bumped when agents change, and when resources free up. */
  agentsVersion = 0;
  capacityVersion = 0;
  /** Derived index: PENDING tasks, in the order they became PENDING. Not hashed. Changed only
   *  through markPending and unmarkPending, which keep pendingGroups() in step with it. */
  readonly pending: ReadonlySet<TaskId> = new Set<TaskId>();
  /** PENDING tasks by job, then config version: the task groups placement and the preemptor
   *  walk. Built from `pending` when first asked for (a leader's first round), then kept by the
   *  fold; replicas that never place never build it. Not hashed. */
  #groups: Map<JobKeyString, Map<number, Set<TaskId>>> | null = null;
  /** How many tasks are in each state, by TASK_STATES' order. Counted from the tasks when first
   *  asked for, then kept by the fold (taskEntered). Not hashed. */
  #stateCounts: number[] | null = null;
  /** Entries the fold could not apply: kept, never thrown, so replay never bricks (the first MAX_ANOMALIES_KEPT). */
  readonly anomalies: Anomaly[] = [];
  /** All anomalies folded, kept or not. */
  anomalyCount = 0;

  constructor(tasks: TaskMap = new TaskMap()) {
    this.tasks = tasks;
  }

  /** `task` became PENDING (the fold's). */
  markPending(task: Pick<TaskRecord, "taskId" | "job" | "configVersion">): void {
    (this.pending as Set<TaskId>).add(task.taskId);
    if (this.#groups !== null) this.#group(this.#groups, task);
  }

  #group(groups: Map<JobKeyString, Map<number, Set<TaskId>>>, task: Pick<TaskRecord, "taskId" | "job" | "configVersion">): void {
    let versions = groups.get(task.job);
    if (versions === undefined) groups.set(task.job, (versions = new Map()));
    let ids = versions.get(task.configVersion);
    if (ids === undefined) versions.set(task.configVersion, (ids = new Set()));
    ids.add(task.taskId);
  }

  /** A snapshot decode's: `id` is PENDING (its row may still be cold, so no group yet: the
   *  groups are built from `pending` when first asked for). */
  restorePending(id: TaskId): void {
    if (this.#groups !== null) throw new Error("invariant: a pending task restored after the pending groups were built");
    (this.pending as Set<TaskId>).add(id);
  }

  /** `task` is PENDING no more. */
  unmarkPending(task: Pick<TaskRecord, "taskId" | "job" | "configVersion">): void {
    if (!(this.pending as Set<TaskId>).delete(task.taskId)) return;
    const versions = this.#groups?.get(task.job);
    const ids = versions?.get(task.configVersion);
    if (ids === undefined || !ids.delete(task.taskId) || ids.size > 0) return;
    versions!.delete(task.configVersion);
    if (versions!.size === 0) this.#groups!.delete(task.job);
  }

  /** pendingGroups() if something asked for it already, else null (for checks that must not build it). */
  builtPendingGroups(): ReadonlyMap<JobKeyString, ReadonlyMap<number, ReadonlySet<TaskId>>> | null {
    return this.#groups;
  }

  /**
   * The PENDING tasks grouped by job, then config version; each group's tasks in the order they
   * became PENDING, and groups in the order they last became non-empty. Read-only to callers.
   * Why it is kept rather than grouped per round: a placement round grouped every pending task,
   * a task-table lookup each, and a round follows every commit. With up to ~50,000 tasks waiting
   * in `bench placement`, every round of at most 2,000 placements looked up all of them; 5,000
   * agents joining a 30,000-task backlog took 6–12 s to register, ~3 s since.
   */
  pendingGroups(): ReadonlyMap<JobKeyString, ReadonlyMap<number, ReadonlySet<TaskId>>> {
    if (this.#groups === null) {
      const groups = new Map<JobKeyString, Map<number, Set<TaskId>>>();
      for (const id of this.pending) {
        const t = this.tasks.get(id);
        if (t !== undefined) this.#group(groups, t); // always there: invariants.ts checks `pending-index`
      }
      this.#groups = groups;
    }
    return this.#groups;
  }

  /** A task entered state `to`, from `from` (null: the task is new): the fold's, after the
   *  change, so a count built from the tasks already holds it. */
  taskEntered(from: TaskStateName | null, to: TaskStateName): void {
    const c = this.#stateCounts;
    if (c === null) return;
    if (from !== null) c[TASK_STATE_CODE[from]!]!--;
    c[TASK_STATE_CODE[to]!]!++;
  }

  /** taskStateCounts() if something asked for it already, else null (for checks that must not build it). */
  builtTaskStateCounts(): ReadonlyMap<TaskStateName, number> | null {
    return this.#stateCounts === null ? null : this.taskStateCounts();
  }

  /**
   * How many tasks are in each state, every state present (in TASK_STATES' order). Why kept and
   * not counted per read: metrics (every scrape, on every replica) and the cluster summary each
   * walked every task the state ever had, ~20 ms at 240k tasks and ten times that at 2.4M, on the
   * leader's event loop; and the summary's walk built every cold row of a snapshot as it went.
   * The first read counts once (a snapshot's cold rows from their columns), the fold keeps it.
   */
  taskStateCounts(): ReadonlyMap<TaskStateName, number> {
    let c = this.#stateCounts;
    if (c === null) {
      const counted = this.tasks.stateCounts();
      c = this.#stateCounts = TASK_STATES.map((s) => counted.get(s) ?? 0);
    }
    const out = new Map<TaskStateName, number>();
    for (let i = 0; i < TASK_STATES.length; i++) out.set(TASK_STATES[i]!, c[i]!);
    return out;
  }

  /** The job's update that is not over yet (at most one per job), or undefined. */
  activeUpdate(job: JobKeyString): UpdateRecord | undefined {
    for (const u of this.updates.values()) if (u.job === job && !UPDATE_TERMINAL.has(u.status)) return u;
    return undefined;
  }

  taskConfig(t: TaskRecord): TaskConfig {
    const job = this.jobs.get(t.job)!;
    return job.configs[t.configVersion]!;
  }
}
