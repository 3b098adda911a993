// The deterministic simulator: the real scheduler with simulated agents on a virtual clock.
// Same seed → the same log, byte for byte; another seed → another log. Virtual time only: no
// test here sleeps.

import { describe, expect, it } from "vitest";
import type { LaunchRequest, StatusRequest } from "../src/agent/protocol.js";
import { subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";
import type { MemoryLog } from "../src/eventlog/memory.js";
import type { ClusterState } from "../src/replay/state.js";
import { VirtualClock } from "../src/sim/clock.js";
import { Sim } from "../src/sim/sim.js";
import { SimAgent } from "../src/sim/simAgent.js";
import { testSpec } from "./support/specs.js";
import { asAgentId, asJobKey } from "../src/domain/types.js";

const spec = (name: string, over: Record<string, unknown> = {}) =>
  testSpec(name, over, { resources: { cpus: 0.5, ramMb: 64, diskMb: 64 }, processes: [{ name: "main", cmdline: "run" }] });

const AGENTS = [{ count: 3, cpus: 4, ramMb: 4096, diskMb: 8192, attributes: (i: number) => ({ rack: `r${i % 2}` }) }];

/** The current task of an instance. */
const current = (s: ClusterState, job: string, instance: number) => s.tasks.get(s.jobs.get(asJobKey(job))!.instances.get(instance)!)!;

/** A run where the seed matters: a flaky batch job (failProbability), a service, a reboot. */
async function flakyRun(seed: number) {
  const sim = await Sim.start({ seed, agents: AGENTS, policy: { throttleInitialMs: 1_000 } });
  sim.behave("www-data/devel/flaky", { startMs: 100, runMs: 5_000, failProbability: 0.5 });
  sim.behave("www-data/devel/svc", { startMs: 50 });
  await sim.createJob(spec("svc", { service: true, instances: 2 }));
  await sim.createJob(spec("flaky", { instances: 6, maxTaskFailures: -1 }));
  await sim.advance(10_000);
  void sim.agents[1]!.reboot();
  const took = await sim.runUntil(
    (s) => [0, 1, 2, 3, 4, 5].every((i) => current(s, "www-data/devel/flaky", i).state === "FINISHED"),
    60 * 60_000,
    "every flaky instance FINISHED",
  );
  await sim.advance(60_000);
  const log = sim.log as MemoryLog;
  const raw = Array.from({ length: log.length }, (_, i) => Buffer.from(log.raw(i + 1)!).toString("hex"));
  // Failures per flaky instance: what the dice decided.
  const failures = [0, 1, 2, 3, 4, 5].map((i) => current(sim.state, "www-data/devel/flaky", i).failureCount);
  const events = await sim.events();
  const hash = await sim.logBytesHash();
  await sim.stop();
  return { hash, raw, failures, took, events };
}

describe("Sim determinism", () => {
  it("the same seed gives the same log byte for byte; another seed gives another log", async () => {
    const a = await flakyRun(12);
    const b = await flakyRun(12);
    const c = await flakyRun(11);
    expect(a.raw.length).toBeGreaterThan(20);
    expect(a.events.length).toBeGreaterThan(60);
    expect(b.hash).toBe(a.hash);
    expect(b.raw).toEqual(a.raw);
    expect(b.took).toBe(a.took);
    // The dice were in play, and another seed rolled them differently.
    expect(a.failures.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
    expect(c.failures).not.toEqual(a.failures);
    expect(c.hash).not.toBe(a.hash);
    // Every status reached the log once, in per-task order 1, 2, 3, …
    const seqs = new Map<string, number[]>();
    for (const { event } of a.events) {
      if (event.type === "TaskStateChanged" && event.data.agentSeq !== undefined) {
        seqs.set(event.data.taskId, [...(seqs.get(event.data.taskId) ?? []), event.data.agentSeq]);
      }
    }
    expect(seqs.size).toBeGreaterThan(6);
    for (const [taskId, s] of seqs) expect(s, taskId).toEqual(s.map((_, i) => i + 1));
  });

  it("timestamps come from the virtual clock", async () => {
    const sim = await Sim.start({ seed: 5, agents: AGENTS, startTs: Date.UTC(2030, 5, 1) });
    sim.behave("www-data/devel/b", { startMs: 250, runMs: 1_000 });
    const { taskIds } = await sim.createJob(spec("b"));
    await sim.runUntil((s) => s.tasks.get(taskIds[0]!)!.state === "FINISHED", 10_000, "FINISHED");
    const ts = (await sim.events()).map((e) => e.event.ts - Date.UTC(2030, 5, 1));
    expect(ts[0]).toBe(0);
    expect(ts.at(-1)).toBe(1_250);
    expect(sim.elapsed).toBe(1_250);
    await sim.stop();
  });
});

describe("VirtualClock", () => {
  it("fires timers in (due, registration) order, at their due times, and never goes backwards", () => {
    const c = new VirtualClock(1_000);
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, c.now()]);
    c.setTimeout(at("b"), 20);
    c.setTimeout(at("a"), 10);
    const x = c.setTimeout(at("cancelled"), 15);
    c.setTimeout(() => {
      fired.push(["c", c.now()]);
      c.setTimeout(at("d (registered while firing, due now)"), 0);
      c.setTimeout(at("late"), 100);
    }, 20);
    c.setTimeout(at("negative delay"), -5);
    c.clearTimeout(x);
    expect(c.pendingTimers).toBe(4);
    expect(c.nextDue()).toBe(1_000);
    c.advanceTo(1_030);
    expect(fired).toEqual([
      ["negative delay", 1_000],
      ["a", 1_010],
      ["b", 1_020],
      ["c", 1_020],
      ["d (registered while firing, due now)", 1_020],
    ]);
    expect(c.now()).toBe(1_030);
    expect(c.nextDue()).toBe(1_120);
    c.advanceTo(500);
    expect(c.now()).toBe(1_030);
    expect(c.fireNext(1_100)).toBe(false);
    expect(c.fireNext()).toBe(true);
    expect(fired.at(-1)).toEqual(["late", 1_120]);
    expect(c.nextDue()).toBeNull();
    expect(new VirtualClock().now()).toBe(Date.UTC(2026, 0, 1));
  });
});

