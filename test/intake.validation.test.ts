// What the leader takes from outside and what it writes: every API request is checked against its
// schema and refused naming the field and the rule (never "internal error"), the scheduler's
// allowed environments are enforced with the pattern quoted, and the leader never appends an
// event its own fold would reject, even when a record on the wire overtakes its decision.

import { afterEach, describe, expect, it } from "vitest";
import { RefusedEventError } from "../src/actors/scheduler.js";
import { apiRequest, errorOf } from "./support/api.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { jobStatus } from "../src/replay/queries.js";
import { TERMINAL_STATES } from "../src/statemachines/taskStates.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";
import { asAgentId, asJobKey, asTaskId } from "../src/domain/types.js";

let c: TestCluster | null = null;
afterEach(async () => {
  await c?.stop();
  c = null;
});

const api = <T>(op: string, data: unknown) => apiRequest<T>(c!.bus, op, data);

describe("API requests are checked before anything is decided", () => {
  it("names the field and the rule for caller mistakes, and appends nothing", async () => {
    c = await startCluster({ agents: 0 });
    const before = c.scheduler.state.seq;
    const cases: Array<[string, unknown, RegExp]> = [
      ["job.status", { job: "web" }, /^invalid job\.status request \(1 problem\): job: must be a job key ROLE\/ENV\/NAME/],
      ["job.status", { job: 42 }, /job: must be a job key/],
      ["job.kill", { job: "a/b/c", instances: [1, -1] }, /instances: must be a list of instance ids/],
      ["job.kill", { job: "a/b/c", extra: 1 }, /extra: is not a known field \(known: job, instances, user, key\)/],
      ["job.create", { spec: testSpec("u"), user: "x".repeat(65) }, /user: must be 1 to 64 printable ASCII characters/],
      ["job.create", { spec: testSpec("u"), user: "line\nbreak" }, /user: must be 1 to 64 printable ASCII characters/],
      ["job.create", { spec: testSpec("u"), user: { name: "eve" } }, /user: must be 1 to 64 printable ASCII characters.*\(got a mapping\)/],
      ["job.create", { spec: testSpec("u", { role: ".." }) }, /role: must be .*not starting with "\." or "-"/],
      ["job.create", { spec: testSpec("u", { updateConfig: { batchSize: 0 } }) }, /updateConfig\.batchSize: must be greater than 0/],
      ["job.create", { spec: testSpec("u", { cronSchedule: "0 9 * * 7" }) }, /cronSchedule: day of week: 7 is not Sunday here/],
      [
        "job.create",
        { spec: testSpec("u", { cronSchedule: "0 9 * * 1" }) },
        /cronSchedule: rule: a cron job is scheduled with `roost cron schedule`/,
      ],
      ["task.history", { taskId: "" }, /taskId: must be a task id/],
      ["quota.get", "a string", /must be a mapping/],
      ["job.list", [1, 2], /must be an empty mapping/],
    ];
    for (const [op, data, error] of cases) {
      const r = await api(op, data);
      expect(r.ok, `${op} ${JSON.stringify(data)}`).toBe(false);
      const message = errorOf(r);
      expect(r.ok ? "" : r.error.code, op).toBe("INVALID_REQUEST");
      expect(message, op).toMatch(error);
      expect(message).not.toMatch(/internal error/);
    }
    expect(c.scheduler.state.seq).toBe(before);
  });

  it("allows Aurora's environments by default, refuses others quoting the pattern, and takes --allowed-environments", async () => {
    c = await startCluster({ agents: 0 });
    const r = await api("job.create", { spec: testSpec("web", { environment: "production" }), user: "t" });
    expect(r).toEqual({
      ok: false,
      error: {
        code: "INVALID_REQUEST",
        field: "spec.environment",
        message:
          'invalid job spec (1 problem):\n  environment: must match the environments this scheduler allows, ^(prod|devel|test|staging\\d*)$ (got "production")',
      },
    });
    expect((await api("job.create", { spec: testSpec("web", { environment: "prod" }), user: "t" })).ok).toBe(true);
    await c.stop();
    c = await startCluster({ agents: 0, allowedEnvironments: /^(production|qa)$/ });
    expect((await api("job.create", { spec: testSpec("web", { environment: "production" }), user: "t" })).ok).toBe(true);
    const refused = await api("job.create", { spec: testSpec("web2", { environment: "prod" }), user: "t" });
    expect(errorOf(refused)).toContain("^(production|qa)$");
  });
});

describe("the leader's actors", () => {
  it("each owns a mailbox; cluster.info shows each one's depth and what it is handling", async () => {
    c = await startCluster({ agents: 1 });
    const info = await api<{ actors: Array<{ name: string; depth: number; handling: string | null; handled: number; failed: number }> }>(
      "cluster.info",
      {},
    );
    expect(info.ok).toBe(true);
    const actors = info.ok ? info.value.actors : [];
    expect(actors.map((a) => a.name).sort()).toEqual(
      [
        "agentHealth",
        "agentRegistry",
        "jobIntake",
        "launcher",
        "placement",
        "preemptor",
        "reads",
        "rescheduler",
        "statusIngest",
        "timers",
        "updater",
        "cron",
        "maintenance",
      ].sort(),
    );
    // The reads actor is answering this very request.
    expect(actors.find((a) => a.name === "reads")).toMatchObject({ handling: "cluster.info", depth: 0 });
    expect(actors.find((a) => a.name === "agentRegistry")!.handled).toBeGreaterThan(0);
    expect(actors.every((a) => a.failed === 0)).toBe(true);
  });

  it("a term that ends stops its actors: what was queued fails, and later messages are refused", async () => {
    c = await startCluster({ agents: 0 });
    const intake = c.scheduler.intake;
    await c.scheduler.stop();
    await expect(intake.create({ spec: testSpec("late"), user: "t" })).rejects.toThrow(/not the leader|has stopped/);
    expect(() => c!.scheduler.intake).toThrow(/not the leader/);
  });
});

