// The web UI end to end, in a real headless Chromium (Debian's, driven by playwright-core; no
// browser is ever downloaded): a real nats-server, a scheduler and an agent running real
// processes, the UI server over the same log, and an operator's clicks. Jobs page → the job → a
// task, whose state machine shows RUNNING highlighted; back in time to the moment the job was
// created (the typed field, a typed RFC 3339 time, and the slider), where it was not RUNNING yet
// and the URL carries `at`; then, following now, a kill and an added instance show up without a
// reload, pushed by the live feed. Every wait is on an event or a selector, never a sleep.
// Screenshots go to test-artifacts/ui/. No Chromium is a failure, not a skip: CI installs it
// (.ci/run), and ROOST_CHROMIUM names another binary.

import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsBus } from "../src/bus/nats.js";
import type { JetStreamLog } from "../src/eventlog/jetstream.js";
import { type ReplicaReads, startReplicaReads } from "../src/ui/replica.js";
import { silentLogger } from "../src/util/logger.js";
import { apiRequest, errorOf } from "./support/api.js";
import { startCluster, type TestCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const CHROMIUM = process.env.ROOST_CHROMIUM || "/usr/bin/chromium";
const SHOTS = fileURLToPath(new URL("../test-artifacts/ui/", import.meta.url));
const JOB = "www-data/devel/hello";
/** How long one UI step may take (a fetch, a fold to a moment, an SSE push, a render). */
const STEP_MS = 10_000;
/** A whole test: a few steps, on a machine that may be running the rest of the suite. */
const TEST_MS = 45_000;

const nats = withNats();
let log: JetStreamLog;
let c: TestCluster;
let reads: ReplicaReads | undefined;
/** The UI's address: http://127.0.0.1:PORT/ui/ */
let ui: string;
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];
let created: { job: string; taskIds: string[]; seq: number };

/** Why the browser cannot run (no Chromium): every test then fails with it, none is skipped. */
const noChromium = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: the web UI's end-to-end test needs Debian's chromium (apt-get install chromium; .ci/run installs it), or ROOST_CHROMIUM=/path/to/chromium`;

/** First thing in every test: fail (never skip) without a browser to drive. */
function needChromium(): void {
  if (noChromium) throw new Error(noChromium);
}

beforeAll(async () => {
  if (noChromium) return;
  log = await nats.openLog("ROOST");
  const bus = await NatsBus.connect(nats.url, "ui-e2e-scheduler");
  c = await startCluster({ agents: 1, bus, log });
  // The scheduler replica serves the UI over its own fold, as `roost scheduler --http` does.
  reads = await startReplicaReads({ replica: c.scheduler, log, logger: silentLogger, http: { host: "127.0.0.1", port: 0 } });
  ui = reads.ui!.url;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  // One context: a second tab shares the first one's storage (the machine's layout, cached there).
  page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("response", (r) => {
    if (r.status() >= 400) pageErrors.push(`${r.status()} ${r.url()}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text());
  });
  mkdirSync(SHOTS, { recursive: true });

  const r = await apiRequest<typeof created>(c.bus, "job.create", {
    spec: testSpec("hello", { instances: 2, service: true, processes: [{ name: "main", cmdline: "sleep 1000" }] }),
  });
  if (!r.ok) throw new Error(errorOf(r));
  created = r.value;
  await waitFor(
    c.scheduler,
    (s) => created.taskIds.every((id) => [...s.tasks.values()].some((t) => t.taskId === id && t.state === "RUNNING")),
    "both instances RUNNING",
  );
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await reads?.stop();
  await c?.stop();
});

const current = '[data-testid="machine"] [data-testid="machine-node"][data-current="true"]';

/** The state the task page's machine highlights, once it shows one of `states`. */
async function currentStateIs(...states: string[]): Promise<string> {
  const sel = `${current}:is(${states.map((s) => `[data-state="${s}"]`).join(",")})`;
  await page.locator(sel).waitFor();
  return (await page.locator(current).getAttribute("data-state")) ?? "";
}

/** The page's window, as far as these tests read it (the test is compiled without the DOM's types). */
type Win = { getComputedStyle(e: unknown): { fill: string } } & Record<string, unknown>;

const shot = (name: string) => page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });

