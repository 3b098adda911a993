// Swarm testing, after TigerBeetle's VOPR: a seed alone draws a whole world (the cell's topology,
// its workload, the faults that strike it and how often the network misbehaves), the real
// scheduler runs in it on simulated agents and virtual time (sim.ts), and the fold's invariants
// (replay/invariants.ts) are checked after every record every replica folds. When the faults
// stop, time runs on until things should have settled, and the end is checked: the cell
// converged (every service instance RUNNING, every batch instance ended, the agents run exactly
// what the log says), one writer wrote the log, and the log folds again to the state every
// replica holds. The same seed replays the same run, record for record.
//
//   const r = await runSwarm(17);            // { ok, violation, world, timeline, … }
//   if (!r.ok) console.log(r.violation!.message);   // "seed 17: step 12 of 31 (+41.2 s: …): …"
//
// `npm run sim -- --seeds 300 [--from S]` sweeps seeds (src/cli/sim.ts); test/sim.swarm.test.ts
// runs a few hundred on every `npm test`.

import type { SchedulingPolicy } from "../actors/policy.js";
import type { Scheduler } from "../actors/scheduler.js";
import { asTaskId, type AgentId } from "../domain/types.js";
import type { LogEntry } from "../eventlog/envelope.js";
import { foldRecord } from "../replay/fold.js";
import { stateHash } from "../replay/hash.js";
import { checkInvariants } from "../replay/invariants.js";
import { ClusterState, type TaskRecord } from "../replay/state.js";
import { TaskGroup } from "../scheduling/feasible.js";
import { activeAgents, OfferBook } from "../scheduling/offers.js";
import { explain } from "../scheduling/stack.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { Rng } from "./rng.js";
import { Sim, type SimAgentGroup } from "./sim.js";
import type { MessageFate, MessageKind, TaskBehavior } from "./simAgent.js";

// ---- the world a seed draws ---------------------------------------------------------------------

/** How big a world may get. The defaults keep a run near 100 ms, for sweeping hundreds of seeds. */
export interface SwarmBounds {
  /** Agents: 1 to this many (default 6). */
  maxAgents: number;
  /** Jobs created during the chaos (default 6). */
  maxJobs: number;
  /** Instances per job at creation (default 6). */
  maxInstances: number;
  /** Faults and workload changes happen in [0, chaosMs]; drawn between these (default 60–150 s). */
  chaosMs: [number, number];
  /**
   * After the faults stop, time runs until the cell has converged (then 30 s more, to see it
   * stays so) or this much virtual time has passed, and the end is checked (default 20 min).
   */
  quietMs: number;
}

const SWARM_BOUNDS: SwarmBounds = { maxAgents: 6, maxJobs: 6, maxInstances: 6, chaosMs: [60_000, 150_000], quietMs: 20 * 60_000 };

/** Virtual ms the cell must stay converged before the end is checked. */
const STAY_CONVERGED_MS = 30_000;

interface SwarmJob {
  at: number;
  key: string;
  spec: Record<string, unknown>;
  /** How its tasks behave during the chaos… */
  behavior: TaskBehavior;
  /** …and once the faults stop: services keep running, batch tasks finish. */
  healthy: TaskBehavior;
}

type SwarmAction =
  | { kind: "createJob"; job: number }
  | { kind: "killJob"; job: number; instances: number[] | null }
  | { kind: "addInstances"; job: number; count: number }
  | { kind: "crashAgent"; agent: string }
  | { kind: "restartAgent"; agent: string; reboot: boolean }
  | { kind: "rebootAgent"; agent: string }
  | { kind: "partition"; agent: string }
  | { kind: "heal"; agent: string; reconnect: boolean }
  | { kind: "exitTask"; exitCode: number }
  | { kind: "crashLeader"; restartAfterMs: number }
  | { kind: "expireLease" };

interface SwarmStep {
  at: number;
  action: SwarmAction;
}

/** How often the network misbehaves during the chaos, per message (0..1). */
interface NetworkRates {
  /** A request is lost on the way. */
  lost: number;
  /** A reply is lost on the way back (the request was handled). */
  replyLost: number;
  /** A message arrives twice (the copy sometimes late). */
  duplicate: number;
  /** A message arrives late, up to maxDelayMs (after its sender gave up on it). */
  delayed: number;
  maxDelayMs: number;
  /** A heartbeat is lost. */
  heartbeatLost: number;
}

export interface SwarmWorld {
  seed: number;
  replicas: number;
  leaseMs: number;
  agents: SimAgentGroup[];
  /** Agent ids, in Sim.start's order. */
  agentIds: string[];
  policy: Partial<SchedulingPolicy>;
  quotas: Array<{ role: string; cpus: number; ramMb: number; diskMb: number }>;
  jobs: SwarmJob[];
  steps: SwarmStep[];
  network: NetworkRates;
  chaosMs: number;
  quietMs: number;
}

