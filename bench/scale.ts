// `npm run bench -- scale`: memory and placement cost as the cell grows.
//   heapBytes1M        the leader's folded state at 10,000 agents and 1,000,000 live tasks
//                      (goal ≤ 1 GiB), measured after GC, above the heap before it was built
//   heapBytes          the same at 250,000 live tasks
//   placeUs_<N>        placement cost per task (µs) with N agents, spread, a job of 1,000
//                      feasible tasks (candidateLimit 16: the scan stops early)
//   blockedScanUs_<N>  one attempt at a task that fits nowhere: every agent is judged (the
//                      cost a blocked group pays once per round)

import { decodeRecord, encodeRecord, makeEnvelope, type AnyEnvelope } from "../src/eventlog/envelope.js";
import type { EventPayloads, EventType } from "../src/domain/events.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { TaskGroup } from "../src/scheduling/feasible.js";
import { OfferBook } from "../src/scheduling/offers.js";
import { PlacementStack } from "../src/scheduling/stack.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { warmTaskTable } from "../src/statemachines/taskTable.js";
import { asTaskId, asAgentId, jobKeyString, type TaskId } from "../src/domain/types.js";

const note = (m: string) => process.stderr.write(`scale: ${m}\n`);

class Builder {
  readonly state = new ClusterState();
  private seq = 0;
  private batch: AnyEnvelope[] = [];
  private ts = Date.UTC(2026, 0, 1);
  emit<T extends EventType>(type: T, data: EventPayloads[T], reason: string): void {
    this.batch.push(makeEnvelope(type, data, { epoch: 1, ts: ++this.ts, corr: "bench", reason }) as AnyEnvelope);
    if (this.batch.length >= 1000) this.flush();
  }
  flush(): void {
    // The bytes a replica folds, decoded as the log's reader decodes them: folding the objects
    // appended instead measured a state without what decoding leaves in it (src/eventlog/intern.ts).
    if (this.batch.length) foldRecord(this.state, ++this.seq, decodeRecord(encodeRecord(this.batch)));
    this.batch = [];
  }
}

function agents(b: Builder, n: number): void {
  for (let i = 0; i < n; i++) {
    const id = asAgentId(`agent-${String(i).padStart(5, "0")}`);
    b.emit(
      "AgentRegistered",
      {
        agentId: id,
        host: `${id}.dc1`,
        attributes: { host: `${id}.dc1`, rack: `r${i % 250}`, zone: `z${i % 3}` },
        resources: { cpus: 64, ramMb: 262144, diskMb: 2_000_000, gpus: 0, ports: [[31000, 32999]] },
        bootId: "boot",
      },
      `agent ${id} registered: new agent`,
    );
  }
}

function job(b: Builder, name: string, instances: number, extra: Record<string, unknown> = {}) {
  const cfg = validateJobSpec({
    role: "www",
    environment: "prod",
    name,
    instances,
    service: true,
    tier: "preferred",
    resources: { cpus: 0.25, ramMb: 512, diskMb: 1024, ports: ["http"] },
    processes: [{ name: "main", cmdline: "./server --port {{ports.http}}" }],
    ...extra,
  });
  b.emit("JobCreated", { job: cfg, configVersion: 1 }, `job ${name} created`);
  return jobKeyString(cfg);
}

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

/**
 * The leader's folded state at 10,000 agents and `jobs` × 100 live tasks (each RUNNING on an agent
 * with a port), built by folding events as a replica does (records encoded, then the decoded bytes
 * folded): its heap after GC, above the heap before.
 */
function liveCell(jobs: number): { heapBytes: number; liveTasks: number } {
  const before = heap();
  const b = new Builder();
  agents(b, 10_000);
  let n = 0;
  for (let j = 0; j < jobs; j++) {
    const key = job(b, `svc${j}`, 100);
    for (let i = 0; i < 100; i++, n++) {
      const taskId = asTaskId(`${key.replaceAll("/", "-")}-${i}-${n.toString(16).padStart(8, "0")}`);
      const agentId = asAgentId(`agent-${String(n % 10_000).padStart(5, "0")}`);
      b.emit(
        "TaskCreated",
        { taskId, job: key, instance: i, configVersion: 1, ancestorId: null, failureCount: 0, state: "PENDING" },
        `instance ${i} of new job ${key}`,
      );
      b.emit(
        "TaskAssigned",
        { taskId, agentId, host: `${agentId}.dc1`, ports: { http: 31000 + Math.floor(n / 10_000) } },
        `spread on ${agentId}.dc1`,
      );
      b.emit("TaskStateChanged", { taskId, to: "STARTING", agentSeq: 1 }, `agent on ${agentId}.dc1 reported STARTING`);
      b.emit("TaskStateChanged", { taskId, to: "RUNNING", agentSeq: 2 }, `agent on ${agentId}.dc1 reported RUNNING: processes started`);
    }
  }
  b.flush();
  const heapBytes = heap() - before;
  const liveTasks = b.state.tasks.size;
  if (b.state.anomalies.length > 0) throw new Error(`scale: fold anomalies ${JSON.stringify(b.state.anomalies.slice(0, 2))}`);
  note(
    `10,000 agents, ${liveTasks} live tasks: heap ${(heapBytes / 2 ** 20).toFixed(0)} MiB (${Math.round(heapBytes / liveTasks)} B per task)`,
  );
  return { heapBytes, liveTasks };
}

