// High availability in the simulator: three scheduler replicas share the log, the bus and one
// lease (virtual time). A replica that dies is replaced by a standby that folded the log all
// along; a leader that stalls past its lease can append nothing once another leads.

import { afterEach, describe, expect, it } from "vitest";
import { FencedError } from "../src/eventlog/log.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState, type TaskRecord } from "../src/replay/state.js";
import { Sim } from "../src/sim/sim.js";
import { TERMINAL_STATES } from "../src/statemachines/taskStates.js";
import { testSpec } from "./support/specs.js";
import { asJobKey } from "../src/domain/types.js";

let sim: Sim | null = null;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

const start = (agents = 10) =>
  Sim.start({ seed: 40, replicas: 3, leaseMs: 3000, agents: [{ count: agents, cpus: 64, ramMb: 262144, diskMb: 1_000_000 }] });

/** No instance may ever have two live tasks. */
function liveCopies(tasks: Iterable<TaskRecord>): Map<string, number> {
  const live = new Map<string, number>();
  for (const t of tasks) {
    if (TERMINAL_STATES.has(t.state)) continue;
    const k = `${t.job}#${t.instance}`;
    live.set(k, (live.get(k) ?? 0) + 1);
  }
  return live;
}

describe("replicas and failover", () => {
  it("one replica leads; the standbys fold the same log", async () => {
    sim = await start(3);
    const leaders = sim.replicas.filter((r) => r.leading);
    expect(leaders).toHaveLength(1);
    await sim.createJob(testSpec("svc", { instances: 5, service: true }));
    await sim.advance(2_000);
    for (const r of sim.replicas) {
      expect(r.role).toBe(r === leaders[0] ? "leader" : "standby");
      expect(stateHash(r.state)).toBe(stateHash(leaders[0]!.state));
    }
  });

  it("the leader dies while placing a 1,000-instance job: exactly 1,000 end RUNNING, never two copies of one", async () => {
    sim = await start(20);
    const first = sim.scheduler;
    // Acknowledged (committed), then SIGKILL before placement is done: its lease runs out.
    const created = await first.intake.create({ spec: testSpec("big", { instances: 1000, service: true }), user: "t" });
    expect(created.taskIds).toHaveLength(1000);
    await new Promise((r) => setImmediate(r)); // let a placement round get under way
    first.crash();
    expect([...first.state.tasks.values()].filter((t) => t.state === "RUNNING").length).toBeLessThan(1000);
    await sim.runUntil(
      (s) => s.tasks.size >= 1000 && [...s.tasks.values()].filter((t) => t.state === "RUNNING").length === 1000,
      60_000,
      "1,000 RUNNING",
    );
    const next = sim.scheduler;
    expect(next).not.toBe(first);
    expect(next.leading).toBe(true);
    expect(next.epoch).toBeGreaterThan(first.epoch);
    const tasks = [...next.state.tasks.values()];
    expect(tasks).toHaveLength(1000); // nothing was rescheduled
    expect([...liveCopies(tasks).values()].every((n) => n === 1)).toBe(true);
    // The acknowledged request survived: the job and its 1,000 tasks are in the log.
    const replayed = new ClusterState();
    for await (const r of sim.log.read(1)) foldRecord(replayed, r.seq, r.events);
    expect(replayed.jobs.has(asJobKey("www-data/devel/big"))).toBe(true);
    expect(stateHash(replayed)).toBe(stateHash(next.state));
  });

  it("a dead leader is evicted: a standby leads long before its lease would run out, and the lease is not granted twice", async () => {
    sim = await start(3);
    const first = sim.scheduler;
    const t0 = sim.clock.now();
    first.crash(); // as under SIGKILL: its connection, and its alive subject, go with it
    const ms = await sim.runUntil(() => sim!.replicas.some((r) => r.leading && r !== first), 10_000, "a new leader");
    // Probed every 100 ms, "no responders" twice 300 ms apart, evicted, acquired: well inside the 3 s lease.
    expect(ms).toBeLessThan(1000);
    expect(sim.clock.now() - t0).toBeLessThan(3000);
    const leaders = sim.replicas.filter((r) => r.leading);
    expect(leaders).toHaveLength(1);
    expect(leaders[0]!.epoch).toBeGreaterThan(first.epoch);
  });

  it("a live leader is never evicted: while it answers, standbys wait out its lease", async () => {
    sim = await start(3);
    const leader = sim.scheduler;
    const epoch = leader.epoch;
    await sim.advance(30_000); // 300 probes by each standby: each finds it alive
    expect(sim.replicas.filter((r) => r.leading)).toEqual([leader]);
    expect(leader.epoch).toBe(epoch);
    // Renewals stopped (as when its event loop stalls) but it still answers: only the lease ends it.
    sim.clock.clearTimeout((leader as unknown as { renewTimer: unknown }).renewTimer);
    // Its last renewal was at most leaseMs/3 ago: the lease lives at least 2 s more.
    await sim.advance(1_900);
    expect(sim.replicas.filter((r) => r.leading)).toEqual([leader]);
    await sim.advance(2_000);
    expect(sim.replicas.some((r) => r.leading && r !== leader)).toBe(true);
  });

  it("a leader change reschedules no healthy task", async () => {
    sim = await start(5);
    await sim.createJob(testSpec("steady", { instances: 50, service: true }));
    await sim.advance(2_000);
    const before = sim.state.tasks.size;
    const seqBefore = sim.scheduler.state.seq;
    sim.scheduler.crash();
    await sim.advance(10_000);
    expect(sim.scheduler.reconciling).toBe(false);
    expect(sim.state.tasks.size).toBe(before);
    expect([...sim.state.tasks.values()].every((t) => t.state === "RUNNING")).toBe(true);
    const events = (await sim.events()).filter((e) => e.seq > seqBefore).map((e) => e.event.type);
    expect(events).toEqual(["LeaderElected"]);
  });

  it("a leader stalled past its lease writes nothing once another leads, and steps down", async () => {
    sim = await start(3);
    const stalled = sim.scheduler;
    const epoch = stalled.epoch;
    // As under SIGSTOP: its renewals stop, so its lease runs out and a standby takes over.
    sim.clock.clearTimeout((stalled as unknown as { renewTimer: unknown }).renewTimer);
    (sim as unknown as { leaseBoard: { held: { expires: number } | null } }).leaseBoard.held!.expires = sim.clock.now();
    await sim.advance(2_000);
    const next = sim.replicas.find((r) => r.leading && r !== stalled)!;
    expect(next).toBeDefined();
    // It wakes still believing it leads: its first append is refused, and it steps down.
    const seq = next.state.seq;
    expect(stalled.leading).toBe(true);
    await expect(
      stalled.commit([
        stalled.event("QuotaSet", { role: "x", cpus: 1, ramMb: 1, diskMb: 1, user: "zombie" }, "a write from a deposed leader"),
      ]),
    ).rejects.toThrow(FencedError);
    await sim.settle();
    expect(stalled.leading).toBe(false);
    expect(stalled.role).toBe("standby");
    const late = (await sim.events()).filter((e) => e.seq > seq && e.event.epoch === epoch);
    expect(late).toEqual([]);
    expect(next.state.quotas.has("x")).toBe(false);
  });
});
