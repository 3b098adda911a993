// Runs tasks as OS process trees (a much reduced Thermos executor, aurora.md §2).
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
//   alive. The tree is found three ways, so that a process that left the group (setsid) or was
//   orphaned (reparented to init) is still found: ppid links from the root pids, membership of a
//   root's process group, and a per-launch marker variable in /proc/<pid>/environ.
// - Whatever way the task ends, leftover processes of its tree are reaped before "exited" is
//   reported: no process is left behind.
// - Nothing runs while idle: liveness is polled only while a tree is being killed, and (every
//   ADOPT_POLL_MS) only while adopted processes run.
// - Killing is polled by ONE reaper for all the trees being killed, not one loop per task: each
//   tick reads /proc once (ProcTable: pid → ppid, group, session, start time) and every task's
//   reap consults that table, so killing 1,000 tasks costs one /proc scan per tick, not 1,000.
//   (One timer per task also starved the event loop: once their scans took longer than the poll
//   interval, Node stayed in its timers phase and never polled I/O, so child exits, the very
//   events the reaps waited for, were never delivered.) The marker variable is read from
//   /proc/<pid>/environ once per process (cached by pid + start time), not once per task per
//   tick. Ticks run every POLL_MS while trees change, back off to POLL_MAX_MS while nothing does
//   (a grace period running out), come sooner at a grace deadline or when a root exits, and never
//   closer together than REAP_LOAD_FACTOR times the last tick's cost, so that reaping cannot take
//   over the event loop (agent heartbeats).
//
// The executor knows nothing of the scheduler: it reports "started", "exited" and "lost" through
// onEvent, and describes its tasks for a checkpoint through records().

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import type { ProcessSpec } from "../domain/types.js";
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
export interface ProcessRecord {
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

/** What the executor needs to re-attach to a task (Executor.records() → checkpoint → adopt()). */
export interface TaskRecord {
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

/** Environment variable carrying a per-launch marker, used to find escaped descendants. */
export const RUN_MARKER_ENV = "ROOST_EXECUTOR_RUN";

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
export const WRAPPER_SCRIPT = [
  "trap : HUP INT QUIT TERM USR1 USR2",
  `"$0" -c 'trap "" PIPE;echo $$ >&3;trap - PIPE;exec 3>&- "$0" -c "$1"' "$0" "$1"`,
  "c=$?",
  'echo $c >"$2"',
  "trap - HUP INT QUIT TERM USR1 USR2",
  "case $c in 147|148|149|150);; *)if [ $c -gt 128 ]&&[ $c -le 192 ];then ulimit -c 0 2>/dev/null;kill -$((c-128)) $$;fi;;esac",
  "exit $c",
].join("\n");

/** Reaper tick interval while trees change (processes dying, the SIGKILL phase beginning). */
const POLL_MS = 50;
/** The interval backs off (doubling) up to this while nothing changes. */
const POLL_MAX_MS = 200;
/** Delay of the tick a root's exit brings forward (coalescing a burst of exits into one tick). */
const NUDGE_MS = 5;
/** Ticks are at least this many times their own cost apart: reaping takes at most ~1/(1+k) of the loop. */
const REAP_LOAD_FACTOR = 3;
/** Liveness poll of adopted processes (not our children: no exit events). */
const ADOPT_POLL_MS = 200;

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

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function childrenOf(procs: ProcStat[]): Map<number, ProcStat[]> {
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) pushTo(children, p.ppid, p);
  return children;
}

function descendantsIn(children: Map<number, ProcStat[]>, roots: Iterable<number>): ProcStat[] {
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
  return descendantsIn(childrenOf(snapshot()), [pid]).map((p) => p.pid);
}

/** Pids of the live (non-zombie) processes whose environment holds NAME=VALUE (tests, benches). */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const out: number[] = [];
  for (const p of snapshot()) {
    try {
      const env = fs.readFileSync(`/proc/${p.pid}/environ`);
      const at = env.indexOf(needle);
      if (at === 0 || (at > 0 && env[at - 1] === 0)) out.push(p.pid);
    } catch {
      // gone or unreadable
    }
  }
  return out;
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

const MARKER_PREFIX = Buffer.from(`${RUN_MARKER_ENV}=`);
const NO_MARKERS: readonly string[] = [];

/**
 * The launch markers (values of RUN_MARKER_ENV, usually none or one) in a process's environment,
 * or undefined when that cannot be told now: the process is gone, or its environment read empty
 * (a process in the middle of exec, or a kernel thread). A process we may not read has none.
 */
function markersOf(pid: number): readonly string[] | undefined {
  let env: Buffer;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "EACCES" || code === "EPERM" ? NO_MARKERS : undefined;
  }
  if (env.length === 0) return undefined;
  let out: string[] | null = null;
  for (let at = env.indexOf(MARKER_PREFIX); at >= 0; at = env.indexOf(MARKER_PREFIX, at + 1)) {
    if (at > 0 && env[at - 1] !== 0) continue; // inside another variable
    const start = at + MARKER_PREFIX.length;
    const end = env.indexOf(0, start);
    if (end < 0) break; // not NUL-terminated: not a whole variable
    (out ??= []).push(env.toString("latin1", start, end));
  }
  return out ?? NO_MARKERS;
}

