// The scheduler's V8 flags (src/cli/nodeFlags.ts) are one list, and every way a scheduler is
// started passes all of it: the systemd unit, the `roost` command's #! line, and `npm run bench`
// (which runs the scheduler in its own process). `roost dev` and the benches' child processes
// import the list itself. A flag dropped from one place would make the benches measure a
// scheduler that production does not run, or the other way round.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SCHEDULER_NODE_FLAGS } from "../src/cli/nodeFlags.js";

const root = join(import.meta.dirname, "..");
const read = (f: string) => readFileSync(join(root, f), "utf8");

describe("the scheduler's node flags", () => {
  it("are passed by the systemd unit, the roost command and npm run bench", () => {
    expect(SCHEDULER_NODE_FLAGS.length).toBeGreaterThan(0);
    const execStart = read("ops/systemd/roost-scheduler.service")
      .split("\n")
      .find((l) => l.startsWith("ExecStart="));
    const shebang = read("bin/roost.js").split("\n")[0]!;
    const bench = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.bench!;
    for (const flag of SCHEDULER_NODE_FLAGS) {
      expect(execStart?.split(/\s+/)).toContain(flag);
      expect(shebang.split(/\s+/)).toContain(flag);
      expect(bench.split(/\s+/)).toContain(flag);
    }
  });

  it("are accepted by this node, and the roost command runs through its #! line", () => {
    const node = spawnSync(process.execPath, [...SCHEDULER_NODE_FLAGS, "-e", "process.exit(0)"], { encoding: "utf8" });
    expect(node.stderr).toBe("");
    expect(node.status).toBe(0);
    // Executed directly, as an installed `roost` is: `env -S` splits the #! line's flags.
    const roost = spawnSync(join(root, "bin/roost.js"), ["--help"], { encoding: "utf8" });
    expect(roost.status).toBe(0);
    expect(roost.stdout).toContain("Usage: roost");
  });
});
