// Runs tasks as OS process trees: a reduced version of Aurora's Thermos executor.
//
// - A task is a list of processes, each a shell command line run with /bin/sh -c in its own
//   process group (detached), with the sandbox directory as cwd and stdout/stderr appended to
//   <sandbox>/<process>.stdout and .stderr (every run of a restarted process appends to the same
//   files). <sandbox>/task.json records the spec and the pids. Every one of these paths is built by
//   sandbox.ts, which escapes the process name one to one into a plain file name and checks that
//   the path lies inside the sandbox.
// - Each command runs under a small /bin/sh wrapper (WRAPPER_SCRIPT), the group leader, which
//   first joins the task's cgroups (isolation.ts: it writes its own pid into each cgroup.procs
//   file, so the command and all it forks are confined from their first instruction), then
//   writes the command's exit status to <sandbox>/<process>.exit even when the agent is dead, and
//   exits the same way. The reported pid of a process is the command's own ($$ in it).
// - Thermos's process rules: a process starts once every process before it in an order
//   constraint succeeded; a failed process is restarted until it has failed maxFailures times
//   (0: without end), a daemon even after it succeeds, and the runs of a process start at least
//   minDuration apart. The task succeeds when every process that is neither ephemeral nor final
//   succeeded, and fails when one exhausts its failures. Final processes run at finalization:
//   once the others ended, succeeded, failed or were killed, within finalizationWait.
// - A kill runs Aurora's graceful sequence on the task's regular processes: POST
//   /quitquitquit to its lifecycle port and wait; POST /abortabortabort and wait; SIGTERM to the
//   whole tree and wait finalizationWait; SIGKILL. A step without its port is skipped, and the
//   sequence stops as soon as every process exited; the KILLED message names the step that ended
//   it. What taught this: services were SIGTERMed mid-request, with no chance to drain, and a
//   process that trapped SIGTERM was SIGKILLed after a fixed 5 s whatever the job asked.
// - The agent can end a task itself (terminate): a failed health check, a sandbox over its disk,
//   a cgroup that OOM-killed a process. The same sequence runs, and the task ends FAILED with
//   that reason.
// - adopt() re-attaches to a task launched by an earlier agent (from its checkpoint): its
//   processes are not our children, so their liveness is polled through /proc (pid + start time,
//   every ADOPT_POLL_MS, only while adopted processes run) and their exit status is read from
//   the .exit file. A process gone without an exit file has an unknown status: the task is lost.
// - Killing is the reaper's (reaper.ts): SIGTERM to every process group and process of the tree,
//   then SIGKILL past the grace period, with the tree found through /proc even where processes
//   left the group or were orphaned. Whatever way the task ends, leftover processes of its tree
//   are reaped before "exited" is reported: no process is left behind.
//
// The executor knows nothing of the scheduler: it reports "started", "exited" and "lost" through
// onEvent, and describes its tasks for a checkpoint through records().

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import {
  type FullProcessSpec,
  type HealthCheckConfig,
  type ProcessConstraint,
  type ProcessSpec,
  processDefaults,
} from "../domain/types.js";
import { isDeadState, readStat, RUN_MARKER_ENV } from "./proc.js";
import { type ReapedRoot, type ReapedTree, Reaper } from "./reaper.js";
import { processFile, taskFile } from "./sandbox.js";

/** The HTTP steps of a graceful kill (Aurora's HttpLifecycleConfig), with the port resolved. */
export interface HttpLifecycle {
  port: number;
  gracefulShutdownEndpoint: string;
  shutdownEndpoint: string;
  gracefulShutdownWaitMs: number;
  shutdownWaitMs: number;
}

export interface LaunchSpec {
  taskId: string;
  /** Each {name, cmdline, run fields}; cmdline is already rendered (ports substituted). */
  processes: ProcessSpec[];
  /** Extra environment variables (e.g. ROOST_PORT_HTTP=31001, ROOST_TASK_ID). */
  env: Record<string, string>;
  /** Created if missing; the cwd of every process. */
  sandboxDir: string;
  processConstraints?: ProcessConstraint[];
  /** SIGTERM → SIGKILL in a kill, and the time final processes get. Default: the executor's grace. */
  finalizationWaitMs?: number;
  /** The HTTP steps of a kill; absent or null: none. */
  lifecycle?: HttpLifecycle | null;
  /** cgroup.procs files every process joins before its command runs (isolation.ts). */
  cgroupProcs?: string[];
  /**
   * What the agent keeps of the launch beside the processes (its limits, health check and ports),
   * checkpointed with the spec so that an agent re-attaching to the task can go on checking it.
   * The executor does not read it.
   */
  agent?: LaunchedTaskInfo;
}

