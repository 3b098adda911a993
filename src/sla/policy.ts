// Job SLAs, Aurora's way (SlaManager, sla-requirements.md): whether a job can lose some of its
// tasks now without breaking its SLA. Pure: the state and a time in, a verdict with its reason
// out, so the leader's drain, `roost sla` reports with no leader, and the simulator agree.
//
// A task is "active" once it has been RUNNING for longer than the policy's duration (counted from
// the log time of its latest RUNNING). A count policy needs `count` active tasks left, a
// percentage one `percentage`% of the job's tasks; either is lowered so one task may always be
// down (Aurora lowers it to total − 1 and warns). The check is skipped, and the kill allowed,
// when the job has fewer active tasks than minRequiredInstances (Aurora's
// -min_required_instances_for_sla_check, 20), and for non-production jobs unless the drain asks
// (-sla_aware_kill_non_prod). A coordinator policy is asked over HTTP by the leader; here it is
// only named.

import type { JobKeyString, TaskId } from "../domain/types.js";
import { isProductionTier } from "../domain/tiers.js";
import { HISTORY_STRIDE, type ClusterState, type TaskRecord } from "../replay/state.js";
import { ACTIVE_STATES, TASK_STATES } from "../statemachines/taskStates.js";

export type CountSla = { count: { count: number; durationSecs: number } };
export type PercentageSla = { percentage: { percentage: number; durationSecs: number } };
export type CoordinatorSla = { coordinator: { url: string; statusKey: string } };
/** Aurora's SlaPolicy union. */
export type SlaPolicy = CountSla | PercentageSla | CoordinatorSla;

/** Aurora's default for production jobs without a policy: 95% active over 30 minutes. */
export const DEFAULT_SLA_POLICY: PercentageSla = { percentage: { percentage: 95, durationSecs: 30 * 60 } };
/** Aurora's -min_required_instances_for_sla_check. */
export const DEFAULT_MIN_REQUIRED_INSTANCES = 20;

const RUNNING = TASK_STATES.indexOf("RUNNING");

/** Aurora's -max_sla_duration_secs: 2 h. */
const MAX_SLA_DURATION_SECS = 7200;
/** A coordinator's status key when the spec names none (Aurora's CoordinatorSlaPolicy default). */
const DEFAULT_STATUS_KEY = "drain";

