// Rescheduler: carries out RESCHEDULE effects. The next run of an instance is a new task
// (Aurora: role-env-job-instance-uuid) whose ancestorId points back and which carries the
// failure count over. Effects raised in the same tick are committed together: a "reschedule"
// message queues the task, and the first of a tick asks for one "flush" on the next.

import type { TaskId } from "../domain/types.js";
import { HISTORY_STRIDE, type TaskRecord } from "../replay/state.js";
import { KILL_STATES, TASK_STATES } from "../statemachines/taskStates.js";
import { Actor } from "./actor.js";
import { taskIdFor } from "./clock.js";
import type { TermContext } from "./context.js";
import type { SchedulingPolicy } from "./policy.js";
import { fmtMs } from "./timers.js";

export type ReschedulerMsg = { type: "reschedule"; taskId: TaskId } | { type: "flush" };

type Deps = Pick<TermContext, "state" | "ids" | "clock" | "log" | "policy" | "commit" | "event">;

export class Rescheduler extends Actor<ReschedulerMsg> {
  private readonly queue = new Set<TaskId>();
  private readonly inFlight = new Set<TaskId>();
  private scheduled = false;

  constructor(private readonly s: Deps) {
    super("rescheduler", s.log, () => s.clock.now());
  }

  protected override onStop(): void {
    // rescheduleWanted stays in the state: a later leader resumes it.
    this.queue.clear();
  }

  override get busy(): boolean {
    return super.busy || this.scheduled || this.inFlight.size > 0;
  }

  protected receive(m: ReschedulerMsg): void | Promise<void> {
    if (m.type === "flush") return this.flush();
    if (this.inFlight.has(m.taskId)) return;
    this.queue.add(m.taskId);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.send({ type: "flush" });
      });
    }
  }

  private async flush(): Promise<void> {
    if (this.isStopped) return;
    const s = this.s;
    const ids = [...this.queue];
    this.queue.clear();
    const events = [];
    for (const id of ids) {
      const t = s.state.tasks.get(id);
      if (!t?.rescheduleWanted || t.successorId !== null) continue;
      const job = s.state.jobs.get(t.job)!;
      const newId = taskIdFor(t.job, t.instance, s.ids);
      const flap = flapping(t, s.policy);
      // While an update rolls the job, a task runs again with its own config (Aurora's
      // reschedule copies the task's config): the update, not a crash, decides which config an
      // instance runs. Otherwise, the job's current one.
      const updating = s.state.activeUpdate(t.job);
      const configVersion = updating ? t.configVersion : job.configVersion;
      events.push(
        s.event(
          "TaskCreated",
          {
            taskId: newId,
            job: t.job,
            instance: t.instance,
            configVersion,
            ancestorId: t.taskId,
            failureCount: t.failureCount,
            state: flap ? "THROTTLED" : "PENDING",
            ...(flap ? { throttleMs: flap.penaltyMs } : {}),
          },
          `rescheduled: ${t.taskId} ended ${t.state}` +
            (t.lastReason ? ` (${t.lastReason})` : "") +
            (job.config.task.service
              ? "; services always run again"
              : `; failure ${t.failureCount} of ${job.config.task.maxTaskFailures === -1 ? "unlimited" : job.config.task.maxTaskFailures}`) +
            (flap ? `; flapping (${flap.why}): throttled for ${fmtMs(flap.penaltyMs)}` : "") +
            (updating ? `; with its own config version ${configVersion}: update ${updating.updateId} is ${updating.status}` : ""),
        ),
      );
      this.inFlight.add(id);
    }
    if (events.length === 0) return;
    try {
      // Checked again once the records ahead of it are folded: a kill of the instance on the
      // wire overtakes its reschedule (the overtaken ones are dropped; see overtaken()).
      await s.commit(events, { recheck: true });
    } catch (err) {
      s.log.error({ err }, "reschedule commit failed");
    } finally {
      for (const id of ids) this.inFlight.delete(id);
    }
  }
}

/** States that mean the task was stopped on purpose: its short life is not its fault. */
const INTERRUPTED = KILL_STATES;

/**
 * Aurora's flapping rule: a task that lived (RUNNING) less than flapThresholdMs, and was not
 * interrupted by KILLING, RESTARTING, DRAINING or PREEMPTING, makes its successor THROTTLED. The
 * penalty is a truncated binary backoff accumulated along the ancestor chain.
 */
function flapping(t: TaskRecord, policy: SchedulingPolicy): { penaltyMs: number; why: string } | null {
  const h = t.history;
  let runningTs: number | null = null;
  for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
    const state = TASK_STATES[h[i + 3]!]!;
    if (INTERRUPTED.has(state)) return null;
    if (state === "RUNNING" && runningTs === null) runningTs = h[i + 2]!;
  }
  const endTs = h[h.length - HISTORY_STRIDE + 2]!;
  const lived = runningTs === null ? 0 : endTs - runningTs;
  if (lived >= policy.flapThresholdMs) return null;
  const penaltyMs = t.throttleMs > 0 ? Math.min(t.throttleMs * 2, policy.throttleMaxMs) : policy.throttleInitialMs;
  return { penaltyMs, why: runningTs === null ? "it never reached RUNNING" : `it ran ${fmtMs(lived)} < ${fmtMs(policy.flapThresholdMs)}` };
}
