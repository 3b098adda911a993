// The event catalog. Every scheduler decision is one of these, wrapped in an Envelope.
//
// Rules (invariant 4): an event type's fields only ever grow. A field never changes meaning. A
// breaking change is a new version number with an upcaster (eventlog/envelope.ts) that turns the
// old payload into the new one.
//
// Each payload is a schema (TypeBox), so the type the code sees and the check the fold applies
// are one definition. The fold checks every event against its schema before applying it: a record
// that breaks it (a bad field value, a state that does not exist) becomes an anomaly instead of an
// exception. That is what this file learned from the poisoned log: a status update carrying
// state "BOGUS" was appended, and the fold threw "unknown task state in transition RUNNING →
// BOGUS" on every replica and in every CLI read, so nothing could start again.
//
// The schemas are the log's types, deliberately loose: no length or range policy (limits.ts
// holds that, for new requests). A field an older build wrote must keep folding the same way.

import { Type, type Static } from "../vendor/typebox.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import { INSTANCE_ACTIONS, UPDATE_STATES } from "../statemachines/update.js";
import { UpdateSettingsSchema } from "./update.js";
import { DrainRequestSchema } from "./maintenance.js";
import { HOST_MODES } from "../statemachines/host.js";
import { AgentIdStr, AgentResourcesSchema, JobConfigSchema, JobKeyStr, TaskIdStr } from "./types.js";
import { Dict, fastChecker, OneOf, type Problem } from "./validate.js";

const Str = Type.String();
const Int = Type.Integer();
const Num = Type.Number();

/** A placement decision as logged: enough to answer "why host X and not host Y?". */
const PlacementDecisionSchema = Type.Object({
  /** "spread" or "binpack". */
  mode: Str,
  /** Agents looked at, and how many of them could take the task. */
  evaluated: Num,
  feasible: Num,
  /** The chosen agent's score (higher is better). */
  score: Num,
  /** Up to three runners-up: a score when feasible, otherwise the veto. */
  alternatives: Type.Array(Type.Object({ host: Str, score: Type.Optional(Num), veto: Type.Optional(Str) })),
  /** How many agents each veto excluded, among those evaluated. */
  vetoes: Dict(Num),
  /** Set when the task took a slot the preemptor held for it. */
  reserved: Type.Optional(Type.Boolean()),
});
export type PlacementDecision = Static<typeof PlacementDecisionSchema>;

