// The update planner and its settings, table by table: Aurora's three strategies as groups, the
// update and rollback order, every InstanceUpdater verdict, the failure rule, and the settings'
// defaults, effective strategy and every validation rule (each refusal names its field).

import { describe, expect, it } from "vitest";
import { checker } from "../src/domain/validate.js";
import type { TaskStateName } from "../src/statemachines/taskStates.js";
import {
  countsAsFailure,
  evaluateInstance,
  failureMessage,
  type InstanceInput,
  type InstanceTask,
  instanceGroups,
  queueNext,
  rollbackOrder,
  updateFailed,
  updateOrder,
} from "../src/updater/plan.js";
import {
  autopauseAfterBatch,
  blockIfNoPulsesAfterMs,
  minWaitInInstanceRunningMs,
  normaliseUpdateConfig,
  UPDATE_DEFAULTS,
  UpdateConfigError,
  type UpdateStrategy,
  updateConfigProblems,
} from "../src/updater/settings.js";
import { UpdateSettingsSchema } from "../src/domain/update.js";

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const sizes = (groups: number[][]) => groups.map((g) => g.length);

describe("strategies: instanceGroups", () => {
  const cases: Array<[string, UpdateStrategy, number, number[]]> = [
    [
      "variable [2,3,5] on 20 reuses the last size",
      { variableBatch: { batchSizes: [2, 3, 5], autopauseAfterBatch: false } },
      20,
      [2, 3, 5, 5, 5],
    ],
    ["variable [1,2] on 5", { variableBatch: { batchSizes: [1, 2], autopauseAfterBatch: false } }, 5, [1, 2, 2]],
    ["variable [2,3,5] on 4 stops early", { variableBatch: { batchSizes: [2, 3, 5], autopauseAfterBatch: false } }, 4, [2, 2]],
    ["variable [2,3] on 9: last group cut", { variableBatch: { batchSizes: [2, 3], autopauseAfterBatch: false } }, 9, [2, 3, 3, 1]],
    ["batch 2 on 6", { batch: { batchSize: 2, autopauseAfterBatch: false } }, 6, [2, 2, 2]],
    ["batch 2 on 5", { batch: { batchSize: 2, autopauseAfterBatch: false } }, 5, [2, 2, 1]],
    ["batch 10 on 3", { batch: { batchSize: 10, autopauseAfterBatch: false } }, 3, [3]],
    ["queue 1 on 3", { queue: { batchSize: 1 } }, 3, [1, 1, 1]],
    ["queue 2 on 5 (nominal groups)", { queue: { batchSize: 2 } }, 5, [2, 2, 1]],
    ["nothing to update", { queue: { batchSize: 2 } }, 0, []],
  ];
  for (const [name, strategy, n, expected] of cases) {
    it(name, () => {
      const groups = instanceGroups({ strategy }, range(n));
      expect(sizes(groups)).toEqual(expected);
      expect(groups.flat()).toEqual(range(n));
    });
  }

  it("keeps the order it is given", () => {
    expect(instanceGroups({ strategy: { batch: { batchSize: 2, autopauseAfterBatch: false } } }, [5, 1, 9, 0])).toEqual([
      [5, 1],
      [9, 0],
    ]);
  });

  it("rolls a variable batch back in the roll-forward's groups, mirrored (VariableBatchStrategy, rollingForward false)", () => {
    const strategy: UpdateStrategy = { variableBatch: { batchSizes: [2, 3, 5], autopauseAfterBatch: false } };
    expect(sizes(instanceGroups({ strategy }, range(20), "rollback"))).toEqual([5, 5, 5, 3, 2]);
    // Aurora's own example: 4 updated with [2, 3] rolled forward as 2, 2; they roll back as 2, 2.
    expect(
      sizes(instanceGroups({ strategy: { variableBatch: { batchSizes: [2, 3], autopauseAfterBatch: false } } }, range(4), "rollback")),
    ).toEqual([2, 2]);
    expect(
      sizes(instanceGroups({ strategy: { variableBatch: { batchSizes: [1, 2], autopauseAfterBatch: false } } }, range(5), "rollback")),
    ).toEqual([2, 2, 1]);
  });

  it("rolls batch and queue back in groups of n from the start of the rollback order", () => {
    const back = rollbackOrder([], range(9), []);
    expect(instanceGroups({ strategy: { batch: { batchSize: 3, autopauseAfterBatch: false } } }, back, "rollback")).toEqual([
      [8, 7, 6],
      [5, 4, 3],
      [2, 1, 0],
    ]);
    expect(
      sizes(
        instanceGroups({ strategy: { batch: { batchSize: 2, autopauseAfterBatch: false } } }, rollbackOrder([], range(5), []), "rollback"),
      ),
    ).toEqual([2, 2, 1]);
  });

  it("queueNext refills up to n as soon as one finishes", () => {
    expect(queueNext(0, [3, 4, 5, 6], 2)).toEqual([3, 4]);
    expect(queueNext(1, [5, 6], 2)).toEqual([5]);
    expect(queueNext(2, [5, 6], 2)).toEqual([]);
    expect(queueNext(3, [5, 6], 2)).toEqual([]);
    expect(queueNext(0, [], 2)).toEqual([]);
  });

  it("refuses a size that could never make progress", () => {
    expect(() => instanceGroups({ strategy: { queue: { batchSize: 0 } } }, range(3))).toThrow(RangeError);
    expect(() => instanceGroups({ strategy: { variableBatch: { batchSizes: [], autopauseAfterBatch: false } } }, range(3))).toThrow(
      RangeError,
    );
    expect(() => instanceGroups({ strategy: { variableBatch: { batchSizes: [1, 0], autopauseAfterBatch: false } } }, range(3))).toThrow(
      RangeError,
    );
  });
});

