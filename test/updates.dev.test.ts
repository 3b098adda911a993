// Rolling updates as a user drives them, on `roost dev --ha` (3 nats-servers, an R3 stream, 3
// scheduler replicas, real agents running a real health-checked HTTP service), through the real
// `roost` command (bin/roost.js, which runs dist/: `npm run build` first). Aurora's
// test_end_to_end.sh test_update, with its scheduler restart made harder (the leading scheduler
// is killed with -9 while the update rolls): start, list --status active, pause --message, resume,
// then `update wait` rides through the failover and exits 0 with every instance on the new config;
// then an update whose health check fails (`update wait` exits 4, ROLLED_BACK) and an aborted one
// (exits 20).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobStatus } from "../src/replay/queries.js";
import type { UpdateInfo } from "../src/updater/info.js";
import { RoostProcess, type RunResult, roost, roostOk, pollUntil } from "./support/roost.js";

const SERVICE = resolve("test/fixtures/service.mjs");
const JOB = "www-data/devel/web";
const INSTANCES = 4;

/** The service at config `version`; `extra` is more YAML (its updateConfig, another health check). */
function specYaml(version: number, extra: string): string {
  return `role: www-data
environment: devel
name: web
instances: ${INSTANCES}
service: true
resources: { cpus: 0.5, ramMb: 128, diskMb: 16, ports: [health] }
processes:
  - name: server
    cmdline: "VERSION=${version} ON_QUIT=exit exec ${process.execPath} ${SERVICE}"
${extra}`;
}
// The agents confine tasks (cgroups: a CFS quota of cpus): node needs a moment to listen, and
// the grace period costs a healthy task nothing (it is RUNNING on its first "ok").
const HEALTHY = "healthCheck: { initialIntervalSecs: 10, intervalSecs: 0.25 }\n";

let dir: string;
let dev: RoostProcess | null = null;

const cli = (args: string[]): Promise<RunResult> => roost(args, dir);
const ok = (args: string[]): Promise<string> => roostOk(args, dir);
const json = async <T>(args: string[]): Promise<T> => JSON.parse(await ok([...args, "--json"])) as T;
const poll = pollUntil;

type ClusterStatus = { schedulers: Array<{ id: string; pid: number; role: string }>; leader: { epoch: number } | null };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-updates-dev-"));
  writeFileSync(join(dir, "v1.yaml"), specYaml(1, HEALTHY));
  writeFileSync(join(dir, "v2.yaml"), specYaml(2, `${HEALTHY}updateConfig: { batchSize: 1, watchSecs: 5 }\n`));
  writeFileSync(
    join(dir, "bad.yaml"),
    specYaml(
      3,
      "healthCheck: { initialIntervalSecs: 1, intervalSecs: 0.25, minConsecutiveSuccesses: 2, shell: { command: 'exit 1' } }\n" +
        "updateConfig: { batchSize: 2, watchSecs: 0 }\n",
    ),
  );
  writeFileSync(join(dir, "slow.yaml"), specYaml(4, `${HEALTHY}updateConfig: { batchSize: 1, watchSecs: 60 }\n`));
  dev = new RoostProcess(["dev", "--ha", "--agents", "2", "--json"], dir);
  await dev.until((l) => l.includes("clusterFile"), "roost dev --ha to be ready", 90_000);
}, 120_000);

