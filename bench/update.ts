// `npm run bench -- update [RUNS]`: a rolling update of a 1,000-instance service on the
// deterministic simulator (src/sim/sim.ts): the real leader (intake, fold, placement, launcher,
// rescheduler, updater) with 100 simulated agents on a virtual clock, Aurora's scheduling policy.
//
// The update changes the task config (cmdline v1 → v2) with updateConfig
// {batchSize: 50, watchSecs: 10, waitForBatchCompletion: true}, i.e. strategy batch(50): 20
// batches, each started once the one before finished, each instance counted updated once its new
// task ran 10 s. The simulated tasks take 500 ms from launch to RUNNING (TaskBehavior startMs
// 500: a small process with no slow initialisation) and 100 ms from kill to KILLED (killMs 100:
// a process that exits on SIGTERM at once); status updates and requests cost no virtual time.
//
//   updateSeconds        virtual seconds from the update's start (its JobUpdateStarted event's
//                        log ts, the update's createdTs) to ROLLED_FORWARD (that status's log ts)
//   watchFloorSeconds    20 batches × watchSecs 10 = 200: what no update can beat
//   updateOverheadRatio  updateSeconds / watchFloorSeconds (goal ≤ 1.10); median of the runs,
//                        with the spread (updateOverheadRatioMin / Max)
//   batchOverheadMs      per batch, the median of (batch duration − watch): kill, start, looks
//   wallMs               real time of one run's update (median), the simulator's own cost included
//   eventsAppended       events the log gained during the update (median; the same every run)
//
// Runs: the first argument after the bench's name, or ROOST_BENCH_RUNS (default 3). Each run
// uses its own seed (1, 2, 3, …), so the placements differ. ROOST_BENCH_START_MS and
// ROOST_BENCH_KILL_MS change the tasks' latencies (each batch pays one kill and one start: the
// ratio is 1 + (killMs + startMs) / (watchSecs × 1000) when the scheduler adds nothing).
//
// Virtual time leaves out what the leader's own work costs (a commit, a fold, a look: all instant
// here), so the ratio measures the updater's waits alone: polls, timers armed late, backoffs,
// steps taken one round trip apart. With the latencies fixed it is the same for every seed; the
// runs differ in placements and in wallMs, which is the real cost of the whole simulation (the
// simulated agents included), an upper bound on the leader's.

import { Sim } from "../src/sim/sim.js";
import type { ClusterState } from "../src/replay/state.js";
import { TERMINAL_UPDATE_STATES } from "../src/statemachines/update.js";

const INSTANCES = 1000;
const BATCH = 50;
const WATCH_SECS = 10;
const AGENTS = 100;
const START_MS = Number(process.env.ROOST_BENCH_START_MS ?? 500);
const KILL_MS = Number(process.env.ROOST_BENCH_KILL_MS ?? 100);
const JOB = "www-data/prod/web";
const RUNS = Number(process.argv[3] ?? process.env.ROOST_BENCH_RUNS ?? 3);
const note = (m: string) => process.stderr.write(`update: ${m}\n`);

function spec(cmdline: string, extra: Record<string, unknown> = {}) {
  return {
    role: "www-data",
    environment: "prod",
    name: "web",
    instances: INSTANCES,
    service: true,
    resources: { cpus: 0.1, ramMb: 64, diskMb: 64 },
    processes: [{ name: "main", cmdline }],
    ...extra,
  };
}

function running(s: ClusterState, version: number): number {
  const job = s.jobs.get(JOB as never);
  if (!job) return 0;
  let n = 0;
  for (const id of job.instances.values()) {
    const t = s.tasks.get(id);
    if (t?.state === "RUNNING" && t.configVersion === version) n++;
  }
  return n;
}

