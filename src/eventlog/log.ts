// The one interface to the replicated log. Two implementations: JetStream (jetstream.ts) for
// production and MemoryLog (memory.ts) for simulation and tests. Group commit and pipelining
// live above it, in appender.ts, and are shared by both.

import { UNREADABLE } from "../domain/events.js";
import type { LogRecord } from "./envelope.js";

/** The append was refused because the log's last sequence was not the expected one. */
export class FencedError extends Error {
  override name = "FencedError";
  constructor(
    readonly expectedLastSeq: number,
    readonly actualLastSeq: number | undefined,
  ) {
    super(
      `append fenced: expected the log to end at sequence ${expectedLastSeq}` +
        (actualLastSeq === undefined ? "" : `, but it ends at ${actualLastSeq}`) +
        " (another writer appended; this writer is no longer the leader)",
    );
  }
}

/** The log could not be reached in time (no stream leader, connection lost). Retryable. */
export class LogUnavailableError extends Error {
  override name = "LogUnavailableError";
}

export interface AppendAck {
  seq: number;
  /** True when the log already held this msgId (a retry of an append that had landed). */
  duplicate: boolean;
}

/**
 * The first sequence (1 … last) whose record was written at or after `time` (ms; its first
 * readable event's time), or last + 1 when none was: a binary search, since log times only grow
 * within a leader's term. A record the log no longer holds counts as older than any it holds.
 * `roost events --from TIME` starts there; time travel's "at TIME" is the record before the first
 * one written after it.
 */
export async function firstSeqWrittenFrom(log: Pick<EventLog, "get">, last: number, time: number): Promise<number> {
  let lo = 1;
  let hi = last + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const rec = await log.get(mid);
    const ts = rec?.events.find((e) => e.type !== UNREADABLE)?.ts ?? Number.NEGATIVE_INFINITY;
    if (ts < time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface EventLog {
  /** A human-readable name: stream name, or "memory". */
  readonly name: string;
  /** The JetStream stream holding the log (snapshots record it); undefined for a memory log. */
  readonly stream?: string;
  /**
   * Append one encoded record, fenced: it lands only if the log's last sequence is
   * `expectedLastSeq`. `msgId` makes a retry idempotent. Callers may issue several appends
   * without awaiting (pipelining); implementations must keep their order.
   * Rejects with FencedError or LogUnavailableError.
   */
  append(record: Uint8Array, expectedLastSeq: number, msgId: string): Promise<AppendAck>;
  /** The sequence of the newest record (0 when empty). */
  lastSeq(): Promise<number>;
  /**
   * lastSeq(), asked with a timeout of its own (LogUnavailableError when the log does not answer
   * in time). A takeover asks this first: while a stream elects its leader after its nats-server
   * died, each attempt then costs this timeout rather than the log's request timeout (5 s), so
   * the takeover goes on soon after the stream answers again. Logs that are always there (the
   * memory log) need not have it.
   */
  probe?(timeoutMs: number): Promise<number>;
  /** One record by sequence; null when the log does not hold it. */
  get(seq: number): Promise<LogRecord | null>;
  /** The records from `fromSeq` (inclusive) to the end as it is when called, in order. */
  read(fromSeq: number): AsyncIterable<LogRecord>;
  /** The records from `fromSeq` on, following the live end until the signal aborts. */
  follow(fromSeq: number, signal: AbortSignal): AsyncIterable<LogRecord>;
  close(): Promise<void>;
}
