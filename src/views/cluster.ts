// The cluster as SREs look at it: summary, jobs, tasks, agents, pending work, quotas, and what
// changed between two moments. Pure read models over one folded ClusterState, shared by
// `roost replay` / `roost diff` (the CLI folds the log itself), the bus and gateway ops, and the
// web UI (every replica, and `roost ui`), so the leader, a standby and an offline laptop answer
// "what did the cluster look like at 03:12?" with the same code and the same numbers.
//
// Which moment a state stands for is the caller's business (history/timeMachine.ts folds the log
// to it); these functions only read. Every list is sorted and paged here: at 250,000 tasks nothing
// may hand a page, a CLI or a browser every task at once.

import { roundCpus } from "../domain/resources.js";
import { isoTime } from "../domain/time.js";
import type { AgentId, JobKeyString, TaskId } from "../domain/types.js";
import { quotaReport } from "../quota/quota.js";
import { explain } from "../scheduling/stack.js";
import { TaskGroup } from "../scheduling/feasible.js";
import { activeAgents, OfferBook } from "../scheduling/offers.js";
import { reasonOf } from "../scheduling/vetoes.js";
import type { AgentStateName } from "../statemachines/agent.js";
import { ACTIVE_STATES, TASK_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import { HISTORY_STRIDE, type AgentRecord, type ClusterState, type JobRecord, type TaskRecord } from "../replay/state.js";

/** The moment a state stands for: the last record folded into it, and that record's time. */
export interface Moment {
  seq: number;
  ts: number;
}

export interface Page<T> {
  total: number;
  offset: number;
  items: T[];
}

/** The most rows one page holds. */
const MAX_PAGE = 500;

export interface PageQuery {
  offset?: number;
  limit?: number;
}

function page<T>(all: readonly T[], q: PageQuery): Page<T> {
  const offset = Math.max(0, Math.floor(q.offset ?? 0));
  const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(q.limit ?? 50)));
  return { total: all.length, offset, items: all.slice(offset, offset + limit) };
}

type Counts<K extends string> = Partial<Record<K, number>>;

function bump<K extends string>(c: Counts<K>, k: K): void {
  c[k] = (c[k] ?? 0) + 1;
}

export interface ClusterSummary {
  at: Moment;
  leader: { schedulerId: string; epoch: number; host: string } | null;
  jobs: number;
  tasks: { total: number; byState: Counts<TaskStateName> };
  agents: { total: number; byState: Counts<AgentStateName> };
  pending: number;
  quotas: number;
  anomalyCount: number;
  events: number;
}

export function summary(state: ClusterState, at: Moment): ClusterSummary {
  // Kept by the fold: no walk over the tasks (which built every cold row of a snapshot's state).
  const tasks: Counts<TaskStateName> = {};
  for (const [s, n] of state.taskStateCounts()) if (n > 0) tasks[s] = n;
  const agents: Counts<AgentStateName> = {};
  for (const a of state.agents.values()) bump(agents, a.state);
  const l = state.leader;
  return {
    at,
    leader: l ? { schedulerId: l.schedulerId, epoch: l.epoch, host: l.host } : null,
    jobs: state.jobs.size,
    tasks: { total: state.tasks.size, byState: tasks },
    agents: { total: state.agents.size, byState: agents },
    pending: state.pending.size,
    quotas: state.quotas.size,
    anomalyCount: state.anomalyCount,
    events: state.eventCount,
  };
}

// ---- jobs ------------------------------------------------------------------------------------

export interface JobRow {
  job: JobKeyString;
  role: string;
  environment: string;
  name: string;
  service: boolean;
  tier: string;
  priority: number;
  /** Instances the job has (its newest task per instance id). */
  instances: number;
  configVersion: number;
  states: Counts<TaskStateName>;
  active: number;
}

export function jobRow(state: ClusterState, job: JobRecord): JobRow {
  const states: Counts<TaskStateName> = {};
  let active = 0;
  for (const id of job.instances.values()) {
    const s = state.tasks.get(id)?.state;
    if (s === undefined) continue;
    bump(states, s);
    if (ACTIVE_STATES.has(s)) active++;
  }
  const c = job.config;
  return {
    job: job.key,
    role: c.role,
    environment: c.environment,
    name: c.name,
    service: c.task.service,
    tier: c.task.tier,
    priority: c.task.priority,
    instances: job.instances.size,
    configVersion: job.configVersion,
    states,
    active,
  };
}

export interface JobsQuery extends PageQuery {
  role?: string;
  /** A substring of the job key. */
  q?: string;
}

