// Scheduling policy: every timing and knob of Aurora's rules, with Aurora's defaults
// (Aurora's scheduler flags: TaskReconciler, TaskThrottler, Preemptor, TaskGroups). Tests and the simulator shorten them; production keeps them.

import { DEFAULT_MIN_REQUIRED_INSTANCES } from "../sla/policy.js";

export interface SchedulingPolicy {
  /** "spread" (default: least loaded host first) or "binpack" (fullest host that fits). */
  placementMode: "spread" | "binpack";
  /** Feasible candidates to compare before choosing (Nomad-style limit); the scan stops there. */
  candidateLimit: number;
  /** A task that ran less than this before ending is flapping (Aurora: 5 min). */
  flapThresholdMs: number;
  /** Flap penalty: truncated binary backoff from initial to max (Aurora: 30 s → 5 min). */
  throttleInitialMs: number;
  throttleMaxMs: number;
  /** ASSIGNED, KILLING, RESTARTING, PREEMPTING or DRAINING this long ends in LOST (5 min). */
  transientTimeoutMs: number;
  /** A task group that failed to place retries with backoff from initial to max (1 s → 1 min). */
  groupBackoffInitialMs: number;
  groupBackoffMaxMs: number;
  /** A pending task may preempt only after waiting this long (Aurora: 3 min). */
  preemptionDelayMs: number;
  /** How often the preemptor looks for victims (Aurora: 1 min). */
  preemptionIntervalMs: number;
  /** How long a slot freed by preemption is held for its task (Aurora: 5 min). */
  reservationMs: number;
  /** After a takeover: how long to wait for known agents to re-register before resuming. */
  reconcileWindowMs: number;
  /** An agent not heard from for this long is UNREACHABLE and its tasks PARTITIONED. */
  agentTimeoutMs: number;
  /** A PARTITIONED task goes LOST (and is rescheduled) after this delay (Aurora's partition policy: 0). */
  partitionDelayMs: number;
  /** How often the leader looks at draining hosts (Aurora's -host_maintenance_polling_interval: 1 min). */
  hostMaintenancePollingIntervalMs: number;
  /** A job with fewer live tasks is drained without an SLA check (Aurora's -min_required_instances_for_sla_check: 20). */
  minRequiredInstances: number;
}

export const AURORA_POLICY: SchedulingPolicy = {
  placementMode: "spread",
  candidateLimit: 16,
  flapThresholdMs: 5 * 60_000,
  throttleInitialMs: 30_000,
  throttleMaxMs: 5 * 60_000,
  transientTimeoutMs: 5 * 60_000,
  groupBackoffInitialMs: 1_000,
  groupBackoffMaxMs: 60_000,
  preemptionDelayMs: 3 * 60_000,
  preemptionIntervalMs: 60_000,
  reservationMs: 5 * 60_000,
  reconcileWindowMs: 5_000,
  agentTimeoutMs: 15_000,
  partitionDelayMs: 0,
  hostMaintenancePollingIntervalMs: 60_000,
  minRequiredInstances: DEFAULT_MIN_REQUIRED_INSTANCES,
};

/**
 * `roost dev` runs Aurora's rules on a human's time scale: a process killed by hand comes back in
 * seconds, not after a 30 s flap penalty, and a full cell preempts after 5 s, not 3 min.
 */
export const DEV_POLICY: Partial<SchedulingPolicy> = {
  throttleInitialMs: 2_000,
  throttleMaxMs: 30_000,
  preemptionDelayMs: 5_000,
  preemptionIntervalMs: 2_000,
  groupBackoffMaxMs: 5_000,
  agentTimeoutMs: 5_000,
  hostMaintenancePollingIntervalMs: 5_000,
};

/** Parse a policy override (JSON), naming any unknown or ill-typed field. */
export function parsePolicy(json: string): Partial<SchedulingPolicy> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`--policy must be a JSON object: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new Error("--policy must be a JSON object");
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in AURORA_POLICY)) throw new Error(`--policy: unknown field "${k}"; known: ${Object.keys(AURORA_POLICY).join(", ")}`);
    if (k === "placementMode") {
      if (v !== "spread" && v !== "binpack") throw new Error(`--policy: placementMode must be "spread" or "binpack"`);
    } else if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new Error(`--policy: ${k} must be a number ≥ 0 (milliseconds or a count)`);
    } else if (k === "candidateLimit" && (!Number.isInteger(v) || v < 1)) {
      throw new Error(`--policy: candidateLimit must be a whole number ≥ 1 (got ${v})`);
    } else if (k === "minRequiredInstances" && !Number.isInteger(v)) {
      throw new Error(`--policy: minRequiredInstances must be a whole number ≥ 0 (got ${v})`);
    } else if (k === "hostMaintenancePollingIntervalMs" && v < 1) {
      throw new Error(`--policy: hostMaintenancePollingIntervalMs must be ≥ 1 (got ${v})`);
    }
    out[k] = v;
  }
  return out as Partial<SchedulingPolicy>;
}
