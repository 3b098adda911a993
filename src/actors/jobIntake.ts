// JobIntake: the client API on the bus (roost.api.*). Writes are validated against the folded
// state, committed, and only then answered. A refused request changes nothing and says what
// was wrong and which rule it broke.

import { API_PREFIX, type Reply } from "../bus/bus.js";
import { jobKeyString, parseJobKey } from "../domain/types.js";
import { jobList, jobStatus, taskHistory, withReasons } from "../replay/queries.js";
import { SpecError, validateJobSpec } from "../spec/jobSpec.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { taskIdFor } from "./ports.js";
import type { Scheduler } from "./scheduler.js";

export interface CreateJobRequest {
  spec: unknown;
  user?: string;
}
export interface KillJobRequest {
  job: string;
  instances?: number[] | null;
  user?: string;
}

export class RequestError extends Error {
  override name = "RequestError";
}

type Op = (req: any) => unknown | Promise<unknown>;

export class JobIntake {
  private readonly ops: Record<string, Op>;

  constructor(private readonly s: Scheduler) {
    this.ops = {
      "job.create": (r: CreateJobRequest) => this.create(r),
      "job.kill": (r: KillJobRequest) => this.kill(r),
      "job.status": (r: { job: string }) => {
        const st = jobStatus(this.s.state, need(r?.job, "job"), this.s.placement.pendingReasons);
        if (!st) throw new RequestError(`job ${r.job} does not exist`);
        return st;
      },
      "job.list": () => jobList(this.s.state),
      "task.history": (r: { taskId: string }) => {
        const h = taskHistory(this.s.state, need(r?.taskId, "taskId"));
        if (!h) throw new RequestError(`task ${r.taskId} does not exist`);
        return withReasons(h, this.s.eventLog);
      },
      "cluster.info": () => ({
        schedulerId: this.s.schedulerId,
        epoch: this.s.epoch,
        seq: this.s.state.seq,
        events: this.s.state.eventCount,
        agents: [...this.s.state.agents.values()].map((a) => ({
          agentId: a.agentId,
          host: a.host,
          state: a.state,
          attributes: a.attributes,
          tasks: a.tasks.size,
          lastHeartbeat: this.s.agents.lastHeartbeat.get(a.agentId) ?? null,
        })),
      }),
    };
  }

  serve(): Array<() => void> {
    return [
      this.s.bus.serve(`${API_PREFIX}>`, async (data, subject): Promise<Reply<unknown>> => {
        const op = this.ops[subject.slice(API_PREFIX.length)];
        if (!op) return { ok: false, error: `unknown request ${subject}; known: ${Object.keys(this.ops).join(", ")}` };
        try {
          return { ok: true, value: await op(data) };
        } catch (err) {
          if (err instanceof RequestError || err instanceof SpecError) return { ok: false, error: err.message };
          this.s.log.error({ err, subject }, "request failed");
          return { ok: false, error: `internal error: ${(err as Error).message}` };
        }
      }),
    ];
  }

  async create(req: CreateJobRequest): Promise<{ job: string; taskIds: string[]; seq: number }> {
    const s = this.s;
    const config = validateJobSpec(req?.spec);
    const key = jobKeyString(config);
    const existing = s.state.jobs.get(key);
    if (existing) {
      const active = [...existing.instances.values()].filter((id) => !TERMINAL_STATES.has(s.state.tasks.get(id)!.state));
      if (active.length > 0) {
        throw new RequestError(`job ${key} already exists with ${active.length} active task(s); rule: one job per role/environment/name — kill it first`);
      }
    }
    const user = typeof req.user === "string" && req.user ? req.user : "unknown";
    const corr = s.corr("create");
    const configVersion = (existing?.configVersion ?? 0) + 1;
    const events = [s.event("JobCreated", { job: config, configVersion }, `job ${key} created by ${user}`, corr)];
    const taskIds: string[] = [];
    for (let i = 0; i < config.instances; i++) {
      const taskId = taskIdFor(key, i, s.ids);
      taskIds.push(taskId);
      events.push(
        s.event(
          "TaskCreated",
          { taskId, job: key, instance: i, configVersion, ancestorId: null, failureCount: 0, state: "PENDING" },
          `instance ${i} of new job ${key} (created by ${user})`,
          corr,
        ),
      );
    }
    const seq = await s.commit(events);
    return { job: key, taskIds, seq };
  }

  async kill(req: KillJobRequest): Promise<{ job: string; instances: number[]; seq: number }> {
    const s = this.s;
    const key = jobKeyString(parseJobKey(need(req?.job, "job")));
    const job = s.state.jobs.get(key);
    if (!job) throw new RequestError(`job ${key} does not exist`);
    const known = [...job.instances.keys()].sort((a, b) => a - b);
    let instances: number[];
    if (req.instances === undefined || req.instances === null) {
      instances = known;
    } else {
      if (!Array.isArray(req.instances) || !req.instances.every((i) => Number.isInteger(i) && i >= 0)) {
        throw new RequestError("instances must be a list of instance ids (integers ≥ 0)");
      }
      const missing = req.instances.filter((i) => !job.instances.has(i));
      if (missing.length) throw new RequestError(`job ${key} has no instance ${missing.join(", ")}; it has instances 0-${known.length - 1}`);
      instances = [...new Set(req.instances)].sort((a, b) => a - b);
    }
    const user = typeof req.user === "string" && req.user ? req.user : "unknown";
    const seq = await s.commit([
      s.event(
        "JobKillRequested",
        { job: key, instances: req.instances === undefined || req.instances === null ? null : instances, user },
        `kill of ${req.instances ? `instances ${instances.join(",")} of ` : ""}job ${key} requested by ${user}`,
        s.corr("kill"),
      ),
    ]);
    return { job: key, instances, seq };
  }
}

function need(v: unknown, name: string): string {
  if (typeof v !== "string" || v.length === 0) throw new RequestError(`request field "${name}" must be a non-empty string`);
  return v;
}
