// The lint rules that keep the core pure do fail on a violation: a clock read, randomness or an
// adapter import in a core folder is an error, and the same code outside the core is not. Probes
// never touch src/: Biome and dependency-cruiser each check a throwaway tree with the
// repository's own rules.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);

/** Biome on one probe file at `path`, in a throwaway tree with the repository's Biome config and plugin. */
function biome(path: string, code: string): { code: number; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "roost-biome-"));
  try {
    const config = readFileSync(join(root, "biome.jsonc"), "utf8").replace(/"\$schema":[^\n]*\n/, "");
    writeFileSync(join(dir, "biome.jsonc"), config);
    mkdirSync(join(dir, "tools", "lint"), { recursive: true });
    copyFileSync(join(root, "tools", "lint", "no-randomness.grit"), join(dir, "tools", "lint", "no-randomness.grit"));
    mkdirSync(join(dir, dirname(path)), { recursive: true });
    writeFileSync(join(dir, path), code);
    const r = spawnSync(bin("biome"), ["lint", path], { cwd: dir, encoding: "utf8" });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("lint keeps the pure core pure", () => {
  it("Date.now(), Math.random() and node:fs in a core folder fail; the same code in an adapter passes", () => {
    const clock = "export const now = (): number => Date.now();\n";
    const random = "export const pick = (): number => Math.random();\n";
    const io = 'import { readFileSync } from "node:fs";\nexport const read = (p: string): string => readFileSync(p, "utf8");\n';
    for (const core of ["src/replay/probe.ts", "src/scheduling/probe.ts", "src/domain/probe.ts"]) {
      const a = biome(core, clock);
      expect(a.code, a.out).not.toBe(0);
      expect(a.out).toMatch(/the pure core reads no clock/);
      const b = biome(core, random);
      expect(b.code, b.out).not.toBe(0);
      const c = biome(core, io);
      expect(c.code, c.out).not.toBe(0);
      expect(c.out).toMatch(/the pure core does no I\/O/);
    }
    for (const code of [clock, random, io]) expect(biome("src/actors/probe.ts", code).code).toBe(0);
  }, 30_000);

  it("a core file importing the event log fails dependency-cruiser; an adapter importing it does not", () => {
    const dir = mkdtempSync(join(tmpdir(), "roost-lint-"));
    try {
      for (const d of ["src/replay", "src/eventlog", "src/actors"]) mkdirSync(join(dir, d), { recursive: true });
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext" } }));
      writeFileSync(join(dir, "src/eventlog/log.ts"), "export const LOG = 1;\n");
      writeFileSync(join(dir, "src/replay/probe.ts"), 'import { LOG } from "../eventlog/log.js";\nexport const x = LOG;\n');
      writeFileSync(join(dir, "src/actors/ok.ts"), 'import { LOG } from "../eventlog/log.js";\nexport const y = LOG;\n');
      const r = spawnSync(bin("depcruise"), ["src", "--config", join(root, ".dependency-cruiser.cjs"), "--output-type", "err"], {
        cwd: dir,
        encoding: "utf8",
      });
      const out = `${r.stdout}${r.stderr}`;
      expect(r.status, out).not.toBe(0);
      expect(out).toMatch(/core-imports-no-adapter: src\/replay\/probe\.ts → src\/eventlog\/log\.ts/);
      expect(out).not.toMatch(/src\/actors\/ok\.ts/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