/** A 32-bit mix of the seed and a stream number: the world, the faults' dice and the sim's own stay apart. */
function stream(seed: number, n: number): number {
  let x = (seed ^ Math.imul(n + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

const between = (rng: Rng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1);

/** The world of one seed: topology, policy, workload, faults and network. Pure in the seed. */
export function drawWorld(seed: number, bounds: Partial<SwarmBounds> = {}): SwarmWorld {
  const b = { ...SWARM_BOUNDS, ...bounds };
  const rng = new Rng(stream(seed, 1));

  // Topology: 1–N agents in one to three groups of their own sizes and attributes.
  const nAgents = 1 + rng.int(b.maxAgents);
  const agents: SimAgentGroup[] = [];
  const dedicated = nAgents >= 2 && rng.chance(0.15);
  let left = nAgents;
  for (let g = 0; left > 0; g++) {
    const count = g === 2 || dedicated ? left : Math.max(1, rng.int(left) + 1);
    const isDedicated = dedicated && g === 0;
    const n = isDedicated ? 1 : count;
    const racks = 1 + rng.int(3);
    const ports: [number, number][] = rng.chance(0.3) ? [[31000, 31000 + rng.int(6)]] : [[31000, 31999]];
    agents.push({
      count: n,
      prefix: isDedicated ? "ded" : `g${g}`,
      cpus: rng.pick([1, 2, 4, 8]),
      ramMb: rng.pick([1024, 2048, 4096, 8192]),
      diskMb: rng.pick([2048, 10_000, 50_000]),
      gpus: rng.chance(0.15) ? 1 + rng.int(2) : 0,
      ports,
      attributes: (i) => ({
        rack: `r${(i + g) % racks}`,
        zone: `z${(i + g) % 2}`,
        ...(isDedicated ? { dedicated: "ml/train" } : {}),
      }),
    });
    left -= n;
  }
  const agentIds: string[] = [];
  const counters = new Map<string, number>();
  for (const g of agents) {
    for (let i = 0; i < g.count; i++) {
      const k = (counters.get(g.prefix!) ?? 0) + 1;
      counters.set(g.prefix!, k);
      agentIds.push(`${g.prefix}-${k}`);
    }
  }
  const replicas = rng.chance(0.35) ? rng.pick([2, 3]) : 1;

  // Aurora's rules on a short clock, so that everything a fault sets off resolves in the quiet.
  const policy: Partial<SchedulingPolicy> = {
    placementMode: rng.chance(0.3) ? "binpack" : "spread",
    flapThresholdMs: rng.pick([5_000, 20_000, 60_000]),
    throttleInitialMs: rng.pick([500, 1_000, 5_000]),
    throttleMaxMs: 20_000,
    transientTimeoutMs: rng.pick([20_000, 45_000, 60_000]),
    groupBackoffMaxMs: 10_000,
    preemptionDelayMs: rng.pick([5_000, 15_000, 30_000]),
    preemptionIntervalMs: rng.pick([2_000, 5_000, 10_000]),
    reservationMs: rng.pick([10_000, 30_000, 60_000]),
    reconcileWindowMs: rng.pick([1_000, 3_000, 5_000]),
    agentTimeoutMs: rng.pick([3_000, 5_000, 15_000]),
    partitionDelayMs: rng.pick([0, 0, 2_000, 10_000]),
  };

  // Production quota for one role, so that some jobs can be tier preferred (and preempt).
  const quotas = rng.chance(0.6) ? [{ role: "www", cpus: 4, ramMb: 8192, diskMb: 8192 }] : [];

  // The workload: services and batch jobs, constraints, tiers, behaviours.
  const chaosMs = between(rng, b.chaosMs[0], b.chaosMs[1]);
  const nJobs = 1 + rng.int(b.maxJobs);
  const jobs: SwarmJob[] = [];
  for (let j = 0; j < nJobs; j++) {
    const service = rng.chance(0.55);
    const role = dedicated && rng.chance(0.3) ? "ml" : rng.pick(["www", "ads", "www"]);
    const production = role === "www" && quotas.length > 0 && rng.chance(0.35);
    const environment = production ? "prod" : rng.pick(["devel", "test", "staging1"]);
    const name = `${service ? "svc" : "batch"}${j}`;
    const constraints: Record<string, string> = {};
    if (role === "ml") constraints.dedicated = "ml/train";
    if (rng.chance(0.25)) constraints.host = "limit:1";
    if (rng.chance(0.1)) constraints.rack = `limit:${1 + rng.int(2)}`;
    if (rng.chance(0.1)) constraints.zone = rng.chance(0.5) ? "z0" : "!z1";
    const nPorts = rng.chance(0.4) ? 1 + rng.int(2) : 0;
    const spec: Record<string, unknown> = {
      role,
      environment,
      name,
      instances: 1 + rng.int(b.maxInstances),
      service,
      tier: production ? "preferred" : rng.pick(["preemptible", "preemptible", "revocable"]),
      priority: rng.int(3),
      maxTaskFailures: service ? 1 : rng.pick([1, 2, 3, -1]),
      resources: {
        cpus: rng.pick([0.1, 0.25, 0.5, 1]),
        ramMb: rng.pick([32, 128, 512]),
        diskMb: rng.pick([16, 256, 1024]),
        gpus: rng.chance(0.1) ? 1 : 0,
        ports: ["http", "admin"].slice(0, nPorts),
      },
      constraints,
      processes: [{ name: "main", cmdline: nPorts > 0 ? "serve --port {{ports.http}}" : "work" }],
    };
    const startMs = rng.int(2_000);
    const killMs = rng.chance(0.5) ? 0 : rng.int(3_000);
    let behavior: TaskBehavior;
    let healthy: TaskBehavior;
    if (service) {
      behavior = {
        startMs,
        killMs,
        runMs: rng.chance(0.3) ? between(rng, 5_000, 60_000) : null,
        exitCode: rng.pick([0, 1, 137]),
        ...(rng.chance(0.25) ? { failProbability: rng.pick([0.1, 0.2, 0.4]) } : {}),
      };
      healthy = { startMs, killMs, runMs: null };
    } else {
      const runMs = between(rng, 1_000, 30_000);
      behavior = {
        startMs,
        killMs,
        runMs,
        exitCode: rng.chance(0.8) ? 0 : 1,
        ...(rng.chance(0.5) ? { failProbability: rng.pick([0.1, 0.3]) } : {}),
      };
      healthy = { startMs, killMs, runMs, exitCode: 0 };
    }
    jobs.push({ at: rng.int(Math.floor(chaosMs * 0.6)), key: `${role}/${environment}/${name}`, spec, behavior, healthy });
  }

  // What strikes, and when.
  const steps: SwarmStep[] = jobs.map((job, j) => ({ at: job.at, action: { kind: "createJob", job: j } }));
  const intensity = rng.pick([0, 0.5, 1, 2, 3]);
  const nFaults = Math.round((chaosMs / 10_000) * intensity);
  const down = new Map<string, number>(); // agent → when it is back (crash or partition)
  for (let f = 0; f < nFaults; f++) {
    const at = 1_000 + rng.int(chaosMs - 1_000);
    const agent = rng.pick(agentIds);
    const free = (down.get(agent) ?? -1) < at;
    const r = rng.next();
    if (r < 0.14 && free) {
      const back = at + between(rng, 1_000, 45_000);
      steps.push({ at, action: { kind: "crashAgent", agent } });
      if (back < chaosMs) steps.push({ at: back, action: { kind: "restartAgent", agent, reboot: rng.chance(0.5) } });
      down.set(agent, back);
    } else if (r < 0.22 && free) {
      steps.push({ at, action: { kind: "rebootAgent", agent } });
    } else if (r < 0.42 && free) {
      const back = at + between(rng, 1_000, 40_000);
      steps.push({ at, action: { kind: "partition", agent } });
      if (back < chaosMs) steps.push({ at: back, action: { kind: "heal", agent, reconnect: rng.chance(0.5) } });
      down.set(agent, back);
    } else if (r < 0.6) {
      steps.push({ at, action: { kind: "exitTask", exitCode: rng.pick([0, 1, 137]) } });
    } else if (r < 0.7) {
      steps.push({ at, action: { kind: "crashLeader", restartAfterMs: between(rng, 0, 20_000) } });
    } else if (r < 0.76 && replicas > 1) {
      steps.push({ at, action: { kind: "expireLease" } });
    } else if (r < 0.86) {
      const j = rng.int(jobs.length);
      const some = rng.chance(0.5);
      const instances = some ? [rng.int(jobs[j]!.spec.instances as number)] : null;
      steps.push({ at, action: { kind: "killJob", job: j, instances } });
      // Sometimes the owner creates it again after a whole-job kill.
      if (!some && rng.chance(0.5))
        steps.push({ at: Math.min(chaosMs, at + between(rng, 0, 30_000)), action: { kind: "createJob", job: j } });
    } else if (r < 0.93) {
      steps.push({ at, action: { kind: "addInstances", job: rng.int(jobs.length), count: 1 + rng.int(3) } });
    }
  }
  steps.sort((x, y) => x.at - y.at);

  const noisy = rng.chance(0.7);
  const network: NetworkRates = noisy
    ? {
        lost: rng.pick([0, 0.02, 0.1, 0.2]),
        replyLost: rng.pick([0, 0.02, 0.1]),
        duplicate: rng.pick([0, 0.05, 0.15]),
        delayed: rng.pick([0, 0.05, 0.2]),
        maxDelayMs: rng.pick([500, 3_000, 10_000]),
        heartbeatLost: rng.pick([0, 0.1, 0.5]),
      }
    : { lost: 0, replyLost: 0, duplicate: 0, delayed: 0, maxDelayMs: 0, heartbeatLost: 0 };

  return {
    seed,
    replicas,
    leaseMs: 3_000,
    agents,
    agentIds,
    policy,
    quotas,
    jobs,
    steps,
    network,
    chaosMs,
    quietMs: b.quietMs,
  };
}

// ---- running one seed -----------------------------------------------------------------------------

interface SwarmViolation {
  seed: number;
  /** 1-based index of the step under way (0: before the first); steps.length + 1 is the heal, + 2 the end. */
  step: number;
  /** What that step was. */
  stepWhat: string;
  /** Virtual ms since the start. */
  atMs: number;
  /** The record whose fold broke an invariant, and the replica that folded it (absent for end checks). */
  record?: { seq: number; replica: string; role: string; events: string[] };
  problems: string[];
  /** One line: seed, step and the first problem. */
  message: string;
}

export interface SwarmResult {
  seed: number;
  ok: boolean;
  violation: SwarmViolation | null;
  world: SwarmWorld;
  /** One line per step carried out: "+41200 ms  partition agent-3". */
  timeline: string[];
  /** Steps that could not be carried out as drawn (a refused request, no running task to exit). */
  notes: string[];
  records: number;
  events: number;
  /** Invariant checks made (one per record per replica). */
  checks: number;
  virtualMs: number;
  /** sha256 of the log's bytes: the same seed gives the same hash. */
  logHash: string;
  /**
   * What the run exercised, from its log: events by type, and task state changes by the state
   * entered ("→LOST"), for judging what a sweep covers.
   */
  seen: Record<string, number>;
}

export interface SwarmRunOptions {
  bounds?: Partial<SwarmBounds>;
  /**
   * Called after each record a replica folds, before the invariants are checked: a test hook
   * (test/sim.swarm.test.ts corrupts a state through it, to see the sweep catch it).
   */
  onFold?: (replica: Scheduler, seq: number, events: readonly LogEntry[]) => void;
}

class ViolationError extends Error {
  constructor(readonly violation: SwarmViolation) {
    super(violation.message);
  }
}

const fmtAt = (ms: number): string => `+${(ms / 1000).toFixed(1)} s`;

/** One step in words, for the timeline and for messages. */
function describeAction(world: SwarmWorld, a: SwarmAction): string {
  switch (a.kind) {
    case "createJob": {
      const j = world.jobs[a.job]!;
      return `create ${j.key} (${j.spec.instances} × ${j.spec.service ? "service" : "batch"})`;
    }
    case "killJob":
      return `kill ${a.instances ? `instance ${a.instances.join(",")} of ` : ""}${world.jobs[a.job]!.key}`;
    case "addInstances":
      return `add ${a.count} instance(s) to ${world.jobs[a.job]!.key}`;
    case "crashAgent":
      return `crash agent ${a.agent}`;
    case "restartAgent":
      return `restart agent ${a.agent}${a.reboot ? " (rebooted: a new boot id)" : " (same boot, its tasks gone)"}`;
    case "rebootAgent":
      return `reboot agent ${a.agent}`;
    case "partition":
      return `cut agent ${a.agent} off the bus`;
    case "heal":
      return `agent ${a.agent} back on the bus${a.reconnect ? " (reconnects and registers)" : " (carries on)"}`;
    case "exitTask":
      return `a running task exits with code ${a.exitCode}`;
    case "crashLeader":
      return `crash the leader${world.replicas > 1 ? ` (restarted after ${a.restartAfterMs} ms)` : " (a new one takes over)"}`;
    case "expireLease":
      return "the leader's lease runs out";
  }
}

/** The world in words, one line per thing, for replaying a failing seed. */
export function describeWorld(w: SwarmWorld): string[] {
  const lines: string[] = [];
  const attrs = (g: SimAgentGroup) =>
    Array.from({ length: g.count }, (_, i) =>
      Object.entries(g.attributes?.(i) ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    ).join("; ");
  lines.push(
    `world of seed ${w.seed}: ${w.agentIds.length} agent(s), ${w.replicas} scheduler replica(s), ${w.jobs.length} job(s), ${w.steps.length} step(s)`,
  );
  lines.push(`  chaos for ${w.chaosMs} ms; then the faults stop, and the cell has ${w.quietMs} ms to converge`);
  for (const g of w.agents) {
    lines.push(
      `  agents ${g.prefix}-1..${g.count}: cpus ${g.cpus}, ramMb ${g.ramMb}, diskMb ${g.diskMb}, gpus ${g.gpus ?? 0}, ` +
        `ports ${(g.ports ?? []).map(([lo, hi]) => `${lo}-${hi}`).join(",")}; ${attrs(g)}`,
    );
  }
  lines.push(`  policy ${JSON.stringify(w.policy)}`);
  for (const q of w.quotas) lines.push(`  quota ${q.role}: cpus ${q.cpus}, ramMb ${q.ramMb}, diskMb ${q.diskMb}`);
  for (const j of w.jobs) {
    const sp = j.spec as {
      instances: number;
      service: boolean;
      tier: string;
      priority: number;
      maxTaskFailures: number;
      resources: unknown;
      constraints: unknown;
    };
    lines.push(
      `  job ${j.key} at +${j.at} ms: ${sp.instances} × ${sp.service ? "service" : "batch"}, tier ${sp.tier}, priority ${sp.priority}, ` +
        `maxTaskFailures ${sp.maxTaskFailures}, resources ${JSON.stringify(sp.resources)}, constraints ${JSON.stringify(sp.constraints)}; ` +
        `behaviour ${JSON.stringify(j.behavior)}, then ${JSON.stringify(j.healthy)}`,
    );
  }
  lines.push(`  network during the chaos ${JSON.stringify(w.network)}`);
  for (const [i, st] of w.steps.entries()) lines.push(`  step ${i + 1} at +${st.at} ms: ${describeAction(w, st.action)}`);
  return lines;
}

/** Runs one seed's world and checks it; never throws for what the run finds (it is in the result). */
export async function runSwarm(seed: number, opts: SwarmRunOptions = {}): Promise<SwarmResult> {
  const world = drawWorld(seed, opts.bounds);
  const dice = new Rng(stream(seed, 2));
  const timeline: string[] = [];
  const notes: string[] = [];
  let checks = 0;
  let stepNo = 0;
  let stepWhat = "starting the cell";
  let chaos = false;
  const totalSteps = world.steps.length;
  let sim: Sim | null = null;

  const violation = (problems: string[], record?: SwarmViolation["record"]): SwarmViolation => {
    const atMs = sim?.elapsed ?? 0;
    const where = record ? `: record ${record.seq} [${summarise(record.events)}] folded by ${record.replica} (${record.role})` : "";
    const step = stepNo <= totalSteps ? `step ${stepNo} of ${totalSteps}` : stepNo === totalSteps + 1 ? "the heal" : "the end";
    return {
      seed,
      step: stepNo,
      stepWhat,
      atMs,
      ...(record ? { record } : {}),
      problems,
      message: `seed ${seed}: ${step} (${fmtAt(atMs)}: ${stepWhat})${where}: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`,
    };
  };

  const watch = (replica: Scheduler, seq: number, events: readonly LogEntry[]): void => {
    opts.onFold?.(replica, seq, events);
    checks++;
    // The counts by state are built on a first read (a metrics scrape, a summary), then kept by
    // the fold: read them at once, so every record after is checked against them.
    replica.state.taskStateCounts();
    const problems = checkInvariants(replica.state);
    if (problems.length === 0) return;
    const v = violation(problems, {
      seq,
      replica: replica.schedulerId,
      role: replica.role,
      events: events.map((e) => `${e.type} ${JSON.stringify(e.data)}`),
    });
    sim?.halt(new ViolationError(v));
  };

  let found: SwarmViolation | null = null;
  try {
    sim = await Sim.start({
      seed,
      agents: world.agents,
      policy: world.policy,
      replicas: world.replicas,
      leaseMs: world.leaseMs,
      onFold: watch,
      // A settle takes at most a few dozen turns here; a livelock is known long before 200,000.
      maxSettleTurns: 20_000,
    });
    const s = sim;
    for (const a of s.agents) a.network = (kind) => (chaos ? fate(kind, world.network, dice) : null);
    for (const j of world.jobs) s.behave(j.key, j.behavior);
    for (const q of world.quotas) await request(s, "quota.set", { ...q, user: "admin" }, notes, "quota.set");
    const crashedReplicas: Array<{ replica: Scheduler; at: number }> = [];

    chaos = true;
    for (const step of world.steps) {
      stepNo++;
      stepWhat = describeAction(world, step.action);
      if (step.at > s.elapsed) await s.advance(step.at - s.elapsed);
      await restartReplicasDue(s, crashedReplicas);
      const said = await act(s, world, step.action, dice, notes, crashedReplicas);
      timeline.push(`${fmtAt(s.elapsed).padStart(9)}  ${said ?? stepWhat}`);
    }
    if (world.chaosMs > s.elapsed) await s.advance(world.chaosMs - s.elapsed);

    // The faults stop: the network behaves, every agent and replica comes back, tasks turn healthy.
    stepNo = totalSteps + 1;
    stepWhat = "faults stop: the network heals, agents and replicas come back";
    chaos = false;
    for (const j of world.jobs) s.behave(j.key, j.healthy);
    for (const a of s.agents) {
      if (!a.isUp) void a.start();
      else if (a.isPartitioned) a.heal({ reconnect: true });
    }
    for (const c of crashedReplicas.splice(0)) await s.restart(c.replica);
    await s.settle();
    timeline.push(`${fmtAt(s.elapsed).padStart(9)}  ${stepWhat}`);
    const healedAt = s.elapsed;
    // Run until the cell has converged and stays so for a while (a pending task may preempt,
    // a backed-off group place), or until the deadline; the end checks then say what is off.
    const converged = () => convergence(s, world).length === 0;
    const deadline = healedAt + world.quietMs;
    while (s.elapsed < deadline) {
      try {
        await s.runUntil(converged, deadline - s.elapsed, "the cell to converge");
      } catch (err) {
        if (/timed out after/.test((err as Error).message)) break;
        throw err;
      }
      await s.advance(STAY_CONVERGED_MS);
      if (converged()) break;
    }

    stepNo = totalSteps + 2;
    stepWhat = `${((s.elapsed - healedAt) / 1000).toFixed(1)} s after the faults stopped`;
    timeline.push(`${fmtAt(s.elapsed).padStart(9)}  the end is checked`);
    const problems = await endChecks(s, world);
    if (problems.length > 0) found = violation(problems);
  } catch (err) {
    if (err instanceof ViolationError) found = err.violation;
    else found = violation([`the run failed: ${(err as Error).message}`]);
  }

  const s = sim;
  const result: SwarmResult = {
    seed,
    ok: found === null,
    violation: found,
    world,
    timeline,
    notes,
    records: s ? await s.log.lastSeq().catch(() => 0) : 0,
    events: s?.state.eventCount ?? 0,
    checks,
    virtualMs: s?.elapsed ?? 0,
    logHash: s ? await s.logBytesHash().catch(() => "") : "",
    seen: s ? await seen(s).catch(() => ({})) : {},
  };
  await s?.stop().catch(() => {});
  return result;
}

/** Events by type and task states entered, over the whole log. */
async function seen(sim: Sim): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const add = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  for await (const r of sim.log.read(1)) {
    for (const e of r.events) {
      add(e.type);
      if (e.type === "TaskStateChanged") add(`→${e.data.to}`);
    }
  }
  return counts;
}

function summarise(events: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const e of events) {
    const type = e.split(" ", 1)[0]!;
    counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  return [...counts].map(([t, n]) => (n > 1 ? `${t}×${n}` : t)).join(", ");
}

/** One message's fate under the world's network rates. */
function fate(kind: MessageKind, n: NetworkRates, dice: Rng): MessageFate | null {
  if (kind === "heartbeat") return n.heartbeatLost > 0 && dice.chance(n.heartbeatLost) ? { lost: "request" } : null;
  if (n.lost === 0 && n.replyLost === 0 && n.duplicate === 0 && n.delayed === 0) return null;
  const r = dice.next();
  if (r < n.lost) return { lost: "request" };
  if (r < n.lost + n.replyLost && kind !== "leader") return { lost: "reply" };
  if (r < n.lost + n.replyLost + n.duplicate)
    return { duplicate: true, ...(dice.chance(0.5) ? { delayMs: 1 + dice.int(n.maxDelayMs) } : {}) };
  if (r < n.lost + n.replyLost + n.duplicate + n.delayed) return { delayMs: 1 + dice.int(n.maxDelayMs) };
  return null;
}

/** A client request over the bus, retried while no leader answers (a failover), as the CLI does. */
async function request(sim: Sim, op: string, data: unknown, notes: string[], what: string): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await sim.request(op, data);
    } catch (err) {
      const msg = (err as Error).message;
      if (err instanceof ViolationError || msg.startsWith("sim: ")) throw err; // the run, not the request, failed
      const retry = /no responders|not committed, try again|not the leader|bus closed/.test(msg);
      if (!retry || attempt >= 30) {
        notes.push(`${fmtAt(sim.elapsed)}: ${what} refused: ${msg}`);
        return null;
      }
      await sim.advance(500);
    }
  }
}

