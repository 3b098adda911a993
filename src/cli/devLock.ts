// The lock of a `roost dev` directory: <dir>/dev.lock, created atomically (O_CREAT|O_EXCL), holds
// {pid, starttime, startedAt} of the `roost dev` that owns the directory. A second `roost dev`
// there refuses at once and touches nothing. A stale lock (its pid dead, or reused by another
// process, or not a `roost dev`) is taken over; takeovers are serialised by <dir>/dev.lock.takeover
// so that two starters cannot both take the same stale lock.

import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

export class DevLockHeldError extends Error {
  override name = "DevLockHeldError";
  constructor(readonly pid: number) {
    super(`roost dev (pid ${pid}) already runs here`);
  }
}

export interface DevLock {
  readonly path: string;
  /** Remove the lock if it is still ours. Synchronous: also safe in an 'exit' handler. */
  release(): void;
}

interface Holder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells a reused pid apart. */
  starttime?: string;
  startedAt?: string;
}

/** The start time of a process (clock ticks since boot), or null when it is gone or unknown. */
function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Does this process look like `roost dev`? (true when /proc cannot tell) */
function looksLikeRoostDev(pid: number): boolean {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return true;
  }
  return args.includes("dev") && args.some((a) => /roost(\.js)?$|cli\/main\.[jt]s$/.test(a));
}

function holderAlive(h: Holder): boolean {
  if (!Number.isSafeInteger(h.pid) || h.pid <= 0 || h.pid === process.pid || !alive(h.pid)) return false;
  const st = procStartTime(h.pid);
  if (h.starttime !== undefined && st !== null) return st === h.starttime && looksLikeRoostDev(h.pid);
  return looksLikeRoostDev(h.pid);
}

function readLock(path: string): { text: string; holder: Holder | null } | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  try {
    const h = JSON.parse(text) as Holder;
    return { text, holder: typeof h?.pid === "number" ? h : null };
  } catch {
    return { text, holder: null };
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Take the lock of `dir` (which must exist), or throw DevLockHeldError naming its holder. */
export async function acquireDevLock(dir: string): Promise<DevLock> {
  const path = join(dir, "dev.lock");
  const takeoverPath = `${path}.takeover`;
  const me: Holder = { pid: process.pid, starttime: procStartTime(process.pid) ?? undefined, startedAt: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const fd = openSync(path, "wx");
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      return {
        path,
        release() {
          try {
            if (readFileSync(path, "utf8") === text) unlinkSync(path);
          } catch {
            // gone already
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const seen = readLock(path);
    if (seen === null) continue; // released meanwhile: try again
    if (seen.holder === null) {
      // Empty or half written: its writer is between open and write. Unless it has been so for
      // a while (a crash in that instant), wait for it.
      if (ageMs(path) < 2000) {
        await sleep(20);
        continue;
      }
    } else if (holderAlive(seen.holder)) {
      throw new DevLockHeldError(seen.holder.pid);
    }
    // Stale: take it over, one starter at a time.
    let tfd: number;
    try {
      tfd = openSync(takeoverPath, "wx");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (ageMs(takeoverPath) > 5000) {
        try {
          unlinkSync(takeoverPath); // left by a starter that died in its takeover
        } catch {
          // someone else removed it
        }
      }
      await sleep(20);
      continue;
    }
    try {
      const again = readLock(path);
      if (again !== null && again.text === seen.text) unlinkSync(path);
    } finally {
      closeSync(tfd);
      unlinkSync(takeoverPath);
    }
  }
  throw new Error(`could not take the lock ${path}`);
}
