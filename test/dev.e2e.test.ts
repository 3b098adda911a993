// The dev cluster end to end, as a new user would drive it: `roost dev` (real nats-server,
// scheduler and agents as child processes), then `roost job …` commands. Task processes are
// real; we watch the log with `roost log tail --follow --json` instead of sleeping.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive } from "../src/agent/proc.js";
import type { JobStatus, TaskHistory } from "../src/replay/queries.js";
import { RoostProcess, roost, roostJson } from "./support/roost.js";

let dir: string;
let dev: RoostProcess;
let tail: RoostProcess;

const HELLO = `
role: www-data
environment: devel
name: hello
instances: 3
service: true
resources: { cpus: 0.1, ramMb: 64, diskMb: 64, ports: [http] }
processes:
  - name: server
    cmdline: node -e "require('http').createServer((q,s)=>s.end('hello from '+process.env.ROOST_TASK_ID)).listen({{ports.http}})"
`;

const BATCH = `
role: www-data
environment: devel
name: batch
resources: { cpus: 0.1, ramMb: 16, diskMb: 16 }
processes: [{ name: main, cmdline: "echo working; exit 0" }]
`;

/** The next TaskStateChanged in the log for `taskId` that reaches `state`. */
const stateEvent = (taskId: string | null, state: string) => (line: string) => {
  const e = JSON.parse(line);
  return e.type === "TaskStateChanged" && (taskId === null || e.data.taskId === taskId) && e.data.to === state;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-dev-"));
  writeFileSync(join(dir, "hello.yaml"), HELLO);
  writeFileSync(join(dir, "batch.yaml"), BATCH);
  dev = new RoostProcess(["dev", "--agents", "3", "--json"], dir);
  await dev.until((l) => l.includes("clusterFile"), "the dev cluster to be ready", 60_000);
  tail = new RoostProcess(["log", "tail", "--follow", "--json"], dir);
}, 90_000);

