// The preemptor's search (after Aurora's preemptor/): find an agent where evicting some
// preemptible tasks would let a pending task fit, choosing the slot with the fewest victims.
//
// Who may preempt whom (Aurora's PreemptionVictimFilter): a production task (non-preemptible
// tier) may preempt a preemptible one; otherwise both must have the same preemptibility and role,
// and the pending task a higher priority. Only tasks on the agent that are ASSIGNED, STARTING or RUNNING are
// candidates; victims are added largest first until the task fits.

import type { AgentId, TaskConfig, TaskId } from "../domain/types.js";
import { isPreemptible } from "../domain/tiers.js";
import type { AgentRecord, ClusterState, TaskRecord } from "../replay/state.js";
import { checkDedicated, checkLimits, checkMaintenance, checkValueConstraints, type TaskGroup } from "../scheduling/feasible.js";
import type { OfferBook } from "../scheduling/offers.js";

export interface Slot {
  agentId: AgentId;
  host: string;
  victims: TaskId[];
  /** Why these victims may be preempted, in words. */
  why: string;
}

/** Why `pending` may preempt `victim`, or null when it may not. */
function preemptionRight(pending: { role: string; cfg: TaskConfig }, victim: { role: string; cfg: TaskConfig }): string | null {
  const pendingPre = isPreemptible(pending.cfg.tier);
  const victimPre = isPreemptible(victim.cfg.tier);
  if (!pendingPre && victimPre) return `production (tier ${pending.cfg.tier}) preempts preemptible (tier ${victim.cfg.tier})`;
  if (pendingPre === victimPre && pending.role === victim.role && pending.cfg.priority > victim.cfg.priority) {
    return `higher priority (${pending.cfg.priority} > ${victim.cfg.priority}) within role ${pending.role}`;
  }
  return null;
}

const CANDIDATE_STATES = new Set(["ASSIGNED", "STARTING", "RUNNING"]);

/** The best slot for one task of group g, or null. `taken` holds victims already chosen this pass. */
export function findSlot(
  state: ClusterState,
  offers: OfferBook,
  agents: readonly AgentRecord[],
  g: TaskGroup,
  taskId: TaskId,
  taken: ReadonlySet<TaskId>,
): Slot | null {
  const need = g.config.resources;
  let best: (Slot & { cost: number }) | null = null;
  for (const agent of agents) {
    // Placement rules other than resources must hold: preemption only frees resources.
    if (checkDedicated(g, agent) || checkMaintenance(state, agent)) continue;
    const vetoes: never[] = [];
    checkValueConstraints(g, agent, vetoes);
    checkLimits(state, g, agent, vetoes);
    if (vetoes.length) continue;
    const free = offers.free(agent, taskId);
    let ports = offers.freePortCount(agent);
    const fits = () =>
      free.cpus >= need.cpus - 1e-9 &&
      free.ramMb >= need.ramMb &&
      free.diskMb >= need.diskMb &&
      free.gpus >= (need.gpus ?? 0) &&
      ports >= need.ports.length;
    if (fits()) continue; // it fits without preemption: placement will take it
    const candidates: Array<{ t: TaskRecord; cfg: TaskConfig; why: string }> = [];
    for (const id of agent.tasks) {
      const t = state.tasks.get(id)!;
      if (!CANDIDATE_STATES.has(t.state) || taken.has(id)) continue;
      const cfg = state.taskConfig(t);
      const why = preemptionRight({ role: g.role, cfg: g.config }, { role: state.jobs.get(t.job)!.config.role, cfg });
      if (why) candidates.push({ t, cfg, why });
    }
    candidates.sort(
      (a, b) =>
        b.cfg.resources.cpus - a.cfg.resources.cpus || b.cfg.resources.ramMb - a.cfg.resources.ramMb || (a.t.taskId < b.t.taskId ? -1 : 1),
    );
    const victims: typeof candidates = [];
    for (const c of candidates) {
      if (fits()) break;
      victims.push(c);
      free.cpus += c.cfg.resources.cpus;
      free.ramMb += c.cfg.resources.ramMb;
      free.diskMb += c.cfg.resources.diskMb;
      free.gpus += c.cfg.resources.gpus ?? 0;
      ports += Object.keys(c.t.ports ?? {}).length;
    }
    if (!fits() || victims.length === 0) continue;
    const cost = victims.length * 1e6 + victims.reduce((n, v) => n + v.cfg.resources.cpus, 0);
    if (!best || cost < best.cost) {
      best = { agentId: agent.agentId, host: agent.host, victims: victims.map((v) => v.t.taskId), why: victims[0]!.why, cost };
    }
  }
  if (!best) return null;
  return { agentId: best.agentId, host: best.host, victims: best.victims, why: best.why };
}
