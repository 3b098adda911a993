// Updater: carries job updates and rolling restarts forward. It decides nothing itself: after
// every commit that touches an active update (its events, or its job's tasks), and when a wait
// it was told about runs out, it asks the pure driver (updater/driver.ts) what the update does
// next at the leader's clock, turns the decisions into events, and commits them. The fold then
// moves the update and its tasks, and the launcher, timers and rescheduler react as they do to
// any other kill or new task.
//
// Why the decisions are recomputed from the state each time instead of kept here: an update
// lives longer than a leader. Aurora resumes updates after a failover from its stored state
// (systemResume); here a new term simply asks the driver about every active update once it has
// reconciled, and carries on from what the log shows. A paused update, or one awaiting a pulse,
// gets no decisions, so it stays where it is until a user moves it.
//
// One update is looked at, decided and committed before the next look at it (the mailbox holds
// while a commit is on the wire), so the same decision is never made twice from a stale state.
// A decision a record on the wire overtook (a kill of a task that just ended on its own) is
// dropped by the commit's recheck, and the next look decides again.

import type { AnyEnvelope, LogEntry } from "../domain/events.js";
import type { JobKeyString } from "../domain/types.js";
import { ACTIVE_UPDATE_STATES } from "../statemachines/update.js";
import { updateDecisions, type UpdateDecision } from "../updater/driver.js";
import { Actor } from "./actor.js";
import { taskIdFor } from "./clock.js";
import type { TermContext } from "./context.js";

export type UpdaterMsg = { type: "look"; updateId: string } | { type: "flush" };

type Deps = Pick<TermContext, "state" | "ids" | "clock" | "log" | "commit" | "event">;

export class Updater extends Actor<UpdaterMsg> {
  /** Updates to look at on the next flush. */
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private started = false;
  /** Each update's wake-up timer, at its earliest wakeAt. */
  private readonly wakes = new Map<string, { handle: unknown; ts: number }>();
  /** Active updates by job, kept from the update events folded (commits of other jobs' tasks cost one lookup). */
  private readonly activeByJob = new Map<JobKeyString, string>();

  constructor(private readonly s: Deps) {
    super("updater", s.log, () => s.clock.now());
  }

  /** Once the term has reconciled: look at every active update (a previous leader's included). */
  start(): void {
    this.started = true;
    this.reindex();
    for (const id of this.activeByJob.values()) this.send({ type: "look", updateId: id });
  }

  /** A committed record was folded: look at the updates it touched. Called by the term. */
  folded(events: readonly LogEntry[]): void {
    if (this.isStopped) return;
    let reindex = false;
    for (const e of events) {
      switch (e.type) {
        case "JobUpdateStarted":
        case "JobUpdateStateChanged":
        case "JobUpdatePulsed":
        case "JobInstanceUpdateEvent":
          reindex = true;
          break;
      }
    }
    if (reindex) this.reindex();
    if (this.activeByJob.size === 0 || !this.started) return;
    const st = this.s.state;
    for (const e of events) {
      let job: JobKeyString | undefined;
      switch (e.type) {
        case "TaskStateChanged":
        case "TaskAssigned":
          job = st.tasks.get(e.data.taskId)?.job;
          break;
        case "TaskCreated":
        case "JobKillRequested":
        case "JobUpdateStarted":
          job = e.data.job;
          break;
        case "JobUpdateStateChanged":
        case "JobUpdatePulsed":
        case "JobInstanceUpdateEvent":
          job = st.updates.get(e.data.updateId)?.job;
          break;
      }
      const id = job === undefined ? undefined : this.activeByJob.get(job);
      if (id !== undefined && !this.dirty.has(id)) this.send({ type: "look", updateId: id });
    }
  }

  private reindex(): void {
    this.activeByJob.clear();
    for (const u of this.s.state.updates.values()) if (ACTIVE_UPDATE_STATES.has(u.status)) this.activeByJob.set(u.job, u.updateId);
    for (const [id, w] of this.wakes) {
      const u = this.s.state.updates.get(id);
      if (!u || !ACTIVE_UPDATE_STATES.has(u.status)) {
        this.s.clock.clearTimeout(w.handle);
        this.wakes.delete(id);
      }
    }
  }

