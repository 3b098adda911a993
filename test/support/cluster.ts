// An in-process cluster for tests: a scheduler and N agents on a MemoryBus and MemoryLog (or
// on a given log and bus), with agents running real processes in a temp directory.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../src/actors/clock.js";
import type { SchedulingPolicy } from "../../src/actors/policy.js";
import { Scheduler } from "../../src/actors/scheduler.js";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import type { Bus } from "../../src/bus/bus.js";
import { MemoryBus } from "../../src/bus/memory.js";
import type { IntakeSource } from "../../src/eventlog/intake.js";
import type { EventLog } from "../../src/eventlog/log.js";
import { MemoryLog } from "../../src/eventlog/memory.js";
import type { ClusterState } from "../../src/replay/state.js";
import type { EndpointStore } from "../../src/storage/discoveryBucket.js";
import { startReplicaReads } from "../../src/ui/replica.js";
import { silentLogger } from "../../src/util/logger.js";

export interface TestCluster {
  scheduler: Scheduler;
  /** The replica's SRE reads on the bus (stopped by stop()). */
  reads: { stop(): Promise<void> };
  agents: Agent[];
  bus: Bus;
  log: EventLog;
  dir: string;
  stop(): Promise<void>;
}

export async function startCluster(
  opts: {
    agents?: number;
    log?: EventLog;
    bus?: Bus;
    cpus?: number;
    ramMb?: number;
    policy?: Partial<SchedulingPolicy>;
    allowedEnvironments?: RegExp;
    intake?: IntakeSource;
    /** Service discovery's bucket, kept by the leader (actors/announcer.ts). */
    discovery?: EndpointStore;
    /** More options for every agent (an isolator, a disk check interval). */
    agent?: (i: number) => Partial<AgentOptions>;
    /** The scheduler's clock (the system's by default; the agents keep the system's). */
    clock?: Clock;
  } = {},
): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), "roost-test-"));
  const bus = opts.bus ?? new MemoryBus();
  const log = opts.log ?? new MemoryLog();
  const scheduler = new Scheduler({
    log,
    bus,
    schedulerId: "sched-test",
    retryMs: 100,
    allowedEnvironments: opts.allowedEnvironments,
    intake: opts.intake,
    discovery: opts.discovery,
    clock: opts.clock,
    // Aurora's rules on a test's time scale.
    policy: { throttleInitialMs: 10, throttleMaxMs: 100, groupBackoffInitialMs: 10, groupBackoffMaxMs: 100, ...opts.policy },
  });
  await scheduler.start();
  // As every replica does (cli/daemons.ts): the SRE's reads on the bus, from its own fold.
  const reads = await startReplicaReads({ replica: scheduler, log, bus, logger: silentLogger });
  const agents: Agent[] = [];
  const firstPort = agentPortsFrom(opts.agents ?? 3);
  for (let i = 1; i <= (opts.agents ?? 3); i++) {
    const base = firstPort + (i - 1) * 100;
    const agent = new Agent({
      bus,
      agentId: `agent-${i}`,
      host: `host-${i}`,
      attributes: { host: `host-${i}`, rack: `r${i}` },
      resources: { cpus: opts.cpus ?? 2, ramMb: opts.ramMb ?? 1024, diskMb: 4096, ports: [[base, base + 99]] },
      workDir: join(dir, `agent-${i}`),
      bootId: `boot-${i}`,
      graceMs: 1000,
      statusRetryMs: 50,
      ...opts.agent?.(i),
    });
    await agent.start();
    agents.push(agent);
  }
  await waitFor(scheduler, (s) => [...s.agents.values()].filter((a) => a.state === "ACTIVE").length === agents.length, "agents registered");
  return {
    scheduler,
    reads,
    agents,
    bus,
    log,
    dir,
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await reads.stop();
      await scheduler.stop();
      await bus.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Where a test cluster's agents' port ranges start: `agents` ranges of 100 from there, one per
 * agent. Each Vitest worker has its own 5,500 ports of 20000–30999, so two files running at once
 * never hand out the same port, and the whole span lies below Linux's ephemeral ports
 * (32768–60999), where every nats-server of the tests (freePort) and every outgoing socket gets
 * its port, and below roost dev's agents (31000–32000).
 *
 * What taught it: with ranges from 30000 to 62999, picked at random per cluster, a task could be
 * given a port that a socket or a task of the file running beside it held; the service could not
 * bind and failed, and discovery.test's instance (whose replacement waits out a 120 s flap penalty
 * there) was never announced, in two clean-clone runs of several. Moving the ranges below the
 * ephemeral ports alone, 10 random choices per agent, still let two files' clusters meet.
 */
function agentPortsFrom(agents: number): number {
  const slot = (Number(process.env.VITEST_POOL_ID ?? "1") - 1) % 2;
  const region = 20000 + slot * 5500;
  return region + Math.floor(Math.random() * (55 - Math.min(agents, 54))) * 100;
}

/**
 * Resolve when `pred` holds for the scheduler's state, checked after every commit. `what` may be a
 * function, read at the timeout, so the error can say where things stood then.
 */
export function waitFor(
  scheduler: Scheduler,
  pred: (s: ClusterState) => boolean,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<void> {
  if (pred(scheduler.state)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${typeof what === "string" ? what : what()}`));
    }, timeoutMs);
    const off = scheduler.onChange(() => {
      if (pred(scheduler.state)) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}
