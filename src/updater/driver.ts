// The updater's decisions: what an update does next, as data, from the folded state and a time.
//
// Aurora's JobUpdateControllerImpl + OneWayJobUpdater, taken as one pure function: given the
// state (which holds the update, its job, and each instance's newest task) and `now`, it returns
// the decisions the leader turns into events: an instance starting, succeeding or failing
// (JobInstanceUpdateEvent), a task to create with the desired config or to kill, the update's
// next status, and when to look again. It decides nothing the fold does not already show, so a
// leader that fails over mid-update, folds the log and asks again continues where the old one
// stopped; and asking twice before the decisions are committed gives the same decisions, which
// the leader's commit check then makes harmless (one instance event, one kill, one task).
//
// Which instances an update touches (Aurora's instance diff): with N the job's instance count
// when the update started and M the new config's, instances in scope (updateOnlyTheseInstances,
// or all) below both are changed when the two task configs differ, those only below M are
// added, those only below N removed. Rolling forward they go, in that order (new first, then
// changed, then removed), to the new config or away; rolling back, in the reverse order, to the
// old config or away again (planner: plan.ts).
//
// A rolling restart (roost job restart; `restart` on the update) is an update whose config is
// the job's own: every instance in scope is "changed", and a task counts as the desired one only
// when it was created after its instance's turn began (INSTANCE_UPDATING). The old task is sent
// through RESTARTING (the task machine reschedules it, with its own config), so the same
// batches, watch and failure rules apply, and `update info` shows the progress.
//
// Left for later, and said where it matters: autopauseAfterBatch, SLA-aware kills, update
// affinity reservations.

