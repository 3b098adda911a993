// The Updater actor on the deterministic simulator: the real leader (its intake, fold, launcher,
// rescheduler and updater) with simulated agents on a virtual clock. What is checked is what the
// log shows: each update's statuses, the instance groups, and every instance's config version at
// the end; then what a leader change in the middle does to an update (it carries on), and to a
// paused one (it stays paused).

import { afterEach, describe, expect, it } from "vitest";
import { Sim } from "../src/sim/sim.js";
import { jobStatus } from "../src/replay/queries.js";
import type { ClusterState } from "../src/replay/state.js";
import { TERMINAL_UPDATE_STATES } from "../src/statemachines/update.js";
import { testSpec } from "./support/specs.js";

const JOB = "www-data/devel/web";
let sim: Sim | null = null;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

function spec(over: Record<string, unknown> = {}) {
  return testSpec("web", { instances: 6, service: true, ...over });
}

async function start(opts: Partial<Parameters<typeof Sim.start>[0]> = {}): Promise<Sim> {
  sim = await Sim.start({ seed: 13, agents: [{ count: 4, cpus: 8, ramMb: 8192, diskMb: 8192 }], ...opts });
  await sim.createJob(spec({ processes: [{ name: "main", cmdline: "v1" }] }));
  await sim.runUntil((s) => running(s) === 6, 60_000, "6 running");
  return sim;
}

function running(s: ClusterState): number {
  const job = s.jobs.get(JOB as never);
  if (!job) return 0;
  return [...job.instances.values()].filter((id) => s.tasks.get(id)!.state === "RUNNING").length;
}

/** Instances started together: each run of INSTANCE_UPDATING (or ROLLING_BACK) events in one record. */
function rounds(s: ClusterState, updateId: string, action = "INSTANCE_UPDATING"): number[][] {
  const out = new Map<number, number[]>();
  for (const a of s.updates.get(updateId)!.actions) {
    if (a.action !== action) continue;
    out.set(a.seq, [...(out.get(a.seq) ?? []), a.instance]);
  }
  return [...out.values()];
}

function over(updateId: string) {
  return (s: ClusterState) => TERMINAL_UPDATE_STATES.has(s.updates.get(updateId)!.status);
}

