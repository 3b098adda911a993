// The lifecycle machines as plain graphs, and as Mermaid and Graphviz text, for `roost inspect`.
//
// The graph is read off the XState definitions themselves (each state node's transitions), never
// written by hand, so a drawing cannot drift from the machine the fold runs:
// test/inspect.test.ts checks its edges against the task machine's compiled table and the agent
// machine's steps, and against xstate/graph's own toDirectedGraph. A graph is computed once per
// machine and frozen: callers share it.

import type { AnyStateMachine, AnyTransitionDefinition } from "xstate";
import { agentMachine, type AgentStateName } from "./agent.js";
import { taskMachine, type TaskGuardInput } from "./task.js";
import { TERMINAL_STATES, type TaskStateName } from "./taskStates.js";
import { updateMachine } from "./update.js";
import { hostMachine } from "./host.js";

export type MachineName = "task" | "agent" | "update" | "host";

interface GraphState {
  readonly id: string;
  /** An XState final state (neither machine has one today). */
  readonly final?: boolean;
  /**
   * The lifecycle is over: TERMINAL_STATES for the task machine; for the agent machine, a state
   * no event leaves (REMOVED).
   */
  readonly terminal?: boolean;
}

export interface GraphEdge {
  readonly from: string;
  /** The state after the transition: `from` itself for a targetless one. */
  readonly to: string;
  readonly event: string;
  /** The guard that must hold; absent on the fallback (unguarded) transition. */
  readonly guard?: string;
  /** Effects, in the machine's order. */
  readonly actions: readonly string[];
  /** The transition keeps the state and only runs its actions (a zombie's KILL, a REFUSE). */
  readonly targetless?: boolean;
}

export interface MachineGraph {
  readonly machine: MachineName;
  readonly initial: string;
  /** In the machine's document order. */
  readonly states: readonly GraphState[];
  /**
   * By source state (document order), then event (definition order); the edges of one
   * (state, event) pair in the order the machine tries them, the guarded ones first.
   */
  readonly edges: readonly GraphEdge[];
}

const MACHINES: Record<MachineName, AnyStateMachine> = { task: taskMachine, agent: agentMachine, update: updateMachine, host: hostMachine };
const graphs = new Map<MachineName, MachineGraph>();

/** The machine's graph, computed on first use and shared (frozen) after that. */
export function machineGraph(machine: MachineName): MachineGraph {
  let g = graphs.get(machine);
  if (!g) graphs.set(machine, (g = buildGraph(machine)));
  return g;
}

/**
 * What the machine does now, in `state`, on each event it handles there: the transition its
 * guards pick (the task machine's given `guard`, the input the fold derives from the task
 * record), asked of the machine itself. An event it would ignore (no target, no action) is left
 * out; a targetless one with actions (a zombie's KILL, a REFUSE) is in. In graph edge order.
 */
export function acceptedTransitions(machine: "task", state: TaskStateName, guard: TaskGuardInput): GraphEdge[];
export function acceptedTransitions(machine: "agent", state: AgentStateName): GraphEdge[];
export function acceptedTransitions(machine: MachineName, state: string, guard?: TaskGuardInput): GraphEdge[] {
  const graph = machineGraph(machine);
  checkCurrent(graph, state);
  const def = MACHINES[machine];
  const snapshot = def.resolveState({ value: state, context: guard });
  const out: GraphEdge[] = [];
  const asked = new Set<string>();
  for (const e of graph.edges) {
    if (e.from !== state || asked.has(e.event)) continue;
    asked.add(e.event);
    const [t] = def.getTransitionData(snapshot, { type: e.event });
    if (t) for (const edge of transitionEdges(t)) if (!edge.targetless || edge.actions.length > 0) out.push(edge);
  }
  return out;
}

/** One XState transition as graph edges (one per target). */
function transitionEdges(t: AnyTransitionDefinition): GraphEdge[] {
  const from = t.source.key;
  const event = t.eventType;
  const guard = t.guard === undefined ? {} : { guard: nameOf(t.guard) };
  const actions = Object.freeze(t.actions.map(nameOf));
  if (!t.target || t.target.length === 0) return [Object.freeze({ from, to: from, event, ...guard, actions, targetless: true })];
  return t.target.map((node) => Object.freeze({ from, to: node.key, event, ...guard, actions }));
}

