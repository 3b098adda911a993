// Runs tasks as OS process trees: a much reduced version of Aurora's Thermos executor.
//
// - A task is a list of processes, each a shell command line run with /bin/sh -c in its own
//   process group (detached), with the sandbox directory as cwd and stdout/stderr appended to
//   <sandbox>/<process>.stdout and .stderr. <sandbox>/task.json records the spec and the pids.
//   Every one of these paths is built by sandbox.ts, which escapes the process name one to one
//   into a plain file name and checks that the path lies inside the sandbox (a process named
//   ".." writes <sandbox>/%2E..stdout, not <sandbox>/..stdout next to every other sandbox).
// - Each command runs under a small /bin/sh wrapper (WRAPPER_SCRIPT), the group leader, which
//   writes the command's exit status to <sandbox>/<process>.exit even when the agent is dead, then
//   exits the same way (re-raising a fatal signal). The command line is passed as an argument,
//   never spliced into the script. The reported pid of a process is the command's own ($$ in it).
// - adopt() re-attaches to a task launched by an earlier agent (from its checkpoint): its
//   processes are not our children, so their liveness is polled through /proc (pid + start time,
//   every ADOPT_POLL_MS, only while adopted processes run) and their exit status is read from
//   the .exit file. A process gone without an exit file has an unknown status: the task is lost.
// - The task finishes when every process exited 0. The first process that exits non-zero or by a
//   signal (and was not killed by us) fails the task: the rest of the tree is killed and the task
//   reports that process's code (a signal counts as 128 + signo).
// - kill() sends SIGTERM to every process group and every process of the tree, waits up to the
//   grace period, then SIGKILLs whatever is left, and resolves only when nothing of the tree is
//   alive. The reaper (reaper.ts) does it, one tick for every tree being killed, finding each tree
//   through /proc (proc.ts) even where processes left the group or were orphaned.
// - Whatever way the task ends, leftover processes of its tree are reaped before "exited" is
//   reported: no process is left behind.
// - Nothing runs while idle: liveness is polled only while a tree is being killed, and (every
//   ADOPT_POLL_MS) only while adopted processes run.
//
// The executor knows nothing of the scheduler: it reports "started", "exited" and "lost" through
// onEvent, and describes its tasks for a checkpoint through records().

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import type { ProcessSpec } from "../domain/types.js";
import { isDeadState, readStat, RUN_MARKER_ENV } from "./proc.js";
import { type ReapedRoot, type ReapedTree, Reaper } from "./reaper.js";
import { processFile, taskFile } from "./sandbox.js";

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
    }
  /** An adopted task whose exit status cannot be known (a process vanished without an exit file). */
  | { type: "lost"; taskId: string; message: string };

export interface ExecutorOptions {
  onEvent: (e: ExecutorEvent) => void;
  /** Grace between SIGTERM and SIGKILL when none is given, and for internal cleanups. */
  defaultGraceMs?: number;
}

/** One process of a task, as checkpointed. */
interface ProcessRecord {
  name: string;
  /** The wrapper: leader of the process group; its exit ends the process. Null: not spawned. */
  pid: number | null;
  /** The wrapper's start time (/proc/<pid>/stat field 22, clock ticks since boot): pid reuse check. */
  startTime: number;
  /** The command's own pid ($$ in the command line), once known. */
  commandPid: number | null;
  /** Where the wrapper writes the command's exit status. */
  exitFile: string;
}

/**
 * A task this executor (or an earlier one) launched, as checkpointed: what is needed to re-attach
 * to it (Executor.records() → checkpoint → adopt()).
 */
export interface LaunchedTask {
  taskId: string;
  sandboxDir: string;
  spec: LaunchSpec;
  /** The launch marker (RUN_MARKER_ENV) carried by every process of the tree. */
  marker: string;
  /** Start time of the earliest wrapper: nothing older belongs to the tree. */
  minStart: number;
  /** "started" was reported. */
  started: boolean;
  /** A kill was under way. */
  killed: boolean;
  processes: ProcessRecord[];
}