const EVENT_SCHEMAS = {
  /** A scheduler took the lease. Everything after it is stamped with `epoch`. */
  LeaderElected: Type.Object({ schedulerId: Str, epoch: Num, host: Str, pid: Num }),
  /** An agent (one per host) registered or re-registered. */
  AgentRegistered: Type.Object({
    agentId: AgentIdStr,
    host: Str,
    attributes: Dict(Str),
    resources: AgentResourcesSchema,
    bootId: Str,
    /** How the agent confines its tasks ("cgroups-v2", "cgroups-v1" or "none", and why). Absent: not said. */
    isolation: Type.Optional(Type.Object({ mode: Str, detail: Str })),
  }),
  /** The leader judged an agent's lifecycle to change (see statemachines/agent.ts). */
  AgentStateChanged: Type.Object({ agentId: AgentIdStr, to: OneOf(["UNREACHABLE", "REMOVED"] as const) }),
  /** A job was accepted. `job` is the validated, normalised config. */
  JobCreated: Type.Object({ job: JobConfigSchema, configVersion: Int }),
  /** Instances were added to a running job: instances become `instances` + count. */
  JobInstancesAdded: Type.Object({ job: JobKeyStr, count: Int, user: Str }),
  /** An administrator set a role's production quota. */
  QuotaSet: Type.Object({ role: Str, cpus: Num, ramMb: Num, diskMb: Num, user: Str }),
  /** A user asked to kill instances (null = all). Tasks move through the task machine. */
  JobKillRequested: Type.Object({ job: JobKeyStr, instances: Type.Union([Type.Array(Int), Type.Null()]), user: Str }),
  /** A task came into being for an instance (first run or RESCHEDULE of `ancestorId`). */
  TaskCreated: Type.Object({
    taskId: TaskIdStr,
    job: JobKeyStr,
    instance: Int,
    configVersion: Int,
    ancestorId: Type.Union([TaskIdStr, Type.Null()]),
    failureCount: Int,
    state: OneOf(["PENDING", "THROTTLED"] as const),
    /** THROTTLED only: the flap penalty; the task may run again at the event's ts + throttleMs. */
    throttleMs: Type.Optional(Num),
  }),
  /** Placement matched a PENDING task to an agent. Ports are concrete numbers by name. */
  TaskAssigned: Type.Object({
    taskId: TaskIdStr,
    agentId: AgentIdStr,
    host: Str,
    ports: Dict(Int),
    /** Why this host: the decision, compactly (scheduling/stack.ts). */
    placement: Type.Optional(PlacementDecisionSchema),
  }),
  /**
   * The preemptor freed a slot on `agentId` for a pending task by preempting `victims`; the slot is
   * held for that task until it is placed or `expiresTs`.
   */
  SlotReserved: Type.Object({ taskId: TaskIdStr, agentId: AgentIdStr, victims: Type.Array(TaskIdStr), expiresTs: Num }),
  /** A held slot was let go (it expired, or its task went away). */
  SlotReleased: Type.Object({ taskId: TaskIdStr, agentId: AgentIdStr }),
  /**
   * A request to move a task to `to`, run through the task machine by the fold.
   * From an agent status update, `agentSeq` is that task's status sequence number (duplicates
   * are dropped by the leader before appending) and `exitCode` is set for FINISHED/FAILED.
   */
  TaskStateChanged: Type.Object({
    taskId: TaskIdStr,
    to: OneOf(TASK_STATES),
    agentSeq: Type.Optional(Int),
    exitCode: Type.Optional(Int),
    message: Type.Optional(Str),
  }),
  /**
   * A job update began (Aurora's JobUpdate): it registers the job's new config as `toVersion`,
   * rolled out from `fromVersion` by `settings` over `instances` (Aurora's
   * updateOnlyTheseInstances; null: all). `status` is its first: ROLLING_FORWARD, or
   * ROLL_FORWARD_AWAITING_PULSE for a coordinated update. The job's own config becomes the new one
   * only when the update is ROLLED_FORWARD.
   *
   * `restart` (added later; absent means false): a rolling restart (roost job restart), which
   * rolls the job's own config (`toVersion` = `fromVersion` = the job's) through RESTARTING.
   */
  JobUpdateStarted: Type.Object({
    updateId: Str,
    job: JobKeyStr,
    fromVersion: Int,
    toVersion: Int,
    config: JobConfigSchema,
    settings: UpdateSettingsSchema,
    instances: Type.Union([Type.Array(Int), Type.Null()]),
    status: OneOf(UPDATE_STATES),
    user: Str,
    message: Type.Optional(Str),
    restart: Type.Optional(Type.Boolean()),
  }),
  /** A request to move an update to `to` (statemachines/update.ts decides; Aurora's JobUpdateEvent). */
  JobUpdateStateChanged: Type.Object({
    updateId: Str,
    to: OneOf(UPDATE_STATES),
    user: Type.Optional(Str),
    message: Type.Optional(Str),
  }),
  /** One instance's progress in an update (Aurora's JobInstanceUpdateEvent); the reason says why. */
  JobInstanceUpdateEvent: Type.Object({ updateId: Str, instance: Int, action: OneOf(INSTANCE_ACTIONS) }),
  /** A coordinated update's pulse. Logged, unlike Aurora's, so a coordinated update replays exactly. */
  JobUpdatePulsed: Type.Object({ updateId: Str, user: Str }),
  /**
   * A cron job was scheduled (roost cron schedule), or scheduled again with a new config: `job` is
   * its validated template (cronSchedule set). Nothing runs yet: each trigger creates a run of it.
   */
  CronJobScheduled: Type.Object({ job: JobConfigSchema, user: Str }),
  /** A cron job was descheduled: no more triggers (a run under way is not killed). */
  CronJobDescheduled: Type.Object({ job: JobKeyStr, user: Str }),
  /**
   * A cron job's trigger for `minuteMs` (the start of its minute; for a manual `cron start`, the
   * request's time) and what became of it: "fired" (a run was created, by the JobCreated and
   * TaskCreated events before it in the same record), "skipped" (CANCEL_NEW: the previous run is
   * still active), or "collided" (KILL_EXISTING: the previous run is being killed; a "fired" for
   * the same minute follows once it has ended). `missed`: triggers after the last fired one that
   * were not replayed (a new leader catching up fires once). `user`: set for a manual start.
   */
  CronTriggered: Type.Object({
    job: JobKeyStr,
    minuteMs: Num,
    outcome: OneOf(["fired", "skipped", "collided"] as const),
    missed: Int,
    user: Type.Optional(Str),
  }),
  /**
   * Hosts asked to move to maintenance mode `to` (statemachines/host.ts decides; Aurora's
   * MaintenanceController): SCHEDULED (start), DRAINING (drain, with its request), DRAINED (the
   * leader found no active task left), NONE (end). `windowId`: a maintenance window moved them.
   */
  HostMaintenanceChanged: Type.Object({
    hosts: Type.Array(Str, { minItems: 1 }),
    to: OneOf(HOST_MODES),
    user: Type.Optional(Str),
    drain: Type.Optional(DrainRequestSchema),
    windowId: Type.Optional(Str),
  }),
  /** A task on a DRAINING host was not drained now: its job's SLA would break (the reason says how). */
  SlaDrainDenied: Type.Object({ taskId: TaskIdStr, host: Str }),
  /** A maintenance window (Mesos's idea): its hosts are SCHEDULED until `startTs`, drain then, and end at `startTs + durationMs`. */
  MaintenanceWindowScheduled: Type.Object({
    windowId: Str,
    hosts: Type.Array(Str, { minItems: 1 }),
    startTs: Int,
    durationMs: Int,
    user: Str,
    drain: DrainRequestSchema,
  }),
  /** A window is over: it elapsed, or was cancelled (`user`). */
  MaintenanceWindowEnded: Type.Object({ windowId: Str, cancelled: Type.Boolean(), user: Type.Optional(Str) }),
  /**
   * A keyed request was decided: its first outcome, kept at least REQUEST_KEY_RETENTION_MS, so the
   * same key sent again (over the API, or redelivered by the intake stream after a failover) gets
   * this outcome back and changes nothing. `key` is "<role>/<client key>" ("admin/…" for the admin
   * scope). Appended in the same record as the events a done request caused (which carry the key
   * in their `corr`), or alone for a rejected one. `value` is the reply's value without `seq` (the
   * record's sequence is added when it is read back).
   */
  RequestDecided: Type.Object({
    key: Str,
    op: Str,
    outcome: OneOf(["done", "rejected"] as const),
    value: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.Object({ code: Str, message: Str, field: Type.Optional(Str) })),
  }),
};

