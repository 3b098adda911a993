// The agent side of status update delivery, after the Mesos agent's status update manager:
// at least once, in order per task.
//
// - One stream per task. Only its head is in flight; when the head is acknowledged it is dropped
//   and the next one is sent.
// - A failed send (rejected, or resolved false: no ack) is retried with exponential backoff from
//   initialRetryMs, doubling up to maxRetryMs, with no retry limit.
// - Streams of different tasks progress independently: a stuck task does not hold up others.
// - While disconnected (pause) nothing is sent; resume() resends every head at once.
// - Updates may therefore arrive more than once (an ack can be lost): the receiver drops
//   duplicates by (taskId, seq), e.g. with StatusDeduper.
// - No timer runs while nothing is pending.
// - snapshot() and restore() carry the unacknowledged updates and seq counters across a restart
//   (the agent's checkpoint); onChange says when they changed.

export type AgentTaskState = "STARTING" | "RUNNING" | "FINISHED" | "FAILED" | "KILLED" | "LOST";

export interface StatusUpdate {
  taskId: string;
  /** 1, 2, 3, … per task. */
  seq: number;
  state: AgentTaskState;
  exitCode?: number;
  message?: string;
  ts: number;
}

export interface StatusQueueOptions {
  /** Delivers one update; resolves true once it is acknowledged. */
  send: (u: StatusUpdate) => Promise<boolean>;
  initialRetryMs?: number;
  maxRetryMs?: number;
  now?: () => number;
  /** Called (synchronously) whenever what snapshot() returns changes: an update queued, acknowledged or restored, or a task forgotten. */
  onChange?: () => void;
}

/** What survives a restart: every unacknowledged update and the last seq assigned per task. */
export interface StatusSnapshot {
  pending: StatusUpdate[];
  lastSeqs: Record<string, number>;
}

interface Entry {
  update: StatusUpdate;
  /** Global enqueue order, so pending() lists updates across tasks in the order they were made. */
  ord: number;
}

interface Stream {
  taskId: string;
  entries: Entry[];
  inFlight: boolean;
  /** Failed attempts of the current head. */
  failures: number;
  timer: ReturnType<typeof setTimeout> | null;
}

export class StatusQueue {
  private readonly send: (u: StatusUpdate) => Promise<boolean>;
  private readonly initialRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly now: () => number;
  private readonly onChange: () => void;
  private readonly streams = new Map<string, Stream>();
  /** Last seq assigned per task. */
  private readonly lastSeq = new Map<string, number>();
  private ord = 0;
  private paused = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(opts: StatusQueueOptions) {
    this.send = opts.send;
    this.initialRetryMs = Math.max(1, opts.initialRetryMs ?? 1000);
    this.maxRetryMs = Math.max(this.initialRetryMs, opts.maxRetryMs ?? 10_000);
    this.now = opts.now ?? Date.now;
    this.onChange = opts.onChange ?? (() => {});
  }

  /** Queues a new update for the task, with the task's next seq, and sends it when its turn comes. */
  enqueue(taskId: string, state: AgentTaskState, extra: { exitCode?: number; message?: string } = {}): StatusUpdate {
    const seq = (this.lastSeq.get(taskId) ?? 0) + 1;
    this.lastSeq.set(taskId, seq);
    const update: StatusUpdate = { taskId, seq, state, ts: this.now() };
    if (extra.exitCode !== undefined) update.exitCode = extra.exitCode;
    if (extra.message !== undefined) update.message = extra.message;
    this.push(update);
    this.changed();
    return update;
  }

  /** Everything not yet acknowledged: in seq order per task, in enqueue order across tasks. */
  pending(): StatusUpdate[] {
    const all: Entry[] = [];
    for (const s of this.streams.values()) all.push(...s.entries);
    return all.sort((a, b) => a.ord - b.ord).map((e) => e.update);
  }

  /** The last seq assigned to the task's updates (0 if none). */
  lastSeqOf(taskId: string): number {
    return this.lastSeq.get(taskId) ?? 0;
  }

  /**
   * Unacknowledged updates (as pending()) and the last seq per task, for a checkpoint; restore()
   * takes them back. `lastSeqs` covers the given tasks (default: every task with a seq).
   */
  snapshot(taskIds?: Iterable<string>): StatusSnapshot {
    const pending = this.pending().map((u) => ({ ...u }));
    const lastSeqs: Record<string, number> = {};
    if (taskIds === undefined) {
      for (const [taskId, seq] of this.lastSeq) lastSeqs[taskId] = seq;
    } else {
      for (const taskId of taskIds) {
        const seq = this.lastSeq.get(taskId);
        if (seq !== undefined) lastSeqs[taskId] = seq;
      }
    }
    for (const u of pending) lastSeqs[u.taskId] = Math.max(lastSeqs[u.taskId] ?? 0, this.lastSeq.get(u.taskId) ?? u.seq);
    return { pending, lastSeqs };
  }

