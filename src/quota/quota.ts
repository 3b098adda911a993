// Tiers and production quota (Aurora's TierManager and QuotaManager): pure functions over ClusterState.
//
// A tier says whether a job's tasks may be preempted and whether they run on revocable
// resources. "Production" means not preemptible (tier preferred). A role's production,
// non-dedicated jobs must fit its quota, on create and when instances are added; a role
// without a quota has none (zero), and a quota cannot be set below what the role uses now.
//
// Usage is counted per instance, from the log's facts: an instance counts while it is not
// killed and its newest task is active (not terminal), or is terminal but still owed a
// replacement (rescheduleWanted: the rescheduler has yet to write its successor).

import { roundCpus } from "../domain/resources.js";
import { isProductionTier, TIERS } from "../domain/tiers.js";
import type { JobKeyString, TaskConfig } from "../domain/types.js";
import type { ClusterState, Quota } from "../replay/state.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";

/** Aurora's tiers.json (one table for the whole scheduler: src/domain/tiers.ts, which the preemptor reads too). */
export { TIERS };

/** Production = not preemptible (tier preferred); an unknown tier is treated as preemptible, the default. */
export function isProduction(cfg: TaskConfig): boolean {
  return isProductionTier(cfg.tier);
}

/** A job on dedicated hosts (a `dedicated` constraint). */
function isDedicated(cfg: TaskConfig): boolean {
  return Object.hasOwn(cfg.constraints, "dedicated");
}

/** Aurora enforces quota only for production, non-dedicated jobs. */
export function consumesQuota(cfg: TaskConfig): boolean {
  return isProduction(cfg) && !isDedicated(cfg);
}

export interface Amounts {
  cpus: number;
  ramMb: number;
  diskMb: number;
}

interface JobUsage extends Amounts {
  job: JobKeyString;
  /** Instances counted against the quota. */
  instances: number;
}

export interface RoleUsage extends Amounts {
  jobs: JobUsage[];
}

export interface QuotaReport {
  role: string;
  /** False when no quota was ever set for the role (its quota is then zero). */
  quotaSet: boolean;
  quota: Amounts;
  /** Production usage. */
  usage: Amounts;
  /** quota − usage, per resource. */
  headroom: Amounts;
  jobs: JobUsage[];
  seq: number;
}

const RESOURCES = ["cpus", "ramMb", "diskMb"] as const;

const ZERO: Quota = Object.freeze({ cpus: 0, ramMb: 0, diskMb: 0 });

export function quotaOf(state: ClusterState, role: string): Quota {
  return state.quotas.get(role) ?? ZERO;
}

/** Resources of `count` tasks of a config. */
export function amountsOf(cfg: TaskConfig, count: number): Amounts {
  const r = cfg.resources;
  return { cpus: roundCpus(r.cpus * count), ramMb: r.ramMb * count, diskMb: r.diskMb * count };
}

/** What the role's production (non-dedicated) jobs hold now, in total and per job. */
export function roleUsage(state: ClusterState, role: string): RoleUsage {
  const out: RoleUsage = { cpus: 0, ramMb: 0, diskMb: 0, jobs: [] };
  const prefix = `${role}/`;
  const keys = [...state.jobs.keys()].filter((k) => k.startsWith(prefix)).sort();
  for (const key of keys) {
    const job = state.jobs.get(key)!;
    if (job.config.role !== role) continue;
    const u: JobUsage = { job: key, instances: 0, cpus: 0, ramMb: 0, diskMb: 0 };
    for (const [instance, taskId] of job.instances) {
      if (job.killedInstances.has(instance)) continue;
      const task = state.tasks.get(taskId);
      if (!task) continue;
      if (TERMINAL_STATES.has(task.state) && !task.rescheduleWanted) continue;
      const cfg = job.configs[task.configVersion];
      if (!cfg || !consumesQuota(cfg)) continue;
      u.instances++;
      u.cpus = roundCpus(u.cpus + cfg.resources.cpus);
      u.ramMb += cfg.resources.ramMb;
      u.diskMb += cfg.resources.diskMb;
    }
    if (u.instances === 0) continue;
    out.jobs.push(u);
    out.cpus = roundCpus(out.cpus + u.cpus);
    out.ramMb += u.ramMb;
    out.diskMb += u.diskMb;
  }
  return out;
}

const QUOTA_RULE = "production (tier preferred) jobs must fit the role's quota";

/** null when the role's production usage plus `add` fits its quota; otherwise what is short, and the rule. */
export function quotaCheck(state: ClusterState, role: string, add: Amounts): string | null {
  const quota = quotaOf(state, role);
  const usage = roleUsage(state, role);
  const short: string[] = [];
  for (const r of RESOURCES) {
    const need = r === "cpus" ? roundCpus(usage.cpus + add.cpus) : usage[r] + add[r];
    if (need > quota[r]) {
      const more = r === "cpus" ? roundCpus(need - quota.cpus) : need - quota[r];
      short.push(`${r} ${more} more (quota ${quota[r]}, in use ${usage[r]}, asked ${add[r]})`);
    }
  }
  if (short.length === 0) return null;
  const unset = state.quotas.has(role)
    ? ""
    : `; role ${role} has no quota set, which means zero until an administrator runs roost quota set ${role}`;
  return `role ${role} is over its production quota: needs ${short.join(", ")}${unset}; rule: ${QUOTA_RULE} — see roost quota get ${role}`;
}

/** Quota, production usage, headroom and the production jobs using it (for `roost quota get`). */
export function quotaReport(state: ClusterState, role: string): QuotaReport {
  const q = quotaOf(state, role);
  const usage = roleUsage(state, role);
  return {
    role,
    quotaSet: state.quotas.has(role),
    quota: { cpus: q.cpus, ramMb: q.ramMb, diskMb: q.diskMb },
    usage: { cpus: usage.cpus, ramMb: usage.ramMb, diskMb: usage.diskMb },
    headroom: { cpus: roundCpus(q.cpus - usage.cpus), ramMb: q.ramMb - usage.ramMb, diskMb: q.diskMb - usage.diskMb },
    jobs: usage.jobs,
    seq: state.seq,
  };
}

/** Aurora: a quota cannot be set below current usage. null when `to` covers usage; otherwise what is short. */
export function quotaBelowUsage(state: ClusterState, role: string, to: Amounts): string | null {
  const usage = roleUsage(state, role);
  const below: string[] = [];
  for (const r of RESOURCES) {
    if (to[r] < usage[r]) {
      const by = r === "cpus" ? roundCpus(usage.cpus - to.cpus) : usage[r] - to[r];
      below.push(`${r} by ${by} (asked ${to[r]}, in use ${usage[r]})`);
    }
  }
  if (below.length === 0) return null;
  return (
    `cannot set the quota of role ${role} below its production usage: ${below.join(", ")}; ` +
    `rule: a quota cannot be set below what the role's production jobs use now — kill production instances first, see roost quota get ${role}`
  );
}
