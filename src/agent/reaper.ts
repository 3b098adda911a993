// The reaper: kills the executor's process trees, every tree being killed served by one tick.
//
// - A kill sends SIGTERM to every process group and every process of the tree, waits up to the
//   grace period, then SIGKILLs whatever is left; the tree is done only when nothing of it is
//   alive. The tree is found three ways (proc.ts), so that a process that left the group (setsid)
//   or was orphaned (reparented to init) is still found: ppid links from the root pids,
//   membership of a root's process group, and the per-launch marker in /proc/<pid>/environ.
// - Killing is polled by ONE reaper for all the trees being killed, not one loop per task: each
//   tick reads /proc once (ProcTable: pid → ppid, group, session, start time) and every tree's
//   reap consults that table, so killing 1,000 tasks costs one /proc scan per tick, not 1,000.
//   (One timer per task also starved the event loop: once their scans took longer than the poll
//   interval, Node stayed in its timers phase and never polled I/O, so child exits, the very
//   events the reaps waited for, were never delivered.) The marker variable is read from
//   /proc/<pid>/environ once per process (cached by pid + start time), not once per task per
//   tick. Ticks run every POLL_MS while trees change, back off to POLL_MAX_MS while nothing does
//   (a grace period running out), come sooner at a grace deadline or when a root exits, and never
//   closer together than REAP_LOAD_FACTOR times the last tick's cost, so that reaping cannot take
//   over the event loop (agent heartbeats).
// - Nothing runs while no tree is being killed.
//
// The reaper knows a tree only by its roots and its reap bookkeeping (ReapedTree); what a root's
// end means for the task is the executor's (hooks).

import { descendantsIn, HAVE_PROC, type MarkerEntry, type ProcStat, ProcTable, scanProc } from "./proc.js";

/** Reaper tick interval while trees change (processes dying, the SIGKILL phase beginning). */
const POLL_MS = 50;
/** The interval backs off (doubling) up to this while nothing changes. */
const POLL_MAX_MS = 200;
/** Delay of the tick a root's exit brings forward (coalescing a burst of exits into one tick). */
const NUDGE_MS = 5;
/** Ticks are at least this many times their own cost apart: reaping takes at most ~1/(1+k) of the loop. */
const REAP_LOAD_FACTOR = 3;

/** A root of a tree: a wrapper process the executor launched (its child) or adopted. */
export interface ReapedRoot {
  /** The wrapper: leader of the process group. Null: not spawned. */
  pid: number | null;
  /** The wrapper's start time (clock ticks since boot), 0 if unknown. */
  startTime: number;
  exited: boolean;
  /** Re-attached from a checkpoint: not our child, so its end is seen in /proc, not as an exit event. */
  adopted: boolean;
}

/** What the reaper reads and keeps of a tree (the executor's task carries these fields). */
export interface ReapedTree<R extends ReapedRoot = ReapedRoot> {
  procs: R[];
  /** The launch marker (RUN_MARKER_ENV) carried by every process of the tree. */
  marker: string;
  /** Start time (clock ticks) of the earliest root: nothing older can belong to the tree. */
  minStart: number;
  /** Every process ever seen in the tree, pid → starttime. */
  tracked: Map<number, number>;
  /** Spawning is settled ("started" emitted, or the launch failed), or the task was adopted. */
  launchSettled: boolean;
  /** The end of the tree was reported: the reaper lets go of it. */
  finished: boolean;
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
}

export interface ReaperHooks<T extends ReapedTree> {
  /** An adopted root was seen gone at a tick: mark it exited (with its exit status, if any). */
  adoptedRootGone(tree: T, root: T["procs"][number]): void;
  /** Nothing of the tree is alive any more (and its launch is settled): report its end. */
  done(tree: T): void;
}

const EMPTY_TABLE = new ProcTable([]);

export class Reaper<T extends ReapedTree> {
  /** Trees being reaped, all served by one reaper tick (tick). */
  private readonly reaping = new Set<T>();
  private reapTimer: NodeJS.Timeout | null = null;
  /** When the pending reaper tick is due (Date.now() time), Infinity if none. */
  private reapAt = Infinity;
  private reapInterval = POLL_MS;
  /** Earliest time the next tick may run at its own pace (REAP_LOAD_FACTOR × the last one's cost). */
  private reapNotBefore = 0;
  /** Launch markers read from /proc/<pid>/environ, by pid, while trees are being reaped. */
  private readonly markerCache = new Map<number, MarkerEntry>();
  /** Let go of everything (stop()): no more ticks, signals or reports. */
  private stopped = false;

  constructor(private readonly hooks: ReaperHooks<T>) {}

  /** Starts (or hurries) the reap of the tree; reports it done once nothing is left. */
  reap(task: T, graceMs: number): void {
    if (this.stopped || task.finished) return;
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

  /** A root of a reaped tree exited: tick again soon, at the fast pace, within the load limit. */
  nudge(): void {
    this.reapInterval = POLL_MS;
    this.scheduleReap(Math.max(Date.now() + NUDGE_MS, this.reapNotBefore));
  }

  /** Lets go of every tree: no more ticks (their processes are left alone). */
  stop(): void {
    this.stopped = true;
    if (this.reapTimer) clearTimeout(this.reapTimer);
    this.reapTimer = null;
    this.reapAt = Infinity;
  }

  /** Makes sure a reaper tick runs by `at` (Date.now() time). */
  private scheduleReap(at: number): void {
    if (this.stopped || this.reaping.size === 0) return;
    if (this.reapTimer && this.reapAt <= at) return;
    if (this.reapTimer) clearTimeout(this.reapTimer);
    this.reapAt = at;
    this.reapTimer = setTimeout(() => this.reapTick(), Math.max(0, at - Date.now()));
  }

  /**
   * One reaper tick: reads /proc once, then advances the reap of every tree being killed
   * (signals, SIGKILL past its deadline), reports those with nothing left done, and
   * schedules the next tick while any remain.
   */
  private reapTick(): void {
    this.reapTimer = null;
    this.reapAt = Infinity;
    if (this.stopped || this.reaping.size === 0) return;
    const t0 = performance.now();
    const now = Date.now();
    const table = HAVE_PROC ? new ProcTable(scanProc()) : EMPTY_TABLE;
    let markersSince = Infinity;
    for (const task of this.reaping) if (task.minStart > 0) markersSince = Math.min(markersSince, task.minStart);
    let changed = false;
    for (const task of [...this.reaping]) {
      if (task.finished || this.stopped) {
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
        this.hooks.done(task);
      }
    }
    if (this.stopped) return;
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
  private reapStep(task: T, table: ProcTable, now: number, markersSince: number): "done" | "changed" | "same" {
    let changed = false;
    if (!task.killPhase && now >= task.killDeadline) {
      task.killPhase = true;
      changed = true;
    }
    // Adopted roots: their ends are seen here (a wrapper SIGKILLed by us leaves no exit file).
    for (const p of task.procs) {
      if (!p.adopted || p.exited || table.alive(p.pid, p.startTime)) continue;
      this.hooks.adoptedRootGone(task, p);
      changed = true;
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
  private scan(task: T, table: ProcTable, markersSince: number): ProcStat[] {
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
}

/**
 * Pids that anchor the tree (process group and session leaders, ppid roots). A launched root
 * counts even after it exited (it was our child: its pid was ours until just now); an adopted
 * root only while it is alive and verified, since its pid may have been reused meanwhile.
 */
function treeRoots(task: ReapedTree): Set<number> {
  const out = new Set<number>();
  for (const p of task.procs) if (p.pid !== null && (!p.adopted || !p.exited)) out.add(p.pid);
  return out;
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
