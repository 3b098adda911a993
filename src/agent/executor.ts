// Runs tasks as OS process trees (a much reduced Thermos executor, aurora.md §2).
//
// - A task is a list of processes, each a shell command line run with /bin/sh -c in its own
//   process group (detached), with the sandbox directory as cwd and stdout/stderr appended to
//   <sandbox>/<process>.stdout and .stderr. <sandbox>/task.json records the spec and the pids.
// - The task finishes when every process exited 0. The first process that exits non-zero or by a
//   signal (and was not killed by us) fails the task: the rest of the tree is killed and the task
//   reports that process's code (a signal counts as 128 + signo).
// - kill() sends SIGTERM to every process group and every process of the tree, waits up to the
//   grace period, then SIGKILLs whatever is left, and resolves only when nothing of the tree is
//   alive. The tree is found three ways, so that a process that left the group (setsid) or was
//   orphaned (reparented to init) is still found: ppid links from the root pids, membership of a
//   root's process group, and a per-launch marker variable in /proc/<pid>/environ.
// - Whatever way the task ends, leftover processes of its tree are reaped before "exited" is
//   reported: no process is left behind.
// - Nothing runs while idle: liveness is polled (every POLL_MS) only while a tree is being killed.
//
// The executor knows nothing of the scheduler: it reports "started" and "exited" through onEvent.

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { ProcessSpec } from "../domain/types.js";

export interface LaunchSpec {
  taskId: string;
  /** Each {name, cmdline}; cmdline is already rendered (ports substituted). */
  processes: ProcessSpec[];
  /** Extra environment variables (e.g. ROOST_PORT_HTTP=31001, ROOST_TASK_ID). */
  env: Record<string, string>;
  /** Created if missing; the cwd of every process. */
  sandboxDir: string;
}

export type ExecutorEvent =
  | { type: "started"; taskId: string; pids: Record<string, number> }
  | {
      type: "exited";
      taskId: string;
      exitCode: number;
      signal: string | null;
      message: string;
      killed: boolean;
    };

export interface ExecutorOptions {
  onEvent: (e: ExecutorEvent) => void;
  /** Grace between SIGTERM and SIGKILL when none is given, and for internal cleanups. */
  defaultGraceMs?: number;
}

/** Environment variable carrying a per-launch marker, used to find escaped descendants. */
export const RUN_MARKER_ENV = "ROOST_EXECUTOR_RUN";

/** Exit code reported when a process could not be started. */
export const LAUNCH_FAILURE_EXIT_CODE = 127;

const POLL_MS = 50;

// ---------------------------------------------------------------------------------------------
// /proc helpers (Linux)

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Start time in clock ticks since boot: with the pid, identifies a process across pid reuse. */
  starttime: number;
}

const HAVE_PROC = fs.existsSync("/proc/self/stat");

function parseStat(pid: number, text: string): ProcStat | null {
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
  //  stime cutime cstime priority nice num_threads itrealvalue starttime ..."; comm may contain
  // spaces and parentheses, so split after the last ")".
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const f = text.slice(close + 2).split(" ");
  // f[0] = state (field 3), f[1] = ppid (4), f[2] = pgrp (5), f[3] = session (6), f[19] = starttime (22)
  if (f.length < 20) return null;
  return {
    pid,
    state: f[0],
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    starttime: Number(f[19]),
  };
}

function readStat(pid: number): ProcStat | null {
  try {
    return parseStat(pid, fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

function isDeadState(state: string): boolean {
  return state === "Z" || state === "X" || state === "x";
}

/** Every process currently in /proc, zombies excluded. */
function snapshot(): ProcStat[] {
  let names: string[];
  try {
    names = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const st = readStat(Number(name));
    if (st && !isDeadState(st.state)) out.push(st);
  }
  return out;
}

function descendantsIn(procs: ProcStat[], roots: Iterable<number>): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) {
    let list = children.get(p.ppid);
    if (!list) children.set(p.ppid, (list = []));
    list.push(p);
  }
  const out: ProcStat[] = [];
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    for (const child of children.get(pid) ?? []) {
      if (seen.has(child.pid)) continue;
      seen.add(child.pid);
      out.push(child);
      stack.push(child.pid);
    }
  }
  return out;
}

/** Pids of every live (non-zombie) descendant of pid, found through /proc ppid links. */
export function listDescendants(pid: number): number[] {
  return descendantsIn(snapshot(), [pid]).map((p) => p.pid);
}

