// The updates page's per-instance read model (updater/info.ts updateInstances) on the
// simulator: mid-roll, an instance at work shows where it stands (its old task being replaced,
// its new one watched RUNNING), the ones whose turn has not come show nothing yet; once over,
// every instance is done with both its actions.

import { afterEach, describe, expect, it } from "vitest";
import type { ClusterState } from "../src/replay/state.js";
import { Sim } from "../src/sim/sim.js";
import { TERMINAL_UPDATE_STATES } from "../src/statemachines/update.js";
import { updateInstances } from "../src/updater/info.js";
import { testSpec } from "./support/specs.js";

const JOB = "www-data/devel/web";
let sim: Sim | null = null;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

const spec = (cmdline: string, over: Record<string, unknown> = {}) =>
  testSpec("web", { instances: 4, service: true, processes: [{ name: "main", cmdline }], ...over });

describe("updateInstances", () => {
  it("shows each instance's newest action, task and progress, mid-roll and at the end", async () => {
    sim = await Sim.start({ seed: 5, agents: [{ count: 2, cpus: 8, ramMb: 8192, diskMb: 8192 }] });
    sim.behave(JOB, { startMs: 1000, killMs: 500 });
    await sim.createJob(spec("v1"));
    await sim.runUntil((s) => [...s.tasks.values()].filter((t) => t.state === "RUNNING").length === 4, 60_000, "4 running");
    const { updateId } = await sim.request<{ updateId: string }>("update.start", {
      job: JOB,
      spec: spec("v2", { updateConfig: { batchSize: 2, watchSecs: 10, waitForBatchCompletion: true } }),
    });

    // The first batch is replacing its old tasks (KILLING), the second has not started.
    let rows = updateInstances(sim.state, updateId, sim.clock.now());
    expect(rows.map((r) => [r.instance, r.action])).toEqual([
      [0, "INSTANCE_UPDATING"],
      [1, "INSTANCE_UPDATING"],
      [2, null],
      [3, null],
    ]);
    expect(rows[0]).toMatchObject({
      progress: 0.2,
      phase: "replacing its old task (KILLING)",
      task: { state: "KILLING", configVersion: 1 },
    });
    expect(rows[2]).toMatchObject({ progress: 0, phase: "waiting for its turn", actions: [] });

    // 4 s into its watch: 0.7 + 0.3 × 4/10.
    const running = (s: ClusterState) => s.tasks.get(s.jobs.get(JOB as never)!.instances.get(0)!)!;
    await sim.runUntil((s) => running(s).configVersion === 2 && running(s).state === "RUNNING", 60_000, "instance 0 runs v2");
    await sim.advance(4000);
    rows = updateInstances(sim.state, updateId, sim.clock.now());
    expect(rows[0]).toMatchObject({ progress: 0.82, phase: "watched RUNNING: 4 of 10 s", task: { state: "RUNNING", configVersion: 2 } });

    await sim.runUntil((s) => TERMINAL_UPDATE_STATES.has(s.updates.get(updateId)!.status), 10 * 60_000, "update over");
    rows = updateInstances(sim.state, updateId, sim.clock.now());
    expect(rows.map((r) => [r.action, r.progress, r.phase])).toEqual(Array(4).fill(["INSTANCE_UPDATED", 1, "updated"]));
    for (const r of rows) {
      expect(r.actions.map((a) => a.action)).toEqual(["INSTANCE_UPDATING", "INSTANCE_UPDATED"]);
      expect(r.actions.every((a) => a.instance === r.instance && a.reason.includes(updateId))).toBe(true);
    }
    expect(updateInstances(sim.state, "no-such-update", sim.clock.now())).toEqual([]);
  });
});
