// The job update lifecycle: Aurora's JobUpdateStateMachine as an XState machine.
//
// An update of a job (roll its instances from one config to another, watching each, and roll
// back on failure) has a status, Aurora's JobUpdateStatus: six active statuses and five terminal
// ones. The fold moves it by applying a logged request "go to status X" (event type = target
// status, as the task machine's TaskStateChanged does), so the log records what was asked and the
// machine decides whether it is allowed. Only the transitions of Aurora's ALLOWED_TRANSITIONS
// table are (JobUpdateStateMachine.java at apache/aurora 11ebaee); anything else, a terminal
// status included, leaves the status as it is and says so (allowed: false), where Aurora throws
// "Cannot transition update from X to Y". Nothing here throws on a request: a refused one is
// data for the caller to turn into an answer.
//
//   ROLLING_FORWARD ─▶ ROLLED_FORWARD            ROLLING_BACK ─▶ ROLLED_BACK
//        │  ▲ pause/resume, block/pulse               │  ▲
//        ▼  │                                         ▼  │
//   ROLL_FORWARD_PAUSED, ROLL_FORWARD_AWAITING_PULSE   ROLL_BACK_PAUSED, ROLL_BACK_AWAITING_PULSE
//   (forward side ─▶ ROLLING_BACK on failure or a manual rollback; any active ─▶ ABORTED, ERROR;
//    ROLLING_* ─▶ FAILED)
//
// The machine has no actions and no context: an update's effects (start a group, kill a task,
// re-evaluate later) depend on its instances, which src/updater/plan.ts decides, purely. The
// helpers below (pausedFor, resumedFor, awaitingPulseFor, unblockedFor, rollingBackFor, …) are
// Aurora's PAUSE/BLOCK/RESUME behaviour maps: which status an operator's verb asks for.
//
// XState's transition() costs tens of µs a call; the fold uses updateStep, a table compiled from
// the machine itself on first use (11 × 11 questions). test/updateMachine.test.ts checks the
// table against the machine, and the machine against Aurora's table written there independently.

import { setup, transition } from "xstate";

const ACTIVE_UPDATE_STATES_LIST = [
  "ROLLING_FORWARD",
  "ROLLING_BACK",
  "ROLL_FORWARD_PAUSED",
  "ROLL_BACK_PAUSED",
  "ROLL_FORWARD_AWAITING_PULSE",
  "ROLL_BACK_AWAITING_PULSE",
] as const;
const TERMINAL_UPDATE_STATES_LIST = ["ROLLED_FORWARD", "ROLLED_BACK", "ABORTED", "ERROR", "FAILED"] as const;

/** Aurora's JobUpdateStatus: the active statuses first, then the terminal ones. */
export const UPDATE_STATES = [...ACTIVE_UPDATE_STATES_LIST, ...TERMINAL_UPDATE_STATES_LIST] as const;
export type UpdateStatus = (typeof UPDATE_STATES)[number];

/** An update in one of these holds the job: no other update may start (Aurora's ACTIVE_JOB_UPDATE_STATES). */
export const ACTIVE_UPDATE_STATES: ReadonlySet<UpdateStatus> = new Set<UpdateStatus>(ACTIVE_UPDATE_STATES_LIST);
/** Over: the machine accepts nothing more. */
export const TERMINAL_UPDATE_STATES: ReadonlySet<UpdateStatus> = new Set<UpdateStatus>(TERMINAL_UPDATE_STATES_LIST);

/** Aurora's ALLOWED_TRANSITIONS, row by row (JobUpdateStateMachine.java). Terminal rows are empty. */
const ALLOWED: Readonly<Record<UpdateStatus, readonly UpdateStatus[]>> = {
  ROLLING_FORWARD: ["ROLLING_BACK", "ROLL_FORWARD_PAUSED", "ROLL_FORWARD_AWAITING_PULSE", "ROLLED_FORWARD", "ABORTED", "FAILED", "ERROR"],
  ROLLING_BACK: ["ROLL_BACK_PAUSED", "ROLL_BACK_AWAITING_PULSE", "ROLLED_BACK", "ABORTED", "ERROR", "FAILED"],
  ROLL_FORWARD_PAUSED: ["ROLLING_BACK", "ROLLING_FORWARD", "ROLL_FORWARD_AWAITING_PULSE", "ABORTED", "ERROR"],
  ROLL_BACK_PAUSED: ["ROLLING_BACK", "ROLL_BACK_AWAITING_PULSE", "ABORTED", "ERROR"],
  ROLL_FORWARD_AWAITING_PULSE: ["ROLLING_BACK", "ROLLING_FORWARD", "ROLL_FORWARD_PAUSED", "ABORTED", "ERROR"],
  ROLL_BACK_AWAITING_PULSE: ["ROLLING_BACK", "ROLL_BACK_PAUSED", "ABORTED", "ERROR"],
  ROLLED_FORWARD: [],
  ROLLED_BACK: [],
  ABORTED: [],
  ERROR: [],
  FAILED: [],
};

export type UpdateMachineEvent = { type: UpdateStatus };

