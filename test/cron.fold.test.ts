// Cron jobs in the fold: what CronJobScheduled, CronJobDescheduled and CronTriggered do to the
// state, what it refuses (as anomalies, the same on every replica: a trigger of an unknown cron
// job, a fire without its run, the same minute twice), the leader's batch check agreeing with the
// fold, and that cron jobs hash, compare and snapshot like the rest, absent when there are none.

import { describe, expect, it } from "vitest";
import { type AnyEnvelope, type EventPayloads, type EventType, makeEnvelope } from "../src/domain/events.js";
import { asJobKey, asTaskId } from "../src/domain/types.js";
import { firstDifference, partHashes } from "../src/replay/compare.js";
import { scopeOf } from "../src/replay/eventScope.js";
import { BatchOverlay, foldRecord, rejection, touches } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { decodeSnapshot, encodeSnapshot } from "../src/replay/snapshot.js";
import { ClusterState } from "../src/replay/state.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { cronList, cronShow } from "../src/cron/queries.js";
import { testSpec } from "./support/specs.js";

const JOB = asJobKey("www-data/devel/report");
const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1);
let ts = T0;
const ev = <T extends EventType>(type: T, data: EventPayloads[T], reason = `${type} for the test`, at?: number): AnyEnvelope =>
  makeEnvelope(type, data, { epoch: 1, ts: at ?? (ts += 1000), corr: "c", reason }) as AnyEnvelope;

const cronSpec = (over: Record<string, unknown> = {}) =>
  validateJobSpec(testSpec("report", { cronSchedule: "* * * * *", instances: 2, ...over }));
const scheduled = (over: Record<string, unknown> = {}) => ev("CronJobScheduled", { job: cronSpec(over), user: "alice" });
const trigger = (minuteMs: number, outcome: "fired" | "skipped" | "collided", over: Partial<EventPayloads["CronTriggered"]> = {}) =>
  ev("CronTriggered", { job: JOB, minuteMs, outcome, missed: 0, ...over }, `trigger ${outcome}`);

/** A run as the Cron actor writes it: JobCreated, a TaskCreated per instance, then CronTriggered "fired". */
function run(minuteMs: number, version: number, over: Partial<EventPayloads["CronTriggered"]> = {}): AnyEnvelope[] {
  const config = cronSpec();
  return [
    ev("JobCreated", { job: config, configVersion: version }),
    ...[0, 1].map((i) =>
      ev("TaskCreated", {
        taskId: asTaskId(`report-${version}-${i}`),
        job: JOB,
        instance: i,
        configVersion: version,
        ancestorId: null,
        failureCount: 0,
        state: "PENDING",
      }),
    ),
    trigger(minuteMs, "fired", over),
  ];
}

/** The job's run ends: killed, each task KILLED. */
function end(s: ClusterState): void {
  foldRecord(s, s.seq + 1, [ev("JobKillRequested", { job: JOB, instances: null, user: "t" })]);
  for (const t of s.jobs.get(JOB)!.instances.values())
    if (!["KILLED", "DELETED"].includes(s.tasks.get(t)!.state))
      foldRecord(s, s.seq + 1, [ev("TaskStateChanged", { taskId: t, to: "KILLED" })]);
}

function folded(records: AnyEnvelope[][]): ClusterState {
  const s = new ClusterState();
  for (const [i, r] of records.entries()) foldRecord(s, i + 1, r);
  return s;
}