/** What the marker cache remembers of a process: its start time (pid reuse check) and markers. */
interface MarkerEntry {
  starttime: number;
  markers: readonly string[];
}

/**
 * One read of /proc shared by every reap of a reaper tick: the live processes, indexed by pid,
 * parent, process group and session, and (built on first use) by launch marker.
 */
class ProcTable {
  readonly byPid = new Map<number, ProcStat>();
  readonly children: Map<number, ProcStat[]>;
  readonly byPgrp = new Map<number, ProcStat[]>();
  readonly bySession = new Map<number, ProcStat[]>();
  private byMarker: Map<string, ProcStat[]> | null = null;

  constructor(readonly procs: ProcStat[]) {
    for (const p of procs) {
      this.byPid.set(p.pid, p);
      pushTo(this.byPgrp, p.pgrp, p);
      pushTo(this.bySession, p.session, p);
    }
    this.children = childrenOf(procs);
  }

  /** The same process (pid and start time) is alive. */
  alive(pid: number | null, starttime: number): boolean {
    if (pid === null || starttime <= 0) return false;
    return this.byPid.get(pid)?.starttime === starttime;
  }

  /**
   * Processes started at or after minStart whose environment carries the marker. The first call
   * of a tick classifies every process started at or after `since` (reading the environment only
   * of processes the cache does not know), and prunes the cache of processes gone.
   */
  withMarker(marker: string, minStart: number, cache: Map<number, MarkerEntry>, since: number): ProcStat[] {
    if (!this.byMarker) {
      const index = new Map<string, ProcStat[]>();
      for (const [pid, e] of cache) if (!this.alive(pid, e.starttime)) cache.delete(pid);
      for (const st of this.procs) {
        if (st.starttime < since || st.pid === process.pid) continue;
        let e = cache.get(st.pid);
        if (!e || e.starttime !== st.starttime) {
          const markers = markersOf(st.pid);
          if (markers === undefined) continue; // not now: read again next tick
          cache.set(st.pid, (e = { starttime: st.starttime, markers }));
        }
        for (const m of e.markers) pushTo(index, m, st);
      }
      this.byMarker = index;
    }
    return (this.byMarker.get(marker) ?? []).filter((st) => st.starttime >= minStart);
  }
}

const EMPTY_TABLE = new ProcTable([]);

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

