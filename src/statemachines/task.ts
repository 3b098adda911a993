// The task lifecycle: Aurora's TaskStateMachine as an XState machine.
//
// This machine is the one definition of the lifecycle. It is fed requests to move to a target
// state (event type = target state name, as in Aurora's updateState(target)). It never throws on
// an illegal request: an unhandled event leaves the state as it is, and some illegal requests
// still emit KILL (a stray status update from a task we believe dead or dying).
//
// Side effects are named actions and are never executed by the machine; the fold applies the
// bookkeeping ones (INCREMENT_FAILURES, TRANSITION_TO_LOST, DELETE) and hands the rest
// (LAUNCH, KILL, RESCHEDULE) to the leader, which carries them out after the event is committed.
//
// Context is the guard input only: three booleans the fold derives from the task record
// (guardInput in taskTable.ts). That keeps the machine finite, so taskTable.ts can compile it
// into a lookup table and test the two against each other exhaustively.

import { setup } from "xstate";
import { TASK_STATES, type TaskStateName } from "./taskStates.js";

/** Aurora's side effects, in the order Aurora runs them, plus LAUNCH (on ASSIGNED). */
export const TASK_ACTIONS = ["INCREMENT_FAILURES", "SAVE_STATE", "RESCHEDULE", "TRANSITION_TO_LOST", "LAUNCH", "KILL", "DELETE"] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

export interface TaskGuardInput {
  /** The task belongs to a service job (rescheduled after any exit). */
  isService: boolean;
  /** Another FAILED may be rescheduled: maxTaskFailures = -1, or failures so far < max - 1. */
  belowMaxFailures: boolean;
  /** The task was ever KILLING: a partition that ends in LOST is then not rescheduled. */
  everKilling: boolean;
}

export type TaskMachineEvent = { type: TaskStateName };

type Transition = { target?: TaskStateName; guard?: Guard; actions: TaskAction[] };
type Guard = "isService" | "belowMaxFailuresOrService" | "neverKilling";

// Transition builders, so each row below reads like Aurora's table.
const go = (target: TaskStateName, ...actions: TaskAction[]): Transition[] => [{ target, actions: ["SAVE_STATE", ...actions] }];
const stay = (...actions: TaskAction[]): Transition[] => [{ actions }];
const finished: Transition[] = [
  { target: "FINISHED", guard: "isService", actions: ["SAVE_STATE", "RESCHEDULE"] },
  { target: "FINISHED", actions: ["SAVE_STATE"] },
];
const failed: Transition[] = [
  { target: "FAILED", guard: "belowMaxFailuresOrService", actions: ["INCREMENT_FAILURES", "SAVE_STATE", "RESCHEDULE"] },
  { target: "FAILED", actions: ["INCREMENT_FAILURES", "SAVE_STATE"] },
];
/** A stray status update for a task we consider dead or dying: keep the state, kill the zombie. */
const zombie = { ASSIGNED: stay("KILL"), STARTING: stay("KILL"), RUNNING: stay("KILL") };

type StateConfig = { type?: "final"; on: Partial<Record<TaskStateName, Transition[]>> };

/** A task transitioning to a terminal state out of RESTARTING, DRAINING or PREEMPTING. */
const restarting: StateConfig = {
  on: {
    FINISHED: go("FINISHED", "RESCHEDULE"),
    FAILED: go("FAILED", "RESCHEDULE"),
    KILLED: go("KILLED", "RESCHEDULE"),
    LOST: go("LOST", "RESCHEDULE", "KILL"),
    KILLING: go("KILLING"),
    PARTITIONED: go("PARTITIONED", "TRANSITION_TO_LOST"),
    ...zombie,
  },
};
const terminal: StateConfig = {
  on: { DELETED: [{ target: "DELETED", actions: ["DELETE"] }], ...zombie },
};

