// Timers: deadlines the leader enforces by appending events, so replay stays pure (the fold never
// reads a clock; it only sees the events a timer caused).
//   THROTTLED  → PENDING when the flap penalty is served
//   ASSIGNED, KILLING, RESTARTING, PREEMPTING, DRAINING → LOST after the transient timeout
//   a held slot → SlotReleased when it expires unused
// A timer is armed when the fold reports a task entering such a state (TIMER effect), and for
// every such task when a leader takes over. When it fires it re-checks the state: a task that
// moved on in the meantime is left alone.

//
// An actor: "watch" (re)arms a task's deadline, "fire" appends what it caused.

import type { TaskId } from "../domain/types.js";
import { HISTORY_STRIDE, type TaskRecord } from "../replay/state.js";
import { KILL_STATES } from "../statemachines/taskStates.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";

export type TimersMsg = { type: "watch"; taskId: TaskId } | { type: "fire"; taskId: TaskId; key: string };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "leading" | "reconciling" | "commit" | "event">;

export function fmtMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ""}`;
}

/** When the task entered its current state (the newest history entry). */
export function enteredTs(t: TaskRecord): number {
  return t.history[t.history.length - HISTORY_STRIDE + 2]!;
}

export class Timers extends Actor<TimersMsg> {
  private readonly armed = new Map<TaskId, { handle: unknown; key: string }>();

  constructor(private readonly s: Deps) {
    super("timers", s.log, () => s.clock.now());
  }

  protected receive(m: TimersMsg): void {
    if (m.type === "watch") this.watch(m.taskId);
    else this.fire(m.taskId, m.key);
  }

  protected override onStop(): void {
    for (const a of this.armed.values()) this.s.clock.clearTimeout(a.handle);
    this.armed.clear();
  }

  /** (Re)arm whatever deadline the task has now. */
  private watch(taskId: TaskId): void {
    const s = this.s;
    const t = s.state.tasks.get(taskId);
    if (!t || this.isStopped || s.reconciling()) return; // the term arms every deadline after reconciling
    const reservation = s.state.reservations.get(taskId);
    let dueTs: number;
    let key: string;
    if (t.state === "THROTTLED") {
      dueTs = t.throttledUntil;
      key = `throttle:${t.history.length}`;
    } else if (t.state === "ASSIGNED" || KILL_STATES.has(t.state)) {
      dueTs = enteredTs(t) + s.policy.transientTimeoutMs;
      key = `transient:${t.history.length}`;
    } else if (t.state === "PARTITIONED") {
      dueTs = enteredTs(t) + s.policy.partitionDelayMs;
      key = `partition:${t.history.length}`;
    } else if (reservation && t.state === "PENDING") {
      dueTs = reservation.expiresTs;
      key = `slot:${reservation.agentId}:${reservation.expiresTs}`;
    } else {
      return;
    }
    const prev = this.armed.get(taskId);
    if (prev?.key === key) return;
    if (prev) s.clock.clearTimeout(prev.handle);
    const handle = s.clock.setTimeout(
      () => {
        this.armed.delete(taskId);
        this.send({ type: "fire", taskId, key });
      },
      Math.max(0, dueTs - s.clock.now()),
    );
    this.armed.set(taskId, { handle, key });
  }

  /** Appends what the deadline caused; the commit is not awaited (deadlines that pass together share a record). */
  private fire(taskId: TaskId, key: string): void {
    const s = this.s;
    const t = s.state.tasks.get(taskId);
    if (!t || !s.leading()) return;
    const events = [];
    if (key.startsWith("throttle:") && t.state === "THROTTLED" && key === `throttle:${t.history.length}`) {
      events.push(s.event("TaskStateChanged", { taskId, to: "PENDING" }, `flap penalty of ${fmtMs(t.throttleMs)} served`));
    } else if (key.startsWith("transient:") && key === `transient:${t.history.length}`) {
      const since = fmtMs(s.clock.now() - enteredTs(t));
      const what =
        t.state === "ASSIGNED" ? `the agent on ${t.host} never reported the launch` : `the agent on ${t.host} never confirmed the kill`;
      events.push(
        s.event(
          "TaskStateChanged",
          { taskId, to: "LOST" },
          `${t.state} for ${since}, past the transient timeout of ${fmtMs(s.policy.transientTimeoutMs)}: ${what}`,
        ),
      );
    } else if (key.startsWith("partition:") && key === `partition:${t.history.length}`) {
      events.push(
        s.event(
          "TaskStateChanged",
          { taskId, to: "LOST" },
          `partitioned for ${fmtMs(s.clock.now() - enteredTs(t))}: the agent on ${t.host} is unreachable (partition policy: lost after ${fmtMs(s.policy.partitionDelayMs)})`,
        ),
      );
    } else if (key.startsWith("slot:")) {
      const r = s.state.reservations.get(taskId);
      if (r && key === `slot:${r.agentId}:${r.expiresTs}`) {
        events.push(
          s.event(
            "SlotReleased",
            { taskId, agentId: r.agentId },
            `the slot held on ${s.state.agents.get(r.agentId)?.host ?? r.agentId} for ${taskId} expired unused after ${fmtMs(s.policy.reservationMs)}`,
          ),
        );
      }
    }
    if (events.length === 0) return;
    s.commit(events).catch((err: Error) => s.log.error({ err, taskId }, "timer commit failed"));
  }
}
