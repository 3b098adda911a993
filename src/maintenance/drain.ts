// Host maintenance, decided: what the leader's Maintenance actor (actors/maintenance.ts) commits
// next, from the folded state and a time. Pure: no clock (the actor passes `now`), no I/O (a
// coordinator's answers come in as data, its questions go out as data), so a fold of the log,
// a test and the simulator see the same decisions.
//
// Aurora's MaintenanceController, per DRAINING host with its drain request:
// - a host with no active task left (every task on it ended) becomes DRAINED;
// - a forced drain (request without an SLA: Aurora's drainHosts), or one whose
//   forceDrainTimeoutMs has passed since the request's log time, drains every task at once;
// - otherwise each job's tasks on the host are judged together by the job's own slaPolicy, else
//   the request's default: the largest group of them whose going down keeps the SLA is drained
//   (TaskStateChanged → DRAINING: the task machine kills it, and it is rescheduled elsewhere),
//   the rest are denied with the verdict's reason. Tasks drained earlier in the same pass count
//   as down for the next host, so two hosts drained together cannot break a job between them.
// - a coordinator policy asks the job's coordinator about one task at a time; its answer
//   decides, and becomes the reason.
// A denial is logged only when its reason differs from the host's last one for that task, so a
// drain that waits minutes writes one line per change, not one per poll.
//
// Maintenance windows (Mesos's schedule): a window's hosts are SCHEDULED until its start, drain
// (by the window's request) from then, and go back to NONE when it ends.

import { isoTime } from "../domain/time.js";
import type { TaskId } from "../domain/types.js";
import type { AgentRecord, ClusterState, HostRecord, MaintenanceWindowRecord, TaskRecord } from "../replay/state.js";
import { type CoordinatorSla, DEFAULT_SLA_POLICY, type CountSla, type PercentageSla, SlaMemo, slaCheck } from "../sla/policy.js";
import { TERMINAL_STATES, type TaskStateName } from "../statemachines/taskStates.js";

/** A coordinator's answer about one task: drain it or not, and why (its reply, or what went wrong). */
export interface CoordinatorAnswer {
  drain: boolean;
  reason: string;
}

/** A question for a job's coordinator (Aurora's CoordinatorSlaPolicy): POST `url`?task=`query` with `body`. */
export interface CoordinatorQuestion {
  kind: "ask";
  host: string;
  taskId: TaskId;
  url: string;
  statusKey: string;
  /** role/env/name/instance. */
  query: string;
  body: { task: { taskId: string; job: string; instance: number; host: string }; forceMaintenanceCountdownMs: number };
}

export type MaintenanceDecision =
  | { kind: "drain"; host: string; taskId: TaskId; reason: string }
  | { kind: "deny"; host: string; taskId: TaskId; reason: string }
  | { kind: "drained"; host: string; reason: string }
  | { kind: "windowOpen"; windowId: string; hosts: string[]; reason: string }
  | { kind: "windowEnd"; windowId: string; hosts: string[]; reason: string }
  | CoordinatorQuestion;

export interface DecisionInputs {
  /** Aurora's -min_required_instances_for_sla_check. */
  minRequiredInstances: number;
  /** Coordinator answers not acted on yet, by task id. */
  answers: ReadonlyMap<string, CoordinatorAnswer>;
  /** Tasks whose coordinator may be asked now (the actor's rate limit); others wait. */
  mayAsk: (taskId: TaskId, url: string) => boolean;
}

/** Task states a drain moves to DRAINING (the task machine allows it from these). */
const DRAINABLE: ReadonlySet<TaskStateName> = new Set<TaskStateName>(["ASSIGNED", "STARTING", "RUNNING", "PARTITIONED"]);

/**
 * The agents of each host name, kept per state until its agents change (agentsVersion: an agent's
 * host changes only when it registers, which bumps it; agents are never removed, so a count that
 * moved means one was added). A 5,000-host drain profiled 30 s of its
 * 139 s rebuilding this map for the light look after every task change on a draining host.
 * A cache of a pure function of the state: it changes no answer.
 */
const byHostCache = new WeakMap<ClusterState, { version: number; size: number; byHost: Map<string, AgentRecord[]> }>();

function agentsByHost(state: ClusterState): Map<string, AgentRecord[]> {
  const hit = byHostCache.get(state);
  if (hit && hit.version === state.agentsVersion && hit.size === state.agents.size) return hit.byHost;
  const out = new Map<string, AgentRecord[]>();
  for (const a of state.agents.values()) {
    const list = out.get(a.host);
    if (list) list.push(a);
    else out.set(a.host, [a]);
  }
  byHostCache.set(state, { version: state.agentsVersion, size: state.agents.size, byHost: out });
  return out;
}

/** The tasks on a host that have not ended (on any agent registered with that host name). */
export function tasksOnHost(state: ClusterState, host: string): TaskRecord[] {
  const out: TaskRecord[] = [];
  for (const a of agentsByHost(state).get(host) ?? []) {
    for (const id of a.tasks) {
      const t = state.tasks.get(id);
      if (t && !TERMINAL_STATES.has(t.state)) out.push(t);
    }
  }
  return out.sort((x, y) => (x.job < y.job ? -1 : x.job > y.job ? 1 : x.instance - y.instance));
}

