// The whole loop in one process: scheduler + agents on the in-memory log and bus, running real
// processes. Covers: placement and launch, RUNNING, service reschedule after a crash, batch
// FINISHED, batch retry up to maxTaskFailures, kill ending KILLED with no process left.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAlive } from "../src/agent/proc.js";
import { jobStatus, taskHistory, withReasons } from "../src/replay/queries.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";
import { Scheduler } from "../src/actors/scheduler.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import type { TaskId } from "../src/domain/types.js";

let c: TestCluster;
beforeEach(async () => {
  c = await startCluster({ agents: 3 });
});
afterEach(async () => {
  await c.stop();
});

const spec = (name: string, over: Record<string, unknown> = {}) => testSpec(name, over, {});

/** The pid the agent reported with RUNNING ("processes started (pids N)"). */
const runningPid = (taskId: TaskId) => Number(/pids (\d+)/.exec(c.scheduler.state.tasks.get(taskId)!.lastReason)![1]);

const states = (c: TestCluster, job: string) => jobStatus(c.scheduler.state, job)!.instances.map((i) => i.state);

describe("scheduler on the in-memory log", () => {
  it("places a 3-instance service with named ports and brings every instance to RUNNING", async () => {
    const r = await c.scheduler.intake.create({
      spec: spec("web", { instances: 3, service: true, resources: { cpus: 0.1, ramMb: 16, diskMb: 16, ports: ["http"] } }),
      user: "alice",
    });
    expect(r.taskIds).toHaveLength(3);
    await waitFor(c.scheduler, () => states(c, "www-data/devel/web").every((s) => s === "RUNNING"), "3 RUNNING");
    const st = jobStatus(c.scheduler.state, "www-data/devel/web")!;
    const ports = st.instances.map((i) => `${i.host}:${i.ports.http}`);
    expect(new Set(ports).size).toBe(3);
    for (const i of st.instances) expect(i.ports.http).toBeGreaterThan(0);
    const h = await withReasons(taskHistory(c.scheduler.state, st.instances[0]!.taskId)!, c.log);
    expect(h.events.map((e) => e.state)).toEqual(["PENDING", "ASSIGNED", "STARTING", "RUNNING"]);
    expect(h.events.every((e) => (e.reason ?? "").length > 0)).toBe(true);
  });

  it("reschedules a service task whose process died, with its ancestor linked", async () => {
    await c.scheduler.intake.create({ spec: spec("svc", { service: true, processes: [{ name: "main", cmdline: "exec sleep 1000" }] }) });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/svc")[0] === "RUNNING", "RUNNING");
    const first = jobStatus(c.scheduler.state, "www-data/devel/svc")!.instances[0]!;
    const agent = c.agents.find((a) => a.executor.isRunning(first.taskId))!;
    // Kill the process by hand, as an operator would (the RUNNING reason names its pid).
    expect(agent).toBeDefined();
    process.kill(runningPid(first.taskId), "SIGKILL");
    await waitFor(
      c.scheduler,
      () => {
        const i = jobStatus(c.scheduler.state, "www-data/devel/svc")!.instances[0]!;
        return i.taskId !== first.taskId && i.state === "RUNNING";
      },
      "replacement RUNNING",
    );
    const old = taskHistory(c.scheduler.state, first.taskId)!;
    expect(old.state).toBe("FAILED");
    expect(old.exitCode).toBe(137);
    const next = jobStatus(c.scheduler.state, "www-data/devel/svc")!.instances[0]!;
    expect(taskHistory(c.scheduler.state, next.taskId)!.ancestorId).toBe(first.taskId);
    expect((await withReasons(taskHistory(c.scheduler.state, next.taskId)!, c.log)).events[0]!.reason).toMatch(/rescheduled/);
  });

  it("runs a batch job to FINISHED and does not run it again", async () => {
    await c.scheduler.intake.create({ spec: spec("batch", { processes: [{ name: "main", cmdline: "echo hi" }] }) });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/batch")[0] === "FINISHED", "FINISHED");
    expect(c.scheduler.state.tasks.size).toBe(1);
  });

  it("retries a failing batch task up to maxTaskFailures, then leaves it FAILED", async () => {
    await c.scheduler.intake.create({ spec: spec("flaky", { maxTaskFailures: 3, processes: [{ name: "main", cmdline: "exit 3" }] }) });
    await waitFor(
      c.scheduler,
      () => {
        const i = jobStatus(c.scheduler.state, "www-data/devel/flaky")!.instances[0]!;
        return i.state === "FAILED" && i.failureCount === 3;
      },
      "third failure",
    );
    const tasks = [...c.scheduler.state.tasks.values()].filter((t) => t.job === "www-data/devel/flaky");
    expect(tasks).toHaveLength(3);
    expect(tasks.every((t) => t.state === "FAILED" && t.exitCode === 3)).toBe(true);
    expect(tasks.filter((t) => t.rescheduleWanted)).toHaveLength(0);
  });

  it("kills a job: every instance ends KILLED and no process is left", async () => {
    await c.scheduler.intake.create({
      spec: spec("doomed", { instances: 2, service: true, processes: [{ name: "main", cmdline: "sleep 1000 & wait" }] }),
    });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/doomed").every((s) => s === "RUNNING"), "RUNNING");
    const pids = jobStatus(c.scheduler.state, "www-data/devel/doomed")!.instances.map((i) => runningPid(i.taskId));
    await c.scheduler.intake.kill({ job: "www-data/devel/doomed", user: "bob" });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/doomed").every((s) => s === "KILLED"), "KILLED");
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect([...c.scheduler.state.tasks.values()].filter((t) => t.job === "www-data/devel/doomed")).toHaveLength(2);
    for (const a of c.scheduler.state.agents.values()) expect(a.used.cpus).toBe(0);
  });

  it("refuses an invalid spec with the field and rule, and appends nothing", async () => {
    const before = c.scheduler.state.seq;
    await expect(c.scheduler.intake.create({ spec: spec("bad", { resources: { cpus: 0.1, ramMb: -5, diskMb: 16 } }) })).rejects.toThrow(
      /resources\.ramMb/,
    );
    expect(c.scheduler.state.seq).toBe(before);
  });

  it("keeps a task PENDING with the reason when nothing fits", async () => {
    await c.scheduler.intake.create({ spec: spec("huge", { resources: { cpus: 64, ramMb: 16, diskMb: 16 } }) });
    const id = jobStatus(c.scheduler.state, "www-data/devel/huge")!.instances[0]!.taskId;
    await waitFor(c.scheduler, () => c.scheduler.placement.reasonFor(id) !== undefined, "a pending reason");
    const st = jobStatus(c.scheduler.state, "www-data/devel/huge", c.scheduler.placement.pendingReasons)!;
    expect(st.instances[0]!.state).toBe("PENDING");
    expect(st.instances[0]!.reason).toMatch(/Insufficient: cpus/);
  });
});

