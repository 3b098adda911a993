// JobIntake: the API's writes (job.create, job.kill, job.add, quota.set, and the update writes of
// updateIntake.ts and the cron writes of cronIntake.ts). Each is validated against
// the folded state, committed, and only then answered; a refused request changes nothing and says
// what was wrong and which rule it broke.
//
// An actor whose handler holds the mailbox until the write is committed: the check and the commit
// of one write finish before the next check, or two requests could each fit the quota alone and
// overrun it together (or create the same job twice).
//
// One exception, for throughput: a job.create that no write in flight can change the verdict of
// (another job's key, another request key, no quota to charge) is committed in the background
// while the next write is checked. Waiting for each commit before the next check held the intake
// to one create per commit latency (about 1,500/s on a loaded machine, short of its 2,000/s goal).
// Every other write first waits until those commits are folded (settleCommits), so it is checked
// against a state that holds them; a create that would collide with one waits too, and is planned
// again.
//
// Exactly once: a write may carry an idempotency `key`. Its outcome is committed with it, as a
// RequestDecided event in the same record as what it did (or alone, when it was refused for a
// reason that will not go away by itself), and a key the state already holds is answered with that
// first outcome and changes nothing. Because writes are handled one at a time and the state is
// folded before the next one, two copies of a keyed request (a client's retry, the intake's
// redelivery after a failover) can never both act. A refusal that says "try again" (UNAVAILABLE:
// nothing was committed) is not recorded, so trying again can still succeed.

import { ApiError, isErrorCode } from "../api/errors.js";
import type { AnyEnvelope } from "../domain/events.js";
import { jobKeyString, parseJobKey, type JobKeyString, type TaskId } from "../domain/types.js";
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
import type { ClusterState, RequestOutcome } from "../replay/state.js";
import { validateJobSpec } from "../spec/jobSpec.js";
import { MAX_INSTANCES } from "../spec/schema.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { Actor } from "./actor.js";
import { asApiError, type Caller, checked, ownRole, RequestError, type WriteOp } from "./api.js";
import { taskIdFor } from "./clock.js";
import type { TermContext } from "./context.js";
import { type CronOp, planCronWrite } from "./cronIntake.js";
import { type MaintenanceOp, planMaintenance } from "./maintenanceIntake.js";
import { planControl, planPulse, planRestart, planUpdateStart, type UpdateOp, type UpdateWrite } from "./updateIntake.js";

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

export type JobIntakeMsg = {
  type: WriteOp;
  req: unknown;
  caller: Caller;
  /** "<role>/<key>" ("admin/<key>" for the admin scope), or null for a write without a key. */
  key: string | null;
  reply: (r: unknown) => void;
  fail: (err: Error) => void;
};

/** A write from inside the scheduler (tests, the simulator): no role to stay within. */
const TRUSTED: Caller = { role: null };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "ids" | "allowedEnvironments" | "commit" | "event" | "corr" | "metrics">;

/** Where cron writes are decided and committed: the Cron actor's mailbox (actors/cron.ts), or at once. */
interface CronWriter {
  write<T>(run: () => Promise<T>): Promise<T>;
}
const AT_ONCE: CronWriter = { write: (run) => run() };

/** A create decided against the folded state: what it commits and answers. */
interface CreatePlan {
  job: JobKeyString;
  taskIds: TaskId[];
  events: AnyEnvelope[];
  value: { job: JobKeyString; taskIds: TaskId[] };
  consumesQuota: boolean;
}

export class JobIntake extends Actor<JobIntakeMsg> {
  constructor(
    private readonly s: Deps,
    private readonly cron: CronWriter = AT_ONCE,
    /** Where host maintenance writes are decided and committed: the Maintenance actor's mailbox (actors/maintenance.ts). */
    private readonly maintenance: CronWriter = AT_ONCE,
  ) {
    super("jobIntake", s.log, () => s.clock.now());
  }

  /** Ask: a write, answered once committed (or refused). */
  /**
   * Ask: a write, answered once committed (or refused). `key` is the client's idempotency key
   * (without the role), checked by whoever took the request; `req` holds no key.
   */
  write(op: WriteOp, req: unknown, caller: Caller = TRUSTED, clientKey: string | null = null): Promise<unknown> {
    const key = clientKey === null ? null : requestKey(caller, clientKey);
    if (key !== null) this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    const done = () => {
      if (key === null) return;
      const n = (this.inFlight.get(key) ?? 1) - 1;
      if (n === 0) this.inFlight.delete(key);
      else this.inFlight.set(key, n);
    };
    const p = this.ask((reply, fail) => ({ type: op, req, caller, key, reply, fail }));
    p.then(done, done);
    return p;
  }

