// Placement actor: one round at a time over the PENDING tasks; each round's decisions are
// committed together, and the next round starts after they are folded, so resources are never
// double-booked. Why a task could not be placed is kept in memory (as Aurora does) and shown
// by `roost job status`.

import { firstFit } from "../scheduling/firstFit.js";
import type { Scheduler } from "./scheduler.js";

export class Placement {
  /** taskId → why it is still PENDING. */
  readonly pendingReasons = new Map<string, string>();
  private running = false;
  private again = false;
  private stopped = false;

  constructor(private readonly s: Scheduler) {}

  get busy(): boolean {
    return this.running;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.loop());
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.round();
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
    }
  }

  private async round(): Promise<void> {
    const s = this.s;
    for (const id of this.pendingReasons.keys()) if (!s.state.pending.has(id)) this.pendingReasons.delete(id);
    if (s.state.pending.size === 0) return;
    const round = firstFit(s.state, s.state.pending);
    for (const u of round.unplaced) this.pendingReasons.set(u.taskId, u.reason);
    if (round.unplaced.length > 0) s.notifyChange();
    if (round.assignments.length === 0) return;
    const events = round.assignments.map((a) => {
      this.pendingReasons.delete(a.taskId);
      return s.event("TaskAssigned", { taskId: a.taskId, agentId: a.agentId, host: a.host, ports: a.ports }, a.reason);
    });
    try {
      await s.commit(events);
    } catch (err) {
      s.log.error({ err }, "placement commit failed");
    }
  }
}