/** Exit code reported when a process could not be started. */
export const LAUNCH_FAILURE_EXIT_CODE = 127;

/**
 * The wrapper every process runs under: `/bin/sh -c WRAPPER_SCRIPT /bin/sh <cmdline> <exitFile>`
 * with fd 3 a pipe to the executor. It runs `/bin/sh -c <cmdline>` in the foreground (that shell
 * first writes its pid to fd 3 and closes it), writes the exit status ($?: 128 + signo for a
 * signal) to the exit file, then exits with that status, re-raising a fatal signal on itself so
 * that its parent sees the same code or signal (stop signals 19-22 are never re-raised).
 * Termination signals sent to the group are caught while the command runs (the trap runs when it
 * ends), so a SIGTERM kill still records the status; only SIGKILL leaves no exit file.
 */
const WRAPPER_SCRIPT = [
  "trap : HUP INT QUIT TERM USR1 USR2",
  `"$0" -c 'trap "" PIPE;echo $$ >&3;trap - PIPE;exec 3>&- "$0" -c "$1"' "$0" "$1"`,
  "c=$?",
  'echo $c >"$2"',
  "trap - HUP INT QUIT TERM USR1 USR2",
  "case $c in 147|148|149|150);; *)if [ $c -gt 128 ]&&[ $c -le 192 ];then ulimit -c 0 2>/dev/null;kill -$((c-128)) $$;fi;;esac",
  "exit $c",
].join("\n");

/** Liveness poll of adopted processes (not our children: no exit events). */
const ADOPT_POLL_MS = 200;

function signalNumber(sig: string): number {
  return (os.constants.signals as Record<string, number>)[sig] ?? 0;
}

/** The signal name for a number (the first name Node lists for it), or null. */
function signalName(signo: number): string | null {
  for (const [name, n] of Object.entries(os.constants.signals as Record<string, number>)) if (n === signo) return name;
  return null;
}

/** Signals that do not end a process by default: re-raising one leaves the wrapper running on. */
const NON_FATAL_SIGNALS = new Set(["SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU"]);

/**
 * The (code, signal) a wrapper's exit status stands for, as its parent would have seen it: the
 * wrapper re-raises a fatal signal (status 129..192, the stop signals 147..150 excepted), and
 * exits with the status otherwise.
 */
function decodeStatus(status: number): { code: number | null; signal: string | null } {
  if (status > 128 && status <= 192 && (status < 147 || status > 150)) {
    const sig = signalName(status - 128);
    if (sig && !NON_FATAL_SIGNALS.has(sig)) return { code: null, signal: sig };
  }
  return { code: status, signal: null };
}

// ---------------------------------------------------------------------------------------------

/** One process of a task; its wrapper is a root of the task's tree (pid, startTime, exited, adopted: ReapedRoot). */
interface Proc extends ReapedRoot {
  name: string;
  cmdline: string;
  child: ChildProcess | null;
  /** Our end of the pipe on which the command reports its pid. */
  pidPipe: (NodeJS.ReadableStream & { destroy(): void }) | null;
  /** The command's own pid, once it reported it. */
  commandPid: number | null;
  exitFile: string;
  /** "started" may be reported for it: spawned, and its command pid known (or never to be). */
  ready: boolean;
  code: number | null;
  signal: string | null;
  /** Ended with no exit status to be had (an adopted process gone without an exit file). */
  unknown: boolean;
}

type Outcome =
  | { kind: "finished" }
  | { kind: "failed"; proc: Proc }
  | { kind: "launchFailed"; message: string }
  | { kind: "lost"; message: string }
  | { kind: "killed"; why?: string };