afterAll(async () => {
  if (dev) {
    const d = dev;
    const hurry = setTimeout(() => d.child.kill("SIGKILL"), 30_000);
    await d.stop("SIGINT");
    clearTimeout(hurry);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("roost update on roost dev --ha, through the real CLI", () => {
  it("start, list, pause, resume, the leader killed -9, wait → 0; a failing update → 4 (ROLLED_BACK); an aborted one → 20", async () => {
    // The job, every instance RUNNING (healthy) on config version 1.
    await ok(["job", "create", "v1.yaml", "--wait", "--timeout", "60"]);
    const v1 = await json<JobStatus>(["job", "status", JOB]);
    expect(v1.instances.map((i) => [i.state, i.configVersion])).toEqual(Array(INSTANCES).fill(["RUNNING", 1]));

    // Start: ROLLING_FORWARD, as `update list JOB --status active` shows (its third column).
    const started = await json<{ updateId: string; status: string }>(["update", "start", JOB, "v2.yaml", "--message", "to v2"]);
    const id = started.updateId;
    expect(started.status).toBe("ROLLING_FORWARD");
    const row = (await ok(["update", "list", JOB, "--status", "active"])).split("\n").find((l) => l.includes(id));
    expect(row?.trim().split(/\s+/)[2]).toBe("ROLLING_FORWARD");

    // Pause with a message: it holds; resume: it rolls on. (The leader is looked up while it holds.)
    await ok(["update", "pause", JOB, "--message", "hello"]);
    const paused = await json<UpdateInfo>(["update", "info", JOB]);
    expect(paused.status).toBe("ROLL_FORWARD_PAUSED");
    expect(paused.statuses.at(-1)).toMatchObject({ status: "ROLL_FORWARD_PAUSED", message: "hello" });
    const cs = await json<ClusterStatus>(["cluster", "status"]);
    const leader = cs.schedulers.find((s) => s.role === "leader");
    expect(leader?.pid, JSON.stringify(cs.schedulers)).toBeGreaterThan(0);
    const epoch = cs.leader!.epoch;
    const resumed = await json<{ status: string }>(["update", "resume", JOB]);
    expect(resumed.status).toBe("ROLLING_FORWARD");

    // Kill the leader with -9 while the update rolls; `update wait` rides through the failover.
    const killedAt = Date.now();
    process.kill(leader!.pid, "SIGKILL");
    const wait = await cli(["update", "wait", JOB, id, "--timeout", "30"]);
    expect(wait.code, wait.stderr + wait.stdout).toBe(0);
    const done = await json<UpdateInfo>(["update", "info", JOB, id]);
    expect(done.status).toBe("ROLLED_FORWARD");
    expect(done.statuses.map((s) => s.status)).toEqual(["ROLLING_FORWARD", "ROLL_FORWARD_PAUSED", "ROLLING_FORWARD", "ROLLED_FORWARD"]);
    expect(new Set(done.actions.filter((a) => a.action === "INSTANCE_UPDATED").map((a) => a.instance)).size).toBe(INSTANCES);
    // The update went on under another leader: a higher epoch, and instances updated after the kill.
    const after = await poll(
      () => json<ClusterStatus>(["cluster", "status"]),
      (s) => (s.leader?.epoch ?? 0) > epoch,
      "a new leader",
    );
    expect(after.schedulers.find((s) => s.role === "leader")?.pid).not.toBe(leader!.pid);
    expect(done.actions.some((a) => a.action === "INSTANCE_UPDATED" && a.ts > killedAt)).toBe(true);
    const v2 = await json<JobStatus>(["job", "status", JOB]);
    expect(v2.configVersion).toBe(2);
    expect(v2.instances.map((i) => [i.state, i.configVersion])).toEqual(Array(INSTANCES).fill(["RUNNING", 2]));

    // A config whose health check never passes: rolled back, `update wait` exits 4.
    const bad = await json<{ updateId: string }>(["update", "start", JOB, "bad.yaml"]);
    const failed = await cli(["update", "wait", JOB, bad.updateId]);
    expect(failed.code, failed.stderr + failed.stdout).toBe(4);
    const badInfo = await json<UpdateInfo>(["update", "info", JOB, bad.updateId]);
    expect(badInfo.status).toBe("ROLLED_BACK");
    expect(badInfo.actions.some((a) => a.action === "INSTANCE_UPDATE_FAILED")).toBe(true);
    const back = await json<JobStatus>(["job", "status", JOB]);
    expect(back.configVersion).toBe(2);
    expect(back.instances.map((i) => [i.state, i.configVersion])).toEqual(Array(INSTANCES).fill(["RUNNING", 2]));

    // An aborted update: `update wait` exits 20. The job's updates, newest first: none active.
    const slow = await json<{ updateId: string }>(["update", "start", JOB, "slow.yaml"]);
    const aborted = await json<{ status: string }>(["update", "abort", JOB, "--message", "never mind"]);
    expect(aborted.status).toBe("ABORTED");
    const gaveUp = await cli(["update", "wait", JOB, slow.updateId]);
    expect(gaveUp.code, gaveUp.stderr + gaveUp.stdout).toBe(20);
    expect((await json<UpdateInfo>(["update", "info", JOB, slow.updateId])).status).toBe("ABORTED");
    const list = await json<Array<{ updateId: string; status: string }>>(["update", "list", JOB]);
    expect(list.map((u) => [u.updateId, u.status])).toEqual([
      [slow.updateId, "ABORTED"],
      [bad.updateId, "ROLLED_BACK"],
      [id, "ROLLED_FORWARD"],
    ]);
  }, 150_000);
});