async function restartReplicasDue(sim: Sim, crashed: Array<{ replica: Scheduler; at: number }>): Promise<void> {
  for (let i = 0; i < crashed.length; ) {
    if (crashed[i]!.at <= sim.elapsed) {
      const [c] = crashed.splice(i, 1);
      await sim.restart(c!.replica);
    } else i++;
  }
}

async function act(
  sim: Sim,
  world: SwarmWorld,
  a: SwarmAction,
  dice: Rng,
  notes: string[],
  crashedReplicas: Array<{ replica: Scheduler; at: number }>,
): Promise<string | undefined> {
  const what = describeAction(world, a);
  switch (a.kind) {
    case "createJob":
      await request(sim, "job.create", { spec: world.jobs[a.job]!.spec, user: "swarm" }, notes, what);
      return;
    case "killJob":
      await request(sim, "job.kill", { job: world.jobs[a.job]!.key, instances: a.instances, user: "swarm" }, notes, what);
      return;
    case "addInstances":
      await request(sim, "job.add", { job: world.jobs[a.job]!.key, count: a.count, user: "swarm" }, notes, what);
      return;
    case "crashAgent":
      sim.agent(a.agent).crash();
      break;
    case "restartAgent": {
      const agent = sim.agent(a.agent);
      if (agent.isUp) {
        notes.push(`${fmtAt(sim.elapsed)}: ${what}: it is up`);
        return;
      }
      void (a.reboot ? agent.reboot() : agent.start());
      break;
    }
    case "rebootAgent":
      void sim.agent(a.agent).reboot();
      break;
    case "partition":
      sim.agent(a.agent).partition();
      break;
    case "heal":
      sim.agent(a.agent).heal({ reconnect: a.reconnect });
      break;
    case "exitTask": {
      const st = sim.state;
      const running: Array<{ t: TaskRecord; agentId: AgentId }> = [];
      for (const agent of sim.agents) {
        if (!agent.isUp) continue;
        for (const id of agent.running()) {
          const t = st.tasks.get(asTaskId(id));
          if (t && agent.taskPhase(id) === "running") running.push({ t, agentId: agent.agentId });
        }
      }
      if (running.length === 0) {
        notes.push(`${fmtAt(sim.elapsed)}: ${what}: no task was running`);
        return `${what}: none was running`;
      }
      const pick = running[dice.int(running.length)]!;
      sim.agent(pick.agentId).exitTask(pick.t.taskId, a.exitCode);
      await sim.settle();
      return `task ${pick.t.taskId} on ${pick.agentId} exits with code ${a.exitCode}`;
    }
    case "crashLeader": {
      const leader = sim.replicas.find((r) => r.leading);
      if (!leader) {
        notes.push(`${fmtAt(sim.elapsed)}: ${what}: no replica was leading`);
        return `${what}: none was leading`;
      }
      const crashed = await sim.crashLeader();
      if (world.replicas > 1) crashedReplicas.push({ replica: crashed, at: sim.elapsed + a.restartAfterMs });
      return `crash the leader ${leader.schedulerId}${world.replicas > 1 ? ` (restarted after ${a.restartAfterMs} ms)` : ""}`;
    }
    case "expireLease":
      sim.expireLease();
      break;
  }
  await sim.settle();
  return undefined;
}

