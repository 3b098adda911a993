// Group commit with pipelining, on top of any EventLog.
//
// - Every request (an array of events) lands whole, in one record: a request is atomic.
// - Requests made in the same tick share records, up to maxEventsPerRecord events and
//   maxRecordBytes encoded bytes each. A single request too large for one record is rejected
//   on its own (RecordTooLargeError); the appender stays alive.
// - Up to maxInFlight records are on the wire at once. Record k is fenced on
//   expectedLastSeq = base + k, so order is kept and a second writer is refused.
// - Pipelining needs a log that can also fence on the writer's own previous record
//   (ChainedAppend, JetStream's Nats-Expected-Last-Msg-Id). Sequence fencing alone is not enough:
//   if record k is refused because another writer appended one record, record k+1 (fenced on
//   base + k) matches the log's new end and LANDS, after the other writer's record, although this
//   writer is dead and rejects that request. With the previous-msgId check record k+1 is refused
//   too. A log without appendAfter gets one record in flight at a time (still group commit).
// - Commits are reported (onCommit, then the request promises) strictly in sequence order.
//   onCommit gets the record decoded from the bytes the log holds, not the objects appended: the
//   writer folds exactly what every replay will fold. (They can differ: msgpackr writes a lone
//   UTF-16 surrogate as U+FFFD, so a string that came in over JSON would fold one way on the
//   leader and another on every replica.)
// - When the log is unavailable (stream leader election, reconnect), unacknowledged records are
//   re-sent in order with the same msgId and expected sequence until retryForMs runs out; a
//   record that had in fact landed comes back as a duplicate with its original sequence.
// - A record refused by fencing (and not explained by an earlier failure) means another writer
//   owns the log: the appender is dead, every pending request rejects with FencedError, and the
//   owner must step down.

import { decodeRecordGeneric, encodeRecord, type AnyEnvelope, type LogEntry } from "./envelope.js";
import { FencedError, LogUnavailableError, type AppendAck, type EventLog } from "./log.js";

/** How a record's append ended (AppenderOptions.observe). */
export type AppendOutcome = "ok" | "fenced" | "unavailable" | "error";

export interface AppenderOptions {
  /** The last sequence this writer has folded: its first record is fenced on it. */
  lastSeq: number;
  /** Unique per writer incarnation; with the sequence it forms each record's msgId. */
  writerId: string;
  maxEventsPerRecord?: number;
  /** Largest encoded record. Default 1,000,000 bytes, or the log's maxRecordSize if smaller. */
  maxRecordBytes?: number;
  /** Records on the wire at once (default 32); only for logs with ChainedAppend, else 1. */
  maxInFlight?: number;
  retryForMs?: number;
  /**
   * Called once per committed record, in sequence order, before requests resolve, with the events
   * decoded from the record's bytes (what a replay folds). If it throws,
   * the appender dies with that error (that record's requests and all later ones reject with it).
   */
  onCommit?: (seq: number, events: LogEntry[]) => void;
  /**
   * Told once per record sent, when its outcome is known: how it ended, the seconds from its
   * first send (retries included), its events and bytes. For metrics; it must not throw.
   */
  observe?: (outcome: AppendOutcome, seconds: number, events: number, bytes: number) => void;
}

/**
 * An EventLog that can fence an append on the writer's previous record as well as on the
 * sequence: the record lands only if the log ends at `expectedLastSeq` AND (when `prevMsgId` is
 * given) the last record's msgId is `prevMsgId`. A duplicate msgId is still answered first.
 */
export interface ChainedAppend {
  appendAfter(record: Uint8Array, expectedLastSeq: number, msgId: string, prevMsgId: string | undefined): Promise<AppendAck>;
}

export function supportsChainedAppend(log: EventLog): log is EventLog & ChainedAppend {
  return typeof (log as Partial<ChainedAppend>).appendAfter === "function";
}

/** A log that cannot take records above some size (JetStream: the server's max_payload). */
export interface RecordSizeLimit {
  readonly maxRecordSize: number;
}

/**
 * One request's events do not fit in a record of maxRecordBytes: only that request fails.
 * (JetStreamLog also throws it for a record above the server's max_payload.)
 */
export class RecordTooLargeError extends Error {
  override name = "RecordTooLargeError";
}

