// Feasibility checks, Nomad-style: one small function per rule, each answering "can this agent
// take a task of this group?" with the vetoes it finds (none = feasible). Order and scores follow
// Aurora: dedicated, maintenance, constraint/limit, then resources.

import type { JobRecord } from "../replay/state.js";
import type { AgentRecord, ClusterState } from "../replay/state.js";
import type { AgentId, TaskConfig, TaskId } from "../domain/types.js";
import { ON_AGENT_STATES } from "../statemachines/taskStates.js";
import { compileConstraints, dedicatedMatches, type CompiledConstraints } from "./constraints.js";
import type { OfferBook } from "./offers.js";
import type { Veto } from "./vetoes.js";
import { VETOED_MODES } from "../statemachines/host.js";

/** An agent's attribute; `host` is always there (the host name), as in Aurora. */
function attributeOf(agent: AgentRecord, name: string): string | undefined {
  // Own properties only: a constraint on "constructor" must not read Object.prototype's. Every
  // attribute value is a string (the registration's schema) and nothing Object.prototype holds
  // is one, so a type test says "own" without a hasOwn call on the placement hot path.
  const v: unknown = agent.attributes[name];
  return typeof v === "string" ? v : name === "host" ? agent.host : undefined;
}

/** What the checks need to know about the tasks being placed: one job's identical tasks. */
export class TaskGroup {
  readonly key: string;
  readonly config: TaskConfig;
  readonly constraints: CompiledConstraints;
  /** attribute → value → active tasks of the job on agents with that value (for limits). */
  private limitCounts: Map<string, Map<string, number>> | null = null;
  /** agentId → active tasks of the job there (for spreading a job's instances). */
  private perAgent: Map<AgentId, number> | null = null;

  constructor(
    readonly job: JobRecord,
    readonly configVersion: number,
  ) {
    this.key = `${job.key}#${configVersion}`;
    this.config = job.configs[configVersion]!;
    this.constraints = compileConstraints(this.config.constraints);
  }

  get role(): string {
    return this.job.config.role;
  }

  private build(state: ClusterState): void {
    this.limitCounts = new Map(this.constraints.limits.map((l) => [l.attribute, new Map<string, number>()]));
    this.perAgent = new Map();
    for (const taskId of this.job.instances.values()) {
      const t = state.tasks.get(taskId);
      if (!t || t.agentId === null || !ON_AGENT_STATES.has(t.state)) continue;
      const agent = state.agents.get(t.agentId);
      if (agent) this.count(agent, 1);
    }
  }

  private count(agent: AgentRecord, delta: number): void {
    this.perAgent!.set(agent.agentId, (this.perAgent!.get(agent.agentId) ?? 0) + delta);
    for (const [attribute, byValue] of this.limitCounts!) {
      const v = attributeOf(agent, attribute);
      if (v !== undefined) byValue.set(v, (byValue.get(v) ?? 0) + delta);
    }
  }

  onAgent(state: ClusterState, agent: AgentRecord): number {
    if (!this.perAgent) this.build(state);
    return this.perAgent!.get(agent.agentId) ?? 0;
  }

  limitCount(state: ClusterState, attribute: string, value: string): number {
    if (!this.limitCounts) this.build(state);
    return this.limitCounts!.get(attribute)?.get(value) ?? 0;
  }

  /** A task of this group was placed on `agent` in this round. */
  placed(state: ClusterState, agent: AgentRecord): void {
    if (!this.limitCounts) this.build(state);
    this.count(agent, 1);
  }
}

export function checkDedicated(g: TaskGroup, agent: AgentRecord): Veto | null {
  const host = attributeOf(agent, "dedicated");
  const want = g.constraints.dedicated;
  if (host === undefined) {
    return want === null
      ? null
      : { kind: "constraint", attribute: "dedicated", detail: `not dedicated; the job asks for dedicated ${want}` };
  }
  if (want !== null && dedicatedMatches(host, want, g.role)) return null;
  return { kind: "dedicated", detail: `dedicated to ${host}` };
}

