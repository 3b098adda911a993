// The /proc library (Linux): what the executor and its reaper know of processes.
//
// - A process is identified across pid reuse by its pid and its start time (/proc/<pid>/stat field
//   22, clock ticks since boot); zombies count as dead.
// - A tree is found through ppid links (descendants), process groups and sessions, and the
//   launch marker variable (RUN_MARKER_ENV) the executor puts in every process's environment,
//   read from /proc/<pid>/environ: so a process that left its group (setsid) or was orphaned
//   (reparented to init) still belongs to its tree.
// - ProcTable is one read of /proc, indexed for every tree the reaper kills at one tick.

import * as fs from "node:fs";

/** Environment variable carrying a per-launch marker, used to find escaped descendants. */
export const RUN_MARKER_ENV = "ROOST_EXECUTOR_RUN";

/** What /proc/<pid>/stat says of a process, the fields used here. */
export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Start time in clock ticks since boot: with the pid, identifies a process across pid reuse. */
  starttime: number;
}

/** /proc can be read here (Linux); elsewhere liveness falls back to kill(pid, 0). */
export const HAVE_PROC = fs.existsSync("/proc/self/stat");

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
    state: f[0]!,
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    starttime: Number(f[19]),
  };
}

export function readStat(pid: number): ProcStat | null {
  try {
    return parseStat(pid, fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/** A zombie or a dead process (stat state Z, X or x). */
export function isDeadState(state: string): boolean {
  return state === "Z" || state === "X" || state === "x";
}

/** One scan of /proc: every process in it, zombies excluded. */
export function scanProc(): ProcStat[] {
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

/** Every process below `roots` in the parent → children index, each once. */
export function descendantsIn(children: Map<number, ProcStat[]>, roots: Iterable<number>): ProcStat[] {
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
  return descendantsIn(childrenOf(scanProc()), [pid]).map((p) => p.pid);
}

/** Pids of the live (non-zombie) processes whose environment holds NAME=VALUE (tests, benches). */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const out: number[] = [];
  for (const p of scanProc()) {
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
export interface MarkerEntry {
  starttime: number;
  markers: readonly string[];
}

/**
 * One read of /proc shared by every reap of a reaper tick: the live processes, indexed by pid,
 * parent, process group and session, and (built on first use) by launch marker.
 */
export class ProcTable {
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
