// Preemptor actor: every preemptionIntervalMs, for each blocked task group whose oldest pending
// task has waited preemptionDelayMs, look for a slot (preemptor/preemptor.ts). A found slot is
// one atomic commit: SlotReserved (held for the task for reservationMs) and the victims to
// PREEMPTING, each with the reason. The task machine then orders their kills; once they end,
// placement puts the task in the held slot.

import { findSlot } from "../preemptor/preemptor.js";
import { TaskGroup } from "../scheduling/feasible.js";
import { OfferBook } from "../scheduling/offers.js";
import { Periodic } from "./periodic.js";
import type { Scheduler } from "./scheduler.js";
import { enteredTs, fmtMs } from "./timers.js";

export class Preemptor {
  private running = false;
  private readonly periodic: Periodic;
  /** Slots found since start (for tests and metrics). */
  slots = 0;

  constructor(private readonly s: Scheduler) {
    this.periodic = new Periodic(
      s.clock,
      () => s.policy.preemptionIntervalMs,
      () => this.pass(),
    );
  }

  start(): void {
    this.periodic.start();
  }

  stop(): void {
    this.periodic.stop();
  }

  /** One search over the blocked groups. Exposed for tests. */
  async pass(): Promise<number> {
    const s = this.s;
    if (this.running || !s.leading || s.state.pending.size === 0) return 0;
    this.running = true;
    try {
      const now = s.clock.now();
      const st = s.state;
      const offers = new OfferBook(st);
      const agents = s.placement.activeAgents();
      const seen = new Set<string>();
      const taken = new Set<string>();
      const events = [];
      for (const taskId of st.pending) {
        const t = st.tasks.get(taskId)!;
        const key = `${t.job}#${t.configVersion}`;
        if (seen.has(key) || st.reservations.has(taskId)) continue;
        if (s.placement.reasonFor(taskId) === undefined) continue; // not blocked (or not looked at yet)
        if (now - enteredTs(t) < s.policy.preemptionDelayMs) continue;
        seen.add(key);
        const g = new TaskGroup(st.jobs.get(t.job)!, t.configVersion);
        const slot = findSlot(st, offers, agents, g, taskId, taken);
        if (!slot) continue;
        for (const v of slot.victims) taken.add(v);
        events.push(
          s.event(
            "SlotReserved",
            { taskId, agentId: slot.agentId, victims: slot.victims, expiresTs: now + s.policy.reservationMs },
            `${taskId} waited ${fmtMs(now - enteredTs(t))} (${s.placement.reasonFor(taskId)}); preempting ${slot.victims.length} task(s) on ${slot.host} and holding the slot for ${fmtMs(s.policy.reservationMs)}`,
          ),
        );
        for (const v of slot.victims) {
          events.push(s.event("TaskStateChanged", { taskId: v, to: "PREEMPTING" }, `preempted for ${taskId} of ${t.job}: ${slot.why}`));
        }
        this.slots++;
      }
      if (events.length) await s.commit(events);
      return events.length;
    } catch (err) {
      s.log.error({ err }, "preemption pass failed");
      return 0;
    } finally {
      this.running = false;
    }
  }
}
