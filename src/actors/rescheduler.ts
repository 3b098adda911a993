// Rescheduler: carries out RESCHEDULE effects. The next run of an instance is a new task
// (Aurora: role-env-job-instance-uuid) whose ancestorId points back and which carries the
// failure count over. Effects raised in the same tick are committed together.

import { taskIdFor } from "./ports.js";
import type { Scheduler } from "./scheduler.js";

export class Rescheduler {
  private readonly queue = new Set<string>();
  private readonly inFlight = new Set<string>();
  private scheduled = false;

  constructor(private readonly s: Scheduler) {}

  get busy(): boolean {
    return this.scheduled || this.inFlight.size > 0;
  }

  reschedule(taskId: string): void {
    if (this.inFlight.has(taskId)) return;
    this.queue.add(taskId);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const s = this.s;
    const ids = [...this.queue];
    this.queue.clear();
    const events = [];
    for (const id of ids) {
      const t = s.state.tasks.get(id);
      if (!t || !t.rescheduleWanted || t.successorId !== null) continue;
      const job = s.state.jobs.get(t.job)!;
      const newId = taskIdFor(t.job, t.instance, s.ids);
      events.push(
        s.event(
          "TaskCreated",
          {
            taskId: newId,
            job: t.job,
            instance: t.instance,
            configVersion: job.configVersion,
            ancestorId: t.taskId,
            failureCount: t.failureCount,
            state: "PENDING",
          },
          `rescheduled: ${t.taskId} ended ${t.state}` +
            (t.lastReason ? ` (${t.lastReason})` : "") +
            (job.config.task.service ? "; services always run again" : `; failure ${t.failureCount} of ${job.config.task.maxTaskFailures === -1 ? "unlimited" : job.config.task.maxTaskFailures}`),
        ),
      );
      this.inFlight.add(id);
    }
    if (events.length === 0) return;
    try {
      await s.commit(events);
    } catch (err) {
      s.log.error({ err }, "reschedule commit failed");
    } finally {
      for (const id of ids) this.inFlight.delete(id);
    }
  }
}
