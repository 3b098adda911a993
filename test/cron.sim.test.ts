// Cron jobs in the simulator: the real scheduler (its Cron actor on the leader's clock), simulated
// agents, virtual time. One job every minute under each collision policy; a trigger taken once
// per minute across a leader's crash; a new leader after an outage fires ONCE, saying it is
// catching up; and the API's cron ops (schedule, start, show, list, deschedule) with their
// refusals. Virtual time only: nothing here sleeps or asserts how long anything took.

import { afterEach, describe, expect, it } from "vitest";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { Sim } from "../src/sim/sim.js";
import { TERMINAL_STATES } from "../src/statemachines/taskStates.js";
import { testSpec } from "./support/specs.js";

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1); // the simulator's epoch: midnight
const JOB = "www-data/devel/report";
const AGENTS = [{ count: 2, cpus: 4, ramMb: 4096, diskMb: 8192 }];

const cronSpec = (over: Record<string, unknown> = {}) =>
  testSpec("report", { cronSchedule: "* * * * *", instances: 2, maxTaskFailures: 1, ...over });

let sims: Sim[] = [];
afterEach(async () => {
  for (const s of sims) await s.stop();
  sims = [];
});

async function start(opts: Partial<Parameters<typeof Sim.start>[0]> = {}): Promise<Sim> {
  const sim = await Sim.start({ seed: 7, agents: AGENTS, ...opts });
  sims.push(sim);
  return sim;
}

interface Trigger {
  seq: number;
  minute: string;
  outcome: string;
  missed: number;
  user?: string;
  reason: string;
}

/** The CronTriggered events in the log, in order. */
async function triggers(sim: Sim): Promise<Trigger[]> {
  return (await sim.events()).flatMap(({ seq, event }) =>
    event.type === "CronTriggered"
      ? [
          {
            seq,
            minute: new Date(event.data.minuteMs).toISOString().slice(11, 16),
            outcome: event.data.outcome,
            missed: event.data.missed,
            ...(event.data.user !== undefined ? { user: event.data.user } : {}),
            reason: event.reason,
          },
        ]
      : [],
  );
}

/** No instance ever had two live tasks: every record folded again, checked after each. */
async function neverOverlapped(sim: Sim): Promise<void> {
  const s = new ClusterState();
  for await (const r of sim.log.read(1)) {
    foldRecord(s, r.seq, r.events);
    const live = new Map<string, number>();
    for (const t of s.tasks.values()) {
      if (TERMINAL_STATES.has(t.state)) continue;
      const k = `${t.job}#${t.instance}`;
      live.set(k, (live.get(k) ?? 0) + 1);
      expect(live.get(k), `two live tasks of ${k} after record ${r.seq}`).toBe(1);
    }
    if (r.seq >= (await sim.log.lastSeq())) break;
  }
  expect(s.anomalyCount).toBe(0);
}

const lastTriggerIs = (minuteMs: number, outcome: string) => (s: ClusterState) => {
  const t = s.cronJobs.get(JOB as never)?.lastTrigger;
  return t?.minuteMs === minuteMs && t.outcome === outcome;
};