async function logEvents(sim: Sim): Promise<number> {
  let n = 0;
  for await (const r of sim.log.read(1)) n += r.events.length;
  return n;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

interface Run {
  updateSeconds: number;
  ratio: number;
  wallMs: number;
  events: number;
  batchOverheadMs: number;
  maxBatchOverheadMs: number;
}

async function once(seed: number): Promise<Run> {
  const sim = await Sim.start({ seed, agents: [{ count: AGENTS, cpus: 4, ramMb: 8192, diskMb: 8192 }] });
  try {
    sim.behave(JOB, { startMs: START_MS, killMs: KILL_MS });
    await sim.createJob(spec("v1"));
    await sim.runUntil((s) => running(s, 1) === INSTANCES, 10 * 60_000, `${INSTANCES} running`);
    const eventsBefore = await logEvents(sim);
    const t0 = performance.now();
    const r = await sim.request<{ updateId: string; status: string }>("update.start", {
      job: JOB,
      spec: spec("v2", { updateConfig: { batchSize: BATCH, watchSecs: WATCH_SECS, waitForBatchCompletion: true } }),
    });
    await sim.runUntil((s) => TERMINAL_UPDATE_STATES.has(s.updates.get(r.updateId)!.status), 60 * 60_000, "update over");
    const wallMs = performance.now() - t0;
    const u = sim.state.updates.get(r.updateId)!;
    if (u.status !== "ROLLED_FORWARD") throw new Error(`the update ended ${u.status}: ${u.statuses.at(-1)?.message ?? ""}`);
    if (running(sim.state, 2) !== INSTANCES) throw new Error(`only ${running(sim.state, 2)} of ${INSTANCES} run the new config`);
    const startTs = u.createdTs; // the JobUpdateStarted event's log time
    const endTs = u.statuses.find((x) => x.status === "ROLLED_FORWARD")!.ts;
    const updateSeconds = (endTs - startTs) / 1000;
    const floor = (INSTANCES / BATCH) * WATCH_SECS;
    // Each batch: from its first INSTANCE_UPDATING to its last INSTANCE_UPDATED.
    const starts = new Map<number, number>();
    const ends = new Map<number, number>();
    for (const a of u.actions) {
      const b = Math.floor(a.instance / BATCH);
      if (a.action === "INSTANCE_UPDATING" && !starts.has(b)) starts.set(b, a.ts);
      if (a.action === "INSTANCE_UPDATED") ends.set(b, Math.max(ends.get(b) ?? 0, a.ts));
    }
    const overheads = [...starts].map(([b, s]) => ends.get(b)! - s - WATCH_SECS * 1000);
    const events = (await logEvents(sim)) - eventsBefore;
    note(
      `seed ${seed}: ${updateSeconds.toFixed(3)} s (ratio ${(updateSeconds / floor).toFixed(4)}), ` +
        `batch overhead median ${median(overheads)} ms, max ${Math.max(...overheads)} ms; ` +
        `first batch starts ${(starts.get(0)! - startTs) / 1000} s after the start, ROLLED_FORWARD ${(endTs - ends.get(starts.size - 1)!) / 1000} s after the last batch; ` +
        `${events} events; ${Math.round(wallMs)} ms wall`,
    );
    return {
      updateSeconds,
      ratio: updateSeconds / floor,
      wallMs,
      events,
      batchOverheadMs: median(overheads),
      maxBatchOverheadMs: Math.max(...overheads),
    };
  } finally {
    await sim.stop();
  }
}

export default async function updateBench(): Promise<Record<string, number | string>> {
  if (!(Number.isInteger(RUNS) && RUNS >= 1)) throw new Error(`runs must be a whole number ≥ 1 (got ${RUNS})`);
  const runs: Run[] = [];
  for (let i = 1; i <= RUNS; i++) runs.push(await once(i));
  const ratios = runs.map((r) => r.ratio);
  return {
    instances: INSTANCES,
    batchSize: BATCH,
    watchSecs: WATCH_SECS,
    agents: AGENTS,
    startMs: START_MS,
    killMs: KILL_MS,
    runs: RUNS,
    updateSeconds: round(median(runs.map((r) => r.updateSeconds))),
    watchFloorSeconds: (INSTANCES / BATCH) * WATCH_SECS,
    updateOverheadRatio: round(median(ratios), 4),
    updateOverheadRatioMin: round(Math.min(...ratios), 4),
    updateOverheadRatioMax: round(Math.max(...ratios), 4),
    batchOverheadMs: median(runs.map((r) => r.batchOverheadMs)),
    maxBatchOverheadMs: Math.max(...runs.map((r) => r.maxBatchOverheadMs)),
    wallMs: Math.round(median(runs.map((r) => r.wallMs))),
    wallMsMin: Math.round(Math.min(...runs.map((r) => r.wallMs))),
    wallMsMax: Math.round(Math.max(...runs.map((r) => r.wallMs))),
    eventsAppended: median(runs.map((r) => r.events)),
  };
}
