// Records the golden log of services on real processes: `npx tsx test/golden/make-services.ts NAME`.
//
// The in-process cluster (test/support/cluster.ts: a scheduler and two agents on the memory log
// and bus, confined with cgroups where the host has them) runs what issue 12 brought into the log:
// JobCreated with health checks, processes with Thermos's fields, order constraints, a lifecycle
// and a finalization wait; AgentRegistered saying how the agent isolates; STARTING held until the
// health checks pass, RUNNING "healthy after …"; a service whose /health turns bad ends FAILED
// "unhealthy: …" and is replaced; a kill that ends at /quitquitquit; ordered processes with a
// final one, killed (ended by SIGTERM); and, with cgroups, a task over its ramMb ending FAILED
// "memory limit exceeded (32 MiB)". NAME.log is msgpack pack() of the records' bytes, NAME.json
// its meta (as make.ts). Golden logs are forever: never regenerate an existing one.

import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createIsolator } from "../../src/agent/isolation.js";
import { taskSandboxDir } from "../../src/agent/sandbox.js";
import { decodeRecord } from "../../src/eventlog/envelope.js";
import { MemoryLog } from "../../src/eventlog/memory.js";
import { foldRecord } from "../../src/replay/fold.js";
import { checkInvariants } from "../../src/replay/invariants.js";
import { jobStatus } from "../../src/replay/queries.js";
import { ClusterState } from "../../src/replay/state.js";
import { startCluster, waitFor } from "../support/cluster.js";
import { waitForFile } from "../support/files.js";
import { testSpec } from "../support/specs.js";
import { writeGolden } from "../support/golden.js";

const name = process.argv[2];
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make-services.ts NAME (and ${name}.log must not exist yet)`);
const say = (m: string) => process.stderr.write(`make-services: ${m}\n`);

const SERVICE = resolve(new URL("../fixtures/service.mjs", import.meta.url).pathname);
const svc = (env: string) => `${env} exec ${process.execPath} ${SERVICE}`;
const probe = createIsolator({ agent: `golden-probe-${process.pid}` });
const isolation = probe.info;
probe.close();
const log = new MemoryLog();
const c = await startCluster({
  agents: 2,
  log,
  agent: (i) => ({ isolator: createIsolator({ agent: `golden-${process.pid}-${i}` }) }),
});
const spec = (n: string, over: Record<string, unknown>) =>
  testSpec(n, over, { resources: { cpus: 0.1, ramMb: 128, diskMb: 64, ports: ["health"] } });
const instance = (job: string, i: number) => jobStatus(c.scheduler.state, job)!.instances.find((x) => x.instance === i)!;
const taskState = (id: string) => c.scheduler.state.tasks.get(id as never)!.state;
const sandboxOf = (taskId: string) => {
  const agent = c.agents.find((a) => a.executor.isRunning(taskId))!;
  return taskSandboxDir(join(c.dir, agent.agentId), taskId);
};

try {
  say(`isolation: ${isolation.mode} (${isolation.detail})`);
  // 1. A health-checked service: STARTING until "ok", then RUNNING.
  const web = "www-data/devel/web";
  await c.scheduler.intake.create({
    spec: spec("web", {
      instances: 2,
      service: true,
      processes: [{ name: "server", cmdline: svc("OK_AFTER_MS=1000 ON_QUIT=exit") }],
      healthCheck: { initialIntervalSecs: 4, intervalSecs: 0.25 },
    }),
    user: "golden",
  });
  await waitFor(c.scheduler, () => [0, 1].every((i) => instance(web, i)?.state === "RUNNING"), "web RUNNING");
  say("web RUNNING through its health checks");

  // 2. Instance 0's /health turns bad: FAILED (unhealthy), and a replacement RUNNING.
  const first = instance(web, 0).taskId;
  writeFileSync(join(sandboxOf(first), "bad"), "");
  await waitFor(c.scheduler, () => taskState(first) === "FAILED", "web/0 FAILED");
  await waitFor(c.scheduler, () => instance(web, 0).taskId !== first && instance(web, 0).state === "RUNNING", "web/0 replaced");
  say("web/0 unhealthy, FAILED, replaced");

  // 3. Ordered processes with a final one, killed.
  const ordered = "www-data/devel/ordered";
  await c.scheduler.intake.create({
    spec: spec("ordered", {
      service: true,
      finalizationWaitSecs: 2,
      processes: [
        { name: "fetch", cmdline: "sleep 0.2" },
        { name: "serve", cmdline: "echo up > up; exec sleep 1000" },
        { name: "cleanup", cmdline: "echo done > done", final: true },
      ],
      constraints: [{ order: ["fetch", "serve"] }],
      lifecycle: { http: false },
    }),
    user: "golden",
  });
  await waitFor(c.scheduler, () => instance(ordered, 0)?.state === "RUNNING", "ordered RUNNING");
  const orderedTask = instance(ordered, 0).taskId;
  await waitForFile(join(sandboxOf(orderedTask), "up"));
  await c.scheduler.intake.kill({ job: ordered, instances: null, user: "golden" });
  await waitFor(c.scheduler, () => taskState(orderedTask) === "KILLED", "ordered KILLED");
  say("ordered KILLED, its final process run");

  // 4. With cgroups: a task over its ramMb.
  if (isolation.mode !== "none") {
    const hog = "www-data/devel/hog";
    await c.scheduler.intake.create({
      spec: spec("hog", {
        resources: { cpus: 0.1, ramMb: 32, diskMb: 64 },
        processes: [{ name: "main", cmdline: `${process.execPath} -e "const a=[];for(;;)a.push(Buffer.alloc(8<<20,1))"` }],
      }),
      user: "golden",
    });
    await waitFor(c.scheduler, () => instance(hog, 0)?.state === "FAILED", "hog FAILED", 30_000);
    say("hog FAILED over its memory limit");
  }

  // 5. The web job killed: each instance quits on /quitquitquit.
  const webTasks = [0, 1].map((i) => instance(web, i).taskId);
  await c.scheduler.intake.kill({ job: web, instances: null, user: "golden" });
  await waitFor(c.scheduler, () => webTasks.every((t) => taskState(t) === "KILLED"), "web KILLED");
  say("web KILLED at /quitquitquit");
} finally {
  await c.stop();
}

const records: Uint8Array[] = [];
for (let seq = 1; seq <= log.length; seq++) records.push(log.raw(seq)!);
const state = new ClusterState();
for (const [i, r] of records.entries()) foldRecord(state, i + 1, decodeRecord(r));
const broken = checkInvariants(state);
if (broken.length > 0) throw new Error(`invariants broken: ${JSON.stringify(broken)}`);
writeGolden(base, records, state, { isolation: isolation.mode });
say(`wrote ${base}.log (${records.length} records) and ${base}.json`);
