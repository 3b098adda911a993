// How a job is updated: Aurora's UpdateConfig as the job spec's `updateConfig`, its defaults, its
// rules, and the one normalised shape the log stores.
//
// Names are Aurora's client fields in camelCase (base.py's UpdateConfig), with Aurora's defaults:
//
//   updateConfig:
//     batchSize: 1                 # batch_size; deprecated in Aurora: the size lives in the strategy
//     watchSecs: 45                # watch_secs → minWaitInInstanceRunningMs = watchSecs × 1000
//     maxPerInstanceFailures: 0    # max_per_shard_failures (Thrift maxPerInstanceFailures)
//     maxTotalFailures: 0          # max_total_failures (Thrift maxFailedInstances)
//     rollbackOnFailure: true
//     waitForBatchCompletion: false  # deprecated in Aurora: it means the batch strategy
//     pulseIntervalSecs: 60        # unset by default; set = a coordinated update (≥ 60)
//     slaAware: false              # refused for now: Roost has no SLA policies yet
//     strategy: { variableBatch: { batchSizes: [1, 2], autopauseAfterBatch: false } }
//
// The strategy is Aurora's union (Thrift JobUpdateStrategy, pystachio Choice) written as an
// object with exactly one key naming the variant, the way Thrift unions serialise to JSON:
//
//   { queue: { batchSize } }                               at most batchSize instances in flight
//   { batch: { batchSize, autopauseAfterBatch } }          groups of batchSize, each finished first
//   { variableBatch: { batchSizes, autopauseAfterBatch } } group sizes in turn, the last reused
//
// Normalising does what Aurora's client does (updater_util.py to_thrift_update_settings): with no
// strategy, Queue(batchSize), or Batch(batchSize) when waitForBatchCompletion. The normalised
// settings keep only the strategy (no batchSize, no waitForBatchCompletion: Aurora keeps those in
// JobUpdateSettings only for schedulers older than the strategies, which Roost never had).
//
// The rules are Aurora's client's and its scheduler's (SchedulerThriftInterface.startJobUpdate)
// together, each refusal naming the field and quoting Aurora's words where Aurora has some, so a
// search for the message finds Aurora's code and docs. Two of Aurora's rules are not here:
// "max_total_failures must be less than the instance count" is in its docs only (no code checks
// it); and slaAware needs an SLA policy, which Roost does not have, so it is refused outright.

/** Aurora's scheduler flag -max_update_instance_failures (default 4000 × 5): maxPerInstanceFailures × instances may not exceed it. */
const MAX_UPDATE_INSTANCE_FAILURES = 20_000;
/** Aurora's client: pulse_interval_secs must be at least this (UpdaterConfig.MIN_PULSE_INTERVAL_SECONDS). */
const MIN_PULSE_INTERVAL_SECS = 60;

/** Aurora's UpdateConfig defaults (base.py). pulseIntervalSecs is unset and strategy absent by default. */
export const UPDATE_DEFAULTS = Object.freeze({
  batchSize: 1,
  watchSecs: 45,
  maxPerInstanceFailures: 0,
  maxTotalFailures: 0,
  rollbackOnFailure: true,
  waitForBatchCompletion: false,
  slaAware: false,
});

/** The job spec's `updateConfig`, as written: every field optional. */
export interface UpdateConfigInput {
  batchSize?: number;
  watchSecs?: number;
  maxPerInstanceFailures?: number;
  maxTotalFailures?: number;
  rollbackOnFailure?: boolean;
  waitForBatchCompletion?: boolean;
  pulseIntervalSecs?: number;
  slaAware?: boolean;
  strategy?: UpdateStrategyInput;
}

type UpdateStrategyInput =
  | { queue: { batchSize?: number } }
  | { batch: { batchSize?: number; autopauseAfterBatch?: boolean } }
  | { variableBatch: { batchSizes: number[]; autopauseAfterBatch?: boolean } };

// The log's shape (UpdateSettingsSchema) lives in domain/update.ts with the other logged types.
import type { UpdateSettings, UpdateStrategy } from "../domain/update.js";

