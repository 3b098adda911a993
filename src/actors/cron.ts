// Cron: runs the scheduled cron jobs on the leader's clock (virtual under the simulator). After
// the term has reconciled, and after every commit that touches a cron job, it looks at each one:
// the trigger due now (cron/triggers.ts dueTrigger), or the run a collision left waiting, and
// commits what it decides; then it sets one timer, at the earliest next fire time.
//
// What shaped it:
// - Aurora keeps its triggers in Quartz's memory: a new leader starts fresh, and whatever fell due
//   while no leader ran is lost. Here every trigger taken is a CronTriggered event, so the last
//   fired minute is on the log, and a new leader that finds minutes missed fires ONCE, for the
//   latest (dueTrigger), with a reason that says it is catching up and how many it did not replay.
//   A minute already on the log is never taken again (the fold refuses it as an anomaly).
// - A fired trigger and its run are one record: CronTriggered "fired" follows the run's
//   JobCreated and TaskCreated events, which JobIntake's create would write (the fold refuses a
//   "fired" without them). There is no half-fired trigger to repair after a crash.
// - KILL_EXISTING (Aurora's default) is two records: "collided" with the kill of the previous run,
//   then, once its tasks have all ended, "fired" for the same minute. The run waiting in between
//   is in the state (pendingRun), so a new leader finishes it. Between the two the actor looks
//   again after 5 s, doubling to 1 min (Aurora's cron_start_initial/max_backoff).
// - Every cron write (the API's schedule, deschedule and start, which JobIntake validates) runs in
//   this actor's mailbox too (write()): each decision is made on a state that holds the commits
//   of the ones before it, so a manual start and a scheduled trigger can never both create a run,
//   and a trigger is never committed for a job descheduled on the wire ahead of it.
// - "Active" counts the previous run's tasks that are not terminal, and terminal ones still owed
//   a reschedule (a batch task retrying after a failure): that run is not over either.
//
// Quiesced (roost dev shutting down), it takes no trigger and starts no waiting run; writes are
// still served. What it leaves undone stays in the state for the next leader.

import type { AnyEnvelope, LogEntry } from "../domain/events.js";
import { isoTime } from "../domain/time.js";
import type { JobKeyString, TaskId } from "../domain/types.js";
import { DEFAULT_CRON_TIMEZONE, nextFire } from "../cron/expression.js";
import { collision, type CronCollisionPolicy, dueTrigger, killExistingBackoffMs } from "../cron/triggers.js";
import { activeTasks } from "../cron/queries.js";
import type { CronJobRecord } from "../replay/state.js";
import { Actor } from "./actor.js";
import { taskIdFor } from "./clock.js";
import type { TermContext } from "./context.js";

export type CronMsg =
  | { type: "plan" }
  | { type: "write"; run: () => Promise<unknown>; reply: (r: unknown) => void; fail: (err: Error) => void };

type Deps = Pick<TermContext, "state" | "ids" | "clock" | "log" | "commit" | "event" | "corr" | "leading" | "metrics">;

/** The longest the actor sleeps between looks (a yearly job's next fire is further than a timer can wait). */
const MAX_SLEEP_MS = 60 * 60_000;

/** What a trigger is about to do, before the collision policy has its say. */
export interface TriggerInput {
  minuteMs: number;
  missed: number;
  /** Why it fires now (dueTrigger's reason, or who started it by hand). */
  reason: string;
  /** Who started it by hand (roost cron start), or null for the schedule. */
  user: string | null;
}

/** A trigger's events, what it came to, and the run it creates (taskIds: none unless fired). */
export interface TriggerPlan {
  events: AnyEnvelope[];
  outcome: "fired" | "skipped" | "collided";
  taskIds: TaskId[];
  /** Active tasks of the previous run it met. */
  active: number;
}

export class Cron extends Actor<CronMsg> {
  private started = false;
  private quiesced = false;
  private planQueued = false;
  private timer: unknown = null;
  /** KILL_EXISTING: when to look again whether a killed run has ended, and how many looks found it running. */
  private readonly waits = new Map<JobKeyString, { attempt: number; due: number }>();

  constructor(private readonly s: Deps) {
    super("cron", s.log, () => s.clock.now());
  }

  /** Once the term has reconciled: take what is due (a previous leader's missed triggers included). */
  start(): void {
    this.started = true;
    this.changed();
  }

  /** No more triggers this term (roost dev shutting down); writes are still served. */
  quiesce(): void {
    this.quiesced = true;
    this.disarm();
  }

