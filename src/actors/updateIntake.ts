// The API's update writes (update.start, pause, resume, abort, rollback, pulse, and job.restart),
// decided against the folded state. JobIntake runs them one at a time, in its mailbox, like every
// other write: the check that a job has no active update and the commit of the one that starts it
// finish before the next check, so two `update start`s of one job cannot both begin (CONFLICT).
//
// Each returns the events to commit and the reply's value; a refusal throws a RequestError that
// names the field and the rule, and commits nothing. What an update then does is the Updater's
// (actors/updater.ts), from the log.
//
// Aurora's rules kept: one active update per job (its "active update already in progress"); a
// no-op update is refused; an update's settings follow the update config's client and server
// rules (updater/settings.ts); a pulse is for a coordinated update only; pause, resume, abort
// and rollback move it only along the update machine's transitions, and a refusal says where it
// is and what it allows.

import type { AnyEnvelope } from "../domain/events.js";
import type { JobKeyString } from "../domain/types.js";
import { amountsOf, consumesQuota, quotaCheck, type Amounts } from "../quota/quota.js";
import { canonical } from "../replay/canonical.js";
import type { ClusterState, JobRecord, UpdateRecord } from "../replay/state.js";
import { validateJobSpec } from "../spec/jobSpec.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import {
  ACTIVE_UPDATE_STATES,
  initialStatusFor,
  pausedFor,
  resumedFor,
  rollingBackFor,
  unblockedFor,
  UPDATE_STATES,
  type UpdateStatus,
  updateStep,
} from "../statemachines/update.js";
import { instanceDiff } from "../updater/driver.js";
import { blockIfNoPulsesAfterMs, normaliseUpdateConfig, UpdateConfigError, type UpdateSettings } from "../updater/settings.js";
import { RequestError } from "./api.js";
import type { TermContext } from "./context.js";

type Ctx = Pick<TermContext, "state" | "clock" | "ids" | "allowedEnvironments" | "event">;

/** What a decided write commits, and what it answers once committed (its `seq` is added then). */
export interface UpdateWrite {
  events: AnyEnvelope[];
  value: Record<string, unknown>;
}

export interface StartUpdateRequest {
  job: string;
  spec: unknown;
  instances?: number[];
  message?: string;
  user?: string;
}
export interface UpdateControlRequest {
  job: string;
  updateId?: string;
  message?: string;
  user?: string;
}
export interface RestartRequest {
  job: string;
  instances?: number[];
  batchSize?: number;
  watchSecs?: number;
  maxPerInstanceFailures?: number;
  maxTotalFailures?: number;
  user?: string;
}

export type UpdateOp =
  | "update.start"
  | "update.pause"
  | "update.resume"
  | "update.abort"
  | "update.rollback"
  | "update.pulse"
  | "job.restart";

/** A new update's id: the job's key and a short unique suffix (Aurora's are UUIDs). */
function updateIdFor(job: JobKeyString, c: Ctx): string {
  return `${job.replaceAll("/", "-")}-u${c.ids.next()}`;
}

function jobOf(state: ClusterState, key: JobKeyString): JobRecord {
  const job = state.jobs.get(key);
  if (!job)
    throw new RequestError(`job ${key} does not exist; rule: only an existing job is updated — create it first`, "NOT_FOUND", "job");
  return job;
}

function liveInstances(state: ClusterState, job: JobRecord): number[] {
  const out: number[] = [];
  for (const [i, id] of job.instances) if (!TERMINAL_STATES.has(state.tasks.get(id)!.state)) out.push(i);
  return out.sort((a, b) => a - b);
}

function refuseIfActive(state: ClusterState, key: JobKeyString): void {
  const active = state.activeUpdate(key);
  if (active) {
    throw new RequestError(
      `job ${key} already has an active ${active.restart ? "restart" : "update"}, ${active.updateId} (${active.status}); rule: one active update per job — wait for it, or abort it`,
      "CONFLICT",
      "job",
    );
  }
}

