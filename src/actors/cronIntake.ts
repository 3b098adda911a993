// The API's cron writes (cron.schedule, cron.deschedule, cron.start), decided against the folded
// state. JobIntake validates each request like any write (schema, role, keyed idempotency) and
// runs the decision and its commit inside the Cron actor's mailbox (Cron.write), so a cron write
// is always decided on a state that holds every trigger committed before it: a manual start and
// a scheduled trigger cannot both create a run, nor a trigger land after a deschedule.
//
// Each returns the events to commit and the reply's value (its `seq` is added once committed); a
// refusal throws a RequestError naming the field and the rule, and commits nothing.
//
// Aurora's rules kept: a cron job's spec is a job spec with cronSchedule (the spec's own checks
// refuse RUN_OVERLAP and a cron service); scheduling a key again replaces the template and keeps
// the schedule's history; descheduling stops the triggers but leaves a run under way alone (kill
// it with `roost job kill`); `cron start` runs it now, under the job's collision policy. Added: a
// key held by a running job that is not a cron run is refused (CONFLICT), rather than have the
// next trigger kill or skip around it.

import type { AnyEnvelope } from "../domain/events.js";
import { isoTime } from "../domain/time.js";
import { jobKeyString, parseJobKey, type JobKeyString } from "../domain/types.js";
import { DEFAULT_CRON_TIMEZONE, nextFire } from "../cron/expression.js";
import { activeTasks } from "../cron/queries.js";
import { amountsOf, consumesQuota, quotaCheck } from "../quota/quota.js";
import { validateJobSpec } from "../spec/jobSpec.js";
import { RequestError, type Caller } from "./api.js";
import type { TermContext } from "./context.js";
import { planTrigger, recordTrigger } from "./cron.js";

export type CronOp = "cron.schedule" | "cron.deschedule" | "cron.start";

type Ctx = Pick<TermContext, "state" | "clock" | "ids" | "allowedEnvironments" | "event" | "corr" | "metrics">;

/** What a decided cron write commits, what it answers (without `seq`), and what to do once committed. */
export interface CronWrite {
  events: AnyEnvelope[];
  value: Record<string, unknown>;
  committed?: () => void;
}

interface ScheduleRequest {
  spec: unknown;
  user?: string;
}
interface JobRequest {
  job: string;
  user?: string;
}

/** A cron write's events and reply value; `corr` ties them to the request. */
export function planCronWrite(s: Ctx, op: CronOp, req: unknown, caller: Caller, corr: string): CronWrite {
  switch (op) {
    case "cron.schedule":
      return planSchedule(s, req as ScheduleRequest, caller, corr);
    case "cron.deschedule":
      return planDeschedule(s, req as JobRequest, corr);
    case "cron.start":
      return planStart(s, req as JobRequest, corr);
  }
}

function planSchedule(s: Ctx, req: ScheduleRequest, caller: Caller, corr: string): CronWrite {
  const config = validateJobSpec(req?.spec, { allowedEnvironments: s.allowedEnvironments });
  const key = jobKeyString(config);
  if (config.cronSchedule === undefined) {
    throw new RequestError(
      "spec.cronSchedule: is missing; rule: `roost cron schedule` takes a cron job's spec, with a cronSchedule (other jobs: `roost job create`)",
      "INVALID_REQUEST",
      "spec.cronSchedule",
    );
  }
  if (caller.role !== null && config.role !== caller.role) {
    throw new RequestError(
      `spec.role: names role "${config.role}"; rule: a request on role "${caller.role}"'s subject acts only on role "${caller.role}"`,
      "PERMISSION_DENIED",
      "spec.role",
    );
  }
  const was = s.state.cronJobs.get(key);
  const job = s.state.jobs.get(key);
  const active = activeTasks(s.state, key);
  if (!was && job && job.config.cronSchedule === undefined && active > 0) {
    throw new RequestError(
      `job ${key} is running as a job that is not a cron job (${active} active task(s)); rule: one job per role/environment/name — kill it first`,
      "CONFLICT",
    );
  }
  // Charged as a job.create is, when no run of it is going (a run under way is counted already).
  if (active === 0 && consumesQuota(config.task)) {
    const short = quotaCheck(s.state, config.role, amountsOf(config.task, config.instances));
    if (short) throw new RequestError(`cannot schedule cron job ${key} (${config.instances} instance(s)): ${short}`, "QUOTA_EXCEEDED");
  }
  const user = userOf(req);
  const tz = config.cronTimezone ?? DEFAULT_CRON_TIMEZONE;
  const next = nextFire(config.cronSchedule, tz, s.clock.now());
  const how = `"${config.cronSchedule}"${tz === DEFAULT_CRON_TIMEZONE ? "" : ` (${tz})`}, ${config.cronCollisionPolicy ?? "KILL_EXISTING"}`;
  const events: AnyEnvelope[] = [
    s.event(
      "CronJobScheduled",
      { job: config, user },
      `cron job ${key} ${was ? "scheduled again" : "scheduled"} by ${user}: ${how}; next run ${next === null ? "never" : isoTime(next)}`,
      corr,
    ),
  ];
  return { events, value: { job: key, nextFire: next } };
}

function planDeschedule(s: Ctx, req: JobRequest, corr: string): CronWrite {
  const key = cronKeyOf(s, req.job);
  const user = userOf(req);
  const active = activeTasks(s.state, key);
  const events: AnyEnvelope[] = [
    s.event(
      "CronJobDescheduled",
      { job: key, user },
      `cron job ${key} descheduled by ${user}${active > 0 ? `; its run under way (${active} active task(s)) goes on: \`roost job kill ${key}\` ends it` : ""}`,
      corr,
    ),
  ];
  return { events, value: { job: key } };
}

function planStart(s: Ctx, req: JobRequest, corr: string): CronWrite {
  const key = cronKeyOf(s, req.job);
  const rec = s.state.cronJobs.get(key)!;
  const user = userOf(req);
  const now = s.clock.now();
  const plan = planTrigger(
    s,
    rec,
    { minuteMs: now, missed: 0, reason: `cron job ${key} started by ${user} (roost cron start)`, user },
    corr,
  );
  return {
    events: plan.events,
    value: { job: key, outcome: plan.outcome, minuteMs: now, taskIds: plan.taskIds },
    committed: () => recordTrigger(s, plan, 0),
  };
}

/** The key of a scheduled cron job, or a refusal naming the field. */
function cronKeyOf(s: Ctx, job: string): JobKeyString {
  let key: JobKeyString;
  try {
    key = jobKeyString(parseJobKey(job));
  } catch {
    throw new RequestError(`job: must have the form ROLE/ENV/NAME (got ${JSON.stringify(job)})`, "INVALID_REQUEST", "job");
  }
  if (!s.state.cronJobs.has(key)) {
    const also = s.state.jobs.has(key) ? " (a job by that key exists, but it is not scheduled as a cron job)" : "";
    throw new RequestError(
      `job: ${key} is not a scheduled cron job${also}; rule: schedule it with \`roost cron schedule\``,
      "NOT_FOUND",
      "job",
    );
  }
  return key;
}

function userOf(req: { user?: unknown }): string {
  return typeof req?.user === "string" && req.user ? req.user : "unknown";
}
