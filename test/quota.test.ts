// Tiers and production quota (Aurora's TierManager and QuotaManager), through a real Scheduler on the
// in-memory log and bus: job.create and job.add are quota-checked for production jobs,
// quota.set never goes below usage, killing production instances frees quota, and every
// refusal names what is wrong and appends nothing.

import { afterEach, describe, expect, it } from "vitest";
import { apiRequest } from "./support/api.js";
import { makeEnvelope, type AnyEnvelope } from "../src/eventlog/envelope.js";
import type { EventPayloads, EventType } from "../src/domain/events.js";
import { isProduction, quotaCheck, quotaReport, roleUsage, TIERS } from "../src/quota/quota.js";
import { foldRecord } from "../src/replay/fold.js";
import { jobStatus } from "../src/replay/queries.js";
import { ClusterState } from "../src/replay/state.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { TERMINAL_STATES } from "../src/statemachines/taskStates.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";
import { asAgentId, asJobKey, asTaskId } from "../src/domain/types.js";

let c: TestCluster | null = null;
afterEach(async () => {
  await c?.stop();
  c = null;
});

const spec = (name: string, over: Record<string, unknown> = {}) =>
  testSpec(name, over, { environment: "prod", tier: "preferred", service: true });

const api = <T>(op: string, data: unknown) => apiRequest<T>(c!.bus, op, data);
const states = (job: string) => jobStatus(c!.scheduler.state, job)!.instances.map((i) => i.state);

/** Expect a request to be refused with `error`, and the log to be unchanged. */
async function refused(p: Promise<unknown>, error: RegExp | string): Promise<string> {
  const before = c!.scheduler.state.seq;
  let message = "";
  await p.then(
    () => expect.fail("the request was accepted"),
    (err: Error) => (message = err.message),
  );
  if (typeof error === "string") expect(message).toBe(error);
  else expect(message).toMatch(error);
  expect(c!.scheduler.state.seq).toBe(before);
  return message;
}

describe("tiers", () => {
  it("preferred is production; preemptible (the default) and revocable are not", () => {
    expect(TIERS).toEqual({
      preferred: { preemptible: false, revocable: false },
      preemptible: { preemptible: true, revocable: false },
      revocable: { preemptible: true, revocable: true },
    });
    expect(isProduction(validateJobSpec(spec("a")).task)).toBe(true);
    expect(isProduction(validateJobSpec(spec("a", { tier: undefined })).task)).toBe(false);
    expect(isProduction(validateJobSpec(spec("a", { tier: "revocable" })).task)).toBe(false);
  });
});