describe("order (UpdateFactory.UpdateOrdering)", () => {
  it("adds, then changes, then removes, each ascending", () => {
    expect(updateOrder([7, 5], new Set([3, 0, 1]), [9, 8])).toEqual([5, 7, 0, 1, 3, 8, 9]);
    expect(updateOrder([], [], [])).toEqual([]);
  });

  it("rolls back in the exact reverse", () => {
    expect(rollbackOrder([7, 5], [3, 0, 1], [9, 8])).toEqual([9, 8, 3, 1, 0, 7, 5]);
  });

  it("the reference's example: (0,1,2)(3,4,5)(6,7,8) rolls back as (8,7,6)(5,4,3)(2,1,0)", () => {
    const batch3 = { strategy: { batch: { batchSize: 3, autopauseAfterBatch: false } } } as const;
    expect(instanceGroups(batch3, updateOrder([], range(9), []))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
    ]);
    expect(instanceGroups(batch3, rollbackOrder([], range(9), []), "rollback")).toEqual([
      [8, 7, 6],
      [5, 4, 3],
      [2, 1, 0],
    ]);
  });
});

describe("one instance: evaluateInstance (Aurora's InstanceUpdater)", () => {
  const NOW = 1_000_000;
  const task = (configVersion: number, state: TaskStateName, agoMs = 0, everKilling = false): InstanceTask => ({
    configVersion,
    state,
    lastEventTs: NOW - agoMs,
    everKilling,
  });
  const input = (desiredConfigVersion: number | null, t: InstanceTask | null, more: Partial<InstanceInput> = {}): InstanceInput => ({
    desiredConfigVersion,
    task: t,
    observedFailures: 0,
    maxPerInstanceFailures: 0,
    minWaitInInstanceRunningMs: 45_000,
    now: NOW,
    ...more,
  });

  const cases: Array<[string, InstanceInput, Record<string, unknown>, RegExp]> = [
    // The desired config is running.
    [
      "RUNNING the desired config long enough",
      input(2, task(2, "RUNNING", 45_000)),
      { kind: "SUCCEEDED" },
      /has run config version 2 for 45s/,
    ],
    [
      "RUNNING the desired config longer",
      input(2, task(2, "RUNNING", 125_000)),
      { kind: "SUCCEEDED" },
      /for 2m5s \(at least 45s: watchSecs\)/,
    ],
    [
      "RUNNING, not yet for watchSecs",
      input(2, task(2, "RUNNING", 10_000)),
      { kind: "EVALUATE_AFTER", ms: 35_000 },
      /RUNNING config version 2 for 10s of the 45s.*looking again in 35s/,
    ],
    ["RUNNING just now", input(2, task(2, "RUNNING", 0)), { kind: "EVALUATE_AFTER", ms: 45_000 }, /looking again in 45s/],
    [
      "watchSecs 0: RUNNING is enough",
      input(2, task(2, "RUNNING", 0), { minWaitInInstanceRunningMs: 0 }),
      { kind: "SUCCEEDED" },
      /for 0ms/,
    ],
    // On its way.
    ["desired task PENDING", input(2, task(2, "PENDING")), { kind: "WAIT" }, /config version 2 is PENDING: waiting for RUNNING/],
    ["desired task THROTTLED", input(2, task(2, "THROTTLED")), { kind: "WAIT" }, /THROTTLED/],
    ["desired task ASSIGNED", input(2, task(2, "ASSIGNED")), { kind: "WAIT" }, /ASSIGNED/],
    ["desired task STARTING", input(2, task(2, "STARTING")), { kind: "WAIT" }, /STARTING: waiting for RUNNING/],
    ["desired task PARTITIONED", input(2, task(2, "PARTITIONED")), { kind: "WAIT" }, /PARTITIONED/],
    // Failures of the desired config.
    [
      "desired task ended, beyond maxPerInstanceFailures 0",
      input(2, task(2, "FAILED"), { observedFailures: 1 }),
      { kind: "FAILED" },
      /^ended FAILED running config version 2: 1 failure, more than maxPerInstanceFailures 0$/,
    ],
    [
      "desired task ended, within maxPerInstanceFailures 2",
      input(2, task(2, "FAILED"), { observedFailures: 2, maxPerInstanceFailures: 2 }),
      { kind: "WAIT" },
      /2 failures, within maxPerInstanceFailures 2; waiting for the task that replaces it/,
    ],
    [
      "desired task ended the third time with 2 tolerated",
      input(2, task(2, "LOST"), { observedFailures: 3, maxPerInstanceFailures: 2 }),
      { kind: "FAILED" },
      /ended LOST .*3 failures, more than maxPerInstanceFailures 2/,
    ],
    [
      "a terminal desired task is at least one failure",
      input(2, task(2, "FINISHED"), { observedFailures: 0 }),
      { kind: "FAILED" },
      /ended FINISHED .*1 failure/,
    ],
    // The old config.
    [
      "old config RUNNING: replace it",
      input(2, task(1, "RUNNING", 999_999)),
      { kind: "REPLACE", step: "KILL_OLD" },
      /runs config version 1, not 2: killing its task \(RUNNING\)/,
    ],
    ["old config PENDING: replace it", input(2, task(1, "PENDING")), { kind: "REPLACE", step: "KILL_OLD" }, /PENDING/],
    ["old config RESTARTING is killable (Aurora)", input(2, task(1, "RESTARTING")), { kind: "REPLACE", step: "KILL_OLD" }, /RESTARTING/],
    [
      "old config KILLING: wait",
      input(2, task(1, "KILLING", 0, true)),
      { kind: "WAIT" },
      /config version 1 \(not 2\) is being killed: waiting for it to end/,
    ],
    [
      "old config killed for good: add the new one",
      input(2, task(1, "KILLED", 0, true)),
      { kind: "REPLACE", step: "ADD" },
      /was killed and is KILLED: adding one with config version 2/,
    ],
    [
      "old config ended on its own: wait for the reschedule",
      input(2, task(1, "FAILED")),
      { kind: "WAIT" },
      /ended FAILED on its own: waiting for the scheduler to reschedule it/,
    ],
    ["old config INIT: wait", input(2, task(1, "INIT")), { kind: "WAIT" }, /is INIT: waiting for it to change/],
    // New instances.
    ["no task: add one", input(2, null), { kind: "REPLACE", step: "ADD" }, /^has no task: adding one with config version 2$/],
    ["desired task killed by someone: add it again", input(2, task(2, "KILLED", 0, true)), { kind: "REPLACE", step: "ADD" }, /was killed/],
    // Removed instances.
    [
      "removed, task RUNNING: kill",
      input(null, task(1, "RUNNING")),
      { kind: "KILL" },
      /is removed by the update: killing its task \(RUNNING, config version 1\)/,
    ],
    ["removed, task PENDING: kill", input(null, task(1, "PENDING")), { kind: "KILL" }, /PENDING/],
    ["removed, task KILLING: wait", input(null, task(1, "KILLING", 0, true)), { kind: "WAIT" }, /waiting for its task to leave KILLING/],
    ["removed, task ended on its own: wait for it to settle", input(null, task(1, "FAILED")), { kind: "WAIT" }, /leave FAILED/],
    [
      "removed, task killed for good: done",
      input(null, task(1, "KILLED", 0, true)),
      { kind: "SUCCEEDED" },
      /is removed: its task was killed and is KILLED/,
    ],
    ["removed, no task: done", input(null, null), { kind: "SUCCEEDED" }, /is removed: it has no task/],
  ];
  for (const [name, inp, expected, reason] of cases) {
    it(name, () => {
      const v = evaluateInstance(inp);
      expect(v).toMatchObject(expected);
      expect(v.reason).toMatch(reason);
      // Pure: asking again gives the same answer.
      expect(evaluateInstance(inp)).toEqual(v);
    });
  }

  it("counts as a failure: a desired task that ended, unless it was killed", () => {
    expect(countsAsFailure(2, task(2, "FAILED"))).toBe(true);
    expect(countsAsFailure(2, task(2, "FINISHED"))).toBe(true);
    expect(countsAsFailure(2, task(2, "KILLED", 0, true))).toBe(false);
    expect(countsAsFailure(2, task(2, "RUNNING"))).toBe(false);
    expect(countsAsFailure(2, task(1, "FAILED"))).toBe(false);
    expect(countsAsFailure(null, task(1, "FAILED"))).toBe(false);
  });
});

