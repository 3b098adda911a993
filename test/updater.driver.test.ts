// The updater's decisions (src/updater/driver.ts), run to the end on folded states: a small
// simulated cluster (one agent; a created task is placed, STARTING and RUNNING in the next
// record, or FAILED when its config is bad; a killed task ends KILLED) plays the leader's part,
// turning each decision into the events the leader would commit, and the clock jumps to the next
// wakeAt when nothing else is to do. What is checked is what the log shows: the groups in which
// instances start, the update's statuses, and every instance's config at the end.

import { describe, expect, it } from "vitest";
import { type AnyEnvelope, type EventPayloads, type EventType, makeEnvelope } from "../src/domain/events.js";
import { asAgentId, asJobKey, asTaskId, type JobConfig, type TaskId } from "../src/domain/types.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { TERMINAL_UPDATE_STATES } from "../src/statemachines/update.js";
import { instanceDiff, updateDecisions } from "../src/updater/driver.js";
import { normaliseUpdateConfig, type UpdateConfigInput } from "../src/updater/settings.js";
import { testSpec } from "./support/specs.js";

const JOB = asJobKey("www-data/devel/web");
const AGENT = asAgentId("agent-1");

class Sim {
  readonly state = new ClusterState();
  now = 1_000_000;
  private seq = 0;
  private ids = 0;
  /** Config versions whose tasks fail at once. */
  readonly bad = new Set<number>();
  /** Each INSTANCE_UPDATING / INSTANCE_ROLLING_BACK round: the instances started together. */
  readonly rounds: number[][] = [];
  readonly statuses: string[] = [];

  fold(events: AnyEnvelope[]): void {
    if (events.length > 0) foldRecord(this.state, ++this.seq, events);
  }
  ev<T extends EventType>(type: T, data: EventPayloads[T], reason = "sim"): AnyEnvelope {
    return makeEnvelope(type, data, { epoch: 1, ts: this.now, corr: "c", reason }) as AnyEnvelope;
  }
  newTask(instance: number, configVersion: number, ancestorId: TaskId | null): AnyEnvelope {
    const taskId = asTaskId(`t-${instance}-${++this.ids}`);
    return this.ev("TaskCreated", { taskId, job: JOB, instance, configVersion, ancestorId, failureCount: 0, state: "PENDING" });
  }

  create(config: JobConfig): void {
    this.fold([
      this.ev("AgentRegistered", {
        agentId: AGENT,
        host: "h1",
        attributes: {},
        resources: { cpus: 64, ramMb: 65536, diskMb: 65536, ports: [[31000, 31999]] },
        bootId: "b",
      }),
    ]);
    this.fold([
      this.ev("JobCreated", { job: config, configVersion: 1 }),
      ...Array.from({ length: config.instances }, (_, i) => this.newTask(i, 1, null)),
    ]);
    this.settle();
  }

  /** The agents' part: PENDING tasks placed and running (or failing), KILLING ones killed. */
  settle(): void {
    const place: AnyEnvelope[] = [];
    const run: AnyEnvelope[] = [];
    for (const t of this.state.tasks.values()) {
      if (t.state === "PENDING") {
        place.push(this.ev("TaskAssigned", { taskId: t.taskId, agentId: AGENT, host: "h1", ports: {} }));
        run.push(this.ev("TaskStateChanged", { taskId: t.taskId, to: "STARTING" }));
        run.push(this.ev("TaskStateChanged", { taskId: t.taskId, to: this.bad.has(t.configVersion) ? "FAILED" : "RUNNING" }));
      } else if (t.state === "KILLING") run.push(this.ev("TaskStateChanged", { taskId: t.taskId, to: "KILLED" }));
    }
    this.fold(place);
    this.fold(run);
    // The rescheduler's part (actors/rescheduler.ts): a service task that ended on its own gets a
    // successor, with its own config while an update runs, else the job's.
    const successors: AnyEnvelope[] = [];
    for (const t of this.state.tasks.values()) {
      if (!t.rescheduleWanted || t.successorId !== null) continue;
      const version = this.state.activeUpdate(JOB) ? t.configVersion : this.state.jobs.get(JOB)!.configVersion;
      successors.push(this.newTask(t.instance, version, t.taskId));
    }
    this.fold(successors);
  }

