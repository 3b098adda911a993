// Group commit with pipelining, on top of any EventLog.
//
// - Every request (an array of events) lands whole, in one record: a request is atomic.
// - Requests made in the same tick share records, up to maxEventsPerRecord events each.
// - Up to maxInFlight records are on the wire at once. Record k is fenced on
//   expectedLastSeq = base + k, so order is kept and a second writer is refused.
// - Commits are reported (onCommit, then the request promises) strictly in sequence order.
// - When the log is unavailable (stream leader election, reconnect), unacknowledged records are
//   re-sent in order with the same msgId and expected sequence until retryForMs runs out; a
//   record that had in fact landed comes back as a duplicate with its original sequence.
// - A record refused by fencing (and not explained by an earlier failure) means another writer
//   owns the log: the appender is dead, every pending request rejects with FencedError, and the
//   owner must step down.

import { encodeRecord, type AnyEnvelope } from "./envelope.js";
import { LogUnavailableError, type EventLog } from "./log.js";

export interface AppenderOptions {
  /** The last sequence this writer has folded: its first record is fenced on it. */
  lastSeq: number;
  /** Unique per writer incarnation; with the sequence it forms each record's msgId. */
  writerId: string;
  maxEventsPerRecord?: number;
  maxInFlight?: number;
  retryForMs?: number;
  /** Called once per committed record, in sequence order, before requests resolve. */
  onCommit?: (seq: number, events: AnyEnvelope[]) => void;
}

interface Request {
  events: AnyEnvelope[];
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

interface Pending {
  expected: number;
  msgId: string;
  bytes: Uint8Array;
  events: AnyEnvelope[];
  requests: Request[];
  result?: Promise<{ ok: true; seq: number } | { ok: false; err: Error }>;
}

export class Appender {
  private readonly log: EventLog;
  private readonly maxEvents: number;
  private readonly maxInFlight: number;
  private readonly retryForMs: number;
  private readonly writerId: string;
  private readonly onCommit?: (seq: number, events: AnyEnvelope[]) => void;
  private queue: Request[] = [];
  private inFlight: Pending[] = [];
  private nextExpected: number;
  private scheduled = false;
  private draining = false;
  private dead: Error | null = null;
  /** Count of records committed by this appender. */
  committedRecords = 0;

  constructor(log: EventLog, opts: AppenderOptions) {
    this.log = log;
    this.nextExpected = opts.lastSeq;
    this.writerId = opts.writerId;
    this.maxEvents = opts.maxEventsPerRecord ?? 1000;
    this.maxInFlight = opts.maxInFlight ?? 32;
    this.retryForMs = opts.retryForMs ?? 20_000;
    this.onCommit = opts.onCommit;
  }

  /** The error that killed this appender, or null while it can write. */
  get failure(): Error | null {
    return this.dead;
  }

  /** Append events atomically; resolves with the sequence of the record that holds them. */
  append(events: AnyEnvelope[]): Promise<number> {
    if (this.dead) return Promise.reject(this.dead);
    if (events.length === 0) return Promise.reject(new Error("append needs at least one event"));
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
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
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight.length > 0) {
      await new Promise((r) => setImmediate(r));
    }
  }

  private pump(): void {
    while (!this.dead && !this.draining && this.queue.length > 0 && this.inFlight.length < this.maxInFlight) {
      const requests: Request[] = [];
      const events: AnyEnvelope[] = [];
      while (this.queue.length > 0) {
        const next = this.queue[0];
        if (requests.length > 0 && events.length + next.events.length > this.maxEvents) break;
        this.queue.shift();
        requests.push(next);
        for (const e of next.events) events.push(e);
      }
      const expected = this.nextExpected++;
      const p: Pending = {
        expected,
        msgId: `${this.writerId}:${expected + 1}`,
        bytes: encodeRecord(events),
        events,
        requests,
      };
      p.result = this.send(p);
      this.inFlight.push(p);
      if (this.inFlight.length === 1) void this.drain();
    }
  }

  private send(p: Pending): Promise<{ ok: true; seq: number } | { ok: false; err: Error }> {
    return this.log.append(p.bytes, p.expected, p.msgId).then(
      (ack) => ({ ok: true as const, seq: ack.seq }),
      (err: Error) => ({ ok: false as const, err }),
    );
  }

  /** Settles in-flight records strictly in order. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inFlight.length > 0) {
        const head = this.inFlight[0];
        let r = await head.result!;
        if (!r.ok) {
          // Fenced at the head of the pipeline: nothing earlier failed, so another writer won.
          if (!(r.err instanceof LogUnavailableError)) return this.die(r.err);
          r = await this.recover();
          if (!r.ok) return this.die(r.err);
        }
        this.inFlight.shift();
        this.commit(head, r.seq);
      }
    } finally {
      this.draining = false;
    }
    if (!this.dead && this.queue.length > 0) this.pump();
  }

  /**
   * The head record failed with LogUnavailableError. Wait for the rest of the pipeline to settle,
   * then re-send every unacknowledged record one at a time, in order, with its msgId.
   * Returns the head's outcome; later records get fresh result promises.
   */
  private async recover(): Promise<{ ok: true; seq: number } | { ok: false; err: Error }> {
    await Promise.all(this.inFlight.map((p) => p.result));
    const deadline = Date.now() + this.retryForMs;
    let delay = 50;
    let headResult: { ok: true; seq: number } | { ok: false; err: Error } | undefined;
    for (let i = 0; i < this.inFlight.length; i++) {
      const p = this.inFlight[i];
      for (;;) {
        const r = await this.send(p);
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
      return this.die(new Error(`invariant: record fenced on ${p.expected} committed at ${seq}`));
    }
    this.committedRecords++;
    this.onCommit?.(seq, p.events);
    for (const r of p.requests) r.resolve(seq);
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.inFlight) for (const r of p.requests) r.reject(err);
    for (const r of this.queue) r.reject(err);
    this.inFlight = [];
    this.queue = [];
  }
}
