// `roost scheduler` and `roost agent`: long-running processes against a NATS URL.
// SIGTERM, SIGINT and SIGHUP stop them in order (a second signal: at once); with
// --control-stdin `roost dev` drives them over stdin (control.ts) and they stop when it goes.

import { hostname } from "node:os";
import { resolve } from "node:path";
import { KvLease } from "../actors/lease.js";
import { KvMemberBoard } from "../actors/members.js";
import type { SchedulingPolicy } from "../actors/policy.js";
import { Scheduler } from "../actors/scheduler.js";
import { Agent, killCheckpointedTasks } from "../agent/agent.js";
import { createIsolator } from "../agent/isolation.js";
import { resolveCreds } from "../bus/creds.js";
import { NatsBus } from "../bus/nats.js";
import { natsServers } from "../client/transport.js";
import type { AgentResources } from "../domain/types.js";
import { openIntake } from "../eventlog/intake.js";
import { openJetStreamLog } from "../eventlog/jetstream.js";
import { AgentMetrics } from "../metrics/agent.js";
import { serveMetrics } from "../metrics/http.js";
import { KvEndpointStore } from "../storage/discoveryBucket.js";
import { SnapshotStore } from "../storage/snapshotStore.js";
import { type ReplicaReads, startReplicaReads } from "../ui/replica.js";
import { makeLogger } from "../util/logger.js";
import { discoveryBucket } from "../views/discovery.js";
import { controlReply, listenForControl, onStopSignals } from "./control.js";

export interface SchedulerFlags {
  nats: string;
  stream: string;
  replicas: 1 | 3;
  id?: string;
  /** --policy, parsed (cli/main.ts parsePolicyArg). */
  policy?: Partial<SchedulingPolicy>;
  leaseMs?: number;
  snapshotEvery?: number;
  /** A regular expression: the environments a job may name. */
  allowedEnvironments?: string;
  /** Read control lines on stdin and stop at its end (control.ts; `roost dev` does this). */
  control?: boolean;
  /** --creds: a credentials file (bus/creds.ts); else ROOST_CREDS. */
  creds?: string;
  /** --http host:port: serve the web UI and /metrics there (port 0: any free port). */
  http?: { host: string; port: number };
}

/** How long an orderly stop may take before the process exits anyway. */
const SCHEDULER_STOP_MS = 10_000;
const AGENT_STOP_MS = 25_000;
const PARENT_GONE_STOP_MS = 3000;

/**
 * The stop of a daemon: each step awaited in turn, its errors logged, never thrown (an orderly
 * stop must not end in an uncaught error), then process.exit. A stop that hangs (an unreachable
 * server) ends by the deadline.
 */
function stopper(logger: ReturnType<typeof makeLogger>, defaultDeadlineMs: number) {
  let exiting = false;
  const finish = async (
    code: number,
    why: string,
    steps: Array<[string, () => Promise<unknown> | undefined]>,
    deadlineMs = defaultDeadlineMs,
  ): Promise<void> => {
    if (exiting) return;
    exiting = true;
    logger.info({ why }, "stopping");
    setTimeout(() => {
      logger.warn({ why, ms: deadlineMs }, "the stop took too long; exiting");
      process.exit(code);
    }, deadlineMs).unref();
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (err) {
        logger.warn({ err: (err as Error).message, step: what }, "a step of the stop failed");
      }
    }
    logger.info({ why }, "stopped");
    process.exit(code);
  };
  /**
   * Runs the start: an error it throws once the stop has begun is the stop's doing (the bus
   * closed under it), not a failure; the stop ends the process.
   */
  const starting = async (start: () => Promise<void>): Promise<void> => {
    try {
      await start();
    } catch (err) {
      if (!exiting) throw err;
      await new Promise(() => {});
    }
  };
  return Object.assign(finish, { starting });
}

