// Reads: the API's questions (job.status, job.list, quota.get, task.history, task.why,
// update.info, update.list, cluster.info), answered from the folded state and the in-memory views of the leader (pending
// reasons, heartbeats, its actors' mailboxes). Its own actor, so a slow read (a task's history
// reads reasons back from the log) never holds a write, and a flood of writes never holds a read.
// It changes nothing; a read that awaits the log does not hold the mailbox either.

import type { InspectReply } from "../agent/protocol.js";
import { subjects } from "../bus/bus.js";
import { asTaskId, jobKeyString, parseJobKey } from "../domain/types.js";
import { fastChecker, formatProblem } from "../domain/validate.js";
import { TaskStatusReply } from "../api/replies.js";
import { quotaReport } from "../quota/quota.js";
import { partHashes } from "../replay/compare.js";
import { stateHash } from "../replay/hash.js";
import type { ClusterState } from "../replay/state.js";
import { jobList, jobStatus, taskHistory, withReasons } from "../replay/queries.js";
import { whyTask } from "../scheduling/why.js";
import { cronList, cronShow } from "../cron/queries.js";
import { hostStatus, windowList } from "../maintenance/queries.js";
import { updateInfo, updateList } from "../updater/info.js";
import { type SlaRequest, slaRead } from "../sla/reports.js";
import { Actor, type ActorStats } from "./actor.js";
import { doneValue, requestKey } from "./jobIntake.js";
import type { IntakeStats } from "./intakeConsumer.js";
import type { Liveness } from "./agentRegistry.js";
import { type Caller, type ReadsOp, RequestError } from "./api.js";
import type { TermContext } from "./context.js";
import type { PlacementView } from "./placement.js";

/** The largest state the leader hashes for `roost verify` (~0.2 s at this size on this project's machine). */
const LIVE_HASH_MAX_TASKS = 100_000;

export type ReadsMsg = { type: ReadsOp; req: unknown; caller: Caller; reply: (r: unknown) => void; fail: (err: Error) => void };

type Deps = Pick<
  TermContext,
  "state" | "clock" | "log" | "policy" | "eventLog" | "schedulerId" | "epoch" | "bus" | "agentRequestTimeoutMs"
>;

const checkStatusReply = fastChecker(TaskStatusReply);
/** A task status without its agent's part (none was asked, or none answered well). */
const NO_PROCESSES = { processes: null, phase: null, killStep: null, health: null, isolation: null, memoryBytes: null };

/** Task states in which an agent runs (or ran a moment ago) the task's processes. */
const ON_AGENT = new Set(["ASSIGNED", "STARTING", "RUNNING", "KILLING", "RESTARTING", "PREEMPTING", "DRAINING", "PARTITIONED"]);

export class Reads extends Actor<ReadsMsg> {
  constructor(
    private readonly s: Deps,
    private readonly placement: PlacementView,
    private readonly liveness: Liveness,
    /** The leader's actors, as `roost cluster status` shows them. */
    private readonly actorStats: () => ActorStats[],
    /** True while a keyed write waits for JobIntake (request.get: "pending"). */
    private readonly pendingKey: (key: string) => boolean = () => false,
    /** The durable intake's counts this term, when the replica consumes one. */
    private readonly intakeStats: () => IntakeStats | null = () => null,
  ) {
    super("reads", s.log, () => s.clock.now());
  }

  read(op: ReadsOp, req: unknown, caller: Caller = { role: null }): Promise<unknown> {
    return this.ask((reply, fail) => ({ type: op, req, caller, reply, fail }));
  }

