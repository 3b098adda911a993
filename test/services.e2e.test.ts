// Services that stay up, against real processes on the in-process cluster (scheduler + agents on
// the memory log and bus): health checks decide RUNNING and FAILED, Aurora's graceful kill
// sequence (HTTP steps, SIGTERM, SIGKILL after finalizationWait), Thermos's ordered and final
// processes, `roost task status`'s view of them, the cgroup memory limit and the disk check.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { taskStatusFrom } from "../src/actors/reads.js";
import { Agent } from "../src/agent/agent.js";
import { createIsolator } from "../src/agent/isolation.js";
import type { InspectReply } from "../src/agent/protocol.js";
import { taskSandboxDir } from "../src/agent/sandbox.js";
import { subjects } from "../src/bus/bus.js";
import type { TaskId } from "../src/domain/types.js";
import { jobStatus, taskHistory, withReasons } from "../src/replay/queries.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import type { TaskStatusReply } from "../src/client/roostClient.js";
import { apiRequest } from "./support/api.js";
import { waitForFile } from "./support/files.js";
import { testSpec } from "./support/specs.js";

const SERVICE = resolve("test/fixtures/service.mjs");
const svcCmd = (env: Record<string, string> = {}) =>
  `${Object.entries(env)
    .map(([k, v]) => `${k}=${v} `)
    .join("")}exec ${process.execPath} ${SERVICE}`;

let c: TestCluster | null = null;
afterEach(async () => {
  await c?.stop();
  c = null;
});

const spec = (name: string, over: Record<string, unknown> = {}) =>
  testSpec(name, over, { resources: { cpus: 0.1, ramMb: 128, diskMb: 64, ports: ["health"] } });

const instance = (job: string, i = 0) => jobStatus(c!.scheduler.state, job)!.instances.find((x) => x.instance === i)!;
const task = (taskId: string) => c!.scheduler.state.tasks.get(taskId as TaskId)!;

function sandboxOf(taskId: string): string {
  const agent = c!.agents.find((a) => a.executor.isRunning(taskId));
  if (!agent) throw new Error(`no agent runs ${taskId}`);
  return taskSandboxDir(join(c!.dir, agent.agentId), taskId);
}

async function history(taskId: string) {
  return (await withReasons(taskHistory(c!.scheduler.state, taskId)!, c!.log)).events;
}

/**
 * A job of one instance on a new one-agent cluster, once its task is in `state` (and, with
 * `ready`, once that file is in its sandbox): its key, task and sandbox.
 */
async function runJob(name: string, over: Record<string, unknown>, opts: { state?: string; ready?: string } = {}) {
  c = await startCluster({ agents: 1 });
  await c.scheduler.intake.create({ spec: spec(name, over) });
  const job = `www-data/devel/${name}`;
  const state = opts.state ?? "RUNNING";
  await waitFor(c.scheduler, () => instance(job)?.state === state, state);
  const taskId = instance(job).taskId;
  const sandbox = sandboxOf(taskId);
  if (opts.ready !== undefined) await waitForFile(join(sandbox, opts.ready));
  return { job, taskId, sandbox };
}

/** Kills the job and waits for its task to be KILLED; returns the task's history. */
async function killJob(job: string, taskId: string) {
  await c!.scheduler.intake.kill({ job, instances: null, user: "alice" });
  await waitFor(c!.scheduler, () => task(taskId).state === "KILLED", "KILLED");
  return history(taskId);
}

/** events.log lines of the stand-in service, without their times. */
const serviceEvents = (sandbox: string) =>
  readFileSync(join(sandbox, "events.log"), "utf8")
    .trim()
    .split("\n")
    .map((l) => l.replace(/^\d+ /, ""));

