// Scenario files for `roost sim`: a YAML description of a cluster, the jobs that arrive (with how
// their tasks behave) and the faults that strike, at virtual times, run in the deterministic
// simulator (sim.ts). The same scenario and seed always give the same log (the same logHash).
//
//   seed: 42
//   until: 600000                    # virtual ms to run
//   agents:
//     - { count: 3, cpus: 4, ramMb: 8192, diskMb: 65536, attributes: { rack: "r{i%2}" } }
//   policy: { throttleInitialMs: 5000 }
//   jobs:
//     - at: 0
//       spec: { role: www-data, environment: prod, name: web, instances: 3, service: true, ... }
//     - at: 1000
//       file: ../batch-job.yaml      # relative to the scenario file
//       behavior: { startMs: 200, runMs: 30000, exitCode: 0, failProbability: 0.3 }
//   faults:
//     - { at: 120000, kind: rebootAgent, agent: agent-2 }
//     - { at: 150000, kind: exitTask, job: www-data/prod/web, instance: 0, exitCode: 137 }
//     - { at: 500000, kind: killJob, job: www-data/prod/web }
//
// Attribute values may use {i} (the agent's index in its group, from 0), {n} (from 1) and
// {i%K} / {n%K}. Every problem in a file is reported together, each naming its field.

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { AURORA_POLICY, type SchedulingPolicy } from "../actors/policy.js";
import { jobKeyString, parseJobKey, type JobConfig, type JobKeyString } from "../domain/types.js";
import { parseJobSpec, SpecError, validateJobSpec } from "../spec/jobSpec.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import { Sim, type SimAgentGroup } from "./sim.js";
import type { TaskBehavior } from "./simAgent.js";

const FAULT_KINDS = ["crashAgent", "rebootAgent", "exitTask", "killJob"] as const;
type FaultKind = (typeof FAULT_KINDS)[number];

interface ScenarioJob {
  at: number;
  config: JobConfig;
  behavior: TaskBehavior;
  /** Where it came from, for messages: "jobs[1]" or "jobs[1] (batch.yaml)". */
  origin: string;
}

interface ScenarioFault {
  at: number;
  kind: FaultKind;
  agent?: string;
  job?: JobKeyString;
  instance?: number;
  exitCode?: number;
  origin: string;
}

export interface Scenario {
  seed: number;
  agents: SimAgentGroup[];
  policy: Partial<SchedulingPolicy>;
  jobs: ScenarioJob[];
  faults: ScenarioFault[];
  /** Virtual ms to run; undefined when the file leaves it to --until. */
  until: number | undefined;
}

export class ScenarioError extends Error {
  override name = "ScenarioError";
  constructor(
    readonly issues: string[],
    readonly fileName?: string,
  ) {
    const count = issues.length === 1 ? "1 problem" : `${issues.length} problems`;
    super([`invalid scenario${fileName ? ` ${fileName}` : ""} (${count}):`, ...issues.map((i) => `  ${i}`)].join("\n"));
  }
}

// ---- parsing and validation -----------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const got = (v: unknown) => ` (got ${JSON.stringify(v) ?? String(v)})`;