describe("quota API (a scheduler, no agents)", () => {
  it("refuses a production job when the role has no quota, naming the shortfall, and appends nothing", async () => {
    c = await startCluster({ agents: 0 });
    const msg = await refused(
      c.scheduler.intake.create({ spec: spec("web", { instances: 2 }), user: "alice" }),
      "cannot create job www-data/prod/web (2 × cpus 0.1, ramMb 16, diskMb 16): role www-data is over its production quota: " +
        "needs cpus 0.2 more (quota 0, in use 0, asked 0.2), ramMb 32 more (quota 0, in use 0, asked 32), diskMb 32 more (quota 0, in use 0, asked 32); " +
        "role www-data has no quota set, which means zero until an administrator runs roost quota set www-data; " +
        "rule: production (tier preferred) jobs must fit the role's quota — see roost quota get www-data",
    );
    expect(msg).toContain("rule:");
    expect(c.scheduler.state.jobs.has(asJobKey("www-data/prod/web"))).toBe(false);
  });

  it("lets preemptible and revocable jobs ignore quota", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.create({ spec: spec("batch", { tier: "preemptible", instances: 5 }) });
    await c.scheduler.intake.create({ spec: spec("spare", { tier: "revocable" }) });
    await c.scheduler.intake.create({ spec: spec("default", { tier: undefined }) });
    expect(c.scheduler.state.jobs.size).toBe(3);
    expect(roleUsage(c.scheduler.state, "www-data")).toEqual({ cpus: 0, ramMb: 0, diskMb: 0, jobs: [] });
  });

  it("creates a production job within quota after quota.set, and reports quota, usage and headroom", async () => {
    c = await startCluster({ agents: 0 });
    const set = await c.scheduler.intake.setQuota({ role: "www-data", cpus: 1, ramMb: 256, diskMb: 512, user: "admin" });
    expect(set).toMatchObject({
      role: "www-data",
      quotaSet: true,
      quota: { cpus: 1, ramMb: 256, diskMb: 512 },
      usage: { cpus: 0, ramMb: 0, diskMb: 0 },
    });
    const last = (await c.log.get(c.scheduler.state.seq))!.events[0]!;
    expect(last.type).toBe("QuotaSet");
    expect(last.reason).toBe("quota of role www-data set by admin: cpus 1, ramMb 256, diskMb 512 (was none)");

    await c.scheduler.intake.create({ spec: spec("web", { instances: 3, resources: { cpus: 0.1, ramMb: 32, diskMb: 64 } }) });
    await c.scheduler.intake.create({ spec: spec("db", { resources: { cpus: 0.25, ramMb: 64, diskMb: 100 } }) });
    await c.scheduler.intake.create({ spec: spec("scratch", { tier: "preemptible", resources: { cpus: 5, ramMb: 5000, diskMb: 5000 } }) });

    const r = await api<ReturnType<typeof quotaReport>>("quota.get", { role: "www-data" });
    expect(r).toEqual({
      ok: true,
      value: {
        role: "www-data",
        quotaSet: true,
        quota: { cpus: 1, ramMb: 256, diskMb: 512 },
        usage: { cpus: 0.55, ramMb: 160, diskMb: 292 },
        headroom: { cpus: 0.45, ramMb: 96, diskMb: 220 },
        jobs: [
          { job: "www-data/prod/db", instances: 1, cpus: 0.25, ramMb: 64, diskMb: 100 },
          { job: "www-data/prod/web", instances: 3, cpus: 0.3, ramMb: 96, diskMb: 192 },
        ],
        seq: c.scheduler.state.seq,
      },
    });
    // Another role's quota is untouched, and zero.
    expect(quotaReport(c.scheduler.state, "other")).toMatchObject({ quotaSet: false, quota: { cpus: 0, ramMb: 0, diskMb: 0 }, jobs: [] });
  });

  it("refuses a production job over quota, naming only the resources that are short", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.setQuota({ role: "www-data", cpus: 1, ramMb: 256, diskMb: 256, user: "admin" });
    await c.scheduler.intake.create({ spec: spec("a", { instances: 2, resources: { cpus: 0.3, ramMb: 64, diskMb: 64 } }) });
    await refused(
      c.scheduler.intake.create({ spec: spec("b", { instances: 3, resources: { cpus: 0.2, ramMb: 64, diskMb: 32 } }) }),
      "cannot create job www-data/prod/b (3 × cpus 0.2, ramMb 64, diskMb 32): role www-data is over its production quota: " +
        "needs cpus 0.2 more (quota 1, in use 0.6, asked 0.6), ramMb 64 more (quota 256, in use 128, asked 192); " +
        "rule: production (tier preferred) jobs must fit the role's quota — see roost quota get www-data",
    );
    expect(c.scheduler.state.jobs.has(asJobKey("www-data/prod/b"))).toBe(false);
    // Exactly filling the quota is allowed.
    await c.scheduler.intake.create({ spec: spec("c", { instances: 2, resources: { cpus: 0.2, ramMb: 64, diskMb: 64 } }) });
    expect(quotaReport(c.scheduler.state, "www-data").headroom).toEqual({ cpus: 0, ramMb: 0, diskMb: 0 });
  });

  it("does not count a dedicated production job against quota (Aurora: production, non-dedicated)", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.create({ spec: spec("db", { constraints: { dedicated: "www-data/db" } }) });
    expect(roleUsage(c.scheduler.state, "www-data").jobs).toEqual([]);
  });

  it("lets only one of two concurrent production creates in when together they would overrun the quota", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.setQuota({ role: "www-data", cpus: 1, ramMb: 1024, diskMb: 1024 });
    const results = await Promise.allSettled([
      c.scheduler.intake.create({ spec: spec("x", { resources: { cpus: 0.6, ramMb: 16, diskMb: 16 } }) }),
      c.scheduler.intake.create({ spec: spec("y", { resources: { cpus: 0.6, ramMb: 16, diskMb: 16 } }) }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected"]);
    expect(((results[1] as PromiseRejectedResult).reason as Error).message).toMatch(
      /needs cpus 0\.2 more \(quota 1, in use 0\.6, asked 0\.6\)/,
    );
    expect(roleUsage(c.scheduler.state, "www-data").cpus).toBe(0.6);
  });

  it("refuses to set a quota below current usage, naming the resource and by how much", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.setQuota({ role: "www-data", cpus: 2, ramMb: 1024, diskMb: 1024, user: "admin" });
    await c.scheduler.intake.create({ spec: spec("web", { instances: 4, resources: { cpus: 0.3, ramMb: 100, diskMb: 10 } }) });
    await refused(
      c.scheduler.intake.setQuota({ role: "www-data", cpus: 1, ramMb: 300, diskMb: 1024, user: "admin" }),
      "cannot set the quota of role www-data below its production usage: cpus by 0.2 (asked 1, in use 1.2), ramMb by 100 (asked 300, in use 400); " +
        "rule: a quota cannot be set below what the role's production jobs use now — kill production instances first, see roost quota get www-data",
    );
    expect(c.scheduler.state.quotas.get("www-data")).toEqual({ cpus: 2, ramMb: 1024, diskMb: 1024 });
    // Setting it to exactly the usage is allowed.
    const r = await c.scheduler.intake.setQuota({ role: "www-data", cpus: 1.2, ramMb: 400, diskMb: 40, user: "admin" });
    expect(r.headroom).toEqual({ cpus: 0, ramMb: 0, diskMb: 0 });
  });

  it("refuses invalid quota.set requests, naming every bad field, and appends nothing", async () => {
    c = await startCluster({ agents: 0 });
    await refused(
      c.scheduler.intake.setQuota({ role: "www-data", cpus: -1, ramMb: 1.5, diskMb: 10 }),
      "invalid quota.set request (2 problems): cpus: must be a number from 0 to 1000000 (got -1); ramMb: must be an integer from 0 to 1099511627776 (got 1.5)",
    );
    await refused(
      c.scheduler.intake.setQuota({ role: "", cpus: 1, ramMb: 1, diskMb: -2 }),
      'invalid quota.set request (2 problems): role: must be a role name: letters, digits, "_", "." and "-", not starting with "." or "-", at most 64 characters (got ""); diskMb: must be an integer from 0 to 1099511627776 (got -2)',
    );
    await refused(
      c.scheduler.intake.setQuota({ role: "www-data", cpus: Infinity, ramMb: 1, diskMb: 1 }),
      /cpus: must be a number from 0 to 1000000 \(got Infinity\)/,
    );
    await refused(
      c.scheduler.intake.setQuota({ role: "www data", cpus: 1, ramMb: 1, diskMb: 1 }),
      /^invalid quota\.set request \(1 problem\): role: must be a role name/,
    );
    // Over the bus, the same refusal is a {ok: false, error} reply.
    const r = await api("quota.set", { role: "www-data", cpus: "many", ramMb: 1, diskMb: 1 });
    expect(r).toEqual({
      ok: false,
      error: {
        code: "INVALID_REQUEST",
        field: "cpus",
        message: 'invalid quota.set request (1 problem): cpus: must be a number from 0 to 1000000 (got "many")',
      },
    });
    expect(await api("quota.get", {})).toEqual({
      ok: false,
      error: { code: "INVALID_REQUEST", field: "role", message: "invalid quota.get request (1 problem): role: is required" },
    });
    expect(c.scheduler.state.quotas.size).toBe(0);
  });

  it("refuses invalid job.add requests, naming the field and rule, and appends nothing", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.create({ spec: spec("web", { tier: "preemptible", instances: 3998 }) });
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/nope", count: 1 }),
      "job www-data/prod/nope does not exist; rule: instances can only be added to an existing job — create it first",
    );
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: 0 }),
      "invalid job.add request (1 problem): count: must be an integer from 1 to 4000 (got 0)",
    );
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: 1.5 }),
      "invalid job.add request (1 problem): count: must be an integer from 1 to 4000 (got 1.5)",
    );
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: "2" as never }),
      'invalid job.add request (1 problem): count: must be an integer from 1 to 4000 (got "2")',
    );
    await refused(
      c.scheduler.intake.add({ job: "web", count: 1 }),
      'invalid job.add request (1 problem): job: must be a job key ROLE/ENV/NAME (three parts of 1 to 64 characters, separated by /) (got "web")',
    );
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: 1, user: "eve\u0007" }),
      'invalid job.add request (1 problem): user: must be 1 to 64 printable ASCII characters, not starting or ending with a space (got "eve\\u0007")',
    );
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: 3 }),
      "job www-data/prod/web has 3998 instances; adding 3 would make 4001; rule: at most 4000 instances per job",
    );
    const r = await c.scheduler.intake.add({ job: "www-data/prod/web", count: 2 });
    expect(r.instances).toEqual([3998, 3999]);
  });

  it("quota-checks job.add for production jobs", async () => {
    c = await startCluster({ agents: 0 });
    await c.scheduler.intake.setQuota({ role: "www-data", cpus: 0.5, ramMb: 1024, diskMb: 1024 });
    await c.scheduler.intake.create({ spec: spec("web", { instances: 2 }) });
    await refused(
      c.scheduler.intake.add({ job: "www-data/prod/web", count: 4, user: "bob" }),
      "cannot add 4 instance(s) to job www-data/prod/web (4 × cpus 0.1, ramMb 16, diskMb 16): role www-data is over its production quota: " +
        "needs cpus 0.1 more (quota 0.5, in use 0.2, asked 0.4); rule: production (tier preferred) jobs must fit the role's quota — see roost quota get www-data",
    );
    expect(c.scheduler.state.jobs.get(asJobKey("www-data/prod/web"))!.config.instances).toBe(2);
    const r = await c.scheduler.intake.add({ job: "www-data/prod/web", count: 3, user: "bob" });
    expect(r).toMatchObject({ job: "www-data/prod/web", instances: [2, 3, 4] });
    expect(r.taskIds).toHaveLength(3);
    expect(roleUsage(c.scheduler.state, "www-data")).toMatchObject({ cpus: 0.5, ramMb: 80, diskMb: 80 });
    // One record: JobInstancesAdded and its tasks, with reasons naming the user.
    const rec = (await c.log.get(r.seq))!;
    expect(rec.events.map((e) => e.type)).toEqual(["JobInstancesAdded", "TaskCreated", "TaskCreated", "TaskCreated"]);
    expect(rec.events[0]!.reason).toBe("3 instance(s) added to job www-data/prod/web by bob: instances 2-4");
    expect(rec.events[1]!.reason).toBe("instance 2 added to job www-data/prod/web (added by bob)");
    const job = c.scheduler.state.jobs.get(asJobKey("www-data/prod/web"))!;
    expect(job.config.instances).toBe(5);
    expect(r.taskIds.map((id) => c!.scheduler.state.tasks.get(id)!)).toMatchObject([
      { instance: 2, state: "PENDING", configVersion: job.configVersion },
      { instance: 3, state: "PENDING" },
      { instance: 4, state: "PENDING" },
    ]);
  });
});

