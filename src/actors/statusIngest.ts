// StatusIngest: agent status updates → TaskStateChanged. Delivery is at least once and in order
// per task; a duplicate (seq already applied) is acknowledged without an event. The reply,
// which is the acknowledgement, goes out only after the event is committed.
//
// Nothing an agent says is taken on trust (invariant 6). An update must match its schema
// (agent/protocol.ts): only the states an agent reports, bounded text, integer seqs. It must come
// from an agent the log knows, about a task the log places on that agent; anything else appends
// nothing. An update that breaks the schema is refused with the field and the rule. Before this,
// `state: "BOGUS"` for a running task was appended, and the fold threw on it forever.

import { subjects, type Reply } from "../bus/bus.js";
import { StatusRequestSchema, type StatusRequest } from "../agent/protocol.js";
import { checker, formatProblems } from "../domain/validate.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import type { Scheduler } from "./scheduler.js";

const checkStatus = checker(StatusRequestSchema);

export class StatusIngest {
  constructor(private readonly s: Scheduler) {}

  serve(): Array<() => void> {
    return [this.s.bus.serve(subjects.status, (data) => this.handle(data))];
  }

  async handle(data: unknown): Promise<Reply<{ duplicate: boolean }>> {
    const s = this.s;
    const problems = checkStatus(data);
    if (problems.length > 0) return { ok: false, error: `invalid status update: ${formatProblems(problems)}` };
    const req = data as StatusRequest;
    const u = req.update;
    const agent = s.state.agents.get(req.agentId);
    if (!agent) return { ok: false, error: `agentId: agent ${req.agentId} is not registered; rule: an agent registers before it reports` };
    const task = s.state.tasks.get(u.taskId);
    const live = !TERMINAL_STATES.has(u.state);
    if (!task || task.agentId !== req.agentId) {
      // The log does not place this task on this agent: a stray copy. Kill it if it still runs;
      // acknowledge, so the agent stops sending it; log nothing.
      if (live)
        s.launcher.kill(u.taskId, req.agentId, `agent ${req.agentId} runs ${u.taskId}, which the log does not place there`, { now: true });
      return { ok: true, value: { duplicate: false } };
    }
    if (u.seq <= task.agentSeq) return { ok: true, value: { duplicate: true } };
    const exitCode = typeof u.exitCode === "number" ? u.exitCode : undefined;
    const message = typeof u.message === "string" && u.message ? u.message : undefined;
    const reason = `agent on ${task.host} reported ${u.state}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}${message ? `: ${message}` : ""}`;
    await s.commit([
      s.event(
        "TaskStateChanged",
        {
          taskId: u.taskId,
          to: u.state,
          agentSeq: u.seq,
          ...(exitCode !== undefined ? { exitCode } : {}),
          ...(message ? { message } : {}),
        },
        reason,
      ),
    ]);
    return { ok: true, value: { duplicate: false } };
  }
}
