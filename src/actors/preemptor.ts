// Preemptor actor: every preemptionIntervalMs, for each blocked task group whose oldest pending
// task has waited preemptionDelayMs, look for a slot (preemptor/preemptor.ts). A found slot is
// one atomic commit: SlotReserved (held for the task for reservationMs) and the victims to
// PREEMPTING, each with the reason. The task machine then orders their kills; once they end,
// placement puts the task in the held slot.

//
// An actor: a periodic "pass" message. It reads Placement's pending reasons and active agents
// (PlacementView), and tells nobody anything: its commit is what the others react to.

import type { TaskId } from "../domain/types.js";
import { findSlot } from "../preemptor/preemptor.js";
import { TaskGroup } from "../scheduling/feasible.js";
import { OfferBook } from "../scheduling/offers.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";
import { Periodic } from "./periodic.js";
import type { PlacementView } from "./placement.js";
import { enteredTs, fmtMs } from "./timers.js";

export type PreemptorMsg = { type: "pass" };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "leading" | "commit" | "event" | "metrics">;

export class Preemptor extends Actor<PreemptorMsg> {
  private readonly periodic: Periodic;
  /** Slots found since start (for tests and metrics). */
  slots = 0;

  constructor(
    private readonly s: Deps,
    private readonly placement: PlacementView,
  ) {
    super("preemptor", s.log, () => s.clock.now());
    this.periodic = new Periodic(
      s.clock,
      () => s.policy.preemptionIntervalMs,
      () => this.send({ type: "pass" }),
    );
  }

  /** Start searching (after the reconciliation window; not while quiesced). */
  start(): void {
    this.periodic.start();
  }

  protected override onStop(): void {
    this.periodic.stop();
  }

  protected async receive(): Promise<void> {
    await this.pass();
  }

  /** One search over the blocked groups; returns the events committed. */
  private async pass(): Promise<number> {
    const s = this.s;
    if (!s.leading() || s.state.pending.size === 0) return 0;
    try {
      const now = s.clock.now();
      const st = s.state;
      const offers = new OfferBook(st);
      const agents = this.placement.activeAgents();
      const taken = new Set<TaskId>();
      const events = [];
      let slots = 0;
      // Each group's oldest pending task that has no slot held for it (a group's tasks are in the
      // order they became PENDING, so when that one has not waited long enough, none has). The
      // groups are the state's (ClusterState.pendingGroups): a pass costs the groups, not the
      // backlog, which it used to walk task by task.
      for (const [job, versions] of st.pendingGroups()) {
        for (const [version, ids] of versions) {
          let taskId: TaskId | undefined;
          for (const id of ids) {
            if (!st.reservations.has(id)) {
              taskId = id;
              break;
            }
          }
          if (taskId === undefined) continue;
          const why = this.placement.reasonForGroup(job, version);
          if (why === undefined) continue; // not blocked (or not looked at yet)
          const t = st.tasks.get(taskId)!;
          if (now - enteredTs(t) < s.policy.preemptionDelayMs) continue;
          const g = new TaskGroup(st.jobs.get(job)!, version);
          const slot = findSlot(st, offers, agents, g, taskId, taken);
          if (!slot) continue;
          for (const v of slot.victims) taken.add(v);
          events.push(
            s.event(
              "SlotReserved",
              { taskId, agentId: slot.agentId, victims: slot.victims, expiresTs: now + s.policy.reservationMs },
              `${taskId} waited ${fmtMs(now - enteredTs(t))} (${why}); preempting ${slot.victims.length} task(s) on ${slot.host} and holding the slot for ${fmtMs(s.policy.reservationMs)}`,
            ),
          );
          for (const v of slot.victims) {
            events.push(s.event("TaskStateChanged", { taskId: v, to: "PREEMPTING" }, `preempted for ${taskId} of ${t.job}: ${slot.why}`));
          }
          this.slots++;
          slots++;
        }
      }
      if (events.length) {
        await s.commit(events);
        s.metrics.preempted(slots, taken.size);
      }
      return events.length;
    } catch (err) {
      s.log.error({ err }, "preemption pass failed");
      return 0;
    }
  }
}