interface Request {
  events: AnyEnvelope[];
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
  /** See AppendOptions.recheck and overtakenBy. */
  recheck?: (events: AnyEnvelope[]) => AnyEnvelope[];
  overtakenBy?: (ahead: AnyEnvelope) => boolean;
  /** overtakenBy's verdict per record on the wire, so each record is scanned once. */
  verdicts?: WeakMap<Pending, boolean>;
}

export interface AppendOptions {
  /**
   * Decide again, against everything before it: the request waits until every record ahead of
   * it is committed and folded (onCommit), then `recheck` runs, synchronously, and returns the
   * events still worth appending (none: nothing is appended and the request resolves with the
   * log's last sequence). Those events start a record of their own. It closes the window in
   * which a pipelined decision is overtaken by a record already on the wire (a placement of a
   * task whose kill is in flight).
   */
  recheck?: (events: AnyEnvelope[]) => AnyEnvelope[];
  /**
   * With recheck: can this event, ahead of the request on the wire, change what the request
   * decides? When no event ahead can, the request is rechecked at once, without waiting for the
   * pipeline to empty: the bubble is paid only when a conflict is possible.
   */
  overtakenBy?: (ahead: AnyEnvelope) => boolean;
}

type Outcome = { ok: true; seq: number } | { ok: false; err: Error };

interface Pending {
  expected: number;
  msgId: string;
  /** msgId of this appender's previous record (undefined for its first). */
  prevMsgId: string | undefined;
  bytes: Uint8Array;
  events: AnyEnvelope[];
  requests: Request[];
  result: Promise<Outcome>;
  /** performance.now() at its first send. */
  sentAt: number;
}

export class Appender {
  private readonly log: EventLog;
  private readonly chained: (EventLog & ChainedAppend) | null;
  private lastMsgId: string | undefined = undefined;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly maxInFlight: number;
  private readonly retryForMs: number;
  private readonly writerId: string;
  private readonly onCommit?: (seq: number, events: LogEntry[]) => void;
  private readonly observe?: AppenderOptions["observe"];
  // The queue is `queue[qHead..]`: Array.shift() on a long array is O(n) in V8 (tens of µs per
  // call at 100k entries), which made a burst of small requests quadratic.
  private queue: Request[] = [];
  private qHead = 0;
  private inFlight: Pending[] = [];
  private nextExpected: number;
  private scheduled = false;
  private draining = false;
  private recovering = false;
  private dead: Error | null = null;
  private idleWaiters: Array<() => void> = [];
  /** Count of records committed by this appender. */
  committedRecords = 0;

  constructor(log: EventLog, opts: AppenderOptions) {
    this.log = log;
    this.nextExpected = opts.lastSeq;
    this.writerId = opts.writerId;
    this.maxEvents = opts.maxEventsPerRecord ?? 1000;
    const logLimit = (log as Partial<RecordSizeLimit>).maxRecordSize;
    this.maxBytes = opts.maxRecordBytes ?? Math.min(1_000_000, typeof logLimit === "number" ? logLimit : Infinity);
    this.chained = supportsChainedAppend(log) ? log : null;
    // Without the previous-record check, pipelining could land a dead writer's record (above).
    this.maxInFlight = this.chained ? Math.max(1, opts.maxInFlight ?? 32) : 1;
    this.retryForMs = opts.retryForMs ?? 20_000;
    this.onCommit = opts.onCommit;
    this.observe = opts.observe;
  }

  /** Records this appender keeps on the wire at once (1 unless the log supports ChainedAppend). */
  get pipelineDepth(): number {
    return this.maxInFlight;
  }

  /** The error that killed this appender, or null while it can write. */
  get failure(): Error | null {
    return this.dead;
  }

  /** Requests waiting for a record, plus records on the wire. */
  get pending(): { requests: number; records: number } {
    return { requests: this.queue.length - this.qHead, records: this.inFlight.length };
  }