describe("status ingestion", () => {
  it("appends a status once, however often the agent delivers it", async () => {
    await c.scheduler.intake.create({ spec: spec("dup", { service: true }) });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/dup")[0] === "RUNNING", "RUNNING");
    const t = c.scheduler.state.tasks.get(jobStatus(c.scheduler.state, "www-data/devel/dup")!.instances[0]!.taskId)!;
    const before = c.scheduler.state.seq;
    const dup = { agentId: t.agentId!, update: { taskId: t.taskId, seq: t.agentSeq, state: "RUNNING" as const, ts: 1 } };
    for (let i = 0; i < 3; i++) expect(await c.scheduler.statusIngest.handle(dup)).toEqual({ ok: true, value: { duplicate: true } });
    expect(c.scheduler.state.seq).toBe(before);
  });

  it("kills a task an agent runs that the log does not know, and logs nothing for it", async () => {
    const before = c.scheduler.state.seq;
    const kills: Array<[string, string | null]> = [];
    // The Launcher is reached only by messages: watch its mailbox.
    c.scheduler.launcher.tap = (m) => {
      if (m.type === "kill") kills.push([m.taskId, m.agentId]);
    };
    const r = await c.scheduler.statusIngest.handle({
      agentId: "agent-1",
      update: { taskId: "ghost-task", seq: 1, state: "RUNNING", ts: 1 },
    });
    expect(r).toEqual({ ok: true, value: { duplicate: false } });
    expect(kills).toEqual([["ghost-task", "agent-1"]]);
    expect(c.scheduler.state.seq).toBe(before);
  });

  it("refuses a status from an agent the log does not know, and logs nothing", async () => {
    const before = c.scheduler.state.seq;
    const r = await c.scheduler.statusIngest.handle({
      agentId: "agent-stray",
      update: { taskId: "ghost-task", seq: 1, state: "RUNNING", ts: 1 },
    });
    expect(r).toEqual({ ok: false, error: "agentId: agent agent-stray is not registered; rule: an agent registers before it reports" });
    expect(c.scheduler.state.seq).toBe(before);
  });

  it("refuses a state only the scheduler decides (or none at all), for a task the agent runs, and logs nothing", async () => {
    await c.scheduler.intake.create({ spec: spec("poison", { service: true }) });
    await waitFor(c.scheduler, () => states(c, "www-data/devel/poison")[0] === "RUNNING", "RUNNING");
    const t = c.scheduler.state.tasks.get(jobStatus(c.scheduler.state, "www-data/devel/poison")!.instances[0]!.taskId)!;
    const before = c.scheduler.state.seq;
    for (const state of ["BOGUS", "PENDING", "KILLING", "DELETED", 7, null]) {
      const r = await c.scheduler.statusIngest.handle({
        agentId: t.agentId,
        update: { taskId: t.taskId, seq: t.agentSeq + 1, state, ts: 1 },
      });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(
        /^invalid status update: update\.state: must be a state an agent reports: STARTING, RUNNING, FINISHED, FAILED, KILLED, LOST/,
      );
    }
    // From another agent than the one the log places it on: a stray, killed there; nothing logged.
    const other = [...c.scheduler.state.agents.keys()].find((a) => a !== t.agentId)!;
    expect(
      await c.scheduler.statusIngest.handle({ agentId: other, update: { taskId: t.taskId, seq: t.agentSeq + 1, state: "FAILED", ts: 1 } }),
    ).toEqual({ ok: true, value: { duplicate: false } });
    expect(c.scheduler.state.seq).toBe(before);
    expect(c.scheduler.state.tasks.get(t.taskId)!.state).toBe("RUNNING");
    expect(c.scheduler.state.anomalies).toEqual([]);
  });

  it("refuses a malformed status update with what is wrong", async () => {
    const before = c.scheduler.state.seq;
    const r = await c.scheduler.statusIngest.handle({ agentId: "agent-1", update: { taskId: 5 } });
    expect(r).toEqual({
      ok: false,
      error:
        "invalid status update: update.seq: is required; update.state: is required; update.ts: is required; update.taskId: must be a string: 1 to 256 characters (got 5)",
    });
    expect(c.scheduler.state.seq).toBe(before);
  });
});

describe("the leader folds what the log holds", () => {
  it("a string msgpack cannot carry (a lone surrogate) folds on the leader as every replay folds it", async () => {
    const log = new MemoryLog();
    const leader = new Scheduler({ log, bus: new MemoryBus(), schedulerId: "a" });
    await leader.start();
    try {
      // JSON can carry "\ud800"; MessagePack writes it as U+FFFD.
      const spec = testSpec("lone", { processes: [{ name: "main", cmdline: JSON.parse('"sleep 1 # \\ud800"') as string }] });
      await leader.intake.create({ spec, user: "t" });
      const replayed = new ClusterState();
      for await (const r of log.read(1)) foldRecord(replayed, r.seq, r.events);
      expect(replayed.seq).toBe(leader.state.seq);
      expect(stateHash(leader.state)).toBe(stateHash(replayed));
    } finally {
      await leader.stop();
    }
  });
});
