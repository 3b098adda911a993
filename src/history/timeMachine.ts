// The cluster at any moment: the state the log folds to at a sequence or a time, for `roost
// replay --at`, `roost diff`, `task why --at`, `inspect --at`, the bus's history ops and the web
// UI's time travel, on the leader, a standby, or a laptop with only the log reachable.
//
// Exact by construction: a state "at seq S" is what the fold gives after record S, never an
// approximation rebuilt from the present (the ten-point test compares it with a fresh fold from
// genesis). To make that cheap it starts from the newest snapshot at or before S and folds only
// the records after it, and it keeps the last few states it built: an SRE dragging a slider
// forward folds only the records between two positions, and the moment before is a cache hit.
// "Now" is the state this process already folds as the log grows (a replica's own, or `roost
// ui`'s follower), never refolded.
//
// A state handed out is read, not kept: callers read what they need before their next await
// (the head goes on folding meanwhile), and a built state is never folded further.

import type { LogRecord } from "../domain/events.js";
import { UNREADABLE } from "../domain/events.js";
import { firstSeqWrittenFrom } from "../eventlog/log.js";
import { foldRecord } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";
import type { Moment } from "../views/cluster.js";
import type { SnapshotSource } from "../storage/snapshotStore.js";

/** What the time machine reads: a log (the JetStream log, or a CLI's cluster client). */
export interface LogReader {
  get(seq: number): Promise<LogRecord | null>;
  /** The log's last sequence (0 when empty). */
  lastSeq(): Promise<number>;
  /** Records from `from` to the end as it is when called. */
  read(from: number): AsyncIterable<LogRecord>;
}

/** A moment as a user gives it: a sequence, an RFC 3339 time, or nothing (now). */
export type AtSpec = number | string | undefined;

export class AtError extends Error {}

/** This process will not build a past state now (a leader with a big state): ask another replica. */
export class BusyError extends Error {}

/** States built for other moments kept at once (each is a whole ClusterState)... */
const CACHED_STATES = 2;
/** ...unless they are big: past this many tasks only the newest is kept (a state of 2.4M tasks is ~4.5 GB). */
const CACHE_MAX_TASKS = 500_000;

export interface TimeMachineOptions {
  log: LogReader;
  store?: SnapshotSource;
  /** The state this process keeps folded as the log grows; "now" is answered from it. */
  head?: () => ClusterState | null;
  /** Told how far a long fold is (the CLI prints it on stderr). */
  progress?: (msg: string) => void;
  /** Why this process must not build a past state now (null: it may). */
  mayBuild?: () => string | null;
}

export class TimeMachine {
  private readonly cache: ClusterState[] = [];
  private readonly building = new Map<number, Promise<ClusterState>>();
  /** Builds run one at a time: a replica materialises at most one past state at once. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly times = new Map<number, number>();

  constructor(private readonly o: TimeMachineOptions) {}

  /** The newest sequence: the head's when this process folds one, else the log's. */
  async lastSeq(): Promise<number> {
    const head = this.o.head?.();
    return head ? head.seq : await this.o.log.lastSeq();
  }

  /** The time of record `seq` (its first readable event's), 0 for none. */
  async timeOf(seq: number): Promise<number> {
    if (seq <= 0) return 0;
    const known = this.times.get(seq);
    if (known !== undefined) return known;
    const r = await this.o.log.get(seq);
    const ts = r?.events.find((e) => e.type !== UNREADABLE)?.ts ?? 0;
    if (this.times.size > 10_000) this.times.clear();
    this.times.set(seq, ts);
    return ts;
  }

  async moment(seq: number): Promise<Moment> {
    return { seq, ts: await this.timeOf(seq) };
  }

  /**
   * The sequence a user's `at` names: a sequence as is (at most the last); a time is the last
   * record written at or before it (binary search over the log's times, which only grow within
   * a leader's term; 0 when the log starts after it); nothing is the last record.
   */
  async resolve(at: AtSpec): Promise<Moment> {
    const last = await this.lastSeq();
    if (at === undefined) return this.moment(last);
    if (typeof at === "number") {
      if (!Number.isSafeInteger(at) || at < 0) throw new AtError(`at: must be a log sequence (an integer ≥ 0) or a time (got ${at})`);
      if (at > last) throw new AtError(`at: sequence ${at} is beyond the end of the log (${last})`);
      return this.moment(at);
    }
    const t = Date.parse(at);
    if (!Number.isFinite(t)) throw new AtError(`at: must be a log sequence or a time (RFC 3339, e.g. 2026-12-02T03:12:00Z), got "${at}"`);
    // Log times are whole milliseconds: the last record at or before t is the one before the
    // first written at or after t + 1.
    return this.moment((await firstSeqWrittenFrom(this.o.log, last, Math.floor(t) + 1)) - 1);
  }

  /** The state after record `seq`, exactly as a fold from genesis would give it. Read it at once. */
  async stateAt(seq: number): Promise<ClusterState> {
    const head = this.o.head?.();
    if (head && seq === head.seq) return head;
    const cached = this.cache.find((s) => s.seq === seq);
    if (cached) return cached;
    let p = this.building.get(seq);
    if (!p) {
      const no = this.o.mayBuild?.() ?? null;
      if (no !== null) throw new BusyError(no);
      const run = this.queue.then(() => this.cache.find((s) => s.seq === seq) ?? this.build(seq));
      this.queue = run.catch(() => {});
      p = run.finally(() => this.building.delete(seq));
      this.building.set(seq, p);
    }
    return p;
  }

  private async build(seq: number): Promise<ClusterState> {
    // A state once handed out is never folded further (a reader may still hold it): each
    // moment is built from the newest snapshot at or before it, or from genesis.
    let base: ClusterState | null = null;
    if (this.o.store) {
      // "auto": a snapshot of this build's codec on its writer's check (its body digest compared),
      // any other with its state hash checked; a state that fails a deferred check is not used.
      const { loaded } = await this.o.store.loadNewestReport(seq, { verify: "auto" }).catch(() => ({ loaded: null }));
      if (loaded)
        base = await loaded.verified.then(
          () => loaded.state,
          () => null,
        );
    }
    const state = base ?? new ClusterState();
    await this.foldTo(state, seq);
    this.cache.push(state);
    const keep = state.tasks.size > CACHE_MAX_TASKS ? 1 : CACHED_STATES;
    while (this.cache.length > keep) this.cache.shift();
    return state;
  }

  private async foldTo(state: ClusterState, seq: number): Promise<void> {
    if (state.seq >= seq) return;
    const from = state.seq + 1;
    const started = Date.now();
    let told = started;
    for await (const r of this.o.log.read(from)) {
      if (r.seq > seq) break;
      foldRecord(state, r.seq, r.events);
      if (r.seq === seq) break;
      if (this.o.progress && r.seq % 1000 === 0 && Date.now() - told > 2000) {
        told = Date.now();
        this.o.progress(`folding the log to sequence ${seq}: at ${r.seq}`);
      }
    }
    if (state.seq < seq) throw new AtError(`the log ends at sequence ${state.seq}, before ${seq}`);
  }
}
