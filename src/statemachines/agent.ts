// The agent lifecycle (one agent per host), after the states the Mesos master gives its agents.
//
//   NEW ──REGISTER──▶ ACTIVE ──UNREACHABLE──▶ UNREACHABLE ──REGISTER──▶ ACTIVE
//    any ──REMOVE──▶ REMOVED (refused forever, like Mesos' "gone")
//
// Effects are data: PARTITION_TASKS (its tasks go PARTITIONED), RECONCILE_TASKS (it came back:
// compare what it runs with the log), LOSE_TASKS (its tasks go LOST), REFUSE (a removed agent
// tried to register).

import { setup, transition } from "xstate";

export const AGENT_STATES = ["NEW", "ACTIVE", "UNREACHABLE", "REMOVED"] as const;
export type AgentStateName = (typeof AGENT_STATES)[number];
export const AGENT_EVENTS = ["REGISTER", "UNREACHABLE", "REMOVE"] as const;
export type AgentEventName = (typeof AGENT_EVENTS)[number];
const AGENT_ACTIONS = ["PARTITION_TASKS", "RECONCILE_TASKS", "LOSE_TASKS", "REFUSE"] as const;
type AgentAction = (typeof AGENT_ACTIONS)[number];

const noop = () => {};

/** The machine itself: agentStep asks it; statemachines/graph.ts draws it. */
export const agentMachine = setup({
  types: { events: {} as { type: AgentEventName } },
  actions: Object.fromEntries(AGENT_ACTIONS.map((a) => [a, noop])) as Record<AgentAction, () => void>,
}).createMachine({
  id: "agent",
  initial: "NEW",
  states: {
    NEW: { on: { REGISTER: "ACTIVE", REMOVE: "REMOVED" } },
    ACTIVE: {
      on: {
        UNREACHABLE: { target: "UNREACHABLE", actions: "PARTITION_TASKS" },
        REMOVE: { target: "REMOVED", actions: "LOSE_TASKS" },
      },
    },
    UNREACHABLE: {
      on: {
        REGISTER: { target: "ACTIVE", actions: "RECONCILE_TASKS" },
        REMOVE: { target: "REMOVED", actions: "LOSE_TASKS" },
      },
    },
    REMOVED: { on: { REGISTER: { actions: "REFUSE" } } },
  },
});

export interface AgentStep {
  readonly next: AgentStateName;
  readonly changed: boolean;
  readonly actions: readonly AgentAction[];
}

/** Ask the XState machine (slow, authoritative). */
export function agentMachineStep(from: AgentStateName, event: AgentEventName): AgentStep {
  const [next, actions] = transition(agentMachine, agentMachine.resolveState({ value: from, context: undefined }), { type: event });
  const names = actions.map((a) => a.type).filter((t): t is AgentAction => (AGENT_ACTIONS as readonly string[]).includes(t));
  return { next: next.value as AgentStateName, changed: next.value !== from, actions: names };
}

const cache = new Map<string, AgentStep>();

/** The fold's path: the machine's answer, memoised per (state, event). */
export function agentStep(from: AgentStateName, event: AgentEventName): AgentStep {
  const key = `${from}/${event}`;
  let s = cache.get(key);
  if (!s) cache.set(key, (s = Object.freeze(agentMachineStep(from, event))));
  return s;
}