export function jobsPage(state: ClusterState, query: JobsQuery): Page<JobRow> & { roles: Array<{ role: string; jobs: number }> } {
  const roles = new Map<string, number>();
  const keys: JobKeyString[] = [];
  for (const [key, job] of state.jobs) {
    roles.set(job.config.role, (roles.get(job.config.role) ?? 0) + 1);
    if (query.role !== undefined && job.config.role !== query.role) continue;
    if (query.q && !key.includes(query.q)) continue;
    keys.push(key);
  }
  keys.sort();
  const p = page(keys, query);
  return {
    ...p,
    items: p.items.map((k) => jobRow(state, state.jobs.get(k)!)),
    roles: [...roles].sort(([a], [b]) => (a < b ? -1 : 1)).map(([role, jobs]) => ({ role, jobs })),
  };
}

// ---- tasks -----------------------------------------------------------------------------------

export interface TaskRow {
  taskId: TaskId;
  job: JobKeyString;
  instance: number;
  state: TaskStateName;
  host: string | null;
  agentId: AgentId | null;
  reason: string;
  failureCount: number;
}

export function taskRow(t: TaskRecord): TaskRow {
  return {
    taskId: t.taskId,
    job: t.job,
    instance: t.instance,
    state: t.state,
    host: t.host,
    agentId: t.agentId,
    reason: t.lastReason,
    failureCount: t.failureCount,
  };
}

export interface TasksQuery extends PageQuery {
  job?: string;
  state?: string;
  agent?: string;
  /** A substring of the task id. */
  q?: string;
}

export function tasksPage(state: ClusterState, query: TasksQuery): Page<TaskRow> {
  let source: Iterable<TaskRecord>;
  if (query.agent !== undefined) {
    const a = state.agents.get(query.agent as AgentId);
    source = a ? [...a.tasks].map((id) => state.tasks.get(id)!) : [];
  } else if (query.job !== undefined) {
    const j = state.jobs.get(query.job as JobKeyString);
    source = j ? [...j.instances.values()].map((id) => state.tasks.get(id)!) : [];
  } else {
    source = state.tasks.values();
  }
  const hits: TaskRecord[] = [];
  for (const t of source) {
    if (query.state !== undefined && t.state !== query.state) continue;
    if (query.q && !t.taskId.includes(query.q)) continue;
    hits.push(t);
  }
  hits.sort((a, b) => (a.job < b.job ? -1 : a.job > b.job ? 1 : a.instance - b.instance || (a.taskId < b.taskId ? -1 : 1)));
  const p = page(hits, query);
  return { ...p, items: p.items.map(taskRow) };
}

// ---- agents ----------------------------------------------------------------------------------

interface Amounts {
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus: number;
}

export interface AgentRow {
  agentId: AgentId;
  host: string;
  state: AgentStateName;
  attributes: Record<string, string>;
  resources: Amounts;
  used: Amounts;
  free: Amounts;
  tasks: number;
}

export function agentRow(a: AgentRecord): AgentRow {
  const r = { cpus: a.resources.cpus, ramMb: a.resources.ramMb, diskMb: a.resources.diskMb, gpus: a.resources.gpus ?? 0 };
  const used = { cpus: roundCpus(a.used.cpus), ramMb: a.used.ramMb, diskMb: a.used.diskMb, gpus: a.used.gpus };
  return {
    agentId: a.agentId,
    host: a.host,
    state: a.state,
    attributes: a.attributes,
    resources: r,
    used,
    free: { cpus: roundCpus(r.cpus - used.cpus), ramMb: r.ramMb - used.ramMb, diskMb: r.diskMb - used.diskMb, gpus: r.gpus - used.gpus },
    tasks: a.tasks.size,
  };
}

export interface AgentsQuery extends PageQuery {
  /** A substring of the agent id or host. */
  q?: string;
  state?: string;
}

export function agentsPage(state: ClusterState, query: AgentsQuery): Page<AgentRow> {
  const hits = [...state.agents.values()].filter(
    (a) => (query.state === undefined || a.state === query.state) && (!query.q || a.agentId.includes(query.q) || a.host.includes(query.q)),
  );
  hits.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.agentId < b.agentId ? -1 : 1));
  const p = page(hits, query);
  return { ...p, items: p.items.map(agentRow) };
}

// ---- pending ---------------------------------------------------------------------------------

export interface PendingRow {
  taskId: TaskId;
  job: JobKeyString;
  instance: number;
  /** When it became PENDING (its newest state change). */
  since: Moment;
  /** Why it waits, judged on this state: the vetoes that rule out every host, or that it could go. */
  reason: string;
  /** The logged reason of its newest state change (e.g. "instance 3 of new job …"). */
  logged: string;
}