describe("SimAgent", () => {
  it("reports STARTING, RUNNING, FAILED in order, one in flight per task, retrying on the virtual clock", async () => {
    const clock = new VirtualClock();
    const t0 = clock.now();
    const bus = new MemoryBus({ requestTimeouts: false });
    bus.serve(subjects.anyAgent.register, () => ({ ok: true, schedulerId: "test", epoch: 1 }));
    const arrivals: Array<{ taskId: string; seq: number; state: string; at: number }> = [];
    const inFlight = new Map<string, number>();
    let maxInFlight = 0;
    let refuse = 3;
    bus.serve(subjects.anyAgent.status, async (d) => {
      const { update } = d as StatusRequest;
      inFlight.set(update.taskId, (inFlight.get(update.taskId) ?? 0) + 1);
      maxInFlight = Math.max(maxInFlight, inFlight.get(update.taskId)!);
      await new Promise((r) => setImmediate(r));
      inFlight.set(update.taskId, inFlight.get(update.taskId)! - 1);
      arrivals.push({ taskId: update.taskId, seq: update.seq, state: update.state, at: clock.now() - t0 });
      if (refuse > 0) {
        refuse--;
        return { ok: false, error: "not now" };
      }
      return { ok: true, value: { duplicate: false } };
    });
    const agent = new SimAgent({
      bus,
      clock,
      agentId: asAgentId("a1"),
      host: "h1",
      attributes: {},
      resources: { cpus: 1, ramMb: 1, diskMb: 1, ports: [] },
      behavior: () => ({ startMs: 10, runMs: 100, exitCode: 3 }),
      statusRetryMs: 50,
    });
    expect(await agent.start()).toBe(true);
    const launch = (taskId: string): LaunchRequest => ({
      taskId,
      job: "r/devel/j",
      instance: 0,
      processes: [{ name: "m", cmdline: "x" }],
      ports: {},
      resources: { cpus: 1, ramMb: 1, diskMb: 1 },
    });
    expect(await bus.request(subjects.launch("a1"), launch("t1"))).toEqual({ ok: true });
    expect(await bus.request(subjects.launch("a1"), launch("t2"))).toEqual({ ok: true });
    expect(await bus.request(subjects.launch("a1"), launch("t1"))).toEqual({ ok: true }); // a retried launch

    const quiet = async () => {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    };
    const runFor = async (ms: number) => {
      const end = clock.now() + ms;
      await quiet();
      while (clock.fireNext(end)) await quiet();
      clock.advanceTo(end);
      await quiet();
    };
    await runFor(9);
    expect(arrivals).toEqual([]); // nothing happens until virtual time says so
    await runFor(1);
    expect(arrivals.map((a) => `${a.taskId}:${a.seq}@${a.at}`)).toEqual(["t1:1@10", "t2:1@10"]); // both refused
    await runFor(10_000);

    expect(maxInFlight).toBe(1);
    expect(agent.statusFailures).toBe(3);
    for (const taskId of ["t1", "t2"]) {
      const mine = arrivals.filter((a) => a.taskId === taskId);
      // Arrivals never go back in seq; retries resend the same seq later, on the virtual clock.
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.seq).toBeGreaterThanOrEqual(mine[i - 1]!.seq);
      const acked = agent.delivered.filter((u) => u.taskId === taskId);
      expect(acked.map((u) => [u.seq, u.state])).toEqual([
        [1, "STARTING"],
        [2, "RUNNING"],
        [3, "FAILED"],
      ]);
      expect(acked[2]!.exitCode).toBe(3);
      expect(acked[2]!.ts - t0).toBe(110);
    }
    const firstRetry = arrivals.filter((a) => a.taskId === "t1" && a.seq === 1);
    expect(firstRetry.length).toBeGreaterThan(1);
    expect(firstRetry[1]!.at - firstRetry[0]!.at).toBe(50);
    expect(agent.running()).toEqual([]);
    expect(agent.pendingStatuses()).toEqual([]);
    agent.stop();
  });

  it("a kill reports KILLED after killMs; a kill before the launch reports KILLED at once", async () => {
    const sim = await Sim.start({ seed: 2, agents: AGENTS });
    sim.behave("www-data/devel/k", { killMs: 2_000 });
    const { taskIds } = await sim.createJob(spec("k", { service: true, instances: 2 }));
    expect(taskIds.map((t) => sim.state.tasks.get(t)!.state)).toEqual(["RUNNING", "RUNNING"]);
    await sim.killJob("www-data/devel/k", [1]);
    expect(sim.state.tasks.get(taskIds[1]!)!.state).toBe("KILLING");
    await sim.advance(1_999);
    expect(sim.state.tasks.get(taskIds[1]!)!.state).toBe("KILLING");
    await sim.advance(1);
    expect(sim.state.tasks.get(taskIds[1]!)!.state).toBe("KILLED");
    expect(sim.state.tasks.get(taskIds[0]!)!.state).toBe("RUNNING");
    // A stray kill for a task the agent never saw.
    expect(await sim.bus.request(subjects.kill("agent-1"), { taskId: "never-launched" })).toEqual({ ok: true });
    await sim.settle();
    expect(sim.agent("agent-1").delivered.some((u) => u.taskId === "never-launched" && u.state === "KILLED")).toBe(true);
    await sim.stop();
  });
});