  /** Forgets a task's seq counter if nothing of it is pending (bounding memory); false otherwise. */
  forget(taskId: string): boolean {
    if (this.streams.has(taskId)) return false;
    if (this.lastSeq.delete(taskId)) this.changed();
    return true;
  }

  /** Stops sending (disconnected). Updates in flight finish; nothing new is sent. */
  pause(): void {
    this.paused = true;
    for (const s of this.streams.values()) this.clearTimer(s);
  }

  /** Resumes sending: every head goes out immediately, with its backoff reset. */
  resume(): void {
    if (this.stopped) return;
    this.paused = false;
    for (const s of this.streams.values()) {
      this.clearTimer(s);
      s.failures = 0;
      this.pump(s);
    }
  }

  /** Stops for good: no more sends or retries. pending() still lists what was not acknowledged. */
  stop(): void {
    this.stopped = true;
    for (const s of this.streams.values()) this.clearTimer(s);
  }

  /** Resolves when nothing is pending. */
  onIdle(): Promise<void> {
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Reloads unacknowledged updates (e.g. from a checkpoint) and the per-task sequence counters
   * (`lastSeqs`: the last seq assigned per task). Updates already queued for a task are kept;
   * restored ones are merged by seq, duplicates dropped.
   */
  restore(updates: StatusUpdate[], lastSeqs: Record<string, number> = {}): void {
    for (const [taskId, seq] of Object.entries(lastSeqs)) {
      this.lastSeq.set(taskId, Math.max(this.lastSeq.get(taskId) ?? 0, seq));
    }
    const sorted = [...updates].sort((a, b) => a.seq - b.seq);
    for (const u of sorted) {
      this.lastSeq.set(u.taskId, Math.max(this.lastSeq.get(u.taskId) ?? 0, u.seq));
      const s = this.streams.get(u.taskId);
      if (s?.entries.some((e) => e.update.seq === u.seq)) continue;
      this.push({ ...u });
    }
    this.changed();
  }

  // -------------------------------------------------------------------------------------------

  private push(update: StatusUpdate): void {
    let s = this.streams.get(update.taskId);
    if (!s) {
      s = { taskId: update.taskId, entries: [], inFlight: false, failures: 0, timer: null };
      this.streams.set(update.taskId, s);
    }
    const entry = { update, ord: this.ord++ };
    // Keep seq order (restore may bring older updates); the in-flight head stays where it is.
    let i = s.entries.length;
    while (i > (s.inFlight ? 1 : 0) && s.entries[i - 1]!.update.seq > update.seq) i--;
    s.entries.splice(i, 0, entry);
    this.pump(s);
  }

  private pump(s: Stream): void {
    if (this.paused || this.stopped || s.inFlight || s.timer || s.entries.length === 0) return;
    const head = s.entries[0]!;
    s.inFlight = true;
    let result: Promise<boolean>;
    try {
      result = Promise.resolve(this.send(head.update));
    } catch {
      result = Promise.resolve(false);
    }
    result.then(
      (acked) => this.settle(s, head, acked === true),
      () => this.settle(s, head, false),
    );
  }

  private settle(s: Stream, head: Entry, acked: boolean): void {
    s.inFlight = false;
    if (acked) {
      if (s.entries[0] === head) s.entries.shift();
      s.failures = 0;
      if (s.entries.length === 0) {
        if (this.streams.get(s.taskId) === s) this.streams.delete(s.taskId);
        this.changed();
        this.checkIdle();
        return;
      }
      this.changed();
      this.pump(s);
      return;
    }
    if (this.stopped) return;
    s.failures++;
    if (this.paused) return; // resume() resends
    const delay = Math.min(this.maxRetryMs, this.initialRetryMs * 2 ** Math.min(s.failures - 1, 30));
    s.timer = setTimeout(() => {
      s.timer = null;
      this.pump(s);
    }, delay);
  }

  private changed(): void {
    try {
      this.onChange();
    } catch {
      // A failing listener must not wedge the queue.
    }
  }

  private clearTimer(s: Stream): void {
    if (s.timer) {
      clearTimeout(s.timer);
      s.timer = null;
    }
  }

  private checkIdle(): void {
    if (this.streams.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** Receiver side: drops duplicates (and stale re-deliveries) by (taskId, seq). */
export class StatusDeduper {
  private readonly last = new Map<string, number>();

  /** True if the update is new, i.e. its seq is above the last one seen for its task. */
  accept(u: Pick<StatusUpdate, "taskId" | "seq">): boolean {
    const last = this.last.get(u.taskId) ?? 0;
    if (u.seq <= last) return false;
    this.last.set(u.taskId, u.seq);
    return true;
  }

  /** The last seq accepted for the task (0 if none). */
  lastSeq(taskId: string): number {
    return this.last.get(taskId) ?? 0;
  }

  /** Forgets a task (e.g. once it is pruned). */
  forget(taskId: string): void {
    this.last.delete(taskId);
  }
}
