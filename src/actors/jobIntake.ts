// JobIntake: the client API on the bus (roost.api.*). Every request is checked against its
// schema (api/requests.ts) before anything else; writes are then validated against the folded
// state, committed, and only then answered. A refused request changes nothing and says what
// was wrong and which rule it broke; "internal error" is kept for the scheduler's own bugs.

import { API_PREFIX, type Reply } from "../bus/bus.js";
import { REQUEST_SCHEMAS, type RequestOp } from "../api/requests.js";
import { checker, formatProblems, type Problem } from "../domain/validate.js";
import { jobKeyString, parseJobKey, type JobKeyString } from "../domain/types.js";
import { RecordTooLargeError } from "../eventlog/appender.js";
import { FencedError, LogUnavailableError } from "../eventlog/log.js";
import {
  amountsOf,
  consumesQuota,
  quotaBelowUsage,
  quotaCheck,
  quotaOf,
  quotaReport,
  type Amounts,
  type QuotaReport,
} from "../quota/quota.js";
import { whyTask } from "../scheduling/why.js";
import { jobList, jobStatus, taskHistory, withReasons } from "../replay/queries.js";
import { SpecError, validateJobSpec } from "../spec/jobSpec.js";
import { MAX_INSTANCES } from "../spec/schema.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { taskIdFor } from "./ports.js";
import type { Scheduler } from "./scheduler.js";

export interface CreateJobRequest {
  spec: unknown;
  user?: string;
}
export interface KillJobRequest {
  job: string;
  instances?: number[] | null;
  user?: string;
}

export interface AddInstancesRequest {
  job: string;
  count: number;
  user?: string;
}
export interface SetQuotaRequest {
  role: string;
  cpus: number;
  ramMb: number;
  diskMb: number;
  user?: string;
}

export class RequestError extends Error {
  override name = "RequestError";
}

// biome-ignore lint/suspicious/noExplicitAny: each op takes its own request type, checked against its schema before the call
type Op = (req: any) => unknown | Promise<unknown>;

const CHECKS = Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([op, schema]) => [op, checker(schema)])) as Record<
  RequestOp,
  (v: unknown) => Problem[]
>;

export class JobIntake {
  private readonly ops: Record<string, Op>;
  /**
   * Writes whose check reads state another such write changes (quota, job existence) run one
   * at a time: the check and the commit of one finish before the next check, or two requests
   * could each fit the quota alone and overrun it together.
   */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(private readonly s: Scheduler) {
    this.ops = {
      "job.create": (r: CreateJobRequest) => this.create(r),
      "job.kill": (r: KillJobRequest) => this.kill(r),
      "job.add": (r: AddInstancesRequest) => this.add(r),
      "quota.get": (r: { role: string }) => quotaReport(this.s.state, need(r?.role, "role")),
      "quota.set": (r: SetQuotaRequest) => this.setQuota(r),
      "job.status": (r: { job: string }) => {
        const st = jobStatus(this.s.state, need(r?.job, "job"), this.s.placement.pendingReasons);
        if (!st) throw new RequestError(`job ${r.job} does not exist`);
        return st;
      },
      "job.list": () => jobList(this.s.state),
      "task.history": (r: { taskId: string }) => {
        const h = taskHistory(this.s.state, need(r?.taskId, "taskId"));
        if (!h) throw new RequestError(`task ${r.taskId} does not exist`);
        return withReasons(h, this.s.eventLog);
      },
      "task.why": async (r: { taskId: string }) => {
        const p = this.s.placement;
        const w = await whyTask(this.s.state, need(r?.taskId, "taskId"), {
          agents: p.activeAgents(),
          mode: this.s.policy.placementMode,
          reasonFor: (id) => p.reasonFor(id),
          log: this.s.eventLog,
        });
        if (!w) throw new RequestError(`task ${r.taskId} does not exist`);
        return w;
      },
      "cluster.info": () => ({
        schedulerId: this.s.schedulerId,
        epoch: this.s.epoch,
        seq: this.s.state.seq,
        events: this.s.state.eventCount,
        agents: [...this.s.state.agents.values()].map((a) => ({
          agentId: a.agentId,
          host: a.host,
          state: a.state,
          attributes: a.attributes,
          tasks: a.tasks.size,
          lastHeartbeat: this.s.agents.lastHeartbeat.get(a.agentId) ?? null,
        })),
        anomalies: this.s.state.anomalies,
        anomalyCount: this.s.state.anomalyCount,
      }),
    };
  }