describe("Sim: the scheduler's rules under simulated agents", () => {
  it("reschedules a service whose task exits, linking the successor to its ancestor", async () => {
    const sim = await Sim.start({ seed: 3, agents: AGENTS });
    const job = "www-data/devel/svc";
    const { taskIds } = await sim.createJob(spec("svc", { service: true }));
    const first = taskIds[0]!;
    expect(sim.state.tasks.get(first)!.state).toBe("RUNNING");
    const agent = sim.agentOf(first)!;
    agent.exitTask(first, 137);
    await sim.settle();
    expect(sim.state.tasks.get(first)!.state).toBe("FAILED");
    expect(sim.state.tasks.get(first)!.exitCode).toBe(137);
    expect(() => agent.exitTask(first, 1)).toThrow(/does not run task/);
    const took = await sim.runUntil(
      (s) => current(s, job, 0).taskId !== first && current(s, job, 0).state === "RUNNING",
      10 * 60_000,
      "replacement RUNNING",
    );
    expect(took).toBeGreaterThanOrEqual(0);
    const next = current(sim.state, job, 0);
    expect(next.ancestorId).toBe(first);

    // A service that ends by itself (exit 0 after runMs) is run again too.
    sim.behave(job, { runMs: 10 * 60_000, exitCode: 0 });
    sim.agentOf(next.taskId)!.exitTask(next.taskId, 0);
    await sim.runUntil(
      (s) => current(s, job, 0).ancestorId === next.taskId && current(s, job, 0).state === "RUNNING",
      10 * 60_000,
      "third run RUNNING",
    );
    const third = current(sim.state, job, 0);
    await sim.runUntil((s) => s.tasks.get(third.taskId)!.state === "FINISHED", 11 * 60_000, "third run FINISHED");
    await sim.runUntil((s) => current(s, job, 0).ancestorId === third.taskId, 10 * 60_000, "fourth run created");
    await sim.stop();
  });

  it("a rebooted agent's tasks are LOST and run again; a crashed agent stops answering", async () => {
    const sim = await Sim.start({ seed: 4, agents: AGENTS });
    const job = "www-data/devel/web";
    const { taskIds } = await sim.createJob(spec("web", { service: true, instances: 3, constraints: { host: "limit:1" } }));
    const victim = sim.agentOf(taskIds[0]!)!;
    expect(await victim.reboot()).toBe(true);
    await sim.settle();
    expect(sim.state.tasks.get(taskIds[0]!)!.state).toBe("LOST");
    expect(sim.state.agents.get(victim.agentId)!.bootId).toBe(`${victim.agentId}-boot-2`);
    await sim.runUntil((s) => [0, 1, 2].every((i) => current(s, job, i).state === "RUNNING"), 10 * 60_000, "3 RUNNING again");

    const crashed = sim.agentOf(current(sim.state, job, 1).taskId)!;
    crashed.crash();
    expect(crashed.isUp).toBe(false);
    await expect(sim.bus.request(subjects.launch(crashed.agentId), {})).rejects.toThrow(/no responders/);
    expect(await crashed.reboot()).toBe(true);
    await sim.settle();
    await sim.runUntil((s) => [0, 1, 2].every((i) => current(s, job, i).state === "RUNNING"), 10 * 60_000, "3 RUNNING after the crash");
    await sim.stop();
  });

  it("failover(): a new leader replays the log, the agents re-register, and work goes on", async () => {
    const run = async () => {
      const sim = await Sim.start({ seed: 10, agents: AGENTS });
      const { taskIds } = await sim.createJob(spec("svc", { service: true, instances: 2 }));
      const old = sim.scheduler;
      const next = await sim.failover();
      expect(next).not.toBe(old);
      expect(sim.scheduler).toBe(next);
      expect(sim.state.leader?.epoch).toBe(2);
      expect(taskIds.map((t) => sim.state.tasks.get(t)!.state)).toEqual(["RUNNING", "RUNNING"]);
      expect(sim.agents.every((a) => a.leaderEpoch === 2)).toBe(true);
      const b = await sim.createJob(spec("after", { instances: 1 }));
      expect(sim.state.tasks.get(b.taskIds[0]!)!.state).toBe("RUNNING");
      const hash = await sim.logBytesHash();
      await sim.stop();
      return hash;
    };
    expect(await run()).toBe(await run());
  });

  it("request() speaks the bus API, unwrapping values and throwing refusals", async () => {
    const sim = await Sim.start({ seed: 6, agents: AGENTS });
    const created = await sim.request<{ job: string; taskIds: string[] }>("job.create", { spec: spec("api"), user: "bob" });
    expect(created.job).toBe("www-data/devel/api");
    const list = await sim.request<Array<{ job: string }>>("job.list", {});
    expect(list.map((j) => j.job)).toEqual(["www-data/devel/api"]);
    await expect(sim.request("job.status", { job: "www-data/devel/nope" })).rejects.toThrow(/does not exist/);
    await expect(sim.createJob(spec("api"))).rejects.toThrow(/already exists/);
    await expect(sim.createJob(spec("bad", { resources: { cpus: 1, ramMb: -1, diskMb: 1 } }))).rejects.toThrow(/resources\.ramMb/);
    await sim.stop();
  });

  it("runUntil throws naming what it waited for, with the clock at the deadline", async () => {
    const sim = await Sim.start({ seed: 8, agents: AGENTS });
    sim.behave("www-data/devel/slow", { runMs: 60_000 });
    const { taskIds } = await sim.createJob(spec("slow"));
    const t0 = sim.elapsed;
    const finished = (s: ClusterState) => s.tasks.get(taskIds[0]!)!.state === "FINISHED";
    await expect(sim.runUntil(finished, 10_000, "the slow batch task to finish")).rejects.toThrow(
      /timed out after 10000 virtual ms waiting for: the slow batch task to finish/,
    );
    expect(sim.elapsed - t0).toBe(10_000);
    expect(await sim.runUntil(finished, 60_000, "the slow batch task to finish")).toBe(50_000);
    const before = sim.elapsed;
    await expect(sim.runUntil(() => false, 1_000, "a miracle")).rejects.toThrow(/waiting for: a miracle \(at \+\d+ ms; /);
    expect(sim.elapsed).toBe(before + 1_000);
    await sim.stop();
  });

  it("settle() gives up with a clear error when something never finishes", async () => {
    const sim = await Sim.start({ seed: 9, agents: AGENTS, maxSettleTurns: 500 });
    sim.bus.serve("test.stuck", () => new Promise(() => {}));
    void sim.bus.request("test.stuck", {}).catch(() => {});
    expect(sim.bus.inFlight).toBe(1);
    await expect(sim.settle()).rejects.toThrow(/did not settle within 500 turns .*bus in flight: test\.stuck ×1/);
    await sim.stop();
  });
});

describe("MemoryBus in-flight count", () => {
  it("counts requests until answered and deliveries until their handler is done", async () => {
    const bus = new MemoryBus({ requestTimeouts: false });
    let release!: () => void;
    bus.serve("slow", () => new Promise<string>((r) => (release = () => r("done"))));
    let handled = 0;
    bus.serve("pub", async () => {
      await new Promise((r) => setImmediate(r));
      handled++;
    });
    const reply = bus.request("slow", {});
    bus.publish("pub", {});
    expect(bus.inFlight).toBe(2);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(handled).toBe(1);
    expect(bus.inFlight).toBe(1);
    expect(bus.inFlightSubjects()).toEqual([["slow", 1]]);
    release();
    expect(await reply).toBe("done");
    expect(bus.inFlight).toBe(0);
    await expect(bus.request("nobody", {})).rejects.toThrow(/no responders/);
    expect(bus.inFlight).toBe(0);
  });
});