/** A launched or adopted task; its tree's reap bookkeeping (ReapedTree) is the reaper's. */
interface Task extends ReapedTree<Proc> {
  spec: LaunchSpec;
  outcome: Outcome | null;
  /** "started" was emitted (by this executor or the one that launched it). */
  started: boolean;
  done: Promise<void>;
  resolveDone: () => void;
}

export class Executor {
  private readonly onEvent: (e: ExecutorEvent) => void;
  private readonly defaultGraceMs: number;
  private readonly tasks = new Map<string, Task>();
  /** Every task id ever launched or adopted: a second launch of one is ignored. */
  private readonly known = new Set<string>();
  private shuttingDown = false;
  /** Let go of everything (detach()): no more events, signals or polling. */
  private detached = false;
  private adoptTimer: NodeJS.Timeout | null = null;
  /** Kills the trees of tasks being killed or torn down, one tick for all of them. */
  private readonly reaper = new Reaper<Task>({
    adoptedRootGone: (task, p) => {
      readExitFile(p);
      // A wrapper SIGKILLed by us leaves no exit file: that is how it ended.
      if (p.unknown && task.killPhase && task.outcome?.kind === "killed") {
        p.unknown = false;
        p.signal = "SIGKILL";
      }
    },
    done: (task) => this.finish(task),
  });

  constructor(opts: ExecutorOptions) {
    this.onEvent = opts.onEvent;
    this.defaultGraceMs = opts.defaultGraceMs ?? 5000;
  }

