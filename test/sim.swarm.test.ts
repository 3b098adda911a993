// The swarm (src/sim/swarm.ts) in CI: a few hundred seeds, each drawing its own cell, workload,
// faults and noisy network, run against the real scheduler in virtual time, with the fold's
// invariants checked after every record every replica folds and convergence checked at the end.
// A failure names the seed and the step; replay it alone with `npm run sim -- --seeds 1 --from SEED`.

import { describe, expect, it } from "vitest";
import type { EventPayloads, EventType } from "../src/domain/events.js";
import { encodeRecord, makeEnvelope, type AnyEnvelope } from "../src/eventlog/envelope.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { checkInvariants } from "../src/replay/invariants.js";
import { DEFAULT_SIM_EPOCH } from "../src/sim/clock.js";
import { Sim } from "../src/sim/sim.js";
import { drawWorld, endChecks, runSwarm, type SwarmResult } from "../src/sim/swarm.js";
import { testSpec } from "./support/specs.js";
import { asAgentId, asJobKey, asTaskId } from "../src/domain/types.js";

const FROM = 1;
const SEEDS = 300;
const CHUNK = 50;

/**
 * Failures with a known cause that this suite cannot fix: each is reported, and lives where only
 * its owners edit. The sweep lists them on stderr instead of failing; take an entry out once its
 * cause is fixed, and the seeds it covered must pass.
 */
const KNOWN: Array<{ match: RegExp; cause: string }> = [];

const known = (r: SwarmResult) => KNOWN.find((k) => r.violation?.problems.every((p) => k.match.test(p)));