class Checker {
  readonly issues: string[] = [];
  problem(path: string, rule: string, value?: unknown): void {
    this.issues.push(`${path}: ${rule}${value === undefined ? "" : got(value)}`);
  }
  fields(obj: Obj, path: string, known: readonly string[]): void {
    for (const k of Object.keys(obj))
      if (!known.includes(k)) this.problem(path ? `${path}.${k}` : k, `unknown field; known: ${known.join(", ")}`);
  }
  /** A number ≥ min (integer when asked); undefined when absent and not required. */
  num(
    obj: Obj,
    key: string,
    path: string,
    o: { min?: number; max?: number; int?: boolean; required?: boolean; above?: boolean } = {},
  ): number | undefined {
    const v = obj[key];
    const p = `${path}.${key}`.replace(/^\./, "");
    if (v === undefined || v === null) {
      if (o.required) this.problem(p, "required");
      return undefined;
    }
    const min = o.min ?? 0;
    const what = `${o.int ? "an integer" : "a number"} ${o.above ? "greater than" : "≥"} ${min}${o.max !== undefined ? ` and ≤ ${o.max}` : ""}`;
    if (
      typeof v !== "number" ||
      !Number.isFinite(v) ||
      (o.int && !Number.isInteger(v)) ||
      (o.above ? v <= min : v < min) ||
      (o.max !== undefined && v > o.max)
    ) {
      this.problem(p, `must be ${what}`, v);
      return undefined;
    }
    return v;
  }
  str(obj: Obj, key: string, path: string, required = false): string | undefined {
    const v = obj[key];
    const p = `${path}.${key}`.replace(/^\./, "");
    if (v === undefined || v === null) {
      if (required) this.problem(p, "required");
      return undefined;
    }
    if (typeof v !== "string" || v.length === 0) {
      this.problem(p, "must be a non-empty string", v);
      return undefined;
    }
    return v;
  }
}

const AGENT_FIELDS = ["count", "prefix", "cpus", "ramMb", "diskMb", "gpus", "ports", "attributes"] as const;
const JOB_FIELDS = ["at", "spec", "file", "behavior"] as const;
const BEHAVIOR_FIELDS = ["startMs", "runMs", "exitCode", "failProbability", "failExitCode", "killMs"] as const;
const FAULT_FIELDS = ["at", "kind", "agent", "job", "instance", "exitCode"] as const;
const TOP_FIELDS = ["seed", "until", "agents", "policy", "jobs", "faults"] as const;

/** {i}, {n}, {i%K}, {n%K} in an attribute value. */
const TEMPLATE = /\{(i|n)(?:%(\d+))?\}/g;
function attributeTemplate(values: Record<string, string>): (i: number) => Record<string, string> {
  return (i) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) {
      out[k] = v.replace(TEMPLATE, (_m, which: string, mod: string | undefined) => {
        const base = which === "i" ? i : i + 1;
        return String(mod ? base % Number(mod) : base);
      });
    }
    return out;
  };
}

/** The agent ids a list of groups yields, as Sim.start names them. */
function agentIds(groups: SimAgentGroup[]): string[] {
  const counters = new Map<string, number>();
  const ids: string[] = [];
  for (const g of groups) {
    const prefix = g.prefix ?? "agent";
    for (let i = 0; i < g.count; i++) {
      const n = (counters.get(prefix) ?? 0) + 1;
      counters.set(prefix, n);
      ids.push(`${prefix}-${n}`);
    }
  }
  return ids;
}

function parseBehavior(c: Checker, raw: unknown, path: string): TaskBehavior {
  if (raw === undefined || raw === null) return {};
  if (!isObj(raw)) {
    c.problem(path, "must be a map of startMs, runMs, exitCode, failProbability, failExitCode, killMs", raw);
    return {};
  }
  c.fields(raw, path, BEHAVIOR_FIELDS);
  const b: TaskBehavior = {};
  const startMs = c.num(raw, "startMs", path);
  if (startMs !== undefined) b.startMs = startMs;
  if (raw.runMs === null) b.runMs = null;
  else {
    const runMs = c.num(raw, "runMs", path);
    if (runMs !== undefined) b.runMs = runMs;
  }
  const exitCode = c.num(raw, "exitCode", path, { int: true, max: 255 });
  if (exitCode !== undefined) b.exitCode = exitCode;
  const p = c.num(raw, "failProbability", path, { max: 1 });
  if (p !== undefined) b.failProbability = p;
  const fx = c.num(raw, "failExitCode", path, { int: true, min: 1, max: 255 });
  if (fx !== undefined) b.failExitCode = fx;
  const killMs = c.num(raw, "killMs", path);
  if (killMs !== undefined) b.killMs = killMs;
  return b;
}

function specIssues(err: SpecError, path: string): string[] {
  return err.issues.map((i) => (i.path ? `${path}.${i.message}` : `${path}: ${i.message}`));
}

/**
 * Parses and validates a scenario. Job spec files (`file:`) are read relative to `baseDir`
 * (default: the current directory). Throws ScenarioError listing every problem.
 */
