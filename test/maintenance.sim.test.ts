// Host maintenance in the simulator: the real scheduler (its Maintenance actor on the leader's
// clock), simulated agents, virtual time. SLA-aware drains by a job's count and percentage
// policies (minRequiredInstances lowered through the policy), the one-down rule, non-production
// jobs drained unchecked, a denial and then the drain once a replacement has RUNNING long enough,
// a forced drain, DRAINED and back to NONE, a leader crash in the middle of a drain, a window that
// opens, drains and closes, refusals naming the field and the rule, the same command twice, and
// a coordinator over HTTP. Virtual time only, except the coordinator's real local HTTP server.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { LogEntry } from "../src/domain/events.js";
import { HistoryService } from "../src/history/service.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { Sim } from "../src/sim/sim.js";
import { testSpec } from "./support/specs.js";

const MIN = 60_000;
const POLICY = { minRequiredInstances: 2, hostMaintenancePollingIntervalMs: 10_000 };
const AGENTS = [{ count: 3, cpus: 4, ramMb: 4096, diskMb: 8192 }];

let sims: Sim[] = [];
let servers: Server[] = [];
afterEach(async () => {
  for (const s of sims) await s.stop();
  sims = [];
  for (const s of servers) await new Promise((r) => s.close(r));
  servers = [];
});

async function start(opts: Partial<Parameters<typeof Sim.start>[0]> = {}): Promise<Sim> {
  const sim = await Sim.start({ seed: 11, agents: AGENTS, policy: POLICY, ...opts });
  sims.push(sim);
  await sim.request("quota.set", { role: "www-data", cpus: 20, ramMb: 20_000, diskMb: 20_000 });
  return sim;
}

/** A production service of `instances`, all RUNNING, then `settleMs` of virtual time (so they count as active). */
async function service(sim: Sim, name: string, instances: number, over: Record<string, unknown> = {}, settleMs = 2 * MIN) {
  const { job } = await sim.createJob(testSpec(name, { tier: "preferred", service: true, instances, ...over }));
  await sim.runUntil((s) => runningOf(s, job).length === instances, MIN, `${job} running`);
  await sim.advance(settleMs);
  return job;
}

function taskOf(s: ClusterState, job: string, instance: number) {
  return s.tasks.get(s.jobs.get(job as never)!.instances.get(instance)!)!;
}
function runningOf(s: ClusterState, job: string) {
  return [...s.jobs.get(job as never)!.instances.values()].map((id) => s.tasks.get(id)!).filter((t) => t.state === "RUNNING");
}
const modeOf = (s: ClusterState, host: string) => s.hosts.get(host)?.mode ?? "NONE";

type Logged = { seq: number; event: LogEntry };
async function logged(sim: Sim, type: string): Promise<Logged[]> {
  return (await sim.events()).filter((e) => e.event.type === type);
}
/** The TaskStateChanged DRAINING events, by task id. */
async function drains(sim: Sim): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const { event } of await logged(sim, "TaskStateChanged")) {
    const d = event.data as { taskId: string; to: string };
    if (d.to === "DRAINING") out.set(d.taskId, event.reason);
  }
  return out;
}

/** The log folded again from genesis agrees with the leader, with no anomaly. */
async function foldsTheSame(sim: Sim): Promise<void> {
  const s = new ClusterState();
  for await (const r of sim.log.read(1)) {
    foldRecord(s, r.seq, r.events);
    if (r.seq >= (await sim.log.lastSeq())) break;
  }
  expect(s.anomalies).toEqual([]);
  expect(stateHash(s)).toBe(stateHash(sim.state));
}