function checkInstances(instances: readonly number[] | undefined, limit: number, key: JobKeyString, field = "instances"): number[] | null {
  if (instances === undefined) return null;
  const bad = instances.filter((i) => i >= limit);
  if (bad.length > 0)
    throw new RequestError(
      `${field}: job ${key} has no instance ${bad.join(", ")} before or after the update; rule: instances range over 0-${limit - 1}`,
      "INVALID_REQUEST",
      field,
    );
  const out = [...new Set(instances)].sort((a, b) => a - b);
  if (out.length === 0) throw new RequestError(`${field}: must name at least one instance`, "INVALID_REQUEST", field);
  return out;
}

function settingsOf(raw: Parameters<typeof normaliseUpdateConfig>[0], instances: number, field: string): UpdateSettings {
  try {
    return normaliseUpdateConfig(raw, instances);
  } catch (err) {
    if (err instanceof UpdateConfigError) {
      const p = err.problems[0]!;
      throw new RequestError(`${field}.${p.path}: ${p.rule}`, "INVALID_REQUEST", `${field}.${p.path}`);
    }
    throw err;
  }
}

function user(req: { user?: unknown }): string {
  return typeof req.user === "string" && req.user ? req.user : "unknown";
}

const sub = (a: Amounts, b: Amounts): Amounts => ({
  cpus: Math.max(0, a.cpus - b.cpus),
  ramMb: Math.max(0, a.ramMb - b.ramMb),
  diskMb: Math.max(0, a.diskMb - b.diskMb),
});

/** update.start: the job's new config, rolled out by its updateConfig. */
export function planUpdateStart(c: Ctx, key: JobKeyString, req: StartUpdateRequest, corr: string): UpdateWrite {
  const state = c.state;
  const config = validateJobSpec(req.spec, { allowedEnvironments: c.allowedEnvironments });
  const specKey = `${config.role}/${config.environment}/${config.name}`;
  if (specKey !== key)
    throw new RequestError(`spec: is for job ${specKey}, not ${key}; rule: an update changes the job it names`, "INVALID_REQUEST", "spec");
  if (config.cronSchedule !== undefined)
    throw new RequestError(
      "spec.cronSchedule: rule: a cron job's config is replaced with `roost cron schedule`, not updated",
      "INVALID_REQUEST",
      "spec.cronSchedule",
    );
  const job = jobOf(state, key);
  if (job.config.cronSchedule !== undefined)
    throw new RequestError(`job ${key} is a cron job; rule: a cron job is replaced with \`roost cron schedule\``, "INVALID_REQUEST", "job");
  refuseIfActive(state, key);
  const limit = Math.max(job.config.instances, config.instances);
  const only = checkInstances(req.instances, limit, key);
  const settings = settingsOf(config.updateConfig, config.instances, "spec.updateConfig");
  const fromVersion = job.configVersion;
  const toVersion = Math.max(...Object.keys(job.configs).map(Number), fromVersion) + 1;
  const status = initialStatusFor(blockIfNoPulsesAfterMs(settings) !== null);
  const updateId = updateIdFor(key, c);
  const probe: UpdateRecord = {
    updateId,
    job: key,
    fromVersion,
    toVersion,
    config,
    settings,
    instances: only,
    status,
    user: user(req),
    message: null,
    createdSeq: 0,
    createdTs: 0,
    lastTs: 0,
    pulseTs: null,
    instanceActions: {},
    failedInstances: [],
    restart: false,
    actions: [],
    statuses: [],
  };
  const diff = instanceDiff(state, probe);
  if (diff.added.length + diff.changed.length + diff.removed.length === 0) {
    const same = canonical(job.configs[fromVersion] ?? null) === canonical(config.task);
    throw new RequestError(
      same
        ? `spec: job ${key} already runs this config on ${only ? "these instances" : `its ${job.config.instances} instance(s)`}; rule: an update must change something (Aurora: no-op update)`
        : `instances: the update touches none of the instances named; rule: an update must change something`,
      "INVALID_REQUEST",
      same ? "spec" : "instances",
    );
  }
  if (consumesQuota(config.task)) {
    // The role's quota must hold the job's new size; the old one is released as it rolls.
    const extra = sub(
      amountsOf(config.task, config.instances),
      consumesQuota(job.config.task) ? amountsOf(job.config.task, job.config.instances) : ZERO,
    );
    const short = quotaCheck(state, config.role, extra);
    if (short) throw new RequestError(`cannot update job ${key}: ${short}`, "QUOTA_EXCEEDED");
  }
  const who = user(req);
  const counts = `${diff.added.length} added, ${diff.changed.length} changed, ${diff.removed.length} removed`;
  const event = c.event(
    "JobUpdateStarted",
    {
      updateId,
      job: key,
      fromVersion,
      toVersion,
      config,
      settings,
      instances: only,
      status,
      user: who,
      ...(req.message !== undefined ? { message: req.message } : {}),
    },
    `update ${updateId} of job ${key} started by ${who}: config version ${fromVersion} → ${toVersion} (${counts}; ${strategyText(settings)}, watchSecs ${settings.watchSecs})` +
      (req.message ? `: ${req.message}` : ""),
    corr,
  );
  return { events: [event], value: { job: key, updateId, status, fromVersion, toVersion, ...diff } };
}