  update(config: JobConfig, updateConfig: UpdateConfigInput, instances: number[] | null = null): string {
    const job = this.state.jobs.get(JOB)!;
    const toVersion = Math.max(...Object.keys(job.configs).map(Number)) + 1;
    this.fold([
      this.ev("JobUpdateStarted", {
        updateId: `u-${toVersion}`,
        job: JOB,
        fromVersion: job.configVersion,
        toVersion,
        config,
        settings: normaliseUpdateConfig(updateConfig, config.instances),
        instances,
        status: "ROLLING_FORWARD",
        user: "sim",
      }),
    ]);
    return `u-${toVersion}`;
  }

  /** Plays the update to its end; returns its final status. */
  run(updateId: string): string {
    for (let step = 0; step < 2000; step++) {
      const u = this.state.updates.get(updateId)!;
      if (TERMINAL_UPDATE_STATES.has(u.status)) return u.status;
      const ds = updateDecisions(this.state, updateId, this.now);
      const events: AnyEnvelope[] = [];
      const round: number[] = [];
      let wake = Infinity;
      for (const d of ds) {
        if (d.kind === "instance") {
          events.push(this.ev("JobInstanceUpdateEvent", { updateId, instance: d.instance, action: d.action }, d.reason));
          if (d.action === "INSTANCE_UPDATING" || d.action === "INSTANCE_ROLLING_BACK") round.push(d.instance);
        } else if (d.kind === "create") events.push(this.newTask(d.instance, d.configVersion, d.ancestorId));
        else if (d.kind === "kill") events.push(this.ev("TaskStateChanged", { taskId: d.taskId, to: d.to }, d.reason));
        else if (d.kind === "status") {
          events.push(this.ev("JobUpdateStateChanged", { updateId, to: d.to, message: d.message }, d.message));
          this.statuses.push(d.to);
        } else wake = Math.min(wake, d.ts);
      }
      if (round.length > 0) this.rounds.push(round);
      const before = this.seq;
      this.fold(events);
      this.settle();
      if (this.seq === before) {
        if (wake === Infinity) throw new Error(`update ${updateId} is stuck in ${u.status}: ${JSON.stringify(ds)}`);
        this.now = wake;
      } else this.now += 1;
      expect(this.state.anomalies).toEqual([]);
    }
    throw new Error("the update did not end in 2,000 steps");
  }

  /** Each live instance's config version. */
  versions(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const [i, id] of this.state.jobs.get(JOB)!.instances) {
      const t = this.state.tasks.get(id)!;
      if (t.state === "RUNNING") out[i] = t.configVersion;
    }
    return out;
  }
}

const config = (instances: number, cmd = "sleep 1000") =>
  validateJobSpec(testSpec("web", { instances, service: true, processes: [{ name: "main", cmdline: cmd }] }));