const TASK_LIFECYCLE: Record<TaskStateName, StateConfig> = {
  INIT: { on: { PENDING: go("PENDING"), THROTTLED: go("THROTTLED") } },
  // A task killed before it was placed is simply deleted (no SAVE_STATE, as in Aurora).
  PENDING: { on: { ASSIGNED: go("ASSIGNED", "LAUNCH"), KILLING: [{ target: "KILLING", actions: ["DELETE"] }] } },
  THROTTLED: { on: { PENDING: go("PENDING"), KILLING: [{ target: "KILLING", actions: ["DELETE"] }] } },
  ASSIGNED: {
    on: {
      STARTING: go("STARTING"),
      RUNNING: go("RUNNING"),
      FINISHED: finished,
      FAILED: failed,
      KILLED: go("KILLED", "RESCHEDULE"),
      LOST: go("LOST", "RESCHEDULE", "KILL"),
      KILLING: go("KILLING", "KILL"),
      RESTARTING: go("RESTARTING", "KILL"),
      DRAINING: go("DRAINING", "KILL"),
      PREEMPTING: go("PREEMPTING", "KILL"),
      // ASSIGNED → PARTITIONED is not allowed (nor in Aurora's TaskStateMachine): the launch may
      // never have happened.
    },
  },
  STARTING: {
    on: {
      RUNNING: go("RUNNING"),
      FINISHED: finished,
      FAILED: failed,
      KILLED: go("KILLED", "RESCHEDULE"),
      LOST: go("LOST", "RESCHEDULE"),
      KILLING: go("KILLING", "KILL"),
      RESTARTING: go("RESTARTING", "KILL"),
      DRAINING: go("DRAINING", "KILL"),
      PREEMPTING: go("PREEMPTING", "KILL"),
      PARTITIONED: go("PARTITIONED"),
    },
  },
  RUNNING: {
    on: {
      FINISHED: finished,
      FAILED: failed,
      KILLED: go("KILLED", "RESCHEDULE"),
      LOST: go("LOST", "RESCHEDULE"),
      KILLING: go("KILLING", "KILL"),
      RESTARTING: go("RESTARTING", "KILL"),
      DRAINING: go("DRAINING", "KILL"),
      PREEMPTING: go("PREEMPTING", "KILL"),
      PARTITIONED: go("PARTITIONED"),
    },
  },
  // The scheduler asked for the kill: no reschedule, whatever the outcome.
  KILLING: {
    on: {
      FINISHED: go("FINISHED"),
      FAILED: go("FAILED"),
      KILLED: go("KILLED"),
      LOST: go("LOST"),
      DELETED: [{ target: "DELETED", actions: ["DELETE"] }],
      PARTITIONED: go("PARTITIONED", "TRANSITION_TO_LOST"),
      ...zombie,
    },
  },
  RESTARTING: restarting,
  PREEMPTING: restarting,
  DRAINING: restarting,
  PARTITIONED: {
    on: {
      // The agent came back and reported the task.
      ASSIGNED: go("ASSIGNED"),
      STARTING: go("STARTING"),
      RUNNING: go("RUNNING"),
      FINISHED: finished,
      FAILED: failed,
      // The partition policy's delay expired.
      LOST: [
        { target: "LOST", guard: "neverKilling", actions: ["SAVE_STATE", "RESCHEDULE", "KILL"] },
        { target: "LOST", actions: ["SAVE_STATE", "KILL"] },
      ],
      // An operator action on a partitioned task cannot reach it: give up on it at once.
      KILLING: go("KILLING", "TRANSITION_TO_LOST"),
      RESTARTING: go("RESTARTING", "TRANSITION_TO_LOST"),
      DRAINING: go("DRAINING", "TRANSITION_TO_LOST"),
      PREEMPTING: go("PREEMPTING", "TRANSITION_TO_LOST"),
    },
  },
  FINISHED: terminal,
  FAILED: terminal,
  KILLED: terminal,
  LOST: terminal,
  DELETED: { on: { ...zombie } },
};

function toXState(on: StateConfig["on"]) {
  const out: Record<string, Array<{ target?: string; guard?: string; actions: Array<{ type: string }> }>> = {};
  for (const [event, transitions] of Object.entries(on)) {
    out[event] = transitions!.map((t) => ({
      ...(t.target ? { target: t.target } : {}),
      ...(t.guard ? { guard: t.guard } : {}),
      actions: t.actions.map((type) => ({ type })),
    }));
  }
  return out;
}

const noop = () => {};

export const taskMachine = setup({
  types: {
    context: {} as TaskGuardInput,
    events: {} as TaskMachineEvent,
    input: {} as TaskGuardInput,
  },
  // Effects are data: these implementations are never run by the fold (it uses transition()).
  actions: Object.fromEntries(TASK_ACTIONS.map((a) => [a, noop])) as Record<TaskAction, () => void>,
  guards: {
    isService: ({ context }) => context.isService,
    belowMaxFailuresOrService: ({ context }) => context.isService || context.belowMaxFailures,
    neverKilling: ({ context }) => !context.everKilling,
  },
}).createMachine({
  id: "task",
  initial: "INIT",
  context: ({ input }) => input,
  // biome-ignore lint/suspicious/noExplicitAny: XState's config type cannot be spelled for states built from the table; the table test checks the result
  states: Object.fromEntries(TASK_STATES.map((s) => [s, { on: toXState(TASK_LIFECYCLE[s].on) }])) as any,
});