function buildGraph(machine: MachineName): MachineGraph {
  const def = MACHINES[machine];
  const nodes = Object.values(def.root.states).sort((a, b) => a.order - b.order);
  const edges: GraphEdge[] = [];
  for (const node of nodes) {
    // The machines are flat and event-driven; say so loudly if that ever changes rather than
    // draw a graph that leaves transitions out.
    if (node.type !== "atomic" && node.type !== "final")
      throw new Error(`graph: ${machine}.${node.key} is ${node.type}; only flat machines are drawn`);
    if (node.always?.length) throw new Error(`graph: ${machine}.${node.key} has eventless transitions; they are not drawn`);
    for (const transitions of node.transitions.values()) for (const t of transitions) edges.push(...transitionEdges(t));
  }
  const leaves = (id: string) => edges.some((e) => e.from === id && e.to !== id);
  const states = nodes.map((node) => {
    // The task machine's terminal states may still change (a zombie's kill); the others' are those no event leaves.
    const terminal =
      machine === "task" ? (TERMINAL_STATES as ReadonlySet<string>).has(node.key) : node.type === "final" || !leaves(node.key);
    return Object.freeze({ id: node.key, ...(node.type === "final" ? { final: true } : {}), ...(terminal ? { terminal: true } : {}) });
  });
  const initial = def.root.initial?.target?.[0]?.key;
  if (initial === undefined) throw new Error(`graph: ${machine} has no initial state`);
  return Object.freeze({ machine, initial, states: Object.freeze(states), edges: Object.freeze(edges) });
}

/** A guard's or action's name, however the definition spelled it. */
function nameOf(x: unknown): string {
  if (typeof x === "string") return x;
  if (typeof x === "function") return x.name || "(inline)";
  if (x !== null && typeof x === "object" && typeof (x as { type?: unknown }).type === "string") return (x as { type: string }).type;
  return "(inline)";
}

// ---- Rendering ----------------------------------------------------------------------------------

/**
 * The edges between each pair of states, as label lines: `EVENT [guard] / ACTION, ACTION`, the
 * fallback of a guarded event as `[else]`, and events that do the same thing on one line
 * (`ASSIGNED, STARTING, RUNNING / KILL`). Pairs in state order (source, then target).
 */
function edgeGroups(graph: MachineGraph): Array<{ from: string; to: string; lines: string[] }> {
  const order = new Map(graph.states.map((s, i) => [s.id, i]));
  // How many transitions each (state, event) pair has: an unguarded one among several is the fallback.
  const alternatives = new Map<string, number>();
  for (const e of graph.edges)
    alternatives.set(JSON.stringify([e.from, e.event]), (alternatives.get(JSON.stringify([e.from, e.event])) ?? 0) + 1);
  const clause = (e: GraphEdge) => {
    const guard = e.guard !== undefined ? ` [${e.guard}]` : alternatives.get(JSON.stringify([e.from, e.event]))! > 1 ? " [else]" : "";
    return `${guard}${e.actions.length ? ` / ${e.actions.join(", ")}` : ""}`;
  };
  const pairs = new Map<string, { from: string; to: string; byEvent: Map<string, string[]> }>();
  for (const e of graph.edges) {
    const key = JSON.stringify([e.from, e.to]);
    let p = pairs.get(key);
    if (!p) pairs.set(key, (p = { from: e.from, to: e.to, byEvent: new Map() }));
    let clauses = p.byEvent.get(e.event);
    if (!clauses) p.byEvent.set(e.event, (clauses = []));
    clauses.push(clause(e));
  }
  const out = [...pairs.values()].map(({ from, to, byEvent }) => {
    // Events whose clauses read the same share a line.
    const same = new Map<string, { events: string[]; clauses: string[] }>();
    for (const [event, clauses] of byEvent) {
      const key = JSON.stringify(clauses);
      const entry = same.get(key);
      if (entry) entry.events.push(event);
      else same.set(key, { events: [event], clauses });
    }
    const lines = [...same.values()].flatMap(({ events, clauses }) => clauses.map((c) => `${events.join(", ")}${c}`));
    return { from, to, lines };
  });
  return out.sort((a, b) => order.get(a.from)! - order.get(b.from)! || order.get(a.to)! - order.get(b.to)!);
}