export type { UpdateSettings, UpdateStrategy };

/** Aurora's minWaitInInstanceRunningMs: how long an updated instance must stay RUNNING to count as updated. */
export function minWaitInInstanceRunningMs(s: Pick<UpdateSettings, "watchSecs">): number {
  return s.watchSecs * 1000;
}

/** Aurora's blockIfNoPulsesAfterMs, or null for an update that is not coordinated. */
export function blockIfNoPulsesAfterMs(s: Pick<UpdateSettings, "pulseIntervalSecs">): number | null {
  return s.pulseIntervalSecs === undefined ? null : s.pulseIntervalSecs * 1000;
}

/** The batch strategies can pause themselves after each group (autopause_after_batch). */
export function autopauseAfterBatch(s: Pick<UpdateSettings, "strategy">): boolean {
  const st = s.strategy;
  return "batch" in st ? st.batch.autopauseAfterBatch : "variableBatch" in st ? st.variableBatch.autopauseAfterBatch : false;
}

// ---- Rules -----------------------------------------------------------------------------------

/** One broken rule: the field (from the job spec's root, e.g. "updateConfig.strategy.batch.batchSize") and the rule in words. */
export interface UpdateConfigProblem {
  path: string;
  rule: string;
}

export class UpdateConfigError extends Error {
  readonly problems: readonly UpdateConfigProblem[];
  constructor(problems: readonly UpdateConfigProblem[]) {
    super(`invalid updateConfig: ${problems.map((p) => `${p.path}: ${p.rule}`).join("; ")}`);
    this.name = "UpdateConfigError";
    this.problems = problems;
  }
}

// Aurora's words, quoted in the refusals.
const AURORA = {
  batchSize: "Batch size should be greater than 0",
  watchSecs: "Watch seconds should be greater than or equal to 0",
  pulse: `Pulse interval seconds must be at least ${MIN_PULSE_INTERVAL_SECS} seconds.`,
  waitWithStrategy: "Ambiguous update configuration. Cannot combine wait_batch_completion with an explicit update strategy.",
  // Aurora's string, missing space included.
  batchSizeWithStrategy:
    "Ambiguous update configuration. Cannot combine update strategy with batch size. Please set batchsize inside of update strategy instead.",
  groupSize: "All update group sizes must be positive.",
  noInstances: "Update results in no instance being modified.",
  unknownStrategy: "Update strategy provided is unknown.",
  maxPerInstanceFailures: "maxPerInstanceFailures must be non-negative.",
  maxFailedInstances: "maxFailedInstances must be non-negative.",
  tooManyFailures: "Your update allows too many failures to occur, consider decreasing the per-instance failures or maxFailedInstances.",
  slaAware: "slaAware is true, but no task slaPolicy is specified.",
} as const;

const TOP_FIELDS = new Set([
  "batchSize",
  "watchSecs",
  "maxPerInstanceFailures",
  "maxTotalFailures",
  "rollbackOnFailure",
  "waitForBatchCompletion",
  "pulseIntervalSecs",
  "slaAware",
  "strategy",
]);
const STRATEGY_FIELDS: Record<string, ReadonlySet<string>> = {
  queue: new Set(["batchSize"]),
  batch: new Set(["batchSize", "autopauseAfterBatch"]),
  variableBatch: new Set(["batchSizes", "autopauseAfterBatch"]),
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const got = (v: unknown): string =>
  typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) ? "a list" : isRecord(v) ? "a mapping" : String(v);

/**
 * Every rule `raw` (the job spec's updateConfig; undefined = all defaults) breaks for a job of
 * `instanceCount` instances, in field order. Empty: normaliseUpdateConfig accepts it.
 */