describe("cron jobs in the fold", () => {
  it("a scheduled job records its template; a fired trigger its minute, next to the run it created", () => {
    ts = T0;
    const s = folded([[scheduled()], run(T0 + MIN, 1)]);
    const c = s.cronJobs.get(JOB)!;
    expect(c).toMatchObject({
      key: JOB,
      user: "alice",
      scheduledSeq: 1,
      scheduledTs: T0 + 1000,
      lastFiredMinuteMs: T0 + MIN,
      pendingRun: null,
    });
    expect(c.config.cronSchedule).toBe("* * * * *");
    expect(c.lastTrigger).toMatchObject({ minuteMs: T0 + MIN, outcome: "fired", missed: 0, user: null, seq: 2, reason: "trigger fired" });
    expect(s.jobs.get(JOB)!.instances.size).toBe(2);
    expect(s.pending.size).toBe(2);
    expect(s.anomalyCount).toBe(0);
  });

  it("KILL_EXISTING: a collision leaves the run waiting; the fire for the same minute ends the wait", () => {
    ts = T0;
    const s = folded([
      [scheduled()],
      run(T0 + MIN, 1),
      [trigger(T0 + 2 * MIN, "collided"), ev("JobKillRequested", { job: JOB, instances: null, user: "cron" })],
    ]);
    const c = s.cronJobs.get(JOB)!;
    expect(c.pendingRun).toMatchObject({ minuteMs: T0 + 2 * MIN, user: null, seq: 3 });
    expect(c.lastFiredMinuteMs).toBe(T0 + 2 * MIN);
    for (const t of s.jobs.get(JOB)!.instances.values()) foldRecord(s, s.seq + 1, [ev("TaskStateChanged", { taskId: t, to: "KILLED" })]);
    foldRecord(s, s.seq + 1, run(T0 + 2 * MIN, 2));
    expect(c.pendingRun).toBeNull();
    expect(s.cronJobs.get(JOB)!.lastTrigger).toMatchObject({ outcome: "fired", minuteMs: T0 + 2 * MIN });
    expect(s.anomalyCount).toBe(0);
  });

  it("a manual start moves no minute; a schedule again keeps the history; a deschedule forgets the job", () => {
    ts = T0;
    const s = folded([[scheduled()], run(T0 + 5 * MIN, 1)]);
    end(s);
    foldRecord(s, s.seq + 1, run(T0 + 90_000, 2, { user: "bob" }));
    expect(s.cronJobs.get(JOB)!.lastFiredMinuteMs).toBe(T0 + 5 * MIN);
    expect(s.cronJobs.get(JOB)!.lastTrigger).toMatchObject({ user: "bob", minuteMs: T0 + 90_000 });
    const at = s.seq + 1;
    foldRecord(s, at, [scheduled({ cronSchedule: "*/5 * * * *", cronCollisionPolicy: "CANCEL_NEW" })]);
    const c = s.cronJobs.get(JOB)!;
    expect(c).toMatchObject({ scheduledSeq: at, lastFiredMinuteMs: T0 + 5 * MIN });
    expect(c.config.cronCollisionPolicy).toBe("CANCEL_NEW");
    foldRecord(s, s.seq + 1, [ev("CronJobDescheduled", { job: JOB, user: "alice" })]);
    expect(s.cronJobs.size).toBe(0);
    expect(s.jobs.has(JOB)).toBe(true); // the run is an ordinary job: it goes on
    expect(s.anomalyCount).toBe(0);
  });

  it("refuses, as anomalies: unknown cron jobs, a fire without its run, a minute taken twice, a template without a schedule", () => {
    ts = T0;
    const s = folded([
      [trigger(T0 + MIN, "skipped")], // 1: nothing is scheduled
      [ev("CronJobDescheduled", { job: JOB, user: "alice" })], // 2
      [scheduled()], // 3
      [trigger(T0 + MIN, "fired")], // 4: no JobCreated before it in its record
      run(T0 + MIN, 1), // 5
      [trigger(T0 + MIN, "skipped")], // 6: the minute was taken (5)
      [trigger(T0, "collided")], // 7: and an earlier one
      run(T0 + MIN, 2), // 8: fired twice for one minute (its JobCreated is refused too: the run is active)
      [ev("CronJobScheduled", { job: validateJobSpec(testSpec("plain")), user: "alice" })], // 9: no cronSchedule
      [trigger(T0 + 2 * MIN, "skipped", { job: asJobKey("www-data/devel/nope") })], // 10
    ]);
    expect(s.anomalies.map((a) => [a.seq, a.index, a.type, a.why])).toEqual([
      [1, 0, "CronTriggered", "unknown cron job www-data/devel/report"],
      [2, 0, "CronJobDescheduled", "unknown cron job www-data/devel/report"],
      [4, 0, "CronTriggered", "a fired trigger of www-data/devel/report must follow the JobCreated of its run in the same record"],
      [6, 0, "CronTriggered", `the trigger of www-data/devel/report for ${T0 + MIN} was taken already (the last taken is ${T0 + MIN})`],
      [7, 0, "CronTriggered", `the trigger of www-data/devel/report for ${T0} was taken already (the last taken is ${T0 + MIN})`],
      [8, 0, "JobCreated", "job www-data/devel/report already exists"],
      [8, 1, "TaskCreated", "job www-data/devel/report has no config version 2"],
      [8, 2, "TaskCreated", "job www-data/devel/report has no config version 2"],
      [8, 3, "CronTriggered", "a fired trigger of www-data/devel/report must follow the JobCreated of its run in the same record"],
      [9, 0, "CronJobScheduled", "job www-data/devel/plain has no cronSchedule: it is not a cron job"],
      [10, 0, "CronTriggered", "unknown cron job www-data/devel/nope"],
    ]);
    expect(s.cronJobs.get(JOB)!.lastTrigger).toMatchObject({ seq: 5, outcome: "fired" });
  });

  it("the leader's batch check agrees: a fire passes only after its run's JobCreated in the same batch", () => {
    ts = T0;
    const s = folded([[scheduled()]]);
    const batch = run(T0 + MIN, 1);
    const overlay = new BatchOverlay();
    const verdicts = batch.map((e) => {
      const why = rejection(s, e, overlay);
      if (why === null) overlay.note(e);
      return why;
    });
    expect(verdicts).toEqual([null, null, null, null]);
    expect(rejection(s, trigger(T0 + MIN, "fired"), new BatchOverlay())).toMatch(/must follow the JobCreated/);
    // The overtaker test (Appender's recheck) and the event stream see the trigger as the job's.
    const seen: string[] = [];
    touches(
      trigger(T0, "fired"),
      () => false,
      (k) => {
        seen.push(k);
        return false;
      },
    );
    expect(seen).toEqual([JOB]);
    expect(scopeOf(scheduled(), s)).toMatchObject({ job: JOB, role: "www-data" });
    expect(scopeOf(trigger(T0, "fired"), s)).toMatchObject({ job: JOB, role: "www-data" });
  });

  it("hashes, compares and snapshots cron jobs; a state without any hashes as before", () => {
    ts = T0;
    const plain = folded([[ev("JobCreated", { job: validateJobSpec(testSpec("web")), configVersion: 1 })]]);
    const noCron = stateHash(plain);
    expect(Object.keys(partHashes(plain))).not.toContain("cronJobs");
    ts = T0;
    const s = folded([[ev("JobCreated", { job: validateJobSpec(testSpec("web")), configVersion: 1 })], [scheduled()], run(T0 + MIN, 1)]);
    expect(stateHash(s)).not.toBe(noCron);
    expect(Object.keys(partHashes(s))).toContain("cronJobs");
    const back = decodeSnapshot(encodeSnapshot(s));
    expect(back.cronJobs.get(JOB)).toEqual(s.cronJobs.get(JOB));
    expect(stateHash(back)).toBe(stateHash(s));
    expect(decodeSnapshot(encodeSnapshot(plain)).cronJobs.size).toBe(0);
    // Two logs alike but for who scheduled the job: the difference is named.
    ts = T0;
    const c = folded([[scheduled()]]);
    ts = T0;
    const d = folded([[ev("CronJobScheduled", { job: cronSpec(), user: "bob" })]]);
    expect(firstDifference(c, d)).toMatchObject({ part: "cronJobs", key: JOB });
  });

  it("cron show and list read the state at a given moment: next fire times are computed there, never folded", () => {
    ts = T0;
    const s = folded([[scheduled({ cronSchedule: "0 9 * * MON-FRI", cronTimezone: "Europe/London" })]]);
    const show = cronShow(s, JOB, Date.UTC(2026, 0, 2, 12)); // a Friday, noon
    expect(show).toMatchObject({
      schedule: "0 9 * * MON-FRI",
      timezone: "Europe/London",
      collisionPolicy: "KILL_EXISTING",
      lastTrigger: null,
    });
    expect(show!.nextFires.map((t) => new Date(t).toISOString())).toEqual([
      "2026-01-05T09:00:00.000Z",
      "2026-01-06T09:00:00.000Z",
      "2026-01-07T09:00:00.000Z",
      "2026-01-08T09:00:00.000Z",
      "2026-01-09T09:00:00.000Z",
    ]);
    expect(cronShow(s, "www-data/devel/nope", T0)).toBeNull();
    expect(cronList(s, T0, "www-data").map((j) => j.job)).toEqual([JOB]);
    expect(cronList(s, T0, "other")).toEqual([]);
  });
});
