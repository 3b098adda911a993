// Cron triggers: when a cron job fires, what a collision with its previous run does, and which
// cron fields a job spec may carry. Pure decisions, each with the reason that goes on the log.
//
// Aurora (Quartz, in memory) does not record the last minute it fired across failovers: a new
// leader schedules fresh triggers, and anything due while no leader ran is dropped. Here the
// last fired minute is on the log, so a new leader sees what it missed, and fires ONCE for the
// latest due minute (not once per missed minute: a job meant to run hourly must not run ten
// times in a row after a ten-hour outage), with a reason that says it is catching up and how
// many triggers it did not replay.
//
// Collisions follow Aurora's CronCollisionPolicy: KILL_EXISTING (the default) kills the running
// run, then launches, waiting with backoff from 5 s to 1 min for the old tasks to end;
// CANCEL_NEW skips the trigger; RUN_OVERLAP is deprecated: refused for new jobs, treated as
// CANCEL_NEW for existing ones. A cron job cannot be a service.

import { isoTime } from "../domain/time.js";
import { cronProblems, cronTimezoneProblem, DEFAULT_CRON_TIMEZONE, firesBetween, previousFire } from "./expression.js";

export type CronCollisionPolicy = "KILL_EXISTING" | "CANCEL_NEW" | "RUN_OVERLAP";

/** Aurora's default collision policy. */
const DEFAULT_CRON_COLLISION_POLICY: CronCollisionPolicy = "KILL_EXISTING";

/** Counting missed triggers stops here (an every-minute job down for a week misses 10,080). */
export const MAX_COUNTED_MISSES = 10_000;

/** Aurora's -cron_start_initial_backoff and -cron_start_max_backoff. */
const KILL_EXISTING_INITIAL_BACKOFF_MS = 5_000;
const KILL_EXISTING_MAX_BACKOFF_MS = 60_000;

export interface DueTrigger {
  /** The minute fired for (ms since the epoch, the start of the minute). */
  minuteMs: number;
  /** Fire times after the last fired one and before minuteMs, not replayed (0 normally). */
  missed: number;
  /** True when more than `missed` (= MAX_COUNTED_MISSES) were missed: counting stopped there. */
  missedCapped: boolean;
  /** Missed triggers, or a trigger fired after its own minute had passed (a new leader). */
  catchingUp: boolean;
  reason: string;
}

/** "2026-12-02T10:00Z", and the local time when the zone is not UTC. */
function minuteText(ms: number, tz: string): string {
  const utc = `${isoTime(ms).slice(0, 16)}Z`;
  return tz === DEFAULT_CRON_TIMEZONE ? utc : `${utc} (${localMinute(ms, tz)} ${tz})`;
}

const localFormats = new Map<string, Intl.DateTimeFormat>();