function checkCurrent(graph: MachineGraph, current: string | undefined): void {
  if (current !== undefined && !graph.states.some((s) => s.id === current))
    throw new RangeError(`${graph.machine} machine has no state ${JSON.stringify(current)}`);
}

const MERMAID_WORDS = new Set(["state", "note", "direction", "class", "classdef", "click", "style", "end", "as", "linkstyle"]);

/** Mermaid text: anything that could end a statement or open markup becomes an entity code. */
function mermaidText(s: string): string {
  return s.replace(/[\r\n\t]+/g, " ").replace(/[#;:"<>{}|`\\]/g, (c) => (c === '"' ? "#quot;" : `#${c.charCodeAt(0)};`));
}

/**
 * The machine as a Mermaid state diagram (stateDiagram-v2): every state declared, the initial one
 * entered from [*], terminal states greyed, and `current` (when given) marked with the `current`
 * class. Deterministic: states in machine order, edges by (source, target).
 */
export function toMermaid(graph: MachineGraph, current?: string): string {
  checkCurrent(graph, current);
  const ids = new Map<string, string>();
  const lines = [
    "stateDiagram-v2",
    "  classDef current fill:#f96,stroke:#333,stroke-width:3px,font-weight:bold",
    "  classDef terminal fill:#eee,color:#555",
  ];
  graph.states.forEach((s, i) => {
    // Plain identifiers are used as they are; anything else gets an alias and a quoted label.
    if (/^[A-Za-z][A-Za-z0-9_]*$/.test(s.id) && !MERMAID_WORDS.has(s.id.toLowerCase())) {
      ids.set(s.id, s.id);
      lines.push(`  ${s.id}`);
    } else {
      ids.set(s.id, `s${i}`);
      lines.push(`  state "${mermaidText(s.id)}" as s${i}`);
    }
  });
  const id = (s: string) => ids.get(s)!;
  lines.push(`  [*] --> ${id(graph.initial)}`);
  for (const g of edgeGroups(graph)) lines.push(`  ${id(g.from)} --> ${id(g.to)} : ${g.lines.map(mermaidText).join("<br/>")}`);
  for (const s of graph.states) if (s.final) lines.push(`  ${id(s.id)} --> [*]`);
  const terminal = graph.states.filter((s) => s.terminal && s.id !== current).map((s) => id(s.id));
  if (terminal.length) lines.push(`  class ${terminal.join(",")} terminal`);
  if (current !== undefined) lines.push(`  class ${id(current)} current`);
  return `${lines.join("\n")}\n`;
}

/** A DOT quoted string. */
function dotString(s: string): string {
  return `"${s
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\r\n|\r|\n/g, "\\n")}"`;
}

/**
 * The machine as a Graphviz digraph: a point enters the initial state, terminal states are grey,
 * final ones double-bordered, and `current` (when given) is filled and bold. Deterministic, as
 * toMermaid.
 */
export function toDot(graph: MachineGraph, current?: string): string {
  checkCurrent(graph, current);
  let start = "__start";
  while (graph.states.some((s) => s.id === start)) start += "_";
  const lines = [
    `digraph ${dotString(graph.machine)} {`,
    "  rankdir=LR;",
    '  node [shape=box, style=rounded, fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
    `  ${dotString(start)} [shape=point, label=""];`,
  ];
  for (const s of graph.states) {
    const attrs: string[] = [];
    if (s.id === current) attrs.push('style="rounded,filled,bold"', 'fillcolor="#ff9966"', "penwidth=3");
    else if (s.terminal) attrs.push('style="rounded,filled"', 'fillcolor="#eeeeee"', 'fontcolor="#555555"');
    if (s.final) attrs.push("peripheries=2");
    lines.push(`  ${dotString(s.id)}${attrs.length ? ` [${attrs.join(", ")}]` : ""};`);
  }
  lines.push(`  ${dotString(start)} -> ${dotString(graph.initial)};`);
  for (const g of edgeGroups(graph)) lines.push(`  ${dotString(g.from)} -> ${dotString(g.to)} [label=${dotString(g.lines.join("\n"))}];`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
