// Resource isolation for the agent's tasks: each task runs in its own memory and cpu cgroup, with
// the task's ramMb as a hard memory limit and its cpus as cpu shares plus a CFS quota (Mesos's
// cgroups isolators, much reduced). cgroups v2 is used where the cgroup2 mount at the root has the
// memory controller, else cgroups v1 where a memory hierarchy is mounted and writable, else
// nothing, with the reason in IsolationInfo.detail (one line, for operators).
//
// What taught this: ramMb and cpus were numbers the scheduler added up and nothing enforced. A
// task that asked for 128 MB could take the host's memory, and then the kernel's global OOM killer
// chose a victim anywhere on the host: another task, or the agent. With a limit per task the OOM
// kill stays inside the task that broke it, and oomKills() lets the agent say so ("killed by the
// kernel's OOM killer: memory limit 128 MB"), instead of an unexplained SIGKILL.
//
// Rules the kernel enforces, each of which broke (or would break) a naive version:
// - v1 checks memory.limit_in_bytes <= memory.memsw.limit_in_bytes on every write. Raising both
//   therefore needs memsw first, lowering needs limit_in_bytes first (the other order is EINVAL;
//   seen on this project's 6.x test kernel). Without the memsw limit, where swap accounting is on,
//   a task can swap past its limit.
// - A v1 limit below one page rounds down to 0 (every charge then fails): limits are rounded up
//   to whole 4 KiB pages.
// - v2 has "no internal processes": a cgroup with processes cannot enable controllers for its
//   children. Nothing is ever put into roost/ or roost/<agent>/; each task is a leaf below them.
// - A cgroup directory is full of control files: a task id such as "tasks" or "cgroup.procs"
//   names one of them. Such a task is refused rather than writing into the wrong place.
//
// Layout: <controller>/roost/<agent>/<task> (v1: <root>/memory/... and <root>/cpu/...; v2:
// <root>/roost/...), agent and task escaped with safeFileName (sandbox.ts). The layout is a
// function of agent and task id only, so an agent restarted after kill -9 finds (open) or
// re-prepares the cgroups of the tasks it adopts. The cpu controller is used where available; a
// host with memory but no cpu controller still gets memory limits (the detail says so).
//
// Everything is plain synchronous fs work on the cgroup filesystem; nothing runs in between.

import * as fs from "node:fs";
import * as path from "node:path";
import { safeFileName } from "./sandbox.js";

type IsolationMode = "cgroups-v2" | "cgroups-v1" | "none";

interface IsolationInfo {
  mode: IsolationMode;
  /**
   * One line for operators: what is used, or why nothing is ("no writable cgroup memory
   * controller at /sys/fs/cgroup/memory: EACCES ...").
   */
  detail: string;
}

export interface TaskCgroup {
  /**
   * cgroup.procs files a process must write its own pid into before it execs the task's command
   * (the executor's shell wrapper does `echo $$ > FILE` for each); children inherit the cgroup.
   */
  readonly procsFiles: string[];
  /**
   * OOM kills inside this task's cgroup so far (v2: memory.events "oom_kill"; v1:
   * memory.oom_control "oom_kill"; a kernel without that line counts 0: memory.failcnt > 0 only
   * means the limit was hit, not that anything was killed). The highest count seen is kept, so it
   * still answers after destroy().
   */
  oomKills(): number;
  /** Current memory use in bytes (v2 memory.current, v1 memory.usage_in_bytes), or null if unreadable. */
  memoryBytes(): number | null;
  /** Pids currently in the cgroup (cgroup.procs), for finding a task's processes. */
  pids(): number[];
  /** Removes the cgroup directories (rmdir; processes must be gone). Never throws; returns false if something is left (e.g. EBUSY). Safe to call twice. */
  destroy(): boolean;
}