  /** A committed record was folded: look again if it touched a cron job. Called by the term. */
  folded(events: readonly LogEntry[]): void {
    for (const e of events) {
      if (e.type === "CronJobScheduled" || e.type === "CronJobDescheduled" || e.type === "CronTriggered") return this.changed();
    }
  }

  /**
   * Run a cron write (JobIntake's check and commit of cron.schedule, deschedule or start) in this
   * mailbox, after the commits of every trigger before it; resolves with what `run` returns.
   */
  write<T>(run: () => Promise<T>): Promise<T> {
    return this.ask<unknown>((reply, fail) => ({ type: "write", run, reply, fail })) as Promise<T>;
  }

  private changed(): void {
    if (!this.started || this.planQueued || this.isStopped) return;
    this.planQueued = true;
    this.send({ type: "plan" });
  }

  protected override onStop(dropped: CronMsg[]): void {
    this.disarm();
    for (const m of dropped) if (m.type === "write") m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected async receive(m: CronMsg): Promise<void> {
    if (m.type === "write") {
      try {
        m.reply(await m.run());
      } catch (err) {
        m.fail(err as Error);
      }
      return;
    }
    this.planQueued = false;
    await this.plan();
  }

  private disarm(): void {
    if (this.timer !== null) this.s.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** Look at every cron job once, then sleep until the earliest next fire time or wait. */
  private async plan(): Promise<void> {
    const s = this.s;
    if (!this.started || this.quiesced || !s.leading()) return;
    for (const key of [...this.waits.keys()]) if (!s.state.cronJobs.get(key)?.pendingRun) this.waits.delete(key);
    for (const key of [...s.state.cronJobs.keys()]) {
      const rec = s.state.cronJobs.get(key);
      if (!rec || this.isStopped) continue;
      try {
        await this.look(rec);
      } catch (err) {
        s.log.error({ err, job: key }, "cron: a trigger could not be taken");
      }
    }
    this.arm();
  }

  /** One cron job: its due trigger, else the run a collision left waiting. */
  private async look(rec: CronJobRecord): Promise<void> {
    const s = this.s;
    const now = s.clock.now();
    const { expr, tz } = scheduleOf(rec);
    const due = dueTrigger({
      expr,
      tz,
      // A job scheduled again counts from then: a changed schedule does not fire for minutes before it.
      lastFiredMinuteMs: rec.lastFiredMinuteMs !== null && rec.lastFiredMinuteMs >= rec.scheduledTs ? rec.lastFiredMinuteMs : null,
      scheduledAtMs: rec.scheduledTs,
      nowMs: now,
    });
    if (due) {
      const plan = planTrigger(s, rec, { minuteMs: due.minuteMs, missed: due.missed, reason: due.reason, user: null });
      await s.commit(plan.events);
      recordTrigger(s, plan, due.missed);
      if (plan.outcome === "collided") this.waits.set(rec.key, { attempt: 1, due: now + killExistingBackoffMs(0) });
      return;
    }
    const p = rec.pendingRun;
    if (p === null) return;
    const w = this.waits.get(rec.key) ?? { attempt: 0, due: now };
    this.waits.set(rec.key, w);
    if (w.due > now) return;
    const active = activeTasks(s.state, rec.key);
    if (active > 0) {
      w.due = now + killExistingBackoffMs(w.attempt);
      w.attempt++;
      s.log.info({ job: rec.key, active, nextLookMs: w.due - now }, "cron: the killed run has not ended yet");
      return;
    }
    const minute = minuteText(p.minuteMs, tz);
    const reason =
      `KILL_EXISTING: the previous run has ended; launching the run for ${minute} ` +
      `(${p.user === null ? "its trigger" : `started by ${p.user}, which`} collided at log sequence ${p.seq})`;
    const plan = planTrigger(s, rec, { minuteMs: p.minuteMs, missed: 0, reason, user: p.user });
    if (plan.outcome !== "fired") return; // active again meanwhile: the next look decides
    await s.commit(plan.events);
    recordTrigger(s, plan, 0);
    this.waits.delete(rec.key);
  }

  /** One timer: the earliest next fire time of any cron job, or the earliest wait. */
  private arm(): void {
    const s = this.s;
    this.disarm();
    if (!this.started || this.quiesced || this.isStopped || !s.leading()) return;
    const now = s.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const rec of s.state.cronJobs.values()) {
      const { expr, tz } = scheduleOf(rec);
      try {
        const t = nextFire(expr, tz, now);
        if (t !== null && t < next) next = t;
      } catch (err) {
        // Only an older build's log could hold a schedule this build refuses: said, not fatal.
        s.log.error({ err, job: rec.key }, "cron: the job's schedule cannot be read; it does not fire");
      }
    }
    for (const w of this.waits.values()) if (w.due < next) next = w.due;
    if (next === Number.POSITIVE_INFINITY) return;
    this.timer = s.clock.setTimeout(
      () => {
        this.timer = null;
        this.changed();
      },
      Math.min(Math.max(0, next - now), MAX_SLEEP_MS),
    );
  }
}

/** The schedule and time zone a record fires on. */
function scheduleOf(rec: CronJobRecord): { expr: string; tz: string } {
  return { expr: rec.config.cronSchedule ?? "", tz: rec.config.cronTimezone ?? DEFAULT_CRON_TIMEZONE };
}

const POLICIES: readonly string[] = ["KILL_EXISTING", "CANCEL_NEW", "RUN_OVERLAP"];

/** The job's collision policy (an unknown one, only an older build's log could hold: the default). */
function policyOf(rec: CronJobRecord): CronCollisionPolicy | undefined {
  const p = rec.config.cronCollisionPolicy;
  return p !== undefined && POLICIES.includes(p) ? (p as CronCollisionPolicy) : undefined;
}

/** "2026-12-02T10:00Z" (and the local time in a zone other than UTC). */
function minuteText(ms: number, tz: string): string {
  const utc = `${isoTime(ms).slice(0, 16)}Z`;
  return tz === DEFAULT_CRON_TIMEZONE ? utc : `${utc} (${tz})`;
}

/**
 * A trigger's events under the job's collision policy: the run (JobCreated of the template as a
 * new config version, a PENDING TaskCreated per instance, then CronTriggered "fired"), or
 * "skipped" (CANCEL_NEW), or "collided" with the kill of the previous run (KILL_EXISTING).
 */
export function planTrigger(
  s: Pick<TermContext, "state" | "ids" | "event" | "corr">,
  rec: CronJobRecord,
  t: TriggerInput,
  corr: string = s.corr("cron"),
): TriggerPlan {
  const key = rec.key;
  const active = activeTasks(s.state, key);
  const decision = collision({ policy: policyOf(rec), activeTasks: active });
  const minute = minuteText(t.minuteMs, scheduleOf(rec).tz);
  const user = t.user === null ? {} : { user: t.user };
  const trigger = (outcome: TriggerPlan["outcome"], reason: string) =>
    s.event("CronTriggered", { job: key, minuteMs: t.minuteMs, outcome, missed: t.missed, ...user }, reason, corr);
  if (decision.action === "SKIP") {
    return { events: [trigger("skipped", `${t.reason}; ${decision.reason}`)], outcome: "skipped", taskIds: [], active };
  }
  if (decision.action === "KILL_THEN_RUN") {
    const events = [
      trigger("collided", `${t.reason}; ${decision.reason}`),
      s.event(
        "JobKillRequested",
        { job: key, instances: null, user: t.user ?? "cron" },
        `the cron run of ${key} for ${minute} collided with the previous run (KILL_EXISTING): killing its ${active} active task(s) first`,
        corr,
      ),
    ];
    return { events, outcome: "collided", taskIds: [], active };
  }
  const job = s.state.jobs.get(key);
  // A new config version, past every one the job has registered (an update may have left one unrolled).
  const configVersion = job ? Math.max(job.configVersion, ...Object.keys(job.configs).map(Number)) + 1 : 1;
  const config = rec.config;
  const by = t.user === null ? "its schedule" : `${t.user} (roost cron start)`;
  const events: AnyEnvelope[] = [
    s.event("JobCreated", { job: config, configVersion }, `cron run of ${key} for ${minute}, started by ${by}`, corr),
  ];
  const taskIds: TaskId[] = [];
  for (let i = 0; i < config.instances; i++) {
    const taskId = taskIdFor(key, i, s.ids);
    taskIds.push(taskId);
    events.push(
      s.event(
        "TaskCreated",
        { taskId, job: key, instance: i, configVersion, ancestorId: null, failureCount: 0, state: "PENDING" },
        `instance ${i} of the cron run of ${key} for ${minute}`,
        corr,
      ),
    );
  }
  events.push(trigger("fired", t.reason));
  return { events, outcome: "fired", taskIds, active };
}

/** The metrics of a committed trigger. */
export function recordTrigger(s: Pick<TermContext, "metrics">, plan: TriggerPlan, missed: number): void {
  s.metrics.cronTriggered(plan.outcome, missed, plan.active > 0);
}