describe("health checks decide RUNNING and FAILED", () => {
  it('an HTTP service that answers "ok" only after 3 s becomes RUNNING after that, not before', async () => {
    const { taskId } = await runJob(
      "slow",
      {
        service: true,
        processes: [{ name: "server", cmdline: svcCmd({ OK_AFTER_MS: "3000" }) }],
        healthCheck: { initialIntervalSecs: 6, intervalSecs: 0.25, timeoutSecs: 1 },
      },
      { state: "STARTING", ready: "events.log" },
    );
    const listening = Date.now();
    await waitFor(c!.scheduler, () => task(taskId).state === "RUNNING", "RUNNING", 20_000);
    const events = await history(taskId);
    const starting = events.find((e) => e.state === "STARTING")!;
    const running = events.find((e) => e.state === "RUNNING")!;
    // Not before the service said "ok": 3 s after it started (it started after STARTING).
    expect(running.ts - starting.ts).toBeGreaterThanOrEqual(3000);
    expect(Date.now() - listening).toBeLessThan(20_000);
    expect(running.reason).toMatch(/healthy after 1 consecutive successful health check/);
  });

  it('a service whose /health turns to "bad" ends FAILED with the checker\'s reason and is replaced', async () => {
    c = await startCluster({ agents: 1 });
    await c.scheduler.intake.create({
      spec: spec("turns", {
        service: true,
        processes: [{ name: "server", cmdline: svcCmd({ ON_QUIT: "exit" }) }],
        // 10 s to start listening: a 0.2 s grace is too little for a Node service on a loaded machine.
        healthCheck: { initialIntervalSecs: 10, intervalSecs: 0.2 },
      }),
    });
    const job = "www-data/devel/turns";
    await waitFor(c.scheduler, () => instance(job)?.state === "RUNNING", "RUNNING");
    const first = instance(job).taskId;
    writeFileSync(join(sandboxOf(first), "bad"), "");
    await waitFor(c.scheduler, () => task(first).state === "FAILED", "FAILED");
    const failed = (await history(first)).at(-1)!;
    expect(failed.reason).toContain('unhealthy: expected "ok", got "bad"');
    // Its kill went through the graceful sequence: the service quit on /quitquitquit.
    expect(failed.reason).toContain("ended by POST /quitquitquit");
    // Replaced: the instance runs again, in a new task, healthy.
    await waitFor(c.scheduler, () => instance(job).taskId !== first && instance(job).state === "RUNNING", "replacement RUNNING");
    expect(task(instance(job).taskId).ancestorId).toBe(first);
  });
});

describe("graceful kill: /quitquitquit, /abortabortabort, SIGTERM, SIGKILL", () => {
  it("a service that exits on /quitquitquit is killed without SIGTERM", async () => {
    const { job, taskId, sandbox } = await runJob(
      "polite",
      { service: true, processes: [{ name: "server", cmdline: svcCmd({ ON_QUIT: "exit" }) }] },
      { ready: "events.log" },
    );
    expect((await killJob(job, taskId)).at(-1)!.reason).toContain("ended by POST /quitquitquit");
    expect(serviceEvents(sandbox)).toEqual(["listening", "POST /quitquitquit", "exiting on /quitquitquit"]);
  });

  it("one that ignores the HTTP steps is killed with SIGTERM after both waits", async () => {
    const { job, taskId, sandbox } = await runJob(
      "deaf",
      {
        service: true,
        processes: [{ name: "server", cmdline: svcCmd() }],
        lifecycle: { http: { gracefulShutdownWaitSecs: 0.3, shutdownWaitSecs: 0.3 } },
      },
      { ready: "events.log" },
    );
    expect((await killJob(job, taskId)).at(-1)!.reason).toContain("ended by SIGTERM");
    expect(serviceEvents(sandbox)).toEqual(["listening", "POST /quitquitquit", "POST /abortabortabort", "SIGTERM"]);
  });

  it("a process that traps SIGTERM is SIGKILLed after the finalization wait", async () => {
    const { job, taskId } = await runJob(
      "stubborn",
      {
        service: true,
        finalizationWaitSecs: 1,
        processes: [{ name: "main", cmdline: "trap '' TERM; echo up > up; while :; do sleep 0.05; done" }],
      },
      { ready: "up" },
    );
    const events = await killJob(job, taskId);
    const killing = events.find((e) => e.state === "KILLING")!;
    const killed = events.at(-1)!;
    expect(killed.reason).toContain("ended by SIGKILL");
    expect(killed.ts - killing.ts).toBeGreaterThanOrEqual(1000);
  });
});

