// Drive the real `roost` command as a user would: child processes of bin/roost.js (built into
// dist/ by `npm test`).

import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOST = fileURLToPath(new URL("../../bin/roost.js", import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function roost(args: string[], cwd: string): Promise<RunResult> {
  return runNode([ROOST, ...args], cwd);
}

/** Run node with `args` in `cwd`; resolve with its exit code and output. */
export function runNode(args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("error", reject);
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Run `roost args` in `cwd`; its stdout, or an error with its exit code and output. */
export async function roostOk(args: string[], cwd: string): Promise<string> {
  const r = await roost(args, cwd);
  if (r.code !== 0) throw new Error(`roost ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * Ask `probe` again (every `everyMs`) until it gives something `done` accepts; throws with the
 * last answer (or error) after `ms`. For state only a CLI can see: no event to await.
 */
export async function pollUntil<T>(probe: () => Promise<T>, done: (v: T) => boolean, what: string, ms = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | string = "(no answer)";
  for (;;) {
    try {
      const v = await probe();
      if (done(v)) return v;
      last = v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function roostJson<T>(args: string[], cwd: string): Promise<T> {
  const r = await roost([...args, "--json"], cwd);
  if (r.code !== 0) throw new Error(`roost ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A long-running `roost` child whose stdout lines can be awaited. */
export class RoostProcess {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], cwd: string) {
    this.child = spawn(process.execPath, [ROOST, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    createInterface({ input: this.child.stdout! }).on("line", (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.on("data", () => {});
    this.exited = new Promise((r) => this.child.on("exit", (code) => r(code)));
  }

  /** Everything it printed on stdout so far. */
  get output(): string {
    return this.lines.join("\n");
  }

  /** Resolve with the first line (seen so far or later) that satisfies `pred`. */
  async until(pred: (line: string) => boolean, what: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let i = 0;
    for (;;) {
      for (; i < this.lines.length; i++) if (pred(this.lines[i]!)) return this.lines[i]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; output so far:\n${this.lines.slice(-20).join("\n")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
