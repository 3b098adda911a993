// The SRE's questions about the past, answered from the log: what touched this task, job, agent
// or host; what the cluster looked like at a moment; what changed between two; why a task is
// where it is; which state its machine is in and what it accepts; whether every copy of the
// state agrees; and the log itself, decoded, for any other tool.
//
// One service, three front ends: the CLI builds it over the log it reads itself (so every
// command works with no scheduler up), every scheduler replica builds it over its own fold and
// answers the bus's cluster.history-style ops and the web UI with it (a standby too), and `roost
// ui` builds it over a follower. The answers are read models (views/cluster.ts, replay/queries.ts,
// inspect.ts, scheduling/why.ts) of a state the time machine folded to the moment asked for, so
// the leader, a standby and a laptop give the same answer for the same moment.

import { isoTime } from "../domain/time.js";
import { asTaskId, type AgentId, type JobConfig, type JobKeyString, type TaskId } from "../domain/types.js";
import { UNREADABLE, type LogEntry, type LogRecord } from "../domain/events.js";
import { describeDifference, firstDifference, partHashes } from "../replay/compare.js";
import { type EventFilter, type EventItem, eventItem, matches, scopeOf } from "../replay/eventScope.js";
import { foldRecord } from "../replay/fold.js";
import { stateHash } from "../replay/hash.js";
import { type AgentInspection, inspectAgent, inspectTask, type TaskInspection } from "../replay/inspect.js";
import { type JobStatus, jobStatus } from "../replay/queries.js";
import { ClusterState, HISTORY_STRIDE } from "../replay/state.js";
import {
  agentRow,
  agentsPage,
  diffStates,
  type JobRow,
  jobRow,
  jobsPage,
  type Moment,
  pendingPage,
  quotaRows,
  replayReport,
  summary,
  taskRow,
  tasksPage,
} from "../views/cluster.js";
import { activeAgents } from "../scheduling/offers.js";
import { type MaintenanceView, maintenanceView } from "../views/maintenance.js";
import { whyTask } from "../scheduling/why.js";
import { toDot, toMermaid } from "../statemachines/graph.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import type { SnapshotInfo, SnapshotSource } from "../storage/snapshotStore.js";
import { readSnapshot } from "../replay/snapshot.js";
import { updateInfo, updateInstances, updateList } from "../updater/info.js";
import { type AtSpec, AtError, BusyError, type LogReader, TimeMachine } from "./timeMachine.js";

/** What a history query names. */
export type SubjectKind = "task" | "job" | "agent" | "host";

export class NotFoundError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** The live leader's state, as `cluster.hash` gives it. */
export interface LiveHash {
  schedulerId: string;
  epoch: number;
  seq: number;
  stateHash: string;
  parts: Record<string, string>;
}

/** What the service needs from a snapshot store: loading (the time machine), the list, one snapshot's bytes. */
type SnapshotReader = SnapshotSource & {
  list(): Promise<SnapshotInfo[]>;
  getBytes(name: string): Promise<Uint8Array | null>;
};

export interface HistoryServiceOptions {
  log: LogReader;
  store?: SnapshotReader;
  /** The state this process keeps folded (a replica's own, `roost ui`'s follower). */
  head?: () => ClusterState | null;
  /** Who answers: "leader", "standby", or "log" (a CLI or `roost ui` folding the log itself). */
  source?: () => "leader" | "standby" | "log";
  replica?: string;
  /** The live leader's hash, for verify (null when no leader answers). */
  liveHash?: () => Promise<LiveHash | null>;
  /** Why this process must not fold past states now (null: it may); see ui/replica.ts. */
  mayBuild?: () => string | null;
  progress?: (msg: string) => void;
}

/** The states a task's end (or its throttle) runs through: `why` names the event that began the run. */
const ENDING: ReadonlySet<string> = new Set([
  "THROTTLED",
  "KILLING",
  "PREEMPTING",
  "RESTARTING",
  "DRAINING",
  "PARTITIONED",
  "LOST",
  "KILLED",
  "FAILED",
  "FINISHED",
]);