describe("processes within a task (Thermos)", () => {
  it("runs ordered processes in order, shows them in task status, and runs a final process after a kill", async () => {
    const { job, taskId, sandbox } = await runJob(
      "ordered",
      {
        service: true,
        finalizationWaitSecs: 5,
        processes: [
          { name: "serve", cmdline: "echo serve >> order.log; echo >serve.started; exec sleep 1000" },
          { name: "fetch", cmdline: "sleep 0.2; echo fetch >> order.log" },
          { name: "cleanup", cmdline: "echo cleanup >> order.log", final: true },
        ],
        constraints: [{ order: ["fetch", "serve"] }],
      },
      { ready: "serve.started" },
    );
    expect(readFileSync(join(sandbox, "order.log"), "utf8")).toBe("fetch\nserve\n");

    // What `roost task status` shows: every process, its state, runs, exit code and pid.
    const agentId = task(taskId).agentId!;
    const reply = await c!.bus.request<InspectReply>(subjects.inspect(agentId), { taskId }, 5000);
    expect(reply.ok).toBe(true);
    if (!reply.ok) return;
    const byName = Object.fromEntries(reply.processes.map((p) => [p.name, p]));
    expect(byName.fetch).toMatchObject({ state: "SUCCESS", runs: 1, exitCode: 0, pid: null });
    expect(byName.serve).toMatchObject({ state: "RUNNING", runs: 1, exitCode: null });
    expect(byName.serve!.pid).toBeGreaterThan(0);
    expect(byName.cleanup).toMatchObject({ state: "WAITING", runs: 0, final: true });
    // The same through the API (roost task status asks the leader, which asks the agent).
    const api = await apiRequest<TaskStatusReply>(c!.bus, "task.status", { taskId });
    expect(api.ok).toBe(true);
    if (api.ok) {
      expect(api.value).toMatchObject({ taskId, state: "RUNNING", agentId, phase: "main", agentError: null });
      expect(api.value.processes!.map((p) => [p.name, p.state])).toEqual([
        ["serve", "RUNNING"],
        ["fetch", "SUCCESS"],
        ["cleanup", "WAITING"],
      ]);
    }
    const missing = await apiRequest(c!.bus, "task.status", { taskId: "no-such-task" });
    expect(missing).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
    // Garbage gets the field and the rule, and changes nothing.
    const bad = await c!.bus.request<InspectReply>(subjects.inspect(agentId), { taskId: 5 }, 5000);
    expect(bad).toMatchObject({ ok: false });
    expect((bad as { error: string }).error).toMatch(/taskId/);

    await killJob(job, taskId);
    expect(readFileSync(join(sandbox, "order.log"), "utf8")).toBe("fetch\nserve\ncleanup\n");
    // Each process has its own output files.
    for (const p of ["serve", "fetch", "cleanup"]) expect(existsSync(join(sandbox, `${p}.stdout`))).toBe(true);
  });
});

const probe = createIsolator({ agent: `probe-${process.pid}` });
const cgroups = probe.info;
probe.close();

