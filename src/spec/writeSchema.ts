// Regenerates src/spec/job.schema.json from src/spec/schema.ts:
//   npm run build && node dist/src/spec/writeSchema.js [OUTPUT_PATH]
// Without OUTPUT_PATH it writes src/spec/job.schema.json in the package that holds this module.

import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jobSchemaText } from "./schema.js";

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`writeSchema: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

const out = process.argv[2] ? resolve(process.argv[2]) : join(packageRoot(), "src", "spec", "job.schema.json");
writeFileSync(out, jobSchemaText());
console.log(`wrote ${out}`);