afterAll(async () => {
  await tail?.stop();
  expect(await dev.stop("SIGINT")).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("roost dev, end to end", () => {
  let status: JobStatus;

  it("runs a 3-instance service on distinct ports, and each instance answers", async () => {
    const created = await roostJson<{ taskIds: string[] }>(["job", "create", "hello.yaml"], dir);
    expect(created.taskIds).toHaveLength(3);
    for (const t of created.taskIds) await tail.until(stateEvent(t, "RUNNING"), `${t} RUNNING`);
    status = await roostJson<JobStatus>(["job", "status", "www-data/devel/hello"], dir);
    expect(status.instances.map((i) => i.state)).toEqual(["RUNNING", "RUNNING", "RUNNING"]);
    const ports = status.instances.map((i) => i.ports.http);
    expect(new Set(ports).size).toBe(3);
    for (const i of status.instances) {
      expect(i).toMatchObject({
        instance: expect.any(Number),
        taskId: expect.any(String),
        host: expect.any(String),
        reason: expect.any(String),
      });
      // The server may take a moment to listen after RUNNING; retry the connection briefly.
      let body = "";
      for (let attempt = 0; attempt < 50 && !body; attempt++) {
        body = await fetch(`http://127.0.0.1:${i.ports.http}/`).then(
          (r) => r.text(),
          () => "",
        );
        if (!body) await new Promise((r) => setTimeout(r, 100));
      }
      expect(body).toBe(`hello from ${i.taskId}`);
    }
  }, 60_000);

  it("replaces an instance whose process is killed by hand", async () => {
    const victim = status.instances[0]!;
    const h = await roostJson<TaskHistory>(["task", "history", victim.taskId], dir);
    const pid = Number(/pids (\d+)/.exec(h.events.find((e) => e.state === "RUNNING")!.reason!)![1]);
    process.kill(pid, "SIGKILL");
    await tail.until(stateEvent(victim.taskId, "FAILED"), "the victim FAILED");
    const line = await tail.until((l) => {
      const e = JSON.parse(l);
      return e.type === "TaskCreated" && e.data.ancestorId === victim.taskId;
    }, "a replacement task");
    const replacement = JSON.parse(line).data.taskId as string;
    await tail.until(stateEvent(replacement, "RUNNING"), "the replacement RUNNING");
    const hist = await roostJson<TaskHistory>(["task", "history", replacement], dir);
    expect(hist.ancestorId).toBe(victim.taskId);
    // It ran for well under 5 minutes, so it is flapping: the replacement serves a flap penalty first.
    expect(hist.events.map((e) => e.state)).toEqual(["THROTTLED", "PENDING", "ASSIGNED", "STARTING", "RUNNING"]);
    expect(hist.events[0]!.reason).toMatch(/flapping \(it ran .* < 5m\): throttled for 2s/);
    expect(hist.events[1]!.reason).toMatch(/flap penalty of 2s served/);
    expect(hist.events.every((e) => (e.reason ?? "").length > 0)).toBe(true);
  }, 60_000);

  it("runs an HTTP gateway and names it in cluster.json; a job created with --key twice is created once", async () => {
    const file = JSON.parse(readFileSync(join(dir, ".roost", "cluster.json"), "utf8")) as { http?: string };
    expect(file.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${file.http}/v1/jobs/www-data/devel/nope`);
    expect(res.status).toBe(404);
    const first = await roostJson<{ job: string; seq: number }>(["job", "create", "batch.yaml", "--key", "e2e-once"], dir);
    const again = await roostJson<{ job: string; seq: number }>(["job", "create", "batch.yaml", "--key", "e2e-once"], dir);
    expect(again).toEqual(first);
    const got = await roostJson<{ state: string; seq: number }>(["request", "get", "e2e-once", "--role", "www-data"], dir);
    expect(got).toMatchObject({ state: "done", seq: first.seq });
    await roost(["job", "kill", "www-data/devel/batch"], dir);
  }, 60_000);

  it("runs a batch job to FINISHED", async () => {
    const created = await roostJson<{ taskIds: string[] }>(["job", "create", "batch.yaml"], dir);
    await tail.until(stateEvent(created.taskIds[0]!, "FINISHED"), "the batch task FINISHED");
    const s = await roostJson<JobStatus>(["job", "status", "www-data/devel/batch"], dir);
    expect(s.instances[0]!.state).toBe("FINISHED");
  }, 60_000);

  it("roost events: a job's decoded events as JSON lines, filtered; nothing after the end; a bad --from is refused", async () => {
    const r = await roost(["events", "--job", "www-data/devel/batch", "--json"], dir);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; job: string; seq: number });
    expect(events[0]).toMatchObject({ type: "JobCreated", job: "www-data/devel/batch" });
    expect(events.every((e) => e.job === "www-data/devel/batch")).toBe(true);
    const types = await roost(["events", "--type", "AgentRegistered", "--json"], dir);
    const registered = types.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; agent: string });
    expect(new Set(registered.map((e) => e.type))).toEqual(new Set(["AgentRegistered"]));
    expect(new Set(registered.map((e) => e.agent))).toEqual(new Set(["agent-1", "agent-2", "agent-3"]));
    const none = await roost(["events", "--from", "2999-01-01T00:00:00Z"], dir);
    expect([none.code, none.stdout]).toEqual([0, ""]);
    const bad = await roost(["events", "--from", "yesterday"], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--from.*must be a log sequence/);
  }, 60_000);

  it("kills the service: every instance ends KILLED and no process is left", async () => {
    const before = await roostJson<JobStatus>(["job", "status", "www-data/devel/hello"], dir);
    const pids: number[] = [];
    for (const i of before.instances) {
      const h = await roostJson<TaskHistory>(["task", "history", i.taskId], dir);
      pids.push(Number(/pids (\d+)/.exec(h.events.find((e) => e.state === "RUNNING")!.reason!)![1]));
    }
    const r = await roostJson<{ status: JobStatus }>(["job", "kill", "www-data/devel/hello"], dir);
    expect(r.status.instances.map((i) => i.state)).toEqual(["KILLED", "KILLED", "KILLED"]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  }, 60_000);

  it("shows every step of a task's history with its reason, and the log as lines", async () => {
    const s = await roostJson<JobStatus>(["job", "status", "www-data/devel/hello"], dir);
    const h = await roost(["task", "history", s.instances[1]!.taskId], dir);
    expect(h.code).toBe(0);
    for (const state of ["PENDING", "ASSIGNED", "STARTING", "RUNNING", "KILLING", "KILLED"]) expect(h.stdout).toContain(state);
    expect(h.stdout).toMatch(/kill of job www-data\/devel\/hello requested by/);
    const log = await roost(["log", "tail", "--from", "1"], dir);
    expect(log.stdout).toMatch(/LeaderElected/);
    expect(log.stdout).toMatch(/JobKillRequested/);
  }, 60_000);

  it("refuses an invalid spec, naming the field and the rule", async () => {
    writeFileSync(join(dir, "bad.yaml"), BATCH.replace("ramMb: 16", "ramMb: -16"));
    const r = await roost(["job", "create", "bad.yaml"], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/resources\.ramMb/);
    expect(r.stderr).toMatch(/must be an integer from 1 to 4194304 \(got -16\)/);
  }, 30_000);
});

describe("roost dev, scheduling rules", () => {
  const examples = new URL("../examples/", import.meta.url).pathname;

  it("limit host=1: three instances on three agents; a fourth waits with the reason, and task why explains it", async () => {
    const created = await roostJson<{ taskIds: string[] }>(["job", "create", `${examples}one-per-host.yaml`], dir);
    for (const t of created.taskIds) await tail.until(stateEvent(t, "RUNNING"), `${t} RUNNING`);
    const s = await roostJson<JobStatus>(["job", "status", "www-data/devel/spread"], dir);
    expect(new Set(s.instances.map((i) => i.host)).size).toBe(3);
    const added = await roostJson<{ taskIds: string[] }>(["job", "add", "www-data/devel/spread", "1"], dir);
    let fourth = (await roostJson<JobStatus>(["job", "status", "www-data/devel/spread"], dir)).instances[3]!;
    for (let i = 0; i < 50 && fourth.reason !== "Limit not satisfied: host"; i++) {
      // The reason appears after the placement round that looked at it.
      await new Promise((r) => setTimeout(r, 100));
      fourth = (await roostJson<JobStatus>(["job", "status", "www-data/devel/spread"], dir)).instances[3]!;
    }
    expect(fourth).toMatchObject({ taskId: added.taskIds[0], state: "PENDING", reason: "Limit not satisfied: host" });
    const why = await roost(["task", "why", added.taskIds[0]!], dir);
    expect(why.stdout).toMatch(/none of 3 hosts can take it: Limit not satisfied: host/);
    expect(why.stdout).toMatch(/host host-\d already has 1 of the job's tasks \(limit 1\)/);
    await roostJson(["job", "kill", "www-data/devel/spread"], dir);
  }, 60_000);

  it("a full cell: production preempts preemptible work after the delay, with the reason logged", async () => {
    const filler = await roostJson<{ taskIds: string[] }>(["job", "create", `${examples}filler.yaml`], dir);
    for (const t of filler.taskIds) await tail.until(stateEvent(t, "RUNNING"), `${t} RUNNING`);
    const refused = await roost(["job", "create", `${examples}prod-service.yaml`], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/over its production quota/);
    await roostJson(["quota", "set", "www-data", "--cpus", "4", "--ram-mb", "4096", "--disk-mb", "1024"], dir);
    const prod = await roostJson<{ taskIds: string[] }>(["job", "create", `${examples}prod-service.yaml`], dir);
    const reserved = JSON.parse(await tail.until((l) => JSON.parse(l).type === "SlotReserved", "a held slot", 30_000));
    expect(reserved.data.taskId).toBe(prod.taskIds[0]);
    const victim = reserved.data.victims[0] as string;
    const preempting = JSON.parse(await tail.until(stateEvent(victim, "PREEMPTING"), "the victim PREEMPTING"));
    expect(preempting.reason).toMatch(/production \(tier preferred\) preempts preemptible \(tier preemptible\)/);
    await tail.until(stateEvent(victim, "KILLED"), "the victim KILLED");
    await tail.until(stateEvent(prod.taskIds[0]!, "RUNNING"), "production RUNNING", 30_000);
    const why = await roostJson<{ placement: { decision: { reserved?: boolean } } }>(["task", "why", prod.taskIds[0]!], dir);
    expect(why.placement.decision.reserved).toBe(true);
    await roostJson(["job", "kill", "www-data/prod/checkout"], dir);
    await roostJson(["job", "kill", "www-data/devel/filler"], dir);
  }, 90_000);
});