  serve(): Array<() => void> {
    return [
      this.s.bus.serve(`${API_PREFIX}>`, async (data, subject): Promise<Reply<unknown>> => {
        const name = subject.slice(API_PREFIX.length);
        const op = Object.hasOwn(this.ops, name) ? this.ops[name] : undefined;
        if (!op) return { ok: false, error: `unknown request ${subject}; known: ${Object.keys(this.ops).join(", ")}` };
        try {
          checked(name as RequestOp, data ?? {});
          return { ok: true, value: await op(data ?? {}) };
        } catch (err) {
          if (err instanceof RequestError || err instanceof SpecError) return { ok: false, error: err.message };
          if (err instanceof RecordTooLargeError) return { ok: false, error: `the request is too large to log: ${err.message}` };
          if (
            err instanceof LogUnavailableError ||
            err instanceof FencedError ||
            (err as Error).message === "this scheduler is not the leader"
          ) {
            return { ok: false, error: `not committed, try again: ${(err as Error).message}` };
          }
          this.s.log.error({ err, subject }, "request failed");
          return { ok: false, error: `internal error: ${(err as Error).message}` };
        }
      }),
    ];
  }

  /** Run `fn` after every earlier serialised write has been committed (or refused). */
  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writes.then(fn, fn);
    this.writes = run.catch(() => undefined);
    return run;
  }

  async create(req: CreateJobRequest): Promise<{ job: string; taskIds: string[]; seq: number }> {
    checked("job.create", req);
    return this.serialised(() => this.doCreate(req));
  }

  private async doCreate(req: CreateJobRequest): Promise<{ job: string; taskIds: string[]; seq: number }> {
    const s = this.s;
    const config = validateJobSpec(req?.spec, { allowedEnvironments: s.allowedEnvironments });
    const key = jobKeyString(config);
    const existing = s.state.jobs.get(key);
    if (existing) {
      const active = [...existing.instances.values()].filter((id) => !TERMINAL_STATES.has(s.state.tasks.get(id)!.state));
      if (active.length > 0) {
        throw new RequestError(
          `job ${key} already exists with ${active.length} active task(s); rule: one job per role/environment/name — kill it first`,
        );
      }
    }
    if (consumesQuota(config.task)) {
      const short = quotaCheck(s.state, config.role, amountsOf(config.task, config.instances));
      if (short) throw new RequestError(`cannot create job ${key} (${config.instances} × ${per(config.task.resources)}): ${short}`);
    }
    const user = userOf(req);
    const corr = s.corr("create");
    const configVersion = (existing?.configVersion ?? 0) + 1;
    const events = [s.event("JobCreated", { job: config, configVersion }, `job ${key} created by ${user}`, corr)];
    const taskIds: string[] = [];
    for (let i = 0; i < config.instances; i++) {
      const taskId = taskIdFor(key, i, s.ids);
      taskIds.push(taskId);
      events.push(
        s.event(
          "TaskCreated",
          { taskId, job: key, instance: i, configVersion, ancestorId: null, failureCount: 0, state: "PENDING" },
          `instance ${i} of new job ${key} (created by ${user})`,
          corr,
        ),
      );
    }
    const seq = await s.commit(events);
    return { job: key, taskIds, seq };
  }

  async kill(req: KillJobRequest): Promise<{ job: string; instances: number[]; seq: number }> {
    checked("job.kill", req);
    const s = this.s;
    const key = jobKeyString(parseJobKey(need(req?.job, "job")));
    const job = s.state.jobs.get(key);
    if (!job) throw new RequestError(`job ${key} does not exist`);
    const known = [...job.instances.keys()].sort((a, b) => a - b);
    let instances: number[];
    if (req.instances === undefined || req.instances === null) {
      instances = known;
    } else {
      if (!Array.isArray(req.instances) || !req.instances.every((i) => Number.isInteger(i) && i >= 0)) {
        throw new RequestError("instances must be a list of instance ids (integers ≥ 0)");
      }
      const missing = req.instances.filter((i) => !job.instances.has(i));
      if (missing.length)
        throw new RequestError(`job ${key} has no instance ${missing.join(", ")}; it has instances 0-${known.length - 1}`);
      instances = [...new Set(req.instances)].sort((a, b) => a - b);
    }
    const user = userOf(req);
    const seq = await s.commit([
      s.event(
        "JobKillRequested",
        { job: key, instances: req.instances === undefined || req.instances === null ? null : instances, user },
        `kill of ${req.instances ? `instances ${instances.join(",")} of ` : ""}job ${key} requested by ${user}`,
        s.corr("kill"),
      ),
    ]);
    return { job: key, instances, seq };
  }

  async add(req: AddInstancesRequest): Promise<{ job: string; instances: number[]; taskIds: string[]; seq: number }> {
    checked("job.add", req);
    return this.serialised(() => this.doAdd(req));
  }

  /** Aurora's addInstances: new instances config.instances … +count−1, with the job's current config. */
  private async doAdd(req: AddInstancesRequest): Promise<{ job: string; instances: number[]; taskIds: string[]; seq: number }> {
    const s = this.s;
    const key = jobKeyOf(req?.job);
    const count = req.count;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > MAX_INSTANCES) {
      throw new RequestError(`request field "count" must be an integer from 1 to ${MAX_INSTANCES} (got ${show(count)})`);
    }
    const job = s.state.jobs.get(key);
    if (!job) throw new RequestError(`job ${key} does not exist; rule: instances can only be added to an existing job — create it first`);
    const cfg = job.configs[job.configVersion];
    if (!cfg)
      throw new RequestError(`job ${key} has no config version ${job.configVersion}; rule: added instances run the job's current config`);
    const active = [...job.instances.values()].filter((id) => !TERMINAL_STATES.has(s.state.tasks.get(id)!.state)).length;
    if (active === 0) {
      throw new RequestError(
        `job ${key} has no active tasks; rule: instances can only be added to a running job — create it again instead`,
      );
    }
    const from = job.config.instances;
    if (from + count > MAX_INSTANCES) {
      throw new RequestError(
        `job ${key} has ${from} instances; adding ${count} would make ${from + count}; rule: at most ${MAX_INSTANCES} instances per job`,
      );
    }
    if (consumesQuota(cfg)) {
      const short = quotaCheck(s.state, job.config.role, amountsOf(cfg, count));
      if (short) throw new RequestError(`cannot add ${count} instance(s) to job ${key} (${count} × ${per(cfg.resources)}): ${short}`);
    }
    const user = userOf(req);
    const corr = s.corr("add");
    const instances: number[] = [];
    const taskIds: string[] = [];
    const events = [
      s.event(
        "JobInstancesAdded",
        { job: key, count, user },
        `${count} instance(s) added to job ${key} by ${user}: ${count === 1 ? `instance ${from}` : `instances ${from}-${from + count - 1}`}`,
        corr,
      ),
    ];
    for (let i = from; i < from + count; i++) {
      const taskId = taskIdFor(key, i, s.ids);
      instances.push(i);
      taskIds.push(taskId);
      events.push(
        s.event(
          "TaskCreated",
          { taskId, job: key, instance: i, configVersion: job.configVersion, ancestorId: null, failureCount: 0, state: "PENDING" },
          `instance ${i} added to job ${key} (added by ${user})`,
          corr,
        ),
      );
    }
    const seq = await s.commit(events);
    return { job: key, instances, taskIds, seq };
  }

  async setQuota(req: SetQuotaRequest): Promise<QuotaReport> {
    checked("quota.set", req);
    return this.serialised(() => this.doSetQuota(req));
  }

  /** Aurora's setQuota (admin): a role's production quota, never below what it uses now. */
  private async doSetQuota(req: SetQuotaRequest): Promise<QuotaReport> {
    const s = this.s;
    const role = req.role;
    const to: Amounts = { cpus: req.cpus, ramMb: req.ramMb, diskMb: req.diskMb };
    const below = quotaBelowUsage(s.state, role, to);
    if (below) throw new RequestError(below);
    const user = userOf(req);
    const was = s.state.quotas.has(role) ? amounts(quotaOf(s.state, role)) : "none";
    await s.commit([
      s.event("QuotaSet", { role, ...to, user }, `quota of role ${role} set by ${user}: ${amounts(to)} (was ${was})`, s.corr("quota")),
    ]);
    return quotaReport(s.state, role);
  }
}

