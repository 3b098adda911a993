// Task states, after Aurora's ScheduleStatus (its api.thrift), plus DELETED, its pseudo-state for
// a task removed from the store (we keep the record, marked DELETED, so history survives).

export const TASK_STATES = [
  "INIT",
  "PENDING",
  "THROTTLED",
  "ASSIGNED",
  "STARTING",
  "RUNNING",
  "KILLING",
  "RESTARTING",
  "PREEMPTING",
  "DRAINING",
  "PARTITIONED",
  "FINISHED",
  "FAILED",
  "KILLED",
  "LOST",
  "DELETED",
] as const;

export type TaskStateName = (typeof TASK_STATES)[number];

/** A state's place in TASK_STATES: the number the task table, a task's history and the state's
 *  counts by state index it by. A plain record, for a property load on the fold's hot path. */
export const TASK_STATE_CODE: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(TASK_STATES.map((s, i) => [s, i])));

export const TERMINAL_STATES: ReadonlySet<TaskStateName> = new Set(["FINISHED", "FAILED", "KILLED", "LOST", "DELETED"]);

/**
 * The states in which the scheduler is ending a task it asked to stop: its kill is retried until
 * the agent reports the end (Aurora's KillRetry), and a task that dies in one was interrupted,
 * not flapping.
 */
export const KILL_STATES: ReadonlySet<TaskStateName> = new Set(["KILLING", "RESTARTING", "PREEMPTING", "DRAINING"]);

/** ACTIVE = every non-terminal state except INIT. */
export const ACTIVE_STATES: ReadonlySet<TaskStateName> = new Set(TASK_STATES.filter((s) => s !== "INIT" && !TERMINAL_STATES.has(s)));

/** States in which the task holds resources on an agent. */
export const ON_AGENT_STATES: ReadonlySet<TaskStateName> = new Set<TaskStateName>([
  "ASSIGNED",
  "STARTING",
  "RUNNING",
  ...KILL_STATES,
  "PARTITIONED",
]);