/** See LaunchSpec.agent. */
export interface LaunchedTaskInfo {
  resources: { cpus: number; ramMb: number; diskMb: number };
  ports: Record<string, number>;
  healthCheck?: HealthCheckConfig;
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
  /** Grace between SIGTERM and SIGKILL when the task gives none, and for internal cleanups. */
  defaultGraceMs?: number;
  /**
   * Asked after a process of the task ended: a reason when the task must fail at once (the agent
   * asks its cgroup whether the kernel OOM-killed a process), else null.
   */
  checkEnded?: (taskId: string) => string | null;
}

/** A process's state, as Thermos names them. */
type ProcessState = "WAITING" | "RUNNING" | "SUCCESS" | "FAILED" | "KILLED" | "LOST";

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
  /** Absent in checkpoints written before processes could restart: RUNNING if spawned. */
  state?: ProcessState;
  runs?: number;
  failures?: number;
  exitCode?: number | null;
  /** Wall-clock ms the current run started (minDuration). */
  startedAt?: number;
}

/** Where a task is in its life (checkpointed). */
type Phase = "main" | "stopping" | "finalizing" | "cleanup";

/** How a task ended, as checkpointed (Outcome without the process object). */
type OutcomeRecord =
  | { kind: "finished" | "killed" | "launchFailed" | "lost" | "terminated"; message?: string }
  | { kind: "failed"; process: string };

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
  /** Absent in older checkpoints: "stopping" if killed, else "main". */
  phase?: Phase;
  outcome?: OutcomeRecord | null;
  /** Wall-clock ms by which final processes must be done. */
  finalDeadline?: number | null;
}

/** What `roost task status` shows of one process. */
interface ProcessStatus {
  name: string;
  state: ProcessState;
  runs: number;
  failures: number;
  exitCode: number | null;
  pid: number | null;
  final: boolean;
}

/** What `roost task status` shows of a task the executor runs. */
export interface TaskStatus {
  phase: Phase;
  processes: ProcessStatus[];
  /** The step of a kill under way or done, e.g. "POST /quitquitquit". */
  killStep: string | null;
}
/** Exit code reported when a process could not be started. */
export const LAUNCH_FAILURE_EXIT_CODE = 127;

/**
 * The wrapper every process runs under: `/bin/sh -c WRAPPER_SCRIPT /bin/sh <cmdline> <exitFile>
 * <cgroup.procs>...` with fd 3 a pipe to the executor. It runs `/bin/sh -c <cmdline>` in the
 * foreground: that shell first writes its pid to fd 3 and closes it, then joins each cgroup
 * (writing its pid into the cgroup.procs file; failing that, it exits 125: a task is never run
 * unconfined when it was to be confined) and execs the command. The wrapper itself stays outside
 * the cgroup, out of reach of its OOM killer, so the exit status is always written. It writes the exit status ($?: 128 + signo for a
 * signal) to the exit file, then exits with that status, re-raising a fatal signal on itself so
 * that its parent sees the same code or signal (stop signals 19-22 are never re-raised).
 * Termination signals sent to the group are caught while the command runs (the trap runs when it
 * ends), so a SIGTERM kill still records the status; only SIGKILL leaves no exit file.
 */
