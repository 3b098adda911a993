// A seeded generator of realistic scheduler logs, event by event, without actors: agents
// register, jobs arrive (services and batch, 1–50 instances, some with ports), tasks are
// assigned, start, run, fail and get rescheduled, finish, and jobs get killed. The mix is
// dominated by task lifecycle events, as in a real cell.
//
// Used by the replay benchmark, the fold determinism tests and to write golden logs. The
// events are consistent (the fold records no anomaly on them): the generator keeps its own
// small model of where every task is.

import { makeEnvelope, type AnyEnvelope } from "../eventlog/envelope.js";
import type { EventPayloads, EventType } from "../domain/events.js";
import { asAgentId, asJobKey, asTaskId, type AgentId, type JobConfig, type JobKeyString, type TaskId } from "../domain/types.js";
import { Rng } from "./rng.js";

export interface SyntheticOptions {
  seed: number;
  /** Stop after at least this many events. */
  events: number;
  agents?: number;
  eventsPerRecord?: number;
  /** Epoch ms of the first event; each event advances a virtual clock by 0–20 ms. */
  startTs?: number;
}

interface Task {
  id: TaskId;
  job: JobKeyString;
  instance: number;
  /** Set once it is placed (every task given a status update is). */
  agent: AgentId | null;
  host: string;
  agentSeq: number;
  failures: number;
  service: boolean;
  maxFailures: number;
  ports: string[];
  /** The port numbers it holds on its agent while placed. */
  held: number[];
}