// The states, built from ALLOWED: a final state for each terminal status, one target per allowed row.
type StateConfig = { type: "final" } | { on: Partial<Record<UpdateStatus, { target: UpdateStatus }>> };
const STATES = Object.fromEntries(
  UPDATE_STATES.map((s): [UpdateStatus, StateConfig] =>
    TERMINAL_UPDATE_STATES.has(s) ? [s, { type: "final" }] : [s, { on: Object.fromEntries(ALLOWED[s].map((to) => [to, { target: to }])) }],
  ),
) as Record<UpdateStatus, StateConfig>;

/**
 * The machine itself: updateMachineStep asks it, statemachines/graph.ts can draw it. Its initial
 * status is ROLLING_FORWARD; a coordinated update (one with pulseIntervalSecs) starts in
 * ROLL_FORWARD_AWAITING_PULSE instead (initialStatusFor), which the fold resolves directly: every
 * step starts from a status the log names, never from the machine's initial one.
 */
export const updateMachine = setup({ types: { events: {} as UpdateMachineEvent } }).createMachine({
  id: "update",
  initial: "ROLLING_FORWARD",
  states: STATES,
});

export interface UpdateStep {
  /** The status after the request (the current one when it is refused). */
  readonly next: UpdateStatus;
  /** The status changed. */
  readonly changed: boolean;
  /** The machine accepted the request (Aurora's table has the row). No allowed request keeps the status. */
  readonly allowed: boolean;
}

/** Ask the XState machine (slow, authoritative). */
export function updateMachineStep(from: UpdateStatus, to: UpdateStatus): UpdateStep {
  const snapshot = updateMachine.resolveState({ value: from, context: undefined });
  const allowed = snapshot.status === "active" && snapshot.can({ type: to });
  const [next] = transition(updateMachine, snapshot, { type: to });
  const value = next.value as UpdateStatus;
  return { next: value, changed: value !== from, allowed };
}

const N = UPDATE_STATES.length;
const INDEX: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(UPDATE_STATES.map((s, i) => [s, i])));
let table: UpdateStep[] | null = null;

function compile(): UpdateStep[] {
  const t = new Array<UpdateStep>(N * N);
  for (let f = 0; f < N; f++)
    for (let e = 0; e < N; e++) t[f * N + e] = Object.freeze(updateMachineStep(UPDATE_STATES[f]!, UPDATE_STATES[e]!));
  return t;
}

/** The fold's path: one array lookup into the machine's compiled answers. Same as updateMachineStep, by test. */
export function updateStep(from: UpdateStatus, to: UpdateStatus): UpdateStep {
  const t = table ?? (table = compile());
  const f = INDEX[from];
  const e = INDEX[to];
  if (f === undefined || e === undefined) throw new Error(`unknown update status in transition ${from} → ${to}`);
  return t[f * N + e]!;
}

// ---- What an operator's verb, or the updater, asks for ---------------------------------------
// Each returns the status to request, or null when the verb means nothing in `status` (Aurora's
// behaviour maps return null there too, and its controller then refuses). The request still goes
// through updateStep: a helper's answer equal to `status` is a no-op, not a transition.

const PAUSE: Partial<Record<UpdateStatus, UpdateStatus>> = {
  ROLLING_FORWARD: "ROLL_FORWARD_PAUSED",
  ROLLING_BACK: "ROLL_BACK_PAUSED",
  ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_PAUSED",
  ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_PAUSED",
  ROLL_FORWARD_PAUSED: "ROLL_FORWARD_PAUSED",
  ROLL_BACK_PAUSED: "ROLL_BACK_PAUSED",
};
const RESUME_ACTIVE: Partial<Record<UpdateStatus, UpdateStatus>> = {
  ROLL_FORWARD_PAUSED: "ROLLING_FORWARD",
  ROLL_BACK_PAUSED: "ROLLING_BACK",
  ROLLING_FORWARD: "ROLLING_FORWARD",
  ROLLING_BACK: "ROLLING_BACK",
};
const RESUME_BLOCKED: Partial<Record<UpdateStatus, UpdateStatus>> = {
  ROLL_FORWARD_PAUSED: "ROLL_FORWARD_AWAITING_PULSE",
  ROLL_BACK_PAUSED: "ROLL_BACK_AWAITING_PULSE",
  ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_AWAITING_PULSE",
  ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_AWAITING_PULSE",
};
const BLOCK: Partial<Record<UpdateStatus, UpdateStatus>> = {
  ROLLING_FORWARD: "ROLL_FORWARD_AWAITING_PULSE",
  ROLLING_BACK: "ROLL_BACK_AWAITING_PULSE",
  ROLL_FORWARD_AWAITING_PULSE: "ROLL_FORWARD_AWAITING_PULSE",
  ROLL_BACK_AWAITING_PULSE: "ROLL_BACK_AWAITING_PULSE",
};
const UNBLOCK: Partial<Record<UpdateStatus, UpdateStatus>> = {
  ROLL_FORWARD_AWAITING_PULSE: "ROLLING_FORWARD",
  ROLL_BACK_AWAITING_PULSE: "ROLLING_BACK",
  ROLLING_FORWARD: "ROLLING_FORWARD",
  ROLLING_BACK: "ROLLING_BACK",
  ROLL_FORWARD_PAUSED: "ROLL_FORWARD_PAUSED",
  ROLL_BACK_PAUSED: "ROLL_BACK_PAUSED",
};