export async function runScheduler(f: SchedulerFlags): Promise<void> {
  const logger = makeLogger("scheduler");
  let scheduler: Scheduler | null = null;
  let bus: NatsBus | null = null;
  let log: Awaited<ReturnType<typeof openJetStreamLog>> | null = null;
  let quiesceWhy: string | null = null;
  let reads: ReplicaReads | null = null;
  let members: KvMemberBoard | null = null;
  const finish = stopper(logger, SCHEDULER_STOP_MS);
  // After the parent's end (its nats-server is going too, most likely) the stop is kept short.
  const exit = (code: number, why: string, parentGone = false) =>
    finish(
      code,
      why,
      [
        ["reads", () => reads?.stop()],
        ["scheduler", () => scheduler?.stop()],
        ["members board", () => members?.close()],
        ["log", () => log?.close()],
        ["bus", () => bus?.close(parentGone ? 500 : undefined)],
      ],
      parentGone ? PARENT_GONE_STOP_MS : undefined,
    );
  // Installed before connecting: a stop or the parent's end may come at any time.
  onStopSignals((sig) => void exit(0, `got ${sig}`));
  if (f.control) {
    listenForControl({
      quiesce: (why) => {
        if (scheduler) scheduler.quiesce(why || "told to quiesce");
        else quiesceWhy = why || "told to quiesce";
        controlReply("quiesced");
      },
      stop: (why) => void exit(0, why || "told to stop"),
      eof: () => void exit(0, "its control pipe closed (the parent went away)", true),
      unknown: (line) => logger.warn({ line }, "unknown control line"),
    });
  }
  await finish.starting(async () => {
    bus = await NatsBus.connect(natsServers(f.nats), `roost-scheduler-${f.id ?? process.pid}`, resolveCreds(f.creds));
    log = await openJetStreamLog({ servers: natsServers(f.nats), nc: bus.nc, stream: f.stream, replicas: f.replicas });
    const lease = await KvLease.open(bus.nc, { replicas: f.replicas, leaseMs: f.leaseMs });
    // Followed with one watch, not listed every 2 s (members.ts says why).
    members = await KvMemberBoard.open(bus.nc, { replicas: f.replicas, follow: true });
    const snapshots = await SnapshotStore.forLog(log);
    // Service discovery: the leader keeps <stream>_DISCOVERY equal to its fold (actors/announcer.ts).
    const discovery = await KvEndpointStore.open(bus.nc, { bucket: discoveryBucket(f.stream), replicas: f.replicas });
    // The durable intake rides along: without it (another cluster's intake holds its subjects on
    // this server) the API still serves, and the error says why.
    const intake = await openIntake(bus.nc, { stream: `${f.stream}_INTAKE`, replicas: f.replicas }).catch((err: Error) => {
      logger.error({ err: err.message }, "no durable intake: requests published on roost.intake.v1.> are not consumed");
      return undefined;
    });
    scheduler = new Scheduler({
      log,
      bus,
      logger,
      schedulerId: f.id,
      policy: f.policy,
      lease,
      members,
      intake,
      snapshots,
      discovery,
      snapshotEvery: f.snapshotEvery,
      allowedEnvironments: f.allowedEnvironments ? new RegExp(f.allowedEnvironments) : undefined,
      onFatal: (err) => {
        logger.fatal({ err: err.message }, "lost the log: stepping down");
        void exit(1, `lost the log: ${err.message}`);
      },
    });
    if (quiesceWhy !== null) scheduler.quiesce(quiesceWhy);
    await scheduler.start();
    // Every replica answers the SRE's reads (a standby from its own fold) and, with --http,
    // serves the web UI and its metrics.
    const sched = scheduler;
    reads = await startReplicaReads({
      replica: sched,
      log,
      store: snapshots,
      bus,
      logger,
      http: f.http,
      registry: sched.metrics.registry,
    });
    // Where they are is in the replica's log (JSON lines, as roost dev's tests read them):
    // startReplicaReads logs "web UI" with the url.
  });
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
  /** Read control lines on stdin and stop at its end (control.ts; `roost dev` does this). */
  control?: boolean;
  /** --creds: a credentials file (bus/creds.ts); else ROOST_CREDS. */
  creds?: string;
  /** --metrics host:port: serve Prometheus metrics on GET /metrics there (port 0: any free port). */
  metrics?: string;
  /** --no-isolation: run tasks unconfined (no cgroups), and say so. Default: cgroups where the host has them. */
  isolation?: boolean;
}

