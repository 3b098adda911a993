// Benchmark dispatcher: `node dist/bench/run.js NAME` imports ./NAME.js from this directory, runs
// its default export (async () => Record<string, number | string>) and prints the result as JSON
// on the LAST line of stdout. Progress and diagnostics go to stderr.

import { readdirSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

type Bench = () => Promise<Record<string, number | string>>;

const here = dirname(fileURLToPath(import.meta.url));
const ext = extname(fileURLToPath(import.meta.url)); // ".js" when built, ".ts" under tsx
const self = `run${ext}`;

function available(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith(ext) && f !== self && !f.endsWith(`.d${ext}`))
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function main(): Promise<number> {
  const name = process.argv[2];
  const names = available();
  if (!name || !names.includes(name)) {
    process.stderr.write(
      `${name ? `unknown bench "${name}"` : "no bench named"}; available: ${names.join(", ") || "(none)"}\n` +
        `usage: node dist/bench/run.js NAME\n`,
    );
    return 2;
  }
  const mod = (await import(pathToFileURL(join(here, name + ext)).href)) as { default?: Bench };
  if (typeof mod.default !== "function") {
    process.stderr.write(`bench "${name}" has no default export function\n`);
    return 2;
  }
  const result = await mod.default();
  await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, () => resolve()));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