describe("the leader never appends an event its fold would reject", () => {
  it("refuses a batch naming a task, job or agent that does not exist, and appends nothing", async () => {
    const log = new MemoryLog();
    c = await startCluster({ agents: 1, log, bus: new MemoryBus() });
    const s = c.scheduler;
    const before = log.length;
    const bad = [
      s.event("TaskStateChanged", { taskId: asTaskId("nobody"), to: "RUNNING" }, "test"),
      s.event("TaskAssigned", { taskId: asTaskId("nobody"), agentId: asAgentId("agent-1"), host: "host-1", ports: {} }, "test"),
      s.event("JobKillRequested", { job: asJobKey("no/such/job"), instances: null, user: "t" }, "test"),
      s.event("AgentStateChanged", { agentId: asAgentId("nobody"), to: "UNREACHABLE" }, "test"),
      // The wrong shape: what only a bug could build.
      s.event("TaskStateChanged", { taskId: asTaskId("x"), to: "BOGUS" as never }, "test"),
    ];
    for (const e of bad) await expect(s.commit([e]), e.type).rejects.toBeInstanceOf(RefusedEventError);
    expect(log.length).toBe(before);
    expect(s.state.anomalies).toEqual([]);
    expect(s.leading).toBe(true);
  });

  it("never creates a second live task for an instance", async () => {
    c = await startCluster({ agents: 0 });
    const s = c.scheduler;
    await s.intake.create({ spec: testSpec("one"), user: "t" });
    const job = s.state.jobs.get(asJobKey("www-data/devel/one"))!;
    const e = s.event(
      "TaskCreated",
      { taskId: asTaskId("second-copy"), job: job.key, instance: 0, configVersion: 1, ancestorId: null, failureCount: 0, state: "PENDING" },
      "test",
    );
    await expect(s.commit([e])).rejects.toThrow(/instance 0 of job www-data\/devel\/one already has a live task/);
  });

  it("checks a batch with what the batch itself creates (a job and its tasks in one record)", async () => {
    c = await startCluster({ agents: 0 });
    const r = await c.scheduler.intake.create({ spec: testSpec("batch", { instances: 3 }), user: "t" });
    expect(r.taskIds).toHaveLength(3);
    expect(c.scheduler.state.anomalies).toEqual([]);
  });

  it("drops a reschedule that a kill on the wire overtook: a killed instance does not come back", async () => {
    c = await startCluster({ agents: 1 });
    const s = c.scheduler;
    await s.intake.create({ spec: testSpec("svc", { service: true }), user: "t" });
    const taskId = jobStatus(s.state, "www-data/devel/svc")!.instances[0]!.taskId;
    await waitFor(s, (st) => st.tasks.get(taskId)?.state === "RUNNING", "RUNNING");
    const t = s.state.tasks.get(taskId)!;
    // It fails: the fold asks for a reschedule, which the Rescheduler decides on the next turn.
    await s.statusIngest.handle({ agentId: t.agentId, update: { taskId, seq: t.agentSeq + 100, state: "FAILED", exitCode: 1, ts: 1 } });
    // Before it does, the user kills the job: the kill is appended first.
    await s.intake.kill({ job: "www-data/devel/svc", instances: null, user: "t" });
    await waitFor(s, () => !s.rescheduler.busy, "the reschedule decided");
    const job = s.state.jobs.get(asJobKey("www-data/devel/svc"))!;
    expect(job.instances.get(0)).toBe(taskId); // no successor was created
    expect([...s.state.tasks.values()].filter((x) => x.job === job.key && !TERMINAL_STATES.has(x.state))).toEqual([]);
    expect(s.state.anomalies).toEqual([]);
  });

  it("drops a placement that a kill on the wire overtook, instead of logging an anomaly", async () => {
    // One agent too small for the task: it stays PENDING, so placement never assigns it itself.
    c = await startCluster({ agents: 1, ramMb: 8 });
    const s = c.scheduler;
    await s.intake.create({ spec: testSpec("victim"), user: "t" });
    const taskId = jobStatus(s.state, "www-data/devel/victim")!.instances[0]!.taskId;
    await waitFor(s, (st) => st.tasks.get(taskId)?.state === "PENDING", "PENDING");
    const assign = () =>
      s.event(
        "TaskAssigned",
        { taskId, agentId: asAgentId("agent-1"), host: "host-1", ports: {} },
        "a decision made while the task was PENDING",
      );
    // The kill is appended first and is still on the wire when the placement is committed.
    const kill = s.intake.kill({ job: "www-data/devel/victim", instances: null, user: "t" });
    const placed = s.commit([assign()], { recheck: true });
    await Promise.all([kill, placed]);
    expect(s.state.tasks.get(taskId)!.state).not.toBe("ASSIGNED");
    expect(s.state.anomalies).toEqual([]);
  });
});
