// Rankers: among feasible agents, which is best. Higher scores win.
//   spread  (default) the agent left emptiest, with fewer of the job's tasks on it;
//   binpack the agent left fullest, so whole hosts stay free for large tasks.

import type { AgentRecord } from "../replay/state.js";
import type { Free } from "./offers.js";
import type { Resources } from "../domain/types.js";

/** Mean fraction of cpus and ramMb left free on the agent after placing `need`. */
function freeFractionAfter(agent: AgentRecord, free: Free, need: Resources): number {
  const cpu = agent.resources.cpus > 0 ? (free.cpus - need.cpus) / agent.resources.cpus : 0;
  const ram = agent.resources.ramMb > 0 ? (free.ramMb - need.ramMb) / agent.resources.ramMb : 0;
  return (cpu + ram) / 2;
}

export function spreadScore(agent: AgentRecord, free: Free, need: Resources, jobTasksOnAgent: number): number {
  return round4(freeFractionAfter(agent, free, need) - 0.25 * jobTasksOnAgent);
}

export function binpackScore(agent: AgentRecord, free: Free, need: Resources): number {
  return round4(1 - freeFractionAfter(agent, free, need));
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