export function updateConfigProblems(raw: unknown, instanceCount: number): UpdateConfigProblem[] {
  const out: UpdateConfigProblem[] = [];
  const at = (field: string) => `updateConfig${field === "" ? "" : `.${field}`}`;
  const add = (field: string, rule: string) => out.push({ path: at(field), rule });
  if (raw === undefined) return out;
  if (!isRecord(raw)) {
    add("", `must be a mapping of update settings (got ${got(raw)})`);
    return out;
  }
  for (const k of Object.keys(raw)) if (!TOP_FIELDS.has(k)) add(k, `is not a known field (known: ${[...TOP_FIELDS].join(", ")})`);

  /** An integer ≥ min, or undefined; reports a wrong type. */
  const int = (field: string, v: unknown): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      add(field, `must be a whole number (got ${got(v)})`);
      return undefined;
    }
    return v;
  };
  const bool = (field: string, v: unknown): boolean | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") {
      add(field, `must be true or false (got ${got(v)})`);
      return undefined;
    }
    return v;
  };

  const batchSize = int("batchSize", raw.batchSize);
  if (batchSize !== undefined && batchSize <= 0)
    add("batchSize", `must be greater than 0 (got ${batchSize}; Aurora: "${AURORA.batchSize}")`);
  const watchSecs = int("watchSecs", raw.watchSecs);
  if (watchSecs !== undefined && watchSecs < 0) add("watchSecs", `must be 0 or more (got ${watchSecs}; Aurora: "${AURORA.watchSecs}")`);
  const perInstance = int("maxPerInstanceFailures", raw.maxPerInstanceFailures);
  if (perInstance !== undefined && perInstance < 0)
    add("maxPerInstanceFailures", `must be 0 or more (got ${perInstance}; Aurora: "${AURORA.maxPerInstanceFailures}")`);
  if (perInstance !== undefined && perInstance > 0 && perInstance * instanceCount > MAX_UPDATE_INSTANCE_FAILURES)
    add(
      "maxPerInstanceFailures",
      `allows too many failures: ${perInstance} × ${instanceCount} instances = ${perInstance * instanceCount}, more than ${MAX_UPDATE_INSTANCE_FAILURES} ` +
        `(Aurora: "${AURORA.tooManyFailures}")`,
    );
  const total = int("maxTotalFailures", raw.maxTotalFailures);
  if (total !== undefined && total < 0)
    add("maxTotalFailures", `must be 0 or more (got ${total}; Aurora's maxFailedInstances: "${AURORA.maxFailedInstances}")`);
  bool("rollbackOnFailure", raw.rollbackOnFailure);
  const wait = bool("waitForBatchCompletion", raw.waitForBatchCompletion);
  const pulse = int("pulseIntervalSecs", raw.pulseIntervalSecs);
  if (pulse !== undefined && pulse < MIN_PULSE_INTERVAL_SECS)
    add("pulseIntervalSecs", `must be at least ${MIN_PULSE_INTERVAL_SECS} when set (got ${pulse}; Aurora: "${AURORA.pulse}")`);
  const sla = bool("slaAware", raw.slaAware);
  if (sla === true)
    add(
      "slaAware",
      `is not supported yet: Roost has no SLA policies, and an SLA-aware update needs one (Aurora: "${AURORA.slaAware}"); leave it out or set false`,
    );

  const strategy = raw.strategy;
  if (strategy !== undefined) {
    if (wait === true)
      add(
        "waitForBatchCompletion",
        `cannot be combined with strategy; use strategy: {batch: {...}} instead (Aurora: "${AURORA.waitWithStrategy}")`,
      );
    if (batchSize !== undefined && batchSize > 1)
      add(
        "batchSize",
        `cannot be more than 1 with a strategy; set the size inside strategy instead (Aurora: "${AURORA.batchSizeWithStrategy}")`,
      );
    strategyProblems(strategy, add, int, bool);
  }
  return out;
}

