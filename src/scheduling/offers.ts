// Offers: each active agent's free resources (what it has, less what its tasks use), as a view
// over ClusterState plus what the current round has already handed out. Placements consume
// offers; a slot the preemptor holds for a task is not offered to any other task.

import { roundCpus } from "../domain/resources.js";
import type { AgentId, Resources, TaskId } from "../domain/types.js";
import type { AgentRecord, ClusterState } from "../replay/state.js";

/** The agents that take tasks now (ACTIVE), in a stable order (by id): placement's, and every judge's. */
export function activeAgents(state: ClusterState): AgentRecord[] {
  return [...state.agents.values()].filter((a) => a.state === "ACTIVE").sort((x, y) => (x.agentId < y.agentId ? -1 : 1));
}

export interface Free {
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus: number;
}

interface Taken extends Free {
  ports: Set<number>;
}

export class OfferBook {
  /** What this round handed out, per agent. */
  private readonly taken = new Map<AgentId, Taken>();
  /** Resources held for pending tasks, per agent: taskId → resources. */
  private readonly held = new Map<AgentId, Map<TaskId, Resources>>();

  constructor(private readonly state: ClusterState) {
    for (const r of state.reservations.values()) {
      const t = state.tasks.get(r.taskId);
      if (t?.state !== "PENDING") continue;
      let m = this.held.get(r.agentId);
      if (!m) this.held.set(r.agentId, (m = new Map()));
      m.set(r.taskId, state.taskConfig(t).resources);
    }
  }

  /** Free resources of `agent` as offered to `taskId` (slots held for other tasks excluded). */
  free(agent: AgentRecord, taskId: TaskId): Free {
    const r = agent.resources;
    const u = agent.used;
    const t = this.taken.get(agent.agentId);
    let cpus = r.cpus - u.cpus - (t?.cpus ?? 0);
    let ramMb = r.ramMb - u.ramMb - (t?.ramMb ?? 0);
    let diskMb = r.diskMb - u.diskMb - (t?.diskMb ?? 0);
    let gpus = (r.gpus ?? 0) - u.gpus - (t?.gpus ?? 0);
    const held = this.held.get(agent.agentId);
    if (held) {
      for (const [holder, res] of held) {
        if (holder === taskId) continue;
        cpus -= res.cpus;
        ramMb -= res.ramMb;
        diskMb -= res.diskMb;
        gpus -= res.gpus ?? 0;
      }
    }
    return { cpus: roundCpus(cpus), ramMb, diskMb, gpus };
  }

  /** True when `taskId` holds a slot on this agent. */
  holds(agentId: AgentId, taskId: TaskId): boolean {
    return this.held.get(agentId)?.has(taskId) ?? false;
  }

  /** Free ports in the agent's ranges, lowest first; null when fewer than n are free. */
  pickPorts(agent: AgentRecord, n: number): number[] | null {
    if (n === 0) return [];
    const taken = this.taken.get(agent.agentId)?.ports;
    const out: number[] = [];
    for (const [lo, hi] of agent.resources.ports) {
      for (let p = lo; p <= hi; p++) {
        if (!agent.usedPorts.has(p) && !(taken?.has(p) ?? false)) {
          out.push(p);
          if (out.length === n) return out;
        }
      }
    }
    return null;
  }

  /** How many ports are free on the agent (for reasons and `task why`). */
  freePortCount(agent: AgentRecord): number {
    const taken = this.taken.get(agent.agentId)?.ports.size ?? 0;
    let total = 0;
    for (const [lo, hi] of agent.resources.ports) total += hi - lo + 1;
    return total - agent.usedPorts.size - taken;
  }

  consume(agent: AgentRecord, res: Resources, ports: number[], taskId: TaskId): void {
    let t = this.taken.get(agent.agentId);
    if (!t) this.taken.set(agent.agentId, (t = { cpus: 0, ramMb: 0, diskMb: 0, gpus: 0, ports: new Set() }));
    t.cpus = roundCpus(t.cpus + res.cpus);
    t.ramMb += res.ramMb;
    t.diskMb += res.diskMb;
    t.gpus += res.gpus ?? 0;
    for (const p of ports) t.ports.add(p);
    // A held slot, once used by its task, is no longer held.
    this.held.get(agent.agentId)?.delete(taskId);
  }
}