interface Proc {
  name: string;
  cmdline: string;
  child: ChildProcess | null;
  /** Our end of the pipe on which the command reports its pid. */
  pidPipe: (NodeJS.ReadableStream & { destroy(): void }) | null;
  /** The wrapper: leader of the process group. */
  pid: number | null;
  /** The wrapper's start time (clock ticks since boot), 0 if unknown. */
  startTime: number;
  /** The command's own pid, once it reported it. */
  commandPid: number | null;
  exitFile: string;
  /** "started" may be reported for it: spawned, and its command pid known (or never to be). */
  ready: boolean;
  exited: boolean;
  code: number | null;
  signal: string | null;
  /** Re-attached from a checkpoint: liveness from /proc, exit status from exitFile. */
  adopted: boolean;
  /** Ended with no exit status to be had (an adopted process gone without an exit file). */
  unknown: boolean;
}

type Outcome =
  | { kind: "finished" }
  | { kind: "failed"; proc: Proc }
  | { kind: "launchFailed"; message: string }
  | { kind: "lost"; message: string }
  | { kind: "killed"; why?: string };

interface Task {
  spec: LaunchSpec;
  marker: string;
  procs: Proc[];
  /** Start time (clock ticks) of the earliest root: nothing older can belong to the tree. */
  minStart: number;
  /** Every process ever seen in the tree, pid → starttime. */
  tracked: Map<number, number>;
  outcome: Outcome | null;
  /** Spawning is settled ("started" emitted, or the launch failed), or the task was adopted. */
  launchSettled: boolean;
  /** "started" was emitted (by this executor or the one that launched it). */
  started: boolean;
  /** The tree is being reaped (the task is in the reaper's set); the SIGKILL deadline can only move earlier. */
  reaping: boolean;
  killDeadline: number;
  /** Past killDeadline: whatever is left of the tree is SIGKILLed at every tick. */
  killPhase: boolean;
  /** Pids (and negated groups) already sent SIGTERM. */
  termed: Set<number>;
  /** What the last reaper tick saw of the tree (live processes, live roots): change detection. */
  lastLive: number;
  lastRootsLive: number;
  done: Promise<void>;
  resolveDone: () => void;
  finished: boolean;
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
  /** Tasks whose trees are being reaped, all served by one reaper tick (reapTick). */
  private readonly reaping = new Set<Task>();
  private reapTimer: NodeJS.Timeout | null = null;
  /** When the pending reaper tick is due (Date.now() time), Infinity if none. */
  private reapAt = Infinity;
  private reapInterval = POLL_MS;
  /** Earliest time the next tick may run at its own pace (REAP_LOAD_FACTOR × the last one's cost). */
  private reapNotBefore = 0;
  /** Launch markers read from /proc/<pid>/environ, by pid, while trees are being reaped. */
  private readonly markerCache = new Map<number, MarkerEntry>();

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
      if (task.reaping && !task.finished) this.nudgeReaper();
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
  adopt(rec: TaskRecord): void {
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
      if (task.outcome) this.terminate(task, this.defaultGraceMs);
      else this.evaluate(task);
      this.watchAdopted();
    });
  }

  /** What a checkpoint needs to re-attach to every current task (adopt()). */
  records(): TaskRecord[] {
    const out: TaskRecord[] = [];
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
    this.terminate(task, graceMs ?? this.defaultGraceMs);
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
    if (this.reapTimer) clearTimeout(this.reapTimer);
    this.reapTimer = null;
    this.reapAt = Infinity;
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
    if (task.reaping && !task.finished) this.nudgeReaper();
  }

  /** Decides, after a process exits, whether the task is over (or must be torn down). */
  private evaluate(task: Task): void {
    if (!task.launchSettled || task.finished || this.detached) return;
    if (task.outcome) {
      this.terminate(task, this.defaultGraceMs);
      return;
    }
    if (task.procs.every((p) => p.exited)) {
      task.outcome = { kind: "finished" };
      this.terminate(task, this.defaultGraceMs); // reaps leftover descendants, then reports
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

  // ---- killing ---------------------------------------------------------------------------------

  /** Starts (or hurries) the reap of the task's tree; reports "exited" once nothing is left. */
  private terminate(task: Task, graceMs: number): void {
    if (this.detached || task.finished) return;
    task.killDeadline = Math.min(task.killDeadline, Date.now() + Math.max(0, graceMs));
    if (!task.reaping) {
      task.reaping = true;
      this.reaping.add(task);
      // The launched roots and their groups are signalled right away (they are our children:
      // their pids cannot have been reused); the rest of the tree is found and signalled at the
      // first tick, which every kill of this turn of the event loop shares.
      if (Date.now() >= task.killDeadline) task.killPhase = true;
      const sig = task.killPhase ? "SIGKILL" : "SIGTERM";
      for (const p of task.procs) {
        if (p.adopted || p.pid === null || p.exited) continue;
        signal(-p.pid, sig);
        signal(p.pid, sig);
        task.termed.add(-p.pid);
        task.termed.add(p.pid);
      }
      this.scheduleReap(Date.now());
    } else if (!task.killPhase) {
      this.scheduleReap(task.killDeadline);
    }
  }

  /** Makes sure a reaper tick runs by `at` (Date.now() time). */
  private scheduleReap(at: number): void {
    if (this.detached || this.reaping.size === 0) return;
    if (this.reapTimer && this.reapAt <= at) return;
    if (this.reapTimer) clearTimeout(this.reapTimer);
    this.reapAt = at;
    this.reapTimer = setTimeout(() => this.reapTick(), Math.max(0, at - Date.now()));
  }

  /** A root of a reaped tree exited: tick again soon, at the fast pace, within the load limit. */
  private nudgeReaper(): void {
    this.reapInterval = POLL_MS;
    this.scheduleReap(Math.max(Date.now() + NUDGE_MS, this.reapNotBefore));
  }

  /**
   * One reaper tick: reads /proc once, then advances the reap of every tree being killed
   * (signals, SIGKILL past its deadline), reports "exited" for those with nothing left, and
   * schedules the next tick while any remain.
   */
  private reapTick(): void {
    this.reapTimer = null;
    this.reapAt = Infinity;
    if (this.detached || this.reaping.size === 0) return;
    const t0 = performance.now();
    const now = Date.now();
    const table = HAVE_PROC ? new ProcTable(snapshot()) : EMPTY_TABLE;
    let markersSince = Infinity;
    for (const task of this.reaping) if (task.minStart > 0) markersSince = Math.min(markersSince, task.minStart);
    let changed = false;
    for (const task of [...this.reaping]) {
      if (task.finished || this.detached) {
        this.reaping.delete(task);
        continue;
      }
      let step: "done" | "changed" | "same";
      try {
        step = this.reapStep(task, table, now, markersSince);
      } catch {
        step = "done"; // as good as it gets: report rather than wedge the task
      }
      if (step !== "same") changed = true;
      if (step === "done") {
        this.reaping.delete(task);
        this.finish(task);
      }
    }
    if (this.detached) return;
    if (this.reaping.size === 0) {
      this.markerCache.clear();
      this.reapInterval = POLL_MS;
      return;
    }
    const cost = performance.now() - t0;
    this.reapInterval = changed ? POLL_MS : Math.min(POLL_MAX_MS, this.reapInterval * 2);
    const end = Date.now();
    this.reapNotBefore = end + REAP_LOAD_FACTOR * cost;
    let next = end + Math.max(this.reapInterval, REAP_LOAD_FACTOR * cost);
    // A grace period running out is worth a tick of its own.
    for (const task of this.reaping) if (!task.killPhase) next = Math.min(next, task.killDeadline);
    this.scheduleReap(Math.max(next, end + 1));
  }

  /**
   * Advances the reap of one tree with this tick's process table: "done" once nothing of the
   * tree is alive (and the launch is settled), else whether anything changed since the last tick
   * (for the reaper's back-off).
   */
  private reapStep(task: Task, table: ProcTable, now: number, markersSince: number): "done" | "changed" | "same" {
    let changed = false;
    if (!task.killPhase && now >= task.killDeadline) {
      task.killPhase = true;
      changed = true;
    }
    // Adopted roots: their ends are seen here (a wrapper SIGKILLed by us leaves no exit file).
    for (const p of task.procs) {
      if (!p.adopted || p.exited || table.alive(p.pid, p.startTime)) continue;
      readExitFile(p);
      changed = true;
      if (p.unknown && task.killPhase && task.outcome?.kind === "killed") {
        p.unknown = false;
        p.signal = "SIGKILL";
      }
    }
    const live = this.scan(task, table, markersSince);
    let rootsLive = 0;
    for (const p of task.procs) if (p.pid !== null && !p.exited) rootsLive++;
    if (live.length === 0 && rootsLive === 0 && task.launchSettled) return "done";
    if (live.length !== task.lastLive || rootsLive !== task.lastRootsLive) changed = true;
    task.lastLive = live.length;
    task.lastRootsLive = rootsLive;
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
    const rootPids = treeRoots(task);
    for (const st of live) if (rootPids.has(st.pgrp)) groups.add(st.pgrp);
    if (task.killPhase) {
      for (const g of groups) signal(-g, "SIGKILL");
      for (const pid of roots) signal(pid, "SIGKILL");
      for (const st of live) signal(st.pid, "SIGKILL");
    } else {
      const termed = task.termed;
      for (const g of groups) {
        if (!termed.has(-g)) signal(-g, "SIGTERM");
        termed.add(-g);
      }
      for (const pid of roots) {
        if (!termed.has(pid)) signal(pid, "SIGTERM");
        termed.add(pid);
      }
      for (const st of live) {
        if (!termed.has(st.pid)) signal(st.pid, "SIGTERM");
        termed.add(st.pid);
      }
    }
    return changed ? "changed" : "same";
  }

  /**
   * The live processes of the task's tree other than the roots (whose liveness comes from exit
   * events, or for adopted roots from /proc), remembering every one seen so that later scans
   * still find them if orphaned.
   */
  private scan(task: Task, table: ProcTable, markersSince: number): ProcStat[] {
    if (table.procs.length === 0) return [];
    const rootPids = treeRoots(task);

    const found = new Map<number, ProcStat>();
    const consider = (st: ProcStat): void => {
      if (st.pid === process.pid || rootPids.has(st.pid)) return;
      found.set(st.pid, st);
    };
    // 1. Processes seen before, if still the same process (pid + start time); the others are
    //    gone for good (a reused pid has another start time).
    for (const [pid, start] of task.tracked) {
      const st = table.byPid.get(pid);
      if (st && st.starttime === start) consider(st);
      else task.tracked.delete(pid);
    }
    // 2. Members of a root's process group or session (orphans that did not setsid).
    for (const root of rootPids) {
      for (const st of table.byPgrp.get(root) ?? []) if (st.starttime >= task.minStart) consider(st);
      for (const st of table.bySession.get(root) ?? []) if (st.starttime >= task.minStart) consider(st);
    }
    // 3. Processes carrying the launch marker (escaped via setsid and orphaned).
    if (task.minStart > 0) {
      for (const st of table.withMarker(task.marker, task.minStart, this.markerCache, markersSince)) consider(st);
    }
    // 4. Descendants, through ppid links, of the roots and of everything found so far.
    for (const st of descendantsIn(table.children, [...rootPids, ...found.keys()])) consider(st);

    for (const st of found.values()) task.tracked.set(st.pid, st.starttime);
    return [...found.values()];
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

/**
 * Pids that anchor the tree (process group and session leaders, ppid roots). A launched root
 * counts even after it exited (it was our child: its pid was ours until just now); an adopted
 * root only while it is alive and verified, since its pid may have been reused meanwhile.
 */
function treeRoots(task: Task): Set<number> {
  const out = new Set<number>();
  for (const p of task.procs) if (p.pid !== null && (!p.adopted || !p.exited)) out.add(p.pid);
  return out;
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