describe("cron jobs on the simulator's clock", () => {
  it("CANCEL_NEW, every minute, a run of 90 s: fired, skipped, fired, skipped, each with its reason", async () => {
    const sim = await start();
    sim.behave(JOB, { startMs: 100, runMs: 90_000 });
    const r = await sim.request<{ job: string; nextFire: number; seq: number }>("cron.schedule", {
      spec: cronSpec({ cronCollisionPolicy: "CANCEL_NEW" }),
      user: "alice",
    });
    expect(r).toMatchObject({ job: JOB, nextFire: T0 + MIN });
    expect(sim.state.jobs.has(JOB as never)).toBe(false); // nothing runs until it fires
    await sim.runUntil(lastTriggerIs(T0 + 4 * MIN, "skipped"), 5 * MIN, "the trigger of 00:04 skipped");
    const t = await triggers(sim);
    expect(t.map((x) => `${x.minute} ${x.outcome}`)).toEqual(["00:01 fired", "00:02 skipped", "00:03 fired", "00:04 skipped"]);
    expect(t[0]!.reason).toBe("cron * * * * * fired for 2026-01-01T00:01Z");
    expect(t[1]!.reason).toBe(
      "cron * * * * * fired for 2026-01-01T00:02Z; CANCEL_NEW: the previous run is still active (2 tasks); this trigger is skipped",
    );
    // Each fired trigger is one record with its run: JobCreated, 2 × TaskCreated, CronTriggered.
    const fired = (await sim.events()).filter((e) => e.seq === t[0]!.seq).map((e) => e.event.type);
    expect(fired).toEqual(["JobCreated", "TaskCreated", "TaskCreated", "CronTriggered"]);
    await neverOverlapped(sim);
    // What cron show says: the newest trigger, its reason, the next fire times from the clock.
    const show = await sim.request<Record<string, unknown>>("cron.show", { job: JOB });
    expect(show).toMatchObject({
      job: JOB,
      schedule: "* * * * *",
      timezone: "UTC",
      collisionPolicy: "CANCEL_NEW",
      lastFiredMinuteMs: T0 + 4 * MIN,
      lastTrigger: { outcome: "skipped", minuteMs: T0 + 4 * MIN, user: null, reason: t[3]!.reason },
      pendingRun: null,
      activeTasks: 2,
    });
    expect((show.nextFires as number[])[0]).toBeGreaterThan(sim.clock.now());
    const reg = sim.scheduler.metrics.registry;
    const count = async (name: string, labels: Record<string, string> = {}) =>
      (await reg.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
    expect(await count("roost_cron_job_triggers_total", { outcome: "fired" })).toBe(2);
    expect(await count("roost_cron_job_triggers_total", { outcome: "skipped" })).toBe(2);
    expect(await count("roost_cron_job_collisions_total")).toBe(2);
  });

  it("KILL_EXISTING, every minute, a run that never ends: each trigger kills the run, then starts its own", async () => {
    const sim = await start();
    sim.behave(JOB, { startMs: 100, killMs: 2_000 }); // keeps running until killed
    await sim.request("cron.schedule", { spec: cronSpec(), user: "alice" });
    await sim.runUntil(lastTriggerIs(T0 + 3 * MIN, "fired"), 4 * MIN, "the run of 00:03 fired");
    const t = await triggers(sim);
    expect(t.map((x) => `${x.minute} ${x.outcome}`)).toEqual([
      "00:01 fired",
      "00:02 collided",
      "00:02 fired",
      "00:03 collided",
      "00:03 fired",
    ]);
    expect(t[1]!.reason).toBe(
      "cron * * * * * fired for 2026-01-01T00:02Z; KILL_EXISTING: the previous run is still active (2 tasks); killing it, then launching this run",
    );
    expect(t[2]!.reason).toMatch(
      /^KILL_EXISTING: the previous run has ended; launching the run for 2026-01-01T00:02Z \(its trigger collided at log sequence \d+\)$/,
    );
    // The collision's record holds the kill; the run starts only after the killed tasks ended.
    const events = await sim.events();
    expect(events.filter((e) => e.seq === t[1]!.seq).map((e) => e.event.type)).toEqual(["CronTriggered", "JobKillRequested"]);
    await neverOverlapped(sim);
    const runs = events.filter((e) => e.event.type === "JobCreated").map((e) => (e.event.data as { configVersion: number }).configVersion);
    expect(runs).toEqual([1, 2, 3]);
    expect(sim.state.cronJobs.get(JOB as never)!.pendingRun).toBeNull();
  });

  it("KILL_EXISTING: the waiting run survives a leader change, and the new leader starts it", async () => {
    const sim = await start({ replicas: 3, leaseMs: 3000 });
    sim.behave(JOB, { startMs: 100, killMs: 20_000 }); // a slow kill: the run waits past the leader's death
    await sim.request("cron.schedule", { spec: cronSpec(), user: "alice" });
    await sim.runUntil(lastTriggerIs(T0 + 2 * MIN, "collided"), 3 * MIN, "the trigger of 00:02 collided");
    const first = sim.scheduler;
    await sim.crashLeader();
    await sim.runUntil(lastTriggerIs(T0 + 2 * MIN, "fired"), MIN, "the waiting run of 00:02 started");
    expect(sim.scheduler).not.toBe(first);
    expect((await triggers(sim)).map((x) => `${x.minute} ${x.outcome}`)).toEqual(["00:01 fired", "00:02 collided", "00:02 fired"]);
    await neverOverlapped(sim);
  });

  it("a leader's crash: every minute is taken once, by whichever leader leads; the standbys fold the same", async () => {
    const sim = await start({ replicas: 3, leaseMs: 3000 });
    sim.behave(JOB, { startMs: 100, runMs: 10_000 });
    await sim.request("cron.schedule", { spec: cronSpec(), user: "alice" });
    await sim.runUntil(lastTriggerIs(T0 + 2 * MIN, "fired"), 3 * MIN, "the run of 00:02 fired");
    // It dies moments before 00:03 falls due: its successor takes 00:03 (late by the lease, not missed).
    await sim.advance(T0 + 3 * MIN - 1000 - sim.clock.now());
    const first = sim.scheduler;
    await sim.crashLeader();
    await sim.runUntil(lastTriggerIs(T0 + 5 * MIN, "fired"), 4 * MIN, "the run of 00:05 fired");
    expect(sim.scheduler).not.toBe(first);
    const t = await triggers(sim);
    expect(t.map((x) => `${x.minute} ${x.outcome} ${x.missed}`)).toEqual([
      "00:01 fired 0",
      "00:02 fired 0",
      "00:03 fired 0",
      "00:04 fired 0",
      "00:05 fired 0",
    ]);
    const byEpoch = (await sim.events()).filter((e) => e.event.type === "CronTriggered").map((e) => e.event.epoch);
    expect(new Set(byEpoch).size).toBe(2);
    await neverOverlapped(sim);
    await sim.settle();
    const leader = sim.scheduler;
    for (const r of sim.replicas) if (r.role !== "stopped") expect(stateHash(r.state)).toBe(stateHash(leader.state));
  });

  it("after an outage with no leader, the new leader fires ONCE for the latest minute, saying it is catching up", async () => {
    const after = await start();
    after.behave(JOB, { startMs: 100, runMs: 10_000 });
    await after.request("cron.schedule", { spec: cronSpec(), user: "alice" });
    await after.runUntil(lastTriggerIs(T0 + 2 * MIN, "fired"), 3 * MIN, "the run of 00:02 fired");
    await after.advance(30_000); // the run has ended: 00:02:30
    // The leader dies and no scheduler runs from 00:02:30 until 00:09:30: seven triggers fall due meanwhile.
    const dead = after.scheduler;
    dead.crash();
    await after.advance(7 * MIN);
    await after.restart(dead);
    await after.runUntil(lastTriggerIs(T0 + 9 * MIN, "fired"), MIN, "the catch-up fire");
    let t = await triggers(after);
    expect(t.slice(2).map((x) => `${x.minute} ${x.outcome} ${x.missed}`)).toEqual(["00:09 fired 6"]);
    expect(t[2]!.reason).toBe(
      "cron * * * * * catching up: 6 triggers were missed while no leader ran (last fired 2026-01-01T00:02Z); firing once for 2026-01-01T00:09Z",
    );
    // Then on time again.
    await after.runUntil(lastTriggerIs(T0 + 10 * MIN, "fired"), MIN, "the run of 00:10 fired");
    t = await triggers(after);
    expect(t.slice(3).map((x) => `${x.minute} ${x.outcome} ${x.missed}`)).toEqual(["00:10 fired 0"]);
    expect(t[3]!.reason).toBe("cron * * * * * fired for 2026-01-01T00:10Z");
    const misfires = (await after.scheduler.metrics.registry.getSingleMetric("roost_cron_job_misfires_total")!.get()).values[0]!.value;
    expect(misfires).toBe(6);
    await neverOverlapped(after);
  });

  it("the API: start runs it now; list and show; deschedule stops the triggers; refusals name the field and the rule", async () => {
    const sim = await start();
    sim.behave(JOB, { startMs: 100, runMs: 5_000 });
    const refused = async (op: string, data: unknown) => {
      try {
        await sim.request(op, data);
      } catch (err) {
        return `${(err as { code: string }).code}: ${(err as Error).message}`;
      }
      throw new Error(`${op} was not refused`);
    };
    // job.create refuses a cron spec; cron.schedule refuses one without a schedule, or a RUN_OVERLAP one.
    expect(await refused("job.create", { spec: cronSpec() })).toBe(
      "INVALID_REQUEST: spec.cronSchedule: rule: a cron job is scheduled with `roost cron schedule` (and run now with `roost cron start`); job.create starts instances at once",
    );
    expect(await refused("cron.schedule", { spec: testSpec("report") })).toMatch(
      /^INVALID_REQUEST: spec\.cronSchedule: is missing; rule: `roost cron schedule` takes a cron job's spec/,
    );
    expect(await refused("cron.schedule", { spec: cronSpec({ cronCollisionPolicy: "RUN_OVERLAP" }) })).toMatch(/cronCollisionPolicy/);
    expect(await refused("cron.start", { job: JOB })).toMatch(/^NOT_FOUND: job: www-data\/devel\/report is not a scheduled cron job/);
    // A running ordinary job holds the key.
    await sim.createJob(testSpec("busy", { service: true }));
    expect(await refused("cron.schedule", { spec: testSpec("busy", { cronSchedule: "0 * * * *" }) })).toMatch(
      /^CONFLICT: job www-data\/devel\/busy is running as a job that is not a cron job \(1 active task\(s\)\)/,
    );

    await sim.request("cron.schedule", { spec: cronSpec({ cronSchedule: "0 * * * *" }), user: "alice" });
    expect(await refused("job.create", { spec: testSpec("report") })).toMatch(
      /^CONFLICT: job www-data\/devel\/report is a scheduled cron job/,
    );
    const started = await sim.request<{ outcome: string; taskIds: string[]; minuteMs: number }>("cron.start", { job: JOB, user: "bob" });
    expect(started).toMatchObject({ outcome: "fired", minuteMs: sim.clock.now() });
    expect(started.taskIds).toHaveLength(2);
    // Started by hand, it moves no minute: the 01:00 trigger still fires.
    const c = sim.state.cronJobs.get(JOB as never)!;
    expect(c.lastFiredMinuteMs).toBeNull();
    expect(c.lastTrigger).toMatchObject({
      user: "bob",
      outcome: "fired",
      reason: "cron job www-data/devel/report started by bob (roost cron start)",
    });
    // Again while it runs: KILL_EXISTING collides.
    const again = await sim.request<{ outcome: string }>("cron.start", { job: JOB, user: "bob" });
    expect(again.outcome).toBe("collided");
    await sim.runUntil((s) => s.cronJobs.get(JOB as never)!.pendingRun === null, MIN, "the manual run started after the kill");
    expect((await triggers(sim)).map((x) => `${x.outcome} ${x.user}`)).toEqual(["fired bob", "collided bob", "fired bob"]);

    const list = await sim.request<Array<{ job: string; nextFire: number }>>("cron.list", {}, "www-data");
    expect(list).toEqual([expect.objectContaining({ job: JOB, schedule: "0 * * * *", nextFire: T0 + 60 * MIN })]);
    expect(await sim.request("cron.list", {}, "other")).toEqual([]);
    expect(await sim.request<unknown[]>("cron.list", {})).toHaveLength(1); // the cluster's
    expect(await refused("cron.show", { job: "www-data/devel/nope" })).toBe(
      "NOT_FOUND: job: www-data/devel/nope is not a scheduled cron job",
    );

    await sim.request("cron.deschedule", { job: JOB, user: "alice" });
    expect(sim.state.cronJobs.size).toBe(0);
    await sim.advance(61 * MIN);
    expect((await triggers(sim)).length).toBe(3); // 01:00 did not fire
    await neverOverlapped(sim);
  });
});
