// `roost scheduler` and `roost agent`: long-running processes against a NATS URL.

import { hostname } from "node:os";
import { resolve } from "node:path";
import { Agent } from "../agent/agent.js";
import { Scheduler } from "../actors/scheduler.js";
import { NatsBus } from "../bus/nats.js";
import { openJetStreamLog } from "../eventlog/jetstream.js";
import type { AgentResources } from "../domain/types.js";
import { makeLogger } from "../util/logger.js";
import { parsePolicy } from "../actors/policy.js";
import { natsServers } from "./client.js";
import { KvLease } from "../actors/lease.js";
import { KvMemberBoard } from "../actors/members.js";
import { SnapshotStore } from "../eventlog/snapshots.js";

export interface SchedulerFlags {
  nats: string;
  stream: string;
  replicas: 1 | 3;
  id?: string;
  policy?: string;
  leaseMs?: number;
  snapshotEvery?: number;
}

export async function runScheduler(f: SchedulerFlags): Promise<void> {
  const logger = makeLogger("scheduler");
  const bus = await NatsBus.connect(natsServers(f.nats), `roost-scheduler-${f.id ?? process.pid}`);
  const log = await openJetStreamLog({ servers: natsServers(f.nats), nc: bus.nc, stream: f.stream, replicas: f.replicas });
  const lease = await KvLease.open(bus.nc, { replicas: f.replicas, leaseMs: f.leaseMs });
  const members = await KvMemberBoard.open(bus.nc, { replicas: f.replicas });
  const snapshots = await SnapshotStore.forLog(log);
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await scheduler.stop();
    await log.close();
    await bus.close();
    process.exit(code);
  };
  const scheduler = new Scheduler({
    log,
    bus,
    logger,
    schedulerId: f.id,
    policy: f.policy ? parsePolicy(f.policy) : undefined,
    lease,
    members,
    snapshots,
    snapshotEvery: f.snapshotEvery,
    onFatal: (err) => {
      logger.fatal({ err: err.message }, "lost the log: stepping down");
      void exit(1);
    },
  });
  process.once("SIGTERM", () => void exit(0));
  process.once("SIGINT", () => void exit(0));
  await scheduler.start();
}

export interface AgentFlags {
  nats: string;
  id?: string;
  host?: string;
  attr: string[];
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus: number;
  ports: string;
  workDir: string;
  killTasksOnExit: boolean;
}

export function parsePortRanges(s: string): Array<[number, number]> {
  return s.split(",").map((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim());
    if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) > 65535) {
      throw new Error(`--ports "${s}": each range must be LO-HI with LO ≤ HI ≤ 65535, e.g. 31000-32000`);
    }
    return [Number(m[1]), Number(m[2])] as [number, number];
  });
}

export function parseAttributes(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0) throw new Error(`--attr "${p}" must be NAME=VALUE, e.g. rack=r1`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

export async function runAgent(f: AgentFlags): Promise<void> {
  const host = f.host ?? hostname();
  const agentId = f.id ?? host;
  const logger = makeLogger("agent").child({ agentId });
  const bus = await NatsBus.connect(natsServers(f.nats), `roost-agent-${agentId}`);
  const resources: AgentResources = { cpus: f.cpus, ramMb: f.ramMb, diskMb: f.diskMb, gpus: f.gpus, ports: parsePortRanges(f.ports) };
  const agent = new Agent({
    bus,
    agentId,
    host,
    attributes: { host, ...parseAttributes(f.attr) },
    resources,
    workDir: resolve(f.workDir),
    logger,
    // <work-dir>/checkpoint.json: a restarted agent (after kill -9 too) re-attaches to its tasks.
    checkpoint: true,
  });
  // Without --kill-tasks-on-exit the tasks keep running and the checkpoint stays for the next
  // agent on this work dir; with it they are killed (and their KILLED updates checkpointed).
  const stop = async () => {
    await agent.stop({ killTasks: f.killTasksOnExit });
    await bus.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  await agent.start();
}