export interface Isolator {
  readonly info: IsolationInfo;
  /**
   * Creates (or re-opens, idempotently: an agent restarted after kill -9 re-attaches to its
   * tasks) the task's cgroup and sets its limits; null when mode is "none".
   * ramMb → v2 memory.max (and memory.swap.max 0 where it exists); v1 memory.limit_in_bytes and,
   * where the file exists, memory.memsw.limit_in_bytes to the same value (in the order the kernel
   * accepts). cpus → v2 cpu.weight clamp(round(cpus*100), 1, 10000) and cpu.max "<quota> 100000";
   * v1 cpu.shares clamp(round(cpus*1024), 2, 262144), cpu.cfs_period_us 100000 and
   * cpu.cfs_quota_us; quota = max(1000, round(cpus*100000)) µs.
   * Throws (with the file and the kernel's answer) when the cgroup cannot be made or a limit
   * cannot be set: a task must not silently run without the limits it was promised.
   */
  prepare(taskId: string, resources: { cpus: number; ramMb: number }): TaskCgroup | null;
  /** The cgroup of a task prepared before (e.g. by an earlier agent), without changing limits; null if none exists. */
  open(taskId: string): TaskCgroup | null;
  /**
   * Removes this agent's task cgroups other than those of `keep` that hold no process: what tasks
   * that ended while no agent watched left behind (an agent killed -9, then restarted). Returns
   * the names removed. Never throws.
   */
  sweep(keep: ReadonlySet<string>, minAgeMs?: number): string[];
  /** Removes this agent's own cgroup directories if they are empty (an agent stopping). Never throws. */
  close(): void;
}

/** How old a task cgroup must be before sweep() takes it for an orphan. */
const SWEEP_MIN_AGE_MS = 60_000;

/** sweep() over the agent directories of an isolator. */
function sweepAgentDirs(agentDirs: readonly string[], keep: ReadonlySet<string>, minAgeMs = SWEEP_MIN_AGE_MS): string[] {
  const keepNames = new Set([...keep].map((t) => safeFileName(t)));
  const removed = new Set<string>();
  for (const dir of agentDirs) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory() || keepNames.has(e.name)) continue;
      const cg = path.join(dir, e.name);
      // A cgroup made a moment ago may belong to a launch under way (another agent of the same
      // id, as tests run them): only one older than SWEEP_MIN_AGE_MS is an orphan.
      const st = fs.statSync(cg, { throwIfNoEntry: false });
      if (!st || Date.now() - st.mtimeMs < minAgeMs) continue;
      if (removeCgroupTree(cg)) removed.add(e.name);
    }
  }
  return [...removed];
}

function closeAgentDirs(agentDirs: readonly string[]): void {
  for (const dir of agentDirs) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // Not empty (a task left running), or gone: either way nothing to do.
    }
  }
}

export interface IsolatorOptions {
  /** Where cgroup filesystems are mounted. Default /sys/fs/cgroup. */
  root?: string;
  /** A path segment unique to this agent, e.g. its id (escaped with safeFileName); tasks go under <controller>/roost/<agent>/<task>. */
  agent: string;
  /** Force "none" (roost agent --no-isolation); detail says it was turned off. */
  disabled?: boolean;
}

const DEFAULT_ROOT = "/sys/fs/cgroup";
/** The directory under each controller that holds every agent's cgroups. */
const ROOST_DIR = "roost";
const MIB = 1024 * 1024;
const PAGE = 4096;
const CFS_PERIOD_US = 100_000;
/** The kernel refuses a CFS quota under 1 ms. */
const MIN_CFS_QUOTA_US = 1000;
/** v1 cpu.shares range (the kernel clamps to it silently; we clamp so the file says what we wrote). */
const MIN_SHARES = 2;
const MAX_SHARES = 262_144;
/** v2 cpu.weight range. */
const MIN_WEIGHT = 1;
const MAX_WEIGHT = 10_000;

