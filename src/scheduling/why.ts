// `roost task why TASK_ID`: the placement view of one task, with the hosts and the numbers.
//   PENDING   every active agent judged now: vetoes grouped by reason with examples, and the
//             hosts that could take it (then it is only waiting for its turn or backoff)
//   THROTTLED the flap penalty and when it ends
//   placed    the decision logged with TaskAssigned (score, runners-up, vetoes seen)

import type { PlacementDecision } from "../domain/events.js";
import { isoTime } from "../domain/time.js";
import { asTaskId, type TaskId } from "../domain/types.js";
import type { AgentRecord, ClusterState } from "../replay/state.js";
import { HISTORY_STRIDE } from "../replay/state.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import { TaskGroup } from "./feasible.js";
import { OfferBook } from "./offers.js";
import { explain } from "./stack.js";
import { reasonOf, vetoDetail } from "./vetoes.js";

export interface WhyReport {
  taskId: TaskId;
  state: string;
  summary: string;
  /** PENDING: how many hosts each reason rules out, with up to 3 examples and their numbers. */
  vetoes?: Array<{ reason: string; hosts: number; examples: Array<{ host: string; detail: string }> }>;
  /** PENDING: hosts that could take it now, best first (up to 5). */
  feasible?: Array<{ host: string; score: number }>;
  /** Placed: the logged decision, and where it is in the log. */
  placement?: { host: string; seq: number; decision: PlacementDecision | null; reason: string | null };
  heldSlot?: { host: string; victims: TaskId[]; expiresTs: number };
}

function whyPending(
  state: ClusterState,
  agents: readonly AgentRecord[],
  taskId: TaskId,
  mode: "spread" | "binpack",
  pendingReason: string | undefined,
): WhyReport {
  const t = state.tasks.get(taskId)!;
  const g = new TaskGroup(state.jobs.get(t.job)!, t.configVersion);
  const verdicts = explain(state, new OfferBook(state), agents, g, taskId, mode);
  const byReason = new Map<string, Array<{ host: string; detail: string }>>();
  const feasible: Array<{ host: string; score: number }> = [];
  for (const v of verdicts) {
    if (v.score !== null) {
      feasible.push({ host: v.host, score: v.score });
      continue;
    }
    const reason = reasonOf(v.vetoes);
    let list = byReason.get(reason);
    if (!list) byReason.set(reason, (list = []));
    list.push({ host: v.host, detail: v.vetoes.map(vetoDetail).join("; ") });
  }
  feasible.sort((a, b) => b.score - a.score);
  const vetoes = [...byReason.entries()]
    .map(([reason, hosts]) => ({ reason, hosts: hosts.length, examples: hosts.slice(0, 3) }))
    .sort((a, b) => b.hosts - a.hosts || (a.reason < b.reason ? -1 : 1));
  const held = state.reservations.get(taskId);
  const summary =
    agents.length === 0
      ? "no active agents"
      : feasible.length > 0
        ? `${feasible.length} of ${agents.length} hosts could take it now; it waits for its group's turn${pendingReason ? ` (last round: ${pendingReason})` : ""}`
        : `none of ${agents.length} hosts can take it: ${pendingReason ?? vetoes[0]?.reason ?? "unknown"}`;
  return {
    taskId,
    state: t.state,
    summary,
    vetoes,
    feasible: feasible.slice(0, 5),
    ...(held
      ? { heldSlot: { host: state.agents.get(held.agentId)?.host ?? held.agentId, victims: held.victims, expiresTs: held.expiresTs } }
      : {}),
  };
}

/** Where the task's ASSIGNED state change sits in the log (its TaskAssigned event). */
function assignedAt(state: ClusterState, taskId: TaskId): { seq: number; idx: number } | null {
  const h = state.tasks.get(taskId)?.history ?? [];
  for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
    if (TASK_STATES[h[i + 3]!] === "ASSIGNED") return { seq: h[i]!, idx: h[i + 1]! };
  }
  return null;
}

export interface WhyDeps {
  agents: readonly AgentRecord[];
  mode: "spread" | "binpack";
  reasonFor(taskId: TaskId): string | undefined;
  log: { get(seq: number): Promise<{ events: Array<{ type: string; reason: string; data: unknown }> } | null> };
}

/** The answer to `roost task why`, whatever state the task is in. `id` is the user's: an unknown one is null. */
export async function whyTask(state: ClusterState, id: string, deps: WhyDeps): Promise<WhyReport | null> {
  const t = state.tasks.get(asTaskId(id));
  if (!t) return null;
  const taskId = t.taskId;
  if (t.state === "PENDING") return whyPending(state, deps.agents, taskId, deps.mode, deps.reasonFor(taskId));
  if (t.state === "THROTTLED") {
    return {
      taskId,
      state: t.state,
      summary: `flapping: held back ${t.throttleMs / 1000}s, until ${isoTime(t.throttledUntil)} (${t.lastReason})`,
    };
  }
  const at = assignedAt(state, taskId);
  if (!at) return { taskId, state: t.state, summary: `it was never placed (${t.lastReason})` };
  const ev = (await deps.log.get(at.seq))?.events[at.idx];
  const data = ev?.type === "TaskAssigned" ? (ev.data as { placement?: PlacementDecision }) : null;
  return {
    taskId,
    state: t.state,
    summary: `placed on ${t.host}: ${ev?.reason ?? "(record no longer in the log)"}`,
    placement: { host: t.host ?? "", seq: at.seq, decision: data?.placement ?? null, reason: ev?.reason ?? null },
  };
}
