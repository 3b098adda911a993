// StatusIngest: agent status updates → TaskStateChanged. Delivery is at least once and in order
// per task; a duplicate (seq already applied) is acknowledged without an event. The reply,
// which is the acknowledgement, goes out only after the event is committed.
//
// Nothing an agent says is taken on trust (invariant 6). An update must match its schema
// (agent/protocol.ts): only the states an agent reports, bounded text, integer seqs. It must come
// from an agent the log knows, about a task the log places on that agent; anything else appends
// nothing. An update that breaks the schema is refused with the field and the rule. Before this,
// `state: "BOGUS"` for a running task was appended, and the fold threw on it forever.

import type { Reply } from "../bus/bus.js";
import { StatusRequestSchema, type StatusRequest } from "../agent/protocol.js";
import { asAgentId, asTaskId } from "../domain/types.js";
import { checker, formatProblems } from "../domain/validate.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { Actor, type ActorRef } from "./actor.js";
import type { TermContext } from "./context.js";
import type { LauncherMsg } from "./launcher.js";

const checkStatus = checker(StatusRequestSchema);

type StatusReply = Reply<{ duplicate: boolean }>;
/** `at`: performance.now() at its receipt (roost_status_update_latency_seconds runs from there). */
export type StatusIngestMsg = { type: "status"; data: unknown; at: number; reply: (r: StatusReply) => void; fail: (err: Error) => void };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "commit" | "event" | "metrics">;

/**
 * One message per update. The handler decides and starts the commit, and returns: it does not hold
 * the mailbox while the record is on the wire, so the updates of many tasks share a group commit.
 * The reply (the acknowledgement) goes out when the commit lands.
 */
export class StatusIngest extends Actor<StatusIngestMsg> {
  constructor(
    private readonly s: Deps,
    private readonly launcher: ActorRef<LauncherMsg>,
  ) {
    super("statusIngest", s.log, () => s.clock.now());
  }

  /** Ask: one status update, answered once decided (and committed, when it changes anything). */
  handle(data: unknown): Promise<StatusReply> {
    const at = performance.now();
    return this.ask((reply, fail) => ({ type: "status", data, at, reply, fail }));
  }

  protected override onStop(dropped: StatusIngestMsg[]): void {
    for (const m of dropped) m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected receive(m: StatusIngestMsg): void {
    const r = this.decide(m.data, m.at);
    if (r instanceof Promise) r.then(m.reply, m.fail);
    else m.reply(r);
  }

  private decide(data: unknown, at: number): StatusReply | Promise<StatusReply> {
    const s = this.s;
    const problems = checkStatus(data);
    if (problems.length > 0) {
      s.metrics.statusUpdate("refused");
      return { ok: false, error: `invalid status update: ${formatProblems(problems)}` };
    }
    const req = data as StatusRequest;
    const u = req.update;
    // The update passed its schema: its ids are ids from here on (unknown ones miss below).
    const agentId = asAgentId(req.agentId);
    const taskId = asTaskId(u.taskId);
    const agent = s.state.agents.get(agentId);
    if (!agent) {
      s.metrics.statusUpdate("refused");
      return { ok: false, error: `agentId: agent ${agentId} is not registered; rule: an agent registers before it reports` };
    }
    const task = s.state.tasks.get(taskId);
    const live = !TERMINAL_STATES.has(u.state);
    if (!task || task.agentId !== agentId) {
      // The log does not place this task on this agent: a stray copy. Kill it if it still runs;
      // acknowledge, so the agent stops sending it; log nothing.
      if (live) {
        this.launcher.send({
          type: "kill",
          taskId,
          agentId,
          why: `agent ${agentId} runs ${taskId}, which the log does not place there`,
          now: true,
        });
      }
      s.metrics.statusUpdate("stray");
      return { ok: true, value: { duplicate: false } };
    }
    if (u.seq <= task.agentSeq) {
      s.metrics.statusUpdate("duplicate");
      return { ok: true, value: { duplicate: true } };
    }
    const exitCode = typeof u.exitCode === "number" ? u.exitCode : undefined;
    const message = typeof u.message === "string" && u.message ? u.message : undefined;
    const reason = `agent on ${task.host} reported ${u.state}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}${message ? `: ${message}` : ""}`;
    return s
      .commit([
        s.event(
          "TaskStateChanged",
          {
            taskId,
            to: u.state,
            agentSeq: u.seq,
            ...(exitCode !== undefined ? { exitCode } : {}),
            ...(message ? { message } : {}),
          },
          reason,
        ),
      ])
      .then(
        () => {
          s.metrics.statusUpdate("committed", (performance.now() - at) / 1000);
          return { ok: true, value: { duplicate: false } } as StatusReply;
        },
        (err: unknown) => {
          s.metrics.statusUpdate("error");
          throw err;
        },
      );
  }
}
