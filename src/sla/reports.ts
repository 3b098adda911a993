// SLA reports (aurora_admin's sla_list_safe_domain, sla_probe_hosts and `aurora job` uptime): pure
// reads of the folded state at a time `now` the caller passes in (the leader's clock, or the CLI's
// when it folds the log itself with no leader up), so they answer the same from either.
//
// A host is safe when killing every live task on it now leaves every production job with at least
// PCT% of its tasks RUNNING for longer than DURATION: the same check as the leader's drain
// (policy.ts slaCheck: one task may always be down; jobs with fewer live tasks than
// minJobInstanceCount, Aurora's --min_job_instance_count, default 10, and non-production jobs are
// not checked). Grouped by rack, the hosts of a rack are safe only if all of them may go down
// together. A probe says, per host and job, the percentage the job would keep, whether that is
// enough, and when it would be (the time until enough of its other tasks have been RUNNING for
// DURATION), or never without changes (too few of them RUNNING at all).

import type { JobKeyString, TaskId } from "../domain/types.js";
import type { ClusterState, TaskRecord } from "../replay/state.js";
import { ACTIVE_STATES } from "../statemachines/taskStates.js";
import { liveTasks, runningSince, type SlaVerdict, slaCheck } from "./policy.js";

/** Aurora's --min_job_instance_count: jobs with fewer live tasks are not checked. */
export const DEFAULT_MIN_JOB_INSTANCE_COUNT = 10;
/** `roost sla job`: the windows counted by default (minutes). */
export const DEFAULT_UP_WINDOWS_MINUTES = [5, 30, 60];
/** The uptime percentiles `roost sla job` reports. */
const UPTIME_PERCENTILES = [50, 75, 90, 95, 99];

export type Grouping = "by_host" | "by_rack";

export interface SlaAsk {
  percentage: number;
  durationSecs: number;
  minJobInstanceCount: number;
}

/** What one job would keep if some hosts went down now. */
interface JobPrediction {
  job: JobKeyString;
  /** Its live tasks, and those of them on the hosts going down. */
  total: number;
  down: number;
  /** Its tasks off those hosts RUNNING for longer than the duration, and how many the SLA needs (one may always be down). */
  active: number;
  required: number;
  /** 100 × active / total (0 for a job with no live task). */
  predictedPct: number;
  safe: boolean;
  /** Not checked (not production, or fewer live tasks than minJobInstanceCount): safe by rule. */
  skipped: boolean;
  /** Seconds until it would be safe without other changes: 0 when safe now, null when never (too few other tasks RUNNING). */
  safeInSecs: number | null;
  why: string;
}

/** The hosts a cluster knows: those of its agents (not removed) and of its live tasks, by name. */
function knownHosts(state: ClusterState): Map<string, { rack: string | null; agent: boolean }> {
  const out = new Map<string, { rack: string | null; agent: boolean }>();
  for (const a of state.agents.values()) {
    if (a.state === "REMOVED" && out.has(a.host)) continue;
    out.set(a.host, { rack: a.attributes.rack ?? null, agent: a.state !== "REMOVED" });
  }
  for (const t of state.tasks.values()) {
    if (t.host !== null && ACTIVE_STATES.has(t.state) && !out.has(t.host)) out.set(t.host, { rack: null, agent: false });
  }
  return out;
}

/** Live tasks by host. */
function liveByHost(state: ClusterState): Map<string, TaskRecord[]> {
  const out = new Map<string, TaskRecord[]>();
  for (const t of state.tasks.values()) {
    if (t.host === null || !ACTIVE_STATES.has(t.state)) continue;
    // Only each instance's newest task counts (liveTasks): an older one still ending is its past.
    if (state.jobs.get(t.job)?.instances.get(t.instance) !== t.taskId) continue;
    let l = out.get(t.host);
    if (!l) out.set(t.host, (l = []));
    l.push(t);
  }
  return out;
}

/** Predict each job with tasks among `down` (all of them going down together). */
function predict(state: ClusterState, down: readonly TaskRecord[], ask: SlaAsk, now: number): Map<JobKeyString, JobPrediction> {
  const byJob = new Map<JobKeyString, Set<TaskId>>();
  for (const t of down) {
    let s = byJob.get(t.job);
    if (!s) byJob.set(t.job, (s = new Set()));
    s.add(t.taskId);
  }
  const out = new Map<JobKeyString, JobPrediction>();
  for (const job of [...byJob.keys()].sort()) {
    const ids = byJob.get(job)!;
    const policy = { percentage: { percentage: ask.percentage, durationSecs: ask.durationSecs } };
    const v = slaCheck(state, job, policy, ids, now, { minRequiredInstances: ask.minJobInstanceCount, nonProd: false });
    out.set(job, prediction(state, job, ids, v, ask.durationSecs, now));
  }
  return out;
}