  protected override onStop(dropped: ReadsMsg[]): void {
    for (const m of dropped) m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected receive(m: ReadsMsg): void {
    let r: unknown;
    try {
      r = this.answer(m.type, m.req as Record<string, string>, m.caller.role);
    } catch (err) {
      return m.fail(err as Error);
    }
    if (r instanceof Promise) r.then(m.reply, m.fail);
    else m.reply(r);
  }

  /**
   * A task as the log has it, and its processes as its agent runs them now (roost task status).
   * The agent is asked only while it runs the task; one that does not answer leaves processes
   * null, with the reason, rather than failing the read.
   */
  private async taskStatus(taskId: string, job: string, instance: number, state: string, host: string | null, agentId: string | null) {
    const base = { taskId, job, instance, state, host, agentId };
    if (agentId === null || !ON_AGENT.has(state)) {
      return {
        ...base,
        ...NO_PROCESSES,
        agentError: agentId === null ? "the task was never placed" : `the task is ${state}: no agent runs it`,
      };
    }
    let reply: unknown;
    try {
      reply = await this.s.bus.request<unknown>(subjects.inspect(agentId), { taskId }, Math.min(this.s.agentRequestTimeoutMs, 3000));
    } catch (err) {
      return { ...base, ...NO_PROCESSES, agentError: `agent ${agentId} did not answer: ${(err as Error).message}` };
    }
    return taskStatusFrom(base, agentId, reply);
  }

  /** Hosts' maintenance, each with the reason of the event that put it in its mode (read back from the log). */
  private async hostStatus(hosts: string[] | string | undefined) {
    const names = typeof hosts === "string" ? hosts.split(",") : hosts;
    const rows = hostStatus(this.s.state, names);
    return Promise.all(
      rows.map(async ({ sinceSeq, ...row }) => {
        let reason = row.known ? "in service: never in maintenance" : "no agent has registered on it; never in maintenance";
        if (sinceSeq !== null) {
          const rec = await this.s.eventLog.get(sinceSeq);
          const e = rec?.events.find((x) => x.type === "HostMaintenanceChanged" && x.data.hosts.includes(row.host));
          reason = e?.reason ?? "(record no longer in the log)";
        }
        const { host, mode, tasks, since, ...rest } = row;
        return { host, mode, tasks, since, reason, ...rest };
      }),
    );
  }

  private answer(op: ReadsOp, r: Record<string, string>, role: string | null): unknown {
    const s = this.s;
    switch (op) {
      case "quota.get":
        return quotaReport(s.state, r.role!);
      case "job.status": {
        const st = jobStatus(s.state, r.job!, { get: (id) => this.placement.reasonFor(id) });
        if (!st) throw new RequestError(`job ${r.job} does not exist`, "NOT_FOUND", "job");
        return st;
      }
      case "job.list":
        return role === null ? jobList(s.state) : jobList(s.state).filter((j) => j.job.startsWith(`${role}/`));
      case "update.info": {
        const key = jobKeyString(parseJobKey(r.job!));
        const info = updateInfo(s.state, key, r.updateId);
        if (!info)
          throw new RequestError(
            r.updateId === undefined ? `job ${key} has had no update` : `job ${key} has no update ${r.updateId}`,
            "NOT_FOUND",
            r.updateId === undefined ? "job" : "updateId",
          );
        return info;
      }
      case "update.list":
        return updateList(s.state, {
          ...(r.job !== undefined ? { job: jobKeyString(parseJobKey(r.job)) } : {}),
          ...(role !== null ? { role } : {}),
          ...(r.status !== undefined ? { status: r.status } : {}),
        });
      case "cron.show": {
        // Next fire times from the leader's clock: read here, never in the fold.
        const show = cronShow(s.state, jobKeyString(parseJobKey(r.job!)), s.clock.now());
        if (!show) throw new RequestError(`job: ${r.job} is not a scheduled cron job`, "NOT_FOUND", "job");
        return show;
      }
      case "cron.list":
        return cronList(s.state, s.clock.now(), role);
      case "host.maintenance.status":
        return this.hostStatus(r.hosts as unknown as string[] | string | undefined);
      case "host.maintenance.windows":
        return windowList(s.state);
      case "sla.safe-hosts":
      case "sla.probe":
      case "sla.job": {
        const v = slaRead(s.state, op, r as unknown as SlaRequest, s.clock.now());
        if (v === null) throw new RequestError(`job ${r.job} does not exist`, "NOT_FOUND", "job");
        return v;
      }
      case "task.history": {
        ownTask(s.state, r.taskId!, role);
        const h = taskHistory(s.state, r.taskId!);
        if (!h) throw new RequestError(`task ${r.taskId} does not exist`, "NOT_FOUND", "taskId");
        return withReasons(h, s.eventLog);
      }
      case "task.why":
        ownTask(s.state, r.taskId!, role);
        return whyTask(s.state, r.taskId!, {
          agents: this.placement.activeAgents(),
          mode: s.policy.placementMode,
          reasonFor: (id) => this.placement.reasonFor(id),
          log: s.eventLog,
        }).then((w) => {
          if (!w) throw new RequestError(`task ${r.taskId} does not exist`, "NOT_FOUND", "taskId");
          return w;
        });
      case "task.status": {
        ownTask(s.state, r.taskId!, role);
        const t = s.state.tasks.get(asTaskId(r.taskId!));
        if (!t) throw new RequestError(`task ${r.taskId} does not exist`, "NOT_FOUND", "taskId");
        return this.taskStatus(t.taskId, t.job, t.instance, t.state, t.host, t.agentId);
      }
      case "request.get": {
        // The key namespace is the subject's role ("admin" for a trusted caller, as JobIntake's).
        const key = requestKey({ role }, r.key!);
        const first = s.state.requests.get(key);
        if (first) {
          const value = first.outcome === "done" ? doneValue(s.state, first) : undefined;
          return {
            key: r.key!,
            state: first.outcome,
            op: first.op,
            seq: first.seq,
            ...(value !== undefined ? { value } : {}),
            ...(first.error ? { error: first.error } : {}),
          };
        }
        if (this.pendingKey(key)) return { key: r.key!, state: "pending" };
        throw new RequestError(
          `request ${r.key} of role ${role ?? "admin"} is unknown: never received, or decided more than 24 h ago`,
          "NOT_FOUND",
          "key",
        );
      }
      case "cluster.hash": {
        // Hashed on the leader's own thread, between its messages: bounded, so a verify never
        // stalls a big leader past its lease (a snapshot is the way to compare those).
        if (s.state.tasks.size > LIVE_HASH_MAX_TASKS) {
          throw new RequestError(
            `the leader holds ${s.state.tasks.size} tasks; rule: it hashes its live state only up to ${LIVE_HASH_MAX_TASKS} tasks (compare a snapshot instead: roost snapshot verify)`,
            "UNAVAILABLE",
          );
        }
        return { schedulerId: s.schedulerId, epoch: s.epoch, seq: s.state.seq, stateHash: stateHash(s.state), parts: partHashes(s.state) };
      }
      case "cluster.info":
        return {
          schedulerId: s.schedulerId,
          epoch: s.epoch,
          seq: s.state.seq,
          events: s.state.eventCount,
          agents: [...s.state.agents.values()].map((a) => ({
            agentId: a.agentId,
            host: a.host,
            state: a.state,
            attributes: a.attributes,
            tasks: a.tasks.size,
            lastHeartbeat: this.liveness.lastHeartbeatOf(a.agentId),
            ...(a.isolation ? { isolation: a.isolation } : {}),
          })),
          anomalies: s.state.anomalies,
          anomalyCount: s.state.anomalyCount,
          actors: this.actorStats(),
          ...(this.intakeStats() ? { intake: { ...this.intakeStats()! } } : {}),
        };
    }
  }
}

/** On a role's subject, a task of another role's job is refused (PERMISSION_DENIED), not shown. */
function ownTask(state: ClusterState, taskId: string, role: string | null): void {
  if (role === null) return;
  const t = state.tasks.get(asTaskId(taskId));
  if (t && !t.job.startsWith(`${role}/`)) {
    throw new RequestError(
      `taskId: task ${taskId} belongs to job ${t.job}; rule: a request on role "${role}"'s subject reads only role "${role}"'s tasks`,
      "PERMISSION_DENIED",
      "taskId",
    );
  }
}

/**
 * A task's status from its agent's inspect reply, checked before it is passed on (invariant 6):
 * a reply that is no answer, or that breaks the API's reply schema, leaves the processes unknown
 * and says what was wrong with it.
 */
export function taskStatusFrom(
  base: { taskId: string; job: string; instance: number; state: string; host: string | null; agentId: string | null },
  agentId: string,
  reply: unknown,
) {
  const r = reply as Partial<Extract<InspectReply, { ok: true }>> & { ok?: unknown; error?: unknown };
  if (reply === null || typeof reply !== "object" || r.ok !== true) {
    const error = typeof r?.error === "string" ? r.error : "an answer it could not read";
    return { ...base, ...NO_PROCESSES, agentError: `agent ${agentId}: ${error}` };
  }
  const value = {
    ...base,
    processes: r.processes,
    phase: r.phase,
    killStep: r.killStep,
    health: r.health,
    isolation: r.isolation,
    memoryBytes: r.memoryBytes,
    agentError: null,
  };
  const bad = checkStatusReply(value);
  if (bad !== null) return { ...base, ...NO_PROCESSES, agentError: `agent ${agentId} answered what no agent may: ${formatProblem(bad)}` };
  return value;
}