const ZERO: Amounts = { cpus: 0, ramMb: 0, diskMb: 0 };

/** job.restart: the job's own config, rolled through RESTARTING in batches (an update with `restart`). */
export function planRestart(c: Ctx, key: JobKeyString, req: RestartRequest, corr: string): UpdateWrite {
  const state = c.state;
  const job = jobOf(state, key);
  refuseIfActive(state, key);
  const live = liveInstances(state, job);
  if (live.length === 0)
    throw new RequestError(`job ${key} has no active tasks; rule: only running instances are restarted`, "CONFLICT", "job");
  const only = checkInstances(req.instances, job.config.instances, key);
  const scope = only ?? live;
  const settings = settingsOf(
    {
      strategy: { batch: { batchSize: req.batchSize ?? 1 } },
      watchSecs: req.watchSecs ?? 45,
      maxPerInstanceFailures: req.maxPerInstanceFailures ?? 0,
      maxTotalFailures: req.maxTotalFailures ?? 0,
      rollbackOnFailure: false,
    },
    job.config.instances,
    "restart",
  );
  const updateId = updateIdFor(key, c);
  const who = user(req);
  const event = c.event(
    "JobUpdateStarted",
    {
      updateId,
      job: key,
      fromVersion: job.configVersion,
      toVersion: job.configVersion,
      config: job.config,
      settings,
      instances: scope,
      status: "ROLLING_FORWARD",
      user: who,
      restart: true,
    },
    `restart ${updateId} of job ${key} started by ${who}: ${scope.length} instance(s) in batches of ${req.batchSize ?? 1}, watchSecs ${settings.watchSecs}`,
    corr,
  );
  return { events: [event], value: { job: key, updateId, status: "ROLLING_FORWARD", instances: scope } };
}

/** The update a control request names: the job's active one (and, when given, it must be `updateId`). */
function activeFor(state: ClusterState, key: JobKeyString, updateId: string | undefined, op: string): UpdateRecord {
  jobOf(state, key);
  const active = state.activeUpdate(key);
  if (updateId !== undefined) {
    const u = state.updates.get(updateId);
    if (!u || u.job !== key) throw new RequestError(`updateId: job ${key} has no update ${updateId}`, "NOT_FOUND", "updateId");
    if (!ACTIVE_UPDATE_STATES.has(u.status))
      throw new RequestError(
        `updateId: update ${updateId} is over (${u.status}); rule: ${op} acts on an active update`,
        "CONFLICT",
        "updateId",
      );
    return u;
  }
  if (!active) throw new RequestError(`job ${key} has no active update; rule: ${op} acts on an active update`, "NOT_FOUND", "job");
  return active;
}

