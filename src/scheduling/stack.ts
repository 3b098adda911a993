// The placement stack for one task group in one round (after Nomad's stack.go): walk the active
// agents from a rotating cursor, veto or score each, stop after `candidateLimit` feasible ones,
// take the best. When no agent at all can take the group's next task, none of its identical
// tasks can, so the group stops for this round with the reason of the agent that came closest.

import type { PlacementDecision } from "../domain/events.js";
import type { AgentId, TaskId } from "../domain/types.js";
import type { AgentRecord, ClusterState } from "../replay/state.js";
import { scheduledForMaintenance, vetoes, type TaskGroup } from "./feasible.js";
import type { Free, OfferBook } from "./offers.js";
import { binpackScore, spreadScore } from "./rank.js";
import { reasonOf, totalScore, type Veto } from "./vetoes.js";

/** Subtracted from a SCHEDULED host's score: more than any two scores differ by otherwise. */
const SCHEDULED_PENALTY = 1000;

export interface StackOptions {
  placementMode: "spread" | "binpack";
  candidateLimit: number;
}

export interface Assignment {
  taskId: TaskId;
  agentId: AgentId;
  host: string;
  ports: Record<string, number>;
  decision: PlacementDecision;
  reason: string;
}

export interface GroupOutcome {
  assignments: Assignment[];
  /** Set when the group's next task fits nowhere: why (the closest agent's vetoes). */
  blocked: string | null;
}

interface Candidate {
  agent: AgentRecord;
  score: number;
  free: Free;
}

export class PlacementStack {
  /** Where the next scan starts: rotating spreads load and bounds the work per task. */
  private cursor = 0;

  constructor(private readonly opts: StackOptions) {
    if (!(opts.candidateLimit >= 1)) throw new Error(`candidateLimit must be at least 1 (got ${opts.candidateLimit})`);
  }

  /** Place up to `max` of `taskIds` (all of group g) on `agents` (the active ones, stable order). */
  placeGroup(
    state: ClusterState,
    offers: OfferBook,
    agents: readonly AgentRecord[],
    g: TaskGroup,
    taskIds: readonly TaskId[],
    max: number,
  ): GroupOutcome {
    const assignments: Assignment[] = [];
    for (const taskId of taskIds) {
      if (assignments.length >= max) break;
      const a = this.placeOne(state, offers, agents, g, taskId);
      if (typeof a === "string") return { assignments, blocked: a };
      assignments.push(a);
    }
    return { assignments, blocked: null };
  }

  private score(state: ClusterState, g: TaskGroup, agent: AgentRecord, free: Free): number {
    const need = g.config.resources;
    const s =
      this.opts.placementMode === "binpack" ? binpackScore(agent, free, need) : spreadScore(agent, free, need, g.onAgent(state, agent));
    // A host SCHEDULED for maintenance ranks below every other feasible host (scores lie in -∞..1).
    return scheduledForMaintenance(state, agent) ? s - SCHEDULED_PENALTY : s;
  }