/** The most records one history or log query scans: a query that matches little answers in bounded time. */
const MAX_SCAN_RECORDS = 200_000;
/** The most items one history answer holds. */
const MAX_HISTORY_ITEMS = 5000;
/** The most records one page of the UI's log view looks at, going back. */
const MAX_LOG_SCAN = 5000;

export interface HistoryItem {
  seq: number;
  index: number;
  ts: number;
  time: string;
  epoch: number;
  /** Who made it happen: a user (from the request), an agent (a status it reported), or the leader. */
  actor: string;
  type: string;
  /** The state change it caused, when it changed a task's or an agent's state. */
  change: { of: string; from: string; to: string } | null;
  reason: string;
}

export interface HistoryReport {
  kind: SubjectKind;
  id: string;
  from: Moment;
  to: Moment;
  items: HistoryItem[];
  /** True when the answer stopped at MAX_HISTORY_ITEMS or MAX_SCAN_RECORDS; `next` resumes it. */
  truncated: boolean;
  next: number | null;
}

/** A maintenance event about `host`: it moves it, denies a drain on it, or schedules or ends a window holding it. */
function namesHost(e: LogEntry, host: string, state: ClusterState): boolean {
  switch (e.type) {
    case "HostMaintenanceChanged":
    case "MaintenanceWindowScheduled":
      return e.data.hosts.includes(host);
    case "SlaDrainDenied":
      return e.data.host === host;
    case "MaintenanceWindowEnded":
      return state.windows.get(e.data.windowId)?.hosts.includes(host) ?? false;
    default:
      return false;
  }
}

function actorOf(e: LogEntry, leaders: Map<number, string>, agent: string | null): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  if (typeof d.user === "string") return `user ${d.user}`;
  if (e.type === "TaskStateChanged" && typeof d.agentSeq === "number") return `agent ${agent ?? "?"}`;
  if (e.type === "AgentRegistered") return `agent ${String(d.agentId)}`;
  if (e.type === "LeaderElected") return `scheduler ${String(d.schedulerId)}`;
  const l = leaders.get(e.epoch ?? 0);
  return l ? `leader ${l} (epoch ${e.epoch})` : `leader (epoch ${e.epoch ?? 0})`;
}

export class HistoryService {
  readonly tm: TimeMachine;

  constructor(private readonly o: HistoryServiceOptions) {
    this.tm = new TimeMachine({ log: o.log, store: o.store, head: o.head, progress: o.progress, mayBuild: o.mayBuild });
  }

  /** A state at `at`, and the moment it stands for. */
  private async at(at: AtSpec): Promise<{ state: ClusterState; at: Moment }> {
    const m = await this.tm.resolve(at);
    return { state: await this.tm.stateAt(m.seq), at: m };
  }

  async timeline(): Promise<{ first: Moment | null; last: Moment; source: string; replica: string }> {
    const last = await this.tm.resolve(undefined);
    const r = last.seq > 0 ? await this.o.log.get(1) : null;
    const first: Moment | null = r ? { seq: 1, ts: r.events.find((e) => e.type !== UNREADABLE)?.ts ?? 0 } : null;
    return { first, last, source: this.o.source?.() ?? "log", replica: this.o.replica ?? "" };
  }

  async summary(q: { at?: AtSpec }) {
    const { state, at } = await this.at(q.at);
    return summary(state, at);
  }