/** "host:port" ("[::1]:9101" for IPv6; port 0: any free port), or an error naming the flag. */
function parseListen(flag: string, s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${flag} "${s}": must be HOST:PORT, e.g. 0.0.0.0:9101 or [::1]:9101 (port 0: any free port)`);
  return { host: (m[1] ?? m[2])!, port };
}

function parsePortRanges(s: string): Array<[number, number]> {
  return s.split(",").map((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim());
    if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) > 65535) {
      throw new Error(`--ports "${s}": each range must be LO-HI with LO ≤ HI ≤ 65535, e.g. 31000-32000`);
    }
    return [Number(m[1]), Number(m[2])] as [number, number];
  });
}

function parseAttributes(pairs: string[]): Record<string, string> {
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
  const metricsAt = f.metrics === undefined ? null : parseListen("--metrics", f.metrics);
  let agent: Agent | null = null;
  let bus: NatsBus | null = null;
  let metricsServer: { url: string; close(): Promise<void> } | null = null;
  const finish = stopper(logger, AGENT_STOP_MS);
  // Without --kill-tasks-on-exit the tasks keep running and the checkpoint stays for the next
  // agent on this work dir; with it they are killed, `why` is what their KILLED updates say, and
  // the agent waits (a while) until the leader has recorded them. A second stop is a fast one:
  // the kills are hastened (SIGKILL now) and the wait cut short. After the parent's end (its
  // nats-server is going too, most likely) the agent waits little.
  let stopping = false;
  /** The Agent's start() began: it has read the checkpoint, and its stop() kills what it adopted. */
  let took = false;
  /** Before that, hastens the kills of the checkpoint's tasks (killCheckpointedTasks). */
  let hastenEarly: (() => void) | null = null;
  const stop = (why: string, fast: boolean, parentGone = false) => {
    const short = fast || parentGone;
    const opts = {
      killTasks: f.killTasksOnExit,
      reason: why,
      graceMs: fast ? 0 : undefined,
      statusWaitMs: f.killTasksOnExit ? (short ? 1500 : 10_000) : 0,
    };
    const closeBus = () => bus?.close(short ? 500 : undefined);
    if (stopping) {
      if (fast) logger.warn({ why }, "stopping at once");
      // Hastens the kills; the first stop's wait ends with this one (Agent.stop).
      if (fast && agent && took) void agent.stop(opts).catch(() => {});
      if (fast && !took) hastenEarly?.();
      return;
    }
    stopping = true;
    void finish(0, why, [
      // Before the Agent took its checkpoint over (still connecting), the tasks it would have
      // re-attached to are killed from the checkpoint (killCheckpointedTasks says why).
      [
        "agent",
        () =>
          took
            ? agent?.stop(opts)
            : f.killTasksOnExit
              ? killCheckpointedTasks({
                  workDir: resolve(f.workDir),
                  agentId,
                  reason: why,
                  graceMs: opts.graceMs,
                  logger,
                  onKilling: (hasten) => (hastenEarly = hasten),
                })
              : undefined,
      ],
      ["bus", closeBus],
      ["metrics", () => metricsServer?.close()],
    ]);
  };
  onStopSignals((sig, fast) => stop(`agent ${agentId} is stopping (${sig})`, fast));
  if (f.control) {
    listenForControl({
      stop: (why, fast) => stop(why || `agent ${agentId} was told to stop`, fast),
      eof: () => stop(`agent ${agentId} is stopping: its control pipe closed (the parent went away)`, false, true),
      unknown: (line) => logger.warn({ line }, "unknown control line"),
    });
  }
  await finish.starting(async () => {
    const resources: AgentResources = { cpus: f.cpus, ramMb: f.ramMb, diskMb: f.diskMb, gpus: f.gpus, ports: parsePortRanges(f.ports) };
    const attributes = { host, ...parseAttributes(f.attr) };
    bus = await NatsBus.connect(natsServers(f.nats), `roost-agent-${agentId}`, resolveCreds(f.creds));
    if (stopping) return; // told to stop while connecting
    agent = new Agent({
      bus,
      agentId,
      host,
      attributes,
      resources,
      workDir: resolve(f.workDir),
      logger,
      // <work-dir>/checkpoint.json: a restarted agent (after kill -9 too) re-attaches to its tasks.
      checkpoint: true,
      // A daemon's registry also carries Node's process metrics (process_*, nodejs_*).
      metrics: new AgentMetrics({ defaultMetrics: metricsAt !== null }),
      // cgroups v2, else v1, else none (said at start-up and in its registration).
      isolator: createIsolator({ agent: agentId, disabled: f.isolation === false }),
    });
    // Served before start(), which waits for a leader to accept the registration: an agent
    // with no leader to talk to is exactly one an operator wants to see.
    if (metricsAt) {
      metricsServer = await serveMetrics(metricsAt, agent.metrics.registry);
      logger.info({ url: metricsServer.url }, "serving metrics");
    }
    if (stopping) return; // told to stop while the metrics server started
    took = true;
    await agent.start();
  });
}
