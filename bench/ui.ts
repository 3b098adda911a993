// `npm run bench -- ui`: what the web UI's pages cost at 250,000 tasks, "now" (the state a
// replica already folds). The issue asks that pages stay fast at that size: paged, searched and
// sorted on the server, nothing that renders every task. The state is the realistic mix
// (src/sim/synthetic.ts) at ROOST_BENCH_EVENTS events (default 1,000,000: ~240k tasks), folded in
// memory; each page is asked through the HistoryService as the UI's server asks it, 5 times,
// and the median is printed:
//   summaryMs, jobsPageMs (first page, 50 jobs), jobSearchMs (a search over job keys),
//   tasksByStateMs (a page of one state's tasks), agentsPageMs, pendingPageMs (with reasons
//   judged per group), taskPageMs (one task: history with reasons from the log, why, machine)
//   tasks, jobs, agents

import { HistoryService } from "../src/history/service.js";
import type { LogReader } from "../src/history/timeMachine.js";
import type { LogRecord } from "../src/domain/events.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { warmTaskTable } from "../src/statemachines/taskTable.js";

const EVENTS = Number(process.env.ROOST_BENCH_EVENTS ?? 1_000_000);
const RUNS = 5;

async function median(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(RUNS / 2)]! * 10) / 10;
}

export default async function uiBench(): Promise<Record<string, number>> {
  warmTaskTable();
  const records: LogRecord[] = [];
  const state = new ClusterState();
  for (const events of syntheticLog({ seed: 20261202, events: EVENTS, eventsPerRecord: 1000 })) {
    const seq = records.length + 1;
    records.push({ seq, events });
    foldRecord(state, seq, events);
  }
  const log: LogReader = {
    get: async (seq) => records[seq - 1] ?? null,
    lastSeq: async () => records.length,
    read: async function* (from) {
      for (let i = Math.max(1, from); i <= records.length; i++) yield records[i - 1]!;
    },
  };
  const h = new HistoryService({ log, head: () => state });
  const someJob = [...state.jobs.keys()][Math.floor(state.jobs.size / 2)]!;
  const someTask = [...state.tasks.keys()][Math.floor(state.tasks.size / 2)]!;
  const result = {
    summaryMs: await median(() => h.summary({})),
    jobsPageMs: await median(() => h.jobs({ limit: 50 })),
    jobSearchMs: await median(() => h.jobs({ q: someJob.split("/")[2]!.slice(0, 4), limit: 50 })),
    tasksByStateMs: await median(() => h.tasks({ state: "RUNNING", limit: 50 })),
    agentsPageMs: await median(() => h.agents({ limit: 50 })),
    pendingPageMs: await median(() => h.pending({ limit: 50 })),
    taskPageMs: await median(() => h.task({ taskId: someTask })),
    tasks: state.tasks.size,
    jobs: state.jobs.size,
    agents: state.agents.size,
  };
  return result;
}
