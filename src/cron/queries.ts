// What `roost cron show` and `roost cron list` answer, from a folded state and a moment. The
// leader's Reads pass its clock's now; the CLI with no leader up passes the machine's. Pure: the
// moment is an argument, so the same state and moment give the same answer, and the fold never
// computes a fire time (a schedule is read only here and by the leader's Cron actor).

import type { JobKeyString } from "../domain/types.js";
import type { ClusterState, CronJobRecord, CronTriggerRecord } from "../replay/state.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { DEFAULT_CRON_TIMEZONE, firesBetween, nextFire } from "./expression.js";

/** How many next fire times `cron show` lists. */
const SHOWN_FIRES = 5;
/** How far ahead `cron show` looks for them (a yearly job shows its next few years). */
const SHOW_HORIZON_MS = 10 * 366 * 86_400_000;

export interface CronJobShow {
  job: string;
  schedule: string;
  timezone: string;
  collisionPolicy: string;
  instances: number;
  /** Who scheduled it last, at which log sequence and time. */
  user: string;
  scheduledSeq: number;
  scheduledTs: number;
  /** The next fire times (ms since the epoch), from `nowMs`; empty when the schedule cannot be read. */
  nextFires: number[];
  lastFiredMinuteMs: number | null;
  lastTrigger: CronTriggerRecord | null;
  /** KILL_EXISTING: the run waiting for the previous one to end. */
  pendingRun: { minuteMs: number; user: string | null; seq: number; ts: number } | null;
  /** Tasks of its newest run still going. */
  activeTasks: number;
  /** The log sequence the answer is as of. */
  seq: number;
}

export interface CronJobSummary {
  job: string;
  schedule: string;
  timezone: string;
  collisionPolicy: string;
  nextFire: number | null;
  lastTrigger: { minuteMs: number; outcome: string; ts: number } | null;
  activeTasks: number;
}

/** Tasks of the job's newest run still going: not terminal, or terminal and owed a reschedule (a retrying batch task). */
export function activeTasks(state: ClusterState, key: JobKeyString): number {
  const job = state.jobs.get(key);
  if (!job) return 0;
  let n = 0;
  for (const id of job.instances.values()) {
    const t = state.tasks.get(id);
    if (t && (!TERMINAL_STATES.has(t.state) || t.rescheduleWanted)) n++;
  }
  return n;
}

function fields(c: CronJobRecord) {
  return {
    schedule: c.config.cronSchedule ?? "",
    timezone: c.config.cronTimezone ?? DEFAULT_CRON_TIMEZONE,
    collisionPolicy: c.config.cronCollisionPolicy ?? "KILL_EXISTING",
  };
}

/** A cron job as `cron show` shows it, or null when `job` is not scheduled. */
export function cronShow(state: ClusterState, job: string, nowMs: number): CronJobShow | null {
  const c = state.cronJobs.get(job as JobKeyString);
  if (!c) return null;
  const f = fields(c);
  let nextFires: number[] = [];
  try {
    nextFires = firesBetween(f.schedule, f.timezone, nowMs, nowMs + SHOW_HORIZON_MS, SHOWN_FIRES);
  } catch {
    // a schedule only an older build's log could hold: no fire times to show
  }
  return {
    job: c.key,
    ...f,
    instances: c.config.instances,
    user: c.user,
    scheduledSeq: c.scheduledSeq,
    scheduledTs: c.scheduledTs,
    nextFires,
    lastFiredMinuteMs: c.lastFiredMinuteMs,
    lastTrigger: c.lastTrigger === null ? null : { ...c.lastTrigger },
    pendingRun: c.pendingRun === null ? null : { ...c.pendingRun },
    activeTasks: activeTasks(state, c.key),
    seq: state.seq,
  };
}

/** Every scheduled cron job (of `role`, when given), sorted by key. */
export function cronList(state: ClusterState, nowMs: number, role?: string | null): CronJobSummary[] {
  const out: CronJobSummary[] = [];
  for (const c of state.cronJobs.values()) {
    if (role != null && !c.key.startsWith(`${role}/`)) continue;
    const f = fields(c);
    let next: number | null = null;
    try {
      next = nextFire(f.schedule, f.timezone, nowMs);
    } catch {
      next = null;
    }
    const t = c.lastTrigger;
    out.push({
      job: c.key,
      ...f,
      nextFire: next,
      lastTrigger: t === null ? null : { minuteMs: t.minuteMs, outcome: t.outcome, ts: t.ts },
      activeTasks: activeTasks(state, c.key),
    });
  }
  return out.sort((a, b) => (a.job < b.job ? -1 : a.job > b.job ? 1 : 0));
}