/** What is wrong with a spec's slaPolicy, each with its dotted path under slaPolicy and the rule. */
export function slaPolicyProblems(raw: Record<string, unknown>): Array<{ path: string; rule: string }> {
  const out: Array<{ path: string; rule: string }> = [];
  const kinds = Object.keys(raw);
  const known = ["count", "percentage", "coordinator"];
  if (kinds.length !== 1 || !known.includes(kinds[0]!)) {
    out.push({
      path: "slaPolicy",
      rule: "must hold exactly one of count: {count, durationSecs}, percentage: {percentage, durationSecs} or coordinator: {url, statusKey}",
    });
    return out;
  }
  const kind = kinds[0]!;
  const body = raw[kind];
  const at = (f: string) => `slaPolicy.${kind}.${f}`;
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    out.push({ path: `slaPolicy.${kind}`, rule: "must be a mapping" });
    return out;
  }
  const b = body as Record<string, unknown>;
  const fields =
    kind === "count" ? ["count", "durationSecs"] : kind === "percentage" ? ["percentage", "durationSecs"] : ["url", "statusKey"];
  for (const k of Object.keys(b))
    if (!fields.includes(k)) out.push({ path: at(k), rule: `is not a field of a ${kind} policy (${fields.join(", ")})` });
  const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
  if (kind === "count" && !(isInt(b.count) && b.count >= 1)) out.push({ path: at("count"), rule: "must be an integer ≥ 1" });
  if (kind === "percentage" && !(typeof b.percentage === "number" && b.percentage > 0 && b.percentage <= 100))
    out.push({ path: at("percentage"), rule: "must be a number > 0 and ≤ 100" });
  if (kind !== "coordinator" && !(isInt(b.durationSecs) && b.durationSecs >= 0 && b.durationSecs <= MAX_SLA_DURATION_SECS))
    out.push({
      path: at("durationSecs"),
      rule: `must be an integer from 0 to ${MAX_SLA_DURATION_SECS} (seconds; Aurora's max_sla_duration_secs)`,
    });
  if (kind === "coordinator") {
    if (!(typeof b.url === "string" && /^https?:\/\/[^\s/?#]+[^\s]*$/.test(b.url) && b.url.length <= 2048))
      out.push({ path: at("url"), rule: "must be an http:// or https:// URL (at most 2048 characters)" });
    if (b.statusKey !== undefined && !(typeof b.statusKey === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(b.statusKey)))
      out.push({ path: at("statusKey"), rule: 'must be 1 to 64 letters, digits, "_", "." or "-"' });
  }
  return out;
}

/** A checked spec slaPolicy as the log holds it (the coordinator's statusKey spelled out). */
export function normaliseSlaPolicy(raw: SlaPolicyInput): SlaPolicy {
  if ("count" in raw) return { count: { count: raw.count.count, durationSecs: raw.count.durationSecs } };
  if ("percentage" in raw) return { percentage: { percentage: raw.percentage.percentage, durationSecs: raw.percentage.durationSecs } };
  return { coordinator: { url: raw.coordinator.url, statusKey: raw.coordinator.statusKey ?? DEFAULT_STATUS_KEY } };
}

/** A spec's slaPolicy: the coordinator's statusKey may be left out. */
export type SlaPolicyInput = CountSla | PercentageSla | { coordinator: { url: string; statusKey?: string } };

/** Log time the task last became RUNNING, or null when it is not RUNNING now. */
export function runningSince(t: TaskRecord): number | null {
  if (t.state !== "RUNNING") return null;
  const h = t.history;
  for (let i = h.length - HISTORY_STRIDE; i >= 0; i -= HISTORY_STRIDE) if (h[i + 3] === RUNNING) return h[i + 2]!;
  return null;
}

/**
 * The job's live tasks (not ended: Aurora's active states), each instance's newest, and those
 * that ended but are owed a reschedule (a drained task between its KILLED and its successor's
 * TaskCreated: counting it out would shrink the job for a moment, under minRequiredInstances).
 */
export function liveTasks(state: ClusterState, job: JobKeyString): TaskRecord[] {
  const out: TaskRecord[] = [];
  const j = state.jobs.get(job);
  if (!j) return out;
  for (const id of j.instances.values()) {
    const t = state.tasks.get(id);
    if (t && (ACTIVE_STATES.has(t.state) || t.rescheduleWanted)) out.push(t);
  }
  return out;
}

/** Of `tasks`, those RUNNING for longer than durationSecs at `now`. */
export function activeOf(tasks: readonly TaskRecord[], durationSecs: number, now: number): TaskRecord[] {
  return tasks.filter((t) => {
    const since = runningSince(t);
    return since !== null && now - since > durationSecs * 1000;
  });
}

/**
 * One pass's memo (one state, one `now`): each job's live tasks and its active ones, computed once.
 * A drain pass asks about the same job for every host and every group size; without it each
 * question walked the job's tasks and their histories again (most of a 1,000-host drain's CPU).
 */
export class SlaMemo {
  private readonly lives = new Map<string, TaskRecord[]>();
  private readonly actives = new Map<string, Set<TaskId>>();
  constructor(
    readonly state: ClusterState,
    readonly now: number,
  ) {}

  live(job: JobKeyString): TaskRecord[] {
    let l = this.lives.get(job);
    if (!l) this.lives.set(job, (l = liveTasks(this.state, job)));
    return l;
  }

  active(job: JobKeyString, durationSecs: number): Set<TaskId> {
    const key = `${job}#${durationSecs}`;
    let a = this.actives.get(key);
    if (!a) this.actives.set(key, (a = new Set(activeOf(this.live(job), durationSecs, this.now).map((t) => t.taskId))));
    return a;
  }
}

export interface SlaVerdict {
  /** The tasks may be down now. */
  ok: boolean;
  /** The check did not apply (too few instances, a non-production job): ok, by rule. */
  skipped: boolean;
  /** Live tasks of the job, and those active (RUNNING past the duration) other than the ones asked about. */
  total: number;
  active: number;
  /** Active tasks the policy needs left, after lowering it so one task may be down. */
  required: number;
  why: string;
}

export interface SlaCheckOptions {
  minRequiredInstances: number;
  /** Judge non-production jobs too (Aurora: --sla-aware-kill-non-prod). */
  nonProd: boolean;
}

/**
 * Aurora's check for a count or percentage policy: may the job's tasks `down` all be down at
 * `now`? The others must leave `required` active tasks.
 */
export function slaCheck(
  state: ClusterState,
  job: JobKeyString,
  policy: CountSla | PercentageSla,
  down: ReadonlySet<TaskId>,
  now: number,
  opts: SlaCheckOptions,
  memo?: SlaMemo,
): SlaVerdict {
  const durationSecs = "count" in policy ? policy.count.durationSecs : policy.percentage.durationSecs;
  let total: number;
  let active: number;
  if (memo && memo.now === now && memo.state === state) {
    total = memo.live(job).length;
    const act = memo.active(job, durationSecs);
    active = act.size;
    for (const id of down) if (act.has(id)) active--;
  } else {
    const live = liveTasks(state, job);
    total = live.length;
    active = activeOf(
      live.filter((t) => !down.has(t.taskId)),
      durationSecs,
      now,
    ).length;
  }
  const j = state.jobs.get(job);
  const name = "count" in policy ? `count ${policy.count.count}` : `${policy.percentage.percentage}%`;
  const over = `over ${fmtSecs(durationSecs)}`;
  const wanted = "count" in policy ? policy.count.count : Math.ceil((policy.percentage.percentage * total) / 100);
  const required = Math.max(0, Math.min(wanted, total - 1));
  if (j && !isProductionTier(j.config.task.tier) && !opts.nonProd)
    return { ok: true, skipped: true, total, active, required, why: `job ${job} is not production: drained without an SLA check` };
  if (total < opts.minRequiredInstances)
    return {
      ok: true,
      skipped: true,
      total,
      active,
      required,
      why: `job ${job} has ${total} live task(s), fewer than minRequiredInstances ${opts.minRequiredInstances}: no SLA check`,
    };
  const ok = active >= required;
  const lowered = required < wanted ? ` (lowered from ${wanted}: one task may always be down)` : "";
  return {
    ok,
    skipped: false,
    total,
    active,
    required,
    why: `SLA ${name} ${over} of job ${job}: ${active} of ${total} task(s) would stay active (RUNNING longer than ${fmtSecs(durationSecs)}), ${required} required${lowered}; ${ok ? "holds" : "would break"}`,
  };
}

function fmtSecs(s: number): string {
  if (s % 3600 === 0 && s > 0) return `${s / 3600}h`;
  if (s % 60 === 0 && s > 0) return `${s / 60}m`;
  return `${s}s`;
}
