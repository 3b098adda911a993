// `roost sim FILE [--seed N] [--until MS] [--json]`: runs a scenario (src/sim/scenario.ts) in the
// deterministic simulator, the real scheduler with simulated agents on virtual time, and prints
// what happened. The last line is always one JSON object:
//   {"seed":…,"events":…,"records":…,"logHash":"…","tasks":{STATE: n},"jobs":{JOB: {STATE: n}}}
// The same file and seed give the same logHash on every run and machine.

import { InvalidArgumentError, type Command } from "commander";
import { formatScenarioResult, loadScenario, runScenario } from "../sim/scenario.js";

function integer(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

export async function runSim(file: string, o: { seed?: number; until?: number; json?: boolean }): Promise<void> {
  const scenario = loadScenario(file);
  const result = await runScenario(scenario, { seed: o.seed, until: o.until });
  if (!o.json) console.log(`${formatScenarioResult(file, result)}\n`);
  console.log(JSON.stringify(result.summary));
}

/** Adds `roost sim` to the program. */
export function registerSimCommand(program: Command): void {
  program
    .command("sim")
    .argument("<file>", "scenario (YAML): seed, agents, policy, jobs, faults, until")
    .description("run a scenario in the deterministic simulator: the real scheduler, simulated agents, virtual time")
    .option("--seed <n>", "seed (overrides the scenario's)", integer("--seed", 0))
    .option("--until <ms>", "virtual ms to run (overrides the scenario's until)", integer("--until", 1))
    .option("--json", "print only the JSON summary line")
    .action(async (file: string, o: { seed?: number; until?: number; json?: boolean }) => runSim(file, o));
}