  /** Record `err` as the outcome of a keyed write that never reached its checks (the intake could not read it). */
  async refuse(op: WriteOp, caller: Caller, clientKey: string, err: ApiError): Promise<void> {
    await this.write(op, new Refused(err), caller, clientKey);
  }

  /** Keyed writes in the mailbox or being handled, by "<role>/<key>": request.get says "pending". */
  private readonly inFlight = new Map<string, number>();

  /** True while a write with this key waits in the mailbox or is being handled. */
  isPending(key: string): boolean {
    return this.inFlight.has(key);
  }

  create(req: CreateJobRequest): Promise<{ job: JobKeyString; taskIds: TaskId[]; seq: number }> {
    return this.write("job.create", req) as Promise<{ job: JobKeyString; taskIds: TaskId[]; seq: number }>;
  }

  kill(req: KillJobRequest): Promise<{ job: JobKeyString; instances: number[]; seq: number }> {
    return this.write("job.kill", req) as Promise<{ job: JobKeyString; instances: number[]; seq: number }>;
  }

  add(req: AddInstancesRequest): Promise<{ job: JobKeyString; instances: number[]; taskIds: TaskId[]; seq: number }> {
    return this.write("job.add", req) as Promise<{ job: JobKeyString; instances: number[]; taskIds: TaskId[]; seq: number }>;
  }

  setQuota(req: SetQuotaRequest): Promise<QuotaReport> {
    return this.write("quota.set", req) as Promise<QuotaReport>;
  }

  protected override onStop(dropped: JobIntakeMsg[]): void {
    for (const m of dropped) m.fail(new Error("this scheduler is no longer the leader"));
  }

  /** Creates committing in the background (decided, not yet folded), their job keys and request keys. */
  private readonly committing = new Set<Promise<unknown>>();
  private readonly committingJobs = new Set<string>();
  private readonly committingKeys = new Set<string>();
  /** Request keys whose background commit failed: their next delivery is handled the careful way. */
  private readonly serialNext = new Set<string>();

  /** Wait until every background commit has settled (and so, when it landed, is folded). */
  private async settleCommits(): Promise<void> {
    while (this.committing.size > 0) await Promise.allSettled([...this.committing]);
  }

  /** The keyed request being handled: "<role>/<key>", or null when it has no key. */
  private key: string | null = null;
  private op: WriteOp = "job.create";

  protected async receive(m: JobIntakeMsg): Promise<void> {
    const key = m.key;
    const rest = m.req;
    // The same key committing in the background: its outcome must be folded before this copy looks.
    if (key !== null && this.committingKeys.has(key)) await this.settleCommits();
    this.key = key;
    this.op = m.type;
    try {
      if (key !== null) {
        const first = this.s.state.requests.get(key);
        if (first) return m.reply(this.replay(key, first));
      }
      if (rest instanceof Refused) throw rest.error;
      checked(m.type, rest);
      if (m.caller.role !== null) ownRole(m.type, rest as Record<string, unknown>, m.caller.role);
      const req = rest as never;
      if (m.type === "job.create") {
        const careful = key !== null && this.serialNext.delete(key);
        let plan = this.planCreate(req, m.caller);
        if (this.committing.size > 0 && (careful || plan.consumesQuota || this.committingJobs.has(plan.job))) {
          await this.settleCommits();
          plan = this.planCreate(req, m.caller);
        }
        if (careful) return m.reply({ job: plan.job, taskIds: plan.taskIds, seq: await this.commit(plan.events, plan.value) });
        return this.commitInBackground(plan, m);
      }
      await this.settleCommits();
      switch (m.type) {
        case "job.kill":
          return m.reply(await this.doKill(req));
        case "job.add":
          return m.reply(await this.doAdd(req));
        case "quota.set":
          return m.reply(await this.doSetQuota(req));
        case "cron.schedule":
        case "cron.deschedule":
        case "cron.start": {
          const op = m.type;
          return m.reply(await this.cron.write(() => this.doCron(op, req, m.caller)));
        }
        case "host.maintenance.start":
        case "host.maintenance.drain":
        case "host.maintenance.end":
        case "host.maintenance.schedule":
        case "host.maintenance.cancel": {
          const op = m.type;
          return m.reply(await this.maintenance.write(() => this.doMaintenance(op, req)));
        }
        default:
          return m.reply(await this.doUpdate(m.type, req));
      }
    } catch (err) {
      const refusal = key === null ? null : asApiError(err as Error);
      if (key !== null && refusal && refusal.code !== "UNAVAILABLE" && !this.s.state.requests.has(key)) {
        try {
          await this.recordRefusal(key, m.type, refusal);
        } catch (e) {
          // Unrecorded, the refusal is no outcome yet: "try again" (the intake delivers it again).
          this.s.log.warn({ err: e, key }, "could not record a refusal");
          return m.fail(new ApiError("UNAVAILABLE", `not committed, try again: ${(e as Error).message}`));
        }
      }
      m.fail(err as Error);
    } finally {
      this.key = null;
    }
  }