/** True if the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (HAVE_PROC) {
    const st = readStat(pid);
    return st !== null && !isDeadState(st.state);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function hasMarker(pid: number, marker: string): boolean {
  let env: Buffer;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or not ours to read
  }
  const needle = Buffer.from(`${RUN_MARKER_ENV}=${marker}\0`);
  const at = env.indexOf(needle);
  return at === 0 || (at > 0 && env[at - 1] === 0);
}

/** Sends a signal, ignoring processes (or groups) that are already gone. */
function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ESRCH" && code !== "EPERM") throw err;
  }
}

function signalNumber(sig: string): number {
  return (os.constants.signals as Record<string, number>)[sig] ?? 0;
}

function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------

interface Proc {
  name: string;
  cmdline: string;
  child: ChildProcess | null;
  pid: number | null;
  exited: boolean;
  code: number | null;
  signal: string | null;
}

type Outcome =
  | { kind: "finished" }
  | { kind: "failed"; proc: Proc }
  | { kind: "launchFailed"; message: string }
  | { kind: "killed" };

interface Task {
  spec: LaunchSpec;
  marker: string;
  procs: Proc[];
  /** Start time (clock ticks) of the earliest root: nothing older can belong to the tree. */
  minStart: number;
  /** Every process ever seen in the tree, pid → starttime. */
  tracked: Map<number, number>;
  outcome: Outcome | null;
  /** Spawning is settled ("started" emitted, or the launch failed). */
  launchSettled: boolean;
  /** A reap loop is running; its deadline for SIGKILL can only move earlier. */
  reaping: Promise<void> | null;
  killDeadline: number;
  done: Promise<void>;
  resolveDone: () => void;
  finished: boolean;
}

export class Executor {
  private readonly onEvent: (e: ExecutorEvent) => void;
  private readonly defaultGraceMs: number;
  private readonly tasks = new Map<string, Task>();
  /** Every task id ever launched: a second launch of one is ignored. */
  private readonly known = new Set<string>();
  private shuttingDown = false;

  constructor(opts: ExecutorOptions) {
    this.onEvent = opts.onEvent;
    this.defaultGraceMs = opts.defaultGraceMs ?? 5000;
  }

  launch(spec: LaunchSpec): void {
    if (this.known.has(spec.taskId)) return;
    this.known.add(spec.taskId);

    let resolveDone!: () => void;
    const task: Task = {
      spec,
      marker: randomUUID(),
      procs: spec.processes.map((p) => ({
        name: p.name,
        cmdline: p.cmdline,
        child: null,
        pid: null,
        exited: false,
        code: null,
        signal: null,
      })),
      minStart: 0,
      tracked: new Map(),
      outcome: null,
      launchSettled: false,
      reaping: null,
      killDeadline: Infinity,
      done: new Promise<void>((r) => (resolveDone = r)),
      resolveDone: () => resolveDone(),
      finished: false,
    };
    this.tasks.set(spec.taskId, task);

    const fail = (message: string): void => {
      if (!task.outcome) task.outcome = { kind: "launchFailed", message };
      task.launchSettled = true;
      // Report asynchronously, like every other event, after reaping what did start.
      queueMicrotask(() => this.terminate(task, this.defaultGraceMs));
    };

    if (this.shuttingDown) return fail("executor is shutting down");
    if (task.procs.length === 0) return fail("task has no processes");
    const names = new Set<string>();
    for (const p of task.procs) {
      if (names.has(p.name)) return fail(`duplicate process name "${p.name}"`);
      names.add(p.name);
    }
    try {
      fs.mkdirSync(spec.sandboxDir, { recursive: true });
    } catch (err) {
      return fail(`cannot create sandbox ${spec.sandboxDir}: ${(err as Error).message}`);
    }

    const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env, [RUN_MARKER_ENV]: task.marker };
    let spawned = 0;
    const onSpawned = (): void => {
      spawned++;
      if (spawned < task.procs.length || task.launchSettled) return;
      task.launchSettled = true;
      const pids: Record<string, number> = {};
      for (const p of task.procs) pids[p.name] = p.pid!;
      this.writeTaskFile(task, pids);
      this.emit({ type: "started", taskId: spec.taskId, pids });
      // A process may have exited between spawning and now.
      this.evaluate(task);
    };

