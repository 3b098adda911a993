// How much disk a task's sandbox uses, for enforcing diskMb (Mesos's disk/du isolator, reduced).
//
// Counted as du does: the blocks allocated (st_blocks * 512) to every entry of the tree, the
// directories themselves included, so a sparse file costs what it holds and a hard-linked file is
// counted once. Symlinks are not followed (a link to / costs its own few bytes, not the host).
//
// A sandbox can hold millions of files, and the question asked is only "over the limit or not":
// the walk stops as soon as the sum passes stopAbove, so checking a huge sandbox costs about as
// much as its first limit's worth of files. The walk is iterative (a deep tree cannot overflow
// the stack) and never throws: an entry that vanishes or cannot be read counts 0.

import * as fs from "node:fs";
import * as path from "node:path";

/** st_blocks is in 512-byte units whatever the filesystem's block size. */
const BLOCK = 512;

/**
 * Bytes a directory tree uses on disk (st_blocks * 512 of every entry, symlinks not followed),
 * stopping early once `stopAbove` bytes are exceeded (the partial sum is returned, already above
 * it). A missing or unreadable directory gives 0. Never throws.
 */
export function diskUsageBytes(dir: string, stopAbove = Number.POSITIVE_INFINITY): number {
  let total = 0;
  /** dev:ino of files with more than one link, counted once. */
  const linked = new Set<string>();
  const count = (file: string): fs.Stats | undefined => {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(file, { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (st === undefined) return undefined;
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (linked.has(key)) return st;
      linked.add(key);
    }
    total += st.blocks * BLOCK;
    return st;
  };
  const top = count(dir);
  if (top === undefined || !top.isDirectory()) return total;
  const stack = [dir];
  while (stack.length > 0 && total <= stopAbove) {
    const d = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const file = path.join(d, e.name);
      const st = count(file);
      if (total > stopAbove) return total;
      // Directories by their lstat (a Dirent of type unknown is lstat'ed anyway); never a symlink's target.
      if (st?.isDirectory() === true) stack.push(file);
    }
  }
  return total;
}
