// Whose an event is: the job, role and agent it concerns. The event stream (`roost events`,
// client.events(), GET /v1/events) filters on these, and a role sees only its own jobs' events:
// a subscriber of www-data must not learn what analytics runs, so an event whose role cannot be
// told (a task the state no longer knows, an agent's or a leader's event) is not a role's.
//
// Pure: it reads the event and, for task events, the folded state's task table.

import { UNREADABLE, type LogEntry } from "../domain/events.js";
import type { ClusterState } from "./state.js";

export interface EventScope {
  job: string | null;
  role: string | null;
  agent: string | null;
  taskId: string | null;
}

export interface EventFilter {
  job?: string;
  role?: string;
  agent?: string;
  /** Event types; any of them. */
  type?: string[];
}

const roleOf = (job: string | null): string | null => (job === null ? null : (job.split("/")[0] ?? null));

/** The job, role, agent and task an entry concerns (nulls where it concerns none, or cannot be told). */
export function scopeOf(e: LogEntry, state: Pick<ClusterState, "tasks" | "updates">): EventScope {
  const none: EventScope = { job: null, role: null, agent: null, taskId: null };
  if (e.type === UNREADABLE) return none;
  const d = (e.data ?? {}) as Record<string, unknown>;
  const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
  switch (e.type) {
    case "JobCreated":
    case "CronJobScheduled": {
      const j = (d.job ?? {}) as Record<string, unknown>;
      const job = [j.role, j.environment, j.name].every((x) => typeof x === "string") ? `${j.role}/${j.environment}/${j.name}` : null;
      return { ...none, job, role: roleOf(job) };
    }
    case "JobInstancesAdded":
    case "JobKillRequested":
    case "JobUpdateStarted":
    case "CronJobDescheduled":
    case "CronTriggered": {
      const job = str(d.job);
      return { ...none, job, role: roleOf(job) };
    }
    case "JobUpdateStateChanged":
    case "JobInstanceUpdateEvent":
    case "JobUpdatePulsed": {
      // They name their update; its job is in the state (an update not yet folded is nobody's).
      const updateId = str(d.updateId);
      const job = updateId === null ? null : (state.updates.get(updateId)?.job ?? null);
      return { ...none, job, role: roleOf(job) };
    }
    case "QuotaSet":
      return { ...none, role: str(d.role) };
    case "RequestDecided": {
      const key = str(d.key);
      const who = key === null ? null : (key.split("/")[0] ?? null);
      return { ...none, role: who === "admin" ? null : who };
    }
    case "AgentRegistered":
    case "AgentStateChanged":
      return { ...none, agent: str(d.agentId) };
    case "LeaderElected":
    // Maintenance is the admin's: cluster-wide, no role's (a denial names its task: below).
    case "HostMaintenanceChanged":
    case "MaintenanceWindowScheduled":
    case "MaintenanceWindowEnded":
      return none;
    default: {
      // The task events: TaskCreated names its job; the others are looked up in the state.
      const taskId = str(d.taskId);
      const task = taskId === null ? undefined : state.tasks.get(taskId as never);
      const job = str(d.job) ?? task?.job ?? null;
      const agent = str(d.agentId) ?? task?.agentId ?? null;
      return { job, role: roleOf(job), agent, taskId };
    }
  }
}

/** One event as the event stream gives it: where it is in the log, its envelope, and whose it is. */
export interface EventItem {
  seq: number;
  index: number;
  ts: number;
  epoch: number;
  type: string;
  reason: string;
  corr: string;
  data: unknown;
  job: string | null;
  role: string | null;
  agent: string | null;
}

/** The stream's item for entry `index` of record `seq`. */
export function eventItem(seq: number, index: number, e: LogEntry, scope: EventScope): EventItem {
  return {
    seq,
    index,
    ts: e.ts ?? 0,
    epoch: e.epoch ?? 0,
    type: e.type,
    reason: e.reason ?? "",
    corr: e.corr ?? "",
    data: e.data,
    job: scope.job,
    role: scope.role,
    agent: scope.agent,
  };
}

/** Does an entry with this scope pass the filter? */
export function matches(e: LogEntry, scope: EventScope, f: EventFilter): boolean {
  if (f.type !== undefined && f.type.length > 0 && !f.type.includes(e.type)) return false;
  if (f.job !== undefined && scope.job !== f.job) return false;
  if (f.role !== undefined && scope.role !== f.role) return false;
  if (f.agent !== undefined && scope.agent !== f.agent) return false;
  return true;
}
