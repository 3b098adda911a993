// `roost dev --embedded`: no nats-server; other roost commands reach the in-process log and bus
// through the loopback HTTP gateway.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { JobStatus, TaskHistory } from "../src/replay/queries.js";
import { RoostProcess, roost, roostJson } from "./support/roost.js";

let dir: string;
let dev: RoostProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-embedded-"));
  dev = new RoostProcess(["dev", "--embedded", "--agents", "2", "--json"], dir);
  await dev.until((l) => l.includes("clusterFile"), "the embedded cluster to be ready", 60_000);
}, 90_000);

afterAll(async () => {
  expect(await dev.stop("SIGINT")).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

it("says it runs embedded, and runs a batch job to FINISHED through the gateway", async () => {
  await dev.until((l) => l.includes('"embedded":true'), "the embedded notice");
  writeFileSync(
    join(dir, "job.yaml"),
    "role: ops\nenvironment: test\nname: once\nresources: {cpus: 0.1, ramMb: 16, diskMb: 16}\nprocesses: [{name: main, cmdline: 'echo done'}]\n",
  );
  // --wait --json prints JSON lines: created, one per change, then done (with the task ids).
  const wait = await roost(["job", "create", "job.yaml", "--wait", "--json"], dir);
  expect(wait.code, wait.stderr).toBe(0);
  const created = JSON.parse(wait.stdout.trim().split("\n").at(-1)!) as { event: string; taskIds: string[] };
  expect(created.event).toBe("done");
  const s = await roostJson<JobStatus>(["job", "status", "ops/test/once"], dir);
  expect(s.instances[0]!.state).toBe("FINISHED");
  const h = await roostJson<TaskHistory>(["task", "history", created.taskIds[0]!], dir);
  expect(h.events.map((e) => e.state)).toEqual(["PENDING", "ASSIGNED", "STARTING", "RUNNING", "FINISHED"]);
  expect(h.events.every((e) => (e.reason ?? "").length > 0)).toBe(true);
  const log = await roost(["log", "tail"], dir);
  expect(log.stdout).toMatch(/TaskStateChanged .*to=FINISHED/);
}, 60_000);