/** An error as one line: the kernel's answer ("EBUSY: resource busy or locked, ..."). */
function why(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Reads a control file, or null if it cannot be read. */
function readControl(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/**
 * Writes a value to a control file that must exist: opened write-only, never created or
 * truncated (cgroupfs files are not regular files). Throws with the file, the value and the
 * kernel's answer.
 */
function writeControl(file: string, value: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
  } catch (err) {
    throw new Error(`cannot open ${file}: ${why(err)}`, { cause: err });
  }
  try {
    fs.writeSync(fd, value);
  } catch (err) {
    throw new Error(`cannot write ${JSON.stringify(value)} to ${file}: ${why(err)}`, { cause: err });
  } finally {
    fs.closeSync(fd);
  }
}

function exists(file: string): boolean {
  return fs.existsSync(file);
}

/**
 * Makes a cgroup directory (and its parents) unless it exists. A name that exists but is not a
 * directory is a control file of the parent cgroup: refused.
 */
function makeCgroupDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if (fs.lstatSync(dir, { throwIfNoEntry: false }) === undefined) throw new Error(`cannot create cgroup ${dir}: ${why(err)}`);
  }
  if (!fs.lstatSync(dir).isDirectory()) throw new Error(`cannot use ${dir} as a cgroup: a control file of its parent has that name`);
  if (!exists(path.join(dir, "cgroup.procs"))) throw new Error(`${dir} is not a cgroup (no cgroup.procs in it)`);
}

/** A cgroup directory that exists (a directory with a cgroup.procs), else false. */
function isCgroupDir(dir: string): boolean {
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  return st?.isDirectory() === true && exists(path.join(dir, "cgroup.procs"));
}

/**
 * rmdir of a cgroup and every cgroup below it (deepest first; a task running as root may have
 * made some). ENOENT counts as removed. Never throws; false if anything is left.
 */
function removeCgroupTree(dir: string): boolean {
  const order: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    order.push(d);
    try {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(path.join(d, e.name));
    } catch {
      // Gone already, or unreadable: the rmdir below says which.
    }
  }
  let ok = true;
  for (const d of order.reverse()) {
    try {
      fs.rmdirSync(d);
    } catch (err) {
      if (errCode(err) !== "ENOENT") ok = false;
    }
  }
  return ok;
}

/** The number after `key ` on a line of a flat-keyed control file, or null. */
function keyedValue(text: string | null, key: string): number | null {
  if (text === null) return null;
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return null;
}

