// Who writes snapshots, and when. As the HDFS standby NameNode checkpoints for the active one, a
// standby writes them: it holds the same folded state as the leader, and encoding a large state
// takes seconds, which on the leader's event loop would delay placements, lease renewals and
// agents' replies (measured: a leader paused ~3 s at 250k tasks and lost its 3 s lease).
//
// - When: a snapshot is due each time the folded event count crosses a multiple of
//   --snapshot-every. Every replica folds the same records, so all agree on the points. A replica
//   that started more than --snapshot-every events past its snapshot (or from genesis) finds one
//   due at its first fold after starting.
// - Who: the standby with the smallest id among the standbys fresh on the members board. It stops
//   folding while it encodes (so the state holds still), encoding a few milliseconds at a time so
//   its event loop keeps turning (lease polls, its member entry); folding resumes before the
//   upload. If it wins the lease meanwhile, it drops the snapshot and takes over.
// - The leader writes only when no standby is fresh on the board (a lone scheduler, or one with
//   no board), deciding on a fresh read of the board; then encoding pauses it, ~3 s per 250k
//   tasks. The snapshot is of the state as it is then: a snapshot may cover any sequence.
// Views of the board can differ for a moment, so a point may get two writers (the same state,
// stored twice under one name) or none (the next point has one). Either is harmless: a snapshot is
// only a shortcut.

import type { MemberStatus } from "./members.js";
import type { Steps } from "../replay/steps.js";

/** A member entry older than this is not counted (entries are refreshed every second). */
export const MEMBER_FRESH_MS = 5000;

/** How many snapshot points lie at or below `eventCount`: a snapshot is due when this grows. */
export function snapshotPoint(eventCount: number, every: number): number {
  return every > 0 ? Math.floor(eventCount / every) : 0;
}

/** Standbys on the board whose entry is fresh, by id. */
export function freshStandbys(members: readonly MemberStatus[], now: number): string[] {
  return members
    .filter((m) => m.role === "standby" && now - m.ts < MEMBER_FRESH_MS)
    .map((m) => m.id)
    .sort();
}

/**
 * Whether this replica writes the snapshot that is due. `members` is null without a board: then
 * the leader writes and standbys do not (they cannot know of each other).
 */
export function writesSnapshot(
  me: { id: string; role: "leader" | "standby" },
  members: readonly MemberStatus[] | null,
  now: number,
): boolean {
  if (members === null) return me.role === "leader";
  const standbys = freshStandbys(members, now).filter((id) => id !== me.id);
  if (me.role === "leader") return standbys.length === 0;
  return standbys.every((id) => me.id < id);
}

/**
 * Run sliced work (see runSteps) `sliceMs` at a time, letting the event loop turn between slices.
 * Resolves with the result, or null once `signal` is aborted (checked between slices).
 */
export async function runSliced<T>(steps: Steps<T>, opts: { sliceMs: number; signal?: AbortSignal }): Promise<T | null> {
  for (;;) {
    if (opts.signal?.aborted) {
      steps.return(undefined as never);
      return null;
    }
    const end = performance.now() + opts.sliceMs;
    do {
      const r = steps.next();
      if (r.done) return r.value;
    } while (performance.now() < end);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
