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
//   no board), deciding on a fresh read of the board, and only a state of at most
//   LEADER_ENCODE_MAX_TASKS tasks: encoding pauses it (~15 µs per task on this project's
//   machines), and a pause near the lease's 3 s loses it. It did: at a cell's restart with
//   240k tasks, the first replica up led, found a snapshot due while the others still replayed
//   (not yet on the board), paused 3.7 s to encode it, and a standby took over. A larger state
//   waits for a standby, or for `roost snapshot write` (src/cli/snapshot.ts), and the leader says
//   so in its log. The snapshot is of the state as it is then: a snapshot may cover any sequence.
// Views of the board can differ for a moment, so a point may get two writers (the same state,
// stored twice under one name) or none (the next point has one). Either is harmless: a snapshot is
// only a shortcut.

import { runSteps, type Steps } from "../replay/steps.js";
import { encodeSnapshotSteps, SnapshotError, type EncodedSnapshot } from "../replay/snapshot.js";
import type { ClusterState } from "../replay/state.js";
import type { BaseSnapshotStore } from "../storage/snapshotStore.js";
import type { Logger } from "../util/logger.js";
import type { Clock } from "./clock.js";
import type { MemberStatus } from "./members.js";

/**
 * The most tasks a leader encodes a snapshot of on its own event loop: ~0.75 s at the ~15 µs per
 * task measured here (`bench snapshot`: 3.7 s at 240k), a quarter of the 3 s lease, leaving room
 * for a machine twice as slow before the pause reaches the lease's renewal margin.
 */
const LEADER_ENCODE_MAX_TASKS = 50_000;

/** A member entry older than this is not counted (entries are refreshed every second). */
const MEMBER_FRESH_MS = 5000;

/** How many snapshot points lie at or below `eventCount`: a snapshot is due when this grows. */
export function snapshotPoint(eventCount: number, every: number): number {
  return every > 0 ? Math.floor(eventCount / every) : 0;
}

/** Standbys on the board whose entry is fresh, by id. */
function freshStandbys(members: readonly MemberStatus[], now: number): string[] {
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

/**
 * A replica's snapshot writer (see the file comment): it notices the points its fold passes and,
 * when this replica is the one to write, encodes and stores the snapshot.
 */
export class SnapshotWriter {
  /** snapshotPoint() of the state last folded: a snapshot is due when it grows. */
  private pointSeen = 0;
  private writing = false;
  /** Snapshots this replica encoded and began storing (for tests and the log). */
  written = 0;
  /** Snapshots due that this replica, leading with no standby, left unwritten: the state was too large. */
  leaderSkipped = 0;

  constructor(
    private readonly o: {
      store: BaseSnapshotStore;
      every: number;
      sliceMs: number;
      id: string;
      clock: Clock;
      log: Logger;
      /** The members board as last read (null: no board). */
      members: () => readonly MemberStatus[] | null;
      /** Read the board again (the leader decides on a fresh read). */
      readMembers: () => Promise<void>;
      /** LEADER_ENCODE_MAX_TASKS unless given (tests). */
      leaderMaxTasks?: number;
    },
  ) {}

  /** Where the replica started from: points already passed (all of them from genesis) make the next one due at once. */
  startedAt(eventsCovered: number): void {
    this.pointSeen = snapshotPoint(eventsCovered, this.o.every);
  }

  /** True once per snapshot point the fold passes; every replica calls it after each fold. */
  private due(state: ClusterState): boolean {
    const point = snapshotPoint(state.eventCount, this.o.every);
    if (point <= this.pointSeen) return false;
    this.pointSeen = point;
    return !this.writing;
  }

  private mine(role: "leader" | "standby"): boolean {
    return writesSnapshot({ id: this.o.id, role }, this.o.members(), this.o.clock.now());
  }

  /**
   * The leader, when no standby can: it decides on a fresh read of the board (a stale view could
   * pause it for nothing), then encodes the state as it is by then, at once (its loop pauses), if
   * it has at most LEADER_ENCODE_MAX_TASKS tasks.
   */
  asLeader(state: () => ClusterState, leading: () => boolean): void {
    if (!this.due(state())) return;
    this.writing = true;
    void this.o.readMembers().then(() => {
      this.writing = false;
      if (!leading() || !this.mine("leader")) return;
      const tasks = state().tasks.size;
      const max = this.o.leaderMaxTasks ?? LEADER_ENCODE_MAX_TASKS;
      if (tasks > max) {
        this.leaderSkipped++;
        this.o.log.warn(
          { seq: state().seq, tasks, max },
          "a snapshot is due and no standby is on the members board to write it; the leader does not encode a state this large " +
            "(the pause could cost it its lease): run a standby, or `roost snapshot write`",
        );
        return;
      }
      const t0 = performance.now();
      const encoded = runSteps(encodeSnapshotSteps(state(), { createdTs: this.o.clock.now(), stream: this.o.store.stream }));
      this.store(encoded, performance.now() - t0, "leader");
    });
  }

  /**
   * A standby writes the snapshot: folding stops (the caller awaits this) while the state is
   * encoded a slice at a time; the upload runs after folding resumes. Dropped if the replica
   * stops following (it won the lease, or stops).
   */
  async asStandby(current: () => ClusterState, signal: AbortSignal): Promise<void> {
    const state = current();
    if (!this.due(state) || !this.mine("standby")) return;
    const t0 = performance.now();
    const seq = state.seq;
    const encoded = await runSliced(encodeSnapshotSteps(state, { createdTs: this.o.clock.now(), stream: this.o.store.stream }), {
      sliceMs: this.o.sliceMs,
      signal,
    });
    if (encoded === null) {
      this.o.log.info({ seq: current().seq }, "dropped a snapshot half encoded: this replica stopped following");
      return;
    }
    // The state must have held still: a fold during the encoding would have mixed two states.
    if (current() !== state || state.seq !== seq || encoded.header.seq !== seq) {
      throw new Error(`invariant: the state moved from seq ${seq} to ${current().seq} while a snapshot of it was encoded`);
    }
    this.store(encoded, performance.now() - t0, "standby");
  }

  private store(encoded: EncodedSnapshot, encodeMs: number, role: string): void {
    const store = this.o.store;
    this.writing = true;
    this.written++;
    store
      .putEncoded(encoded)
      .then((p) => {
        this.o.log.info(
          {
            snapshot: p.name,
            seq: p.seq,
            bytes: p.size,
            encodeMs: Math.round(encodeMs),
            checkMs: Math.round(p.checkMs),
            writeMs: Math.round(p.writeMs),
            role,
          },
          "wrote a snapshot",
        );
        return store.prune(3);
      })
      .catch((err: Error) =>
        err instanceof SnapshotError
          ? // The bytes do not decode to the state they were encoded from: a codec bug, never stored.
            this.o.log.error({ err: err.message }, "a snapshot failed its writer's check and was not stored; the log still has everything")
          : this.o.log.warn({ err: err.message }, "writing a snapshot failed; the log still has everything"),
      )
      .finally(() => {
        this.writing = false;
      });
  }
}