  launch(spec: LaunchSpec): void {
    if (this.known.has(spec.taskId) || this.detached) return;
    this.known.add(spec.taskId);

    const task = this.newTask(spec, randomUUID());
    task.procs = spec.processes.map((p) => this.newProc(p.name, p.cmdline, spec.sandboxDir));
    this.tasks.set(spec.taskId, task);

    const fail = (message: string): void => {
      if (!task.outcome) task.outcome = { kind: "launchFailed", message };
      task.launchSettled = true;
      // Report asynchronously, like every other event, after reaping what did start.
      queueMicrotask(() => this.reaper.reap(task, this.defaultGraceMs));
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
    const onReady = (p: Proc): void => {
      if (p.ready || this.detached) return;
      p.ready = true;
      if (task.launchSettled || task.procs.some((q) => !q.ready)) return;
      task.launchSettled = true;
      task.started = true;
      const pids = reportedPids(task);
      this.writeTaskFile(task, pids);
      this.emit({ type: "started", taskId: spec.taskId, pids });
      // A process may have exited between spawning and now.
      this.evaluate(task);
      // Killed while launching: the reap waited for the launch to settle.
      if (task.reaping && !task.finished) this.reaper.nudge();
    };

    for (const p of task.procs) {
      if (task.launchSettled) break;
      let out: number | null = null;
      let errFd: number | null = null;
      try {
        out = fs.openSync(processFile(spec.sandboxDir, p.name, ".stdout"), "a");
        errFd = fs.openSync(processFile(spec.sandboxDir, p.name, ".stderr"), "a");
        fs.rmSync(p.exitFile, { force: true });
        const child = spawn("/bin/sh", ["-c", WRAPPER_SCRIPT, "/bin/sh", p.cmdline, p.exitFile], {
          cwd: spec.sandboxDir,
          detached: true,
          env,
          stdio: ["ignore", out, errFd, "pipe"],
        });
        p.child = child;
        p.pid = child.pid ?? null;
        const st = p.pid !== null ? readStat(p.pid) : null; // exists (maybe as a zombie) until reaped
        if (st) {
          p.startTime = st.starttime;
          task.minStart = task.minStart === 0 ? st.starttime : Math.min(task.minStart, st.starttime);
        }
        // Ready once spawned and once the command's pid came through fd 3 (or never will).
        let spawned = false;
        let pidSettled = false;
        const check = (): void => {
          if (spawned && pidSettled) onReady(p);
        };
        const pipe = child.stdio[3] as (NodeJS.ReadableStream & { destroy(): void }) | null | undefined;
        if (pipe) {
          p.pidPipe = pipe;
          let buf = "";
          pipe.setEncoding("utf8");
          pipe.on("data", (chunk: string) => {
            if (pidSettled) return;
            buf += chunk;
            const nl = buf.indexOf("\n");
            if (nl < 0) return;
            const pid = Number(buf.slice(0, nl).trim());
            if (Number.isInteger(pid) && pid > 0) p.commandPid = pid;
            pidSettled = true;
            pipe.destroy();
            p.pidPipe = null;
            check();
          });
          pipe.on("error", () => {});
          pipe.on("close", () => {
            p.pidPipe = null;
            if (pidSettled) return;
            pidSettled = true;
            check();
          });
        } else {
          pidSettled = true;
        }
        child.once("spawn", () => {
          spawned = true;
          check();
        });
        child.on("error", (err) => {
          if (p.exited || p.pid !== null || this.detached) return; // errors of a running child (e.g. failed kill)
          p.exited = true;
          fail(`failed to launch process "${p.name}": ${err.message}`);
        });
        child.once("exit", (code, sig) => {
          if (this.detached) return;
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

  /**
   * Re-attaches to a task an earlier executor launched (its checkpointed record). Processes still
   * alive (same pid and start time) are watched; those that ended meanwhile are judged by their
   * exit files, in the order they were written; one gone without an exit file makes the task
   * lost. The outcome rules are those of launched tasks, and the task is reported through onEvent
   * ("started" first if its earlier executor had not reported it). A task marked killed goes on
   * being killed.
   */
  adopt(rec: LaunchedTask): void {
    if (this.known.has(rec.taskId) || this.detached) return;
    this.known.add(rec.taskId);
    const spec = rec.spec;
    const task = this.newTask(spec, rec.marker);
    task.minStart = rec.minStart;
    task.launchSettled = true;
    task.started = rec.started;
    task.procs = rec.processes.map((r) => {
      const p = this.newProc(r.name, spec.processes.find((q) => q.name === r.name)?.cmdline ?? "", spec.sandboxDir);
      p.pid = r.pid;
      p.startTime = r.startTime;
      p.commandPid = r.commandPid;
      p.exitFile = r.exitFile || p.exitFile;
      p.ready = true;
      p.adopted = true;
      return p;
    });
    this.tasks.set(rec.taskId, task);
    if (rec.killed) task.outcome = { kind: "killed" };

    // What ended while nobody watched, in the order the exit files were written; unknown last.
    const ended: Array<{ p: Proc; at: bigint }> = [];
    for (const p of task.procs) {
      if (adoptedAlive(p)) continue;
      const at = readExitFile(p);
      ended.push({ p, at: at ?? BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n });
    }
    ended.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    for (const { p } of ended) {
      this.judge(task, p, `process "${p.name}" exited while the agent was down; exit status unknown`);
    }
    if (task.procs.length === 0 && !task.outcome) task.outcome = { kind: "lost", message: "no processes were recorded" };

    queueMicrotask(() => {
      if (this.detached || task.finished) return;
      if (!task.started && !task.outcome && task.procs.some((p) => !p.exited)) {
        task.started = true;
        this.emit({ type: "started", taskId: rec.taskId, pids: reportedPids(task) });
      }
      if (task.outcome) this.reaper.reap(task, this.defaultGraceMs);
      else this.evaluate(task);
      this.watchAdopted();
    });
  }

  /** What a checkpoint needs to re-attach to every current task (adopt()). */
  records(): LaunchedTask[] {
    const out: LaunchedTask[] = [];
    for (const t of this.tasks.values()) {
      if (t.finished) continue;
      out.push({
        taskId: t.spec.taskId,
        sandboxDir: t.spec.sandboxDir,
        spec: t.spec,
        marker: t.marker,
        minStart: t.minStart,
        started: t.started,
        killed: t.outcome?.kind === "killed",
        processes: t.procs.map((p) => ({
          name: p.name,
          pid: p.pid,
          startTime: p.startTime,
          commandPid: p.commandPid,
          exitFile: p.exitFile,
        })),
      });
    }
    return out;
  }

  /** `why`: the KILLED message (default "killed by scheduler"), e.g. why the agent is shutting down. */
  kill(taskId: string, graceMs?: number, why?: string): Promise<void> {
    const task = this.tasks.get(taskId);
    if (!task || task.finished || this.detached) return Promise.resolve();
    if (!task.outcome) task.outcome = why === undefined ? { kind: "killed" } : { kind: "killed", why };
    this.reaper.reap(task, graceMs ?? this.defaultGraceMs);
    return task.done;
  }

  isRunning(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  runningTasks(): string[] {
    return [...this.tasks.keys()];
  }

  async shutdown(graceMs?: number, why?: string): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.tasks.keys()].map((id) => this.kill(id, graceMs, why)));
  }

  /**
   * Lets go of every task without touching its processes (an agent stopping with its tasks left
   * running, or standing for one killed with -9): no more events, polling or signals. A later
   * executor can adopt() the tasks from their records().
   */
  detach(): void {
    this.detached = true;
    if (this.adoptTimer) clearTimeout(this.adoptTimer);
    this.adoptTimer = null;
    this.reaper.stop();
    for (const t of this.tasks.values()) {
      for (const p of t.procs) {
        p.pidPipe?.destroy();
        p.pidPipe = null;
        p.child?.unref();
      }
    }
  }

  // -------------------------------------------------------------------------------------------

  private newTask(spec: LaunchSpec, marker: string): Task {
    let resolveDone!: () => void;
    return {
      spec,
      marker,
      procs: [],
      minStart: 0,
      tracked: new Map(),
      outcome: null,
      launchSettled: false,
      started: false,
      reaping: false,
      killDeadline: Infinity,
      killPhase: false,
      termed: new Set(),
      lastLive: -1,
      lastRootsLive: -1,
      done: new Promise<void>((r) => (resolveDone = r)),
      resolveDone: () => resolveDone(),
      finished: false,
    };
  }

  private newProc(name: string, cmdline: string, sandboxDir: string): Proc {
    return {
      name,
      cmdline,
      child: null,
      pidPipe: null,
      pid: null,
      startTime: 0,
      commandPid: null,
      exitFile: processFile(sandboxDir, name, ".exit"),
      ready: false,
      exited: false,
      code: null,
      signal: null,
      adopted: false,
      unknown: false,
    };
  }

  private emit(e: ExecutorEvent): void {
    if (this.detached) return;
    try {
      this.onEvent(e);
    } catch {
      // A failing listener must not wedge the executor.
    }
  }

  private writeTaskFile(task: Task, pids: Record<string, number>): void {
    const { taskId, processes, env, sandboxDir } = task.spec;
    const wrapperPids: Record<string, number | null> = {};
    for (const p of task.procs) wrapperPids[p.name] = p.pid;
    try {
      fs.writeFileSync(
        taskFile(sandboxDir),
        `${JSON.stringify({ taskId, processes, env, sandboxDir, pids, wrapperPids, launchedAt: Date.now() }, null, 2)}\n`,
      );
    } catch {
      // Informational only.
    }
  }

  /** Sets the outcome a process's end decides, if none is set yet. */
  private judge(task: Task, p: Proc, unknownMessage: string): void {
    if (task.outcome) return;
    if (p.unknown) task.outcome = { kind: "lost", message: unknownMessage };
    else if (p.code !== 0 || p.signal !== null) task.outcome = { kind: "failed", proc: p };
  }

  private onProcessExit(task: Task, p: Proc): void {
    this.judge(task, p, `process "${p.name}" ended without an exit status (no exit file)`);
    this.evaluate(task);
    // A root of a tree being reaped ended: look again soon (the tree may be gone now).
    if (task.reaping && !task.finished) this.reaper.nudge();
  }

  /** Decides, after a process exits, whether the task is over (or must be torn down). */
  private evaluate(task: Task): void {
    if (!task.launchSettled || task.finished || this.detached) return;
    if (task.outcome) {
      this.reaper.reap(task, this.defaultGraceMs);
      return;
    }
    if (task.procs.every((p) => p.exited)) {
      task.outcome = { kind: "finished" };
      this.reaper.reap(task, this.defaultGraceMs); // reaps leftover descendants, then reports
    }
  }

  // ---- adopted processes: no exit events, so their liveness is polled -------------------------

  private watchAdopted(): void {
    if (this.adoptTimer || this.detached) return;
    let any = false;
    for (const t of this.tasks.values()) {
      if (!t.finished && t.procs.some((p) => p.adopted && !p.exited)) any = true;
    }
    if (!any) return;
    this.adoptTimer = setTimeout(() => {
      this.adoptTimer = null;
      this.pollAdopted();
      this.watchAdopted();
    }, ADOPT_POLL_MS);
    // Not unref'd: like a launched child, an adopted process is work that keeps the process up.
  }

  private pollAdopted(): void {
    if (this.detached) return;
    for (const t of [...this.tasks.values()]) {
      if (t.finished) continue;
      for (const p of t.procs) {
        if (!p.adopted || p.exited || adoptedAlive(p)) continue;
        readExitFile(p);
        this.onProcessExit(t, p);
      }
    }
  }

  private finish(task: Task): void {
    if (task.finished || this.detached) return;
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
      case "lost":
        return { type: "lost", taskId, message: outcome.message };
      case "failed": {
        const p = outcome.proc;
        const message =
          p.signal !== null ? `process "${p.name}" was killed by signal ${p.signal}` : `process "${p.name}" exited with code ${p.code}`;
        return { type: "exited", taskId, exitCode: exitCodeOf(p), signal: p.signal, message, killed: false };
      }
      case "killed": {
        // Exit status as observed: the first process (in spec order) that did not exit 0.
        const p = task.procs.find((q) => q.exited && !q.unknown && (q.code !== 0 || q.signal !== null));
        return {
          type: "exited",
          taskId,
          exitCode: p ? exitCodeOf(p) : 0,
          signal: p ? p.signal : null,
          message: outcome.why ?? "killed by scheduler",
          killed: true,
        };
      }
    }
  }
}

/** The pids "started" reports: each command's own pid (its wrapper's if it never reported it). */
function reportedPids(task: Task): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const p of task.procs) {
    const pid = p.commandPid ?? p.pid;
    if (pid !== null) pids[p.name] = pid;
  }
  return pids;
}

/** An adopted process's wrapper is alive: same pid and same start time, not a zombie. */
function adoptedAlive(p: Proc): boolean {
  if (p.pid === null || p.startTime <= 0) return false;
  const st = readStat(p.pid);
  return st !== null && !isDeadState(st.state) && st.starttime === p.startTime;
}

/**
 * Marks an adopted process ended and reads its exit status from its exit file. Returns the
 * file's mtime (ns) when it had one; otherwise the process is `unknown`.
 */
function readExitFile(p: Proc): bigint | null {
  p.exited = true;
  try {
    const text = fs.readFileSync(p.exitFile, "utf8").trim();
    const status = Number(text);
    if (text !== "" && Number.isInteger(status) && status >= 0 && status <= 255) {
      const { code, signal: sig } = decodeStatus(status);
      p.code = code;
      p.signal = sig;
      p.unknown = false;
      return fs.statSync(p.exitFile, { bigint: true }).mtimeNs;
    }
  } catch {
    // no exit file (or unreadable)
  }
  p.unknown = true;
  return null;
}

function exitCodeOf(p: Proc): number {
  if (p.signal !== null) return 128 + signalNumber(p.signal);
  return p.code ?? LAUNCH_FAILURE_EXIT_CODE;
}
