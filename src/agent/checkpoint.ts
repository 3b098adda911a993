// The agent's checkpoint (after Mesos agent checkpointing and recovery):
// <workDir>/checkpoint.json, replaced atomically (a temp file, then rename) whenever the agent's
// tasks or their status updates change, so that a restarted agent (after kill -9 too) can
// re-attach to its tasks and deliver what it had not delivered.
//
// {
//   "version": 1,
//   "agentId": "agent-1",
//   "bootId": "f2c1…",                 // /proc/sys/kernel/random/boot_id when written
//   "writtenAt": 1767225600000,
//   "tasks": [{                        // Executor.records(): what is needed to re-attach and kill
//     "taskId": "…", "sandboxDir": "…",
//     "spec": {taskId, processes: [{name, cmdline}], env, sandboxDir},
//     "marker": "…",                   // the ROOST_EXECUTOR_RUN value of the task's processes
//     "minStart": 123456,              // start time of its earliest process (clock ticks)
//     "started": true,                 // RUNNING was queued
//     "killed": false,                 // a kill was under way
//     "processes": [{"name": "server",
//                    "pid": 4242,      // the wrapper (group leader): watched
//                    "startTime": 123456,   // /proc/<pid>/stat field 22: pid reuse check
//                    "commandPid": 4243,    // the command's own pid ($$), as reported
//                    "exitFile": "…/server.exit"}]
//   }],
//   "statusUpdates": {"pending": [StatusUpdate…],       // unacknowledged, in order
//                     "lastSeqs": {"<taskId>": 3, …}},  // last seq assigned per task
//   "ended": ["<taskId>", …]           // tasks that ended lately (a duplicated launch is refused)
// }
//
// The file is not fsynced: it must survive the agent, not the host (a host that went down lost
// its tasks anyway, and comes back with a new boot id).

import * as fs from "node:fs";
import * as path from "node:path";
import type { LaunchedTask } from "./executor.js";
import type { StatusSnapshot, StatusUpdate } from "./statusQueue.js";

export const CHECKPOINT_VERSION = 1;
const CHECKPOINT_FILE = "checkpoint.json";

export interface Checkpoint {
  version: typeof CHECKPOINT_VERSION;
  agentId: string;
  bootId: string;
  writtenAt: number;
  tasks: LaunchedTask[];
  statusUpdates: StatusSnapshot;
  ended: string[];
  /** Tasks whose RUNNING (healthy) was reported; absent in older checkpoints. */
  healthy?: string[];
}

export function checkpointPath(workDir: string): string {
  return path.join(workDir, CHECKPOINT_FILE);
}

/** Replaces the checkpoint atomically: readers see the old file or the new one, never a mix. */
export function writeCheckpoint(file: string, cp: Checkpoint): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(cp)}\n`);
  fs.renameSync(tmp, file);
}

/** The checkpoint, or null if there is none. Throws (naming the file and the problem) if it is unreadable. */
export function readCheckpoint(file: string): Checkpoint | null {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`checkpoint ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const problem = validate(raw);
  if (problem) throw new Error(`checkpoint ${file}: ${problem}`);
  return raw as Checkpoint;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function validate(v: unknown): string | null {
  if (!isObject(v)) return "must be an object";
  if (v.version !== CHECKPOINT_VERSION) return `version must be ${CHECKPOINT_VERSION} (got ${JSON.stringify(v.version)})`;
  if (typeof v.agentId !== "string") return "agentId must be a string";
  if (typeof v.bootId !== "string") return "bootId must be a string";
  if (!Array.isArray(v.tasks)) return "tasks must be a list";
  for (const [i, t] of v.tasks.entries()) {
    if (!isObject(t) || typeof t.taskId !== "string") return `tasks[${i}].taskId must be a string`;
    if (!isObject(t.spec) || !Array.isArray(t.spec.processes)) return `tasks[${i}].spec must have processes`;
    if (typeof t.marker !== "string") return `tasks[${i}].marker must be a string`;
    if (!Array.isArray(t.processes)) return `tasks[${i}].processes must be a list`;
    for (const [j, p] of t.processes.entries()) {
      if (!isObject(p) || typeof p.name !== "string") return `tasks[${i}].processes[${j}].name must be a string`;
      if (p.pid !== null && !Number.isInteger(p.pid)) return `tasks[${i}].processes[${j}].pid must be an integer or null`;
      if (!Number.isFinite(p.startTime)) return `tasks[${i}].processes[${j}].startTime must be a number`;
    }
  }
  const su = v.statusUpdates;
  if (!isObject(su) || !Array.isArray(su.pending) || !isObject(su.lastSeqs))
    return "statusUpdates must have pending (a list) and lastSeqs (an object)";
  for (const [i, u] of (su.pending as unknown[]).entries()) {
    const x = u as Partial<StatusUpdate>;
    if (!isObject(u) || typeof x.taskId !== "string" || !Number.isInteger(x.seq) || typeof x.state !== "string") {
      return `statusUpdates.pending[${i}] must have taskId, seq and state`;
    }
  }
  if (!Array.isArray(v.ended)) return "ended must be a list";
  return null;
}
