// First-fit placement on cpus, ramMb, diskMb, gpus and named ports. Pure: state in, decisions
// out. The scheduling issue replaces it with a pipeline of feasibility checks and rankers.

import type { AgentRecord, ClusterState, TaskRecord } from "../replay/state.js";

export interface Assignment {
  taskId: string;
  agentId: string;
  host: string;
  ports: Record<string, number>;
  reason: string;
}

export interface Unplaced {
  taskId: string;
  reason: string;
}

export interface PlacementRound {
  assignments: Assignment[];
  unplaced: Unplaced[];
}

interface Free {
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus: number;
  takenPorts: Set<number>;
}

function freeOf(a: AgentRecord): Free {
  return {
    cpus: Math.round((a.resources.cpus - a.used.cpus) * 1000) / 1000,
    ramMb: a.resources.ramMb - a.used.ramMb,
    diskMb: a.resources.diskMb - a.used.diskMb,
    gpus: (a.resources.gpus ?? 0) - a.used.gpus,
    takenPorts: new Set(a.usedPorts),
  };
}

function pickPorts(a: AgentRecord, free: Free, names: string[]): Record<string, number> | null {
  const out: Record<string, number> = {};
  let i = 0;
  if (names.length === 0) return out;
  for (const [lo, hi] of a.resources.ports) {
    for (let p = lo; p <= hi && i < names.length; p++) {
      if (!free.takenPorts.has(p)) out[names[i++]] = p;
    }
    if (i === names.length) return out;
  }
  return null;
}

/** Place as many of `taskIds` (PENDING, in order) as fit, first fit over agents by id. */
export function firstFit(state: ClusterState, taskIds: Iterable<string>): PlacementRound {
  const agents = [...state.agents.values()].filter((a) => a.state === "ACTIVE").sort((x, y) => (x.agentId < y.agentId ? -1 : 1));
  const free = new Map(agents.map((a) => [a.agentId, freeOf(a)]));
  const assignments: Assignment[] = [];
  const unplaced: Unplaced[] = [];
  for (const taskId of taskIds) {
    const task: TaskRecord | undefined = state.tasks.get(taskId);
    if (!task || task.state !== "PENDING") continue;
    const r = state.taskConfig(task).resources;
    const short = new Map<string, number>();
    let placed = false;
    for (const a of agents) {
      const f = free.get(a.agentId)!;
      const lacks: string[] = [];
      if (f.cpus < r.cpus) lacks.push("cpus");
      if (f.ramMb < r.ramMb) lacks.push("ramMb");
      if (f.diskMb < r.diskMb) lacks.push("diskMb");
      if (f.gpus < (r.gpus ?? 0)) lacks.push("gpus");
      const ports = lacks.length === 0 ? pickPorts(a, f, r.ports) : null;
      if (lacks.length === 0 && ports === null) lacks.push("ports");
      if (lacks.length > 0) {
        for (const l of lacks) short.set(l, (short.get(l) ?? 0) + 1);
        continue;
      }
      f.cpus = Math.round((f.cpus - r.cpus) * 1000) / 1000;
      f.ramMb -= r.ramMb;
      f.diskMb -= r.diskMb;
      f.gpus -= r.gpus ?? 0;
      for (const p of Object.values(ports!)) f.takenPorts.add(p);
      assignments.push({
        taskId,
        agentId: a.agentId,
        host: a.host,
        ports: ports!,
        reason:
          `first fit on ${a.host}: needs cpus ${r.cpus}, ramMb ${r.ramMb}, diskMb ${r.diskMb}` +
          (r.ports.length ? `, ports ${r.ports.join(",")}` : "") +
          `; left cpus ${f.cpus}, ramMb ${f.ramMb}, diskMb ${f.diskMb}`,
      });
      placed = true;
      break;
    }
    if (!placed) {
      const reason =
        agents.length === 0
          ? "No active agents"
          : "Insufficient: " +
            [...short.entries()]
              .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
              .map(([res, n]) => `${res} (${n} of ${agents.length} hosts)`)
              .join(", ");
      unplaced.push({ taskId, reason });
    }
  }
  return { assignments, unplaced };
}
