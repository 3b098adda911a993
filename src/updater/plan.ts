// The update planner: which instances an update touches in which order, and, for each one, what
// to do next. Pure functions of what the caller passes in (the clock included: `now` is a
// number), so the leader's updater and a replay of the log reach the same verdicts.
//
// This is Aurora's updater (org.apache.aurora.scheduler.updater at 11ebaee) taken apart:
//   - instanceGroups / queueNext: its strategies (QueueStrategy, BatchStrategy,
//     VariableBatchStrategy), as the groups they form;
//   - updateOrder / rollbackOrder: UpdateFactory.UpdateOrdering (create, then update, then kill;
//     a rollback runs the exact reverse);
//   - evaluateInstance: InstanceUpdater, one instance's verdict. Aurora's keeps a failure
//     counter inside; here the caller counts (countsAsFailure says when), so the same inputs
//     always give the same verdict, however often it is asked;
//   - updateFailed / failureMessage: OneWayJobUpdater's failure rule and
//     JobUpdateControllerImpl's event message.
// Every verdict says why in words an SRE can read: the reason becomes the event's message.

import { ACTIVE_STATES, TERMINAL_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import type { UpdateSettings } from "./settings.js";

// ---- Groups ----------------------------------------------------------------------------------

/** Which way the update runs: rolling forward, or rolling back what it did. */
export type UpdateDirection = "forward" | "rollback";

/**
 * The instances, in the order given (updateOrder or rollbackOrder), cut into the groups the
 * strategy works in:
 *   - queue(n): groups of n. These are nominal: a queue keeps n in flight and starts the next
 *     instance as soon as any one finishes (queueNext), never waiting for a whole group;
 *   - batch(n): groups of n; the next starts once every instance of the last one finished;
 *   - variableBatch([a, b, c]): groups of a, b, c, then c again until none is left (20 instances
 *     with [2, 3, 5]: 2, 3, 5, 5, 5). Rolling back, the sizes mirror the roll-forward's, last group
 *     first (VariableBatchStrategy counts from the instances left when rollingForward is false):
 *     20 instances roll back as 5, 5, 5, 3, 2.
 * Queue and batch roll back in groups of n from the start of the rollback order, as Aurora does.
 */
export function instanceGroups(
  settings: Pick<UpdateSettings, "strategy">,
  instances: readonly number[],
  direction: UpdateDirection = "forward",
): number[][] {
  const st = settings.strategy;
  let sizes: number[];
  if ("variableBatch" in st) {
    sizes = variableSizes(st.variableBatch.batchSizes, instances.length);
    if (direction === "rollback") sizes.reverse();
  } else {
    const n = "queue" in st ? st.queue.batchSize : st.batch.batchSize;
    if (!(n > 0)) throw new RangeError(`group size must be positive (got ${n})`);
    sizes = [];
    for (let left = instances.length; left > 0; left -= n) sizes.push(Math.min(n, left));
  }
  const out: number[][] = [];
  let i = 0;
  for (const size of sizes) {
    out.push(instances.slice(i, i + size));
    i += size;
  }
  return out;
}

/** Rolling forward: the sizes in turn, the last reused, the final group cut to what is left. */
function variableSizes(batchSizes: readonly number[], count: number): number[] {
  if (batchSizes.length === 0 || batchSizes.some((n) => !(n > 0)))
    throw new RangeError(`group sizes must be positive (got [${batchSizes.join(", ")}])`);
  const out: number[] = [];
  let left = count;
  for (let k = 0; left > 0; k++) {
    const size = Math.min(batchSizes[Math.min(k, batchSizes.length - 1)]!, left);
    out.push(size);
    left -= size;
  }
  return out;
}

/**
 * The queue strategy's next instances: with `inFlight` instances being updated now, start the
 * first ones of `remaining` (in update order) until n are in flight. Call it whenever an instance
 * finishes: a queue refills at once, it never waits for a group.
 */
export function queueNext(inFlight: number, remaining: readonly number[], n: number): number[] {
  return remaining.slice(0, Math.max(0, n - inFlight));
}

// ---- Order -----------------------------------------------------------------------------------

const ascending = (xs: Iterable<number>): number[] => [...xs].sort((a, b) => a - b);

/**
 * The roll-forward order (Aurora's UpdateOrdering): instances the update adds first, then those
 * it changes, then those it removes, each ascending. New capacity comes up before old goes away.
 */
export function updateOrder(added: Iterable<number>, changed: Iterable<number>, removed: Iterable<number>): number[] {
  return [...ascending(added), ...ascending(changed), ...ascending(removed)];
}

/**
 * The rollback order: the roll-forward order exactly reversed, so what changed last is undone
 * first. Batches of 3 over 0–8, (0,1,2)(3,4,5)(6,7,8), roll back as (8,7,6)(5,4,3)(2,1,0).
 */
export function rollbackOrder(added: Iterable<number>, changed: Iterable<number>, removed: Iterable<number>): number[] {
  return updateOrder(added, changed, removed).reverse();
}

// ---- One instance ----------------------------------------------------------------------------

/** The instance's newest task, as the caller's task record has it. */
export interface InstanceTask {
  configVersion: number;
  state: TaskStateName;
  /** Time of the task's latest state change (event time, epoch ms). */
  lastEventTs: number;
  /**
   * The task was ever KILLING (the task record's everKilling). A task killed for good (it was
   * KILLING and is no longer) counts as no task at all, as in Aurora's isTaskPresent: its instance
   * is free for the desired config, or already removed.
   */
  everKilling: boolean;
}

export interface InstanceInput {
  /** The config version the update wants the instance to run (rolling back: the old one); null: the update removes the instance. */
  desiredConfigVersion: number | null;
  /** The instance's newest task, or null when it has none. */
  task: InstanceTask | null;
  /**
   * Tasks with the desired config that ended during this update, this one included when `task`
   * is one (the caller counts each once, as it ends: countsAsFailure). A terminal desired task
   * counts as at least 1 even if the caller passed 0.
   */
  observedFailures: number;
  maxPerInstanceFailures: number;
  /** watchSecs × 1000. */
  minWaitInInstanceRunningMs: number;
  /** The time of the evaluation (epoch ms), from the caller's clock or the event being folded. */
  now: number;
}

export type InstanceVerdict =
  /** The instance is done: RUNNING the desired config long enough, or removed. */
  | { kind: "SUCCEEDED"; reason: string }
  /** RUNNING the desired config, not yet for minWait: ask again after `ms`. */
  | { kind: "EVALUATE_AFTER"; ms: number; reason: string }
  /** Make room for the desired config: KILL_OLD kills the task running another config, ADD creates the missing task. */
  | { kind: "REPLACE"; step: "KILL_OLD" | "ADD"; reason: string }
  /** The update removes the instance: kill its task. */
  | { kind: "KILL"; reason: string }
  /** The desired task ended more often than maxPerInstanceFailures allows. */
  | { kind: "FAILED"; reason: string }
  /** The task is on its way somewhere (starting, being killed, ended and to be rescheduled): ask again when it changes state. */
  | { kind: "WAIT"; reason: string };

const killedForGood = (t: InstanceTask): boolean => t.everKilling && t.state !== "KILLING";
/** Aurora's isKillable: active and not already being killed. */
const killable = (s: TaskStateName): boolean => ACTIVE_STATES.has(s) && s !== "KILLING";

/**
 * Whether the task ending now is a failure of the update (the caller adds 1 to the instance's
 * observedFailures, once per task): it runs the desired config, it ended, and not because it was
 * killed (a killed task is replaced, not counted: Aurora's isTaskPresent).
 */
export function countsAsFailure(desiredConfigVersion: number | null, task: InstanceTask): boolean {
  return (
    desiredConfigVersion !== null && task.configVersion === desiredConfigVersion && TERMINAL_STATES.has(task.state) && !task.everKilling
  );
}

/** Aurora's InstanceUpdater.evaluate, pure: what to do with one instance now, and why. */
export function evaluateInstance(input: InstanceInput): InstanceVerdict {
  const { desiredConfigVersion: want, task } = input;
  const present = task !== null && !killedForGood(task);
  if (want !== null && present) return desiredAndPresent(input, want, task);
  if (want !== null) {
    return {
      kind: "REPLACE",
      step: "ADD",
      reason:
        task === null
          ? `has no task: adding one with config version ${want}`
          : `task (config version ${task.configVersion}) was killed and is ${task.state}: adding one with config version ${want}`,
    };
  }
  if (present) {
    return killable(task.state)
      ? { kind: "KILL", reason: `is removed by the update: killing its task (${task.state}, config version ${task.configVersion})` }
      : { kind: "WAIT", reason: `is removed by the update: waiting for its task to leave ${task.state}` };
  }
  return {
    kind: "SUCCEEDED",
    reason: task === null ? "is removed: it has no task" : `is removed: its task was killed and is ${task.state}`,
  };
}

function desiredAndPresent(input: InstanceInput, want: number, task: InstanceTask): InstanceVerdict {
  const { state } = task;
  if (task.configVersion === want) {
    if (state === "RUNNING") {
      const ran = input.now - task.lastEventTs;
      const minWait = input.minWaitInInstanceRunningMs;
      if (ran >= minWait)
        return {
          kind: "SUCCEEDED",
          reason: `has run config version ${want} for ${duration(ran)} (at least ${duration(minWait)}: watchSecs)`,
        };
      const ms = minWait - ran;
      return {
        kind: "EVALUATE_AFTER",
        ms,
        reason: `is RUNNING config version ${want} for ${duration(Math.max(0, ran))} of the ${duration(minWait)} it must (watchSecs): looking again in ${duration(ms)}`,
      };
    }
    if (TERMINAL_STATES.has(state)) {
      const failures = Math.max(1, input.observedFailures);
      const max = input.maxPerInstanceFailures;
      const times = failures === 1 ? "1 failure" : `${failures} failures`;
      return failures > max
        ? { kind: "FAILED", reason: `ended ${state} running config version ${want}: ${times}, more than maxPerInstanceFailures ${max}` }
        : {
            kind: "WAIT",
            reason: `ended ${state} running config version ${want}: ${times}, within maxPerInstanceFailures ${max}; waiting for the task that replaces it`,
          };
    }
    return { kind: "WAIT", reason: `task with config version ${want} is ${state}: waiting for RUNNING` };
  }
  if (killable(state)) {
    return {
      kind: "REPLACE",
      step: "KILL_OLD",
      reason: `runs config version ${task.configVersion}, not ${want}: killing its task (${state}) to replace it`,
    };
  }
  const why =
    state === "KILLING"
      ? "is being killed: waiting for it to end"
      : TERMINAL_STATES.has(state)
        ? `ended ${state} on its own: waiting for the scheduler to reschedule it`
        : `is ${state}: waiting for it to change`;
  return { kind: "WAIT", reason: `task with config version ${task.configVersion} (not ${want}) ${why}` };
}

/** "45s", "1.5s", "850ms", "2m5s": a duration for a reason. */
function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${s % 60 === 0 ? "" : `${s % 60}s`}`;
}

// ---- The whole update ------------------------------------------------------------------------

/** OneWayJobUpdater's rule: the update (one direction of it) failed once more instances failed than maxTotalFailures. */
export function updateFailed(failedInstances: ReadonlySet<number>, maxTotalFailures: number): boolean {
  return failedInstances.size > maxTotalFailures;
}

/** The job update event's message for a failure, Aurora's words: "Latest failure: instance 3 ended FAILED …". */
export function failureMessage(instance: number, reason: string): string {
  return `Latest failure: instance ${instance} ${reason}`;
}