function parseNumber(text: string | null): number | null {
  if (text === null) return null;
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

function checkResources(taskId: string, r: { cpus: number; ramMb: number }): void {
  if (!(Number.isFinite(r.cpus) && r.cpus > 0)) throw new RangeError(`task ${taskId}: cpus must be a positive number (got ${r.cpus})`);
  if (!(Number.isFinite(r.ramMb) && r.ramMb > 0)) throw new RangeError(`task ${taskId}: ramMb must be a positive number (got ${r.ramMb})`);
}

/** ramMb in bytes, rounded up to whole pages (a limit under one page would be 0). */
function memoryLimitBytes(ramMb: number): number {
  return Math.ceil((ramMb * MIB) / PAGE) * PAGE;
}

function cfsQuotaUs(cpus: number): number {
  return Math.max(MIN_CFS_QUOTA_US, Math.round(cpus * CFS_PERIOD_US));
}

class CgroupOfTask implements TaskCgroup {
  readonly procsFiles: string[];
  private maxOomKills = 0;

  constructor(
    private readonly version: 1 | 2,
    /** The memory cgroup (v2: the only one). */
    private readonly memoryDir: string,
    /** v1 only: the cpu cgroup, where the cpu controller is used. */
    private readonly cpuDir: string | null,
  ) {
    const dirs = cpuDir === null ? [memoryDir] : [memoryDir, cpuDir];
    this.procsFiles = dirs.map((d) => path.join(d, "cgroup.procs"));
  }

  oomKills(): number {
    const file = this.version === 2 ? "memory.events" : "memory.oom_control";
    const n = keyedValue(readControl(path.join(this.memoryDir, file)), "oom_kill");
    if (n !== null && n > this.maxOomKills) this.maxOomKills = n;
    return this.maxOomKills;
  }

  memoryBytes(): number | null {
    return parseNumber(readControl(path.join(this.memoryDir, this.version === 2 ? "memory.current" : "memory.usage_in_bytes")));
  }

  pids(): number[] {
    const pids = new Set<number>();
    for (const file of this.procsFiles) {
      for (const line of (readControl(file) ?? "").split("\n")) {
        const pid = Number(line.trim());
        if (line.trim() !== "" && Number.isSafeInteger(pid) && pid > 0) pids.add(pid);
      }
    }
    return [...pids].sort((a, b) => a - b);
  }

  destroy(): boolean {
    // Read last so that oomKills() still answers once the files are gone.
    this.oomKills();
    let ok = removeCgroupTree(this.memoryDir);
    if (this.cpuDir !== null) ok = removeCgroupTree(this.cpuDir) && ok;
    return ok;
  }
}

class NoIsolation implements Isolator {
  constructor(readonly info: IsolationInfo) {}
  prepare(): TaskCgroup | null {
    return null;
  }
  open(): TaskCgroup | null {
    return null;
  }
  sweep(): string[] {
    return [];
  }
  close(): void {}
}

/** cgroups v2: <root>/roost/<agent>/<task>, memory (and cpu where it can be enabled). */
class V2Isolator implements Isolator {
  readonly info: IsolationInfo;

  constructor(
    private readonly root: string,
    private readonly agentDir: string,
    private readonly cpu: boolean,
    cpuNote: string,
  ) {
    this.info = {
      mode: "cgroups-v2",
      detail:
        `cgroups v2 at ${agentDir}: memory.max` +
        (exists(path.join(agentDir, "memory.swap.max"))
          ? " and memory.swap.max 0"
          : " (no memory.swap.max: a task may swap past its limit)") +
        `${cpu ? ", cpu.weight and cpu.max" : ""} per task${cpuNote}`,
    };
  }

  /**
   * Makes <root>/roost/<agent> and enables memory (and cpu) for the children of the root, of
   * roost and of the agent's cgroup; returns why cpu could not be enabled, or null. Throws when
   * memory cannot be. Done at start and again at every prepare (cheap: the directories exist and
   * the controllers are listed), so a parent removed meanwhile is made again.
   */
  static enable(root: string, agentDir: string, wantCpu: boolean): { cpuProblem: string | null } {
    makeCgroupDir(agentDir);
    const levels = [root, path.dirname(agentDir), agentDir];
    let cpuProblem: string | null = wantCpu ? null : "no cpu controller";
    for (const level of levels) {
      const file = path.join(level, "cgroup.subtree_control");
      const enabled = (readControl(file) ?? "").split(/\s+/);
      if (!enabled.includes("memory")) {
        try {
          writeControl(file, "+memory");
        } catch (err) {
          const busy = errCode((err as Error).cause) === "EBUSY";
          throw new Error(`${why(err)}${busy ? ` (${level} has processes of its own: cgroups v2 allows no internal processes)` : ""}`);
        }
      }
      if (cpuProblem === null && !enabled.includes("cpu")) {
        try {
          writeControl(file, "+cpu");
        } catch (err) {
          cpuProblem = why(err);
        }
      }
    }
    return { cpuProblem };
  }

  private taskDir(taskId: string): string {
    return path.join(this.agentDir, safeFileName(taskId));
  }

  prepare(taskId: string, resources: { cpus: number; ramMb: number }): TaskCgroup {
    checkResources(taskId, resources);
    V2Isolator.enable(this.root, this.agentDir, this.cpu);
    const dir = this.taskDir(taskId);
    makeCgroupDir(dir);
    writeControl(path.join(dir, "memory.max"), String(memoryLimitBytes(resources.ramMb)));
    if (exists(path.join(dir, "memory.swap.max"))) writeControl(path.join(dir, "memory.swap.max"), "0");
    if (this.cpu) {
      const weight = Math.min(MAX_WEIGHT, Math.max(MIN_WEIGHT, Math.round(resources.cpus * 100)));
      writeControl(path.join(dir, "cpu.weight"), String(weight));
      writeControl(path.join(dir, "cpu.max"), `${cfsQuotaUs(resources.cpus)} ${CFS_PERIOD_US}`);
    }
    return new CgroupOfTask(2, dir, null);
  }

  open(taskId: string): TaskCgroup | null {
    const dir = this.taskDir(taskId);
    return isCgroupDir(dir) ? new CgroupOfTask(2, dir, null) : null;
  }

  sweep(keep: ReadonlySet<string>, minAgeMs?: number): string[] {
    return sweepAgentDirs([this.agentDir], keep, minAgeMs);
  }

  close(): void {
    closeAgentDirs([this.agentDir]);
  }
}

/** cgroups v1: <root>/memory/roost/<agent>/<task> and <root>/cpu/roost/<agent>/<task>. */
class V1Isolator implements Isolator {
  readonly info: IsolationInfo;

  constructor(
    private readonly memoryAgentDir: string,
    /** null when the cpu hierarchy is absent or not writable. */
    private readonly cpuAgentDir: string | null,
    cpuNote: string,
  ) {
    const cpu = cpuAgentDir === null ? cpuNote : `; cpu.shares and CFS quota per task at ${cpuAgentDir}`;
    this.info = {
      mode: "cgroups-v1",
      detail:
        `cgroups v1: memory.limit_in_bytes` +
        (exists(path.join(memoryAgentDir, "memory.memsw.limit_in_bytes"))
          ? " and memory.memsw.limit_in_bytes"
          : " (no memsw: swap is not accounted, a task may swap past its limit)") +
        ` per task at ${memoryAgentDir}${cpu}`,
    };
  }

  /** Makes <memory>/roost/<agent>, hierarchical (use_hierarchy: errors ignored, newer kernels are always hierarchical). */
  static makeMemoryAgentDir(agentDir: string): void {
    for (const dir of [path.dirname(agentDir), agentDir]) {
      makeCgroupDir(dir);
      try {
        writeControl(path.join(dir, "memory.use_hierarchy"), "1");
      } catch {
        // EBUSY once it has children, EINVAL where it cannot be changed: either way as good as it gets.
      }
    }
  }

  private memoryTaskDir(taskId: string): string {
    return path.join(this.memoryAgentDir, safeFileName(taskId));
  }

  private cpuTaskDir(taskId: string): string | null {
    return this.cpuAgentDir === null ? null : path.join(this.cpuAgentDir, safeFileName(taskId));
  }

  prepare(taskId: string, resources: { cpus: number; ramMb: number }): TaskCgroup {
    checkResources(taskId, resources);
    V1Isolator.makeMemoryAgentDir(this.memoryAgentDir);
    const memDir = this.memoryTaskDir(taskId);
    makeCgroupDir(memDir);
    const limitFile = path.join(memDir, "memory.limit_in_bytes");
    const memswFile = path.join(memDir, "memory.memsw.limit_in_bytes");
    const bytes = memoryLimitBytes(resources.ramMb);
    const value = String(bytes);
    if (exists(memswFile)) {
      // The kernel keeps limit <= memsw at every write: raise memsw first, lower limit first.
      const current = parseNumber(readControl(limitFile));
      if (current !== null && bytes > current) {
        writeControl(memswFile, value);
        writeControl(limitFile, value);
      } else {
        writeControl(limitFile, value);
        writeControl(memswFile, value);
      }
    } else {
      writeControl(limitFile, value);
    }
    const cpuDir = this.cpuTaskDir(taskId);
    if (cpuDir !== null) {
      makeCgroupDir(cpuDir);
      const shares = Math.min(MAX_SHARES, Math.max(MIN_SHARES, Math.round(resources.cpus * 1024)));
      writeControl(path.join(cpuDir, "cpu.shares"), String(shares));
      writeControl(path.join(cpuDir, "cpu.cfs_period_us"), String(CFS_PERIOD_US));
      writeControl(path.join(cpuDir, "cpu.cfs_quota_us"), String(cfsQuotaUs(resources.cpus)));
    }
    return new CgroupOfTask(1, memDir, cpuDir);
  }

  open(taskId: string): TaskCgroup | null {
    const memDir = this.memoryTaskDir(taskId);
    if (!isCgroupDir(memDir)) return null;
    const cpuDir = this.cpuTaskDir(taskId);
    return new CgroupOfTask(1, memDir, cpuDir !== null && isCgroupDir(cpuDir) ? cpuDir : null);
  }

  private agentDirs(): string[] {
    return this.cpuAgentDir === null ? [this.memoryAgentDir] : [this.memoryAgentDir, this.cpuAgentDir];
  }

  sweep(keep: ReadonlySet<string>, minAgeMs?: number): string[] {
    return sweepAgentDirs(this.agentDirs(), keep, minAgeMs);
  }

  close(): void {
    closeAgentDirs(this.agentDirs());
  }
}

/** cgroups v2 at root, or why not. */
function detectV2(root: string, agent: string): Isolator | string {
  const controllersFile = path.join(root, "cgroup.controllers");
  const text = readControl(controllersFile);
  if (text === null) return `no cgroup v2 mount at ${root} (no readable ${controllersFile})`;
  const controllers = text.trim().split(/\s+/);
  if (!controllers.includes("memory"))
    return `the cgroup v2 mount at ${root} has no memory controller (controllers: ${controllers.join(" ") || "none"})`;
  const agentDir = path.join(root, ROOST_DIR, agent);
  try {
    const { cpuProblem } = V2Isolator.enable(root, agentDir, controllers.includes("cpu"));
    return new V2Isolator(root, agentDir, cpuProblem === null, cpuProblem === null ? "" : `; no cpu limits: ${cpuProblem}`);
  } catch (err) {
    return `no writable cgroup v2 memory controller at ${root}: ${why(err)}`;
  }
}

/** cgroups v1 at <root>/memory (and <root>/cpu), or why not. */
function detectV1(root: string, agent: string): Isolator | string {
  const memoryRoot = path.join(root, "memory");
  if (!exists(path.join(memoryRoot, "memory.limit_in_bytes"))) return `no cgroup v1 memory hierarchy at ${memoryRoot}`;
  const memoryAgentDir = path.join(memoryRoot, ROOST_DIR, agent);
  try {
    V1Isolator.makeMemoryAgentDir(memoryAgentDir);
  } catch (err) {
    return `no writable cgroup v1 memory controller at ${memoryRoot}: ${why(err)}`;
  }
  const cpuRoot = path.join(root, "cpu");
  const cpuAgentDir = path.join(cpuRoot, ROOST_DIR, agent);
  if (!exists(path.join(cpuRoot, "cpu.cfs_quota_us")))
    return new V1Isolator(memoryAgentDir, null, `; no cpu limits: no cgroup v1 cpu hierarchy with CFS quota at ${cpuRoot}`);
  try {
    makeCgroupDir(cpuAgentDir);
  } catch (err) {
    return new V1Isolator(memoryAgentDir, null, `; no cpu limits: ${why(err)}`);
  }
  return new V1Isolator(memoryAgentDir, cpuAgentDir, "");
}

/**
 * Finds what this host offers (v2, else v1, else none) and makes the agent's cgroups
 * (<controller>/roost/<agent>), which is the probe: a cgroup that can be made can be used.
 */
export function createIsolator(opts: IsolatorOptions): Isolator {
  if (opts.disabled === true)
    return new NoIsolation({ mode: "none", detail: "isolation turned off (--no-isolation): tasks run without memory or cpu limits" });
  const root = path.resolve(opts.root ?? DEFAULT_ROOT);
  const agent = safeFileName(opts.agent);
  const v2 = detectV2(root, agent);
  if (typeof v2 !== "string") return v2;
  const v1 = detectV1(root, agent);
  if (typeof v1 !== "string") return v1;
  return new NoIsolation({ mode: "none", detail: `no resource isolation, tasks run without memory or cpu limits: ${v2}; ${v1}` });
}