/** Aurora's maintenance veto: a DRAINING or DRAINED host takes no new task (a SCHEDULED one only ranks last: stack.ts). */
export function checkMaintenance(state: ClusterState, agent: AgentRecord): Veto | null {
  if (state.hosts.size === 0) return null;
  const h = state.hosts.get(agent.host);
  if (!h || !VETOED_MODES.has(h.mode)) return null;
  return { kind: "maintenance", detail: `host ${agent.host} is ${h.mode} for maintenance` };
}

/** A SCHEDULED host: new tasks go elsewhere when another host fits (Aurora's startMaintenance). */
export function scheduledForMaintenance(state: ClusterState, agent: AgentRecord): boolean {
  return state.hosts.size > 0 && state.hosts.get(agent.host)?.mode === "SCHEDULED";
}

export function checkValueConstraints(g: TaskGroup, agent: AgentRecord, out: Veto[]): void {
  for (const c of g.constraints.values) {
    const v = attributeOf(agent, c.attribute);
    const ok = c.negated ? v === undefined || !c.values.has(v) : v !== undefined && c.values.has(v);
    if (c.malformed !== undefined) {
      out.push({
        kind: "constraint",
        attribute: c.attribute,
        detail: `the job's constraint on ${c.attribute} is malformed (${c.malformed}): no host satisfies it`,
      });
    } else if (!ok) {
      const want = `${c.negated ? "not " : ""}${[...c.values].join(" or ")}`;
      out.push({ kind: "constraint", attribute: c.attribute, detail: `${c.attribute} is ${v ?? "unset"}; the job wants ${want}` });
    }
  }
}

export function checkLimits(state: ClusterState, g: TaskGroup, agent: AgentRecord, out: Veto[]): void {
  for (const l of g.constraints.limits) {
    const v = attributeOf(agent, l.attribute);
    if (v === undefined) {
      out.push({ kind: "limit", attribute: l.attribute, detail: `${l.attribute} is unset on this host` });
      continue;
    }
    const n = g.limitCount(state, l.attribute, v);
    if (n >= l.limit) {
      out.push({
        kind: "limit",
        attribute: l.attribute,
        detail: `${l.attribute} ${v} already has ${n} of the job's tasks (limit ${l.limit})`,
      });
    }
  }
}

function checkResources(offers: OfferBook, g: TaskGroup, agent: AgentRecord, taskId: TaskId, out: Veto[]): void {
  const need = g.config.resources;
  const free = offers.free(agent, taskId);
  const total = agent.resources;
  if (free.cpus < need.cpus) out.push({ kind: "insufficient", resource: "cpus", need: need.cpus, free: free.cpus, total: total.cpus });
  if (free.ramMb < need.ramMb)
    out.push({ kind: "insufficient", resource: "ramMb", need: need.ramMb, free: free.ramMb, total: total.ramMb });
  if (free.diskMb < need.diskMb)
    out.push({ kind: "insufficient", resource: "diskMb", need: need.diskMb, free: free.diskMb, total: total.diskMb });
  const gpus = need.gpus ?? 0;
  if (gpus > 0 && free.gpus < gpus)
    out.push({ kind: "insufficient", resource: "gpus", need: gpus, free: free.gpus, total: total.gpus ?? 0 });
  if (need.ports.length > 0) {
    const freePorts = offers.freePortCount(agent);
    if (freePorts < need.ports.length)
      out.push({ kind: "insufficient", resource: "ports", need: need.ports.length, free: freePorts, total: freePorts });
  }
}

/** Every veto this agent raises against a task of the group; empty when it can take it. */
export function vetoes(state: ClusterState, offers: OfferBook, g: TaskGroup, agent: AgentRecord, taskId: TaskId): Veto[] {
  const out: Veto[] = [];
  const d = checkDedicated(g, agent);
  if (d) out.push(d);
  const m = checkMaintenance(state, agent);
  if (m) out.push(m);
  checkValueConstraints(g, agent, out);
  checkLimits(state, g, agent, out);
  checkResources(offers, g, agent, taskId, out);
  return out;
}
