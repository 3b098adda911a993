// TaskRecord: one task as the fold keeps it. A file of its own so that the task table
// (taskMap.ts), which holds these, and the state (state.ts), which holds the table, import it
// without importing each other.

import type { AgentId, JobKeyString, TaskId } from "../domain/types.js";
import type { TaskStateName } from "../statemachines/taskStates.js";

/**
 * A task's history, compactly: four numbers per state change, [seq, idx, ts, state code], where
 * (seq, idx) locate the event that caused it in the log (its reason lives there) and the state
 * code indexes TASK_STATES. Numbers only, so a million state changes allocate no objects and
 * retain no strings (it doubled replay speed); `roost task history` reads the reasons back from
 * the log, which is the truth.
 */
type TaskHistoryEntries = number[];
export const HISTORY_STRIDE = 4;

export interface TaskRecord {
  taskId: TaskId;
  job: JobKeyString;
  instance: number;
  configVersion: number;
  ancestorId: TaskId | null;
  /** From the task's config, kept here for the machine's guards (the fold's hot path). */
  service: boolean;
  maxTaskFailures: number;
  state: TaskStateName;
  failureCount: number;
  everKilling: boolean;
  agentId: AgentId | null;
  host: string | null;
  ports: Record<string, number> | null;
  /** Highest agent status sequence number applied (at-least-once delivery de-duplication). */
  agentSeq: number;
  exitCode: number | null;
  /** The machine emitted RESCHEDULE and no successor exists yet: an obligation of the leader. */
  rescheduleWanted: boolean;
  successorId: TaskId | null;
  history: TaskHistoryEntries;
  /** The reason of the newest state change (the rest are in the log). */
  lastReason: string;
  /** The flap penalty this task was created with (0 = none), and when it may run (event ts). */
  throttleMs: number;
  throttledUntil: number;
}
