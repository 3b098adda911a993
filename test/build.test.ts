// What the build makes of the source, checked on dist (npm test builds first).
//
// TypeBox's root is ~370 ES modules; loaded as the package, it was 0.3 s of every `roost` start (0.86 s
// against 0.58 s for `roost --version`, back to back). The build bundles src/vendor/typebox.ts into
// one module instead. If that step is dropped, tsc's plain re-export is left in dist and nothing
// else fails: the CLI is only slower. So this checks the built file, and counts the modules a CLI
// start loads against an explicit limit (a count, not a timing: the machine's speed varies).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ROOST } from "./support/roost.js";

const BUILT_TYPEBOX = fileURLToPath(new URL("../dist/src/vendor/typebox.js", import.meta.url));
/** The ES modules `roost --version` may load: 116 of Roost's own and its libraries' on 2026-12-04; the package TypeBox alone adds ~370. */
const MAX_CLI_MODULES = 250;

const dir = mkdtempSync(join(tmpdir(), "roost-build-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the build", () => {
  it("bundles TypeBox into one module that imports nothing", async () => {
    const src = readFileSync(BUILT_TYPEBOX, "utf8");
    expect(src).not.toMatch(/\bfrom\s*["']/);
    expect(src).not.toMatch(/\bimport\s*\(/);
    expect(src).not.toMatch(/\brequire\s*\(/);
    const { Type } = (await import(pathToFileURL(BUILT_TYPEBOX).href)) as typeof import("../src/vendor/typebox.js");
    expect(Type.Object({ n: Type.Integer({ minimum: 1 }) })).toMatchObject({
      type: "object",
      properties: { n: { type: "integer", minimum: 1 } },
      required: ["n"],
    });
  });

  it(`a CLI start loads at most ${MAX_CLI_MODULES} ES modules`, () => {
    // A resolve hook that writes each module's URL to stderr, registered before the CLI loads.
    const hooks = join(dir, "hooks.mjs");
    writeFileSync(
      hooks,
      `import { writeSync } from "node:fs";\nexport async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith("file:")) writeSync(2, "module " + r.url + "\\n"); return r; }\n`,
    );
    const register = join(dir, "register.mjs");
    writeFileSync(register, `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const run = spawnSync(process.execPath, ["--import", pathToFileURL(register).href, ROOST, "--version"], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const modules = new Set(run.stderr.split("\n").filter((l) => l.startsWith("module ")));
    expect(modules.size).toBeGreaterThan(50); // the hook saw the CLI load
    expect([...modules].filter((m) => m.includes("/node_modules/typebox/"))).toEqual([]);
    expect(modules.size).toBeLessThanOrEqual(MAX_CLI_MODULES);
  });
});