describe("the Updater on the simulator", () => {
  it("rolls 6 instances forward in batches of 2, and every instance ends on the new config", async () => {
    const sim = await start();
    const r = await sim.request<{ updateId: string; status: string }>("update.start", {
      job: JOB,
      spec: spec({
        processes: [{ name: "main", cmdline: "v2" }],
        updateConfig: { batchSize: 2, watchSecs: 5, waitForBatchCompletion: true },
      }),
    });
    expect(r.status).toBe("ROLLING_FORWARD");
    await sim.runUntil(over(r.updateId), 10 * 60_000, "update over");
    const u = sim.state.updates.get(r.updateId)!;
    expect(u.status).toBe("ROLLED_FORWARD");
    expect(rounds(sim.state, r.updateId)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    const st = sim.status(JOB);
    expect(st.configVersion).toBe(2);
    expect(st.instances.map((i) => [i.state, i.configVersion])).toEqual(Array(6).fill(["RUNNING", 2]));
    // Every action carries its reason.
    expect(u.actions.every((a) => a.reason.includes(r.updateId))).toBe(true);
  });

  it("a second update of the same job is refused with CONFLICT, and the same key twice starts one", async () => {
    const sim = await start();
    const req = { job: JOB, key: "u-1", spec: spec({ processes: [{ name: "main", cmdline: "v2" }] }) };
    const a = await sim.request<{ updateId: string }>("update.start", req);
    const b = await sim.request<{ updateId: string }>("update.start", req);
    expect(b.updateId).toBe(a.updateId);
    await expect(sim.request("update.start", { ...req, key: "u-2" })).rejects.toMatchObject({ code: "CONFLICT" });
    await expect(
      sim.request("update.start", { job: JOB, spec: spec({ processes: [{ name: "main", cmdline: "v1" }] }), key: "u-3" }),
    ).rejects.toMatchObject({
      code: "CONFLICT",
    });
  });

  it("a new config whose tasks fail rolls back, and every instance ends on the old config", async () => {
    const sim = await start();
    sim.behave(JOB, (launch) => (launch.processes[0]!.cmdline === "bad" ? { runMs: 1000, exitCode: 3 } : {}));
    const r = await sim.request<{ updateId: string }>("update.start", {
      job: JOB,
      spec: spec({ processes: [{ name: "main", cmdline: "bad" }], updateConfig: { batchSize: 2, watchSecs: 5 } }),
    });
    await sim.runUntil(over(r.updateId), 10 * 60_000, "update over");
    expect(sim.state.updates.get(r.updateId)!.status).toBe("ROLLED_BACK");
    const st = sim.status(JOB);
    expect(st.instances.map((i) => [i.state, i.configVersion])).toEqual(Array(6).fill(["RUNNING", 1]));
    expect(st.configVersion).toBe(1);
  });

  it("pause holds it, resume carries on; abort ends it where it is", async () => {
    const sim = await start();
    const r = await sim.request<{ updateId: string }>("update.start", {
      job: JOB,
      spec: spec({ processes: [{ name: "main", cmdline: "v2" }], updateConfig: { batchSize: 1, watchSecs: 30 } }),
    });
    await sim.runUntil(
      (s) => (s.updates.get(r.updateId)!.instanceActions["0"]?.action ?? "") === "INSTANCE_UPDATED",
      120_000,
      "instance 0 done",
    );
    const p = await sim.request<{ status: string }>("update.pause", { job: JOB, message: "hold on" });
    expect(p.status).toBe("ROLL_FORWARD_PAUSED");
    const before = sim.state.updates.get(r.updateId)!.actions.length;
    await sim.advance(5 * 60_000);
    expect(sim.state.updates.get(r.updateId)!.actions.length).toBe(before);
    await expect(sim.request("update.pause", { job: JOB })).rejects.toMatchObject({ code: "CONFLICT" });
    expect((await sim.request<{ status: string }>("update.resume", { job: JOB })).status).toBe("ROLLING_FORWARD");
    await sim.runUntil(
      (s) => (s.updates.get(r.updateId)!.instanceActions["2"]?.action ?? "") === "INSTANCE_UPDATING",
      300_000,
      "instance 2 starts",
    );
    expect((await sim.request<{ status: string }>("update.abort", { job: JOB })).status).toBe("ABORTED");
    await expect(sim.request("update.resume", { job: JOB })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("an update survives a leader change and ends ROLLED_FORWARD; a paused one stays paused", async () => {
    const sim = await start({ replicas: 2 });
    const r = await sim.request<{ updateId: string }>("update.start", {
      job: JOB,
      spec: spec({ processes: [{ name: "main", cmdline: "v2" }], updateConfig: { batchSize: 2, watchSecs: 10 } }),
    });
    await sim.runUntil(
      (s) => s.updates.get(r.updateId)!.actions.some((a) => a.action === "INSTANCE_UPDATED"),
      120_000,
      "first instance updated",
    );
    const old = await sim.crashLeader();
    await sim.runUntil(() => sim.scheduler !== old && sim.scheduler.leading, 60_000, "a new leader");
    await sim.runUntil(over(r.updateId), 10 * 60_000, "update over after failover");
    expect(sim.state.updates.get(r.updateId)!.status).toBe("ROLLED_FORWARD");
    expect(jobStatus(sim.state, JOB)!.instances.every((i) => i.configVersion === 2 && i.state === "RUNNING")).toBe(true);
    expect(new Set(sim.state.updates.get(r.updateId)!.actions.map((a) => a.instance)).size).toBe(6);

    const r2 = await sim.request<{ updateId: string }>("update.start", {
      job: JOB,
      spec: spec({ processes: [{ name: "main", cmdline: "v3" }], updateConfig: { batchSize: 2, watchSecs: 10 } }),
    });
    await sim.request("update.pause", { job: JOB });
    await sim.restart(old);
    const second = await sim.crashLeader();
    await sim.runUntil(() => sim.scheduler !== second && sim.scheduler.leading, 60_000, "a third leader");
    await sim.advance(5 * 60_000);
    expect(sim.state.updates.get(r2.updateId)!.status).toBe("ROLL_FORWARD_PAUSED");
    await sim.request("update.resume", { job: JOB });
    await sim.runUntil(over(r2.updateId), 10 * 60_000, "second update over");
    expect(sim.state.updates.get(r2.updateId)!.status).toBe("ROLLED_FORWARD");
  });

  it("a rolling restart goes through RESTARTING in batches of 2, never more than 2 down, same config", async () => {
    // Counted after every record any replica folds: the most instances not RUNNING at once.
    let maxDown = 0;
    let watching = false;
    const sim = await start({
      onFold: (replica) => {
        if (watching && replica.role === "leader") maxDown = Math.max(maxDown, 6 - running(replica.state));
      },
    });
    watching = true;
    const r = await sim.request<{ updateId: string }>("job.restart", { job: JOB, batchSize: 2, watchSecs: 5 });
    await sim.runUntil(over(r.updateId), 10 * 60_000, "restart over");
    expect(sim.state.updates.get(r.updateId)!.status).toBe("ROLLED_FORWARD");
    expect(maxDown).toBeLessThanOrEqual(2);
    expect(rounds(sim.state, r.updateId)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    const st = sim.status(JOB);
    expect(st.instances.every((i) => i.state === "RUNNING" && i.configVersion === 1)).toBe(true);
    const restarted = [...sim.state.tasks.values()].filter((t) => t.state === "KILLED" && t.job === JOB);
    expect(restarted).toHaveLength(6);
  });

  it("refuses what is wrong, naming the field and the rule, and appends nothing", async () => {
    const sim = await start();
    const v2 = spec({ processes: [{ name: "main", cmdline: "v2" }] });
    const refusals: Array<[string, unknown, string, RegExp]> = [
      ["update.start", { job: JOB, spec: v2, instances: [] }, "INVALID_REQUEST", /instances/],
      ["update.start", { job: JOB, spec: v2, instances: [99] }, "INVALID_REQUEST", /instances: job .* has no instance 99/],
      ["update.start", { job: JOB, spec: v2, user: "x\u0000" }, "INVALID_REQUEST", /user/],
      ["update.start", { job: JOB, spec: spec({ processes: [{ name: "main", cmdline: "v1" }] }) }, "INVALID_REQUEST", /no-op update/],
      ["update.start", { job: JOB, spec: { ...v2, name: "other" } }, "INVALID_REQUEST", /is for job www-data\/devel\/other/],
      ["update.start", { job: "www-data/devel/nope", spec: { ...v2, name: "nope" } }, "NOT_FOUND", /does not exist/],
      [
        "update.start",
        { job: JOB, spec: { ...v2, updateConfig: { batchSize: 0 } } },
        "INVALID_REQUEST",
        /updateConfig.batchSize: must be greater than 0/,
      ],
      [
        "update.start",
        { job: JOB, spec: { ...v2, updateConfig: { pulseIntervalSecs: 5 } } },
        "INVALID_REQUEST",
        /pulseIntervalSecs: must be at least 60/,
      ],
      ["update.start", { job: JOB, spec: v2, extra: 1 }, "INVALID_REQUEST", /extra/],
      ["update.pause", { job: JOB }, "NOT_FOUND", /has no active update/],
      ["update.pulse", { job: JOB, updateId: "nope" }, "NOT_FOUND", /has no update nope/],
      ["update.info", { job: JOB }, "NOT_FOUND", /has had no update/],
      ["update.list", { status: "BOGUS" }, "INVALID_REQUEST", /status: must be "active" or an update status/],
      ["job.restart", { job: JOB, batchSize: 0 }, "INVALID_REQUEST", /batchSize/],
      ["job.restart", { job: JOB, instances: [6] }, "INVALID_REQUEST", /has no instance 6/],
    ];
    const before = sim.state.seq;
    for (const [op, req, code, msg] of refusals) {
      const err = await sim.request(op, req).then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err, `${op} ${JSON.stringify(req)}`).not.toBeNull();
      expect([err!.code, err!.message], `${op} ${JSON.stringify(req)}`).toEqual([code, expect.stringMatching(msg)]);
    }
    expect(sim.state.seq).toBe(before);
    // A restart has nothing to roll back; a pulse is for a coordinated update only.
    await sim.request("job.restart", { job: JOB, watchSecs: 60 });
    await expect(sim.request("update.rollback", { job: JOB })).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/nothing to roll back/),
    });
    const id = sim.state.activeUpdate(JOB as never)!.updateId;
    await expect(sim.request("update.pulse", { job: JOB, updateId: id })).rejects.toMatchObject({
      message: expect.stringMatching(/not coordinated/),
    });
    await expect(sim.request("job.add", { job: JOB, count: 1 })).rejects.toMatchObject({ code: "CONFLICT" });
    // Killing the whole job ends its update.
    await sim.killJob(JOB);
    expect(sim.state.updates.get(id)!.status).toBe("ABORTED");
  });
});
