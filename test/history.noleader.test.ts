// With every scheduler stopped, the SRE's tools still answer from the log alone: history,
// replay, inspect and verify through the CLI, and the web UI through `roost ui`. A real cell
// (nats-server, a scheduler, an agent running real processes) makes the log; then the scheduler
// stops, and nothing answers on the API any more.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsBus } from "../src/bus/nats.js";
import { type TestCluster, startCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { RoostProcess, roost } from "./support/roost.js";

const nats = withNats();
let cell: TestCluster;
let dir: string;
const cli = (args: string[]) => roost([...args, "--nats", nats.url, "--timeout", "20"], dir);

const SPEC = `role: www-data
environment: devel
name: sleeper
instances: 2
service: true
resources: { cpus: 0.1, ramMb: 16, diskMb: 16 }
processes:
  - name: sleep
    cmdline: sleep 300
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-noleader-"));
  writeFileSync(join(dir, "sleeper.yaml"), SPEC);
  const log = await nats.openLog("ROOST");
  const bus = await NatsBus.connect([nats.url], "noleader-test");
  cell = await startCluster({ log, bus, agents: 1 });
  const created = await cli(["job", "create", "sleeper.yaml", "--wait", "--timeout", "30"]);
  expect(created.code, created.stderr).toBe(0);
  await waitFor(cell.scheduler, (s) => [...s.tasks.values()].filter((t) => t.state === "RUNNING").length === 2, "2 RUNNING");
  // Every scheduler stops, and with it its reads: nothing answers on the API now.
  await cell.reads.stop();
  await cell.scheduler.stop();
}, 60_000);

afterAll(async () => {
  await cell?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("no scheduler up", () => {
  it("the leader's API is gone", async () => {
    const r = await roost(["job", "status", "www-data/devel/sleeper", "--nats", nats.url, "--timeout", "2"], dir);
    expect(r.stderr).toMatch(/no leader answered; this is the state folded from the log here/);
  });

  it("history, replay, inspect and verify answer from the log", async () => {
    const [history, replay, verify] = await Promise.all([
      cli(["history", "job", "www-data/devel/sleeper", "--json"]),
      cli(["replay", "--json"]),
      cli(["verify", "--json"]),
    ]);
    expect(history.code, history.stderr).toBe(0);
    const h = JSON.parse(history.stdout);
    expect(h.items.filter((i: { change: { to: string } | null }) => i.change?.to === "RUNNING")).toHaveLength(2);
    expect(replay.code, replay.stderr).toBe(0);
    const r = JSON.parse(replay.stdout);
    expect(r.jobs[0]).toMatchObject({ job: "www-data/devel/sleeper", states: { RUNNING: 2 } });
    expect(verify.code, verify.stderr).toBe(0);
    const v = JSON.parse(verify.stdout);
    expect(v.ok).toBe(true);
    expect(v.checks.map((c: { note?: string }) => c.note)).toContain("no leader answered");
    const taskId = r.jobs[0].tasks[0].taskId as string;
    const inspect = await cli(["inspect", "task", taskId, "--json"]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({
      state: "RUNNING",
      history: expect.arrayContaining([expect.objectContaining({ to: "RUNNING" })]),
    });
    // task status: the task from the log, and why its processes cannot be shown (no leader to ask the agent).
    const status = await roost(["task", "status", taskId, "--nats", nats.url, "--timeout", "3"], dir);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`task ${taskId}  www-data/devel/sleeper/\\d  RUNNING`));
    expect(status.stdout).toMatch(/processes: unknown: no leader answered to ask the agent/);
  });

  it("roost ui serves the web UI and its API from the log alone", async () => {
    const ui = new RoostProcess(["ui", "--nats", nats.url, "--listen", "127.0.0.1:0"], dir);
    try {
      const line = await ui.until((l) => l.startsWith("roost ui: http"), "roost ui's URL");
      const url = /http:\/\/\S+\/ui\//.exec(line)![0];
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<html/i);
      const summary = (await (await fetch(`${url}api/summary`)).json()) as { tasks: { byState: Record<string, number> } };
      expect(summary.tasks.byState.RUNNING).toBe(2);
      const timeline = (await (await fetch(`${url}api/timeline`)).json()) as { source: string; first: { seq: number } };
      expect(timeline).toMatchObject({ source: "log", first: { seq: 1 } });
      const earlier = (await (await fetch(`${url}api/summary?at=2`)).json()) as { at: { seq: number }; jobs: number };
      expect(earlier.at.seq).toBe(2);
    } finally {
      await ui.stop();
    }
  });
});