describe("SLA-aware drain", () => {
  it("count policy: one task may always be down; the host is DRAINED and vetoed; end brings it back", async () => {
    const sim = await start();
    const job = await service(sim, "counted", 2, { slaPolicy: { count: { count: 2, durationSecs: 60 } } });
    const t0 = taskOf(sim.state, job, 0);
    const host = t0.host!;
    const r = await sim.request<{ hosts: Array<{ changed: boolean }>; seq: number }>("host.maintenance.drain", {
      hosts: [host],
      user: "ops",
    });
    expect(r.hosts[0]!.changed).toBe(true);
    await sim.runUntil((s) => modeOf(s, host) === "DRAINED", 5 * MIN, "host DRAINED");
    const reasons = await drains(sim);
    expect(reasons.get(t0.taskId)).toMatch(
      /job's slaPolicy: SLA count 2 over 1m .*1 of 2 task\(s\) would stay active.*lowered from 2: one task may always be down.*holds/,
    );
    // The replacement runs elsewhere: the drained host takes no new task.
    const next = taskOf(sim.state, job, 0);
    expect(next.taskId).not.toBe(t0.taskId);
    await sim.runUntil((s) => taskOf(s, job, 0).state === "RUNNING", MIN, "replacement running");
    expect(taskOf(sim.state, job, 0).host).not.toBe(host);
    const drained = (await logged(sim, "HostMaintenanceChanged")).find((e) => (e.event.data as { to: string }).to === "DRAINED")!;
    expect(drained.event.reason).toMatch(new RegExp(`host ${host} has no active task left: DRAINED \\(drain requested by ops\\)`));

    const status = await sim.request<Array<{ host: string; mode: string; tasks: number; reason: string }>>("host.maintenance.status", {
      hosts: [host],
    });
    expect(status).toEqual([expect.objectContaining({ host, mode: "DRAINED", tasks: 0, reason: drained.event.reason })]);

    // `roost history host H` tells the story: the request, the drain of its task, DRAINED.
    const h = await new HistoryService({ log: sim.log }).history({ kind: "host", id: host });
    const types = h.items.map((i) => i.type);
    expect(types).toContain("HostMaintenanceChanged");
    expect(h.items.some((i) => i.type === "TaskStateChanged" && /drain of host/.test(i.reason))).toBe(true);
    expect(h.items.filter((i) => i.type === "HostMaintenanceChanged").map((i) => i.reason)).toEqual([
      expect.stringMatching(/drain of host .* requested by ops: SLA-aware drain \(default 95% over 30m, forced after 7d\)/),
      drained.event.reason,
    ]);

    await sim.request("host.maintenance.end", { hosts: [host], user: "ops" });
    expect(modeOf(sim.state, host)).toBe("NONE");
    await foldsTheSame(sim);
  });

  it("percentage policy: a denial with its reason, then the drain once the replacement has RUNNING long enough", async () => {
    const sim = await start();
    const job = await service(sim, "web", 2, { slaPolicy: { percentage: { percentage: 50, durationSecs: 60 } } });
    const [a, b] = [taskOf(sim.state, job, 0), taskOf(sim.state, job, 1)];
    expect(a.host).not.toBe(b.host);
    await sim.request("host.maintenance.drain", { hosts: [a.host!, b.host!], user: "ops" });
    // Both at once would break the SLA: instance 0 goes first, instance 1 waits.
    const denied = await logged(sim, "SlaDrainDenied");
    expect(denied.map((d) => (d.event.data as { taskId: string }).taskId)).toEqual([b.taskId]);
    expect(denied[0]!.event.reason).toMatch(
      /waits for task .*: the job's slaPolicy: SLA 50% over 1m of job www-data\/devel\/web: 0 of 2 task\(s\) would stay active \(RUNNING longer than 1m\), 1 required; would break; forced at /,
    );
    expect(sim.state.hosts.get(b.host!)!.denials[b.taskId]!.reason).toBe(denied[0]!.event.reason);
    await sim.runUntil((s) => modeOf(s, a.host!) === "DRAINED" && modeOf(s, b.host!) === "DRAINED", 10 * MIN, "both DRAINED");
    const reasons = await drains(sim);
    expect(reasons.get(b.taskId)).toMatch(/1 of 2 task\(s\) would stay active .*holds/);
    // A denial is logged once per reason, not once per poll.
    const again = (await logged(sim, "SlaDrainDenied")).filter((d) => (d.event.data as { taskId: string }).taskId === b.taskId);
    expect(new Set(again.map((d) => d.event.reason)).size).toBe(again.length);
    await sim.runUntil((s) => runningOf(s, job).length === 2, MIN, "both running elsewhere");
    const third = sim.agents.map((x) => x.agentId as string).find((x) => x !== a.host && x !== b.host);
    expect(runningOf(sim.state, job).map((t) => t.host)).toEqual([third, third]);
    await foldsTheSame(sim);
  });

  it("non-production jobs are drained without a check, unless slaAwareKillNonProd; small jobs are skipped below minRequiredInstances", async () => {
    const sim = await start({ policy: { ...POLICY, minRequiredInstances: 3 } });
    // Two instances, fewer than 3: no check, both drained together though the policy would refuse.
    const small = await service(sim, "small", 2, { slaPolicy: { count: { count: 2, durationSecs: 60 } } });
    const hosts = [0, 1].map((i) => taskOf(sim.state, small, i).host!);
    await sim.request("host.maintenance.drain", { hosts, user: "ops" });
    const r1 = await drains(sim);
    expect([...r1.values()]).toEqual([
      expect.stringMatching(/fewer than minRequiredInstances 3: no SLA check/),
      expect.stringMatching(/fewer than minRequiredInstances 3: no SLA check/),
    ]);
    await sim.request("host.maintenance.end", { hosts, user: "ops" });

    const sim2 = await start();
    const batch = async (name: string) => {
      const { job } = await sim2.createJob(
        testSpec(name, { tier: "preemptible", service: true, instances: 2, slaPolicy: { count: { count: 2, durationSecs: 60 } } }),
      );
      await sim2.runUntil((s) => runningOf(s, job).length === 2, MIN, `${job} running`);
      return job;
    };
    const np = await batch("np");
    await sim2.advance(2 * MIN);
    const hs = [0, 1].map((i) => taskOf(sim2.state, np, i).host!);
    await sim2.request("host.maintenance.drain", { hosts: hs, user: "ops" });
    expect([...(await drains(sim2)).values()]).toEqual([
      expect.stringMatching(/is not production: drained without an SLA check/),
      expect.stringMatching(/is not production: drained without an SLA check/),
    ]);
    await sim2.runUntil((s) => hs.every((h) => modeOf(s, h) === "DRAINED"), 5 * MIN, "DRAINED");
    await sim2.request("host.maintenance.end", { hosts: hs, user: "ops" });
    await sim2.advance(3 * MIN);
    const before = (await drains(sim2)).size;
    const hs2 = [0, 1].map((i) => taskOf(sim2.state, np, i).host!);
    await sim2.request("host.maintenance.drain", { hosts: [...new Set(hs2)], slaAwareKillNonProd: true, user: "ops" });
    // Judged now: with count 2 lowered to 1, only one of the two may go at once.
    expect((await drains(sim2)).size).toBe(before + 1);
    expect((await logged(sim2, "SlaDrainDenied")).length).toBeGreaterThan(0);
  });

  it("a forced timeout of 0s drains every task at once; pending tasks show the maintenance veto; end → NONE and they come back", async () => {
    const sim = await start({ agents: [{ count: 1, cpus: 4, ramMb: 4096, diskMb: 8192 }] });
    const job = await service(sim, "solo", 3, { slaPolicy: { count: { count: 3, durationSecs: 60 } } });
    const host = "agent-1";
    await sim.request("host.maintenance.drain", { hosts: [host], forceDrainTimeoutSecs: 0, user: "ops" });
    const reasons = await drains(sim);
    expect(reasons.size).toBe(3);
    for (const r of reasons.values()) expect(r).toMatch(/force drain timeout of host agent-1 passed \(0s after the request by ops/);
    await sim.runUntil((s) => modeOf(s, host) === "DRAINED", 5 * MIN, "DRAINED");
    await sim.advance(10_000);
    const pending = taskOf(sim.state, job, 0);
    expect(pending.state).toBe("PENDING");
    expect(sim.status(job).instances[0]!.reason).toMatch(/maintenance/);
    const why = await sim.request<unknown>("task.why", { taskId: pending.taskId });
    expect(JSON.stringify(why)).toMatch(/host agent-1 is DRAINED for maintenance/);

    await sim.request("host.maintenance.end", { hosts: [host], user: "ops" });
    await sim.runUntil((s) => runningOf(s, job).length === 3, 2 * MIN, "tasks back on the host");
    expect(runningOf(sim.state, job).every((t) => t.host === host)).toBe(true);
    await foldsTheSame(sim);
  });

  it("force: true (Aurora's host_drain) drains at once", async () => {
    const sim = await start();
    const job = await service(sim, "forced", 2, { slaPolicy: { count: { count: 2, durationSecs: 60 } } }, 0);
    const host = taskOf(sim.state, job, 0).host!;
    await sim.request("host.maintenance.drain", { hosts: [host], force: true, user: "ops" });
    expect([...(await drains(sim)).values()]).toEqual([expect.stringMatching(/forced drain of host .* \(no SLA: requested by ops\)/)]);
  });

  it("a drain that decides more than a record holds commits it in parts, and the host still ends DRAINED", async () => {
    // 1,200 tasks on two hosts: the first look decides 1,200 drains, more than one record takes.
    const sim = await start({ agents: [{ count: 2, cpus: 200, ramMb: 100_000, diskMb: 100_000 }] });
    await sim.request("quota.set", { role: "www-data", cpus: 200, ramMb: 100_000, diskMb: 100_000 });
    const job = await service(sim, "many", 1200, { resources: { cpus: 0.1, ramMb: 16, diskMb: 16 } }, 0);
    const hosts = [...new Set(runningOf(sim.state, job).map((t) => t.host!))];
    await sim.request("host.maintenance.drain", { hosts, force: true, user: "ops" });
    await sim.runUntil((s) => hosts.every((h) => modeOf(s, h) === "DRAINED"), 10 * MIN, "both hosts DRAINED");
    const perRecord = new Map<number, number>();
    for (const { seq, event } of await logged(sim, "TaskStateChanged"))
      if ((event.data as { to: string }).to === "DRAINING") perRecord.set(seq, (perRecord.get(seq) ?? 0) + 1);
    expect([...perRecord.values()].reduce((a, b) => a + b, 0)).toBe(1200);
    expect(Math.max(...perRecord.values())).toBeLessThanOrEqual(500);
    await foldsTheSame(sim);
  });

  it("a leader crash in the middle of a drain: the new leader goes on from the log", async () => {
    const sim = await start({ replicas: 2 });
    const job = await service(sim, "ha", 2, { slaPolicy: { percentage: { percentage: 50, durationSecs: 60 } } });
    const [a, b] = [taskOf(sim.state, job, 0), taskOf(sim.state, job, 1)];
    await sim.request("host.maintenance.drain", { hosts: [a.host!, b.host!], user: "ops" });
    expect((await logged(sim, "SlaDrainDenied")).length).toBe(1);
    const old = await sim.crashLeader();
    await sim.runUntil(() => sim.scheduler !== old && sim.scheduler.leading, MIN, "a new leader");
    await sim.runUntil(
      (s) => modeOf(s, a.host!) === "DRAINED" && modeOf(s, b.host!) === "DRAINED",
      10 * MIN,
      "both DRAINED after failover",
    );
    const reasons = await drains(sim);
    expect(reasons.get(b.taskId)).toMatch(/holds/);
    await foldsTheSame(sim);
  });
});

describe("maintenance windows", () => {
  it("SCHEDULED until the window starts, drains then, back to NONE when it ends; cancel ends one early", async () => {
    const sim = await start();
    const job = await service(sim, "win", 2, {}, 0);
    const host = taskOf(sim.state, job, 0).host!;
    const t0 = sim.clock.now();
    const r = await sim.request<{ windowId: string; startTs: number; endTs: number; seq: number }>("host.maintenance.schedule", {
      hosts: [host],
      start: t0 + 5 * MIN,
      durationSecs: 600,
      percentage: 50,
      slaDurationSecs: 60,
      user: "ops",
    });
    expect(modeOf(sim.state, host)).toBe("SCHEDULED");
    const rec = (await sim.log.get(r.seq))!.events.map((e) => e.type);
    expect(rec).toEqual(["MaintenanceWindowScheduled", "HostMaintenanceChanged"]);
    expect(await sim.request("host.maintenance.windows", {})).toEqual([
      expect.objectContaining({ windowId: r.windowId, hosts: [host], state: "scheduled", user: "ops" }),
    ]);
    await sim.advance(5 * MIN - 1);
    expect(modeOf(sim.state, host)).toBe("SCHEDULED");
    await sim.advance(1);
    expect(modeOf(sim.state, host)).not.toBe("SCHEDULED");
    expect(sim.state.hosts.get(host)!.windowId).toBe(r.windowId);
    // Judged by the window's default SLA (50% over 1m): one at a time, the second once the first's replacement counts.
    await sim.runUntil((s) => modeOf(s, host) === "DRAINED", 5 * MIN, "window drained its host");
    await sim.runUntil((s) => s.windows.get(r.windowId)!.ended !== null, 20 * MIN, "window ended");
    expect(sim.clock.now()).toBe(r.endTs);
    expect(modeOf(sim.state, host)).toBe("NONE");
    const ended = await logged(sim, "MaintenanceWindowEnded");
    expect(ended[0]!.event.reason).toMatch(/maintenance window .* ended at .*: its hosts return to service/);

    const r2 = await sim.request<{ windowId: string }>("host.maintenance.schedule", {
      hosts: [host],
      start: new Date(sim.clock.now() + 60 * MIN).toISOString(),
      durationSecs: 600,
      user: "ops",
    });
    await sim.request("host.maintenance.cancel", { windowId: r2.windowId, user: "ops" });
    expect(modeOf(sim.state, host)).toBe("NONE");
    expect(sim.state.windows.get(r2.windowId)!.ended).toMatchObject({ cancelled: true, user: "ops" });
    await expect(sim.request("host.maintenance.cancel", { windowId: r2.windowId })).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/windowId: .*rule: only a window not yet over is cancelled/),
    });
    await foldsTheSame(sim);
  });
});

