// Read models of job updates (update info, update list, the UI's updates page): plain JSON from
// the folded state, the same for the leader's API and for a client folding the log itself with
// no leader up. Pure: no clock (a progress bar needs none), no log reads (the fold keeps each
// action's reason, so `update info --json` lists {instance, action, seq, ts, reason} straight
// from the state).

import type { JobKeyString } from "../domain/types.js";
import type { ClusterState, UpdateActionRecord, UpdateRecord, UpdateStatusRecord } from "../replay/state.js";
import { TERMINAL_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import { ACTIVE_UPDATE_STATES, type InstanceAction, type UpdateStatus } from "../statemachines/update.js";
import { instanceDiff } from "./driver.js";
import type { UpdateSettings } from "./settings.js";

export interface UpdateSummary {
  updateId: string;
  job: JobKeyString;
  status: UpdateStatus;
  active: boolean;
  /** A rolling restart (roost job restart) rather than a config change. */
  restart: boolean;
  user: string;
  fromVersion: number;
  toVersion: number;
  createdSeq: number;
  createdTs: number;
  lastTs: number;
  /** Instances it touches (its plan while active; those it acted on once over), done, failed and in flight. */
  progress: { total: number; done: number; failed: number; working: number };
}

export interface UpdateInfo extends UpdateSummary {
  message: string | null;
  /** Aurora's updateOnlyTheseInstances; null: every instance. */
  instances: number[] | null;
  settings: UpdateSettings;
  /** While active: what it adds, changes and removes. */
  plan: { added: number[]; changed: number[]; removed: number[] } | null;
  statuses: UpdateStatusRecord[];
  actions: UpdateActionRecord[];
}

function progressOf(state: ClusterState, u: UpdateRecord, active: boolean): UpdateSummary["progress"] {
  let done = 0;
  let failed = 0;
  let working = 0;
  for (const a of Object.values(u.instanceActions)) {
    if (a.action === "INSTANCE_UPDATED" || a.action === "INSTANCE_ROLLED_BACK") done++;
    else if (a.action === "INSTANCE_UPDATE_FAILED" || a.action === "INSTANCE_ROLLBACK_FAILED") failed++;
    else working++;
  }
  let total = Object.keys(u.instanceActions).length;
  if (active) {
    const d = instanceDiff(state, u);
    total = Math.max(total, d.added.length + d.changed.length + d.removed.length);
  }
  return { total, done, failed, working };
}

function summary(state: ClusterState, u: UpdateRecord): UpdateSummary {
  const active = ACTIVE_UPDATE_STATES.has(u.status);
  return {
    updateId: u.updateId,
    job: u.job,
    status: u.status,
    active,
    restart: u.restart,
    user: u.user,
    fromVersion: u.fromVersion,
    toVersion: u.toVersion,
    createdSeq: u.createdSeq,
    createdTs: u.createdTs,
    lastTs: u.lastTs,
    progress: progressOf(state, u, active),
  };
}

/** One update: `updateId`, else the job's active one, else its newest. Null when the job has none (or it is another job's). */
export function updateInfo(state: ClusterState, job: JobKeyString, updateId?: string): UpdateInfo | null {
  let u: UpdateRecord | undefined;
  if (updateId !== undefined) {
    u = state.updates.get(updateId);
    if (u?.job !== job) return null;
  } else {
    u = state.activeUpdate(job);
    if (!u) for (const x of state.updates.values()) if (x.job === job) u = x;
  }
  if (!u) return null;
  const s = summary(state, u);
  return {
    ...s,
    message: u.message,
    instances: u.instances,
    settings: u.settings,
    plan: s.active ? instanceDiff(state, u) : null,
    statuses: u.statuses,
    actions: u.actions,
  };
}

/** Updates, newest first: of one job, or of a role (`role/` prefix), or all; `status` "active" or one status. */
export function updateList(state: ClusterState, filter: { job?: string; role?: string; status?: string } = {}): UpdateSummary[] {
  const out: UpdateSummary[] = [];
  for (const u of state.updates.values()) {
    if (filter.job !== undefined && u.job !== filter.job) continue;
    if (filter.role !== undefined && !u.job.startsWith(`${filter.role}/`)) continue;
    if (filter.status === "active" ? !ACTIVE_UPDATE_STATES.has(u.status) : filter.status !== undefined && u.status !== filter.status)
      continue;
    out.push(summary(state, u));
  }
  return out.reverse();
}

/** One instance of an update, as the UI's updates page shows it. */
export interface UpdateInstanceRow {
  instance: number;
  /** Its newest action (null: its turn has not come yet), and when it was logged. */
  action: InstanceAction | null;
  seq: number | null;
  ts: number | null;
  /** How far its roll is, 0 to 1 (1: updated, rolled back, or failed), and where it stands, in words. */
  progress: number;
  phase: string;
  /** The instance's newest task at the moment asked for (null: none). */
  task: { taskId: string; state: TaskStateName; configVersion: number; sinceTs: number } | null;
  /** Every action of the instance, in log order, with its reason. */
  actions: UpdateActionRecord[];
}

const DONE: ReadonlySet<string> = new Set(["INSTANCE_UPDATED", "INSTANCE_ROLLED_BACK"]);
const FAILED: ReadonlySet<string> = new Set(["INSTANCE_UPDATE_FAILED", "INSTANCE_ROLLBACK_FAILED"]);
const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Every instance an update touches (its plan while active, with those it acted on), ascending,
 * each with its newest action, its task, and a progress figure at log time `now` (the moment
 * shown): an instance at work is replacing its old task (up to 0.3), waiting for its new one to
 * start (up to 0.6), then watched RUNNING for watchSecs (0.7 to 1).
 */
export function updateInstances(state: ClusterState, updateId: string, now: number): UpdateInstanceRow[] {
  const u = state.updates.get(updateId);
  if (!u) return [];
  const byInstance = new Map<number, UpdateActionRecord[]>();
  for (const a of u.actions) {
    const list = byInstance.get(a.instance);
    if (list) list.push(a);
    else byInstance.set(a.instance, [a]);
  }
  const instances = new Set(byInstance.keys());
  const d = ACTIVE_UPDATE_STATES.has(u.status) ? instanceDiff(state, u) : null;
  if (d) for (const i of [...d.added, ...d.changed, ...d.removed]) instances.add(i);
  const job = state.jobs.get(u.job);
  return [...instances]
    .sort((a, b) => a - b)
    .map((i) => {
      const newest = u.instanceActions[String(i)] ?? null;
      const id = job?.instances.get(i);
      const t = id === undefined ? undefined : state.tasks.get(id);
      const n = t ? t.history.length : 0;
      const task = t
        ? { taskId: t.taskId as string, state: t.state, configVersion: t.configVersion, sinceTs: n >= 4 ? t.history[n - 2]! : 0 }
        : null;
      const { progress, phase } = instanceProgress(u, i, newest, t ? { ...task!, createdSeq: t.history[0] ?? 0 } : null, d, now);
      return {
        instance: i,
        action: newest?.action ?? null,
        seq: newest?.seq ?? null,
        ts: newest?.ts ?? null,
        progress,
        phase,
        task,
        actions: byInstance.get(i) ?? [],
      };
    });
}

function instanceProgress(
  u: UpdateRecord,
  i: number,
  newest: { action: InstanceAction; seq: number } | null,
  task: { state: TaskStateName; configVersion: number; sinceTs: number; createdSeq: number } | null,
  plan: { added: number[]; removed: number[] } | null,
  now: number,
): { progress: number; phase: string } {
  if (newest === null) return { progress: 0, phase: "waiting for its turn" };
  if (DONE.has(newest.action)) return { progress: 1, phase: newest.action === "INSTANCE_UPDATED" ? "updated" : "rolled back" };
  if (FAILED.has(newest.action)) return { progress: 1, phase: "failed" };
  if (!ACTIVE_UPDATE_STATES.has(u.status)) return { progress: 0, phase: `stopped: the update is ${u.status}` };
  const back = newest.action === "INSTANCE_ROLLING_BACK";
  // The config the instance goes to; null: it goes away (removed forward, or added and rolled back).
  const want = back ? (plan?.added.includes(i) ? null : u.fromVersion) : plan?.removed.includes(i) ? null : u.toVersion;
  const live = task !== null && !TERMINAL_STATES.has(task.state);
  if (want === null) return live ? { progress: 0.5, phase: `removing its task (${task.state})` } : { progress: 0.9, phase: "removed" };
  // A restart's new task is one created after the instance's turn began.
  const isNew = task !== null && task.configVersion === want && (!u.restart || task.createdSeq > newest.seq);
  if (!isNew)
    return task && live
      ? { progress: task.state === "KILLING" || task.state === "RESTARTING" ? 0.2 : 0.1, phase: `replacing its old task (${task.state})` }
      : { progress: 0.3, phase: "old task gone: its new one is on its way" };
  switch (task.state) {
    case "RUNNING": {
      const watchMs = u.settings.watchSecs * 1000;
      const ran = Math.max(0, now - task.sinceTs);
      const f = watchMs > 0 ? Math.min(1, ran / watchMs) : 1;
      return {
        progress: round2(0.7 + 0.3 * f),
        phase: `watched RUNNING: ${Math.min(u.settings.watchSecs, Math.floor(ran / 1000))} of ${u.settings.watchSecs} s`,
      };
    }
    case "PENDING":
    case "THROTTLED":
      return { progress: 0.4, phase: `new task ${task.state}` };
    case "ASSIGNED":
    case "STARTING":
      return { progress: 0.6, phase: `new task ${task.state}` };
    default:
      return { progress: 0.4, phase: `new task ${task.state}` };
  }
}
