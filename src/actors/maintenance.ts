// Maintenance: the leader's side of host maintenance (Aurora's MaintenanceController and its drain
// poller; Mesos's maintenance windows). It looks every hostMaintenancePollingIntervalMs (Aurora:
// 1 min), right after a record that moves a host or a window is folded, when a task on a DRAINING
// host changes state, and when a window opens or ends or a drain's forced deadline passes (one
// clock timer, at the earliest). Each look asks the pure core (maintenance/drain.ts) what is due
// and commits it in one record:
//   a window's start: its hosts → DRAINING (with the window's request)
//   a window's end: the hosts it still holds → NONE, and MaintenanceWindowEnded
//   a DRAINING host with no active task left → DRAINED
//   a task whose job's SLA allows it → TaskStateChanged DRAINING (killed, then rescheduled elsewhere)
//   a task it does not → SlaDrainDenied, when its reason changed since the last one
// Every decision carries its reason, so `roost history host H` tells a drain's story.
//
// A coordinator (a job's slaPolicy.coordinator) is asked here, never in the core: POST
// url?task=role/env/name/instance with {task, forceMaintenanceCountdownMs}, one request in flight
// per URL, a 1 min timeout, each task at most once per polling interval; {"<statusKey>": true}
// drains it, anything else (or no answer) denies it, and the answer becomes the event's reason.
//
// The writes (the API's host.maintenance.* ops, which JobIntake validates) run in this mailbox
// too (write()), so a decision is never made on a state that misses a request committed ahead of
// it. Nothing is held in memory that a new leader needs: the requests, the modes and the last
// denials are in the state; a new leader's actor just looks again (its coordinator questions are
// asked again, which Aurora's coordinators must tolerate).

import type { AnyEnvelope, LogEntry } from "../domain/events.js";
import type { TaskId } from "../domain/types.js";
import {
  type CoordinatorAnswer,
  type CoordinatorQuestion,
  drainedDecisions,
  maintenanceDecisions,
  nextDeadline,
} from "../maintenance/drain.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";
import { Periodic } from "./periodic.js";

export type MaintenanceMsg =
  | { type: "look" }
  | { type: "answer"; taskId: TaskId; url: string; answer: CoordinatorAnswer }
  | { type: "write"; run: () => Promise<unknown>; reply: (r: unknown) => void; fail: (err: Error) => void };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "commit" | "event" | "corr" | "leading">;

/** POST `url` with a JSON body; resolves with the parsed JSON reply. Rejects on no answer, a timeout, or a status other than 2xx. */
export type CoordinatorCall = (url: string, body: unknown, timeoutMs: number) => Promise<unknown>;

/** Aurora's -sla_coordinator_timeout. */
const COORDINATOR_TIMEOUT_MS = 60_000;
/** The most events one look commits in a record (a record has a byte limit; reasons are long). */
const MAX_EVENTS_PER_COMMIT = 500;

/** The longest the deadline timer sleeps (a 7-day forced drain is further than a timer can wait). */
const MAX_SLEEP_MS = 60 * 60_000;

/** The coordinator call over HTTP (node's fetch). */
const httpCoordinator: CoordinatorCall = async (url, body, timeoutMs) => {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
  return (await res.json()) as unknown;
};

