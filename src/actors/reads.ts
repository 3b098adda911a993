// Reads: the API's questions (job.status, job.list, quota.get, task.history, task.why,
// cluster.info), answered from the folded state and the in-memory views of the leader (pending
// reasons, heartbeats, its actors' mailboxes). Its own actor, so a slow read (a task's history
// reads reasons back from the log) never holds a write, and a flood of writes never holds a read.
// It changes nothing; a read that awaits the log does not hold the mailbox either.

import { quotaReport } from "../quota/quota.js";
import { jobList, jobStatus, taskHistory, withReasons } from "../replay/queries.js";
import { whyTask } from "../scheduling/why.js";
import { Actor, type ActorStats } from "./actor.js";
import type { Liveness } from "./agentRegistry.js";
import { RequestError, type ReadOp } from "./api.js";
import type { TermContext } from "./context.js";
import type { PlacementView } from "./placement.js";

export type ReadsMsg = { type: ReadOp; req: unknown; reply: (r: unknown) => void; fail: (err: Error) => void };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "eventLog" | "schedulerId" | "epoch">;

export class Reads extends Actor<ReadsMsg> {
  constructor(
    private readonly s: Deps,
    private readonly placement: PlacementView,
    private readonly liveness: Liveness,
    /** The leader's actors, as `roost cluster status` shows them. */
    private readonly actorStats: () => ActorStats[],
  ) {
    super("reads", s.log, () => s.clock.now());
  }

  read(op: ReadOp, req: unknown): Promise<unknown> {
    return this.ask((reply, fail) => ({ type: op, req, reply, fail }));
  }

  protected override onStop(dropped: ReadsMsg[]): void {
    for (const m of dropped) m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected receive(m: ReadsMsg): void {
    let r: unknown;
    try {
      r = this.answer(m.type, m.req as Record<string, string>);
    } catch (err) {
      return m.fail(err as Error);
    }
    if (r instanceof Promise) r.then(m.reply, m.fail);
    else m.reply(r);
  }

  private answer(op: ReadOp, r: Record<string, string>): unknown {
    const s = this.s;
    switch (op) {
      case "quota.get":
        return quotaReport(s.state, r.role!);
      case "job.status": {
        const st = jobStatus(s.state, r.job!, { get: (id) => this.placement.reasonFor(id) });
        if (!st) throw new RequestError(`job ${r.job} does not exist`);
        return st;
      }
      case "job.list":
        return jobList(s.state);
      case "task.history": {
        const h = taskHistory(s.state, r.taskId!);
        if (!h) throw new RequestError(`task ${r.taskId} does not exist`);
        return withReasons(h, s.eventLog);
      }
      case "task.why":
        return whyTask(s.state, r.taskId!, {
          agents: this.placement.activeAgents(),
          mode: s.policy.placementMode,
          reasonFor: (id) => this.placement.reasonFor(id),
          log: s.eventLog,
        }).then((w) => {
          if (!w) throw new RequestError(`task ${r.taskId} does not exist`);
          return w;
        });
      case "cluster.info":
        return {
          schedulerId: s.schedulerId,
          epoch: s.epoch,
          seq: s.state.seq,
          events: s.state.eventCount,
          agents: [...s.state.agents.values()].map((a) => ({
            agentId: a.agentId,
            host: a.host,
            state: a.state,
            attributes: a.attributes,
            tasks: a.tasks.size,
            lastHeartbeat: this.liveness.lastHeartbeatOf(a.agentId),
          })),
          anomalies: s.state.anomalies,
          anomalyCount: s.state.anomalyCount,
          actors: this.actorStats(),
        };
    }
  }
}
