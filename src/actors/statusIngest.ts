// StatusIngest: agent status updates → TaskStateChanged. Delivery is at least once and in order
// per task; a duplicate (seq already applied) is acknowledged without an event. The reply,
// which is the acknowledgement, goes out only after the event is committed.

import { subjects, type Reply } from "../bus/bus.js";
import type { StatusRequest } from "../agent/protocol.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import type { Scheduler } from "./scheduler.js";

export class StatusIngest {
  constructor(private readonly s: Scheduler) {}

  serve(): Array<() => void> {
    return [this.s.bus.serve(subjects.status, (data) => this.handle(data as StatusRequest))];
  }

  async handle(req: StatusRequest): Promise<Reply<{ duplicate: boolean }>> {
    const s = this.s;
    const u = req?.update;
    if (!u || typeof u.taskId !== "string" || typeof u.seq !== "number" || typeof u.state !== "string") {
      return { ok: false, error: "status update must have taskId (string), seq (number) and state (string)" };
    }
    const task = s.state.tasks.get(u.taskId);
    const live = !TERMINAL_STATES.has(u.state as never);
    if (!task || task.agentId !== req.agentId) {
      // The log does not know this task on this agent: a stray copy. Kill it if it still runs.
      if (live) s.launcher.kill(u.taskId, req.agentId, `agent ${req.agentId} runs ${u.taskId}, which the log does not place there`);
      return { ok: true, value: { duplicate: false } };
    }
    if (u.seq <= task.agentSeq) return { ok: true, value: { duplicate: true } };
    const reason =
      `agent on ${task.host} reported ${u.state}` +
      (u.exitCode !== undefined && u.exitCode !== null ? ` (exit code ${u.exitCode})` : "") +
      (u.message ? `: ${u.message}` : "");
    await s.commit([
      s.event(
        "TaskStateChanged",
        {
          taskId: u.taskId,
          to: u.state,
          agentSeq: u.seq,
          ...(u.exitCode !== undefined && u.exitCode !== null ? { exitCode: u.exitCode } : {}),
          ...(u.message ? { message: u.message } : {}),
        },
        reason,
      ),
    ]);
    return { ok: true, value: { duplicate: false } };
  }
}