    for (const p of task.procs) {
      if (task.launchSettled) break;
      let out: number | null = null;
      let errFd: number | null = null;
      try {
        const base = path.join(spec.sandboxDir, fileSafe(p.name));
        out = fs.openSync(`${base}.stdout`, "a");
        errFd = fs.openSync(`${base}.stderr`, "a");
        const child = spawn("/bin/sh", ["-c", p.cmdline], {
          cwd: spec.sandboxDir,
          detached: true,
          env,
          stdio: ["ignore", out, errFd],
        });
        p.child = child;
        p.pid = child.pid ?? null;
        const st = p.pid !== null ? readStat(p.pid) : null; // exists (maybe as a zombie) until reaped
        if (st) task.minStart = task.minStart === 0 ? st.starttime : Math.min(task.minStart, st.starttime);
        child.once("spawn", onSpawned);
        child.on("error", (err) => {
          if (p.exited || p.pid !== null) return; // errors of a running child (e.g. failed kill)
          p.exited = true;
          fail(`failed to launch process "${p.name}": ${err.message}`);
        });
        child.once("exit", (code, sig) => {
          p.exited = true;
          p.code = code;
          p.signal = sig;
          this.onProcessExit(task, p);
        });
      } catch (err) {
        p.exited = true;
        fail(`failed to launch process "${p.name}": ${(err as Error).message}`);
      } finally {
        if (out !== null) fs.closeSync(out);
        if (errFd !== null) fs.closeSync(errFd);
      }
    }
  }

  kill(taskId: string, graceMs?: number): Promise<void> {
    const task = this.tasks.get(taskId);
    if (!task || task.finished) return Promise.resolve();
    if (!task.outcome) task.outcome = { kind: "killed" };
    this.terminate(task, graceMs ?? this.defaultGraceMs);
    return task.done;
  }

  isRunning(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  runningTasks(): string[] {
    return [...this.tasks.keys()];
  }

  async shutdown(graceMs?: number): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.tasks.keys()].map((id) => this.kill(id, graceMs)));
  }

  // -------------------------------------------------------------------------------------------

  private emit(e: ExecutorEvent): void {
    try {
      this.onEvent(e);
    } catch {
      // A failing listener must not wedge the executor.
    }
  }

  private writeTaskFile(task: Task, pids: Record<string, number>): void {
    const { taskId, processes, env, sandboxDir } = task.spec;
    try {
      fs.writeFileSync(
        path.join(sandboxDir, "task.json"),
        JSON.stringify({ taskId, processes, env, sandboxDir, pids, launchedAt: Date.now() }, null, 2) + "\n",
      );
    } catch {
      // Informational only.
    }
  }

  private onProcessExit(task: Task, p: Proc): void {
    const failed = p.code !== 0 || p.signal !== null;
    if (failed && !task.outcome) task.outcome = { kind: "failed", proc: p };
    this.evaluate(task);
  }

  /** Decides, after a process exits, whether the task is over (or must be torn down). */
  private evaluate(task: Task): void {
    if (!task.launchSettled || task.finished) return;
    if (task.outcome) {
      this.terminate(task, this.defaultGraceMs);
      return;
    }
    if (task.procs.every((p) => p.exited)) {
      task.outcome = { kind: "finished" };
      this.terminate(task, this.defaultGraceMs); // reaps leftover descendants, then reports
    }
  }

  /** Starts (or hurries) the reap of the task's tree; reports "exited" once nothing is left. */
  private terminate(task: Task, graceMs: number): void {
    task.killDeadline = Math.min(task.killDeadline, Date.now() + Math.max(0, graceMs));
    if (task.reaping) return;
    task.reaping = this.reap(task).then(
      () => this.finish(task),
      () => this.finish(task),
    );
  }

  private async reap(task: Task): Promise<void> {
    const termed = new Set<number>();
    let phase: "TERM" | "KILL" = "TERM";
    for (;;) {
      if (phase === "TERM" && Date.now() >= task.killDeadline) phase = "KILL";
      const live = this.scan(task);
      const rootsLive = task.procs.some((p) => p.pid !== null && !p.exited);
      if (live.length === 0 && !rootsLive && task.launchSettled) return;
      // Groups: each root leads its own group (detached); signal a group while it has members.
      // Live roots are signalled both through their group and directly.
      const groups = new Set<number>();
      const roots: number[] = [];
      for (const p of task.procs) {
        if (p.pid !== null && !p.exited) {
          groups.add(p.pid);
          roots.push(p.pid);
        }
      }
      const rootPids = new Set(task.procs.map((p) => p.pid));
      for (const st of live) if (rootPids.has(st.pgrp)) groups.add(st.pgrp);
      if (phase === "KILL") {
        for (const g of groups) signal(-g, "SIGKILL");
        for (const pid of roots) signal(pid, "SIGKILL");
        for (const st of live) signal(st.pid, "SIGKILL");
      } else {
        for (const g of groups) {
          if (!termed.has(-g)) signal(-g, "SIGTERM");
          termed.add(-g);
        }
        for (const st of [...roots.map((pid) => ({ pid })), ...live]) {
          if (!termed.has(st.pid)) signal(st.pid, "SIGTERM");
          termed.add(st.pid);
        }
      }
      const wait = phase === "TERM" ? Math.min(POLL_MS, Math.max(1, task.killDeadline - Date.now())) : POLL_MS;
      await sleep(wait);
    }
  }

  /**
   * The live processes of the task's tree other than the roots (whose liveness comes from exit
   * events), remembering every one seen so that later scans still find them if orphaned.
   */
  private scan(task: Task): ProcStat[] {
    if (!HAVE_PROC) return [];
    const procs = snapshot();
    const byPid = new Map<number, ProcStat>();
    for (const st of procs) byPid.set(st.pid, st);
    const rootPids = new Set<number>();
    for (const p of task.procs) if (p.pid !== null) rootPids.add(p.pid);

    const found = new Map<number, ProcStat>();
    const consider = (st: ProcStat): void => {
      if (st.pid === process.pid || rootPids.has(st.pid)) return;
      found.set(st.pid, st);
    };
    // 1. Processes seen before, if still the same process (pid + start time).
    for (const [pid, start] of task.tracked) {
      const st = byPid.get(pid);
      if (st && st.starttime === start) consider(st);
    }
    // 2. Members of a root's process group or session (orphans that did not setsid).
    for (const st of procs) {
      if ((rootPids.has(st.pgrp) || rootPids.has(st.session)) && st.starttime >= task.minStart) consider(st);
    }
    // 3. Processes carrying the launch marker (escaped via setsid and orphaned).
    for (const st of procs) {
      if (task.minStart > 0 && st.starttime >= task.minStart && !found.has(st.pid) && !rootPids.has(st.pid)) {
        if (hasMarker(st.pid, task.marker)) consider(st);
      }
    }
    // 4. Descendants, through ppid links, of the roots and of everything found so far.
    for (const st of descendantsIn(procs, [...rootPids, ...found.keys()])) consider(st);

    for (const st of found.values()) task.tracked.set(st.pid, st.starttime);
    return [...found.values()];
  }

  private finish(task: Task): void {
    if (task.finished) return;
    task.finished = true;
    this.tasks.delete(task.spec.taskId);
    this.emit(this.exitEvent(task));
    task.resolveDone();
  }

  private exitEvent(task: Task): ExecutorEvent {
    const taskId = task.spec.taskId;
    const outcome = task.outcome ?? { kind: "finished" };
    switch (outcome.kind) {
      case "finished":
        return { type: "exited", taskId, exitCode: 0, signal: null, message: "all processes finished", killed: false };
      case "launchFailed":
        return {
          type: "exited",
          taskId,
          exitCode: LAUNCH_FAILURE_EXIT_CODE,
          signal: null,
          message: outcome.message,
          killed: false,
        };
      case "failed": {
        const p = outcome.proc;
        const message =
          p.signal !== null
            ? `process "${p.name}" was killed by signal ${p.signal}`
            : `process "${p.name}" exited with code ${p.code}`;
        return { type: "exited", taskId, exitCode: exitCodeOf(p), signal: p.signal, message, killed: false };
      }
      case "killed": {
        // Exit status as observed: the first process (in spec order) that did not exit 0.
        const p = task.procs.find((q) => q.exited && (q.code !== 0 || q.signal !== null));
        return {
          type: "exited",
          taskId,
          exitCode: p ? exitCodeOf(p) : 0,
          signal: p ? p.signal : null,
          message: "killed by scheduler",
          killed: true,
        };
      }
    }
  }
}

function exitCodeOf(p: Proc): number {
  if (p.signal !== null) return 128 + signalNumber(p.signal);
  return p.code ?? LAUNCH_FAILURE_EXIT_CODE;
}