export default async function scaleBench(): Promise<Record<string, number | string>> {
  warmTaskTable();
  if (!(globalThis as { gc?: unknown }).gc) note("run with node --expose-gc for exact heap figures (npm run bench does)");
  const cell250k = liveCell(2_500);
  const heapBytes = cell250k.heapBytes;
  const liveTasks = cell250k.liveTasks;
  const cell1M = liveCell(10_000);
  const heapBytes1M = cell1M.heapBytes;

  const result: Record<string, number | string> = {
    heapBytes1M,
    heapMiB1M: Math.round(heapBytes1M / 2 ** 20),
    liveTasks1M: cell1M.liveTasks,
    heapBytesPerTask1M: Math.round(heapBytes1M / cell1M.liveTasks),
    heapBytes,
    heapMiB: Math.round(heapBytes / 2 ** 20),
    agents: 10_000,
    liveTasks,
  };
  for (const size of [1_000, 5_000, 10_000, 50_000]) {
    const s = new Builder();
    agents(s, size);
    // Load the cell a little: 20 tasks per 100 agents already running.
    const filler = job(s, "filler", Math.min(4000, size / 5));
    for (let i = 0; i < Math.min(4000, size / 5); i++) {
      const taskId = asTaskId(`filler-${i}`);
      const agentId = asAgentId(`agent-${String((i * 5) % size).padStart(5, "0")}`);
      s.emit(
        "TaskCreated",
        { taskId, job: filler, instance: i, configVersion: 1, ancestorId: null, failureCount: 0, state: "PENDING" },
        "x",
      );
      s.emit("TaskAssigned", { taskId, agentId, host: `${agentId}.dc1`, ports: { http: 31000 } }, "x");
    }
    const key = job(s, "bench", 1000, { constraints: { rack: "limit:40", zone: "!z2" } });
    const ids: TaskId[] = [];
    for (let i = 0; i < 1000; i++) {
      const taskId = asTaskId(`bench-${i}`);
      ids.push(taskId);
      s.emit("TaskCreated", { taskId, job: key, instance: i, configVersion: 1, ancestorId: null, failureCount: 0, state: "PENDING" }, "x");
    }
    const fat = job(s, "fat", 1, { resources: { cpus: 128, ramMb: 1, diskMb: 1, ports: ["http"] } });
    s.emit(
      "TaskCreated",
      { taskId: asTaskId("fat-0"), job: fat, instance: 0, configVersion: 1, ancestorId: null, failureCount: 0, state: "PENDING" },
      "x",
    );
    s.flush();
    const activeAgents = [...s.state.agents.values()].sort((x, y) => (x.agentId < y.agentId ? -1 : 1));
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const stack = new PlacementStack({ placementMode: "spread", candidateLimit: 16 });
      const g = new TaskGroup(s.state.jobs.get(key)!, 1);
      const t0 = performance.now();
      const out = stack.placeGroup(s.state, new OfferBook(s.state), activeAgents, g, ids, 1000);
      runs.push(((performance.now() - t0) * 1000) / out.assignments.length);
      if (out.assignments.length !== 1000) throw new Error(`placed ${out.assignments.length} of 1000 at ${size} agents: ${out.blocked}`);
    }
    runs.sort((x, y) => x - y);
    result[`placeUs_${size}`] = Math.round(runs[2]! * 100) / 100;
    const scans: number[] = [];
    for (let r = 0; r < 5; r++) {
      const stack = new PlacementStack({ placementMode: "spread", candidateLimit: 16 });
      const t0 = performance.now();
      const out = stack.placeGroup(
        s.state,
        new OfferBook(s.state),
        activeAgents,
        new TaskGroup(s.state.jobs.get(fat)!, 1),
        [asTaskId("fat-0")],
        1,
      );
      scans.push((performance.now() - t0) * 1000);
      if (out.blocked !== "Insufficient: cpus") throw new Error(`expected the fat task blocked, got ${out.blocked}`);
    }
    scans.sort((x, y) => x - y);
    result[`blockedScanUs_${size}`] = Math.round(scans[2]!);
    note(
      `${size} agents: ${result[`placeUs_${size}`]} µs per placed task; ${result[`blockedScanUs_${size}`]} µs to judge every agent for a task that fits nowhere`,
    );
  }
  return result;
}
