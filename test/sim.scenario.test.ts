// Scenario files and `roost sim`: validation that names the field, the same file and seed giving
// the same summary (in this process and across processes), and another seed another log.

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadScenario, parseScenario, runScenario, ScenarioError, type ScenarioSummary } from "../src/sim/scenario.js";
import { runNode, type RunResult } from "./support/roost.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BASIC = fileURLToPath(new URL("../examples/sims/basic.yaml", import.meta.url));

/** `roost sim` from source (node --import tsx), so no build is needed. */
function roostSim(args: string[]): Promise<RunResult> {
  return runNode(["--import", "tsx", "src/cli/main.ts", "sim", ...args], ROOT);
}

const lastLine = (s: string) => s.trimEnd().split("\n").at(-1)!;

describe("scenario files", () => {
  it("reports every problem, each naming its field", () => {
    const text = `
seed: 1.5
agents:
  - { count: 0, cpus: 2, ramMb: 100, disk: 5 }
policy: { throttleInitialMs: -3, bogus: 1 }
jobs:
  - at: 0
    spec: { role: a, environment: devel, name: x, resources: { cpus: 1, ramMb: -16, diskMb: 1 }, processes: [{ name: m, cmdline: x }] }
    behavior: { failProbability: 2 }
faults:
  - { at: 5, kind: explode }
  - { at: 5, kind: exitTask, job: a/devel/x }
`;
    let err: unknown;
    try {
      parseScenario(text, "bad.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScenarioError);
    const issues = (err as ScenarioError).issues;
    for (const field of [
      "seed:",
      "agents[0].count:",
      "agents[0].disk: unknown field",
      "agents[0].diskMb: required",
      "policy.throttleInitialMs:",
      "policy.bogus: unknown field",
      "jobs[0].behavior.failProbability:",
      "jobs[0].spec.resources.ramMb:",
      "faults[0].kind:",
      "faults[1].instance: required",
    ]) {
      expect(
        issues.some((i) => i.startsWith(field)),
        `${field} in\n${issues.join("\n")}`,
      ).toBe(true);
    }
    expect((err as Error).message).toMatch(/^invalid scenario bad\.yaml \(\d+ problems\):/);
  });

  it("knows the agents it defines, and reads job spec files relative to itself", () => {
    expect(() =>
      parseScenario("agents: [{count: 2, cpus: 1, ramMb: 1, diskMb: 1}]\nfaults: [{at: 1, kind: crashAgent, agent: agent-3}]"),
    ).toThrow(/faults\[0\]\.agent: no such agent; agents: agent-1, agent-2/);
    const sc = parseScenario(
      "until: 1000\nagents: [{count: 1, cpus: 1, ramMb: 64, diskMb: 64}]\njobs: [{at: 5, file: ../batch-job.yaml, behavior: {runMs: 10}}]",
      "inline.yaml",
      fileURLToPath(new URL("../examples/sims/", import.meta.url)),
    );
    expect(sc.jobs[0]!.config.name).toBe("batch");
    expect(sc.jobs[0]!.behavior).toEqual({ runMs: 10 });
  });

  it("runs examples/sims/basic.yaml the same way twice; another seed gives another log", async () => {
    const sc = loadScenario(BASIC);
    const a = await runScenario(sc);
    const b = await runScenario(sc);
    const c = await runScenario(sc, { seed: 7 });
    expect(b.summary).toEqual(a.summary);
    expect(b.timeline).toEqual(a.timeline);
    expect(a.summary.seed).toBe(42);
    expect(a.summary.logHash).toMatch(/^[0-9a-f]{64}$/);
    expect(c.summary.logHash).not.toBe(a.summary.logHash);
    // The flaky job failed some runs (failProbability), the service is running, the batch finished.
    expect(a.summary.tasks.FAILED ?? 0).toBeGreaterThan(0);
    expect(a.summary.jobs["www-data/prod/web"]).toEqual({ RUNNING: 3 });
    expect(a.summary.jobs["analytics/prod/nightly"]).toEqual({ FINISHED: 4 });
    expect(a.timeline.some((l) => /agent agent-2 rebooted/.test(l))).toBe(true);
    expect(a.summary.tasks.LOST ?? 0).toBeGreaterThan(0);
  });
});

describe("roost sim", () => {
  it("prints a summary and, last, one JSON line that is the same in every process", async () => {
    const [h, j1, j2] = await Promise.all([roostSim([BASIC]), roostSim([BASIC, "--json"]), roostSim([BASIC, "--json", "--seed", "42"])]);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/timeline:/);
    expect(h.stdout).toMatch(/agent agent-2 rebooted/);
    const s1 = JSON.parse(lastLine(h.stdout)) as ScenarioSummary;
    expect(Object.keys(s1)).toEqual(["seed", "events", "records", "logHash", "tasks", "jobs"]);
    expect(j1.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(j1.stdout)).toEqual(s1);
    expect(JSON.parse(j2.stdout)).toEqual(s1);
    const inProcess = await runScenario(loadScenario(BASIC));
    expect(inProcess.summary).toEqual(s1);
  });

  it("--seed and --until change the run; a bad file exits 1 naming the field", async () => {
    const [other, short, bad] = await Promise.all([
      roostSim([BASIC, "--json", "--seed", "7"]),
      roostSim([BASIC, "--json", "--until", "20000"]),
      roostSim([fileURLToPath(new URL("../examples/hello-service.yaml", import.meta.url))]),
    ]);
    expect(JSON.parse(other.stdout).seed).toBe(7);
    expect(JSON.parse(other.stdout).logHash).not.toBe(JSON.parse(short.stdout).logHash);
    expect(Object.keys(JSON.parse(short.stdout).jobs)).toEqual(["www-data/prod/web"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid scenario/);
    expect(bad.stderr).toMatch(/role: unknown field/);
    expect(bad.stderr).toMatch(/agents: required/);
  });
});