describe("the swarm: seeds draw worlds, every record is checked, the cell converges", () => {
  for (let from = FROM; from < FROM + SEEDS; from += CHUNK) {
    const to = Math.min(from + CHUNK, FROM + SEEDS) - 1;
    it(`seeds ${from}..${to}`, async () => {
      const failures: string[] = [];
      const knownFailures = new Map<string, number[]>();
      for (let seed = from; seed <= to; seed++) {
        const r = await runSwarm(seed);
        if (r.ok) continue;
        const k = known(r);
        if (k) knownFailures.set(k.cause, [...(knownFailures.get(k.cause) ?? []), seed]);
        else failures.push(r.violation!.message);
      }
      for (const [cause, seeds] of knownFailures) console.warn(`known failure of seed(s) ${seeds.join(", ")}, not counted: ${cause}`);
      expect(failures, `${failures.join("\n")}\nreplay one alone: npm run sim -- --seeds 1 --from <seed>`).toEqual([]);
    }, 180_000);
  }

  it("bigger worlds: seeds 1001..1020 with up to 12 agents, 10 jobs of 12 instances, and up to 400 s of faults", async () => {
    const failures: string[] = [];
    for (let seed = 1001; seed <= 1020; seed++) {
      const r = await runSwarm(seed, { bounds: { maxAgents: 12, maxJobs: 10, maxInstances: 12, chaosMs: [120_000, 400_000] } });
      if (!r.ok && !known(r)) failures.push(r.violation!.message);
    }
    expect(failures, failures.join("\n")).toEqual([]);
  }, 180_000);

  it("the same seed runs the same way, record for record; another seed draws another world", async () => {
    const a = await runSwarm(12);
    const b = await runSwarm(12);
    expect(a.records).toBeGreaterThan(20);
    expect(b.logHash).toBe(a.logHash);
    expect(b.timeline).toEqual(a.timeline);
    expect(drawWorld(13)).not.toEqual(drawWorld(12));
  });

  it("draws what it says: agents, replicas, services and batch, constraints, tiers, faults and a noisy network", () => {
    const worlds = Array.from({ length: 200 }, (_, i) => drawWorld(i + 1));
    const kinds = new Set(worlds.flatMap((w) => w.steps.map((s) => s.action.kind)));
    expect([...kinds].sort()).toEqual(
      [
        "addInstances",
        "crashAgent",
        "crashLeader",
        "createJob",
        "exitTask",
        "expireLease",
        "heal",
        "killJob",
        "partition",
        "rebootAgent",
        "restartAgent",
      ].sort(),
    );
    expect(new Set(worlds.map((w) => w.agentIds.length))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    expect(new Set(worlds.map((w) => w.replicas))).toEqual(new Set([1, 2, 3]));
    const specs = worlds.flatMap((w) => w.jobs.map((j) => j.spec));
    expect(specs.some((s) => s.service) && specs.some((s) => !s.service)).toBe(true);
    expect(new Set(specs.map((s) => s.tier))).toEqual(new Set(["preferred", "preemptible", "revocable"]));
    const constraints = specs.map((s) => JSON.stringify(s.constraints));
    for (const c of ['"host":"limit:1"', '"rack":"limit:', '"zone":', '"dedicated":"ml/train"'])
      expect(constraints.some((x) => x.includes(c))).toBe(true);
    expect(worlds.some((w) => w.network.lost > 0 && w.network.duplicate > 0 && w.network.delayed > 0)).toBe(true);
    expect(worlds.some((w) => w.steps.length === w.jobs.length)).toBe(true); // and some with no faults at all
  });

  it("catches a corrupted fold, naming the seed, the step, the record and the invariant", async () => {
    const r = await runSwarm(2, {
      onFold: (replica, seq) => {
        // As a fold that forgot to release an agent's cpus would leave it.
        if (seq === 30) [...replica.state.agents.values()][0]!.used.cpus += 0.25;
      },
    });
    expect(r.ok).toBe(false);
    expect(r.violation!.message).toMatch(
      /^seed 2: step \d+ of \d+ \(\+[\d.]+ s: .*\): record 30 \[.*\] folded by \S+ \(leader\): agent-used-is-sum-of-tasks: /,
    );
    expect(r.violation!.record!.seq).toBe(30);
  });

  it("the end checks catch a cell that did not converge", async () => {
    const sim = await Sim.start({ seed: 3, agents: [{ count: 2, cpus: 4, ramMb: 4096, diskMb: 4096 }] });
    try {
      await sim.request("job.create", {
        spec: testSpec("web", { instances: 2, service: true, constraints: { host: "limit:1" } }),
        user: "t",
      });
      await sim.request("job.create", { spec: testSpec("batch", { instances: 1 }), user: "t" });
      sim.agents[1]!.crash(); // never comes back
      await sim.advance(120_000);
      expect(checkInvariants(sim.state)).toEqual([]);
      const problems = await endChecks(sim, drawWorld(3));
      expect(problems).toContain("agents: agent-2 is down");
      expect(problems).toContain("agents: the log holds agent-2 UNREACHABLE");
      expect(problems.some((p) => /^liveness: batch www-data\/devel\/batch instance 0 ended RUNNING/.test(p))).toBe(true);
    } finally {
      await sim.stop();
    }
  });
});

describe("found on the way", () => {
  it("a job created again while a new leader reconciles gets no instance from its earlier incarnation", async () => {
    // The log a leader left when it died: both instances of www/devel/web FAILED, their
    // replacements not written yet. The next leader owes them, once its reconciliation window
    // ends (it waits for gone-1, which never comes back); meanwhile the owner creates the job
    // again with one instance. That reschedule used to run after the window and give the new
    // job an instance 1, THROTTLED and then RUNNING, that nobody asked for.
    let ts = DEFAULT_SIM_EPOCH - 60_000;
    const ev = <T extends EventType>(type: T, data: EventPayloads[T]): AnyEnvelope =>
      makeEnvelope(type, data, { epoch: 1, ts: ts++, corr: "c", reason: "test" }) as AnyEnvelope;
    const agent = (agentId: string) =>
      ev("AgentRegistered", {
        agentId: asAgentId(agentId),
        host: agentId,
        attributes: { host: agentId },
        resources: { cpus: 4, ramMb: 4096, diskMb: 4096, gpus: 0, ports: [[31000, 32000]] },
        bootId: `${agentId}-boot-1`,
      });
    const task = { service: true, tier: "preemptible", priority: 0, maxTaskFailures: 1, constraints: {} };
    const resources = { cpus: 0.5, ramMb: 128, diskMb: 64 };
    const processes = [{ name: "main", cmdline: "serve" }];
    const created = (taskId: string, instance: number) =>
      ev("TaskCreated", {
        taskId: asTaskId(taskId),
        job: asJobKey("www/devel/web"),
        instance,
        configVersion: 1,
        ancestorId: null,
        failureCount: 0,
        state: "PENDING",
      });
    const records: AnyEnvelope[][] = [
      [ev("LeaderElected", { schedulerId: "old", epoch: 1, host: "h", pid: 1 }), agent("agent-1"), agent("gone-1")],
      [
        ev("JobCreated", {
          job: {
            role: "www",
            environment: "devel",
            name: "web",
            instances: 2,
            task: { ...task, resources: { ...resources, gpus: 0, ports: [] }, processes },
          },
          configVersion: 1,
        }),
        created("t0", 0),
        created("t1", 1),
      ],
      [
        ev("TaskAssigned", { taskId: asTaskId("t0"), agentId: asAgentId("agent-1"), host: "agent-1", ports: {} }),
        ev("TaskAssigned", { taskId: asTaskId("t1"), agentId: asAgentId("agent-1"), host: "agent-1", ports: {} }),
      ],
      [
        ev("TaskStateChanged", { taskId: asTaskId("t0"), to: "RUNNING", agentSeq: 1 }),
        ev("TaskStateChanged", { taskId: asTaskId("t1"), to: "RUNNING", agentSeq: 1 }),
      ],
      [
        ev("TaskStateChanged", { taskId: asTaskId("t0"), to: "FAILED", agentSeq: 2, exitCode: 1 }),
        ev("TaskStateChanged", { taskId: asTaskId("t1"), to: "FAILED", agentSeq: 2, exitCode: 1 }),
      ],
    ];
    const log = new MemoryLog();
    for (const [i, r] of records.entries()) log.appendSync(encodeRecord(r), i, `m${i}`);
    const problems: string[] = [];
    const sim = await Sim.start({
      seed: 1,
      log,
      replicas: 2,
      policy: { reconcileWindowMs: 10_000 },
      agents: [{ count: 1, cpus: 4, ramMb: 4096, diskMb: 4096 }],
      onFold: (replica, seq) => {
        for (const p of checkInvariants(replica.state)) problems.push(`record ${seq} on ${replica.schedulerId}: ${p}`);
      },
    });
    try {
      expect(sim.state.tasks.get(asTaskId("t1"))!.rescheduleWanted).toBe(true); // owed, and the window is open
      await sim.request("job.create", {
        spec: { role: "www", environment: "devel", name: "web", instances: 1, service: true, resources, processes },
        user: "u",
      });
      await sim.advance(60_000);
      const job = sim.state.jobs.get(asJobKey("www/devel/web"))!;
      expect([...job.instances.keys()]).toEqual([0]);
      expect(sim.state.tasks.get(job.instances.get(0)!)!.state).toBe("RUNNING");
      expect([...sim.state.tasks.values()].filter((t) => t.ancestorId !== null)).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await sim.stop();
    }
  });
});