describe("the updater's decisions, played to the end", () => {
  it("6 instances, batchSize 2, waitForBatchCompletion: groups of 2, 2, 2, ROLLED_FORWARD, all on the new config", () => {
    const sim = new Sim();
    sim.create(config(6));
    const id = sim.update(config(6, "sleep 2000"), { batchSize: 2, waitForBatchCompletion: true, watchSecs: 10 });
    expect(sim.run(id)).toBe("ROLLED_FORWARD");
    expect(sim.rounds).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    expect(sim.versions()).toEqual({ 0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 2 });
    expect(sim.state.jobs.get(JOB)!.configVersion).toBe(2);
  });

  it("variableBatch [1, 2] on 5 instances: groups of 1, 2, 2", () => {
    const sim = new Sim();
    sim.create(config(5));
    const id = sim.update(config(5, "sleep 2000"), { strategy: { variableBatch: { batchSizes: [1, 2] } }, watchSecs: 0 });
    expect(sim.run(id)).toBe("ROLLED_FORWARD");
    expect(sim.rounds).toEqual([[0], [1, 2], [3, 4]]);
  });

  it("a queue of 2 keeps at most 2 instances in flight", () => {
    const sim = new Sim();
    sim.create(config(5));
    const id = sim.update(config(5, "sleep 2000"), { batchSize: 2, watchSecs: 5 });
    expect(sim.run(id)).toBe("ROLLED_FORWARD");
    expect(sim.rounds.flat()).toEqual([0, 1, 2, 3, 4]);
    expect(Math.max(...sim.rounds.map((r) => r.length))).toBeLessThanOrEqual(2);
  });

  it("3 → 1 → 3 instances: the update kills, then adds, and changes nothing else", () => {
    const sim = new Sim();
    sim.create(config(3));
    const down = sim.update(config(1), {});
    expect(instanceDiff(sim.state, sim.state.updates.get(down)!)).toEqual({ added: [], changed: [], removed: [1, 2] });
    expect(sim.run(down)).toBe("ROLLED_FORWARD");
    expect(sim.versions()).toEqual({ 0: 1 });
    const up = sim.update(config(3), {});
    expect(instanceDiff(sim.state, sim.state.updates.get(up)!)).toEqual({ added: [1, 2], changed: [], removed: [] });
    expect(sim.run(up)).toBe("ROLLED_FORWARD");
    expect(sim.versions()).toEqual({ 0: 1, 1: 3, 2: 3 });
  });

  it("a config whose tasks fail rolls back: every instance ends on the old config", () => {
    const sim = new Sim();
    sim.create(config(4));
    sim.bad.add(2);
    const id = sim.update(config(4, "exit 1"), { batchSize: 2, watchSecs: 0 });
    expect(sim.run(id)).toBe("ROLLED_BACK");
    expect(sim.statuses).toEqual(["ROLLING_BACK", "ROLLED_BACK"]);
    expect(sim.versions()).toEqual({ 0: 1, 1: 1, 2: 1, 3: 1 });
    expect(sim.state.jobs.get(JOB)!.configVersion).toBe(1);
    const u = sim.state.updates.get(id)!;
    expect(Object.values(u.instanceActions).map((a) => a.action)).toContain("INSTANCE_ROLLED_BACK");
  });

  it("rollbackOnFailure false ends FAILED; maxTotalFailures lets failures through", () => {
    const sim = new Sim();
    sim.create(config(2));
    sim.bad.add(2);
    const id = sim.update(config(2, "exit 1"), { rollbackOnFailure: false, watchSecs: 0 });
    expect(sim.run(id)).toBe("FAILED");
    const sim2 = new Sim();
    sim2.create(config(2));
    sim2.bad.add(2);
    const id2 = sim2.update(config(2, "exit 1"), { maxTotalFailures: 2, watchSecs: 0 });
    expect(sim2.run(id2)).toBe("ROLLED_FORWARD");
  });

  it("decides nothing for a paused or finished update, and the same thing twice when asked twice", () => {
    const sim = new Sim();
    sim.create(config(2));
    const id = sim.update(config(2, "sleep 2000"), { watchSecs: 0 });
    expect(updateDecisions(sim.state, id, sim.now)).toEqual(updateDecisions(sim.state, id, sim.now));
    sim.fold([sim.ev("JobUpdateStateChanged", { updateId: id, to: "ROLL_FORWARD_PAUSED" })]);
    expect(updateDecisions(sim.state, id, sim.now)).toEqual([]);
    expect(updateDecisions(sim.state, "nope", sim.now)).toEqual([]);
  });
});