describe("the whole update", () => {
  it("fails once more instances failed than maxTotalFailures (OneWayJobUpdater)", () => {
    expect(updateFailed(new Set(), 0)).toBe(false);
    expect(updateFailed(new Set([3]), 0)).toBe(true);
    expect(updateFailed(new Set([3]), 1)).toBe(false);
    expect(updateFailed(new Set([3, 4]), 1)).toBe(true);
  });

  it("says which instance failed last, in Aurora's words", () => {
    expect(failureMessage(3, "exited.")).toBe("Latest failure: instance 3 exited.");
  });
});

describe("settings: defaults and the effective strategy", () => {
  const checkSettings = checker(UpdateSettingsSchema);

  it("Aurora's defaults", () => {
    expect(UPDATE_DEFAULTS).toEqual({
      batchSize: 1,
      watchSecs: 45,
      maxPerInstanceFailures: 0,
      maxTotalFailures: 0,
      rollbackOnFailure: true,
      waitForBatchCompletion: false,
      slaAware: false,
    });
    const s = normaliseUpdateConfig(undefined, 3);
    expect(s).toEqual({
      strategy: { queue: { batchSize: 1 } },
      watchSecs: 45,
      maxPerInstanceFailures: 0,
      maxTotalFailures: 0,
      rollbackOnFailure: true,
      slaAware: false,
    });
    expect(normaliseUpdateConfig({}, 3)).toEqual(s);
    expect(minWaitInInstanceRunningMs(s)).toBe(45_000);
    expect(blockIfNoPulsesAfterMs(s)).toBeNull();
    expect(autopauseAfterBatch(s)).toBe(false);
  });

  const cases: Array<[string, Parameters<typeof normaliseUpdateConfig>[0], UpdateStrategy]> = [
    ["no strategy: Queue(batchSize)", { batchSize: 2 }, { queue: { batchSize: 2 } }],
    [
      "no strategy, waitForBatchCompletion: Batch(batchSize)",
      { batchSize: 3, waitForBatchCompletion: true },
      { batch: { batchSize: 3, autopauseAfterBatch: false } },
    ],
    ["queue, size defaulted", { strategy: { queue: {} } }, { queue: { batchSize: 1 } }],
    ["queue", { strategy: { queue: { batchSize: 4 } } }, { queue: { batchSize: 4 } }],
    [
      "batch with autopause",
      { strategy: { batch: { batchSize: 2, autopauseAfterBatch: true } } },
      { batch: { batchSize: 2, autopauseAfterBatch: true } },
    ],
    [
      "variable batch",
      { batchSize: 1, strategy: { variableBatch: { batchSizes: [1, 2] } } },
      { variableBatch: { batchSizes: [1, 2], autopauseAfterBatch: false } },
    ],
  ];
  for (const [name, raw, strategy] of cases) {
    it(name, () => {
      const s = normaliseUpdateConfig(raw, 5);
      expect(s.strategy).toEqual(strategy);
      expect(checkSettings(s)).toEqual([]);
    });
  }

  it("keeps what was set, pulse included, and the log schema accepts it", () => {
    const s = normaliseUpdateConfig(
      { watchSecs: 0, maxPerInstanceFailures: 2, maxTotalFailures: 1, rollbackOnFailure: false, pulseIntervalSecs: 60, slaAware: false },
      3,
    );
    expect(s).toEqual({
      strategy: { queue: { batchSize: 1 } },
      watchSecs: 0,
      maxPerInstanceFailures: 2,
      maxTotalFailures: 1,
      rollbackOnFailure: false,
      pulseIntervalSecs: 60,
      slaAware: false,
    });
    expect(blockIfNoPulsesAfterMs(s)).toBe(60_000);
    expect(checkSettings(s)).toEqual([]);
    expect(checkSettings({ ...s, strategy: { queue: {} } })).not.toEqual([]);
  });

  it("refuses to normalise a config that breaks a rule, listing every problem", () => {
    expect(() => normaliseUpdateConfig({ batchSize: 0, watchSecs: -1 }, 3)).toThrow(UpdateConfigError);
    try {
      normaliseUpdateConfig({ batchSize: 0, watchSecs: -1 }, 3);
    } catch (e) {
      expect((e as UpdateConfigError).problems.map((p) => p.path)).toEqual(["updateConfig.batchSize", "updateConfig.watchSecs"]);
      expect((e as Error).message).toMatch(/^invalid updateConfig: updateConfig.batchSize: must be greater than 0/);
    }
  });
});

