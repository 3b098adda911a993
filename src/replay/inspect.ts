// `roost inspect task|agent ID`, the pure part: one machine instance as its machine sees it. The
// state it is in, the events its machine takes there now (with the transition each would take,
// guards evaluated on this task's own guard input), how it got there, and the machine's whole
// graph (statemachines/graph.ts) for a UI or the CLI to draw with the current state marked.
//
// It reads the folded state only (the caller folds up to --at SEQ|TIME); the reasons of past
// transitions live in the log, so the caller reads them back and passes them in.

import { checkEventData } from "../domain/events.js";
import { asAgentId, asTaskId } from "../domain/types.js";
import { agentStep, type AgentEventName, type AgentStateName } from "../statemachines/agent.js";
import { acceptedTransitions, machineGraph, type GraphEdge, type MachineGraph } from "../statemachines/graph.js";
import type { TaskGuardInput } from "../statemachines/task.js";
import { bitsToGuard } from "../statemachines/taskTable.js";
import { TASK_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import { HISTORY_STRIDE, type ClusterState, type TaskRecord } from "./state.js";

/** An event the machine takes now, and what it would do. */
interface Accepted {
  event: string;
  /** The state it leads to (the current one for a targetless transition). */
  target: string;
  /** The guard that picked this transition; absent when the unguarded fallback is taken. */
  guard?: string;
  actions: readonly string[];
  /** It keeps the state and only runs its actions (a zombie's KILL, a REFUSE). */
  targetless?: boolean;
}

interface TaskTransition {
  seq: number;
  /** The index of the causing event within its record. */
  idx: number;
  ts: number;
  /** The state before ("INIT", the machine's initial state, before the first). */
  from: TaskStateName;
  to: TaskStateName;
  /** The causing event's reason: from the caller's map, else the record's own for the newest; null when unknown. */
  reason: string | null;
}

export interface TaskInspection {
  kind: "task";
  id: string;
  machine: "task";
  /** The log position inspected (the state's last folded record). */
  seq: number;
  state: TaskStateName;
  /** What the machine's guards see for this task (as the fold derives it). */
  guardInput: TaskGuardInput;
  accepts: Accepted[];
  history: TaskTransition[];
  graph: MachineGraph;
}

interface AgentTransition {
  seq: number;
  idx: number;
  ts: number;
  event: AgentEventName;
  from: AgentStateName;
  /** Equal to `from` for a refused registration (REFUSE). */
  to: AgentStateName;
  actions: readonly string[];
  reason: string;
}

export interface AgentInspection {
  kind: "agent";
  id: string;
  machine: "agent";
  seq: number;
  state: AgentStateName;
  accepts: Accepted[];
  history: AgentTransition[];
  graph: MachineGraph;
}

/** A log entry as the caller read it back: where it sits and what it says. */
export interface InspectLogEntry {
  seq: number;
  /** Its index within its record. */
  index: number;
  ts: number;
  type: string;
  reason: string;
  data: unknown;
}

/**
 * The task's machine instance, or null for a task the state does not hold. `reasons` maps
 * "seq.idx" to the reason of the event at that position (read back from the log by the caller).
 */
export function inspectTask(
  state: ClusterState,
  taskId: string,
  opts: { reasons?: ReadonlyMap<string, string> } = {},
): TaskInspection | null {
  const task = state.tasks.get(asTaskId(taskId));
  if (!task) return null;
  const guardInput = bitsToGuard(taskGuardBits(task));
  return {
    kind: "task",
    id: task.taskId,
    machine: "task",
    seq: state.seq,
    state: task.state,
    guardInput,
    accepts: acceptedTransitions("task", task.state, guardInput).map(accepted),
    history: taskTransitions(task, opts.reasons),
    graph: machineGraph("task"),
  };
}

/**
 * The agent's machine instance, or null for an agent the state does not hold. `entries` are the
 * log's entries up to the state's position (later ones are ignored) that may concern the agent:
 * its AgentRegistered and AgentStateChanged events, in log order; others are skipped. The history
 * replays them through the agent machine as the fold does (statemachines/agent.ts), so it is
 * complete when they are.
 */
export function inspectAgent(state: ClusterState, agentId: string, entries: Iterable<InspectLogEntry>): AgentInspection | null {
  const agent = state.agents.get(asAgentId(agentId));
  if (!agent) return null;
  return {
    kind: "agent",
    id: agent.agentId,
    machine: "agent",
    seq: state.seq,
    state: agent.state,
    accepts: acceptedTransitions("agent", agent.state).map(accepted),
    history: agentTransitions(agent.agentId, state.seq, entries),
    graph: machineGraph("agent"),
  };
}

function accepted(e: GraphEdge): Accepted {
  return {
    event: e.event,
    target: e.to,
    ...(e.guard === undefined ? {} : { guard: e.guard }),
    actions: e.actions,
    ...(e.targetless ? { targetless: true } : {}),
  };
}

/**
 * The guard input the fold gives the task machine for this task, as taskTable.ts's bits (see
 * transitionTask in fold.ts; test/inspect.test.ts checks the two agree by folding).
 */
function taskGuardBits(t: TaskRecord): number {
  const max = t.maxTaskFailures;
  return (t.service ? 1 : 0) | (max === -1 || t.failureCount < max - 1 ? 2 : 0) | (t.everKilling ? 4 : 0);
}

function taskTransitions(task: TaskRecord, reasons: ReadonlyMap<string, string> | undefined): TaskTransition[] {
  const h = task.history;
  const out: TaskTransition[] = [];
  // The record keeps the newest event's reason: every change that event caused shares it.
  const lastSeq = h[h.length - HISTORY_STRIDE];
  const lastIdx = h[h.length - HISTORY_STRIDE + 1];
  let from: TaskStateName = "INIT";
  for (let i = 0; i < h.length; i += HISTORY_STRIDE) {
    const seq = h[i]!;
    const idx = h[i + 1]!;
    const to = TASK_STATES[h[i + 3]!]!;
    const reason = reasons?.get(`${seq}.${idx}`) ?? (seq === lastSeq && idx === lastIdx ? task.lastReason : null);
    out.push({ seq, idx, ts: h[i + 2]!, from, to, reason });
    from = to;
  }
  return out;
}

function agentTransitions(agentId: string, upTo: number, entries: Iterable<InspectLogEntry>): AgentTransition[] {
  const out: AgentTransition[] = [];
  // null until its first registration: the fold rejects a state change of an agent it does not hold.
  let current: AgentStateName | null = null;
  for (const e of entries) {
    if (e.seq > upTo) continue;
    let event: AgentEventName;
    if (e.type === "AgentRegistered") {
      if (checkEventData("AgentRegistered", e.data) !== null || (e.data as { agentId: string }).agentId !== agentId) continue;
      current ??= "NEW";
      event = "REGISTER";
    } else if (e.type === "AgentStateChanged") {
      if (current === null || checkEventData("AgentStateChanged", e.data) !== null) continue;
      const d = e.data as { agentId: string; to: "UNREACHABLE" | "REMOVED" };
      if (d.agentId !== agentId) continue;
      event = d.to === "UNREACHABLE" ? "UNREACHABLE" : "REMOVE";
    } else continue;
    const step = agentStep(current, event);
    if (!step.changed && step.actions.length === 0) continue;
    out.push({ seq: e.seq, idx: e.index, ts: e.ts, event, from: current, to: step.next, actions: step.actions, reason: e.reason });
    current = step.next;
  }
  return out;
}