// ---- the end: did the cell converge? --------------------------------------------------------------

const SETTLED = new Set(["RUNNING", "PENDING", "FINISHED", "FAILED", "KILLED", "LOST", "DELETED"]);

/** What must hold once the faults have stopped and time has run on: each problem, in words. */
export async function endChecks(sim: Sim, world: SwarmWorld): Promise<string[]> {
  return [...(await logChecks(sim)), ...convergence(sim, world)];
}

/** The log folds again to what every live replica holds, with no anomaly, and one writer wrote it at a time. */
async function logChecks(sim: Sim): Promise<string[]> {
  const problems: string[] = [];
  const live = sim.replicas.filter((r) => r.role !== "stopped");
  const refolded = new ClusterState();
  let epoch = 0;
  const writers: string[] = [];
  for await (const r of sim.log.read(1)) {
    foldRecord(refolded, r.seq, r.events);
    for (const [i, e] of r.events.entries()) {
      if (e.type === "LeaderElected") {
        if (e.epoch <= epoch) writers.push(`record ${r.seq}.${i}: LeaderElected at epoch ${e.epoch} after epoch ${epoch}`);
        epoch = e.epoch;
      } else if (e.type !== "(unreadable)" && e.epoch !== epoch) {
        writers.push(`record ${r.seq}.${i}: ${e.type} written at epoch ${e.epoch} while epoch ${epoch} leads`);
      }
    }
  }
  if (writers.length) problems.push(`one writer: ${writers[0]}${writers.length > 1 ? ` (and ${writers.length - 1} more)` : ""}`);
  if (refolded.anomalyCount > 0)
    problems.push(`anomalies: the log holds ${refolded.anomalyCount}, the first: ${JSON.stringify(refolded.anomalies[0])}`);
  const hash = stateHash(refolded);
  for (const r of live) {
    if (r.state.seq !== refolded.seq) problems.push(`replicas: ${r.schedulerId} folded ${r.state.seq} of ${refolded.seq} records`);
    else if (stateHash(r.state) !== hash) problems.push(`replicas: ${r.schedulerId}'s state hash differs from the log folded again`);
  }
  const again = checkInvariants(refolded);
  for (const p of again) problems.push(`the log folded again: ${p}`);
  return problems;
}