const WRAPPER_SCRIPT = [
  "trap : HUP INT QUIT TERM USR1 USR2",
  "c=$1 e=$2",
  "shift 2",
  `"$0" -c 'trap "" PIPE;echo $$ >&3;trap - PIPE;c=$1;shift;for f do echo $$ >"$f"||{ echo "roost: cannot join the cgroup $f" >&2;exit 125;};done;exec 3>&- "$0" -c "$c"' "$0" "$c" "$@"`,
  "c=$?",
  'echo $c >"$e"',
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

/** One process of a task; its current run's wrapper is a root of the task's tree (ReapedRoot). */
interface Proc extends ReapedRoot {
  spec: FullProcessSpec;
  name: string;
  cmdline: string;
  state: ProcessState;
  /** How many times it was started. */
  runs: number;
  failures: number;
  /** Processes that must succeed before it starts (order constraints). */
  after: string[];
  child: ChildProcess | null;
  /** Our end of the pipe on which the command reports its pid. */
  pidPipe: (NodeJS.ReadableStream & { destroy(): void }) | null;
  /** The command's own pid, once it reported it. */
  commandPid: number | null;
  exitFile: string;
  /** Spawned, and its command pid known (or never to be). */
  ready: boolean;
  code: number | null;
  signal: string | null;
  /** Ended with no exit status to be had (an adopted process gone without an exit file). */
  unknown: boolean;
  /** Wall-clock ms its current run started. */
  startedAt: number;
  /** A restart waiting out minDuration. */
  restartTimer: NodeJS.Timeout | null;
}

type Outcome =
  | { kind: "finished" }
  | { kind: "failed"; proc: Proc }
  | { kind: "launchFailed"; message: string }
  | { kind: "lost"; message: string }
  | { kind: "killed"; why?: string }
  | { kind: "terminated"; message: string };

/** A launched or adopted task; its tree's reap bookkeeping (ReapedTree) is the reaper's. */
interface Task extends ReapedTree<Proc> {
  spec: LaunchSpec;
  outcome: Outcome | null;
  phase: Phase;
  /** "started" was emitted (by this executor or the one that launched it). */
  started: boolean;
  /** Processes of the first start whose spawn is not settled yet. */
  unsettled: number;
  /** The step of the kill sequence under way or done. */
  killStep: string | null;
  /** SIGTERM → SIGKILL for this task. */
  graceMs: number;
  /** A kill's own grace (kill(graceMs)): caps the HTTP steps' waits too. */
  hurryMs: number;
  /** Wakes the kill sequence's wait once every regular process exited. */
  onAllExited: (() => void) | null;
  finalDeadline: number | null;
  finalTimer: NodeJS.Timeout | null;
  done: Promise<void>;
  resolveDone: () => void;
}

export class Executor {
  private readonly onEvent: (e: ExecutorEvent) => void;
  private readonly defaultGraceMs: number;
  private readonly checkEnded: (taskId: string) => string | null;
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
      if (p.unknown && task.killPhase) {
        p.unknown = false;
        p.signal = "SIGKILL";
      }
    },
    done: (task) => this.reaped(task),
  });

  constructor(opts: ExecutorOptions) {
    this.onEvent = opts.onEvent;
    this.defaultGraceMs = opts.defaultGraceMs ?? 5000;
    this.checkEnded = opts.checkEnded ?? (() => null);
  }

  launch(spec: LaunchSpec): void {
    if (this.known.has(spec.taskId) || this.detached) return;
    this.known.add(spec.taskId);

    const task = this.newTask(spec, randomUUID());
    task.procs = spec.processes.map((p) => this.newProc(p, spec));
    this.tasks.set(spec.taskId, task);

    const fail = (message: string): void => this.launchFailed(task, message);
    if (this.shuttingDown) return fail("executor is shutting down");
    if (task.procs.length === 0) return fail("task has no processes");
    const names = new Set<string>();
    for (const p of task.procs) {
      if (names.has(p.name)) return fail(`duplicate process name "${p.name}"`);
      names.add(p.name);
    }
    for (const p of task.procs) {
      for (const q of p.after)
        if (!names.has(q)) return fail(`process "${p.name}" is ordered after "${q}", which is not a process of the task`);
    }
    try {
      fs.mkdirSync(spec.sandboxDir, { recursive: true });
    } catch (err) {
      return fail(`cannot create sandbox ${spec.sandboxDir}: ${(err as Error).message}`);
    }
    const first = this.startable(task);
    if (first.length === 0) return fail("no process can start: the order constraints wait on each other");
    task.unsettled = first.length;
    for (const p of first) {
      if (task.launchSettled) break;
      this.spawnProc(task, p);
    }
  }

  /**
   * Re-attaches to a task an earlier executor launched (its checkpointed record). Processes still
   * alive (same pid and start time) are watched; those that ended meanwhile are judged by their
   * exit files, in the order they were written; one gone without an exit file makes the task
   * lost. The rules are those of launched tasks, and the task is reported through onEvent
   * ("started" first if its earlier executor had not reported it). A task being killed goes on
   * being killed (from SIGTERM: the HTTP steps are not repeated).
   */
  adopt(rec: LaunchedTask): void {
    if (this.known.has(rec.taskId) || this.detached) return;
    this.known.add(rec.taskId);
    const spec = rec.spec;
    const task = this.newTask(spec, rec.marker);
    task.minStart = rec.minStart;
    task.launchSettled = true;
    task.started = rec.started;
    task.phase = rec.phase ?? (rec.killed ? "stopping" : "main");
    task.finalDeadline = rec.finalDeadline ?? null;
    task.procs = spec.processes.map((ps) => this.newProc(ps, spec));
    for (const r of rec.processes) {
      const p = task.procs.find((q) => q.name === r.name);
      if (!p) continue;
      p.pid = r.pid;
      p.startTime = r.startTime;
      p.commandPid = r.commandPid;
      p.exitFile = r.exitFile || p.exitFile;
      p.ready = true;
      p.adopted = true;
      p.state = r.state ?? (r.pid !== null ? "RUNNING" : "WAITING");
      p.runs = r.runs ?? (r.pid !== null ? 1 : 0);
      p.failures = r.failures ?? 0;
      p.code = r.exitCode ?? null;
      p.startedAt = r.startedAt ?? 0;
      p.exited = p.state !== "RUNNING";
    }
    this.tasks.set(rec.taskId, task);
    task.outcome = outcomeFrom(rec.outcome ?? (rec.killed ? { kind: "killed" } : null), task);

    // What ended while nobody watched, in the order the exit files were written; unknown last.
    const ended: Array<{ p: Proc; at: bigint }> = [];
    for (const p of task.procs) {
      if (p.state !== "RUNNING" || adoptedAlive(p)) continue;
      const at = readExitFile(p);
      ended.push({ p, at: at ?? BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n });
    }
    ended.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));

    queueMicrotask(() => {
      if (this.detached || task.finished) return;
      for (const { p } of ended) this.ended(task, p, `process "${p.name}" exited while the agent was down; exit status unknown`);
      if (task.finished) return;
      if (task.procs.length === 0 && !task.outcome) task.outcome = { kind: "lost", message: "no processes were recorded" };
      if (!task.started && !task.outcome && task.procs.some((p) => p.state === "RUNNING")) {
        task.started = true;
        this.emit({ type: "started", taskId: rec.taskId, pids: reportedPids(task) });
      }
      this.resumeAdopted(task);
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
        phase: t.phase,
        outcome: outcomeRecord(t.outcome),
        finalDeadline: t.finalDeadline,
        processes: t.procs.map((p) => ({
          name: p.name,
          pid: p.pid,
          startTime: p.startTime,
          commandPid: p.commandPid,
          exitFile: p.exitFile,
          state: p.state,
          runs: p.runs,
          failures: p.failures,
          exitCode: p.code,
          startedAt: p.startedAt,
        })),
      });
    }
    return out;
  }

  /**
   * Kills a task with the graceful sequence. `graceMs` overrides the task's SIGTERM → SIGKILL
   * wait; `why` is the KILLED message (default "killed by scheduler"), e.g. why the agent is
   * shutting down.
   */
  kill(taskId: string, graceMs?: number, why?: string): Promise<void> {
    const task = this.tasks.get(taskId);
    if (!task || task.finished || this.detached) return Promise.resolve();
    if (graceMs !== undefined) {
      task.graceMs = Math.min(task.graceMs, graceMs);
      task.hurryMs = Math.min(task.hurryMs, graceMs);
    }
    if (!task.outcome) task.outcome = why === undefined ? { kind: "killed" } : { kind: "killed", why };
    if (task.phase === "main") this.stop(task, true);
    else if (task.phase === "finalizing") {
      // Killed while its final processes run: they get the kill's grace, no more.
      task.phase = "cleanup";
      this.clearTimers(task);
      this.reaper.reap(task, task.graceMs);
    } else if (task.reaping) this.reaper.reap(task, task.graceMs); // hurries a kill under way
    return task.done;
  }

  /** Ends a task FAILED with `message` (unhealthy, over its disk), through the kill sequence. */
  terminate(taskId: string, message: string): void {
    const task = this.tasks.get(taskId);
    if (!task || task.finished || this.detached || task.outcome) return;
    task.outcome = { kind: "terminated", message };
    this.stop(task, true);
  }

  isRunning(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  runningTasks(): string[] {
    return [...this.tasks.keys()];
  }

  /** Every process of a task: state, runs, exit code, pid. Null for a task it does not run. */
  status(taskId: string): TaskStatus | null {
    const t = this.tasks.get(taskId);
    if (!t) return null;
    return {
      phase: t.phase,
      killStep: t.killStep,
      processes: t.procs.map((p) => ({
        name: p.name,
        state: p.state,
        runs: p.runs,
        failures: p.failures,
        exitCode: exitCodeOrNull(p),
        pid: p.state === "RUNNING" ? (p.commandPid ?? p.pid) : null,
        final: p.spec.final,
      })),
    };
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
      if (t.finalTimer) clearTimeout(t.finalTimer);
      for (const p of t.procs) {
        if (p.restartTimer) clearTimeout(p.restartTimer);
        p.pidPipe?.destroy();
        p.pidPipe = null;
        p.child?.unref();
      }
    }
  }

  // ---- processes ------------------------------------------------------------------------------

  private newTask(spec: LaunchSpec, marker: string): Task {
    let resolveDone!: () => void;
    return {
      spec,
      marker,
      procs: [],
      minStart: 0,
      tracked: new Map(),
      outcome: null,
      phase: "main",
      launchSettled: false,
      started: false,
      unsettled: 0,
      killStep: null,
      graceMs: spec.finalizationWaitMs ?? this.defaultGraceMs,
      hurryMs: Infinity,
      onAllExited: null,
      finalDeadline: null,
      finalTimer: null,
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

  private newProc(ps: ProcessSpec, spec: LaunchSpec): Proc {
    const full = processDefaults(ps);
    const after = new Set<string>();
    for (const c of spec.processConstraints ?? []) {
      const i = c.order.indexOf(full.name);
      for (const q of c.order.slice(0, Math.max(0, i))) after.add(q);
    }
    return {
      spec: full,
      name: full.name,
      cmdline: full.cmdline,
      state: "WAITING",
      runs: 0,
      failures: 0,
      after: [...after],
      child: null,
      pidPipe: null,
      pid: null,
      startTime: 0,
      commandPid: null,
      exitFile: processFile(spec.sandboxDir, full.name, ".exit"),
      ready: false,
      exited: false,
      code: null,
      signal: null,
      adopted: false,
      unknown: false,
      startedAt: 0,
      restartTimer: null,
    };
  }

  /** WAITING processes of the current phase whose predecessors all succeeded, and no restart pending. */
  private startable(task: Task): Proc[] {
    const final = task.phase === "finalizing";
    const done = new Set(task.procs.filter((p) => p.state === "SUCCESS").map((p) => p.name));
    return task.procs.filter(
      (p) => p.state === "WAITING" && p.spec.final === final && p.restartTimer === null && p.after.every((q) => done.has(q)),
    );
  }

  /** Starts what may start now: at once, or once minDuration since the last run has passed. */
  private startReady(task: Task): void {
    for (const p of this.startable(task)) {
      const wait = p.runs > 0 ? p.startedAt + p.spec.minDuration * 1000 - Date.now() : 0;
      if (wait <= 0) this.spawnProc(task, p);
      else {
        p.restartTimer = setTimeout(() => {
          p.restartTimer = null;
          if (this.detached || task.finished || p.state !== "WAITING") return;
          if ((task.phase === "main" && !task.outcome) || task.phase === "finalizing") this.spawnProc(task, p);
        }, wait);
      }
    }
  }

  private spawnProc(task: Task, p: Proc): void {
    const spec = task.spec;
    const firstStart = !task.launchSettled;
    p.state = "RUNNING";
    p.runs++;
    p.exited = false;
    p.code = null;
    p.signal = null;
    p.unknown = false;
    p.adopted = false;
    p.ready = false;
    p.commandPid = null;
    p.startedAt = Date.now();
    const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env, [RUN_MARKER_ENV]: task.marker };
    let out: number | null = null;
    let errFd: number | null = null;
    try {
      out = fs.openSync(processFile(spec.sandboxDir, p.name, ".stdout"), "a");
      errFd = fs.openSync(processFile(spec.sandboxDir, p.name, ".stderr"), "a");
      fs.rmSync(p.exitFile, { force: true });
      const child = spawn("/bin/sh", ["-c", WRAPPER_SCRIPT, "/bin/sh", p.cmdline, p.exitFile, ...(spec.cgroupProcs ?? [])], {
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
        if (spawned && pidSettled) this.ready(task, p, firstStart);
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
        this.spawnFailed(task, p, firstStart, `failed to launch process "${p.name}": ${err.message}`);
      });
      child.once("exit", (code, sig) => {
        if (this.detached || p.child !== child) return;
        p.code = code;
        p.signal = sig;
        this.ended(task, p, `process "${p.name}" ended without an exit status (no exit file)`);
      });
    } catch (err) {
      this.spawnFailed(task, p, firstStart, `failed to launch process "${p.name}": ${(err as Error).message}`);
    } finally {
      if (out !== null) fs.closeSync(out);
      if (errFd !== null) fs.closeSync(errFd);
    }
  }

  private spawnFailed(task: Task, p: Proc, firstStart: boolean, message: string): void {
    p.exited = true;
    p.state = "FAILED";
    p.code = LAUNCH_FAILURE_EXIT_CODE;
    if (firstStart) this.launchFailed(task, message);
    else if (!task.outcome) {
      task.outcome = { kind: "terminated", message };
      this.stop(task, false);
    }
  }

  private launchFailed(task: Task, message: string): void {
    if (!task.outcome) task.outcome = { kind: "launchFailed", message };
    task.launchSettled = true;
    // Report asynchronously, like every other event, after reaping what did start.
    queueMicrotask(() => this.cleanup(task));
  }

  /** A process is spawned and its pid known; the first start settles once all of its are. */
  private ready(task: Task, p: Proc, firstStart: boolean): void {
    if (p.ready || this.detached) return;
    p.ready = true;
    if (!firstStart || task.launchSettled) return;
    if (--task.unsettled > 0) return;
    task.launchSettled = true;
    task.started = true;
    const pids = reportedPids(task);
    this.writeTaskFile(task, pids);
    this.emit({ type: "started", taskId: task.spec.taskId, pids });
    // A process may have exited between spawning and now; a kill may have waited for this.
    this.resume(task);
  }

  /**
   * A process ended (an exit event, or an adopted one seen gone): its state, a restart, and what
   * it means for the task.
   */
  private ended(task: Task, p: Proc, unknownMessage: string): void {
    if (task.finished || this.detached) return;
    p.exited = true;
    p.child = null;
    const ok = !p.unknown && p.code === 0 && p.signal === null;
    if (task.phase === "main" && !task.outcome) {
      const fatal = this.checkEnded(task.spec.taskId);
      if (p.unknown) {
        p.state = "LOST";
        task.outcome = { kind: "lost", message: unknownMessage };
      } else if (fatal !== null) {
        p.state = ok ? "SUCCESS" : "FAILED";
        task.outcome = { kind: "terminated", message: fatal };
      } else if (ok && !p.spec.daemon) {
        p.state = "SUCCESS";
      } else {
        if (!ok) p.failures++;
        if (ok || p.spec.maxFailures === 0 || p.failures < p.spec.maxFailures) p.state = "WAITING";
        else {
          p.state = "FAILED";
          task.outcome = { kind: "failed", proc: p };
        }
      }
    } else if (task.phase === "finalizing") {
      if (p.unknown) p.state = "LOST";
      else if (ok) p.state = "SUCCESS";
      else {
        p.failures++;
        p.state = p.spec.maxFailures === 0 || p.failures < p.spec.maxFailures ? "WAITING" : "FAILED";
        if (p.state === "FAILED" && task.outcome?.kind === "finished") task.outcome = { kind: "failed", proc: p };
      }
    } else {
      p.state = ok ? "SUCCESS" : p.unknown ? "LOST" : "KILLED";
    }
    if (!task.launchSettled) return; // the first start settles first (ready → resume)
    this.resume(task);
  }

  /** Moves the task on from where it is: starts what may start, or stops, finalizes, ends. */
  private resume(task: Task): void {
    if (task.finished || this.detached || !task.launchSettled) return;
    switch (task.phase) {
      case "main": {
        if (!task.outcome) {
          this.startReady(task);
          const regular = task.procs.filter((p) => !p.spec.final);
          if (regular.every((p) => p.spec.ephemeral || p.state === "SUCCESS")) task.outcome = { kind: "finished" };
          else if (!regular.some((p) => p.state === "RUNNING" || p.restartTimer !== null)) {
            task.outcome = { kind: "terminated", message: "no process can start: the order constraints wait on each other" };
          }
        }
        if (task.outcome) this.stop(task, task.outcome.kind === "killed" || task.outcome.kind === "terminated");
        return;
      }
      case "stopping":
        if (task.procs.every((p) => p.spec.final || p.exited || p.pid === null)) task.onAllExited?.();
        if (!task.reaping && task.onAllExited === null) this.reaper.reap(task, task.graceMs);
        else if (task.reaping) this.reaper.nudge();
        return;
      case "finalizing": {
        this.startReady(task);
        const finals = task.procs.filter((p) => p.spec.final);
        const busy = finals.some((p) => p.state === "RUNNING" || (p.state === "WAITING" && p.restartTimer !== null));
        if (!busy && this.startable(task).length === 0) this.cleanup(task);
        else if (task.reaping) this.reaper.nudge();
        return;
      }
      case "cleanup":
        if (task.reaping) this.reaper.nudge();
        else this.reaper.reap(task, this.defaultGraceMs);
        return;
    }
  }

  // ---- the kill sequence, finalization and the end ------------------------------------------

  /**
   * Stops the task's regular processes: with `graceful`, Aurora's HTTP steps first (when the
   * task has a lifecycle port), then SIGTERM, then SIGKILL past the grace. Final processes run
   * once nothing regular is left (reaped → finalize).
   */
  private stop(task: Task, graceful: boolean): void {
    if (task.phase !== "main" || task.finished) return;
    task.phase = "stopping";
    this.clearTimers(task);
    const lc = task.spec.lifecycle;
    const running = (): boolean => task.procs.some((p) => !p.spec.final && p.pid !== null && !p.exited);
    if (!graceful || !lc || !running()) {
      if (graceful && running()) task.killStep = "SIGTERM";
      this.reaper.reap(task, task.graceMs);
      return;
    }
    void (async () => {
      for (const [endpoint, waitMs] of [
        [lc.gracefulShutdownEndpoint, lc.gracefulShutdownWaitMs],
        [lc.shutdownEndpoint, lc.shutdownWaitMs],
      ] as const) {
        if (task.finished || this.detached || !running()) return this.afterHttpSteps(task);
        const wait = Math.min(waitMs, task.hurryMs);
        const exited = new Promise<void>((resolve) => (task.onAllExited = resolve));
        // A step whose endpoint nobody answers does not apply: no wait for it.
        const answered = await Promise.race([postQuietly(lc.port, endpoint, wait), exited.then(() => true)]);
        if (answered) {
          task.killStep = `POST ${endpoint}`;
          await Promise.race([exited, delay(wait)]);
        }
        task.onAllExited = null;
      }
      this.afterHttpSteps(task);
    })();
  }

  private afterHttpSteps(task: Task): void {
    task.onAllExited = null;
    if (task.finished || this.detached) return;
    const live = task.procs.some((p) => !p.spec.final && p.pid !== null && !p.exited);
    if (live) task.killStep = "SIGTERM";
    this.reaper.reap(task, task.graceMs);
  }

  /** Nothing of the tree is alive: the next phase, or the end. */
  private reaped(task: Task): void {
    task.reaping = false;
    task.killDeadline = Infinity;
    if (task.phase === "stopping") {
      if (task.killPhase && task.killStep !== null) task.killStep = "SIGKILL";
      task.killPhase = false;
      task.termed.clear();
      this.finalize(task);
    } else {
      this.finish(task);
    }
  }

  /** Runs the final processes (if any, and the task was not lost), within finalizationWait. */
  private finalize(task: Task): void {
    const finals = task.procs.filter((p) => p.spec.final);
    const skip = task.outcome?.kind === "lost" || task.outcome?.kind === "launchFailed";
    if (finals.length === 0 || skip) return this.cleanup(task);
    task.phase = "finalizing";
    task.finalDeadline ??= Date.now() + (task.spec.finalizationWaitMs ?? this.defaultGraceMs);
    this.armFinalDeadline(task);
    this.resume(task);
  }

  private armFinalDeadline(task: Task): void {
    if (task.finalTimer || task.finalDeadline === null) return;
    task.finalTimer = setTimeout(
      () => {
        task.finalTimer = null;
        if (task.finished || this.detached || task.phase !== "finalizing") return;
        // Out of time: what is left of the final processes is SIGKILLed.
        task.phase = "cleanup";
        this.clearTimers(task);
        this.reaper.reap(task, 0);
      },
      Math.max(0, task.finalDeadline - Date.now()),
    );
  }

  /** Reaps what is left of the tree (leftover descendants), then reports the end. */
  private cleanup(task: Task): void {
    if (task.finished || this.detached) return;
    this.clearTimers(task);
    task.phase = "cleanup";
    this.reaper.reap(task, this.defaultGraceMs);
  }

  /** Continues an adopted task from its phase. */
  private readonly resumeAdopted = (task: Task): void => {
    if (task.phase === "finalizing") this.armFinalDeadline(task);
    this.resume(task);
  };

  private emit(e: ExecutorEvent): void {
    if (this.detached) return;
    try {
      this.onEvent(e);
    } catch {
      // A failing listener must not wedge the executor.
    }
  }

  private clearTimers(task: Task): void {
    if (task.finalTimer) clearTimeout(task.finalTimer);
    task.finalTimer = null;
    for (const p of task.procs) {
      if (p.restartTimer) clearTimeout(p.restartTimer);
      p.restartTimer = null;
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
        this.ended(t, p, `process "${p.name}" ended without an exit status (no exit file)`);
      }
    }
  }

  private finish(task: Task): void {
    if (task.finished || this.detached) return;
    task.finished = true;
    this.clearTimers(task);
    this.tasks.delete(task.spec.taskId);
    this.emit(this.exitEvent(task));
    task.resolveDone();
  }

  private exitEvent(task: Task): ExecutorEvent {
    const taskId = task.spec.taskId;
    const outcome = task.outcome ?? { kind: "finished" };
    const how = task.killStep !== null ? ` (ended by ${task.killStep})` : "";
    // Exit status as observed: the first process (in spec order) that did not exit 0.
    const firstBad = task.procs.find((q) => q.exited && !q.unknown && q.runs > 0 && (q.code !== 0 || q.signal !== null));
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
        const runs = p.spec.maxFailures !== 1 ? ` (failed ${p.failures} of ${p.spec.maxFailures} allowed times)` : "";
        const message =
          p.signal !== null
            ? `process "${p.name}" was killed by signal ${p.signal}${runs}`
            : `process "${p.name}" exited with code ${p.code}${runs}`;
        return { type: "exited", taskId, exitCode: exitCodeOf(p), signal: p.signal, message, killed: false };
      }
      case "terminated":
      case "killed": {
        // Ended by the agent (FAILED with its reason) or by a kill (KILLED): the step that ended it.
        const killed = outcome.kind === "killed";
        const why = killed ? (outcome.why ?? "killed by scheduler") : outcome.message;
        return {
          type: "exited",
          taskId,
          exitCode: firstBad ? exitCodeOf(firstBad) : killed ? 0 : 1,
          signal: firstBad ? firstBad.signal : null,
          message: `${why}${how}`,
          killed,
        };
      }
    }
  }
}