describe("quota with agents running tasks", () => {
  it("job.add adds instances that get placed and run", async () => {
    c = await startCluster({ agents: 2 });
    await c.scheduler.intake.create({ spec: spec("web", { tier: "preemptible" }) });
    await waitFor(c.scheduler, () => states("www-data/prod/web").every((s) => s === "RUNNING"), "instance 0 RUNNING");
    const r = await api<{ job: string; instances: number[]; taskIds: string[]; seq: number }>("job.add", {
      job: "www-data/prod/web",
      count: 2,
      user: "carol",
    });
    expect(r.ok && r.value.instances).toEqual([1, 2]);
    await waitFor(
      c.scheduler,
      () => {
        const st = states("www-data/prod/web");
        return st.length === 3 && st.every((s) => s === "RUNNING");
      },
      "3 instances RUNNING",
    );
    expect(jobStatus(c.scheduler.state, "www-data/prod/web")!.configuredInstances).toBe(3);
  });

  it("killing production instances frees quota once their tasks are terminal", async () => {
    c = await startCluster({ agents: 2 });
    await c.scheduler.intake.setQuota({ role: "www-data", cpus: 0.3, ramMb: 48, diskMb: 48 });
    await c.scheduler.intake.create({ spec: spec("web", { instances: 3 }) });
    await waitFor(c.scheduler, () => states("www-data/prod/web").every((s) => s === "RUNNING"), "3 RUNNING");
    expect(roleUsage(c.scheduler.state, "www-data")).toMatchObject({ cpus: 0.3, ramMb: 48, diskMb: 48 });
    await refused(c.scheduler.intake.create({ spec: spec("other") }), /needs cpus 0\.1 more \(quota 0\.3, in use 0\.3, asked 0\.1\)/);

    await c.scheduler.intake.kill({ job: "www-data/prod/web", instances: [1, 2], user: "dave" });
    await waitFor(
      c.scheduler,
      () => {
        const st = states("www-data/prod/web");
        return st[0] === "RUNNING" && TERMINAL_STATES.has(st[1]!) && TERMINAL_STATES.has(st[2]!);
      },
      "instances 1 and 2 terminal",
    );
    expect(quotaReport(c.scheduler.state, "www-data")).toMatchObject({
      usage: { cpus: 0.1, ramMb: 16, diskMb: 16 },
      headroom: { cpus: 0.2, ramMb: 32, diskMb: 32 },
      jobs: [{ job: "www-data/prod/web", instances: 1 }],
    });
    await c.scheduler.intake.create({ spec: spec("other", { instances: 2 }) });
    await waitFor(c.scheduler, () => states("www-data/prod/other").every((s) => s === "RUNNING"), "other RUNNING");
    expect(roleUsage(c.scheduler.state, "www-data").cpus).toBe(0.3);
  });
});