  /** Append events atomically; resolves with the sequence of the record that holds them. */
  append(events: AnyEnvelope[], opts: AppendOptions = {}): Promise<number> {
    if (this.dead) return Promise.reject(this.dead);
    if (events.length === 0) return Promise.reject(new Error("append needs at least one event"));
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ events, resolve, reject, recheck: opts.recheck, overtakenBy: opts.overtakenBy });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Resolves once everything appended so far is committed (or failed). */
  flush(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.qHead >= this.queue.length && this.inFlight.length === 0;
  }

  private wakeIfIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of w) wake();
  }

  private takeQueued(n: number): Request[] {
    const out = this.queue.slice(this.qHead, this.qHead + n);
    this.qHead += n;
    if (this.qHead >= this.queue.length) {
      this.queue = [];
      this.qHead = 0;
    } else if (this.qHead >= 4096 && this.qHead * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return out;
  }

  private pump(): void {
    while (!this.dead && !this.recovering && this.qHead < this.queue.length && this.inFlight.length < this.maxInFlight) {
      const head = this.queue[this.qHead]!;
      if (head.recheck) {
        // It decides again once everything ahead of it that could overtake it is folded: wait for
        // the pipeline to empty, unless nothing on the wire can change its decision.
        if (this.inFlight.length > 0 && this.mayOvertake(head)) break;
        const recheck = head.recheck;
        head.recheck = undefined;
        let kept: AnyEnvelope[];
        try {
          kept = recheck(head.events);
        } catch (err) {
          this.takeQueued(1);
          head.reject(err instanceof Error ? err : new Error(String(err)));
          continue;
        }
        if (kept.length === 0) {
          this.takeQueued(1);
          head.resolve(this.nextExpected);
          continue;
        }
        head.events = kept;
      }
      // As many whole requests as fit in maxEvents (at least one); a request that must recheck
      // starts a record of its own.
      let n = 0;
      let count = 0;
      for (let i = this.qHead; i < this.queue.length; i++) {
        const len = this.queue[i]!.events.length;
        if (n > 0 && this.queue[i]!.recheck) break;
        if (n > 0 && count + len > this.maxEvents) break;
        count += len;
        n++;
      }
      let events = this.gather(n);
      let bytes = encodeRecord(events);
      // Too many bytes: halve the batch until it fits; a lone request that cannot fit fails alone.
      while (bytes.length > this.maxBytes && n > 1) {
        n = Math.ceil(n / 2);
        events = this.gather(n);
        bytes = encodeRecord(events);
      }
      const requests = this.takeQueued(n);
      if (bytes.length > this.maxBytes) {
        requests[0]!.reject(
          new RecordTooLargeError(
            `a request of ${events.length} events encodes to ${bytes.length} bytes, over the record limit of ${this.maxBytes}`,
          ),
        );
        continue;
      }
      const expected = this.nextExpected++;
      const msgId = `${this.writerId}:${expected + 1}`;
      const prevMsgId = this.lastMsgId;
      this.lastMsgId = msgId;
      const sentAt = performance.now();
      const result = this.send(bytes, expected, msgId, prevMsgId);
      this.inFlight.push({ expected, msgId, prevMsgId, bytes, events, requests, result, sentAt });
      if (!this.draining) void this.drain();
    }
    this.wakeIfIdle();
  }

  /** Whether a record on the wire may change what `r` decides (always, without overtakenBy). */
  private mayOvertake(r: Request): boolean {
    const by = r.overtakenBy;
    if (!by) return true;
    const verdicts = (r.verdicts ??= new WeakMap());
    for (const p of this.inFlight) {
      let v = verdicts.get(p);
      if (v === undefined) {
        v = false;
        for (const e of p.events) {
          if (by(e)) {
            v = true;
            break;
          }
        }
        verdicts.set(p, v);
      }
      if (v) return true;
    }
    return false;
  }

  /** The events of the first n queued requests, in order. */
  private gather(n: number): AnyEnvelope[] {
    if (n === 1) return this.queue[this.qHead]!.events.slice();
    const events: AnyEnvelope[] = [];
    for (let i = this.qHead; i < this.qHead + n; i++) {
      const evs = this.queue[i]!.events;
      for (let j = 0; j < evs.length; j++) events.push(evs[j]!);
    }
    return events;
  }

  private send(bytes: Uint8Array, expected: number, msgId: string, prevMsgId: string | undefined): Promise<Outcome> {
    let attempt: Promise<AppendAck>;
    try {
      attempt = this.chained ? this.chained.appendAfter(bytes, expected, msgId, prevMsgId) : this.log.append(bytes, expected, msgId);
    } catch (err) {
      attempt = Promise.reject(err);
    }
    return attempt.then(
      (ack) => ({ ok: true as const, seq: ack.seq }),
      (err: unknown) => ({ ok: false as const, err: err instanceof Error ? err : new Error(String(err)) }),
    );
  }

  /** Settles in-flight records strictly in order, refilling the pipeline as records commit. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inFlight.length > 0) {
        const head = this.inFlight[0]!;
        let r = await head.result;
        if (this.dead) return;
        if (!r.ok) {
          // Fenced at the head of the pipeline: nothing earlier failed, so another writer won.
          if (!(r.err instanceof LogUnavailableError)) return this.die(r.err);
          this.recovering = true;
          try {
            r = await this.recover();
          } finally {
            this.recovering = false;
          }
          if (this.dead) return;
          if (!r.ok) return this.die(r.err);
        }
        this.inFlight.shift();
        this.commit(head, r.seq);
        if (this.dead) return;
        this.pump();
      }
    } finally {
      this.draining = false;
    }
    if (!this.dead && this.qHead < this.queue.length) this.pump();
    this.wakeIfIdle();
  }

  /**
   * The head record failed with LogUnavailableError. Wait for the rest of the pipeline to settle,
   * then re-send every unacknowledged record one at a time, in order, with its msgId.
   * Returns the head's outcome; later records get fresh result promises.
   */
  private async recover(): Promise<Outcome> {
    await Promise.all(this.inFlight.map((p) => p.result));
    const deadline = Date.now() + this.retryForMs;
    let delay = 50;
    let headResult: Outcome | undefined;
    for (let i = 0; i < this.inFlight.length; i++) {
      const p = this.inFlight[i]!;
      for (;;) {
        const r = await this.send(p.bytes, p.expected, p.msgId, p.prevMsgId);
        if (this.dead) return { ok: false, err: this.dead };
        if (r.ok || !(r.err instanceof LogUnavailableError) || Date.now() > deadline) {
          p.result = Promise.resolve(r);
          if (i === 0) headResult = r;
          if (!r.ok) return i === 0 ? r : headResult!;
          break;
        }
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
    return headResult!;
  }

  private commit(p: Pending, seq: number): void {
    if (seq !== p.expected + 1) {
      const err = new Error(`invariant: record fenced on ${p.expected} committed at ${seq}`);
      this.observed(p, "error");
      for (const r of p.requests) r.reject(err);
      return this.die(err);
    }
    this.observed(p, "ok");
    this.committedRecords++;
    if (this.onCommit) {
      try {
        // msgpackr's path, which interns the ids, not the fast reader (recordReader.ts) the bulk
        // reads use: the leader keeps what it commits for as long as it leads. bench placement, 5
        // pairs back to back on 2026-12-04: 13.2k–14.9k placements/s this way, 10.7k–12.3k with the
        // reader (likely the collector: interned ids go to the old generation at once, the
        // reader's young strings are copied there by scavenges), and p99 no better with it.
        this.onCommit(seq, decodeRecordGeneric(p.bytes));
      } catch (err) {
        // The record is in the log but the owner could not apply it: its state is behind the log,
        // so it must stop writing (and replay). Fail loudly instead of an unhandled rejection.
        const e = err instanceof Error ? err : new Error(String(err));
        for (const r of p.requests) r.reject(e);
        return this.die(e);
      }
    }
    for (const r of p.requests) r.resolve(seq);
  }

  /** Tell the observer how a record's append ended. */
  private observed(p: Pending, outcome: AppendOutcome): void {
    this.observe?.(outcome, (performance.now() - p.sentAt) / 1000, p.events.length, p.bytes.length);
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    const outcome: AppendOutcome = err instanceof FencedError ? "fenced" : err instanceof LogUnavailableError ? "unavailable" : "error";
    for (const p of this.inFlight) this.observed(p, outcome);
    for (const p of this.inFlight) for (const r of p.requests) r.reject(err);
    for (let i = this.qHead; i < this.queue.length; i++) this.queue[i]!.reject(err);
    this.inFlight = [];
    this.queue = [];
    this.qHead = 0;
    this.wakeIfIdle();
  }
}