/** Everything due at `now`: window moves, DRAINED hosts, drains, denials and coordinator questions. */
export function maintenanceDecisions(state: ClusterState, now: number, inputs: DecisionInputs): MaintenanceDecision[] {
  const out: MaintenanceDecision[] = [];
  const moved = new Set<string>();
  for (const w of state.windows.values()) {
    if (w.ended !== null) continue;
    const held = heldBy(state, w);
    const endTs = w.startTs + w.durationMs;
    if (now >= endTs) {
      out.push({
        kind: "windowEnd",
        windowId: w.windowId,
        hosts: held.filter((h) => state.hosts.get(h)?.mode !== "NONE"),
        reason: `maintenance window ${w.windowId} ended at ${isoTime(endTs)} (${w.durationMs / 1000} s from ${isoTime(w.startTs)}, scheduled by ${w.user}): its hosts return to service`,
      });
      for (const h of held) moved.add(h);
    } else if (w.openedSeq === null && now >= w.startTs) {
      const opening = held.filter((h) => state.hosts.get(h)?.mode === "SCHEDULED");
      if (opening.length === 0) continue;
      out.push({
        kind: "windowOpen",
        windowId: w.windowId,
        hosts: opening,
        reason: `maintenance window ${w.windowId} opened at ${isoTime(w.startTs)} (scheduled by ${w.user}, until ${isoTime(endTs)}): ${drainText(w.drain)}`,
      });
      for (const h of opening) moved.add(h);
    }
  }
  // Tasks of each job chosen to go down in this pass (they count as down for the next host).
  const goingDown = new Map<string, Set<TaskId>>();
  const memo = new SlaMemo(state, now);
  for (const h of state.hosts.values()) {
    if (h.mode !== "DRAINING" || h.drain === null || moved.has(h.host)) continue;
    drainHost(state, h, now, inputs, goingDown, memo, out);
  }
  return out;
}

/**
 * The light look, after tasks on DRAINING hosts changed state: which of `hosts` have no active
 * task left (DRAINED). Nothing else changes with a task's end: a drained task was already counted
 * down, and a replacement counts as active only once it has run the policy's duration, which the
 * poller's next full look sees.
 */
export function drainedDecisions(state: ClusterState, hosts: Iterable<string>): MaintenanceDecision[] {
  const out: MaintenanceDecision[] = [];
  for (const host of hosts) {
    const h = state.hosts.get(host);
    if (h?.mode !== "DRAINING" || h.drain === null) continue;
    if (tasksOnHost(state, host).length > 0) continue;
    const by = h.user ?? (h.windowId !== null ? `window ${h.windowId}` : "the leader");
    out.push({ kind: "drained", host, reason: `host ${host} has no active task left: DRAINED (drain requested by ${by})` });
  }
  return out;
}

/** The hosts a window still holds: those whose maintenance it set (an operator's end or drain took the others). */
function heldBy(state: ClusterState, w: MaintenanceWindowRecord): string[] {
  return w.hosts.filter((h) => state.hosts.get(h)?.windowId === w.windowId);
}