/** Throws a RequestError naming every field that breaks the op's request schema. */
function checked(op: RequestOp, req: unknown): void {
  const problems = CHECKS[op](req);
  if (problems.length > 0) {
    throw new RequestError(
      `invalid ${op} request (${problems.length === 1 ? "1 problem" : `${problems.length} problems`}): ${formatProblems(problems)}`,
    );
  }
}

function amounts(a: Amounts): string {
  return `cpus ${a.cpus}, ramMb ${a.ramMb}, diskMb ${a.diskMb}`;
}

/** One task's resources, for messages. */
function per(r: Amounts): string {
  return amounts(r);
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "number") return String(v);
  return JSON.stringify(v) ?? String(v);
}

function userOf(req: { user?: unknown }): string {
  return typeof req.user === "string" && req.user ? req.user : "unknown";
}

function jobKeyOf(v: unknown): JobKeyString {
  const s = need(v, "job");
  try {
    return jobKeyString(parseJobKey(s));
  } catch {
    throw new RequestError(`request field "job" must have the form ROLE/ENV/NAME (got ${show(s)})`);
  }
}

function need(v: unknown, name: string): string {
  if (typeof v !== "string" || v.length === 0) throw new RequestError(`request field "${name}" must be a non-empty string`);
  return v;
}