  /** A keyed request seen before: its first outcome, whatever this copy asks. */
  private replay(key: string, first: RequestOutcome): unknown {
    if (first.outcome === "rejected") {
      const e = first.error ?? { code: "INVALID_REQUEST", message: "rejected" };
      throw new ApiError(isErrorCode(e.code) ? e.code : "INVALID_REQUEST", `${e.message} (the first outcome of request ${key})`, e.field);
    }
    return doneValue(this.s.state, first);
  }

  private async recordRefusal(key: string, op: WriteOp, err: ApiError): Promise<void> {
    const s = this.s;
    await s.commit([
      s.event(
        "RequestDecided",
        { key, op, outcome: "rejected", error: err.body() },
        `request ${key} (${op}) refused: ${err.code}`,
        corrOf(key),
      ),
    ]);
  }

  /** The correlation id of what this write appends: the request's key when it has one. */
  private corr(prefix: string): string {
    return this.key === null ? this.s.corr(prefix) : corrOf(this.key);
  }

  /** Commit a write's events, with its outcome when it is keyed (same record: both or neither). */
  private commit(events: AnyEnvelope[], value: object): Promise<number> {
    const s = this.s;
    if (this.key !== null) {
      events.push(
        s.event(
          "RequestDecided",
          { key: this.key, op: this.op, outcome: "done", value },
          `request ${this.key} (${this.op}) done`,
          corrOf(this.key),
        ),
      );
    }
    return s.commit(events);
  }

  /** A create's verdict against the state as folded now: its events, or a refusal (thrown). */
  private planCreate(req: CreateJobRequest, caller: Caller): CreatePlan {
    const s = this.s;
    const config = validateJobSpec(req?.spec, { allowedEnvironments: s.allowedEnvironments });
    const key = jobKeyString(config);
    if (config.cronSchedule !== undefined) {
      // A cron job runs on its schedule, not at once (Aurora: `cron schedule`, then `cron start` to run it now).
      throw new RequestError(
        "spec.cronSchedule: rule: a cron job is scheduled with `roost cron schedule` (and run now with `roost cron start`); job.create starts instances at once",
        "INVALID_REQUEST",
        "spec.cronSchedule",
      );
    }
    if (s.state.cronJobs.has(key)) {
      throw new RequestError(
        `job ${key} is a scheduled cron job; rule: one job per role/environment/name — deschedule it first (\`roost cron deschedule ${key}\`)`,
        "CONFLICT",
      );
    }
    if (caller.role !== null && config.role !== caller.role) {
      throw new RequestError(
        `spec.role: names role "${config.role}"; rule: a request on role "${caller.role}"'s subject acts only on role "${caller.role}"`,
        "PERMISSION_DENIED",
        "spec.role",
      );
    }
    const existing = s.state.jobs.get(key);
    const updating = s.state.activeUpdate(key);
    if (updating)
      throw new RequestError(
        `job ${key} has an active update, ${updating.updateId} (${updating.status}); rule: a job is created again only once its update is over — abort it first`,
        "CONFLICT",
      );
    if (existing) {
      const active = [...existing.instances.values()].filter((id) => !TERMINAL_STATES.has(s.state.tasks.get(id)!.state));
      if (active.length > 0) {
        throw new RequestError(
          `job ${key} already exists with ${active.length} active task(s); rule: one job per role/environment/name — kill it first`,
          "CONFLICT",
        );
      }
    }
    const quota = consumesQuota(config.task);
    if (quota) {
      const short = quotaCheck(s.state, config.role, amountsOf(config.task, config.instances));
      if (short)
        throw new RequestError(
          `cannot create job ${key} (${config.instances} × ${per(config.task.resources)}): ${short}`,
          "QUOTA_EXCEEDED",
        );
    }
    const user = userOf(req);
    const corr = this.corr("create");
    const configVersion = (existing?.configVersion ?? 0) + 1;
    const events = [s.event("JobCreated", { job: config, configVersion }, `job ${key} created by ${user}`, corr)];
    const taskIds: TaskId[] = [];
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
    return { job: key, taskIds, events, value: { job: key, taskIds }, consumesQuota: quota };
  }