export type EventPayloads = { [T in keyof typeof EVENT_SCHEMAS]: Static<(typeof EVENT_SCHEMAS)[T]> };
export type EventType = keyof EventPayloads;

export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as readonly EventType[];

/** Current version of each event type's payload. */
export const EVENT_VERSIONS: Record<EventType, number> = {
  LeaderElected: 1,
  AgentRegistered: 1,
  AgentStateChanged: 1,
  JobCreated: 1,
  JobKillRequested: 1,
  JobInstancesAdded: 1,
  QuotaSet: 1,
  SlotReserved: 1,
  SlotReleased: 1,
  TaskCreated: 1,
  TaskAssigned: 1,
  TaskStateChanged: 1,
  RequestDecided: 1,
  JobUpdateStarted: 1,
  JobUpdateStateChanged: 1,
  JobInstanceUpdateEvent: 1,
  JobUpdatePulsed: 1,
  HostMaintenanceChanged: 1,
  SlaDrainDenied: 1,
  MaintenanceWindowScheduled: 1,
  MaintenanceWindowEnded: 1,
  CronJobScheduled: 1,
  CronJobDescheduled: 1,
  CronTriggered: 1,
};

const checks = Object.fromEntries(EVENT_TYPES.map((t) => [t, fastChecker(EVENT_SCHEMAS[t])])) as Record<
  EventType,
  (v: unknown) => Problem | null
>;

/** The first way `data` breaks its type's schema, or null when it folds. */
export function checkEventData(type: EventType, data: unknown): Problem | null {
  return checks[type](data);
}

// ---- envelopes --------------------------------------------------------------------------------

/**
 * The envelope of one event (wire format: eventlog/envelope.ts).
 *   epoch  leader epoch (lease revision) of the writer; 0 before any election
 *   ts     wall-clock ms of the decision, read by the writer, never by the fold
 *   corr   correlation id: ties a request to every event it caused
 *   reason why the decision was made, in words an SRE can read
 */
export interface Envelope<T extends EventType = EventType> {
  type: T;
  v: number;
  epoch: number;
  ts: number;
  corr: string;
  reason: string;
  data: EventPayloads[T];
}

/** Any envelope, as a discriminated union on `type` so `switch (env.type)` narrows `data`. */
export type AnyEnvelope = { [T in EventType]: Envelope<T> }[EventType];

/**
 * What the decoder makes of an entry it cannot read: bad bytes, an unknown type, a payload
 * version newer than this build. Never written: it exists only between decoding and the fold,
 * which records it as an anomaly. The name cannot collide with an event type (it is no
 * identifier).
 */
export const UNREADABLE = "(unreadable)";
export interface UnreadableEntry {
  type: typeof UNREADABLE;
  v: number;
  epoch: number;
  ts: number;
  corr: string;
  reason: string;
  /** Why it could not be read, and the type it claimed (null when it named none). */
  data: { why: string; claimedType: string | null };
}

/** One entry of a record as read back from the log. */
export type LogEntry = AnyEnvelope | UnreadableEntry;

/** A decoded record: the entries of one log message and the stream sequence that holds them. */
export interface LogRecord {
  seq: number;
  events: LogEntry[];
}

export function makeEnvelope<T extends EventType>(
  type: T,
  data: EventPayloads[T],
  meta: { epoch: number; ts: number; corr: string; reason: string },
): Envelope<T> {
  return { type, v: EVENT_VERSIONS[type], epoch: meta.epoch, ts: meta.ts, corr: meta.corr, reason: meta.reason, data };
}
