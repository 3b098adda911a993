// `roost sim FILE [--seed N] [--until MS] [--json]`: runs a scenario (src/sim/scenario.ts) in the
// deterministic simulator, the real scheduler with simulated agents on virtual time, and prints
// what happened. The last line is always one JSON object:
//   {"seed":…,"events":…,"records":…,"logHash":"…","tasks":{STATE: n},"jobs":{JOB: {STATE: n}}}
// The same file and seed give the same logHash on every run and machine.
//
// `roost sim --seeds N [--from S] [--verbose]` (`npm run sim -- --seeds N`): the swarm
// (src/sim/swarm.ts). Each seed S..S+N-1 draws a world (agents, jobs, faults, a noisy network),
// runs it and checks the fold's invariants after every record and convergence at the end. One
// line per failing seed, with the first violation; a summary line; last, one JSON line
//   {"from":…,"seeds":…,"passed":…,"failed":[…],"ms":…}
// and exit code 1 if any seed failed. `--seeds 1 --from S` replays seed S alone and says more:
// its world, what happened step by step, and every violation with the record that broke it.

import { type Command, InvalidArgumentError } from "commander";
import type { SwarmResult } from "../sim/swarm.js";

function integer(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

interface SimFlags {
  seed?: number;
  until?: number;
  json?: boolean;
  seeds?: number;
  from?: number;
  verbose?: boolean;
}

async function runSim(file: string | undefined, o: SimFlags): Promise<void> {
  if (o.seeds !== undefined) {
    if (file !== undefined) throw new Error("--seeds runs the swarm, whose seeds draw their own worlds: it takes no scenario file");
    if (o.seed !== undefined || o.until !== undefined)
      throw new Error("--seed and --until are for a scenario file; the swarm takes --seeds N [--from S]");
    return runSweep(o.from ?? 1, o.seeds, { verbose: o.verbose === true || o.seeds === 1, json: o.json === true });
  }
  if (o.from !== undefined || o.verbose) throw new Error("--from and --verbose go with --seeds N (the swarm)");
  if (file === undefined) throw new Error("roost sim needs a scenario file (roost sim FILE), or --seeds N for the swarm");
  // Loaded here, not at the top: the simulator brings the whole scheduler, which no other command needs.
  const { formatScenarioResult, loadScenario, runScenario } = await import("../sim/scenario.js");
  const scenario = loadScenario(file);
  const result = await runScenario(scenario, { seed: o.seed, until: o.until });
  if (!o.json) console.log(`${formatScenarioResult(file, result)}\n`);
  console.log(JSON.stringify(result.summary));
}

/** Everything about one seed's run, for a replay, after its `world` described. */
function formatSwarmDetail(r: SwarmResult, world: string[]): string {
  const lines = [...world, "", "what happened:", ...r.timeline.map((t) => `  ${t}`)];
  if (r.notes.length) lines.push("", "notes:", ...r.notes.map((n) => `  ${n}`));
  lines.push(
    "",
    `${r.records} records, ${r.events} events, ${r.checks} invariant checks, ${r.virtualMs} virtual ms; log sha256 ${r.logHash}`,
  );
  const v = r.violation;
  if (v) {
    lines.push(
      "",
      `FAILED at ${v.step === 0 ? "the start" : `step ${v.step}`} (+${v.atMs} ms: ${v.stepWhat}):`,
      ...v.problems.map((p) => `  ${p}`),
    );
    if (v.record)
      lines.push(`record ${v.record.seq}, folded by ${v.record.replica} (${v.record.role}):`, ...v.record.events.map((e) => `  ${e}`));
  } else lines.push("", "passed");
  return lines.join("\n");
}

async function runSweep(from: number, count: number, o: { verbose: boolean; json: boolean }): Promise<void> {
  const t0 = performance.now();
  const failed: number[] = [];
  let records = 0;
  let checks = 0;
  let virtualMs = 0;
  const seen: Record<string, number> = {};
  // Loaded here, as the scenario runner is: the swarm brings the whole scheduler too.
  const { describeWorld, runSwarm } = await import("../sim/swarm.js");
  for (let seed = from; seed < from + count; seed++) {
    const r = await runSwarm(seed);
    records += r.records;
    checks += r.checks;
    virtualMs += r.virtualMs;
    for (const [k, n] of Object.entries(r.seen)) seen[k] = (seen[k] ?? 0) + n;
    if (!r.ok) {
      failed.push(seed);
      if (!o.json) console.log(`FAIL ${r.violation!.message}`);
    }
    if (o.verbose && !o.json) console.log(`${formatSwarmDetail(r, describeWorld(r.world))}\n`);
  }
  const ms = Math.round(performance.now() - t0);
  if (!o.json) {
    const range = count === 1 ? `seed ${from}` : `seeds ${from}..${from + count - 1}`;
    console.log(
      `swarm: ${range}: ${count - failed.length} passed, ${failed.length} failed${failed.length ? ` (${failed.join(", ")})` : ""} ` +
        `in ${(ms / 1000).toFixed(1)} s; ${records} records, ${checks} invariant checks, ${(virtualMs / 3_600_000).toFixed(1)} virtual hours`,
    );
    const exercised = Object.entries(seen)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`);
    console.log(`exercised: ${exercised.join(", ")}`);
    if (failed.length && count > 1) console.log(`replay one with: roost sim --seeds 1 --from ${failed[0]}`);
  }
  console.log(JSON.stringify({ from, seeds: count, passed: count - failed.length, failed, ms }));
  if (failed.length) process.exitCode = 1;
}

/** Adds `roost sim` to the program. */
export function registerSimCommand(program: Command): void {
  program
    .command("sim")
    .argument("[file]", "scenario (YAML): seed, agents, policy, jobs, faults, until")
    .description(
      "run a scenario in the deterministic simulator (the real scheduler, simulated agents, virtual time), " +
        "or with --seeds N sweep N seeds of the swarm: worlds and faults drawn from each seed, invariants checked after every record",
    )
    .option("--seed <n>", "seed (overrides the scenario's)", integer("--seed", 0))
    .option("--until <ms>", "virtual ms to run (overrides the scenario's until)", integer("--until", 1))
    .option("--json", "print only the JSON summary line")
    .option("--seeds <n>", "swarm: run this many seeds, each drawing its own world", integer("--seeds", 1))
    .option("--from <s>", "swarm: the first seed (default 1)", integer("--from", 0))
    .option("--verbose", "swarm: every seed's world and timeline (the default for --seeds 1)")
    .action(async (file: string | undefined, o: SimFlags) => runSim(file, o));
}