function strategyProblems(
  strategy: unknown,
  add: (field: string, rule: string) => void,
  int: (field: string, v: unknown) => number | undefined,
  bool: (field: string, v: unknown) => boolean | undefined,
): void {
  const kinds = Object.keys(STRATEGY_FIELDS).join(", ");
  if (!isRecord(strategy)) {
    add("strategy", `must be a mapping with one of ${kinds} (got ${got(strategy)})`);
    return;
  }
  const keys = Object.keys(strategy);
  if (keys.length !== 1 || STRATEGY_FIELDS[keys[0]!] === undefined) {
    const what = keys.length === 0 ? "none" : keys.join(", ");
    add("strategy", `must have exactly one of ${kinds} (got ${what}; Aurora: "${AURORA.unknownStrategy}")`);
    return;
  }
  const kind = keys[0]!;
  const body = strategy[kind];
  const f = (field: string) => `strategy.${kind}${field === "" ? "" : `.${field}`}`;
  if (!isRecord(body)) {
    add(f(""), `must be a mapping (got ${got(body)})`);
    return;
  }
  for (const k of Object.keys(body))
    if (!STRATEGY_FIELDS[kind]!.has(k)) add(f(k), `is not a known field (known: ${[...STRATEGY_FIELDS[kind]!].join(", ")})`);
  bool(f("autopauseAfterBatch"), body.autopauseAfterBatch);
  if (kind === "variableBatch") {
    const sizes = body.batchSizes;
    if (sizes === undefined) add(f("batchSizes"), "is required: the group sizes, in turn, e.g. [1, 2]");
    else if (!Array.isArray(sizes)) add(f("batchSizes"), `must be a list of group sizes (got ${got(sizes)})`);
    else if (sizes.length === 0) add(f("batchSizes"), `must list at least one group size (Aurora: "${AURORA.noInstances}")`);
    else
      sizes.forEach((n, i) => {
        const v = int(`${f("batchSizes")}[${i}]`, n);
        if (v !== undefined && v <= 0) add(`${f("batchSizes")}[${i}]`, `must be greater than 0 (got ${v}; Aurora: "${AURORA.groupSize}")`);
      });
  } else {
    const v = int(f("batchSize"), body.batchSize);
    if (v !== undefined && v <= 0) add(f("batchSize"), `must be greater than 0 (got ${v}; Aurora: "${AURORA.groupSize}")`);
  }
}

/**
 * The effective settings: defaults filled, the strategy made explicit as Aurora's client does
 * (none given: Queue(batchSize), or Batch(batchSize) when waitForBatchCompletion). Throws an
 * UpdateConfigError listing every problem when updateConfigProblems finds any.
 */
export function normaliseUpdateConfig(raw: UpdateConfigInput | undefined, instanceCount: number): UpdateSettings {
  const problems = updateConfigProblems(raw, instanceCount);
  if (problems.length > 0) throw new UpdateConfigError(problems);
  const r = raw ?? {};
  const d = UPDATE_DEFAULTS;
  const batchSize = r.batchSize ?? d.batchSize;
  let strategy: UpdateStrategy;
  const s = r.strategy;
  if (s === undefined)
    strategy =
      (r.waitForBatchCompletion ?? d.waitForBatchCompletion)
        ? { batch: { batchSize, autopauseAfterBatch: false } }
        : { queue: { batchSize } };
  else if ("queue" in s) strategy = { queue: { batchSize: s.queue.batchSize ?? 1 } };
  else if ("batch" in s)
    strategy = { batch: { batchSize: s.batch.batchSize ?? 1, autopauseAfterBatch: s.batch.autopauseAfterBatch ?? false } };
  else
    strategy = {
      variableBatch: { batchSizes: [...s.variableBatch.batchSizes], autopauseAfterBatch: s.variableBatch.autopauseAfterBatch ?? false },
    };
  return {
    strategy,
    watchSecs: r.watchSecs ?? d.watchSecs,
    maxPerInstanceFailures: r.maxPerInstanceFailures ?? d.maxPerInstanceFailures,
    maxTotalFailures: r.maxTotalFailures ?? d.maxTotalFailures,
    rollbackOnFailure: r.rollbackOnFailure ?? d.rollbackOnFailure,
    ...(r.pulseIntervalSecs !== undefined ? { pulseIntervalSecs: r.pulseIntervalSecs } : {}),
    slaAware: r.slaAware ?? d.slaAware,
  };
}