import { canonical } from "../replay/canonical.js";
import type { ClusterState, TaskRecord, UpdateRecord } from "../replay/state.js";
import type { TaskId } from "../domain/types.js";
import { TERMINAL_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import {
  ACTIVE_UPDATE_STATES,
  awaitingPulseFor,
  failedStatusFor,
  type InstanceAction,
  instanceAction,
  succeededStatusFor,
  type UpdateStatus,
} from "../statemachines/update.js";
import {
  countsAsFailure,
  evaluateInstance,
  failureMessage,
  instanceGroups,
  type InstanceTask,
  queueNext,
  rollbackOrder,
  type UpdateDirection,
  updateOrder,
} from "./plan.js";
import { blockIfNoPulsesAfterMs, minWaitInInstanceRunningMs } from "./settings.js";

export type UpdateDecision =
  /** Log one instance's progress (JobInstanceUpdateEvent) with this reason. */
  | { kind: "instance"; instance: number; action: InstanceAction; reason: string }
  /** Create the instance's task with this config version (its predecessor: ancestorId). */
  | { kind: "create"; instance: number; configVersion: number; ancestorId: TaskId | null; reason: string }
  /** Kill the instance's task (it runs another config, or the update removes the instance); RESTARTING for a restart. */
  | { kind: "kill"; instance: number; taskId: TaskId; to: "KILLING" | "RESTARTING"; reason: string }
  /** Move the update (JobUpdateStateChanged). */
  | { kind: "status"; to: UpdateStatus; message: string }
  /** Nothing to do until then (log time), unless the state changes first. */
  | { kind: "wakeAt"; ts: number; reason: string };

type InstanceStatus = "NOT_STARTED" | "WORKING" | "SUCCEEDED" | "FAILED";

/** The instances an update touches, by kind (see the header). */
export function instanceDiff(state: ClusterState, u: UpdateRecord): { added: number[]; changed: number[]; removed: number[] } {
  const job = state.jobs.get(u.job);
  const before = job ? job.config.instances : 0;
  const after = u.config.instances;
  const differs = u.restart || canonical(job?.configs[u.fromVersion] ?? null) !== canonical(u.config.task);
  const scope = u.instances ?? Array.from({ length: Math.max(before, after) }, (_, i) => i);
  const added: number[] = [];
  const changed: number[] = [];
  const removed: number[] = [];
  for (const i of scope) {
    if (job?.killedInstances.has(i) && i < before) continue; // killed by a user: not the update's
    if (i < before && i < after) {
      if (differs) changed.push(i);
    } else if (i < after) added.push(i);
    else if (i < before) removed.push(i);
  }
  return { added, changed, removed };
}

/** What the update does next, at log time `now`. Empty when it is paused, awaiting a pulse, or over. */
export function updateDecisions(state: ClusterState, updateId: string, now: number): UpdateDecision[] {
  const u = state.updates.get(updateId);
  if (!u || !ACTIVE_UPDATE_STATES.has(u.status)) return [];
  if (u.status !== "ROLLING_FORWARD" && u.status !== "ROLLING_BACK") return []; // paused, or awaiting a pulse
  const direction: UpdateDirection = u.status === "ROLLING_FORWARD" ? "forward" : "rollback";
  const out: UpdateDecision[] = [];

  // A coordinated update blocks once its pulses stop (Aurora: blockIfNoPulsesAfterMs).
  const pulseMs = blockIfNoPulsesAfterMs(u.settings);
  if (pulseMs !== null) {
    const due = (u.pulseTs ?? u.createdTs) + pulseMs;
    if (now >= due) {
      const to = awaitingPulseFor(u.status);
      if (to !== null)
        return [
          {
            kind: "status",
            to,
            message: `no pulse for ${Math.round((now - (u.pulseTs ?? u.createdTs)) / 1000)}s (pulseIntervalSecs ${u.settings.pulseIntervalSecs})`,
          },
        ];
    } else out.push({ kind: "wakeAt", ts: due, reason: "the pulse deadline" });
  }

  const { added, changed, removed } = instanceDiff(state, u);
  const order = direction === "forward" ? updateOrder(added, changed, removed) : rollbackOrder(added, changed, removed);
  const desired = (i: number): number | null => {
    if (direction === "forward") return removed.includes(i) ? null : u.toVersion;
    return added.includes(i) ? null : u.fromVersion;
  };
  const statusOf = (i: number): InstanceStatus => {
    const a = u.instanceActions[String(i)]?.action;
    if (a === instanceAction("WORKING", direction === "rollback")) return "WORKING";
    if (a === instanceAction("SUCCEEDED", direction === "rollback")) return "SUCCEEDED";
    if (a === instanceAction("FAILED", direction === "rollback")) return "FAILED";
    return "NOT_STARTED";
  };

  // Which instances run now: those already WORKING, and those the strategy starts.
  const status = new Map(order.map((i) => [i, statusOf(i)]));
  const working = order.filter((i) => status.get(i) === "WORKING");
  const notStarted = order.filter((i) => status.get(i) === "NOT_STARTED");
  let starting: number[] = [];
  const st = u.settings.strategy;
  if ("queue" in st) starting = queueNext(working.length, notStarted, st.queue.batchSize);
  else if (working.length === 0) {
    // Batch strategies: the next group starts once every instance of the one before finished.
    const group = instanceGroups(u.settings, order, direction).find((g) => g.some((i) => status.get(i) === "NOT_STARTED"));
    if (group) starting = group.filter((i) => status.get(i) === "NOT_STARTED");
  }

  const failed = new Set(order.filter((i) => status.get(i) === "FAILED"));
  const act = direction === "rollback";
  const minWait = minWaitInInstanceRunningMs(u.settings);
  // A restart's desired task is one created after its instance's turn began (header).
  const turnSeq = (i: number): number =>
    starting.includes(i) ? Number.POSITIVE_INFINITY : (u.instanceActions[String(i)]?.seq ?? Number.POSITIVE_INFINITY);
  const view = (t: TaskRecord, i: number): InstanceTask => {
    const v = instanceTask(t);
    return u.restart && (t.history[0] ?? 0) < turnSeq(i) ? { ...v, configVersion: BEFORE_RESTART } : v;
  };
  for (const i of [...working, ...starting]) {
    if (starting.includes(i)) {
      out.push({
        kind: "instance",
        instance: i,
        action: instanceAction("WORKING", act),
        reason: `instance ${i}: ${direction === "forward" ? "updating" : "rolling back"} to ${desired(i) === null ? "no task (removed)" : `config version ${desired(i)}`}`,
      });
    }
    const task = newestTask(state, u, i);
    const want = desired(i);
    const failures = observedFailures(state, u, i, want, u.restart ? turnSeq(i) : u.createdSeq);
    const max = u.settings.maxPerInstanceFailures;
    // Failed more often than allowed, whatever replaced the failed task since (the rescheduler
    // may have given it a successor before this look): Aurora would have failed it on seeing the
    // failure.
    const verdict =
      want !== null && failures > max
        ? {
            kind: "FAILED" as const,
            reason: `failed ${failures} time(s) running config version ${want}, more than maxPerInstanceFailures ${max}`,
          }
        : evaluateInstance({
            desiredConfigVersion: want,
            task: task === null ? null : view(task, i),
            observedFailures: failures,
            maxPerInstanceFailures: max,
            minWaitInInstanceRunningMs: minWait,
            now,
          });
    const reason = `instance ${i} ${verdict.reason}`;
    switch (verdict.kind) {
      case "SUCCEEDED":
        out.push({ kind: "instance", instance: i, action: instanceAction("SUCCEEDED", act), reason });
        status.set(i, "SUCCEEDED");
        break;
      case "FAILED":
        out.push({ kind: "instance", instance: i, action: instanceAction("FAILED", act), reason });
        status.set(i, "FAILED");
        failed.add(i);
        break;
      case "REPLACE":
        if (verdict.step === "KILL_OLD" && task) {
          const to = u.restart && RESTARTABLE.has(task.state) ? "RESTARTING" : "KILLING";
          out.push({
            kind: "kill",
            instance: i,
            taskId: task.taskId,
            to,
            reason: u.restart ? `instance ${i} is restarted: ${task.state} → ${to}` : reason,
          });
        } else if (verdict.step === "ADD" && want !== null) {
          out.push({ kind: "create", instance: i, configVersion: want, ancestorId: task?.taskId ?? null, reason });
        }
        status.set(i, "WORKING");
        break;
      case "KILL":
        if (task) out.push({ kind: "kill", instance: i, taskId: task.taskId, to: "KILLING", reason });
        status.set(i, "WORKING");
        break;
      case "EVALUATE_AFTER":
        out.push({ kind: "wakeAt", ts: now + verdict.ms, reason });
        status.set(i, "WORKING");
        break;
      case "WAIT":
        status.set(i, "WORKING");
        break;
    }
  }

  // The update as a whole: failed past maxTotalFailures, or done.
  if (failed.size > u.settings.maxTotalFailures) {
    const to = failedStatusFor(u.status, u.settings.rollbackOnFailure);
    const latest = [...failed].at(-1)!;
    if (to !== null)
      out.push({
        kind: "status",
        to,
        message: failureMessage(latest, `failed (${failed.size} failed, more than maxTotalFailures ${u.settings.maxTotalFailures})`),
      });
  } else if (order.every((i) => status.get(i) === "SUCCEEDED" || status.get(i) === "FAILED")) {
    const to = succeededStatusFor(u.status);
    if (to !== null)
      out.push({ kind: "status", to, message: `every instance ${direction === "forward" ? "updated" : "rolled back"} (${order.length})` });
  }
  return out;
}

/** The config version a restart gives tasks created before their instance's turn: not the desired one. */
const BEFORE_RESTART = -1;

/** States a task may go to RESTARTING from (the task machine's); others are killed, and the instance gets a new task. */
const RESTARTABLE: ReadonlySet<TaskStateName> = new Set(["ASSIGNED", "STARTING", "RUNNING"]);

/** The instance's newest task, as the job's instance index has it (null: none). */
function newestTask(state: ClusterState, u: UpdateRecord, instance: number): TaskRecord | null {
  const id = state.jobs.get(u.job)?.instances.get(instance);
  return id === undefined ? null : (state.tasks.get(id) ?? null);
}

function instanceTask(t: TaskRecord): InstanceTask {
  // The history's last entry is the newest state change: [seq, idx, ts, state].
  const n = t.history.length;
  const lastEventTs = n >= 4 ? t.history[n - 2]! : 0;
  return { configVersion: t.configVersion, state: t.state, lastEventTs, everKilling: t.everKilling };
}

/**
 * Tasks of the instance with the desired config that ended on their own since the update began:
 * Aurora's observed failures, counted from the task chain (newest back through ancestors).
 */
function observedFailures(state: ClusterState, u: UpdateRecord, instance: number, want: number | null, sinceSeq: number): number {
  if (want === null) return 0;
  let n = 0;
  let t = newestTask(state, u, instance);
  for (let guard = 0; t !== null && guard < 10_000; guard++) {
    const createdSeq = t.history[0] ?? 0;
    if (createdSeq < sinceSeq) break;
    if (TERMINAL_STATES.has(t.state) && countsAsFailure(want, instanceTask(t))) n++;
    t = t.ancestorId === null ? null : (state.tasks.get(t.ancestorId) ?? null);
  }
  return n;
}
