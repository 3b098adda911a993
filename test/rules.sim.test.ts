// Aurora's scheduling rules, each through the real scheduler actors, with simulated agents and a
// virtual clock (src/sim). Times below are virtual: Aurora's production defaults apply unless a
// test says otherwise.

import { afterEach, describe, expect, it } from "vitest";
import { Sim } from "../src/sim/sim.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { withReasons } from "../src/replay/queries.js";
import { taskHistory } from "../src/replay/queries.js";
import { testSpec } from "./support/specs.js";

let sim: Sim | null = null;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

const MIN = 60_000;

const spec = (name: string, over: Record<string, unknown> = {}) =>
  testSpec(name, over, { role: "www", resources: { cpus: 1, ramMb: 1024, diskMb: 100 }, processes: [{ name: "main", cmdline: "serve" }] });

const hostsOf = (s: Sim, job: string) => s.status(job).instances.map((i) => i.host);
const statesOf = (s: Sim, job: string) => s.status(job).instances.map((i) => i.state);

describe("placement rules", () => {
  it("limit host=1: three instances on three distinct agents; a fourth stays PENDING with the reason", async () => {
    sim = await Sim.start({ seed: 1, agents: [{ count: 3, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    await sim.createJob(spec("web", { instances: 3, service: true, constraints: { host: "limit:1" } }));
    await sim.runUntil(() => statesOf(sim!, "www/devel/web").every((s) => s === "RUNNING"), MIN, "3 RUNNING");
    expect(new Set(hostsOf(sim, "www/devel/web")).size).toBe(3);
    await sim.request("job.add", { job: "www/devel/web", count: 1, user: "t" });
    await sim.advance(5_000);
    const fourth = sim.status("www/devel/web").instances[3]!;
    expect(fourth.state).toBe("PENDING");
    expect(fourth.reason).toBe("Limit not satisfied: host");
  });

  it("limit rack=2 and value constraints with negation", async () => {
    sim = await Sim.start({
      seed: 2,
      agents: [{ count: 6, cpus: 8, ramMb: 16384, diskMb: 10000, attributes: (i) => ({ rack: `r${i % 3}`, zone: `z${i % 2}` }) }],
    });
    await sim.createJob(spec("racked", { instances: 6, constraints: { rack: "limit:2", zone: "!z1" } }));
    await sim.advance(5_000);
    const st = sim.status("www/devel/racked");
    const placed = st.instances.filter((i) => i.state !== "PENDING");
    // zone z0 holds agents 0, 2, 4 (racks r0, r2, r1): at most 2 per rack, never in z1.
    for (const i of placed) expect(sim.state.agents.get(sim.state.tasks.get(i.taskId)!.agentId!)!.attributes.zone).toBe("z0");
    const perRack = new Map<string, number>();
    for (const i of placed) {
      const rack = sim.state.agents.get(sim.state.tasks.get(i.taskId)!.agentId!)!.attributes.rack!;
      perRack.set(rack, (perRack.get(rack) ?? 0) + 1);
    }
    expect([...perRack.values()].every((n) => n <= 2)).toBe(true);
    expect(placed.length).toBe(6); // 3 racks × 2
  });

  it("dedicated hosts take only their role's jobs; a dedicated job goes only there", async () => {
    sim = await Sim.start({
      seed: 3,
      agents: [
        { count: 2, prefix: "db", cpus: 8, ramMb: 16384, diskMb: 10000, attributes: () => ({ dedicated: "www/db" }) },
        { count: 2, prefix: "gen", cpus: 8, ramMb: 16384, diskMb: 10000 },
      ],
    });
    await sim.createJob(spec("plain", { instances: 4 }));
    await sim.createJob(spec("db", { instances: 2, constraints: { dedicated: "www/db" } }));
    await sim.advance(5_000);
    expect(hostsOf(sim, "www/devel/plain").every((h) => h!.startsWith("gen"))).toBe(true);
    expect(hostsOf(sim, "www/devel/db").every((h) => h!.startsWith("db"))).toBe(true);
    await expect(sim.createJob({ ...spec("other", { constraints: { dedicated: "www/db" } }), role: "ads" })).rejects.toThrow(
      /only role "www" may use these hosts/,
    );
    await sim.stop();
    sim = await Sim.start({
      seed: 3,
      agents: [{ count: 2, cpus: 8, ramMb: 16384, diskMb: 10000, attributes: () => ({ dedicated: "ml/train" }) }],
    });
    await sim.createJob(spec("plain"));
    await sim.advance(5_000);
    expect(sim.status("www/devel/plain").instances[0]!.reason).toBe("Host is dedicated");
  });

  it("named ports come from the agent's ranges and are never shared on a host", async () => {
    sim = await Sim.start({ seed: 4, agents: [{ count: 2, cpus: 64, ramMb: 65536, diskMb: 100000, ports: [[31000, 31009]] }] });
    await sim.createJob(spec("ports", { instances: 10, resources: { cpus: 0.1, ramMb: 16, diskMb: 10, ports: ["http", "admin"] } }));
    await sim.advance(5_000);
    const st = sim.status("www/devel/ports");
    expect(st.instances.every((i) => i.state === "RUNNING")).toBe(true);
    const used = st.instances.flatMap((i) => Object.values(i.ports).map((p) => `${i.host}:${p}`));
    expect(new Set(used).size).toBe(20);
    expect(st.instances.every((i) => Object.values(i.ports).every((p) => p >= 31000 && p <= 31009))).toBe(true);
    await sim.createJob(spec("more", { instances: 1, resources: { cpus: 0.1, ramMb: 16, diskMb: 10, ports: ["http"] } }));
    await sim.advance(5_000);
    expect(sim.status("www/devel/more").instances[0]!.reason).toBe("Insufficient: ports");
  });

  it("spreads by default, bin-packs by configuration", async () => {
    sim = await Sim.start({ seed: 5, agents: [{ count: 4, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    await sim.createJob(spec("spread", { instances: 4 }));
    await sim.advance(5_000);
    expect(new Set(hostsOf(sim, "www/devel/spread")).size).toBe(4);
    await sim.stop();
    sim = await Sim.start({ seed: 5, agents: [{ count: 4, cpus: 8, ramMb: 16384, diskMb: 10000 }], policy: { placementMode: "binpack" } });
    await sim.createJob(spec("packed", { instances: 4 }));
    await sim.advance(5_000);
    expect(new Set(hostsOf(sim, "www/devel/packed")).size).toBe(1);
    const d = sim.state.tasks.get(sim.status("www/devel/packed").instances[0]!.taskId)!;
    expect(d.lastReason).toMatch(/^agent on/); // RUNNING now; the decision is in the log:
    const h = await withReasons(taskHistory(sim.state, d.taskId)!, sim.log);
    expect(h.events.find((e) => e.state === "ASSIGNED")!.reason).toMatch(/^binpack on /);
  });

  it("groups tasks by configuration, so a large job cannot starve a small one", async () => {
    sim = await Sim.start({ seed: 6, agents: [{ count: 10, cpus: 4, ramMb: 8192, diskMb: 10000 }] });
    // 1,000 instances that fit nowhere, created first: the small job still runs at once.
    await sim.createJob(spec("huge", { instances: 1000, resources: { cpus: 16, ramMb: 64, diskMb: 10 } }));
    await sim.createJob(spec("tiny", { instances: 1, resources: { cpus: 0.1, ramMb: 64, diskMb: 10 } }));
    await sim.advance(2_000);
    expect(statesOf(sim, "www/devel/tiny")).toEqual(["RUNNING"]);
    expect(sim.status("www/devel/huge").instances[999]!.reason).toBe("Insufficient: cpus");
  });

  it("groups take turns: two large jobs created together share a cell that fits only half of them", async () => {
    sim = await Sim.start({ seed: 16, agents: [{ count: 10, cpus: 10, ramMb: 81920, diskMb: 100000 }] });
    await sim.createJob(spec("blocker", { instances: 100 }));
    await sim.advance(1_000);
    await sim.createJob(spec("a", { instances: 100 }));
    await sim.createJob(spec("b", { instances: 100 }));
    await sim.advance(1_000);
    await sim.killJob("www/devel/blocker");
    await sim.advance(5_000);
    const running = (job: string) => statesOf(sim!, job).filter((s) => s === "RUNNING").length;
    expect(running("www/devel/a") + running("www/devel/b")).toBe(100);
    expect(Math.abs(running("www/devel/a") - running("www/devel/b"))).toBeLessThanOrEqual(10);
  });

  it("pending reasons name the rule: Insufficient: ramMb, Constraint not satisfied: zone", async () => {
    sim = await Sim.start({ seed: 7, agents: [{ count: 2, cpus: 8, ramMb: 2048, diskMb: 10000, attributes: (i) => ({ zone: `z${i}` }) }] });
    await sim.createJob(spec("fat", { resources: { cpus: 1, ramMb: 4096, diskMb: 10 } }));
    await sim.createJob(spec("zoned", { constraints: { zone: "z9" } }));
    await sim.advance(5_000);
    expect(sim.status("www/devel/fat").instances[0]!.reason).toBe("Insufficient: ramMb");
    expect(sim.status("www/devel/zoned").instances[0]!.reason).toBe("Constraint not satisfied: zone");
    const why = await sim.request<{
      summary: string;
      vetoes: Array<{ reason: string; hosts: number; examples: Array<{ detail: string }> }>;
    }>("task.why", { taskId: sim.status("www/devel/fat").instances[0]!.taskId });
    expect(why.summary).toMatch(/none of 2 hosts can take it/);
    expect(why.vetoes[0]).toMatchObject({ reason: "Insufficient: ramMb", hosts: 2 });
    expect(why.vetoes[0]!.examples[0]!.detail).toBe("needs ramMb 4096, free 2048 of 2048");
  });
});

describe("rescheduling and throttling", () => {
  it("a batch task is retried up to maxTaskFailures; -1 retries without end", async () => {
    sim = await Sim.start({ seed: 8, agents: [{ count: 2, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    sim.behave("www/devel/three", { runMs: 10 * MIN, exitCode: 2 });
    sim.behave("www/devel/forever", { runMs: 10 * MIN, exitCode: 2 });
    await sim.createJob(spec("three", { maxTaskFailures: 3 }));
    await sim.createJob(spec("forever", { maxTaskFailures: -1 }));
    await sim.advance(60 * MIN);
    const three = [...sim.state.tasks.values()].filter((t) => t.job === "www/devel/three");
    expect(three).toHaveLength(3);
    expect(three.every((t) => t.state === "FAILED")).toBe(true);
    const forever = [...sim.state.tasks.values()].filter((t) => t.job === "www/devel/forever");
    expect(forever.length).toBeGreaterThan(4);
    expect(forever.filter((t) => t.state === "FAILED").every((t) => t.successorId !== null)).toBe(true);
  });

  it("a flapping task is THROTTLED with a truncated binary backoff, 30 s → 5 min, along its ancestors", async () => {
    sim = await Sim.start({ seed: 9, agents: [{ count: 1, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    sim.behave("www/devel/flappy", { runMs: 1_000, exitCode: 1 });
    await sim.createJob(spec("flappy", { service: true }));
    await sim.runUntil((s) => [...s.tasks.values()].filter((t) => t.job === "www/devel/flappy").length >= 8, 60 * MIN, "8 runs");
    const chain = [...sim.state.tasks.values()].filter((t) => t.job === "www/devel/flappy").map((t) => t.throttleMs);
    expect(chain.slice(0, 8)).toEqual([0, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
    const second = [...sim.state.tasks.values()][1]!;
    const h = await withReasons(taskHistory(sim.state, second.taskId)!, sim.log);
    expect(h.events[0]).toMatchObject({ state: "THROTTLED" });
    expect(h.events[0]!.reason).toMatch(/flapping \(it ran 1s < 5m\): throttled for 30s/);
    expect(h.events[1]!.reason).toBe("flap penalty of 30s served");
    expect(h.events[1]!.ts - h.events[0]!.ts).toBe(30_000);
  });

  it("a task that ran longer than 5 minutes is not flapping", async () => {
    sim = await Sim.start({ seed: 10, agents: [{ count: 1, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    sim.behave("www/devel/steady", { runMs: 6 * MIN, exitCode: 1 });
    await sim.createJob(spec("steady", { service: true }));
    await sim.advance(7 * MIN);
    const tasks = [...sim.state.tasks.values()].filter((t) => t.job === "www/devel/steady");
    expect(tasks).toHaveLength(2);
    expect(tasks[1]!.throttleMs).toBe(0);
    expect(tasks[1]!.state).toBe("RUNNING");
  });

  it("a task stuck in ASSIGNED for 5 minutes is LOST and rescheduled (a transient timeout)", async () => {
    sim = await Sim.start({ seed: 11, agents: [{ count: 2, cpus: 8, ramMb: 16384, diskMb: 10000 }] });
    sim.agents[0]!.crash(); // takes launches no more, reports nothing
    sim.agents[1]!.crash();
    await sim.createJob(spec("stuck", { service: true }));
    await sim.advance(1_000);
    const first = sim.status("www/devel/stuck").instances[0]!;
    expect(first.state).toBe("ASSIGNED");
    await sim.advance(5 * MIN);
    const t = sim.state.tasks.get(first.taskId)!;
    expect(t.state).toBe("LOST");
    expect(t.lastReason).toMatch(/^ASSIGNED for 5m, past the transient timeout of 5m: the agent on .* never reported the launch$/);
    expect(t.successorId).not.toBeNull();
  });
});

describe("preemption", () => {
  const full = { count: 2, cpus: 2, ramMb: 4096, diskMb: 10000 };

  it("production preempts preemptible once it has waited the delay; the freed slot is held for it", async () => {
    sim = await Sim.start({ seed: 12, agents: [full] });
    await sim.createJob(spec("batchy", { instances: 4, tier: "preemptible" }));
    await sim.advance(1_000);
    expect(statesOf(sim, "www/devel/batchy").every((s) => s === "RUNNING")).toBe(true);
    await sim.request("quota.set", { role: "www", cpus: 10, ramMb: 10000, diskMb: 10000, user: "admin" });
    await sim.createJob(spec("prod", { tier: "preferred", environment: "prod" }));
    await sim.advance(2 * MIN);
    expect(sim.status("www/prod/prod").instances[0]!.state).toBe("PENDING"); // not yet: 3 min delay
    await sim.runUntil(() => sim!.status("www/prod/prod").instances[0]!.state === "RUNNING", 5 * MIN, "prod RUNNING");
    const victims = [...sim.state.tasks.values()].filter((t) => t.job === "www/devel/batchy" && t.state === "KILLED");
    expect(victims).toHaveLength(1);
    const vh = await withReasons(taskHistory(sim.state, victims[0]!.taskId)!, sim.log);
    expect(vh.events.find((e) => e.state === "PREEMPTING")!.reason).toMatch(
      /production \(tier preferred\) preempts preemptible \(tier preemptible\)/,
    );
    const prod = sim.status("www/prod/prod").instances[0]!;
    const ph = await withReasons(taskHistory(sim.state, prod.taskId)!, sim.log);
    expect(ph.events.find((e) => e.state === "ASSIGNED")!.reason).toMatch(/in the slot the preemptor held for it/);
    expect(prod.host).toBe(victims[0]!.host);
    // The victim is rescheduled, and waits: production holds the cell now.
    expect(victims[0]!.successorId).not.toBeNull();
  });

  it("each task of a blocked production group gets a slot in turn, and runs in the slot held for it", async () => {
    sim = await Sim.start({ seed: 15, agents: [full], policy: { preemptionDelayMs: 0 } });
    await sim.createJob(spec("batchy", { instances: 4, tier: "preemptible" }));
    await sim.advance(1_000);
    await sim.request("quota.set", { role: "www", cpus: 10, ramMb: 10000, diskMb: 10000, user: "admin" });
    await sim.createJob(spec("prod", { instances: 2, tier: "preferred", environment: "prod" }));
    await sim.runUntil(
      () => sim!.status("www/prod/prod").instances.every((i) => i.state === "RUNNING"),
      10 * MIN,
      "both prod instances RUNNING",
    );
    const held = [...sim.state.tasks.values()].filter((t) => t.job === "www/prod/prod" && t.state === "RUNNING");
    expect(held).toHaveLength(2);
    for (const t of held) {
      const h = await withReasons(taskHistory(sim.state, t.taskId)!, sim.log);
      expect(h.events.find((e) => e.state === "ASSIGNED")!.reason).toMatch(/in the slot the preemptor held for it/);
    }
    expect([...sim.state.tasks.values()].filter((t) => t.job === "www/devel/batchy" && t.state === "KILLED")).toHaveLength(2);
  });

  it("within a role and tier, higher priority preempts lower; another role is left alone", async () => {
    sim = await Sim.start({ seed: 13, agents: [{ count: 1, cpus: 2, ramMb: 4096, diskMb: 10000 }], policy: { preemptionDelayMs: 0 } });
    await sim.createJob({ ...spec("other", { instances: 1, priority: 0 }), role: "ads" });
    await sim.createJob(spec("low", { instances: 1, priority: 1 }));
    await sim.advance(1_000);
    await sim.createJob(spec("high", { instances: 1, priority: 5 }));
    await sim.runUntil(() => sim!.status("www/devel/high").instances[0]!.state === "RUNNING", 10 * MIN, "high RUNNING");
    expect(sim.status("www/devel/low").instances[0]!.state).not.toBe("RUNNING");
    expect(sim.status("ads/devel/other").instances[0]!.state).toBe("RUNNING");
  });

  it("preemptible work never preempts production", async () => {
    sim = await Sim.start({ seed: 14, agents: [{ count: 1, cpus: 1, ramMb: 4096, diskMb: 10000 }], policy: { preemptionDelayMs: 0 } });
    await sim.request("quota.set", { role: "www", cpus: 10, ramMb: 10000, diskMb: 10000, user: "admin" });
    await sim.createJob(spec("prod", { tier: "preferred", environment: "prod" }));
    await sim.advance(1_000);
    await sim.createJob(spec("eager", { priority: 100 }));
    await sim.advance(10 * MIN);
    expect(sim.status("www/prod/prod").instances[0]!.state).toBe("RUNNING");
    expect(sim.status("www/devel/eager").instances[0]!.state).toBe("PENDING");
    expect(sim.state.reservations.size).toBe(0);
  });
});

describe("replay", () => {
  it("a log written under every rule folds again to the same state, with no anomaly", async () => {
    sim = await Sim.start({ seed: 15, agents: [{ count: 3, cpus: 2, ramMb: 4096, diskMb: 10000 }], policy: { preemptionDelayMs: 30_000 } });
    sim.behave("www/devel/flappy", { runMs: 500, exitCode: 1 });
    await sim.createJob(spec("flappy", { service: true }));
    await sim.createJob(spec("filler", { instances: 5, constraints: { host: "limit:2" } }));
    await sim.request("quota.set", { role: "www", cpus: 10, ramMb: 10000, diskMb: 10000, user: "admin" });
    await sim.createJob(spec("prod", { tier: "preferred", environment: "prod", instances: 2 }));
    await sim.advance(20 * MIN);
    const replayed = new ClusterState();
    for await (const r of sim.log.read(1)) foldRecord(replayed, r.seq, r.events);
    expect(replayed.anomalies).toEqual([]);
    expect(stateHash(replayed)).toBe(stateHash(sim.state));
  });
});