/** "2026-03-30 09:00" on the wall clock of `tz`. */
function localMinute(ms: number, tz: string): string {
  let fmt = localFormats.get(tz);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
    });
    if (localFormats.size >= 1000) localFormats.clear();
    localFormats.set(tz, fmt);
  }
  const p: Record<string, string> = {};
  for (const part of fmt.formatToParts(ms)) p[part.type] = part.value;
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** "25m", "3h 5m", "2d 3h". */
function lateText(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/**
 * The trigger to fire now, or null when none is due: the latest fire time at or before `nowMs`
 * that is after `lastFiredMinuteMs` (after `scheduledAtMs` when the job never fired). `missed`
 * counts the fire times between the two that are not replayed. A trigger is on time while its
 * own minute lasts; later, it is catching up (a new leader found it due).
 */
export function dueTrigger(input: {
  expr: string;
  tz: string;
  lastFiredMinuteMs: number | null;
  scheduledAtMs: number;
  nowMs: number;
}): DueTrigger | null {
  const { expr, tz, lastFiredMinuteMs, nowMs } = input;
  const since = lastFiredMinuteMs ?? input.scheduledAtMs;
  // One more than the cap: the fired trigger plus MAX_COUNTED_MISSES missed ones.
  const fires = firesBetween(expr, tz, since, nowMs, MAX_COUNTED_MISSES + 1);
  let minuteMs = fires.at(-1);
  if (minuteMs === undefined) return null;
  let missed = fires.length - 1;
  let missedCapped = false;
  if (fires.length === MAX_COUNTED_MISSES + 1) {
    const latest = previousFire(expr, tz, nowMs);
    if (latest !== null && latest > minuteMs) {
      minuteMs = latest;
      missed = MAX_COUNTED_MISSES;
      missedCapped = true;
    }
  }
  const late = nowMs - minuteMs >= 60_000;
  const catchingUp = missed > 0 || late;
  const cron = `cron ${expr.trim()}${tz === DEFAULT_CRON_TIMEZONE ? "" : ` (${tz})`}`;
  const at = minuteText(minuteMs, tz);
  let reason: string;
  if (!catchingUp) reason = `${cron} fired for ${at}`;
  else {
    const last =
      lastFiredMinuteMs === null
        ? `scheduled ${minuteText(input.scheduledAtMs, tz)}, never fired`
        : `last fired ${minuteText(lastFiredMinuteMs, tz)}`;
    const lateness = late ? `, ${lateText(nowMs - minuteMs)} late` : "";
    if (missed === 0) {
      reason = `${cron} catching up: the trigger for ${at} was missed while no leader ran (${last}); firing it now${lateness}`;
    } else {
      const count = missedCapped
        ? `more than ${MAX_COUNTED_MISSES.toLocaleString("en-US")} triggers were`
        : missed === 1
          ? "1 trigger was"
          : `${missed} triggers were`;
      reason = `${cron} catching up: ${count} missed while no leader ran (${last}); firing once for ${at}${lateness}`;
    }
  }
  return { minuteMs, missed, missedCapped, catchingUp, reason };
}

export type CollisionDecision = { action: "RUN" } | { action: "SKIP"; reason: string } | { action: "KILL_THEN_RUN"; reason: string };

/** What a trigger does while `activeTasks` tasks of the job's previous run are still active. */
export function collision(input: { policy?: CronCollisionPolicy | undefined; activeTasks: number }): CollisionDecision {
  const { activeTasks } = input;
  if (!(activeTasks > 0)) return { action: "RUN" };
  const active = `the previous run is still active (${activeTasks === 1 ? "1 task" : `${activeTasks} tasks`})`;
  switch (input.policy ?? DEFAULT_CRON_COLLISION_POLICY) {
    case "CANCEL_NEW":
      return { action: "SKIP", reason: `CANCEL_NEW: ${active}; this trigger is skipped` };
    case "RUN_OVERLAP":
      return {
        action: "SKIP",
        reason: `RUN_OVERLAP is deprecated and treated as CANCEL_NEW, as Aurora does for existing jobs: ${active}; this trigger is skipped`,
      };
    case "KILL_EXISTING":
      return { action: "KILL_THEN_RUN", reason: `KILL_EXISTING: ${active}; killing it, then launching this run` };
  }
}

/**
 * How long KILL_EXISTING waits before looking again whether the killed run has ended: 5 s,
 * doubling, at most 1 min. `attempt` counts the looks that found it still running (0: the first wait).
 */
export function killExistingBackoffMs(attempt: number): number {
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  if (n >= 10) return KILL_EXISTING_MAX_BACKOFF_MS;
  return Math.min(KILL_EXISTING_INITIAL_BACKOFF_MS * 2 ** n, KILL_EXISTING_MAX_BACKOFF_MS);
}

export interface CronSpecProblem {
  /** "cronSchedule", "cronTimezone", "cronCollisionPolicy", "service". */
  path: string;
  rule: string;
}

const POLICIES_ALLOWED = ["KILL_EXISTING", "CANCEL_NEW"];

/** The cron fields of a job spec, checked: every problem, each naming its field. */
export function cronSpecProblems(spec: {
  service?: boolean;
  cronSchedule?: unknown;
  cronTimezone?: unknown;
  cronCollisionPolicy?: unknown;
}): CronSpecProblem[] {
  const out: CronSpecProblem[] = [];
  const { cronSchedule, cronTimezone, cronCollisionPolicy } = spec;
  const isCron = cronSchedule !== undefined;
  if (isCron) {
    if (typeof cronSchedule !== "string") {
      out.push({ path: "cronSchedule", rule: 'must be a string: a crontab(5) schedule such as "0 * * * *"' });
    } else {
      for (const rule of cronProblems(cronSchedule)) out.push({ path: "cronSchedule", rule });
    }
    if (spec.service === true) {
      out.push({ path: "service", rule: "a cron job cannot be a service: drop service: true, or drop cronSchedule" });
    }
  }
  if (cronTimezone !== undefined) {
    if (typeof cronTimezone !== "string") {
      out.push({ path: "cronTimezone", rule: 'must be a string: an IANA time zone name such as "Europe/London" (default UTC)' });
    } else {
      const problem = cronTimezoneProblem(cronTimezone);
      if (problem !== null) out.push({ path: "cronTimezone", rule: problem });
    }
    if (!isCron) out.push({ path: "cronTimezone", rule: "is set but cronSchedule is not: a time zone applies only to a cron job" });
  }
  if (cronCollisionPolicy !== undefined) {
    if (cronCollisionPolicy === "RUN_OVERLAP") {
      out.push({
        path: "cronCollisionPolicy",
        rule: "RUN_OVERLAP is deprecated and refused, as Aurora's createJob does; use KILL_EXISTING or CANCEL_NEW",
      });
    } else if (typeof cronCollisionPolicy !== "string" || !POLICIES_ALLOWED.includes(cronCollisionPolicy)) {
      out.push({ path: "cronCollisionPolicy", rule: "must be one of KILL_EXISTING (the default), CANCEL_NEW" });
    }
    if (!isCron) {
      out.push({ path: "cronCollisionPolicy", rule: "is set but cronSchedule is not: a collision policy applies only to a cron job" });
    }
  }
  return out;
}