function prediction(
  state: ClusterState,
  job: JobKeyString,
  down: ReadonlySet<TaskId>,
  v: SlaVerdict,
  durationSecs: number,
  now: number,
): JobPrediction {
  const predictedPct = v.total === 0 ? 0 : (100 * v.active) / v.total;
  let safeInSecs: number | null = 0;
  if (!v.ok) {
    // The `required`-th longest RUNNING of the other tasks decides when enough of them are active.
    const since = liveTasks(state, job)
      .filter((t) => !down.has(t.taskId))
      .map(runningSince)
      .filter((s): s is number => s !== null)
      .sort((a, b) => a - b);
    const kth = since[v.required - 1];
    safeInSecs = kth === undefined ? null : Math.max(1, Math.floor((durationSecs * 1000 - (now - kth)) / 1000) + 1);
  }
  return {
    job,
    total: v.total,
    down: down.size,
    active: v.active,
    required: v.required,
    predictedPct,
    safe: v.ok,
    skipped: v.skipped,
    safeInSecs,
    why: v.why,
  };
}

interface SafeHostRow {
  host: string;
  rack: string | null;
  /** The group it is judged with: the host itself, or "rack=<name>". */
  group: string;
  safe: boolean;
  /** Its live tasks. */
  tasks: number;
  /** Each job with tasks on it, as it would fare with its whole group down. */
  jobs: JobPrediction[];
  /** Why it is not safe (the first job that would break, in its group), else null. */
  why: string | null;
}

export interface SafeHostsReport {
  now: number;
  seq: number;
  percentage: number;
  durationSecs: number;
  grouping: Grouping;
  minJobInstanceCount: number;
  /** Every known host, by name, safe or not. */
  hosts: SafeHostRow[];
}

