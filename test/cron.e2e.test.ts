// A cron job on a real clock: a real nats-server (a free port, JetStream in a temp dir), the
// scheduler on it, an agent running real processes, and the `roost cron` commands as a user runs
// them (the CLI from source, through tsx). A job scheduled "* * * * *" fires at the next minute:
// the test awaits that trigger on the event stream, then the run's task FINISHED, and reads it back
// with `roost cron show`. Nothing sleeps; nothing asserts a duration.
//
// The scheduler's clock is the system's, shifted by a constant (under a minute) chosen so that a
// minute begins LEAD_MS after the cluster starts. On the system's own clock the test waited 0–60 s
// for the next minute (29–68 s per CI run, on a suite kept near 15 minutes); the timer, the
// trigger and the run are as real either way. The shift never changes while the scheduler runs,
// and everything that reads the time here (the cron timer, `cron schedule`'s next fire, `cron
// show`'s next fires) reads the scheduler's clock. A setup slower than LEAD_MS only costs the wait
// for the minute after.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Clock, systemClock } from "../src/actors/clock.js";
import { NatsBus } from "../src/bus/nats.js";
import { RoostClient, type RoostEvent } from "../src/client/roostClient.js";
import { startCluster, type TestCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";

const root = join(import.meta.dirname, "..");
const JOB = "www-data/devel/tick";
const nats = withNats();
let c: TestCluster;
let dir: string;

/** How long after the cluster starts a minute begins on the scheduler's clock: its setup and `cron schedule`'s, with room. */
const LEAD_MS = 12_000;

/** The system clock shifted by `shiftMs` (its timers are the system's). */
function shiftedClock(shiftMs: number): Clock {
  return { ...systemClock, now: () => Date.now() + shiftMs };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-cron-e2e-"));
  const log = await nats.openLog("ROOST_CRON_E2E");
  const clock = shiftedClock(60_000 - ((Date.now() + LEAD_MS) % 60_000));
  c = await startCluster({ agents: 1, bus: await NatsBus.connect(nats.url, "cron-e2e-scheduler"), log, clock });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `roost ARGS --nats URL --json` (without --json: `human`), from source; its exit code and (JSON) output. */
function roost(args: string[], human = false): Promise<{ code: number; out: unknown; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args, "--nats", nats.url, ...(human ? [] : ["--json"])],
      {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      let out: unknown = null;
      try {
        out = JSON.parse(stdout);
      } catch {
        out = stdout;
      }
      resolve({ code: code ?? -1, out, stderr });
    });
  });
}

describe("a cron job on the real clock", () => {
  it("`roost cron schedule` a job every minute: it fires at the next minute, its process runs, `cron show` tells why", async () => {
    const file = join(dir, "tick.json");
    writeFileSync(
      file,
      JSON.stringify({
        role: "www-data",
        environment: "devel",
        name: "tick",
        cronSchedule: "* * * * *",
        cronCollisionPolicy: "CANCEL_NEW",
        resources: { cpus: 0.1, ramMb: 32, diskMb: 16 },
        processes: [{ name: "main", cmdline: "echo tick from $ROOST_TASK_ID" }],
      }),
    );
    const client = await RoostClient.connect({ nats: nats.url, timeoutMs: 10_000 });
    const stop = new AbortController();
    try {
      // Watch the event stream from the start, so the first trigger cannot be missed.
      const firstTrigger = (async (): Promise<RoostEvent> => {
        for await (const e of client.events({ from: 1, follow: true, signal: stop.signal, filter: { type: ["CronTriggered"] } })) return e;
        throw new Error("the event stream ended before a trigger");
      })();

      const scheduled = await roost(["cron", "schedule", file]);
      expect(scheduled.code, scheduled.stderr).toBe(0);
      const r = scheduled.out as { job: string; nextFire: number; seq: number };
      expect(r.job).toBe(JOB);
      expect(r.nextFire % 60_000).toBe(0);
      expect(c.scheduler.state.jobs.has(JOB as never)).toBe(false); // nothing runs before it fires

      const fired = await firstTrigger;
      expect(fired).toMatchObject({ type: "CronTriggered", job: JOB, role: "www-data" });
      expect(fired.data).toMatchObject({ job: JOB, minuteMs: r.nextFire, outcome: "fired", missed: 0 });
      expect(fired.reason).toBe(`cron * * * * * fired for ${new Date(r.nextFire).toISOString().slice(0, 16)}Z`);

      // The run is a real process on the agent: it ends FINISHED.
      await waitFor(
        c.scheduler,
        (s) => {
          const job = s.jobs.get(JOB as never);
          const t = job?.instances.get(0);
          return t !== undefined && s.tasks.get(t)?.state === "FINISHED";
        },
        "the cron run FINISHED",
      );

      // The reads at once (each is a process of its own).
      const [show, text, list] = await Promise.all([
        roost(["cron", "show", JOB]),
        roost(["cron", "show", JOB], true),
        roost(["cron", "list"]),
      ]);
      expect(show.code, show.stderr).toBe(0);
      expect(show.out).toMatchObject({
        job: JOB,
        schedule: "* * * * *",
        timezone: "UTC",
        collisionPolicy: "CANCEL_NEW",
        lastTrigger: { outcome: "fired", minuteMs: r.nextFire, reason: fired.reason, user: null },
        pendingRun: null,
      });
      const next = (show.out as { nextFires: number[] }).nextFires;
      expect(next).toHaveLength(5);
      expect(next[0]! > r.nextFire).toBe(true);

      expect(text.out).toContain(
        `last trigger  ${new Date(r.nextFire).toISOString().slice(0, 16)}Z fired at log seq ${fired.seq}: ${fired.reason}`,
      );

      expect(list.code, list.stderr).toBe(0);
      expect(list.out).toEqual([expect.objectContaining({ job: JOB, schedule: "* * * * *" })]);

      const gone = await roost(["cron", "deschedule", JOB]);
      expect(gone.code, gone.stderr).toBe(0);
      expect(c.scheduler.state.cronJobs.size).toBe(0);
      const again = await roost(["cron", "show", JOB]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("www-data/devel/tick is not a scheduled cron job");
    } finally {
      stop.abort();
      await client.close();
    }
  }, 120_000);
});
