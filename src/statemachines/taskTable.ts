// The fold's fast path for the task machine.
//
// XState's pure transition() costs 25–65 µs a call (measured, xstate 5): far too slow for a fold that
// must apply a million events a second. The task machine is finite (16 states × 16 target
// events × 8 guard inputs), so we compile it, by asking the machine itself, into a flat lookup
// table, an entry the first time it is needed (all 2,048 transition() calls take ~0.2 s). The
// machine stays the one definition; test/taskMachine.test.ts checks the table and the machine
// agree on every (state, event, guard input) triple.

import { transition } from "xstate";
import { TASK_ACTIONS, taskMachine, type TaskAction, type TaskGuardInput } from "./task.js";
import { TASK_STATE_CODE as STATE_INDEX, TASK_STATES, type TaskStateName } from "./taskStates.js";

export interface TaskStep {
  /** The state after the request (equal to the current one when the request is refused). */
  readonly next: TaskStateName;
  /** True when the machine accepted the request and the state changed. */
  readonly changed: boolean;
  /** Side effects, in Aurora's order. Empty for a refused request unless it orders a KILL. */
  readonly actions: readonly TaskAction[];
}

const N = TASK_STATES.length;

/** The guard input a table entry stands for: bit 0 isService, bit 1 belowMaxFailures, bit 2 everKilling (fold.ts builds the bits). */
export function bitsToGuard(bits: number): TaskGuardInput {
  return { isService: (bits & 1) !== 0, belowMaxFailures: (bits & 2) !== 0, everKilling: (bits & 4) !== 0 };
}

/** Ask the XState machine itself: the slow, authoritative path. */
export function machineStep(from: TaskStateName, to: TaskStateName, guard: TaskGuardInput): TaskStep {
  const snapshot = taskMachine.resolveState({ value: from, context: guard });
  const [next, actions] = transition(taskMachine, snapshot, { type: to });
  const nextState = next.value as unknown as TaskStateName;
  const names = actions.map((a) => a.type).filter((t): t is TaskAction => (TASK_ACTIONS as readonly string[]).includes(t));
  names.sort((a, b) => TASK_ACTIONS.indexOf(a) - TASK_ACTIONS.indexOf(b));
  return { next: nextState, changed: nextState !== from, actions: names };
}

/**
 * The table: one entry per (state, event, guard input), each asked of the machine the first time
 * the fold needs it. It used to be compiled whole (2,048 transition() calls) on the first fold
 * step: 0.2 s of every process that folds, a cold start's tail and every offline CLI read among
 * them, for the few dozen entries a log uses.
 */
const table: (TaskStep | null)[] = new Array<TaskStep | null>(N * N * 8).fill(null);

function entry(i: number, from: TaskStateName, to: TaskStateName, bits: number): TaskStep {
  const step = machineStep(from, to, bitsToGuard(bits));
  return (table[i] = Object.freeze({ ...step, actions: Object.freeze(step.actions) }));
}

/** Ask the machine for every entry now (tests, and benches that time the fold alone). */
export function warmTaskTable(): void {
  for (let s = 0; s < N; s++) {
    for (let e = 0; e < N; e++) {
      for (let bits = 0; bits < 8; bits++) {
        const i = (s * N + e) * 8 + bits;
        if (table[i] === null) entry(i, TASK_STATES[s]!, TASK_STATES[e]!, bits);
      }
    }
  }
}

/** The fast path: one array lookup. Same answer as machineStep, by construction and by test. */
export function taskStep(from: TaskStateName, to: TaskStateName, guard: number): TaskStep {
  const s = STATE_INDEX[from];
  const e = STATE_INDEX[to];
  if (s === undefined || e === undefined) {
    throw new Error(`unknown task state in transition ${from} → ${to}`);
  }
  if ((guard & 7) !== guard) throw new Error(`task guard input ${guard} is not an integer 0–7`);
  const i = (s * N + e) * 8 + guard;
  return table[i] ?? entry(i, from, to, guard);
}