describe("the ops' rules", () => {
  it("refusals name the field and the rule", async () => {
    const sim = await start();
    const refuse = (op: string, req: unknown, field: RegExp) =>
      expect(sim.request(op, req)).rejects.toMatchObject({ message: expect.stringMatching(field) });
    await refuse("host.maintenance.drain", { hosts: ["h"], percentage: 0 }, /percentage.*must be a number > 0 and ≤ 100/);
    await refuse("host.maintenance.drain", { hosts: ["h"], durationSecs: 9999 }, /durationSecs.*0 to 7200/);
    await refuse("host.maintenance.drain", { hosts: ["h"], force: true, percentage: 50 }, /percentage: rule: a forced drain/);
    await refuse("host.maintenance.start", { hosts: [] }, /hosts.*1 to 1000 host names/);
    await refuse("host.maintenance.schedule", { hosts: ["h"], start: "tomorrow", durationSecs: 60 }, /start.*RFC 3339/);
    await refuse(
      "host.maintenance.schedule",
      { hosts: ["h"], start: 0, durationSecs: 60 },
      /start: the window would end at .*rule: a window is scheduled before it is over/,
    );
    await refuse("host.maintenance.cancel", { windowId: "mw-none" }, /windowId: there is no maintenance window mw-none/);
    await sim.request("host.maintenance.drain", { hosts: ["agent-1"], force: true });
    await refuse(
      "host.maintenance.start",
      { hosts: ["agent-1"] },
      /hosts: host agent-1 is (DRAINING|DRAINED); rule: start moves a host to SCHEDULED/,
    );
    await refuse(
      "host.maintenance.schedule",
      { hosts: ["agent-1"], start: sim.clock.now() + MIN, durationSecs: 60 },
      /hosts: host agent-1 is DRAIN(ING|ED); rule: a window takes hosts in service \(NONE\)/,
    );
    const spec = (slaPolicy: unknown) => testSpec("bad", { slaPolicy });
    await expect(sim.createJob(spec({ count: { count: 0, durationSecs: 60 } }))).rejects.toThrow(
      /slaPolicy\.count\.count.*must be an integer ≥ 1/,
    );
    await expect(sim.createJob(spec({ percentage: { percentage: 150, durationSecs: 60 } }))).rejects.toThrow(
      /slaPolicy\.percentage\.percentage.*> 0 and ≤ 100/,
    );
    await expect(sim.createJob(spec({ count: { count: 1, durationSecs: 7201 } }))).rejects.toThrow(
      /slaPolicy\.count\.durationSecs.*0 to 7200/,
    );
    await expect(sim.createJob(spec({ coordinator: { url: "ftp://x" } }))).rejects.toThrow(/slaPolicy\.coordinator\.url.*http/);
    await expect(
      sim.createJob(spec({ count: { count: 1, durationSecs: 1 }, percentage: { percentage: 5, durationSecs: 1 } })),
    ).rejects.toThrow(/slaPolicy.*exactly one of/);
  });

  it("the same command twice appends nothing; unknown hosts are allowed and named", async () => {
    const sim = await start();
    const r1 = await sim.request<{ unknownHosts: string[]; seq: number | null }>("host.maintenance.start", { hosts: ["agent-1", "ghost"] });
    expect(r1.unknownHosts).toEqual(["ghost"]);
    expect(r1.seq).not.toBeNull();
    const n = await sim.log.lastSeq();
    const r2 = await sim.request<{ hosts: Array<{ host: string; changed: boolean; note?: string }>; seq: number | null }>(
      "host.maintenance.start",
      { hosts: ["agent-1", "ghost"] },
    );
    expect(r2.seq).toBeNull();
    expect(r2.hosts.every((h) => !h.changed && /already SCHEDULED: skipped/.test(h.note!))).toBe(true);
    expect(await sim.log.lastSeq()).toBe(n);
    await sim.request("host.maintenance.drain", { hosts: ["ghost"], force: true });
    const m = await sim.log.lastSeq();
    const r3 = await sim.request<{ seq: number | null }>("host.maintenance.drain", { hosts: ["ghost"], force: true });
    expect(r3.seq).toBeNull();
    await sim.request("host.maintenance.end", { hosts: ["ghost", "agent-1"] });
    const e = await sim.log.lastSeq();
    expect(e).toBeGreaterThan(m);
    expect((await sim.request<{ seq: number | null }>("host.maintenance.end", { hosts: ["ghost", "agent-1"] })).seq).toBeNull();
    expect(await sim.log.lastSeq()).toBe(e);
    // A keyed copy gets the first outcome.
    const k1 = await sim.request<{ seq: number }>("host.maintenance.start", { hosts: ["agent-2"], key: "m-1" });
    const k2 = await sim.request<{ seq: number }>("host.maintenance.start", { hosts: ["agent-2"], key: "m-1" });
    expect(k2).toEqual(k1);
    await foldsTheSame(sim);
  });
});

