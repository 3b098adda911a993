// ClusterState: what the scheduler knows, and nothing it could not rebuild from the log.
//
// The fold (fold.ts) is the only writer. Everyone else reads. Containers are mutable Maps owned
// by the fold (immer would cost 20–120 ms per event at 100k tasks; libraries.md §4); records are
// plain data, so a state can be hashed, snapshotted and compared.

import type { AgentResources, JobConfig, JobKeyString, TaskConfig } from "../domain/types.js";
import type { AgentStateName } from "../statemachines/agent.js";
import type { TaskStateName } from "../statemachines/taskStates.js";

export interface TaskEventRecord {
  seq: number;
  ts: number;
  state: TaskStateName;
  reason: string;
}

export interface TaskRecord {
  taskId: string;
  job: JobKeyString;
  instance: number;
  configVersion: number;
  ancestorId: string | null;
  /** From the task's config, kept here for the machine's guards (the fold's hot path). */
  service: boolean;
  maxTaskFailures: number;
  state: TaskStateName;
  failureCount: number;
  everKilling: boolean;
  agentId: string | null;
  host: string | null;
  ports: Record<string, number> | null;
  /** Highest agent status sequence number applied (at-least-once delivery de-duplication). */
  agentSeq: number;
  exitCode: number | null;
  /** The machine emitted RESCHEDULE and no successor exists yet: an obligation of the leader. */
  rescheduleWanted: boolean;
  successorId: string | null;
  events: TaskEventRecord[];
}

export interface JobRecord {
  key: JobKeyString;
  config: JobConfig;
  configVersion: number;
  configs: Record<number, TaskConfig>;
  createdSeq: number;
  createdTs: number;
  /** instance id → its newest task id. */
  instances: Map<number, string>;
  /** Instances a user killed: never rescheduled again. */
  killedInstances: Set<number>;
}

export interface AgentRecord {
  agentId: string;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  bootId: string;
  state: AgentStateName;
  registeredSeq: number;
  registeredTs: number;
  used: { cpus: number; ramMb: number; diskMb: number; gpus: number };
  usedPorts: Set<number>;
  /** Tasks holding resources on this agent (ASSIGNED … PARTITIONED). */
  tasks: Set<string>;
}

export interface Anomaly {
  seq: number;
  type: string;
  problem: string;
}

export class ClusterState {
  /** Sequence of the last record folded. */
  seq = 0;
  /** Events folded (a record holds many). */
  eventCount = 0;
  leader: { schedulerId: string; epoch: number; host: string; pid: number; seq: number; ts: number } | null = null;
  readonly jobs = new Map<JobKeyString, JobRecord>();
  readonly tasks = new Map<string, TaskRecord>();
  readonly agents = new Map<string, AgentRecord>();
  /** Derived index: PENDING tasks, in the order they became PENDING. Not hashed. */
  readonly pending = new Set<string>();
  /** Events the fold could not apply (a writer bug): kept, never thrown, so replay never bricks. */
  readonly anomalies: Anomaly[] = [];

  taskConfig(t: TaskRecord): TaskConfig {
    const job = this.jobs.get(t.job)!;
    return job.configs[t.configVersion];
  }
}
