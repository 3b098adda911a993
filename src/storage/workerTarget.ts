// What `new Worker` needs to run one of these modules (verifyWorker.ts, indexWorker.ts) in a
// thread: the compiled .js itself; or, for the .ts source (vitest, tsx), a small script that
// registers tsx's loader in the worker first and then imports the file. (`execArgv: ["--import",
// "tsx"]` is not enough on Node 20: tsx's loader registers itself only on the main thread there,
// so the worker could not load .ts.)

import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/** `moduleUrl`: the module's own import.meta.url. */
export function workerTarget(moduleUrl: string): { target: URL | string; eval: boolean } {
  const self = new URL(moduleUrl);
  if (!self.pathname.endsWith(".ts")) return { target: self, eval: false };
  // tsx resolved from here, so the working directory does not matter. require.resolve finds the
  // CommonJS build of tsx/esm/api; its ES module build (which registers the hooks) sits beside it.
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve("tsx/esm/api")
      .replace(/\.cjs$/, ".mjs"),
  ).href;
  return {
    target: `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(self.href)}); });`,
    eval: true,
  };
}