describe("settings: every rule refused, naming its field", () => {
  const cases: Array<[string, unknown, number, string, RegExp]> = [
    // Client side (updater_util.py).
    [
      "batchSize 0",
      { batchSize: 0 },
      3,
      "updateConfig.batchSize",
      /must be greater than 0 \(got 0; Aurora: "Batch size should be greater than 0"\)/,
    ],
    ["batchSize negative", { batchSize: -2 }, 3, "updateConfig.batchSize", /greater than 0 \(got -2/],
    [
      "watchSecs negative",
      { watchSecs: -1 },
      3,
      "updateConfig.watchSecs",
      /must be 0 or more .*"Watch seconds should be greater than or equal to 0"/,
    ],
    [
      "pulseIntervalSecs under 60",
      { pulseIntervalSecs: 59 },
      3,
      "updateConfig.pulseIntervalSecs",
      /at least 60 when set \(got 59; Aurora: "Pulse interval seconds must be at least 60 seconds."\)/,
    ],
    ["pulseIntervalSecs 0", { pulseIntervalSecs: 0 }, 3, "updateConfig.pulseIntervalSecs", /at least 60/],
    [
      "waitForBatchCompletion with a strategy",
      { waitForBatchCompletion: true, strategy: { queue: { batchSize: 2 } } },
      3,
      "updateConfig.waitForBatchCompletion",
      /cannot be combined with strategy.*"Ambiguous update configuration. Cannot combine wait_batch_completion with an explicit update strategy."/,
    ],
    [
      "batchSize > 1 with a strategy",
      { batchSize: 2, strategy: { batch: { batchSize: 2 } } },
      3,
      "updateConfig.batchSize",
      /cannot be more than 1 with a strategy.*"Ambiguous update configuration. Cannot combine update strategy with batch size./,
    ],
    // Scheduler side (SchedulerThriftInterface.startJobUpdate).
    [
      "queue size 0",
      { strategy: { queue: { batchSize: 0 } } },
      3,
      "updateConfig.strategy.queue.batchSize",
      /greater than 0 \(got 0; Aurora: "All update group sizes must be positive."\)/,
    ],
    [
      "batch size negative",
      { strategy: { batch: { batchSize: -1 } } },
      3,
      "updateConfig.strategy.batch.batchSize",
      /All update group sizes must be positive/,
    ],
    [
      "a variable batch size of 0",
      { strategy: { variableBatch: { batchSizes: [2, 0] } } },
      3,
      "updateConfig.strategy.variableBatch.batchSizes[1]",
      /greater than 0 \(got 0; Aurora: "All update group sizes must be positive."\)/,
    ],
    [
      "no variable batch sizes",
      { strategy: { variableBatch: { batchSizes: [] } } },
      3,
      "updateConfig.strategy.variableBatch.batchSizes",
      /at least one group size \(Aurora: "Update results in no instance being modified."\)/,
    ],
    [
      "variable batch sizes missing",
      { strategy: { variableBatch: {} } },
      3,
      "updateConfig.strategy.variableBatch.batchSizes",
      /is required/,
    ],
    [
      "maxPerInstanceFailures negative",
      { maxPerInstanceFailures: -1 },
      3,
      "updateConfig.maxPerInstanceFailures",
      /must be 0 or more \(got -1; Aurora: "maxPerInstanceFailures must be non-negative."\)/,
    ],
    [
      "maxTotalFailures negative",
      { maxTotalFailures: -1 },
      3,
      "updateConfig.maxTotalFailures",
      /must be 0 or more \(got -1; Aurora's maxFailedInstances: "maxFailedInstances must be non-negative."\)/,
    ],
    [
      "maxPerInstanceFailures × instances over 20000",
      { maxPerInstanceFailures: 6 },
      4000,
      "updateConfig.maxPerInstanceFailures",
      /allows too many failures: 6 × 4000 instances = 24000, more than 20000 \(Aurora: "Your update allows too many failures to occur/,
    ],
    [
      "slaAware",
      { slaAware: true },
      3,
      "updateConfig.slaAware",
      /is not supported yet: Roost has no SLA policies.*"slaAware is true, but no task slaPolicy is specified."/,
    ],
    // Shapes.
    [
      "an unknown strategy",
      { strategy: { rolling: { batchSize: 2 } } },
      3,
      "updateConfig.strategy",
      /exactly one of queue, batch, variableBatch \(got rolling; Aurora: "Update strategy provided is unknown."\)/,
    ],
    ["two strategies", { strategy: { queue: {}, batch: {} } }, 3, "updateConfig.strategy", /exactly one of .*got queue, batch/],
    ["an empty strategy", { strategy: {} }, 3, "updateConfig.strategy", /exactly one of .*got none/],
    ["a strategy that is not a mapping", { strategy: "queue" }, 3, "updateConfig.strategy", /must be a mapping with one of/],
    ["an unknown field", { batchSzie: 2 }, 3, "updateConfig.batchSzie", /is not a known field/],
    [
      "an unknown strategy field",
      { strategy: { queue: { batchSizes: [2] } } },
      3,
      "updateConfig.strategy.queue.batchSizes",
      /is not a known field \(known: batchSize\)/,
    ],
    ["a fractional size", { batchSize: 1.5 }, 3, "updateConfig.batchSize", /must be a whole number \(got 1.5\)/],
    ["a string for a number", { watchSecs: "45" }, 3, "updateConfig.watchSecs", /must be a whole number \(got "45"\)/],
    ["a string for a boolean", { rollbackOnFailure: "yes" }, 3, "updateConfig.rollbackOnFailure", /must be true or false/],
    [
      "autopause not a boolean",
      { strategy: { batch: { autopauseAfterBatch: 1 } } },
      3,
      "updateConfig.strategy.batch.autopauseAfterBatch",
      /must be true or false/,
    ],
    ["not a mapping", [1], 3, "updateConfig", /must be a mapping of update settings/],
  ];
  for (const [name, raw, instances, path, rule] of cases) {
    it(name, () => {
      const problems = updateConfigProblems(raw, instances);
      expect(problems, JSON.stringify(problems)).toHaveLength(1);
      expect(problems[0]!.path).toBe(path);
      expect(problems[0]!.rule).toMatch(rule);
    });
  }

  it("accepts the limits themselves", () => {
    expect(updateConfigProblems({ maxPerInstanceFailures: 5, pulseIntervalSecs: 60, watchSecs: 0, batchSize: 1 }, 4000)).toEqual([]);
    expect(updateConfigProblems({ batchSize: 1, strategy: { variableBatch: { batchSizes: [1, 2] } } }, 3)).toEqual([]);
    expect(updateConfigProblems({ waitForBatchCompletion: false, strategy: { queue: { batchSize: 3 } } }, 3)).toEqual([]);
    expect(updateConfigProblems({ slaAware: false }, 3)).toEqual([]);
    expect(updateConfigProblems(undefined, 3)).toEqual([]);
  });

  it("does not check Aurora's docs-only rule maxTotalFailures < instances", () => {
    expect(updateConfigProblems({ maxTotalFailures: 5 }, 3)).toEqual([]);
  });

  it("reports every problem at once", () => {
    const problems = updateConfigProblems(
      { batchSize: 2, waitForBatchCompletion: true, strategy: { variableBatch: { batchSizes: [0, -1] } } },
      3,
    );
    expect(problems.map((p) => p.path)).toEqual([
      "updateConfig.waitForBatchCompletion",
      "updateConfig.batchSize",
      "updateConfig.strategy.variableBatch.batchSizes[0]",
      "updateConfig.strategy.variableBatch.batchSizes[1]",
    ]);
  });
});
