// The agent lifecycle machine: every (state, event) pair, and the memoised fast path agrees.

import { describe, expect, it } from "vitest";
import { AGENT_EVENTS, AGENT_STATES, agentMachineStep, agentStep, type AgentStateName } from "../src/statemachines/agent.js";

const EXPECTED: Record<AgentStateName, Record<string, { next: AgentStateName; actions: string[] }>> = {
  NEW: { REGISTER: { next: "ACTIVE", actions: [] }, UNREACHABLE: { next: "NEW", actions: [] }, REMOVE: { next: "REMOVED", actions: [] } },
  ACTIVE: {
    REGISTER: { next: "ACTIVE", actions: [] },
    UNREACHABLE: { next: "UNREACHABLE", actions: ["PARTITION_TASKS"] },
    REMOVE: { next: "REMOVED", actions: ["LOSE_TASKS"] },
  },
  UNREACHABLE: {
    REGISTER: { next: "ACTIVE", actions: ["RECONCILE_TASKS"] },
    UNREACHABLE: { next: "UNREACHABLE", actions: [] },
    REMOVE: { next: "REMOVED", actions: ["LOSE_TASKS"] },
  },
  REMOVED: {
    REGISTER: { next: "REMOVED", actions: ["REFUSE"] },
    UNREACHABLE: { next: "REMOVED", actions: [] },
    REMOVE: { next: "REMOVED", actions: [] },
  },
};

describe("agent machine", () => {
  for (const s of AGENT_STATES) {
    for (const e of AGENT_EVENTS) {
      it(`${s} on ${e}`, () => {
        const step = agentMachineStep(s, e);
        expect({ next: step.next, actions: [...step.actions] }).toEqual(EXPECTED[s][e]);
        expect(agentStep(s, e)).toEqual(step);
      });
    }
  }
});