/**
 * Has the cell converged? One leader; every task settled (RUNNING, PENDING or ended) with no
 * reschedule owed; every service instance not killed RUNNING, every batch instance not killed
 * ended (FINISHED, or FAILED with its failures spent), every killed one ended, except an instance
 * PENDING that no active agent can take now; and the world agrees with the log: each agent is up
 * and runs exactly the tasks the log has RUNNING there, has delivered every status update, and
 * no instance runs twice.
 */
function convergence(sim: Sim, world: SwarmWorld): string[] {
  const problems: string[] = [];
  const live = sim.replicas.filter((r) => r.role !== "stopped");
  const leaders = live.filter((r) => r.leading);
  if (leaders.length !== 1) problems.push(`leader: ${leaders.length} replicas lead (${leaders.map((r) => r.schedulerId).join(", ")})`);
  const st = (leaders[0] ?? sim.scheduler).state;

  const agents = activeAgents(st);
  const mode = world.policy.placementMode ?? "spread";
  for (const t of st.tasks.values()) {
    if (!SETTLED.has(t.state)) problems.push(`liveness: task ${t.taskId} is still ${t.state}`);
    if (t.rescheduleWanted) problems.push(`liveness: task ${t.taskId} (${t.state}) still waits to be rescheduled`);
  }
  for (const job of st.jobs.values()) {
    for (const [i, taskId] of [...job.instances].sort((x, y) => x[0] - y[0])) {
      const t = st.tasks.get(taskId)!;
      const what = `${job.config.task.service ? "service" : "batch"} ${job.key} instance ${i}`;
      if (job.killedInstances.has(i)) {
        if (!TERMINAL_STATES.has(t.state)) problems.push(`liveness: ${what} was killed, but its task ${taskId} is ${t.state}`);
        continue;
      }
      if (t.state === "PENDING") {
        const g = new TaskGroup(job, t.configVersion);
        const fits = explain(st, new OfferBook(st), agents, g, taskId, mode).filter((v) => v.score !== null);
        if (fits.length > 0)
          problems.push(`liveness: ${what} is PENDING (${taskId}), though ${fits.map((v) => v.agentId).join(", ")} could take it`);
        continue;
      }
      if (job.config.task.service) {
        if (t.state !== "RUNNING") problems.push(`liveness: ${what} ended ${t.state} (${taskId}), not RUNNING`);
      } else if (
        t.state !== "FINISHED" &&
        !(t.state === "FAILED" && t.failureCount >= job.config.task.maxTaskFailures && job.config.task.maxTaskFailures !== -1)
      ) {
        problems.push(`liveness: ${what} ended ${t.state} (${taskId}, ${t.failureCount} failures of ${job.config.task.maxTaskFailures})`);
      }
    }
  }

  // The world agrees with the log: each agent runs exactly the tasks the log has RUNNING there,
  // has delivered every status update, and no instance runs twice.
  const copies = new Map<string, string[]>();
  for (const a of sim.agents) {
    const rec = st.agents.get(a.agentId);
    if (!a.isUp || a.isPartitioned) problems.push(`agents: ${a.agentId} is ${a.isUp ? "cut off" : "down"}`);
    if (rec?.state !== "ACTIVE") problems.push(`agents: the log holds ${a.agentId} ${rec?.state ?? "unregistered"}`);
    const runs = a.running();
    const logged: string[] = [...(rec?.tasks ?? [])].filter((id) => st.tasks.get(id)?.state === "RUNNING").sort();
    const extra = runs.filter((id) => !logged.includes(id));
    const missing = logged.filter((id) => !runs.includes(id));
    if (extra.length) problems.push(`world: ${a.agentId} runs ${extra.join(", ")}, which the log does not have RUNNING there`);
    if (missing.length) problems.push(`world: the log has ${missing.join(", ")} RUNNING on ${a.agentId}, which does not run it`);
    const unsent = a.pendingStatuses();
    if (unsent.length)
      problems.push(`world: ${a.agentId} still holds ${unsent.length} unacknowledged status update(s), the first for ${unsent[0]!.taskId}`);
    for (const id of runs) {
      const t = st.tasks.get(asTaskId(id));
      if (!t) continue;
      const k = `${t.job}#${t.instance}`;
      copies.set(k, [...(copies.get(k) ?? []), `${id} on ${a.agentId}`]);
    }
  }
  for (const [k, c] of copies) if (c.length > 1) problems.push(`world: instance ${k} runs ${c.length} times: ${c.join(", ")}`);
  return problems;
}