  /**
   * Commit a planned create without holding the mailbox; it is answered when committed. A commit
   * that fails is "try again" (nothing landed), and a keyed request's next delivery is then
   * handled the careful way, where a refusal that will not go away is recorded as its outcome.
   */
  private commitInBackground(plan: CreatePlan, m: JobIntakeMsg): void {
    const key = m.key;
    const p = this.commit(plan.events, plan.value);
    this.committing.add(p);
    this.committingJobs.add(plan.job);
    if (key !== null) this.committingKeys.add(key);
    p.then(
      (seq) => m.reply({ job: plan.job, taskIds: plan.taskIds, seq }),
      (err: Error) => {
        const e = asApiError(err);
        // Without a key there is no outcome to record: the refusal as it is (TOO_LARGE stays TOO_LARGE).
        if (key === null) return m.fail(e ?? err);
        this.serialNext.add(key);
        m.fail(e?.code === "UNAVAILABLE" ? e : new ApiError("UNAVAILABLE", `not committed, try again: ${err.message}`));
      },
    ).finally(() => {
      this.committing.delete(p);
      this.committingJobs.delete(plan.job);
      if (key !== null) this.committingKeys.delete(key);
    });
  }

  private async doKill(req: KillJobRequest): Promise<{ job: JobKeyString; instances: number[]; seq: number }> {
    const s = this.s;
    const key = jobKeyString(parseJobKey(need(req?.job, "job")));
    const job = s.state.jobs.get(key);
    if (!job) throw new RequestError(`job ${key} does not exist`, "NOT_FOUND", "job");
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
        throw new RequestError(
          `job ${key} has no instance ${missing.join(", ")}; it has instances 0-${known.length - 1}`,
          "NOT_FOUND",
          "instances",
        );
      instances = [...new Set(req.instances)].sort((a, b) => a - b);
    }
    const user = userOf(req);
    const corr = this.corr("kill");
    const events = [
      s.event(
        "JobKillRequested",
        { job: key, instances: req.instances === undefined || req.instances === null ? null : instances, user },
        `kill of ${req.instances ? `instances ${instances.join(",")} of ` : ""}job ${key} requested by ${user}`,
        corr,
      ),
    ];
    // Killing the whole job ends its update: nothing is left to roll (Aurora aborts it too).
    const active = req.instances === undefined || req.instances === null ? s.state.activeUpdate(key) : undefined;
    if (active)
      events.push(
        s.event(
          "JobUpdateStateChanged",
          { updateId: active.updateId, to: "ABORTED", user, message: "the job was killed" },
          `update ${active.updateId} of job ${key} aborted: the job was killed by ${user}`,
          corr,
        ),
      );
    const seq = await this.commit(events, { job: key, instances });
    return { job: key, instances, seq };
  }

  /** The cron writes (actors/cronIntake.ts), decided and committed in the Cron actor's mailbox. */
  private async doCron(op: CronOp, req: unknown, caller: Caller): Promise<Record<string, unknown>> {
    const w = planCronWrite(this.s, op, req, caller, this.corr("cron"));
    const seq = await this.commit(w.events, w.value);
    w.committed?.();
    return { ...w.value, seq };
  }

  /**
   * The host maintenance writes (actors/maintenanceIntake.ts), decided and committed in the
   * Maintenance actor's mailbox. A write that skips every host (the same command twice) appends
   * nothing, unless it is keyed: then its outcome alone is recorded.
   */
  private async doMaintenance(op: MaintenanceOp, req: unknown): Promise<Record<string, unknown>> {
    const w = planMaintenance(this.s, op, req, this.corr("maint"));
    if (w.events.length === 0 && this.key === null) return { ...w.value, seq: null };
    const seq = await this.commit(w.events, w.value);
    return { ...w.value, seq };
  }

  /** The update writes (actors/updateIntake.ts): decided against the state, committed, answered with the record's sequence. */
  private async doUpdate(op: UpdateOp, req: { job?: unknown }): Promise<Record<string, unknown>> {
    const s = this.s;
    const key = jobKeyOf(req?.job);
    const r = req as never;
    let w: UpdateWrite;
    switch (op) {
      case "update.start":
        w = planUpdateStart(s, key, r, this.corr("update"));
        break;
      case "job.restart":
        w = planRestart(s, key, r, this.corr("restart"));
        break;
      case "update.pulse":
        w = planPulse(s, key, r, this.corr("pulse"));
        break;
      default:
        w = planControl(s, op, key, r, this.corr("update"));
    }
    const seq = await this.commit(w.events, w.value);
    return { ...w.value, seq };
  }

  /** Aurora's addInstances: new instances config.instances … +count−1, with the job's current config. */
  private async doAdd(req: AddInstancesRequest): Promise<{ job: JobKeyString; instances: number[]; taskIds: TaskId[]; seq: number }> {
    const s = this.s;
    const key = jobKeyOf(req?.job);
    const count = req.count;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > MAX_INSTANCES) {
      throw new RequestError(`request field "count" must be an integer from 1 to ${MAX_INSTANCES} (got ${show(count)})`);
    }
    const job = s.state.jobs.get(key);
    if (!job)
      throw new RequestError(
        `job ${key} does not exist; rule: instances can only be added to an existing job — create it first`,
        "NOT_FOUND",
        "job",
      );
    const cfg = job.configs[job.configVersion];
    if (!cfg)
      throw new RequestError(`job ${key} has no config version ${job.configVersion}; rule: added instances run the job's current config`);
    const active = [...job.instances.values()].filter((id) => !TERMINAL_STATES.has(s.state.tasks.get(id)!.state)).length;
    if (active === 0) {
      throw new RequestError(
        `job ${key} has no active tasks; rule: instances can only be added to a running job — create it again instead`,
        "CONFLICT",
      );
    }
    const updating = s.state.activeUpdate(key);
    if (updating)
      throw new RequestError(
        `job ${key} has an active update, ${updating.updateId} (${updating.status}); rule: while an update runs it decides the instances — add them in its spec, or wait for it`,
        "CONFLICT",
      );
    const from = job.config.instances;
    if (from + count > MAX_INSTANCES) {
      throw new RequestError(
        `job ${key} has ${from} instances; adding ${count} would make ${from + count}; rule: at most ${MAX_INSTANCES} instances per job`,
        "INVALID_REQUEST",
        "count",
      );
    }
    if (consumesQuota(cfg)) {
      const short = quotaCheck(s.state, job.config.role, amountsOf(cfg, count));
      if (short)
        throw new RequestError(
          `cannot add ${count} instance(s) to job ${key} (${count} × ${per(cfg.resources)}): ${short}`,
          "QUOTA_EXCEEDED",
        );
    }
    const user = userOf(req);
    const corr = this.corr("add");
    const instances: number[] = [];
    const taskIds: TaskId[] = [];
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
    const seq = await this.commit(events, { job: key, instances, taskIds });
    return { job: key, instances, taskIds, seq };
  }

  /** Aurora's setQuota (admin): a role's production quota, never below what it uses now. */
  private async doSetQuota(req: SetQuotaRequest): Promise<QuotaReport> {
    const s = this.s;
    const role = req.role;
    const to: Amounts = { cpus: req.cpus, ramMb: req.ramMb, diskMb: req.diskMb };
    const below = quotaBelowUsage(s.state, role, to);
    if (below) throw new RequestError(below, "CONFLICT");
    const user = userOf(req);
    const was = s.state.quotas.has(role) ? amounts(quotaOf(s.state, role)) : "none";
    await this.commit(
      [s.event("QuotaSet", { role, ...to, user }, `quota of role ${role} set by ${user}: ${amounts(to)} (was ${was})`, this.corr("quota"))],
      { role },
    );
    return quotaReport(s.state, role);
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

function corrOf(key: string): string {
  return `req:${key}`;
}

/** A request the intake could not read: JobIntake records `error` as its key's outcome. */
class Refused {
  constructor(readonly error: ApiError) {}
}

/** A request key as the log holds it: "<role>/<key>", "admin/<key>" for the admin scope (role null). */
export function requestKey(caller: Caller, clientKey: string): string {
  return `${caller.role ?? "admin"}/${clientKey}`;
}

/**
 * The reply value of a done request, read back: its logged value with its record's sequence, or
 * for quota.set the role's quota report now (its reply is the report, which the log does not hold).
 */
export function doneValue(state: ClusterState, first: RequestOutcome): unknown {
  const v = first.value;
  if (v === null || typeof v !== "object") return v;
  const role = (v as { role?: unknown }).role;
  if (first.op === "quota.set" && typeof role === "string") return quotaReport(state, role);
  return { ...v, seq: first.seq };
}