  /** One task: an Assignment, or the reason it fits nowhere. */
  private placeOne(
    state: ClusterState,
    offers: OfferBook,
    agents: readonly AgentRecord[],
    g: TaskGroup,
    taskId: TaskId,
  ): Assignment | string {
    const n = agents.length;
    if (n === 0) return "No active agents";
    // A slot the preemptor freed for this task comes first.
    const held = state.reservations.get(taskId);
    if (held) {
      const agent = state.agents.get(held.agentId);
      if (agent && agent.state === "ACTIVE" && vetoes(state, offers, g, agent, taskId).length === 0) {
        const free = offers.free(agent, taskId);
        const c = { agent, score: this.score(state, g, agent, free), free };
        return this.assign(state, offers, g, taskId, c, [], 1, 1, {}, true);
      }
    }
    const feasible: Candidate[] = [];
    const vetoCounts: Record<string, number> = {};
    const vetoed: Array<{ host: string; veto: string }> = [];
    let closest: { vetoes: Veto[]; score: number } | null = null;
    let evaluated = 0;
    const start = this.cursor % n;
    for (let i = 0; i < n && feasible.length < this.opts.candidateLimit; i++) {
      const agent = agents[(start + i) % n]!;
      evaluated++;
      const vs = vetoes(state, offers, g, agent, taskId);
      if (vs.length === 0) {
        const free = offers.free(agent, taskId);
        feasible.push({ agent, score: this.score(state, g, agent, free), free });
        continue;
      }
      const reason = reasonOf(vs);
      vetoCounts[reason] = (vetoCounts[reason] ?? 0) + 1;
      if (vetoed.length < 3) vetoed.push({ host: agent.host, veto: reason });
      const s = totalScore(vs);
      if (!closest || s < closest.score) closest = { vetoes: vs, score: s };
    }
    this.cursor = (start + evaluated) % n;
    if (feasible.length === 0) return reasonOf(closest!.vetoes);
    let best = 0;
    for (let i = 1; i < feasible.length; i++) if (feasible[i]!.score > feasible[best]!.score) best = i;
    const others = feasible.filter((_, i) => i !== best).sort((x, y) => y.score - x.score);
    const alternatives = [
      ...others.slice(0, 3).map((c) => ({ host: c.agent.host, score: c.score })),
      ...vetoed.slice(0, Math.max(0, 3 - Math.min(3, others.length))),
    ];
    return this.assign(state, offers, g, taskId, feasible[best]!, alternatives, evaluated, feasible.length, vetoCounts, false);
  }

  private assign(
    state: ClusterState,
    offers: OfferBook,
    g: TaskGroup,
    taskId: TaskId,
    c: Candidate,
    alternatives: PlacementDecision["alternatives"],
    evaluated: number,
    feasibleCount: number,
    vetoCounts: Record<string, number>,
    reserved: boolean,
  ): Assignment {
    const res = g.config.resources;
    const picked = offers.pickPorts(c.agent, res.ports.length)!;
    const ports: Record<string, number> = {};
    for (let i = 0; i < res.ports.length; i++) ports[res.ports[i]!] = picked[i]!;
    offers.consume(c.agent, res, picked, taskId);
    g.placed(state, c.agent);
    const decision: PlacementDecision = {
      mode: this.opts.placementMode,
      evaluated,
      feasible: feasibleCount,
      score: c.score,
      alternatives,
      vetoes: vetoCounts,
      ...(reserved ? { reserved: true } : {}),
    };
    const runnerUp = alternatives[0];
    const reason = reserved
      ? `placed on ${c.agent.host} in the slot the preemptor held for it`
      : `${this.opts.placementMode} on ${c.agent.host} (score ${c.score}, best of ${feasibleCount} feasible among ${evaluated} hosts looked at)` +
        (runnerUp ? `; next: ${runnerUp.host} ${runnerUp.score !== undefined ? `score ${runnerUp.score}` : `(${runnerUp.veto})`}` : "");
    return { taskId, agentId: c.agent.agentId, host: c.agent.host, ports, decision, reason };
  }
}

/** Every agent's verdict on a task, for `roost task why`: vetoes with numbers, or a score. */
export function explain(
  state: ClusterState,
  offers: OfferBook,
  agents: readonly AgentRecord[],
  g: TaskGroup,
  taskId: TaskId,
  mode: "spread" | "binpack",
): Array<{ host: string; agentId: AgentId; vetoes: Veto[]; score: number | null }> {
  return agents.map((agent) => {
    const vs = vetoes(state, offers, g, agent, taskId);
    if (vs.length) return { host: agent.host, agentId: agent.agentId, vetoes: vs, score: null };
    const free = offers.free(agent, taskId);
    const need = g.config.resources;
    const score = mode === "binpack" ? binpackScore(agent, free, need) : spreadScore(agent, free, need, g.onAgent(state, agent));
    return { host: agent.host, agentId: agent.agentId, vetoes: [], score };
  });
}