const VERBS: Record<Exclude<UpdateOp, "update.start" | "job.restart" | "update.pulse">, string> = {
  "update.pause": "paused",
  "update.resume": "resumed",
  "update.abort": "aborted",
  "update.rollback": "rolled back",
};

/** update.pause, resume, abort and rollback: one transition of the update machine, or a refusal saying why not. */
export function planControl(
  c: Ctx,
  op: "update.pause" | "update.resume" | "update.abort" | "update.rollback",
  key: JobKeyString,
  req: UpdateControlRequest,
  corr: string,
): UpdateWrite {
  const u = activeFor(c.state, key, req.updateId, op);
  let to: UpdateStatus | null;
  if (op === "update.pause") to = pausedFor(u.status);
  else if (op === "update.resume") to = resumedFor(u.status, pulseExpired(u, c.clock.now()));
  else if (op === "update.abort") to = "ABORTED";
  else to = u.restart ? null : rollingBackFor(u.status);
  if (to !== null && (to === u.status || !updateStep(u.status, to).allowed)) to = null;
  if (to === null) {
    const why =
      op === "update.rollback" && u.restart
        ? "a restart has nothing to roll back"
        : `${op.slice(7)} does not apply to an update that is ${u.status} (the update machine allows ${allowedFrom(u.status)})`;
    throw new RequestError(`update ${u.updateId} is ${u.status}; rule: ${why}`, "CONFLICT", "job");
  }
  const who = user(req);
  const event = c.event(
    "JobUpdateStateChanged",
    { updateId: u.updateId, to, user: who, ...(req.message !== undefined ? { message: req.message } : {}) },
    `update ${u.updateId} of job ${key} ${VERBS[op]} by ${who}: ${u.status} → ${to}${req.message ? `: ${req.message}` : ""}`,
    corr,
  );
  return { events: [event], value: { job: key, updateId: u.updateId, status: to } };
}

/** update.pulse: a coordinated update's heartbeat; it unblocks one awaiting a pulse. */
export function planPulse(c: Ctx, key: JobKeyString, req: UpdateControlRequest & { updateId: string }, corr: string): UpdateWrite {
  const u = activeFor(c.state, key, req.updateId, "update.pulse");
  if (blockIfNoPulsesAfterMs(u.settings) === null)
    throw new RequestError(
      `update ${u.updateId} is not coordinated; rule: pulses are for an update with updateConfig.pulseIntervalSecs`,
      "INVALID_REQUEST",
      "updateId",
    );
  const who = user(req);
  const events = [c.event("JobUpdatePulsed", { updateId: u.updateId, user: who }, `update ${u.updateId} pulsed by ${who}`, corr)];
  const to = unblockedFor(u.status);
  if (to !== null)
    events.push(
      c.event(
        "JobUpdateStateChanged",
        { updateId: u.updateId, to, user: who },
        `update ${u.updateId}: a pulse from ${who}: ${u.status} → ${to}`,
        corr,
      ),
    );
  return { events, value: { job: key, updateId: u.updateId, status: to ?? u.status } };
}

function allowedFrom(status: UpdateStatus): string {
  const next = UPDATE_STATES.filter((to) => to !== status && updateStep(status, to).allowed);
  return next.length === 0 ? "no move" : `moves to ${next.join(", ")}`;
}

function pulseExpired(u: UpdateRecord, now: number): boolean {
  const ms = blockIfNoPulsesAfterMs(u.settings);
  return ms !== null && now - (u.pulseTs ?? u.createdTs) >= ms;
}

function strategyText(s: UpdateSettings): string {
  const st = s.strategy;
  if ("queue" in st) return `queue of ${st.queue.batchSize}`;
  if ("batch" in st) return `batches of ${st.batch.batchSize}`;
  return `variable batches [${st.variableBatch.batchSizes.join(", ")}]`;
}