describe("roleUsage over a folded log", () => {
  let seq = 0;
  const ev = <T extends EventType>(type: T, data: EventPayloads[T]) =>
    makeEnvelope(type, data, { epoch: 1, ts: 1000 + seq, corr: "t", reason: "test" }) as AnyEnvelope;
  const fold = (state: ClusterState, ...events: AnyEnvelope[]) => foldRecord(state, ++seq, events);

  it("counts an instance whose task ended but is owed a replacement, and not one that is killed", () => {
    seq = 0;
    const s = new ClusterState();
    const job = validateJobSpec(spec("svc", { instances: 2, resources: { cpus: 0.5, ramMb: 10, diskMb: 20 } }));
    fold(
      s,
      ev("QuotaSet", { role: "www-data", cpus: 1, ramMb: 20, diskMb: 40, user: "admin" }),
      ev("JobCreated", { job, configVersion: 1 }),
      ev("TaskCreated", {
        taskId: asTaskId("t0"),
        job: asJobKey("www-data/prod/svc"),
        instance: 0,
        configVersion: 1,
        ancestorId: null,
        failureCount: 0,
        state: "PENDING",
      }),
      ev("TaskCreated", {
        taskId: asTaskId("t1"),
        job: asJobKey("www-data/prod/svc"),
        instance: 1,
        configVersion: 1,
        ancestorId: null,
        failureCount: 0,
        state: "PENDING",
      }),
    );
    expect(roleUsage(s, "www-data")).toEqual({
      cpus: 1,
      ramMb: 20,
      diskMb: 40,
      jobs: [{ job: "www-data/prod/svc", instances: 2, cpus: 1, ramMb: 20, diskMb: 40 }],
    });
    // Instance 0's task ends and waits for its replacement: still counted (the replacement will need it).
    const t0 = s.tasks.get(asTaskId("t0"))!;
    t0.state = "FAILED";
    t0.rescheduleWanted = true;
    expect(roleUsage(s, "www-data").cpus).toBe(1);
    expect(quotaCheck(s, "www-data", { cpus: 0.5, ramMb: 10, diskMb: 20 })).toMatch(
      /^role www-data is over its production quota: needs cpus 0\.5 more/,
    );
    // Killing instance 1 frees its share at once, while its task is still KILLING on its agent.
    fold(
      s,
      ev("AgentRegistered", {
        agentId: asAgentId("a1"),
        host: "h1",
        attributes: {},
        resources: { cpus: 4, ramMb: 1024, diskMb: 1024, ports: [] },
        bootId: "b1",
      }),
      ev("TaskAssigned", { taskId: asTaskId("t1"), agentId: asAgentId("a1"), host: "h1", ports: {} }),
    );
    expect(s.tasks.get(asTaskId("t1"))!.state).toBe("ASSIGNED");
    expect(roleUsage(s, "www-data").cpus).toBe(1);
    fold(s, ev("JobKillRequested", { job: asJobKey("www-data/prod/svc"), instances: [1], user: "dave" }));
    expect(s.tasks.get(asTaskId("t1"))!.state).toBe("KILLING");
    expect(roleUsage(s, "www-data")).toMatchObject({ cpus: 0.5, ramMb: 10, diskMb: 20 });
    expect(quotaCheck(s, "www-data", { cpus: 0.5, ramMb: 10, diskMb: 20 })).toBeNull();
  });
});