export function* syntheticLog(opts: SyntheticOptions): Generator<AnyEnvelope[]> {
  const rng = new Rng(opts.seed);
  const perRecord = opts.eventsPerRecord ?? 100;
  const nAgents = opts.agents ?? 200;
  let ts = opts.startTs ?? Date.UTC(2026, 10, 21, 3, 0, 0);
  let total = 0;
  let record: AnyEnvelope[] = [];
  const emit = <T extends EventType>(type: T, data: EventPayloads[T], reason: string): void => {
    ts += rng.int(20);
    record.push(makeEnvelope(type, data, { epoch: 1, ts, corr: `c${total >> 4}`, reason }) as AnyEnvelope);
    total++;
  };

  emit("LeaderElected", { schedulerId: "sched-1", epoch: 1, host: "sched-host-1", pid: 100 }, "synthetic leader");
  const agents: Array<{ id: AgentId; host: string }> = [];
  for (let i = 0; i < nAgents; i++) {
    const id = asAgentId(`agent-${i}`);
    const host = `host-${i}`;
    agents.push({ id, host });
    emit(
      "AgentRegistered",
      {
        agentId: id,
        host,
        attributes: { host, rack: `r${i % 20}`, zone: `z${i % 3}` },
        resources: { cpus: 32, ramMb: 131072, diskMb: 1048576, gpus: 0, ports: [[31000, 32000]] },
        bootId: `boot-${i}`,
      },
      `agent ${id} on ${host} registered: new agent`,
    );
  }

  const pending: Task[] = [];
  const assigned: Task[] = [];
  const starting: Task[] = [];
  const running: Task[] = [];
  const jobs: Array<{ key: JobKeyString }> = [];
  const killed = new Set<JobKeyString>();
  let jobN = 0;
  let portN = 0;
  /** agentId → ports its placed tasks hold: a port is never handed out twice on one agent. */
  const portsInUse = new Map<AgentId, Set<number>>();

  const newTask = (
    job: JobKeyString,
    instance: number,
    service: boolean,
    maxFailures: number,
    ports: string[],
    failures: number,
    ancestor: TaskId | null,
    why: string,
  ): void => {
    if (killed.has(job)) return;
    const t: Task = {
      id: asTaskId(`${job.replaceAll("/", "-")}-${instance}-${rng.hex8()}`),
      job,
      instance,
      agent: null,
      host: "",
      agentSeq: 0,
      failures,
      service,
      maxFailures,
      ports,
      held: [],
    };
    emit(
      "TaskCreated",
      { taskId: t.id, job, instance, configVersion: 1, ancestorId: ancestor, failureCount: failures, state: "PENDING" },
      why,
    );
    pending.push(t);
  };
  const status = (t: Task, to: "STARTING" | "RUNNING" | "FINISHED" | "FAILED" | "KILLED", exitCode?: number) => {
    t.agentSeq++;
    if (to !== "STARTING" && to !== "RUNNING") {
      const inUse = portsInUse.get(t.agent!);
      for (const p of t.held.splice(0)) inUse?.delete(p);
    }
    emit(
      "TaskStateChanged",
      { taskId: t.id, to, agentSeq: t.agentSeq, ...(exitCode !== undefined ? { exitCode } : {}) },
      `agent on ${t.host} reported ${to}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}`,
    );
  };
  const take = (xs: Task[]): Task => {
    const i = rng.int(xs.length);
    const t = xs[i]!;
    xs[i] = xs[xs.length - 1]!;
    xs.pop();
    return t;
  };

  while (total < opts.events) {
    const r = rng.next();
    if (pending.length < 50 && r < 0.05) {
      const service = rng.chance(0.6);
      const name = `job${jobN++}`;
      const role = rng.pick(["www-data", "ads", "search", "batch", "ml"]);
      const env = rng.pick(["prod", "devel", "staging1"]) === "prod" ? "production" : "devel";
      const instances = 1 + rng.int(50);
      const ports = rng.chance(0.5) ? ["http"] : [];
      const maxFailures = service ? 1 : rng.pick([1, 3, -1]);
      const key = asJobKey(`${role}/${env}/${name}`);
      const job: JobConfig = {
        role,
        environment: env,
        name,
        instances,
        task: {
          service,
          tier: env === "production" ? "preferred" : "preemptible",
          priority: 0,
          maxTaskFailures: maxFailures,
          resources: { cpus: 0.25, ramMb: 256, diskMb: 512, gpus: 0, ports },
          constraints: rng.chance(0.3) ? { host: "limit:1" } : {},
          processes: [{ name: "main", cmdline: service ? "./server --port {{ports.http}}" : "./batch" }],
        },
      };
      if (ports.length === 0) job.task.processes[0]!.cmdline = service ? "./server" : "./batch";
      emit("JobCreated", { job, configVersion: 1 }, `job ${key} created by synthetic`);
      for (let i = 0; i < instances; i++) newTask(key, i, service, maxFailures, ports, 0, null, `instance ${i} of new job ${key}`);
      jobs.push({ key });
    } else if (pending.length > 0 && r < 0.3) {
      const t = take(pending);
      const a = rng.pick(agents);
      t.agent = a.id;
      t.host = a.host;
      const ports: Record<string, number> = {};
      let inUse = portsInUse.get(a.id);
      if (!inUse) portsInUse.set(a.id, (inUse = new Set()));
      for (const name of t.ports) {
        let p = 31000 + (portN++ % 1000);
        // At most once round the range: an agent holding all 1,000 ports gets none (this loop
        // spun forever there, 8.4M events into bench coldstart's log).
        for (let tries = 0; inUse.has(p) && tries < 1000; tries++) p = 31000 + (portN++ % 1000);
        if (inUse.has(p)) continue;
        inUse.add(p);
        t.held.push(p);
        ports[name] = p;
      }
      emit("TaskAssigned", { taskId: t.id, agentId: a.id, host: a.host, ports }, `first fit on ${a.host}`);
      assigned.push(t);
    } else if (assigned.length > 0 && r < 0.5) {
      const t = take(assigned);
      status(t, "STARTING");
      starting.push(t);
    } else if (starting.length > 0 && r < 0.7) {
      const t = take(starting);
      status(t, "RUNNING");
      running.push(t);
    } else if (running.length > 0) {
      const t = take(running);
      const f = rng.next();
      if (f < 0.5) {
        status(t, "FAILED", 1 + rng.int(3));
        t.failures++;
        if (t.service || t.maxFailures === -1 || t.failures - 1 < t.maxFailures - 1) {
          newTask(t.job, t.instance, t.service, t.maxFailures, t.ports, t.failures, t.id, `rescheduled: ${t.id} ended FAILED`);
        }
      } else if (f < 0.8 && !t.service) {
        status(t, "FINISHED", 0);
      } else if (t.service) {
        status(t, "FINISHED", 0);
        newTask(t.job, t.instance, t.service, t.maxFailures, t.ports, t.failures, t.id, `rescheduled: ${t.id} ended FINISHED`);
      } else {
        status(t, "KILLED");
        newTask(t.job, t.instance, t.service, t.maxFailures, t.ports, t.failures, t.id, `rescheduled: ${t.id} ended KILLED`);
      }
    }
    if (jobs.length > 0 && rng.chance(0.002)) {
      // A user kills a whole job: its unplaced tasks are deleted, its placed ones are killed.
      const job = jobs.splice(rng.int(jobs.length), 1)[0]!;
      emit("JobKillRequested", { job: job.key, instances: null, user: "synthetic" }, `kill of job ${job.key} requested by synthetic`);
      killed.add(job.key);
      const mine = (t: Task) => t.job === job.key;
      for (const xs of [pending, assigned, starting, running]) {
        const victims = xs.filter(mine);
        for (let i = xs.length - 1; i >= 0; i--) if (mine(xs[i]!)) xs.splice(i, 1);
        if (xs !== pending) for (const t of victims) status(t, "KILLED");
      }
    }
    if (record.length >= perRecord) {
      yield record;
      record = [];
    }
  }
  if (record.length) yield record;
}