describe("coordinator", () => {
  it("asks the job's coordinator before each drain; only instance 0 is allowed", async () => {
    const asked: Array<{ url: string; body: { task: { instance: number }; forceMaintenanceCountdownMs: number } }> = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const parsed = JSON.parse(body);
        asked.push({ url: req.url!, body: parsed });
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ drain: parsed.task.instance === 0 }));
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sla`;
    const sim = await start({ maxSettleTurns: 5_000_000 });
    const job = await service(sim, "coord", 2, { slaPolicy: { coordinator: { url } } });
    const [a, b] = [taskOf(sim.state, job, 0), taskOf(sim.state, job, 1)];
    await sim.request("host.maintenance.drain", { hosts: [a.host!, b.host!], user: "ops" });
    await sim.runUntil(() => asked.length >= 2, MIN, "both asked");
    expect(asked.map((x) => x.url).sort()).toEqual([
      `/sla?task=${encodeURIComponent(`${job}/0`)}`,
      `/sla?task=${encodeURIComponent(`${job}/1`)}`,
    ]);
    expect(asked[0]!.body.forceMaintenanceCountdownMs).toBeGreaterThan(0);
    const reasons = await drains(sim);
    expect([...reasons.keys()]).toEqual([a.taskId]);
    expect(reasons.get(a.taskId)).toMatch(/coordinator http:.*answered \{"drain":true\}/);
    const denied = await logged(sim, "SlaDrainDenied");
    expect(denied.map((d) => (d.event.data as { taskId: string }).taskId)).toEqual([b.taskId]);
    expect(denied[0]!.event.reason).toMatch(/answered \{"drain":false\} \(drains only on \{"drain": true\}\)/);
    // Asked again each poll, never twice at once; still denied, not logged again.
    await sim.advance(30_000);
    expect(asked.length).toBeGreaterThan(2);
    expect((await logged(sim, "SlaDrainDenied")).length).toBe(1);
    expect(taskOf(sim.state, job, 1).taskId).toBe(b.taskId);
    expect(taskOf(sim.state, job, 1).state).toBe("RUNNING");
  });
});