/**
 * Why each pending group waits, judged as `roost task why` judges one task: every ACTIVE agent of
 * this state against the group's config. One judgement per (job, config version), so a job with
 * 4,000 pending instances costs one. The leader's own "last round" reasons live in its memory
 * only; these are what the log alone can say, the same on every replica.
 */
function groupReason(state: ClusterState, agents: readonly AgentRecord[], t: TaskRecord): string {
  if (agents.length === 0) return "no active agents";
  const job = state.jobs.get(t.job);
  if (!job) return "its job is unknown";
  const verdicts = explain(state, new OfferBook(state), agents, new TaskGroup(job, t.configVersion), t.taskId, "spread");
  const feasible = verdicts.filter((v) => v.score !== null).length;
  if (feasible > 0) return `${feasible} of ${agents.length} hosts could take it: waiting for its turn`;
  const reasons = new Map<string, number>();
  for (const v of verdicts) {
    const r = reasonOf(v.vetoes);
    reasons.set(r, (reasons.get(r) ?? 0) + 1);
  }
  const top = [...reasons].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return `none of ${agents.length} hosts can take it: ${top.map(([r, n]) => `${r} (${n})`).join(", ")}`;
}

export function pendingPage(state: ClusterState, query: PageQuery): Page<PendingRow> {
  const ids = [...state.pending];
  const p = page(ids, query);
  const agents = activeAgents(state);
  const reasons = new Map<string, string>();
  return {
    ...p,
    items: p.items.map((id) => {
      const t = state.tasks.get(id)!;
      const group = `${t.job}#${t.configVersion}`;
      let reason = reasons.get(group);
      if (reason === undefined) reasons.set(group, (reason = groupReason(state, agents, t)));
      const h = t.history;
      const n = h.length - HISTORY_STRIDE;
      return {
        taskId: t.taskId,
        job: t.job,
        instance: t.instance,
        since: { seq: h[n] ?? 0, ts: h[n + 2] ?? 0 },
        reason,
        logged: t.lastReason,
      };
    }),
  };
}

// ---- quotas ----------------------------------------------------------------------------------

export interface QuotaRow {
  role: string;
  quota: { cpus: number; ramMb: number; diskMb: number };
  used: { cpus: number; ramMb: number; diskMb: number };
  jobs: number;
}

export function quotaRows(state: ClusterState): QuotaRow[] {
  const roles = new Set<string>(state.quotas.keys());
  for (const j of state.jobs.values()) roles.add(j.config.role);
  return [...roles].sort().map((role) => {
    const r = quotaReport(state, role);
    return {
      role,
      quota: { cpus: r.quota.cpus, ramMb: r.quota.ramMb, diskMb: r.quota.diskMb },
      used: { cpus: roundCpus(r.usage.cpus), ramMb: r.usage.ramMb, diskMb: r.usage.diskMb },
      jobs: r.jobs.length,
    };
  });
}

// ---- the whole cluster at a moment (roost replay --at) ----------------------------------------

export interface ReplayReport {
  at: Moment;
  time: string;
  leader: ClusterSummary["leader"];
  summary: ClusterSummary;
  jobs: Array<JobRow & { tasks: Array<{ instance: number; taskId: TaskId; state: TaskStateName; host: string | null }> }>;
  agents: AgentRow[];
  pending: PendingRow[];
  quotas: QuotaRow[];
}

/** The cluster as of a state, whole (the CLI's `replay --at`; pages of it are the UI's). */
export function replayReport(state: ClusterState, at: Moment, limits: { jobs?: number; pending?: number } = {}): ReplayReport {
  const jobs = [...state.jobs.keys()]
    .sort()
    .slice(0, limits.jobs ?? Number.POSITIVE_INFINITY)
    .map((k) => {
      const job = state.jobs.get(k)!;
      const tasks = [...job.instances.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([instance, id]) => {
          const t = state.tasks.get(id)!;
          return { instance, taskId: t.taskId, state: t.state, host: t.host };
        });
      return { ...jobRow(state, job), tasks };
    });
  const s = summary(state, at);
  return {
    at,
    time: isoTime(at.ts),
    leader: s.leader,
    summary: s,
    jobs,
    agents: [...state.agents.values()].sort((a, b) => (a.agentId < b.agentId ? -1 : 1)).map(agentRow),
    pending: pendingPage(state, { offset: 0, limit: limits.pending ?? MAX_PAGE }).items,
    quotas: quotaRows(state),
  };
}