  override get busy(): boolean {
    return super.busy || this.scheduled;
  }

  protected override onStop(): void {
    for (const w of this.wakes.values()) this.s.clock.clearTimeout(w.handle);
    this.wakes.clear();
    this.dirty.clear();
  }

  protected receive(m: UpdaterMsg): void | Promise<void> {
    if (m.type === "flush") return this.flush();
    if (!this.started) return;
    this.dirty.add(m.updateId);
    if (!this.scheduled) {
      // Coalesce: the many records one batch of status updates folds ask for one look.
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.send({ type: "flush" });
      });
    }
  }

  private async flush(): Promise<void> {
    const ids = [...this.dirty];
    this.dirty.clear();
    for (const id of ids) {
      if (this.isStopped) return;
      await this.step(id);
    }
  }

  /** Ask the driver about one update and commit what it decided. */
  private async step(updateId: string): Promise<void> {
    const s = this.s;
    const u = s.state.updates.get(updateId);
    if (!u || !ACTIVE_UPDATE_STATES.has(u.status)) return;
    const now = s.clock.now();
    const decisions = updateDecisions(s.state, updateId, now);
    const events = this.eventsOf(updateId, decisions);
    const wake = decisions.reduce((min, d) => (d.kind === "wakeAt" && d.ts < min ? d.ts : min), Number.POSITIVE_INFINITY);
    this.arm(updateId, wake, now);
    if (events.length === 0) return;
    try {
      await s.commit(events, { recheck: true });
    } catch (err) {
      s.log.error({ err, updateId }, "an update's decisions were not committed; looking again later");
      this.arm(updateId, now + 1000, now);
    }
  }

  private eventsOf(updateId: string, decisions: readonly UpdateDecision[]): AnyEnvelope[] {
    const s = this.s;
    const u = s.state.updates.get(updateId)!;
    const corr = `update:${updateId}`;
    const what = u.restart ? "restart" : "update";
    const out: AnyEnvelope[] = [];
    for (const d of decisions) {
      switch (d.kind) {
        case "instance":
          out.push(
            s.event(
              "JobInstanceUpdateEvent",
              { updateId, instance: d.instance, action: d.action },
              `${what} ${updateId}: ${d.reason}`,
              corr,
            ),
          );
          break;
        case "create":
          out.push(
            s.event(
              "TaskCreated",
              {
                taskId: taskIdFor(u.job, d.instance, s.ids),
                job: u.job,
                instance: d.instance,
                configVersion: d.configVersion,
                ancestorId: d.ancestorId,
                failureCount: 0,
                state: "PENDING",
              },
              `${what} ${updateId}: ${d.reason}`,
              corr,
            ),
          );
          break;
        case "kill":
          out.push(s.event("TaskStateChanged", { taskId: d.taskId, to: d.to }, `${what} ${updateId}: ${d.reason}`, corr));
          break;
        case "status":
          out.push(
            s.event("JobUpdateStateChanged", { updateId, to: d.to, message: d.message }, `${what} ${updateId} ${d.to}: ${d.message}`, corr),
          );
          break;
        case "wakeAt":
          break;
      }
    }
    return out;
  }

  /** Look at the update again at `ts` (log time, the leader's clock), unless an earlier wake is armed. */
  private arm(updateId: string, ts: number, now: number): void {
    if (!Number.isFinite(ts) || this.isStopped) return;
    const w = this.wakes.get(updateId);
    if (w && w.ts <= ts && w.ts > now) return;
    if (w) this.s.clock.clearTimeout(w.handle);
    const handle = this.s.clock.setTimeout(
      () => {
        this.wakes.delete(updateId);
        this.send({ type: "look", updateId });
      },
      Math.max(0, ts - now),
    );
    this.wakes.set(updateId, { handle, ts });
  }
}