/** Where an update starts: a coordinated one (pulseIntervalSecs set) waits for its first pulse. */
export function initialStatusFor(coordinated: boolean): UpdateStatus {
  return coordinated ? "ROLL_FORWARD_AWAITING_PULSE" : "ROLLING_FORWARD";
}

/** `update pause`: ROLLING_FORWARD or ROLL_FORWARD_AWAITING_PULSE → ROLL_FORWARD_PAUSED (same on the back side). */
export function pausedFor(status: UpdateStatus): UpdateStatus | null {
  return PAUSE[status] ?? null;
}

/**
 * `update resume`: ROLL_FORWARD_PAUSED → ROLLING_FORWARD, ROLL_BACK_PAUSED → ROLLING_BACK; for a
 * coordinated update whose pulse has expired, to the AWAITING_PULSE status instead (Aurora's
 * GET_BLOCKED_RESUME_STATE), so it still waits for its coordinator.
 */
export function resumedFor(status: UpdateStatus, pulseExpired = false): UpdateStatus | null {
  return (pulseExpired ? RESUME_BLOCKED : RESUME_ACTIVE)[status] ?? null;
}

/** No pulse within pulseIntervalSecs: ROLLING_FORWARD → ROLL_FORWARD_AWAITING_PULSE (same on the back side). */
export function awaitingPulseFor(status: UpdateStatus): UpdateStatus | null {
  return BLOCK[status] ?? null;
}

/** A pulse arrived: ROLL_FORWARD_AWAITING_PULSE → ROLLING_FORWARD (same on the back side); a paused update stays paused. */
export function unblockedFor(status: UpdateStatus): UpdateStatus | null {
  return UNBLOCK[status] ?? null;
}

/** `update rollback` (Aurora's rollback RPC asks for ROLLING_BACK from anywhere): ROLLING_BACK when the table allows it. */
export function rollingBackFor(status: UpdateStatus): UpdateStatus | null {
  return updateStep(status, "ROLLING_BACK").allowed ? "ROLLING_BACK" : null;
}

/** Every instance succeeded: ROLLING_FORWARD → ROLLED_FORWARD, ROLLING_BACK → ROLLED_BACK. */
export function succeededStatusFor(status: UpdateStatus): UpdateStatus | null {
  return status === "ROLLING_FORWARD" ? "ROLLED_FORWARD" : status === "ROLLING_BACK" ? "ROLLED_BACK" : null;
}

/**
 * More instances failed than maxTotalFailures (UpdateFactory's failureStatus): a roll-forward goes
 * ROLLING_BACK when rollbackOnFailure, else FAILED; a rollback that fails is FAILED.
 */
export function failedStatusFor(status: UpdateStatus, rollbackOnFailure: boolean): UpdateStatus | null {
  if (status === "ROLLING_FORWARD") return rollbackOnFailure ? "ROLLING_BACK" : "FAILED";
  return status === "ROLLING_BACK" ? "FAILED" : null;
}

// ---- Per-instance events ---------------------------------------------------------------------

/** Aurora's JobUpdateAction: what one JobInstanceUpdateEvent says happened to an instance. */
export const INSTANCE_ACTIONS = [
  "INSTANCE_UPDATING",
  "INSTANCE_UPDATED",
  "INSTANCE_UPDATE_FAILED",
  "INSTANCE_ROLLING_BACK",
  "INSTANCE_ROLLED_BACK",
  "INSTANCE_ROLLBACK_FAILED",
] as const;
export type InstanceAction = (typeof INSTANCE_ACTIONS)[number];

/** An instance's status within one direction of an update (Aurora's InstanceUpdateStatus, less IDLE, which logs nothing). */
export type InstanceUpdateStatus = "WORKING" | "SUCCEEDED" | "FAILED";

const FORWARD_ACTION: Record<InstanceUpdateStatus, InstanceAction> = {
  WORKING: "INSTANCE_UPDATING",
  SUCCEEDED: "INSTANCE_UPDATED",
  FAILED: "INSTANCE_UPDATE_FAILED",
};
const BACK_ACTION: Record<InstanceUpdateStatus, InstanceAction> = {
  WORKING: "INSTANCE_ROLLING_BACK",
  SUCCEEDED: "INSTANCE_ROLLED_BACK",
  FAILED: "INSTANCE_ROLLBACK_FAILED",
};

/** The action logged when an instance enters `instanceStatus` (JobUpdateControllerImpl's STATE_MAP). */
export function instanceAction(instanceStatus: InstanceUpdateStatus, rollingBack: boolean): InstanceAction {
  return (rollingBack ? BACK_ACTION : FORWARD_ACTION)[instanceStatus];
}