export function parseScenario(text: string, fileName?: string, baseDir = "."): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return `line ${line}, column ${col}: YAML syntax error: ${e.message.split("\n")[0]}`;
      }),
      fileName,
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const c = new Checker();
  if (!isObj(data)) throw new ScenarioError([`the scenario must be a YAML map with ${TOP_FIELDS.join(", ")}`], fileName);
  c.fields(data, "", TOP_FIELDS);

  const seed = c.num(data, "seed", "", { int: true, max: 0xffffffff }) ?? 1;
  const until = c.num(data, "until", "", { above: true });

  // agents
  const agents: SimAgentGroup[] = [];
  if (!Array.isArray(data.agents) || data.agents.length === 0) {
    c.problem("agents", "required: a list of agent groups ({count, cpus, ramMb, diskMb, …})", data.agents ?? undefined);
  } else {
    for (const [gi, raw] of (data.agents as unknown[]).entries()) {
      const path = `agents[${gi}]`;
      if (!isObj(raw)) {
        c.problem(path, "must be a map with count, cpus, ramMb, diskMb", raw);
        continue;
      }
      c.fields(raw, path, AGENT_FIELDS);
      const count = c.num(raw, "count", path, { int: true, min: 1, required: true });
      const cpus = c.num(raw, "cpus", path, { above: true, required: true });
      const ramMb = c.num(raw, "ramMb", path, { int: true, above: true, required: true });
      const diskMb = c.num(raw, "diskMb", path, { int: true, above: true, required: true });
      const gpus = c.num(raw, "gpus", path, { int: true });
      const prefix = c.str(raw, "prefix", path);
      if (prefix !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(prefix))
        c.problem(`${path}.prefix`, "must be letters, digits, _ and - (it starts agent ids)", prefix);
      let ports: [number, number][] | undefined;
      if (raw.ports !== undefined) {
        const ok =
          Array.isArray(raw.ports) &&
          raw.ports.every(
            (r: unknown) =>
              Array.isArray(r) && r.length === 2 && r.every((x) => Number.isInteger(x) && x >= 1 && x <= 65535) && r[0] <= r[1],
          );
        if (!ok) c.problem(`${path}.ports`, "must be a list of [lo, hi] port ranges, 1 ≤ lo ≤ hi ≤ 65535", raw.ports);
        else ports = (raw.ports as [number, number][]).map(([lo, hi]) => [lo, hi]);
      }
      let attributes: ((i: number) => Record<string, string>) | undefined;
      if (raw.attributes !== undefined) {
        if (!isObj(raw.attributes) || !Object.values(raw.attributes).every((v) => typeof v === "string" || typeof v === "number")) {
          c.problem(`${path}.attributes`, "must be a map of attribute name to string (may use {i}, {n}, {i%K})", raw.attributes);
        } else {
          attributes = attributeTemplate(Object.fromEntries(Object.entries(raw.attributes).map(([k, v]) => [k, String(v)])));
        }
      }
      if (count !== undefined && cpus !== undefined && ramMb !== undefined && diskMb !== undefined) {
        agents.push({
          count,
          cpus,
          ramMb,
          diskMb,
          ...(prefix ? { prefix } : {}),
          ...(gpus !== undefined ? { gpus } : {}),
          ...(ports ? { ports } : {}),
          ...(attributes ? { attributes } : {}),
        });
      }
    }
  }
  const ids = new Set(agentIds(agents));

  // policy
  const policy: Record<string, unknown> = {};
  if (data.policy !== undefined && data.policy !== null) {
    if (!isObj(data.policy)) c.problem("policy", "must be a map of policy fields", data.policy);
    else {
      for (const [k, v] of Object.entries(data.policy)) {
        const dflt = (AURORA_POLICY as unknown as Record<string, unknown>)[k];
        if (dflt === undefined) c.problem(`policy.${k}`, `unknown field; known: ${Object.keys(AURORA_POLICY).join(", ")}`);
        else if (k === "placementMode") {
          if (v !== "spread" && v !== "binpack") c.problem("policy.placementMode", 'must be "spread" or "binpack"', v);
          else policy[k] = v;
        } else if (typeof dflt === "number") {
          if (typeof v !== "number" || !Number.isFinite(v) || v < 0) c.problem(`policy.${k}`, "must be a number ≥ 0", v);
          else policy[k] = v;
        } else if (typeof v !== typeof dflt) c.problem(`policy.${k}`, `must be a ${typeof dflt}`, v);
        else policy[k] = v;
      }
    }
  }

  // jobs
  const jobs: ScenarioJob[] = [];
  if (data.jobs !== undefined && data.jobs !== null && !Array.isArray(data.jobs)) c.problem("jobs", "must be a list", data.jobs);
  for (const [ji, raw] of (Array.isArray(data.jobs) ? data.jobs : []).entries()) {
    const path = `jobs[${ji}]`;
    if (!isObj(raw)) {
      c.problem(path, "must be a map with at, spec or file, and behavior", raw);
      continue;
    }
    c.fields(raw, path, JOB_FIELDS);
    const at = c.num(raw, "at", path) ?? 0;
    const behavior = parseBehavior(c, raw.behavior, `${path}.behavior`);
    let config: JobConfig | undefined;
    let origin = path;
    if ((raw.spec === undefined) === (raw.file === undefined)) {
      c.problem(path, "needs exactly one of spec (an inline job spec) or file (a job spec file)");
    } else if (raw.spec !== undefined) {
      try {
        config = validateJobSpec(raw.spec);
      } catch (err) {
        if (err instanceof SpecError) c.issues.push(...specIssues(err, `${path}.spec`));
        else c.problem(`${path}.spec`, (err as Error).message);
      }
    } else {
      const file = c.str(raw, "file", path);
      if (file !== undefined) {
        origin = `${path} (${file})`;
        const full = resolve(baseDir, file);
        let text: string | undefined;
        try {
          text = readFileSync(full, "utf8");
        } catch (err) {
          c.problem(`${path}.file`, `cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        if (text !== undefined) {
          try {
            config = parseJobSpec(text, file);
          } catch (err) {
            if (err instanceof SpecError) {
              for (const i of err.issues)
                c.issues.push(
                  `${path}.file (${file}): ${i.message}${i.line !== undefined && i.path !== "" ? ` [line ${i.line}, column ${i.column}]` : ""}`,
                );
            } else c.problem(`${path}.file`, (err as Error).message);
          }
        }
      }
    }
    if (config) jobs.push({ at, config, behavior, origin });
  }

  // faults
  const faults: ScenarioFault[] = [];
  if (data.faults !== undefined && data.faults !== null && !Array.isArray(data.faults)) c.problem("faults", "must be a list", data.faults);
  for (const [fi, raw] of (Array.isArray(data.faults) ? data.faults : []).entries()) {
    const path = `faults[${fi}]`;
    if (!isObj(raw)) {
      c.problem(path, `must be a map with at and kind (${FAULT_KINDS.join(", ")})`, raw);
      continue;
    }
    c.fields(raw, path, FAULT_FIELDS);
    const at = c.num(raw, "at", path, { required: true });
    const kind = raw.kind as FaultKind;
    if (!FAULT_KINDS.includes(kind)) {
      c.problem(
        `${path}.kind`,
        raw.kind === undefined ? `required: one of ${FAULT_KINDS.join(", ")}` : `must be one of ${FAULT_KINDS.join(", ")}`,
        raw.kind,
      );
      continue;
    }
    const f: ScenarioFault = { at: at ?? 0, kind, origin: path };
    const before = c.issues.length;
    if (kind === "crashAgent" || kind === "rebootAgent") {
      const agent = c.str(raw, "agent", path, true);
      if (agent !== undefined && !ids.has(agent))
        c.problem(
          `${path}.agent`,
          ids.size ? `no such agent; agents: ${[...ids].join(", ")}` : "no such agent (no valid agent group is defined)",
          agent,
        );
      f.agent = agent;
      for (const k of ["job", "instance", "exitCode"]) if (raw[k] !== undefined) c.problem(`${path}.${k}`, `not used by ${kind}`);
    } else {
      const job = c.str(raw, "job", path, true);
      if (job !== undefined) {
        try {
          f.job = jobKeyString(parseJobKey(job));
        } catch (err) {
          c.problem(`${path}.job`, (err as Error).message);
        }
      }
      const instance = c.num(raw, "instance", path, { int: true, required: kind === "exitTask" });
      if (instance !== undefined) f.instance = instance;
      if (kind === "exitTask") f.exitCode = c.num(raw, "exitCode", path, { int: true, max: 255 }) ?? 1;
      else if (raw.exitCode !== undefined) c.problem(`${path}.exitCode`, "not used by killJob");
      if (raw.agent !== undefined) c.problem(`${path}.agent`, `not used by ${kind}`);
    }
    if (c.issues.length === before && at !== undefined) faults.push(f);
  }

  if (c.issues.length > 0) throw new ScenarioError(c.issues, fileName);
  return { seed, agents, policy: policy as Partial<SchedulingPolicy>, jobs, faults, until };
}

/** Reads and validates a scenario file; job spec files are found relative to it. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read scenario ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseScenario(text, path, dirname(resolve(path)));
}

// ---- running ----------------------------------------------------------------------------------

/** The summary `roost sim` prints as its last line. */
export interface ScenarioSummary {
  seed: number;
  /** Events in the log. */
  events: number;
  /** Records (group commits) in the log. */
  records: number;
  /** sha256 over every record's bytes, in order. */
  logHash: string;
  /** Every task ever created, by state. */
  tasks: Record<string, number>;
  /** Per job, its instances' current tasks by state. */
  jobs: Record<string, Record<string, number>>;
}

export interface ScenarioResult {
  summary: ScenarioSummary;
  untilMs: number;
  agents: number;
  /** What happened when, one line per scenario step: "+120000 ms  agent-2 rebooted". */
  timeline: string[];
  /** Steps that could not be carried out (a refused job, a task that was not running), and why. */
  notes: string[];
}

type Step = { at: number; order: number; run: (sim: Sim) => Promise<string> };

/** Tasks by state, in TASK_STATES order (so the JSON reads the same every time). */
function countStates(states: Iterable<string>): Record<string, number> {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  const out: Record<string, number> = {};
  for (const s of TASK_STATES) if (counts.has(s)) out[s] = counts.get(s)!;
  return out;
}

/** Runs a scenario in a fresh simulator. `seed` and `until` override the file's. */
export async function runScenario(sc: Scenario, opts: { seed?: number; until?: number } = {}): Promise<ScenarioResult> {
  const seed = opts.seed ?? sc.seed;
  const until = opts.until ?? sc.until;
  if (until === undefined) throw new Error("the scenario has no `until` (virtual ms to run): add one, or pass --until MS");
  const sim = await Sim.start({ seed, agents: sc.agents, policy: sc.policy });
  const timeline: string[] = [];
  const notes: string[] = [];
  try {
    const steps: Step[] = [];
    let order = 0;
    for (const j of sc.jobs) {
      steps.push({
        at: j.at,
        order: order++,
        run: async (s) => {
          const key = jobKeyString(j.config);
          s.behave(key, j.behavior);
          try {
            const r = await s.createJob(j.config, { user: "sim" });
            return `job ${r.job} created (${r.taskIds.length} task${r.taskIds.length === 1 ? "" : "s"})`;
          } catch (err) {
            notes.push(`${j.origin} at +${j.at} ms: job ${key} refused: ${(err as Error).message}`);
            return `job ${key} refused`;
          }
        },
      });
    }
    for (const f of sc.faults) {
      steps.push({ at: f.at, order: order++, run: (s) => runFault(s, f, notes) });
    }
    steps.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const step of steps) {
      if (step.at > until) {
        notes.push(`a step at +${step.at} ms is after until (${until} ms) and did not run`);
        continue;
      }
      if (step.at > sim.elapsed) await sim.advance(step.at - sim.elapsed);
      const what = await step.run(sim);
      timeline.push(`${`+${step.at} ms`.padStart(12)}  ${what}`);
    }
    if (until > sim.elapsed) await sim.advance(until - sim.elapsed);
    const state = sim.state;
    const jobs: Record<string, Record<string, number>> = {};
    for (const key of [...state.jobs.keys()].sort()) {
      const job = state.jobs.get(key)!;
      jobs[key] = countStates([...job.instances.values()].map((id) => state.tasks.get(id)!.state));
    }
    const summary: ScenarioSummary = {
      seed,
      events: state.eventCount,
      records: state.seq,
      logHash: await sim.logBytesHash(),
      tasks: countStates([...state.tasks.values()].map((t) => t.state)),
      jobs,
    };
    return { summary, untilMs: until, agents: sim.agents.length, timeline, notes };
  } finally {
    await sim.stop();
  }
}

async function runFault(sim: Sim, f: ScenarioFault, notes: string[]): Promise<string> {
  const where = `${f.origin} at +${f.at} ms`;
  switch (f.kind) {
    case "crashAgent":
      sim.agent(f.agent!).crash();
      await sim.settle();
      return `agent ${f.agent} crashed`;
    case "rebootAgent":
      void sim.agent(f.agent!).reboot();
      await sim.settle();
      return `agent ${f.agent} rebooted`;
    case "exitTask": {
      const job = sim.state.jobs.get(f.job!);
      const taskId = job?.instances.get(f.instance!);
      const agent = taskId ? sim.agentOf(taskId) : null;
      const phase = taskId && agent ? agent.taskPhase(taskId) : undefined;
      if (!taskId || !agent || (phase !== "running" && phase !== "starting") || !agent.isUp) {
        const why = !job
          ? "the job does not exist"
          : !taskId
            ? "it has no such instance"
            : `its task ${taskId} is ${sim.state.tasks.get(taskId)!.state}${agent ? ` (on ${agent.agentId}: ${phase ?? "unknown there"})` : ""}, not running`;
        notes.push(`${where}: exitTask ${f.job} instance ${f.instance} skipped: ${why}`);
        return `exitTask ${f.job}/${f.instance} skipped`;
      }
      agent.exitTask(taskId, f.exitCode ?? 1);
      await sim.settle();
      return `task ${taskId} exited with code ${f.exitCode ?? 1} on ${agent.agentId}`;
    }
    case "killJob": {
      const instances = f.instance === undefined ? null : [f.instance];
      try {
        await sim.killJob(f.job!, instances);
        return `kill of ${instances ? `instance ${f.instance} of ` : ""}job ${f.job} requested`;
      } catch (err) {
        notes.push(`${where}: killJob ${f.job} refused: ${(err as Error).message}`);
        return `kill of job ${f.job} refused`;
      }
    }
  }
}

/** The human summary `roost sim` prints before its JSON line. */
export function formatScenarioResult(name: string, r: ScenarioResult): string {
  const s = r.summary;
  const lines: string[] = [];
  lines.push(`simulated ${name}: seed ${s.seed}, ${r.agents} agent${r.agents === 1 ? "" : "s"}, ${r.untilMs} virtual ms`);
  if (r.timeline.length) {
    lines.push("", "timeline:");
    for (const t of r.timeline) lines.push(`  ${t}`);
  }
  if (r.notes.length) {
    lines.push("", "notes:");
    for (const n of r.notes) lines.push(`  ${n}`);
  }
  const fmt = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ") || "none";
  lines.push("", "jobs (current task of each instance):");
  const width = Math.max(0, ...Object.keys(s.jobs).map((k) => k.length));
  for (const [k, c] of Object.entries(s.jobs)) lines.push(`  ${k.padEnd(width)}  ${fmt(c)}`);
  if (Object.keys(s.jobs).length === 0) lines.push("  none");
  lines.push("", `tasks (every run): ${fmt(s.tasks)}`);
  lines.push(`log: ${s.records} records, ${s.events} events, sha256 ${s.logHash}`);
  return lines.join("\n");
}