export class Maintenance extends Actor<MaintenanceMsg> {
  private started = false;
  private quiesced = false;
  private lookQueued = false;
  /** The next look is a full one (a request, a window, the poller, an answer, a deadline). */
  private full = false;
  /** DRAINING hosts one of whose tasks changed state since the last look: the light look checks them for DRAINED. */
  private readonly touched = new Set<string>();
  private timer: unknown = null;
  private readonly periodic: Periodic;
  /** Coordinator answers not acted on yet, by task id. */
  private readonly answers = new Map<string, CoordinatorAnswer>();
  /** When each task's coordinator was last asked (at most once per polling interval). */
  private readonly askedAt = new Map<string, number>();
  /** Coordinator URLs with a request in flight (one at a time per URL). */
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly s: Deps,
    private readonly coordinator: CoordinatorCall = httpCoordinator,
  ) {
    super("maintenance", s.log, () => s.clock.now());
    this.periodic = new Periodic(
      s.clock,
      () => s.policy.hostMaintenancePollingIntervalMs,
      () => this.changed(),
    );
  }

  /** Once the term has reconciled: resume what the log holds (drains under way, windows due). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.periodic.start();
    this.changed();
  }

  /** No more decisions this term (roost dev shutting down); writes are still served. */
  quiesce(): void {
    this.quiesced = true;
    this.periodic.stop();
    this.disarm();
  }

  /** A coordinator request in flight keeps the actor busy (the simulator settles past it). */
  override get busy(): boolean {
    return super.busy || this.inFlight.size > 0;
  }

  /** A committed record was folded: look again if it moved a host or a window, or a task on a DRAINING host. */
  folded(events: readonly LogEntry[]): void {
    const st = this.s.state;
    if (st.hosts.size === 0 && st.windows.size === 0) return;
    let touched = false;
    for (const e of events) {
      // A host that became DRAINED changes no other host's decision: a full look after each of a
      // 500-host drain's DRAINED records was most of its CPU (every job's SLA judged again).
      if (e.type === "HostMaintenanceChanged" && e.data.to === "DRAINED") continue;
      if (e.type === "HostMaintenanceChanged" || e.type === "MaintenanceWindowScheduled" || e.type === "MaintenanceWindowEnded")
        return this.changed();
      if (e.type === "TaskStateChanged") {
        const host = st.tasks.get(e.data.taskId)?.host;
        if (host != null && st.hosts.get(host)?.mode === "DRAINING") {
          this.touched.add(host);
          touched = true;
        }
      }
    }
    // A task's change on a DRAINING host can only empty it: a light look (drainedDecisions). A full
    // pass per task change cost a 1,000-host drain most of its CPU.
    if (touched) this.changed(false);
  }

  /** Run a maintenance write (JobIntake's check and commit) in this mailbox; resolves with what `run` returns. */
  write<T>(run: () => Promise<T>): Promise<T> {
    return this.ask<unknown>((reply, fail) => ({ type: "write", run, reply, fail })) as Promise<T>;
  }

  private changed(full = true): void {
    if (full) this.full = true;
    if (!this.started || this.lookQueued || this.isStopped) return;
    this.lookQueued = true;
    this.send({ type: "look" });
  }

  protected override onStop(dropped: MaintenanceMsg[]): void {
    this.periodic.stop();
    this.disarm();
    for (const m of dropped) if (m.type === "write") m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected async receive(m: MaintenanceMsg): Promise<void> {
    if (m.type === "write") {
      try {
        m.reply(await m.run());
      } catch (err) {
        m.fail(err as Error);
      }
      return;
    }
    if (m.type === "answer") {
      this.inFlight.delete(m.url);
      this.answers.set(m.taskId, m.answer);
      this.changed();
      return;
    }
    this.lookQueued = false;
    try {
      await this.look();
    } finally {
      this.arm();
    }
  }

  private async look(): Promise<void> {
    const s = this.s;
    if (!this.started || this.quiesced || !s.leading()) return;
    if (s.state.hosts.size === 0 && s.state.windows.size === 0) return; // no maintenance: nothing to decide
    const now = s.clock.now();
    const interval = s.policy.hostMaintenancePollingIntervalMs;
    const full = this.full;
    this.full = false;
    const decisions = full
      ? maintenanceDecisions(s.state, now, {
          minRequiredInstances: s.policy.minRequiredInstances,
          answers: this.answers,
          mayAsk: (taskId, url) => !this.inFlight.has(url) && now - (this.askedAt.get(taskId) ?? Number.NEGATIVE_INFINITY) >= interval,
        })
      : drainedDecisions(s.state, this.touched);
    this.touched.clear();
    if (full) this.answers.clear();
    const corr = s.corr("maint");
    const events: AnyEnvelope[] = [];
    for (const d of decisions) {
      switch (d.kind) {
        case "windowOpen": {
          const w = s.state.windows.get(d.windowId)!;
          events.push(
            s.event(
              "HostMaintenanceChanged",
              { hosts: d.hosts, to: "DRAINING", drain: { ...w.drain }, windowId: d.windowId },
              d.reason,
              corr,
            ),
          );
          break;
        }
        case "windowEnd":
          if (d.hosts.length > 0)
            events.push(s.event("HostMaintenanceChanged", { hosts: d.hosts, to: "NONE", windowId: d.windowId }, d.reason, corr));
          events.push(s.event("MaintenanceWindowEnded", { windowId: d.windowId, cancelled: false }, d.reason, corr));
          break;
        case "drained":
          events.push(s.event("HostMaintenanceChanged", { hosts: [d.host], to: "DRAINED" }, d.reason, corr));
          break;
        case "drain":
          events.push(s.event("TaskStateChanged", { taskId: d.taskId, to: "DRAINING" }, d.reason, corr));
          break;
        case "deny":
          events.push(s.event("SlaDrainDenied", { taskId: d.taskId, host: d.host }, d.reason, corr));
          break;
        case "ask":
          this.askCoordinator(d, now);
          break;
      }
    }
    // In records of at most MAX_EVENTS_PER_COMMIT: the first look at 200 draining hosts decides
    // 5,000 drains and denials, whose reasons overflow one record (RecordTooLargeError), and a
    // look that never commits stalls the drain for good. Each decision stands alone (a drain the
    // SLA allowed is still allowed with fewer of the others), so committing them in turn, and
    // stopping at the first failure, only ever drains less; the next look decides the rest.
    for (let i = 0; i < events.length; i += MAX_EVENTS_PER_COMMIT) {
      try {
        // Rechecked once the records ahead are folded: a decision one of them overtook is dropped.
        await s.commit(events.slice(i, i + MAX_EVENTS_PER_COMMIT), { recheck: true });
      } catch (err) {
        s.log.error({ err }, "maintenance: decisions could not be committed; the next look decides again");
        return;
      }
    }
  }

  private askCoordinator(q: CoordinatorQuestion, now: number): void {
    this.inFlight.add(q.url);
    this.askedAt.set(q.taskId, now);
    const sep = q.url.includes("?") ? "&" : "?";
    const url = `${q.url}${sep}task=${encodeURIComponent(q.query)}`;
    const answer = (a: CoordinatorAnswer) => {
      if (this.isStopped) {
        this.inFlight.delete(q.url);
        return;
      }
      this.send({ type: "answer", taskId: q.taskId, url: q.url, answer: a });
    };
    this.coordinator(url, q.body, COORDINATOR_TIMEOUT_MS).then(
      (reply) => {
        const ok = reply !== null && typeof reply === "object" && (reply as Record<string, unknown>)[q.statusKey] === true;
        answer({
          drain: ok,
          reason: `asked about ${q.query}, answered ${JSON.stringify(reply)}${ok ? "" : ` (drains only on {"${q.statusKey}": true})`}`,
        });
      },
      (err: Error) => answer({ drain: false, reason: `asked about ${q.query}, did not answer: ${err.message}` }),
    );
  }

  private disarm(): void {
    if (this.timer !== null) this.s.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** One timer: the next window start or end, or forced drain deadline. */
  private arm(): void {
    const s = this.s;
    this.disarm();
    if (!this.started || this.quiesced || this.isStopped || !s.leading()) return;
    const now = s.clock.now();
    const next = nextDeadline(s.state, now);
    if (next === null) return;
    this.timer = s.clock.setTimeout(
      () => {
        this.timer = null;
        this.changed();
      },
      Math.min(next - now, MAX_SLEEP_MS),
    );
  }
}
