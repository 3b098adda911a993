// Build a ClusterState by folding hand-written events: the way tests set up the pure core.

import { asAgentId, asTaskId, jobKeyString, type AgentResources, type JobConfig, type TaskId } from "../../src/domain/types.js";
import { makeEnvelope, type AnyEnvelope } from "../../src/eventlog/envelope.js";
import type { EventPayloads, EventType } from "../../src/domain/events.js";
import { foldRecord } from "../../src/replay/fold.js";
import { ClusterState } from "../../src/replay/state.js";
import { validateJobSpec } from "../../src/spec/jobSpec.js";

export class StateBuilder {
  readonly state = new ClusterState();
  private seq = 0;
  ts = Date.UTC(2026, 0, 1);

  emit<T extends EventType>(type: T, data: EventPayloads[T], reason = "test"): this {
    this.ts += 1000;
    foldRecord(this.state, ++this.seq, [makeEnvelope(type, data, { epoch: 1, ts: this.ts, corr: "t", reason }) as AnyEnvelope]);
    return this;
  }

  /** Registers an agent: `id` is its id and its host name. */
  agent(id: string, attributes: Record<string, string> = {}, res: Partial<AgentResources> = {}): this {
    return this.emit("AgentRegistered", {
      agentId: asAgentId(id),
      host: id,
      attributes: { host: id, ...attributes },
      resources: { cpus: 4, ramMb: 4096, diskMb: 10000, gpus: 0, ports: [[31000, 31009]], ...res },
      bootId: "b",
    });
  }

  job(spec: Record<string, unknown>): JobConfig {
    const job = validateJobSpec({
      role: "www",
      environment: "devel",
      name: "j",
      resources: { cpus: 1, ramMb: 1024, diskMb: 100 },
      processes: [{ name: "m", cmdline: "x" }],
      ...spec,
    });
    this.emit("JobCreated", { job, configVersion: 1 });
    return job;
  }

  /** A JobCreated as an older build or a foreign writer may have logged it: not validated. */
  rawJob(job: JobConfig): JobConfig {
    this.emit("JobCreated", { job, configVersion: 1 });
    return job;
  }

  /** Creates a PENDING task of the job; returns its id. */
  task(job: JobConfig, instance: number, id = `${job.name}-${instance}`): TaskId {
    const taskId = asTaskId(id);
    this.emit("TaskCreated", {
      taskId,
      job: jobKeyString(job),
      instance,
      configVersion: 1,
      ancestorId: null,
      failureCount: 0,
      state: "PENDING",
    });
    return taskId;
  }

  /** Places the task on the agent registered as `agent` and makes it RUNNING. */
  place(taskId: TaskId, agent: string, ports: Record<string, number> = {}): this {
    this.emit("TaskAssigned", { taskId, agentId: asAgentId(agent), host: agent, ports });
    return this.emit("TaskStateChanged", { taskId, to: "RUNNING", agentSeq: 1 });
  }
}