/** Aurora's sla_list_safe_domain: which hosts (or racks, all or nothing) may lose every task now. */
export function safeHosts(state: ClusterState, ask: SlaAsk & { grouping: Grouping }, now: number): SafeHostsReport {
  const hosts = knownHosts(state);
  const live = liveByHost(state);
  const groups = new Map<string, string[]>();
  for (const [host, h] of [...hosts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const g = ask.grouping === "by_rack" && h.rack !== null ? `rack=${h.rack}` : host;
    let l = groups.get(g);
    if (!l) groups.set(g, (l = []));
    l.push(host);
  }
  const rows: SafeHostRow[] = [];
  for (const [group, members] of groups) {
    const down = members.flatMap((h) => live.get(h) ?? []);
    const jobs = predict(state, down, ask, now);
    const broken = [...jobs.values()].find((j) => !j.safe);
    for (const host of members) {
      const mine = new Set((live.get(host) ?? []).map((t) => t.job));
      rows.push({
        host,
        rack: hosts.get(host)!.rack,
        group,
        safe: broken === undefined,
        tasks: live.get(host)?.length ?? 0,
        jobs: [...jobs.values()].filter((j) => mine.has(j.job)),
        why: broken === undefined ? null : group === host ? broken.why : `with ${group} (${members.join(", ")}) down: ${broken.why}`,
      });
    }
  }
  rows.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return {
    now,
    seq: state.seq,
    percentage: ask.percentage,
    durationSecs: ask.durationSecs,
    grouping: ask.grouping,
    minJobInstanceCount: ask.minJobInstanceCount,
    hosts: rows,
  };
}

export interface ProbeReport {
  now: number;
  seq: number;
  percentage: number;
  durationSecs: number;
  minJobInstanceCount: number;
  /** Each host asked about: known (an agent's, or a live task's), and its live tasks. */
  hosts: Array<{ host: string; known: boolean; tasks: number }>;
  /** One row per host asked about and job with tasks on it (Aurora's HOST JOB PREDICTED_SLA SAFE? PREDICTED_SAFE_IN). */
  rows: Array<JobPrediction & { host: string }>;
}

/** Aurora's sla_probe_hosts: each host's going down alone, job by job. */
export function probeHosts(state: ClusterState, hostNames: readonly string[], ask: SlaAsk, now: number): ProbeReport {
  const known = knownHosts(state);
  const live = liveByHost(state);
  const hosts: ProbeReport["hosts"] = [];
  const rows: ProbeReport["rows"] = [];
  for (const host of [...new Set(hostNames)]) {
    const down = live.get(host) ?? [];
    hosts.push({ host, known: known.has(host), tasks: down.length });
    for (const p of predict(state, down, ask, now).values()) rows.push({ host, ...p });
  }
  return {
    now,
    seq: state.seq,
    percentage: ask.percentage,
    durationSecs: ask.durationSecs,
    minJobInstanceCount: ask.minJobInstanceCount,
    hosts,
    rows,
  };
}

export interface JobSlaReport {
  job: JobKeyString;
  now: number;
  seq: number;
  /** Live tasks (one per instance not ended), and those RUNNING now. */
  live: number;
  running: number;
  /**
   * Aurora's job uptime: at least `percentile`% of the live instances have been RUNNING for
   * `uptimeSecs` or longer (an instance not RUNNING counts as 0).
   */
  percentiles: Array<{ percentile: number; uptimeSecs: number }>;
  /** Instances RUNNING throughout the last `minutes` (the same task, RUNNING since before the window began). */
  windows: Array<{ minutes: number; up: number; percentage: number }>;
}

/** `roost sla job`: uptime percentiles and up counts, or null when the job does not exist. */
export function jobSla(state: ClusterState, job: JobKeyString, minutes: readonly number[], now: number): JobSlaReport | null {
  if (!state.jobs.has(job)) return null;
  const live = liveTasks(state, job);
  const since = live.map(runningSince);
  const uptimes = since.map((s) => (s === null ? 0 : Math.max(0, Math.floor((now - s) / 1000)))).sort((a, b) => a - b);
  const n = uptimes.length;
  const percentiles = UPTIME_PERCENTILES.map((p) => {
    const index = n - Math.floor((p / 100) * n) - 1;
    return { percentile: p, uptimeSecs: index >= 0 && index < n ? uptimes[index]! : 0 };
  });
  const windows = [...new Set(minutes)]
    .sort((a, b) => a - b)
    .map((m) => {
      const up = since.filter((s) => s !== null && s <= now - m * 60_000).length;
      return { minutes: m, up, percentage: n === 0 ? 0 : (100 * up) / n };
    });
  return { job, now, seq: state.seq, live: n, running: since.filter((s) => s !== null).length, percentiles, windows };
}

const UNITS = { d: 86_400, h: 3600, m: 60, s: 1 } as const;

/**
 * A duration as aurora_admin writes it (XdYhZmWs: 30m, 1h30m, 90s, 7d) or whole seconds ("1800"),
 * in seconds; null when it is neither.
 */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (/^\d{1,9}$/.test(s)) return Number(s);
  const m = /^(?:(\d{1,6})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$/.exec(s);
  if (!m || s === "") return null;
  const [, d, h, min, sec] = m;
  return Number(d ?? 0) * UNITS.d + Number(h ?? 0) * UNITS.h + Number(min ?? 0) * UNITS.m + Number(sec ?? 0);
}

/** Seconds as the shortest XdYhZmWs ("0s" for none). */
export function formatDuration(secs: number): string {
  let left = Math.max(0, Math.round(secs));
  if (left === 0) return "0s";
  let out = "";
  for (const [u, n] of Object.entries(UNITS)) {
    const q = Math.floor(left / n);
    if (q > 0) out += `${q}${u}`;
    left -= q * n;
  }
  return out;
}

/** An SLA report's request, as the API's schemas (api/requests.ts) check it. */
export interface SlaRequest {
  percentage?: number;
  durationSecs?: number;
  minJobInstanceCount?: number;
  grouping?: Grouping;
  hosts?: string[];
  job?: string;
  minutes?: number[];
}

/** The API's sla.* reads, with their defaults; null for a job that does not exist. */
export function slaRead(state: ClusterState, op: "sla.safe-hosts" | "sla.probe" | "sla.job", r: SlaRequest, now: number): unknown {
  const ask: SlaAsk = {
    percentage: r.percentage ?? 0,
    durationSecs: r.durationSecs ?? 0,
    minJobInstanceCount: r.minJobInstanceCount ?? DEFAULT_MIN_JOB_INSTANCE_COUNT,
  };
  switch (op) {
    case "sla.safe-hosts":
      return safeHosts(state, { ...ask, grouping: r.grouping ?? "by_host" }, now);
    case "sla.probe":
      return probeHosts(state, r.hosts ?? [], ask, now);
    case "sla.job":
      return jobSla(state, (r.job ?? "") as JobKeyString, r.minutes ?? DEFAULT_UP_WINDOWS_MINUTES, now);
  }
}