/** An outcome as checkpointed. */
function outcomeRecord(o: Outcome | null): OutcomeRecord | null {
  if (o === null) return null;
  switch (o.kind) {
    case "failed":
      return { kind: "failed", process: o.proc.name };
    case "killed":
      return o.why === undefined ? { kind: "killed" } : { kind: "killed", message: o.why };
    case "finished":
      return { kind: "finished" };
    default:
      return { kind: o.kind, message: o.message };
  }
}

function outcomeFrom(r: OutcomeRecord | null, task: Task): Outcome | null {
  if (r === null) return null;
  switch (r.kind) {
    case "failed": {
      const proc = task.procs.find((p) => p.name === r.process);
      return proc ? { kind: "failed", proc } : { kind: "terminated", message: `process "${r.process}" failed` };
    }
    case "killed":
      return r.message === undefined ? { kind: "killed" } : { kind: "killed", why: r.message };
    case "finished":
      return { kind: "finished" };
    default:
      return { kind: r.kind, message: r.message ?? "" };
  }
}

/**
 * POSTs to a task's lifecycle endpoint: true once an HTTP response came back (whatever its
 * status), false when nothing answered (refused, reset, timed out). Never throws.
 */
function postQuietly(port: number, endpoint: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: endpoint, method: "POST", timeout: Math.max(100, Math.min(timeoutMs, 5000)), agent: false },
      (res) => {
        res.resume();
        resolve(true);
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function exitCodeOrNull(p: Proc): number | null {
  if (p.runs === 0 || (!p.exited && p.state === "RUNNING")) return null;
  if (p.signal === null && p.code === null) return null;
  return exitCodeOf(p);
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