describe("the web UI in a browser", () => {
  let taskUrl: string;

  it(
    "jobs → job → task: the task's state machine shows RUNNING highlighted",
    async () => {
      needChromium();
      await page.goto(`${ui}#/jobs`);
      const row = page.locator(`[data-testid="job-row"][data-job="${JOB}"]`);
      await row.waitFor();
      await page.locator('[data-testid="live-status"][data-connected="true"]').waitFor();
      await shot("jobs");

      await row.locator('[data-testid="job-link"]').click();
      await page.locator('[data-testid="page-job"] [data-testid="task-row"][data-state="RUNNING"]').nth(1).waitFor();
      expect(page.url()).toContain(`#/jobs/${JOB}`);
      await shot("job");

      const taskId = created.taskIds[0]!;
      await page.locator(`[data-testid="task-row"][data-task="${taskId}"] [data-testid="task-link"]`).click();
      expect(await currentStateIs("RUNNING")).toBe("RUNNING");
      // Highlighted: class "current", drawn filled (style.css), unlike every other state.
      expect(await page.locator(current).getAttribute("class")).toContain("current");
      const fills: string[][] = await page
        .locator('[data-testid="machine-node"] > rect:first-of-type')
        .evaluateAll((els) =>
          els.map((e) => [e.parentElement?.getAttribute("data-state") ?? "", (globalThis as unknown as Win).getComputedStyle(e).fill]),
        );
      expect(fills.filter(([, fill]) => fill === "rgb(37, 99, 235)").map(([state]) => state)).toEqual(["RUNNING"]);
      expect(await page.locator('[data-testid="machine-node"]').count()).toBeGreaterThanOrEqual(16);
      // The timeline lists the task's way there, with the placement decision beside it.
      const states = await page.locator('[data-testid="history-row"]').evaluateAll((rows) => rows.map((r) => r.getAttribute("data-state")));
      expect(states[0]).toBe("PENDING");
      expect(states).toContain("ASSIGNED");
      expect(states.at(-1)).toBe("RUNNING");
      await page.locator('[data-testid="placement"]').waitFor();
      expect(await page.locator('[data-testid="placement"]').textContent()).toContain("host-1");
      taskUrl = page.url();
      expect(taskUrl).toContain(`#/tasks/${taskId}`);
      expect(taskUrl).not.toContain("at=");
      await shot("task");
    },
    TEST_MS,
  );

  it(
    "travels back to the job's creation: the task was not RUNNING yet, and the URL carries at",
    async () => {
      needChromium();
      // A sequence typed into the field.
      await page.locator('[data-testid="time-input"]').fill(String(created.seq));
      await page.locator('[data-testid="time-input"]').press("Enter");
      await page.waitForURL(new RegExp(`[?&]at=${created.seq}$`));
      expect(await currentStateIs("PENDING", "ASSIGNED")).toMatch(/^(PENDING|ASSIGNED)$/);
      await page.locator(`[data-testid="shown-at"][data-seq="${created.seq}"]`).waitFor();
      expect(await page.locator('[data-testid="live-status"]').textContent()).toContain("past");
      expect(await page.locator('[data-testid="history-row"][data-state="RUNNING"]').count()).toBe(0);
      await shot("timetravel");

      // The link carries the moment: another tab opened on it shows the same past.
      const shared = page.url();
      const other = await page.context().newPage();
      try {
        await other.goto(shared);
        await other.locator(`${current}:is([data-state="PENDING"],[data-state="ASSIGNED"])`).waitFor({ timeout: STEP_MS });
      } finally {
        await other.close();
      }

      // An RFC 3339 time: the job's creation time folds to the state at that moment.
      const createdTs = Number(await page.locator(`[data-testid="shown-at"]`).getAttribute("data-ts"));
      const when = new Date(createdTs).toISOString();
      await page.locator('[data-testid="time-input"]').fill(when);
      await page.locator('[data-testid="time-go"]').click();
      await page.waitForURL((u) => u.hash.includes(`at=${encodeURIComponent(when)}`) || u.hash.includes(`at=${when}`));
      expect(await currentStateIs("PENDING", "ASSIGNED")).toMatch(/^(PENDING|ASSIGNED)$/);

      // The slider, to the moment the task became RUNNING (a sequence its timeline gave us at now).
      await page.goto(taskUrl);
      const runningSeq = Number(await page.locator('[data-testid="history-row"][data-state="RUNNING"]').getAttribute("data-seq"));
      await page.locator('[data-testid="time-slider"]').fill(String(created.seq));
      await page.waitForURL(new RegExp(`[?&]at=${created.seq}$`));
      expect(await currentStateIs("PENDING", "ASSIGNED")).toMatch(/^(PENDING|ASSIGNED)$/);
      await page.locator('[data-testid="time-slider"]').fill(String(runningSeq));
      await page.waitForURL(new RegExp(`[?&]at=${runningSeq}$`));
      expect(await currentStateIs("RUNNING")).toBe("RUNNING");
    },
    TEST_MS,
  );

  it(
    "following now, a kill and an added instance appear without a reload",
    async () => {
      needChromium();
      await page.locator('[data-testid="time-now"]').click();
      await page.waitForURL((u) => !u.hash.includes("at="));
      await page.locator('[data-testid="live-status"][data-connected="true"]').waitFor();
      expect(await currentStateIs("RUNNING")).toBe("RUNNING");
      await page.evaluate(() => {
        (globalThis as unknown as Win).__sameDocument = true;
      });

      const kill = await apiRequest(c.bus, "job.kill", { job: JOB, instances: [0] });
      expect(kill.ok, errorOf(kill)).toBe(true);
      expect(await currentStateIs("KILLING", "KILLED")).toMatch(/^(KILLING|KILLED)$/);
      await currentStateIs("KILLED");
      await shot("live-killed");

      await page.locator('[data-testid="task-job"]').click();
      await page.locator('[data-testid="page-job"] [data-testid="task-row"][data-instance="0"][data-state="KILLED"]').waitFor();
      const add = await apiRequest(c.bus, "job.add", { job: JOB, count: 1 });
      expect(add.ok, errorOf(add)).toBe(true);
      await page.locator('[data-testid="task-row"][data-instance="2"][data-state="RUNNING"]').waitFor();
      expect(await page.evaluate(() => (globalThis as unknown as Win).__sameDocument)).toBe(true);
      await shot("live-added");
      expect(pageErrors).toEqual([]);
    },
    TEST_MS,
  );

  it(
    "updates: an update appears in the list as it rolls, and its page shows each instance's progress and actions",
    async () => {
      needChromium();
      const roll = "www-data/devel/roll";
      const rollSpec = (cmdline: string, over: Record<string, unknown> = {}) =>
        testSpec("roll", { instances: 2, service: true, processes: [{ name: "main", cmdline }], ...over });
      const made = await apiRequest<{ taskIds: string[] }>(c.bus, "job.create", { spec: rollSpec("sleep 1000") });
      expect(made.ok, errorOf(made)).toBe(true);
      await waitFor(
        c.scheduler,
        (s) => [...s.jobs.get(roll as never)!.instances.values()].every((id) => s.tasks.get(id)?.state === "RUNNING"),
        "both instances of roll RUNNING",
      );
      await page.locator('[data-testid="nav-updates"]').click();
      await page.locator('[data-testid="page-updates"] [data-testid="updates-table"]').waitFor();

      // watchSecs 0: an instance counts as updated once its new task is RUNNING (the test stays fast).
      const started = await apiRequest<{ updateId: string }>(c.bus, "update.start", {
        job: roll,
        user: "e2e",
        spec: rollSpec("sleep 1001", { updateConfig: { batchSize: 1, watchSecs: 0 } }),
      });
      if (!started.ok) throw new Error(errorOf(started));
      const updateId = started.value.updateId;
      // The live feed brings it in, and on to ROLLED_FORWARD with both instances done.
      const row = page.locator(`[data-testid="update-row"][data-update="${updateId}"]`);
      await row.and(page.locator('[data-status="ROLLED_FORWARD"]')).waitFor();
      expect(await row.getAttribute("data-job")).toBe(roll);
      expect(await row.locator('[data-testid="update-progress"]').getAttribute("data-done")).toBe("2");
      expect(await row.textContent()).toContain("e2e");
      await shot("updates");

      await row.locator('[data-testid="update-link"]').click();
      await page.locator('[data-testid="page-update"] [data-testid="update-status"][data-status="ROLLED_FORWARD"]').waitFor();
      expect(page.url()).toContain(`#/updates/${updateId}`);
      const statuses = await page
        .locator('[data-testid="status-row"]')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-status")));
      expect(statuses).toEqual(["ROLLED_FORWARD", "ROLLING_FORWARD"]);
      const instances = page.locator('[data-testid="instance-row"]');
      expect(await instances.count()).toBe(2);
      for (const i of [0, 1]) {
        const r = page.locator(`[data-testid="instance-row"][data-instance="${i}"]`);
        expect(await r.getAttribute("data-action")).toBe("INSTANCE_UPDATED");
        expect(await r.locator('[data-testid="instance-progress"]').getAttribute("data-progress")).toBe("1");
        await r.locator('[data-testid="instance-actions"] summary').click();
        const actions = await r
          .locator('[data-testid="action-row"]')
          .evaluateAll((rows) => rows.map((x) => [x.getAttribute("data-action"), x.textContent ?? ""]));
        expect(actions.map(([a]) => a)).toEqual(["INSTANCE_UPDATING", "INSTANCE_UPDATED"]);
        for (const [, text] of actions) expect(text).toContain(updateId);
      }
      await shot("update");

      // Back to the moment instance 0 began (its INSTANCE_UPDATING links there): it is at work, part
      // way along its bar, and instance 1 has not started.
      await page.locator('[data-testid="instance-row"][data-instance="0"] [data-testid="action-row"] a').first().click();
      await page.locator('[data-testid="update-status"][data-status="ROLLING_FORWARD"]').waitFor();
      expect(page.url()).toMatch(/[?&]at=\d+$/);
      const first = page.locator('[data-testid="instance-row"][data-instance="0"]');
      expect(await first.getAttribute("data-action")).toBe("INSTANCE_UPDATING");
      const progress = Number(await first.locator('[data-testid="instance-progress"]').getAttribute("data-progress"));
      expect(progress).toBeGreaterThan(0);
      expect(progress).toBeLessThan(1);
      expect(await page.locator('[data-testid="instance-row"][data-instance="1"]').getAttribute("data-action")).toBe("");
      await shot("update-past");
      expect(pageErrors).toEqual([]);
    },
    TEST_MS,
  );

  it(
    "maintenance: a DRAINING host with its drain request, its progress and a denial with its reason",
    async () => {
      needChromium();
      // The drain and a denial as the leader logs them (committed here, in one record, through its
      // term), then the page as of that record: whatever a drain does next, that moment stays.
      const s = c.scheduler.state;
      const task = [...s.tasks.values()].find((t) => t.host === "host-1" && t.state === "RUNNING")!;
      expect(task, "a task RUNNING on host-1").toBeDefined();
      const reason = `SLA 95% over 30m of job ${task.job}: 1 of 2 task(s) would stay active, 2 required; would break`;
      const seq = await c.scheduler.commit([
        c.scheduler.event(
          "HostMaintenanceChanged",
          {
            hosts: ["host-1"],
            to: "DRAINING",
            user: "e2e",
            drain: { sla: { percentage: 95, durationSecs: 1800 }, forceDrainTimeoutMs: 7 * 86_400_000, slaAwareKillNonProd: true },
          },
          "drain of host-1 requested by e2e",
        ),
        c.scheduler.event("SlaDrainDenied", { taskId: task.taskId, host: "host-1" }, reason),
      ]);
      await page.goto(`${ui}#/maintenance?at=${seq}`);
      const host = page.locator('[data-testid="maint-host-row"][data-host="host-1"]');
      await host.and(page.locator('[data-mode="DRAINING"]')).waitFor();
      expect(await host.locator('[data-testid="drain-request"]').textContent()).toContain("95% active over 30m");
      expect(Number(await host.locator('[data-testid="drain-progress"]').getAttribute("data-active"))).toBeGreaterThanOrEqual(1);
      expect(await host.textContent()).toContain("e2e");
      const denial = page.locator(`[data-testid="denial-row"][data-task="${task.taskId}"]`);
      expect(await denial.locator('[data-testid="denial-reason"]').textContent()).toBe(reason);
      await page.locator('[data-testid="nav-maintenance"][class="sel"]').waitFor();
      await shot("maintenance");
      expect(pageErrors).toEqual([]);
    },
    TEST_MS,
  );
});