  async jobs(q: { at?: AtSpec; role?: string; q?: string; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    return { at, ...jobsPage(state, q) };
  }

  async job(q: { at?: AtSpec; job: string }): Promise<{
    at: Moment;
    job: JobRow;
    createdSeq: number;
    createdTs: number;
    config: JobConfig;
    instances: JobStatus["instances"];
  }> {
    const { state, at } = await this.at(q.at);
    const rec = state.jobs.get(q.job as JobKeyString);
    if (!rec) throw new NotFoundError(`job ${q.job} does not exist at sequence ${at.seq}`, "job");
    return {
      at,
      job: jobRow(state, rec),
      createdSeq: rec.createdSeq,
      createdTs: rec.createdTs,
      config: rec.config,
      instances: jobStatus(state, q.job)!.instances,
    };
  }

  async tasks(q: { at?: AtSpec; job?: string; state?: string; agent?: string; q?: string; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    return { at, ...tasksPage(state, q) };
  }

  async task(q: { at?: AtSpec; taskId: string }) {
    const { state, at } = await this.at(q.at);
    const t = state.tasks.get(asTaskId(q.taskId));
    if (!t) throw new NotFoundError(`task ${q.taskId} does not exist at sequence ${at.seq}`, "taskId");
    // Everything read from the state first: the state is not ours to hold across an await.
    const row = { ...taskRow(t), ports: t.ports ?? {}, exitCode: t.exitCode, ancestorId: t.ancestorId, successorId: t.successorId };
    const h = [...t.history];
    const inspect = inspectTask(state, q.taskId, {})!;
    const why = whyTask(state, q.taskId, { agents: activeAgents(state), mode: "spread", reasonFor: () => undefined, log: this.o.log });
    const reasons = await this.reasonsOf(h);
    for (const x of inspect.history) x.reason = reasons.get(`${x.seq}.${x.idx}`) ?? null;
    const history = [];
    for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
      const [seq, idx, ts, code] = [h[i]!, h[i + 1]!, h[i + 2]!, h[i + 3]!];
      history.push({ seq, idx, ts, state: TASK_STATES[code]!, reason: reasons.get(`${seq}.${idx}`) ?? null });
    }
    return { at, task: row, history, why: await why, inspect };
  }

  async agents(q: { at?: AtSpec; q?: string; state?: string; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    return { at, ...agentsPage(state, q) };
  }

  async agent(q: { at?: AtSpec; agentId: string }) {
    const { state, at } = await this.at(q.at);
    const a = state.agents.get(q.agentId as AgentId);
    if (!a) throw new NotFoundError(`agent ${q.agentId} does not exist at sequence ${at.seq}`, "agentId");
    const row = agentRow(a);
    const tasks = tasksPage(state, { agent: q.agentId, limit: 500 });
    const entries = await this.agentEntries(state, q.agentId, a.registeredSeq, at.seq);
    return { at, agent: row, tasks: tasks.items, inspect: inspectAgent(state, q.agentId, entries) };
  }

  async pending(q: { at?: AtSpec; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    return { at, ...pendingPage(state, q) };
  }

  async quotas(q: { at?: AtSpec }) {
    const { state, at } = await this.at(q.at);
    return { at, items: quotaRows(state) };
  }

  /** Host maintenance as of the moment (views/maintenance.ts): hosts by mode, drains, denials, windows. */
  async maintenance(q: { at?: AtSpec }): Promise<MaintenanceView & { at: Moment }> {
    const { state, at } = await this.at(q.at);
    return { at, ...maintenanceView(state, at.ts) };
  }

  /** Job updates and rolling restarts, newest first (updater/info.ts updateList), a page of them. */
  async updates(q: { at?: AtSpec; job?: string; role?: string; status?: string; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    const all = updateList(state, { job: q.job, role: q.role, status: q.status });
    const offset = Math.max(0, Math.floor(q.offset ?? 0));
    const limit = Math.min(500, Math.max(1, Math.floor(q.limit ?? 50)));
    return { at, total: all.length, offset, items: all.slice(offset, offset + limit) };
  }

  /**
   * One update (updateInfo: `updateId`, else the job's active or newest one) and a page of its
   * instances (updateInstances: each one's newest action, task, progress and every action). The
   * actions come with their instances, so the reply stays small at 1,000 instances.
   */
  async update(q: { at?: AtSpec; updateId?: string; job?: string; offset?: number; limit?: number }) {
    const { state, at } = await this.at(q.at);
    const job = q.job ?? (q.updateId === undefined ? undefined : state.updates.get(q.updateId)?.job);
    const info = job === undefined ? null : updateInfo(state, job as JobKeyString, q.updateId);
    if (!info) {
      const what = q.updateId !== undefined ? `update ${q.updateId}` : `an update of job ${q.job ?? "?"}`;
      throw new NotFoundError(`${what} does not exist at sequence ${at.seq}`, q.updateId !== undefined ? "updateId" : "job");
    }
    const { actions, ...update } = info;
    const rows = updateInstances(state, info.updateId, at.ts);
    const offset = Math.max(0, Math.floor(q.offset ?? 0));
    const limit = Math.min(500, Math.max(1, Math.floor(q.limit ?? 100)));
    return {
      at,
      update: { ...update, actionCount: actions.length },
      instances: { total: rows.length, offset, items: rows.slice(offset, offset + limit) },
    };
  }

  /** The log, newest first, ending at `at` (or going back from `from`), filtered. */
  async log(q: { at?: AtSpec; from?: number; job?: string; agent?: string; task?: string; type?: string[]; limit?: number }) {
    const m = await this.tm.resolve(q.at);
    const state = this.o.head?.() ?? (await this.tm.stateAt(m.seq));
    const limit = Math.min(500, Math.max(1, q.limit ?? 100));
    const filter: EventFilter = {
      ...(q.job ? { job: q.job } : {}),
      ...(q.agent ? { agent: q.agent } : {}),
      ...(q.type?.length ? { type: q.type } : {}),
    };
    const start = Math.min(q.from ?? m.seq, m.seq);
    const items: EventItem[] = [];
    let seq = start;
    let scanned = 0;
    for (; seq >= 1 && items.length < limit && scanned < MAX_LOG_SCAN; seq--, scanned++) {
      const r = await this.o.log.get(seq);
      if (!r) continue;
      const mine: EventItem[] = [];
      r.events.forEach((e, i) => {
        const scope = scopeOf(e, state);
        if (!matches(e, scope, filter)) return;
        if (q.task && scope.taskId !== q.task) return;
        mine.push(eventItem(r.seq, i, e, scope));
      });
      items.push(...mine.reverse());
    }
    return { at: m, items, next: seq >= 1 ? seq : null, prev: start < m.seq ? Math.min(m.seq, start + limit) : null };
  }

  /** Every event that touched a task, job, agent or host, from `from` to `to` (both inclusive). */
  async history(q: { kind: SubjectKind; id: string; from?: AtSpec; to?: AtSpec }): Promise<HistoryReport> {
    const to = await this.tm.resolve(q.to);
    const state = await this.tm.stateAt(to.seq);
    // Where its story starts: nothing before it existed touches it.
    let start = 1;
    let agentIds: Set<string> | null = null;
    let tasks: Set<string> | null = null;
    switch (q.kind) {
      case "task": {
        const t = state.tasks.get(asTaskId(q.id));
        if (!t) throw new NotFoundError(`task ${q.id} does not exist at sequence ${to.seq}`, "id");
        start = t.history[0] ?? 1;
        tasks = new Set([t.taskId]);
        break;
      }
      case "job": {
        const j = state.jobs.get(q.id as JobKeyString);
        if (!j) throw new NotFoundError(`job ${q.id} does not exist at sequence ${to.seq}`, "id");
        start = j.createdSeq;
        break;
      }
      case "agent": {
        const a = state.agents.get(q.id as AgentId);
        if (!a) throw new NotFoundError(`agent ${q.id} does not exist at sequence ${to.seq}`, "id");
        agentIds = new Set([a.agentId]);
        start = 1;
        break;
      }
      case "host": {
        agentIds = new Set([...state.agents.values()].filter((a) => a.host === q.id).map((a) => a.agentId));
        // A host in maintenance is one too, with or without an agent (Aurora allows that).
        if (agentIds.size === 0 && !state.hosts.has(q.id))
          throw new NotFoundError(`no agent ran on host ${q.id}, and it was never in maintenance, up to sequence ${to.seq}`, "id");
        break;
      }
    }
    const from = q.from === undefined ? await this.tm.moment(start) : await this.tm.resolve(q.from);
    const changes = this.changeIndex(state);
    const leaders = new Map<number, string>();
    const items: HistoryItem[] = [];
    let next: number | null = null;
    let scanned = 0;
    const first = Math.max(1, Math.min(from.seq, start));
    for await (const r of this.o.log.read(first)) {
      if (r.seq > to.seq) break;
      if (items.length >= MAX_HISTORY_ITEMS || scanned >= MAX_SCAN_RECORDS) {
        next = r.seq;
        break;
      }
      scanned++;
      r.events.forEach((e, index) => {
        if (e.type === "LeaderElected") {
          const d = e.data as { schedulerId?: string; epoch?: number };
          if (typeof d.epoch === "number") leaders.set(d.epoch, String(d.schedulerId));
        }
        if (r.seq < from.seq) return;
        const scope = scopeOf(e, state);
        const hit =
          (q.kind === "task"
            ? scope.taskId !== null && tasks!.has(scope.taskId)
            : q.kind === "job"
              ? scope.job === q.id
              : scope.agent !== null && agentIds!.has(scope.agent)) ||
          (q.kind === "host" && namesHost(e, q.id, state));
        if (!hit) return;
        items.push({
          seq: r.seq,
          index,
          ts: e.ts ?? 0,
          time: isoTime(e.ts ?? 0),
          epoch: e.epoch ?? 0,
          actor: actorOf(e, leaders, scope.agent),
          type: e.type,
          change: changes(r.seq, index, e),
          reason: e.reason ?? "",
        });
      });
    }
    return { kind: q.kind, id: q.id, from, to, items, truncated: next !== null, next };
  }

  /** Which state change an event caused: tasks' from their histories, agents' from their events. */
  private changeIndex(state: ClusterState): (seq: number, index: number, e: LogEntry) => HistoryItem["change"] {
    const agentsSeen = new Map<string, string>();
    return (seq, index, e) => {
      const d = (e.data ?? {}) as Record<string, unknown>;
      if (e.type === "AgentRegistered" || e.type === "AgentStateChanged") {
        const id = String(d.agentId);
        const from = agentsSeen.get(id) ?? "NEW";
        const to = e.type === "AgentRegistered" ? (from === "REMOVED" ? "REMOVED" : "ACTIVE") : String(d.to);
        agentsSeen.set(id, to);
        return from === to ? null : { of: `agent ${id}`, from, to };
      }
      if (typeof d.taskId !== "string") return null;
      const t = state.tasks.get(d.taskId as TaskId);
      if (!t) return null;
      const h = t.history;
      for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
        if (h[i] === seq && h[i + 1] === index) {
          const from = i === 0 ? "INIT" : TASK_STATES[h[i - 1]!]!;
          return { of: `task ${t.taskId}`, from, to: TASK_STATES[h[i + 3]!]! };
        }
      }
      return null;
    };
  }

  /** The reasons of a task's state changes, read back from the log, keyed "seq.idx". */
  private async reasonsOf(history: readonly number[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const records = new Map<number, LogRecord | null>();
    for (let i = 0; i < history.length; i += HISTORY_STRIDE) {
      const seq = history[i]!;
      const idx = history[i + 1]!;
      if (!records.has(seq)) records.set(seq, await this.o.log.get(seq));
      out.set(`${seq}.${idx}`, records.get(seq)?.events[idx]?.reason ?? "(record no longer in the log)");
    }
    return out;
  }

  private async agentEntries(state: ClusterState, agentId: string, fromSeq: number, toSeq: number) {
    const out: Array<{ seq: number; index: number; ts: number; type: string; reason: string; data: unknown }> = [];
    let scanned = 0;
    for await (const r of this.o.log.read(Math.max(1, fromSeq))) {
      if (r.seq > toSeq || scanned++ >= MAX_SCAN_RECORDS) break;
      r.events.forEach((e, index) => {
        if (e.type !== "AgentRegistered" && e.type !== "AgentStateChanged") return;
        if (scopeOf(e, state).agent !== agentId) return;
        out.push({ seq: r.seq, index, ts: e.ts ?? 0, type: e.type, reason: e.reason ?? "", data: e.data });
      });
    }
    return out;
  }

  /** The whole cluster at a moment (roost replay --at). */
  async replay(q: { at?: AtSpec }) {
    const { state, at } = await this.at(q.at);
    return replayReport(state, at);
  }

  /** What changed between two moments (to defaults to the end of the log). */
  async diff(q: { from: AtSpec; to?: AtSpec }) {
    const a = await this.tm.resolve(q.from);
    const b = await this.tm.resolve(q.to);
    if (b.seq < a.seq) throw new AtError(`to: sequence ${b.seq} is before from (${a.seq})`);
    // Two states at once: the earlier one is folded into a private copy, never the cache's.
    const sa = await this.privateStateAt(a.seq);
    const sb = await this.tm.stateAt(b.seq);
    return diffStates(sa, a, sb, b);
  }

  private async privateStateAt(seq: number): Promise<ClusterState> {
    const base = new TimeMachine({ log: this.o.log, store: this.o.store, progress: this.o.progress, mayBuild: this.o.mayBuild });
    return base.stateAt(seq);
  }

  /** Why a task is where it is at a moment, with the event that put it there. */
  async why(q: { taskId: string; at?: AtSpec }) {
    const { state, at } = await this.at(q.at);
    const t = state.tasks.get(asTaskId(q.taskId));
    if (!t) throw new NotFoundError(`task ${q.taskId} does not exist at sequence ${at.seq}`, "taskId");
    const h = [...t.history];
    const report = await whyTask(state, q.taskId, {
      agents: activeAgents(state),
      mode: "spread",
      reasonFor: () => undefined,
      log: this.o.log,
    });
    // The state changes that led here, newest first, each with its event: the cause of a kill,
    // a preemption, a reschedule, a throttle or a loss is the event that started it.
    const chain: Array<{ seq: number; index: number; ts: number; state: string; type: string; reason: string }> = [];
    for (let i = h.length - HISTORY_STRIDE; i >= 0 && chain.length < 4; i -= HISTORY_STRIDE) {
      const ev = (await this.o.log.get(h[i]!))?.events[h[i + 1]!];
      chain.push({
        seq: h[i]!,
        index: h[i + 1]!,
        ts: h[i + 2]!,
        state: TASK_STATES[h[i + 3]!]!,
        type: ev?.type ?? "?",
        reason: ev?.reason ?? "",
      });
    }
    // The cause: where the run of ending states (or the throttle) it is in now began.
    let cause = chain[0] ?? null;
    for (const c of chain) {
      if (!ENDING.has(c.state)) break;
      cause = c;
    }
    return { at, ...report!, cause, chain };
  }

  /** A task's or an agent's machine at a moment: its state, what it accepts, its transitions, the graph. */
  async inspect(q: {
    kind: "task" | "agent";
    id: string;
    at?: AtSpec;
    graph?: "mermaid" | "dot";
  }): Promise<(TaskInspection | AgentInspection) & { at: Moment; rendered?: string }> {
    const { state, at } = await this.at(q.at);
    let r: TaskInspection | AgentInspection | null;
    if (q.kind === "task") {
      const t = state.tasks.get(asTaskId(q.id));
      if (!t) throw new NotFoundError(`task ${q.id} does not exist at sequence ${at.seq}`, "id");
      const history = [...t.history];
      r = inspectTask(state, q.id, {})!;
      const reasons = await this.reasonsOf(history);
      for (const x of r.history) x.reason = reasons.get(`${x.seq}.${x.idx}`) ?? null;
    } else {
      const a = state.agents.get(q.id as AgentId);
      if (!a) throw new NotFoundError(`agent ${q.id} does not exist at sequence ${at.seq}`, "id");
      r = inspectAgent(state, q.id, await this.agentEntries(state, q.id, a.registeredSeq, at.seq));
    }
    if (!r) throw new NotFoundError(`${q.kind} ${q.id} does not exist at sequence ${at.seq}`, "id");
    const rendered = q.graph === "mermaid" ? toMermaid(r.graph, r.state) : q.graph === "dot" ? toDot(r.graph, r.state) : undefined;
    return { at, ...r, ...(rendered !== undefined ? { rendered } : {}) };
  }

  /**
   * A fold from genesis, compared with the newest snapshot (at its sequence) and with the live
   * leader's state (at the leader's sequence). `ok` is false on any mismatch, and `difference`
   * names the first part that differs.
   */
  async verify() {
    const no = this.o.mayBuild?.() ?? null;
    if (no !== null) throw new BusyError(no);
    const checks: Array<{
      what: string;
      seq: number;
      ok: boolean;
      expected?: string;
      folded?: string;
      difference?: string;
      note?: string;
    }> = [];
    const snaps = (await this.o.store?.list().catch(() => [])) ?? [];
    const newest = snaps[0];
    const live = await (this.o.liveHash?.() ?? Promise.resolve(null)).catch(() => null);
    const last = await this.o.log.lastSeq();
    const stops = [...new Set([newest?.seq, live?.seq, last].filter((s): s is number => typeof s === "number" && s <= last))].sort(
      (a, b) => a - b,
    );
    const state = new ClusterState();
    let i = 0;
    const at = async (seq: number) => {
      if (newest && seq === newest.seq) {
        const folded = stateHash(state);
        const expected = newest.stateHash ?? "";
        const ok = folded === expected;
        let difference: string | undefined;
        if (!ok) {
          const bytes = await this.o.store!.getBytes(newest.name);
          try {
            const snap = bytes ? readSnapshot(bytes, { verify: false }).state : null;
            const d = snap ? firstDifference(snap, state) : null;
            difference = d ? describeDifference(d, ["snapshot", "fold"]) : "the snapshot's bytes are gone";
          } catch (err) {
            difference = `the snapshot does not decode: ${(err as Error).message}`;
          }
        }
        checks.push({ what: `snapshot ${newest.name}`, seq, ok, expected, folded, ...(difference ? { difference } : {}) });
      }
      if (live && seq === live.seq) {
        const folded = stateHash(state);
        const ok = folded === live.stateHash;
        let difference: string | undefined;
        if (!ok) {
          const mine = partHashes(state);
          const part = Object.keys(live.parts).find((k) => live.parts[k] !== mine[k]);
          difference = part
            ? `${part} differ (leader ${live.parts[part]!.slice(0, 16)}, fold ${mine[part]!.slice(0, 16)})`
            : "the hashes differ";
        }
        checks.push({
          what: `leader ${live.schedulerId} (epoch ${live.epoch})`,
          seq,
          ok,
          expected: live.stateHash,
          folded,
          ...(difference ? { difference } : {}),
        });
      }
    };
    if (stops.includes(0)) await at(0);
    for await (const r of this.o.log.read(1)) {
      foldRecord(state, r.seq, r.events);
      while (i < stops.length && stops[i]! < r.seq) i++;
      if (stops[i] === r.seq) await at(r.seq);
      if (r.seq >= last) break;
    }
    if (!newest) checks.push({ what: "snapshot", seq: 0, ok: true, note: "no snapshot in the store" });
    if (!live) checks.push({ what: "leader", seq: 0, ok: true, note: "no leader answered" });
    const head = this.o.head?.();
    return {
      ok: checks.every((c) => c.ok),
      seq: state.seq,
      stateHash: stateHash(state),
      anomalyCount: state.anomalyCount,
      checks,
      ...(head && head.seq === state.seq ? { thisReplica: stateHash(head) === stateHash(state) } : {}),
    };
  }

  /** The decoded events from `from` to `to`, one object per event, with whose they are. */
  async *export(q: { from?: AtSpec; to?: AtSpec }): AsyncIterable<EventItem> {
    const to = await this.tm.resolve(q.to);
    const from = q.from === undefined ? { seq: 1, ts: 0 } : await this.tm.resolve(q.from);
    // The task table at the end names every task an earlier event refers to.
    const state = this.o.head?.() ?? (await this.tm.stateAt(to.seq));
    const since = typeof q.from === "string" ? Date.parse(q.from) : null;
    for await (const r of this.o.log.read(Math.max(1, from.seq))) {
      if (r.seq > to.seq) break;
      for (const [i, e] of r.events.entries()) {
        if (since !== null && (e.ts ?? 0) < since) continue;
        yield eventItem(r.seq, i, e, scopeOf(e, state));
      }
    }
  }
}