// ---- what changed between two moments (roost diff) --------------------------------------------

export interface DiffReport {
  from: Moment;
  to: Moment;
  jobs: { created: JobKeyString[]; killed: JobKeyString[]; changed: Array<{ job: JobKeyString; from: number; to: number; what: string }> };
  /** Tasks that changed state, grouped by (from → to) with counts and a few examples. */
  tasks: Array<{ from: TaskStateName | "(none)"; to: TaskStateName; count: number; examples: TaskId[] }>;
  agents: {
    came: AgentId[];
    went: AgentId[];
    changed: Array<{ agentId: AgentId; host: string; from: AgentStateName; to: AgentStateName }>;
  };
  quotas: Array<{ role: string; from: QuotaRow["quota"] | null; to: QuotaRow["quota"] }>;
  leader: { from: ClusterSummary["leader"]; to: ClusterSummary["leader"] } | null;
}

const DIFF_EXAMPLES = 5;

/**
 * What changed from state `a` to state `b` (b folded further along the same log). A job is
 * killed when a user's kill left none of its instances active; an agent "went" when it was
 * REMOVED. Tasks created in between count as from "(none)".
 */
export function diffStates(a: ClusterState, aAt: Moment, b: ClusterState, bAt: Moment): DiffReport {
  const created: JobKeyString[] = [];
  const killed: JobKeyString[] = [];
  const changed: DiffReport["jobs"]["changed"] = [];
  for (const [k, jb] of b.jobs) {
    const ja = a.jobs.get(k);
    if (!ja) {
      created.push(k);
      continue;
    }
    const activeA = jobRow(a, ja).active;
    const activeB = jobRow(b, jb).active;
    if (activeA > 0 && activeB === 0 && jb.killedInstances.size > ja.killedInstances.size) killed.push(k);
    else if (jb.instances.size !== ja.instances.size)
      changed.push({ job: k, from: ja.instances.size, to: jb.instances.size, what: "instances" });
    else if (jb.configVersion !== ja.configVersion)
      changed.push({ job: k, from: ja.configVersion, to: jb.configVersion, what: "configVersion" });
  }
  const groups = new Map<string, { from: TaskStateName | "(none)"; to: TaskStateName; count: number; examples: TaskId[] }>();
  for (const [id, tb] of b.tasks) {
    const from = a.tasks.get(id)?.state ?? "(none)";
    if (from === tb.state) continue;
    const key = `${from}>${tb.state}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { from, to: tb.state, count: 0, examples: [] }));
    g.count++;
    if (g.examples.length < DIFF_EXAMPLES) g.examples.push(id);
  }
  const order = (s: string) => (s === "(none)" ? -1 : TASK_STATES.indexOf(s as TaskStateName));
  const tasks = [...groups.values()].sort((x, y) => order(x.from) - order(y.from) || order(x.to) - order(y.to));
  const came: AgentId[] = [];
  const went: AgentId[] = [];
  const agentChanges: DiffReport["agents"]["changed"] = [];
  for (const [id, ab] of b.agents) {
    const aa = a.agents.get(id);
    if (!aa) came.push(id);
    else if (aa.state !== ab.state) {
      if (ab.state === "REMOVED") went.push(id);
      agentChanges.push({ agentId: id, host: ab.host, from: aa.state, to: ab.state });
    }
  }
  const quotas: DiffReport["quotas"] = [];
  for (const [role, qb] of b.quotas) {
    const qa = a.quotas.get(role) ?? null;
    if (!qa || qa.cpus !== qb.cpus || qa.ramMb !== qb.ramMb || qa.diskMb !== qb.diskMb) {
      quotas.push({ role, from: qa ? { ...qa } : null, to: { ...qb } });
    }
  }
  quotas.sort((x, y) => (x.role < y.role ? -1 : 1));
  const la = summary(a, aAt).leader;
  const lb = summary(b, bAt).leader;
  const leaderChanged = la?.schedulerId !== lb?.schedulerId || la?.epoch !== lb?.epoch;
  return {
    from: aAt,
    to: bAt,
    jobs: { created: created.sort(), killed: killed.sort(), changed: changed.sort((x, y) => (x.job < y.job ? -1 : 1)) },
    tasks,
    agents: { came: came.sort(), went: went.sort(), changed: agentChanges.sort((x, y) => (x.agentId < y.agentId ? -1 : 1)) },
    quotas,
    leader: leaderChanged ? { from: la, to: lb } : null,
  };
}