describe(`resource isolation${cgroups.mode === "none" ? ` (memory test skipped: ${cgroups.detail})` : ` (${cgroups.mode})`}`, () => {
  it.skipIf(cgroups.mode === "none")("a task that allocates past its ramMb ends FAILED with the memory reason", async () => {
    c = await startCluster({ agents: 1, agent: (i) => ({ isolator: createIsolator({ agent: `svc-test-${process.pid}-${i}` }) }) });
    await c.scheduler.intake.create({
      spec: spec("hog", {
        resources: { cpus: 0.1, ramMb: 32, diskMb: 64 },
        processes: [{ name: "main", cmdline: `${process.execPath} -e "const a=[];for(;;)a.push(Buffer.alloc(8<<20,1))"` }],
      }),
    });
    const job = "www-data/devel/hog";
    await waitFor(c.scheduler, () => instance(job)?.state === "FAILED", "FAILED", 30_000);
    const failed = (await history(instance(job).taskId)).at(-1)!;
    expect(failed.reason).toContain("memory limit exceeded (32 MiB)");
    const info = c.scheduler.state.agents.get(c.agents[0]!.agentId as never)!;
    expect(info.isolation?.mode).toBe(cgroups.mode);
  });

  it("a sandbox over its diskMb ends the task FAILED with the reason", async () => {
    c = await startCluster({ agents: 1, agent: () => ({ diskCheckMs: 200 }) });
    await c.scheduler.intake.create({
      spec: spec("filler", {
        resources: { cpus: 0.1, ramMb: 64, diskMb: 1 },
        processes: [{ name: "main", cmdline: "head -c 3000000 /dev/urandom > blob; exec sleep 1000" }],
      }),
    });
    const job = "www-data/devel/filler";
    await waitFor(c.scheduler, () => instance(job)?.state === "FAILED", "FAILED");
    const failed = (await history(instance(job).taskId)).at(-1)!;
    expect(failed.reason).toMatch(/disk limit exceeded: the sandbox uses more than \d+ MiB, over its diskMb of 1 MiB/);
    // An agent without isolation says so in its registration (roost cluster status shows it).
    expect(c.scheduler.state.agents.get(c.agents[0]!.agentId as never)!.isolation?.mode).toBe("none");
  });
});

describe("an agent killed -9 while a task's health checks run", () => {
  it("a restarted agent re-attaches and goes on checking: the task becomes RUNNING, its process never restarted", async () => {
    c = await startCluster({ agents: 1 });
    await c.scheduler.intake.create({
      spec: spec("survivor", {
        service: true,
        processes: [{ name: "server", cmdline: svcCmd({ OK_AFTER_MS: "1500" }) }],
        healthCheck: { initialIntervalSecs: 10, intervalSecs: 0.2 },
      }),
    });
    const job = "www-data/devel/survivor";
    await waitFor(c.scheduler, () => instance(job)?.state === "STARTING", "STARTING");
    const taskId = instance(job).taskId;
    const sandbox = sandboxOf(taskId);
    await waitForFile(join(sandbox, "events.log"));
    const first = c.agents[0]!;
    first.abandon(); // as kill -9 would: its processes and checkpoint are left as they are
    const known = c.scheduler.state.agents.get(first.agentId as never)!;
    const second = new Agent({
      bus: c.bus,
      agentId: first.agentId,
      host: known.host,
      attributes: known.attributes,
      resources: known.resources,
      workDir: join(c.dir, first.agentId),
      bootId: known.bootId,
      graceMs: 1000,
      statusRetryMs: 50,
    });
    c.agents[0] = second;
    await second.start();
    expect(second.recovery?.adopted).toEqual([taskId]);
    await waitFor(c.scheduler, () => task(taskId).state === "RUNNING", "RUNNING after the agent came back");
    expect((await history(taskId)).at(-1)!.reason).toMatch(/healthy after/);
    // The same process all along: it started listening once.
    expect(serviceEvents(sandbox).filter((l) => l === "listening")).toHaveLength(1);
  });
});

describe("roost task status never passes on what an agent should not say", () => {
  const base = { taskId: "t-1", job: "www-data/devel/x", instance: 0, state: "RUNNING", host: "h", agentId: "agent-1" };
  it.each([
    [null, /agent agent-1: an answer it could not read/],
    ["garbage", /an answer it could not read/],
    [{ ok: false, error: "does not run task t-1" }, /agent agent-1: does not run task t-1/],
    [
      { ok: true, processes: "lots", phase: "main", killStep: null, health: null, isolation: "none", memoryBytes: null },
      /answered what no agent may: processes/,
    ],
    [
      {
        ok: true,
        processes: [{ name: "a", state: "RUNNING", runs: -1.5, failures: 0, exitCode: null, pid: 1, final: false }],
        phase: "main",
        killStep: null,
        health: null,
        isolation: "none",
        memoryBytes: null,
      },
      /answered what no agent may: processes\[0\]\.runs/,
    ],
  ])("%j → processes unknown, and why", (reply, why) => {
    const s = taskStatusFrom(base, "agent-1", reply);
    expect(s.processes).toBeNull();
    expect(s.agentError).toMatch(why);
    expect(s).toMatchObject(base);
  });
});
