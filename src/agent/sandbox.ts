// Every path the agent writes under its work directory is built here: a task's sandbox
// (<workDir>/sandboxes/<task>), and in it each process's .stdout, .stderr and .exit and the
// task's task.json.
//
// What taught this: process names "." and ".." were accepted, and `join(sandbox, "..") +
// ".stdout"` is <workDir>/sandboxes/..stdout, one file shared by every task of the agent, outside
// any sandbox. The job spec and the agent's launch check refuse such names now, but paths are
// not built on that promise: a name becomes a file name through safeFileName (which can only
// give a plain file name), and every path is checked to lie inside its directory.
//
// safeFileName is an escaping, not a cleaning: two different names never give the same file
// name (it is injective), so two processes can never share an output file.

import { createHash } from "node:crypto";
import * as path from "node:path";

/**
 * The longest file name safeFileName gives (Linux allows 255 bytes; room is left for the
 * suffixes: ".stdout", ".stderr", ".exit").
 */
export const SAFE_NAME_MAX = 200;

/** Characters kept as they are (every character of a valid name or task id). */
const KEPT = /^[A-Za-z0-9_.-]$/;

/**
 * A name as a plain file name, one to one:
 *  - letters, digits, "_", "-" and "." are kept, but a leading "." is written %2E (so the result
 *    is never "." or "..", nor a hidden file);
 *  - every other character (including "/", NUL and "%" itself) is written as the %XX escapes of
 *    its UTF-8 bytes;
 *  - a name that is empty, or whose escaped form is longer than SAFE_NAME_MAX, becomes the first
 *    part of its escaped form followed by "%~" and a SHA-256 of the name ("%~" never occurs in
 *    an escaped form, where "%" is always followed by two hex digits).
 * So a valid process name or task id is its own file name, and different names never share one.
 */
export function safeFileName(name: string): string {
  let out = "";
  for (const ch of name) {
    if (KEPT.test(ch) && !(ch === "." && out === "")) out += ch;
    else for (const b of Buffer.from(ch, "utf8")) out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  if (out !== "" && out.length <= SAFE_NAME_MAX) return out;
  const digest = createHash("sha256").update(name, "utf8").digest("hex").slice(0, 32);
  let head = out.slice(0, SAFE_NAME_MAX - 2 - digest.length);
  // Not cut inside an escape (cosmetic: the digest keeps it one to one anyway).
  const pct = head.lastIndexOf("%");
  if (pct >= 0 && pct > head.length - 3) head = head.slice(0, pct);
  return `${head}%~${digest}`;
}

/**
 * `<dir>/<safeFileName(name)><suffix>`, after checking that it lies inside dir (it always does
 * for a suffix without "/"; the check is what makes that a fact rather than a hope).
 */
export function pathInside(dir: string, name: string, suffix = ""): string {
  if (suffix.includes("/") || suffix.includes("\0")) throw new Error(`unsafe file suffix ${JSON.stringify(suffix)}`);
  const base = path.resolve(dir);
  const file = path.resolve(base, safeFileName(name) + suffix);
  if (path.dirname(file) !== base || !file.startsWith(base + path.sep)) {
    throw new Error(`refusing a path outside ${base}: ${JSON.stringify(name)}${suffix} resolves to ${file}`);
  }
  return file;
}

/** The directory holding every sandbox of an agent. */
export function sandboxesDir(workDir: string): string {
  return path.resolve(workDir, "sandboxes");
}

/** A task's sandbox: <workDir>/sandboxes/<safeFileName(taskId)>. */
export function taskSandboxDir(workDir: string, taskId: string): string {
  return pathInside(sandboxesDir(workDir), taskId);
}

/** A file of a process in a sandbox: <sandbox>/<safeFileName(process)><suffix>. */
export function processFile(sandboxDir: string, processName: string, suffix: ".stdout" | ".stderr" | ".exit"): string {
  return pathInside(sandboxDir, processName, suffix);
}

/** The task's description, <sandbox>/task.json. */
export function taskFile(sandboxDir: string): string {
  return pathInside(sandboxDir, "task.json");
}