function drainHost(
  state: ClusterState,
  h: HostRecord,
  now: number,
  inputs: DecisionInputs,
  goingDown: Map<string, Set<TaskId>>,
  memo: SlaMemo,
  out: MaintenanceDecision[],
): void {
  const drain = h.drain!;
  const tasks = tasksOnHost(state, h.host);
  const by = h.user ?? (h.windowId !== null ? `window ${h.windowId}` : "the leader");
  if (tasks.length === 0) {
    out.push({ kind: "drained", host: h.host, reason: `host ${h.host} has no active task left: DRAINED (drain requested by ${by})` });
    return;
  }
  const candidates = tasks.filter((t) => DRAINABLE.has(t.state));
  if (candidates.length === 0) return; // its tasks are being killed: DRAINED once they end
  const deadline = drain.requestedTs + drain.forceDrainTimeoutMs;
  const forced =
    drain.sla === null
      ? `forced drain of host ${h.host} (no SLA: requested by ${by})`
      : now >= deadline
        ? `force drain timeout of host ${h.host} passed (${fmtMs(drain.forceDrainTimeoutMs)} after the request by ${by}, at ${isoTime(deadline)})`
        : null;
  if (forced !== null) {
    for (const t of candidates) out.push({ kind: "drain", host: h.host, taskId: t.taskId, reason: `${forced}: task ${t.taskId} drained` });
    return;
  }
  const countdown = Math.max(0, deadline - now);
  const byJob = new Map<string, TaskRecord[]>();
  for (const t of candidates) byJob.set(t.job, [...(byJob.get(t.job) ?? []), t]);
  for (const [job, ts] of byJob) {
    const config = state.jobs.get(job as never)?.config;
    const own = config?.slaPolicy;
    const down = goingDown.get(job) ?? new Set<TaskId>();
    goingDown.set(job, down);
    if (own !== undefined && "coordinator" in own) {
      coordinated(h, ts, own.coordinator, countdown, inputs, down, out);
      continue;
    }
    const policy: CountSla | PercentageSla = own ?? (drain.sla ? { percentage: { ...drain.sla } } : DEFAULT_SLA_POLICY);
    const whose = own !== undefined ? "the job's slaPolicy" : "the drain's default SLA";
    const opts = { minRequiredInstances: inputs.minRequiredInstances, nonProd: drain.slaAwareKillNonProd };
    // The largest group of the job's tasks here that may go down together (drain fewer if not all).
    const check = (n: number) =>
      slaCheck(state, job as never, policy, new Set([...down, ...ts.slice(0, n).map((t) => t.taskId)]), now, opts, memo);
    let n = ts.length;
    let verdict = check(n);
    let failed = verdict;
    while (!verdict.ok && n > 1) {
      failed = verdict;
      n--;
      verdict = check(n);
    }
    if (!verdict.ok) {
      failed = verdict;
      n = 0;
    }
    const drained = ts.slice(0, n);
    for (const t of drained) {
      down.add(t.taskId);
      const together = drained.length > 1 ? ` (with ${drained.length - 1} more of its tasks on the host)` : "";
      out.push({ kind: "drain", host: h.host, taskId: t.taskId, reason: `drain of host ${h.host}: ${whose}: ${verdict.why}${together}` });
    }
    for (const t of ts.slice(n)) {
      deny(h, t, `drain of host ${h.host} waits for task ${t.taskId}: ${whose}: ${failed.why}; forced at ${isoTime(deadline)}`, out);
    }
  }
}

/** A coordinator job's tasks on the host: an answer decides; else one question at a time. */
function coordinated(
  h: HostRecord,
  ts: readonly TaskRecord[],
  c: CoordinatorSla["coordinator"],
  countdown: number,
  inputs: DecisionInputs,
  down: Set<TaskId>,
  out: MaintenanceDecision[],
): void {
  let asked = false;
  for (const t of ts) {
    const a = inputs.answers.get(t.taskId);
    if (a !== undefined) {
      if (a.drain) {
        down.add(t.taskId);
        out.push({ kind: "drain", host: h.host, taskId: t.taskId, reason: `drain of host ${h.host}: coordinator ${c.url}: ${a.reason}` });
      } else deny(h, t, `drain of host ${h.host} waits for task ${t.taskId}: coordinator ${c.url}: ${a.reason}`, out);
      continue;
    }
    if (asked || !inputs.mayAsk(t.taskId, c.url)) continue;
    asked = true;
    out.push({
      kind: "ask",
      host: h.host,
      taskId: t.taskId,
      url: c.url,
      statusKey: c.statusKey,
      query: `${t.job}/${t.instance}`,
      body: { task: { taskId: t.taskId, job: t.job, instance: t.instance, host: h.host }, forceMaintenanceCountdownMs: countdown },
    });
  }
}

function deny(h: HostRecord, t: TaskRecord, reason: string, out: MaintenanceDecision[]): void {
  if (h.denials[t.taskId]?.reason === reason) return;
  out.push({ kind: "deny", host: h.host, taskId: t.taskId, reason });
}

/** The next moment a decision falls due by time alone: a window's start or end, a drain's forced deadline. */
export function nextDeadline(state: ClusterState, now: number): number | null {
  let next = Number.POSITIVE_INFINITY;
  const at = (t: number) => {
    if (t > now && t < next) next = t;
  };
  for (const w of state.windows.values()) {
    if (w.ended !== null) continue;
    if (w.openedSeq === null) at(w.startTs);
    at(w.startTs + w.durationMs);
  }
  for (const h of state.hosts.values()) {
    if (h.mode === "DRAINING" && h.drain?.sla) at(h.drain.requestedTs + h.drain.forceDrainTimeoutMs);
  }
  return next === Number.POSITIVE_INFINITY ? null : next;
}

/** A drain request, said: "SLA-aware (default 95% over 30m, force after 7d)" or "forced". */
export function drainText(d: {
  sla: { percentage: number; durationSecs: number } | null;
  forceDrainTimeoutMs: number;
  slaAwareKillNonProd: boolean;
}): string {
  if (d.sla === null) return "forced drain (no SLA check)";
  const nonProd = d.slaAwareKillNonProd ? ", non-production jobs judged too" : "";
  return `SLA-aware drain (default ${d.sla.percentage}% over ${fmtMs(d.sla.durationSecs * 1000)}, forced after ${fmtMs(d.forceDrainTimeoutMs)}${nonProd})`;
}

/** 7d, 30m, 90s, 1h30m, 0s. */
export function fmtMs(ms: number): string {
  let s = Math.round(ms / 1000);
  if (s === 0) return "0s";
  const parts: string[] = [];
  for (const [unit, n] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
  }
  return parts.join("");
}
