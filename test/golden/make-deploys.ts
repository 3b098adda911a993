// Writes the golden log of deployments: `npx tsx test/golden/make-deploys.ts NAME`.
// A fixed simulation (seed 20261202) of Aurora's updater and cron on the real leader: an update
// rolled forward in batches, paused and resumed; a config whose tasks fail, rolled back; a
// scale-down and up (kill only, add only); a coordinated update waiting for its pulse, then
// aborted; a rolling restart; a cron job under KILL_EXISTING and one under CANCEL_NEW, a run
// started by hand, and a deschedule. It pins how JobUpdate*, JobInstanceUpdateEvent,
// JobUpdatePulsed, CronJobScheduled, CronTriggered and CronJobDescheduled fold. Golden logs are
// forever: never regenerate an existing one (see make.ts).

import { existsSync, writeFileSync } from "node:fs";
import { pack } from "../../src/eventlog/envelope.js";
import type { MemoryLog } from "../../src/eventlog/memory.js";
import { foldRecord } from "../../src/replay/fold.js";
import { STATE_DIGEST_VERSION, stateHash } from "../../src/replay/hash.js";
import { ClusterState } from "../../src/replay/state.js";
import { Sim } from "../../src/sim/sim.js";
import { TERMINAL_UPDATE_STATES } from "../../src/statemachines/update.js";

const name = process.argv[2];
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make-deploys.ts NAME (and ${name}.log must not exist yet)`);

const JOB = "www/devel/web";
const spec = (over: Record<string, unknown> = {}) => ({
  role: "www",
  environment: "devel",
  name: "web",
  instances: 4,
  service: true,
  resources: { cpus: 0.5, ramMb: 256, diskMb: 100 },
  processes: [{ name: "main", cmdline: "serve v1" }],
  ...over,
});
const v = (n: string, over: Record<string, unknown> = {}) => spec({ processes: [{ name: "main", cmdline: `serve ${n}` }], ...over });
const sim = await Sim.start({ seed: 20261202, agents: [{ count: 3, cpus: 4, ramMb: 8192, diskMb: 10000 }] });
sim.behave(JOB, (launch) =>
  launch.processes[0]!.cmdline === "serve bad" ? { startMs: 500, runMs: 1_000, exitCode: 2 } : { startMs: 500 },
);
const over = (id: string) => (s: ClusterState) => TERMINAL_UPDATE_STATES.has(s.updates.get(id)!.status);
type W = { updateId: string };

await sim.createJob(spec());
await sim.advance(10_000);
// 1. Batches of 2, paused after the first group, resumed.
const u1 = await sim.request<W>("update.start", {
  job: JOB,
  spec: v("v2", { updateConfig: { batchSize: 2, watchSecs: 10, waitForBatchCompletion: true } }),
  user: "alice",
  message: "v2",
});
await sim.runUntil(
  (s) => s.updates.get(u1.updateId)!.actions.some((a) => a.action === "INSTANCE_UPDATED"),
  120_000,
  "a first instance updated",
);
await sim.request("update.pause", { job: JOB, user: "alice", message: "looking at the graphs" });
await sim.advance(60_000);
await sim.request("update.resume", { job: JOB, user: "alice" });
await sim.runUntil(over(u1.updateId), 600_000, "v2 rolled forward");
// 2. A config whose tasks fail: rolled back.
const u2 = await sim.request<W>("update.start", {
  job: JOB,
  spec: v("bad", { updateConfig: { batchSize: 2, watchSecs: 10 } }),
  user: "bob",
});
await sim.runUntil(over(u2.updateId), 600_000, "bad rolled back");
// 3. Kill only, then add only.
const u3 = await sim.request<W>("update.start", {
  job: JOB,
  spec: v("v2", { instances: 2, updateConfig: { watchSecs: 5 } }),
  user: "alice",
});
await sim.runUntil(over(u3.updateId), 600_000, "scaled down");
const u4 = await sim.request<W>("update.start", {
  job: JOB,
  spec: v("v2", { instances: 4, updateConfig: { watchSecs: 5 } }),
  user: "alice",
});
await sim.runUntil(over(u4.updateId), 600_000, "scaled up");
// 4. A coordinated update: waits for its pulse, rolls, then is aborted.
const u5 = await sim.request<W>("update.start", {
  job: JOB,
  spec: v("v3", { updateConfig: { pulseIntervalSecs: 60, watchSecs: 30 } }),
  user: "carol",
});
await sim.advance(5_000);
await sim.request("update.pulse", { job: JOB, updateId: u5.updateId, user: "coordinator" });
await sim.advance(20_000);
await sim.request("update.abort", { job: JOB, user: "carol", message: "wrong build" });
// 5. A rolling restart in batches of 2.
const u6 = await sim.request<W>("job.restart", { job: JOB, batchSize: 2, watchSecs: 5, user: "alice" });
await sim.runUntil(over(u6.updateId), 600_000, "restarted");
// 6. Cron: KILL_EXISTING (the default) and CANCEL_NEW, every minute, a run by hand, a deschedule.
const cron = (n: string, over: Record<string, unknown> = {}) => ({
  role: "www",
  environment: "devel",
  name: n,
  instances: 1,
  resources: { cpus: 0.1, ramMb: 64, diskMb: 10 },
  processes: [{ name: "main", cmdline: "report" }],
  cronSchedule: "* * * * *",
  ...over,
});
sim.behave("www/devel/report", { startMs: 100 }); // runs until killed: every trigger collides
sim.behave("www/devel/digest", { startMs: 100, runMs: 90_000 });
await sim.request("cron.schedule", { spec: cron("report"), user: "alice" });
await sim.request("cron.schedule", { spec: cron("digest", { cronCollisionPolicy: "CANCEL_NEW" }), user: "alice" });
await sim.advance(4 * 60_000);
await sim.request("cron.start", { job: "www/devel/digest", user: "bob" });
await sim.advance(60_000);
await sim.request("cron.deschedule", { job: "www/devel/report", user: "alice" });
await sim.advance(60_000);

const records: Uint8Array[] = [];
const log = sim.log as MemoryLog;
for (let s = 1; s <= log.length; s++) records.push(log.raw(s)!);
const state = new ClusterState();
for await (const r of sim.log.read(1)) foldRecord(state, r.seq, r.events);
const types = new Set<string>();
for await (const r of sim.log.read(1))
  for (const e of r.events) {
    const d = e.data as Record<string, unknown>;
    const detail =
      e.type === "TaskStateChanged"
        ? d.to
        : e.type === "JobUpdateStateChanged"
          ? d.to
          : e.type === "JobInstanceUpdateEvent"
            ? d.action
            : e.type === "CronTriggered"
              ? d.outcome
              : undefined;
    types.add(`${e.type}${detail !== undefined ? `:${String(detail)}` : ""}`);
  }
await sim.stop();
if (state.anomalyCount > 0)
  throw new Error(`the run folded ${state.anomalyCount} anomalies: ${JSON.stringify(state.anomalies.slice(0, 3))}`);
writeFileSync(`${base}.log`, pack(records));
writeFileSync(
  `${base}.json`,
  `${JSON.stringify({ records: records.length, stateDigest: STATE_DIGEST_VERSION, events: state.eventCount, tasks: state.tasks.size, jobs: state.jobs.size, agents: state.agents.size, stateHash: stateHash(state), covers: [...types].sort() }, null, 2)}\n`,
);
console.log(`wrote ${base}.log: ${records.length} records; updates ${[...state.updates.values()].map((u) => u.status).join(", ")}`);
