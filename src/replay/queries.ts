// Read models over ClusterState, shared by the leader's API and by clients that fold the log
// themselves (when no leader is up). Pure functions; plain JSON out.

import { asTaskId, jobKeyString, parseJobKey, type JobKeyString, type TaskId } from "../domain/types.js";
import type { LogRecord } from "../domain/events.js";
import { ACTIVE_STATES, TASK_STATES, TERMINAL_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import { HISTORY_STRIDE, type ClusterState, type TaskRecord } from "./state.js";

interface InstanceStatus {
  instance: number;
  taskId: TaskId;
  state: TaskStateName;
  host: string | null;
  ports: Record<string, number>;
  reason: string;
  failureCount: number;
  exitCode: number | null;
  /** The config version the task runs: during an update, instances run different ones. */
  configVersion: number;
}

export interface JobStatus {
  job: JobKeyString;
  instances: InstanceStatus[];
  service: boolean;
  configuredInstances: number;
  /** The job's own config version (an update makes its new one the job's once ROLLED_FORWARD). */
  configVersion: number;
  /** The job's active update or restart, if any. */
  update: { updateId: string; status: string; restart: boolean } | null;
  seq: number;
}

export interface JobSummary {
  job: JobKeyString;
  service: boolean;
  instances: number;
  states: Partial<Record<TaskStateName, number>>;
  active: number;
}

export interface TaskHistory {
  taskId: TaskId;
  job: JobKeyString;
  instance: number;
  ancestorId: TaskId | null;
  successorId: TaskId | null;
  state: TaskStateName;
  host: string | null;
  ports: Record<string, number>;
  failureCount: number;
  exitCode: number | null;
  events: TaskHistoryEvent[];
}

interface TaskHistoryEvent {
  seq: number;
  /** The index of the causing event within its record. */
  idx: number;
  ts: number;
  state: TaskStateName;
  /** The causing event's reason, read back from the log (null until filled in). */
  reason: string | null;
}

/** Why a pending task waits, when the leader knows (placement vetoes are kept in memory). */
export interface PendingReasons {
  get(taskId: TaskId): string | undefined;
}

function latestReason(t: TaskRecord, pending?: PendingReasons): string {
  if (t.state === "PENDING") {
    const r = pending?.get(t.taskId);
    if (r !== undefined) return r;
  }
  return t.lastReason;
}

export function jobStatus(state: ClusterState, key: string, pending?: PendingReasons): JobStatus | null {
  const k = jobKeyString(parseJobKey(key));
  const job = state.jobs.get(k);
  if (!job) return null;
  const instances: InstanceStatus[] = [];
  for (const i of [...job.instances.keys()].sort((a, b) => a - b)) {
    const t = state.tasks.get(job.instances.get(i)!)!;
    instances.push({
      instance: i,
      taskId: t.taskId,
      state: t.state,
      host: t.host,
      ports: t.ports ?? {},
      reason: latestReason(t, pending),
      failureCount: t.failureCount,
      exitCode: t.exitCode,
      configVersion: t.configVersion,
    });
  }
  const u = state.activeUpdate(k);
  return {
    job: k,
    instances,
    service: job.config.task.service,
    configuredInstances: job.config.instances,
    configVersion: job.configVersion,
    update: u ? { updateId: u.updateId, status: u.status, restart: u.restart } : null,
    seq: state.seq,
  };
}

export function jobList(state: ClusterState): JobSummary[] {
  const out: JobSummary[] = [];
  for (const key of [...state.jobs.keys()].sort()) {
    const job = state.jobs.get(key)!;
    const states: Partial<Record<TaskStateName, number>> = {};
    let active = 0;
    for (const taskId of job.instances.values()) {
      const s = state.tasks.get(taskId)!.state;
      states[s] = (states[s] ?? 0) + 1;
      if (ACTIVE_STATES.has(s)) active++;
    }
    out.push({ job: key, service: job.config.task.service, instances: job.instances.size, states, active });
  }
  return out;
}

/** `taskId` is the user's: an unknown one is null. */
export function taskHistory(state: ClusterState, taskId: string): TaskHistory | null {
  const t = state.tasks.get(asTaskId(taskId));
  if (!t) return null;
  return {
    taskId: t.taskId,
    job: t.job,
    instance: t.instance,
    ancestorId: t.ancestorId,
    successorId: t.successorId,
    state: t.state,
    host: t.host,
    ports: t.ports ?? {},
    failureCount: t.failureCount,
    exitCode: t.exitCode,
    events: historyOf(t),
  };
}

function historyOf(t: TaskRecord): TaskHistoryEvent[] {
  const out: TaskHistoryEvent[] = [];
  const h = t.history;
  for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
    out.push({ seq: h[i]!, idx: h[i + 1]!, ts: h[i + 2]!, state: TASK_STATES[h[i + 3]!]!, reason: null });
  }
  if (out.length) out[out.length - 1]!.reason = t.lastReason;
  return out;
}

/** Fill in each history event's reason from the log (the events that caused them). */
export async function withReasons(h: TaskHistory, log: { get(seq: number): Promise<LogRecord | null> }): Promise<TaskHistory> {
  const records = new Map<number, LogRecord | null>();
  for (const e of h.events) {
    if (e.reason !== null) continue;
    if (!records.has(e.seq)) records.set(e.seq, await log.get(e.seq));
    e.reason = records.get(e.seq)?.events[e.idx]?.reason ?? "(record no longer in the log)";
  }
  return h;
}

/** True when every listed instance of the job has reached a terminal state. */
export function instancesTerminal(
  status: { instances: ReadonlyArray<{ instance: number; state: string }> },
  instances: number[] | null,
): boolean {
  const terminal = TERMINAL_STATES as ReadonlySet<string>;
  return status.instances.filter((i) => instances === null || instances.includes(i.instance)).every((i) => terminal.has(i.state));
}
