// The event catalog. Every scheduler decision is one of these, wrapped in an Envelope.
//
// Rules (DEVELOPERS.md invariant 4): an event type's fields only ever grow. A field never
// changes meaning. A breaking change is a new version number with an upcaster in
// envelope.ts that turns the old payload into the new one.

import type { AgentResources, JobConfig, JobKeyString } from "../domain/types.js";
import type { TaskStateName } from "../statemachines/taskStates.js";

/** A placement decision as logged: enough to answer "why host X and not host Y?". */
export interface PlacementDecision {
  /** "spread" or "binpack". */
  mode: string;
  /** Agents looked at, and how many of them could take the task. */
  evaluated: number;
  feasible: number;
  /** The chosen agent's score (higher is better). */
  score: number;
  /** Up to three runners-up: a score when feasible, otherwise the veto. */
  alternatives: Array<{ host: string; score?: number; veto?: string }>;
  /** How many agents each veto excluded, among those evaluated. */
  vetoes: Record<string, number>;
  /** Set when the task took a slot the preemptor held for it. */
  reserved?: boolean;
}

export interface EventPayloads {
  /** A scheduler took the lease. Everything after it is stamped with `epoch`. */
  LeaderElected: { schedulerId: string; epoch: number; host: string; pid: number };
  /** An agent (one per host) registered or re-registered. */
  AgentRegistered: {
    agentId: string;
    host: string;
    attributes: Record<string, string>;
    resources: AgentResources;
    bootId: string;
  };
  /** The leader judged an agent's lifecycle to change (see statemachines/agent.ts). */
  AgentStateChanged: { agentId: string; to: "UNREACHABLE" | "REMOVED" };
  /** A job was accepted. `job` is the validated, normalised config. */
  JobCreated: { job: JobConfig; configVersion: number };
  /** Instances were added to a running job: instances become `instances` + count. */
  JobInstancesAdded: { job: JobKeyString; count: number; user: string };
  /** An administrator set a role's production quota. */
  QuotaSet: { role: string; cpus: number; ramMb: number; diskMb: number; user: string };
  /** A user asked to kill instances (null = all). Tasks move through the task machine. */
  JobKillRequested: { job: JobKeyString; instances: number[] | null; user: string };
  /** A task came into being for an instance (first run or RESCHEDULE of `ancestorId`). */
  TaskCreated: {
    taskId: string;
    job: JobKeyString;
    instance: number;
    configVersion: number;
    ancestorId: string | null;
    failureCount: number;
    state: "PENDING" | "THROTTLED";
    /** THROTTLED only: the flap penalty; the task may run again at the event's ts + throttleMs. */
    throttleMs?: number;
  };
  /** Placement matched a PENDING task to an agent. Ports are concrete numbers by name. */
  TaskAssigned: {
    taskId: string;
    agentId: string;
    host: string;
    ports: Record<string, number>;
    /** Why this host: the decision, compactly (scheduling/decision.ts). */
    placement?: PlacementDecision;
  };
  /**
   * The preemptor freed a slot on `agentId` for a pending task by preempting `victims`; the slot is
   * held for that task until it is placed or `expiresTs`.
   */
  SlotReserved: { taskId: string; agentId: string; victims: string[]; expiresTs: number };
  /** A held slot was let go (it expired, or its task went away). */
  SlotReleased: { taskId: string; agentId: string };
  /**
   * A request to move a task to `to`, run through the task machine by the fold.
   * From an agent status update, `agentSeq` is that task's status sequence number (duplicates
   * are dropped by the leader before appending) and `exitCode` is set for FINISHED/FAILED.
   */
  TaskStateChanged: {
    taskId: string;
    to: TaskStateName;
    agentSeq?: number;
    exitCode?: number;
    message?: string;
  };
}

export type EventType = keyof EventPayloads;

export const EVENT_TYPES: readonly EventType[] = [
  "LeaderElected",
  "AgentRegistered",
  "AgentStateChanged",
  "JobCreated",
  "JobKillRequested",
  "JobInstancesAdded",
  "QuotaSet",
  "SlotReserved",
  "SlotReleased",
  "TaskCreated",
  "TaskAssigned",
  "TaskStateChanged",
];

/** Current version of each event type's payload. */
export const EVENT_VERSIONS: Record<EventType, number> = {
  LeaderElected: 1,
  AgentRegistered: 1,
  AgentStateChanged: 1,
  JobCreated: 1,
  JobKillRequested: 1,
  JobInstancesAdded: 1,
  QuotaSet: 1,
  SlotReserved: 1,
  SlotReleased: 1,
  TaskCreated: 1,
  TaskAssigned: 1,
  TaskStateChanged: 1,
};
