// An in-memory EventLog for simulation, tests and `roost dev` without a nats-server.
// Same contract as JetStream: fenced appends, msgId de-duplication, ordered reads, follow, and
// ChainedAppend (JetStream's Nats-Expected-Last-Msg-Id), so the Appender pipelines over it.
// The checks run in nats-server's order: duplicate msgId first, then the previous msgId, then
// the sequence.

import type { ChainedAppend } from "./appender.js";
import { decodeRecord, type LogRecord } from "./envelope.js";
import { FencedError, type AppendAck, type EventLog } from "./log.js";

export class MemoryLog implements EventLog, ChainedAppend {
  readonly name = "memory";
  private readonly records: Uint8Array[] = [];
  private readonly msgIds = new Map<string, number>();
  /** msgId of the last record appended (undefined while empty). */
  private lastMsgId: string | undefined = undefined;
  private waiters: Array<() => void> = [];
  private closed = false;

  async append(record: Uint8Array, expectedLastSeq: number, msgId: string): Promise<AppendAck> {
    return this.appendSync(record, expectedLastSeq, msgId);
  }

  async appendAfter(record: Uint8Array, expectedLastSeq: number, msgId: string, prevMsgId: string | undefined): Promise<AppendAck> {
    return this.appendSync(record, expectedLastSeq, msgId, prevMsgId);
  }

  /**
   * Synchronous append, for the deterministic simulator. Lands only if the log ends at
   * `expectedLastSeq` and (when `prevMsgId` is given) its last record's msgId is `prevMsgId`;
   * a msgId the log already holds is answered as a duplicate before either check.
   */
  appendSync(record: Uint8Array, expectedLastSeq: number, msgId: string, prevMsgId?: string): AppendAck {
    if (this.closed) throw new Error("memory log is closed");
    const dup = this.msgIds.get(msgId);
    if (dup !== undefined) return { seq: dup, duplicate: true };
    const last = this.records.length;
    if (prevMsgId !== undefined && prevMsgId !== this.lastMsgId) throw new FencedError(expectedLastSeq, undefined);
    if (expectedLastSeq !== last) throw new FencedError(expectedLastSeq, last);
    this.records.push(record);
    this.msgIds.set(msgId, last + 1);
    this.lastMsgId = msgId;
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
    return { seq: last + 1, duplicate: false };
  }

  async lastSeq(): Promise<number> {
    return this.records.length;
  }

  async get(seq: number): Promise<LogRecord | null> {
    const raw = this.records[seq - 1];
    return raw ? { seq, events: decodeRecord(raw) } : null;
  }

  get length(): number {
    return this.records.length;
  }

  /** The raw bytes of record `seq` (1-based). */
  raw(seq: number): Uint8Array | undefined {
    return this.records[seq - 1];
  }

  async *read(fromSeq: number): AsyncIterable<LogRecord> {
    const end = this.records.length;
    for (let s = Math.max(1, fromSeq); s <= end; s++) {
      yield { seq: s, events: decodeRecord(this.records[s - 1]!) };
    }
  }

  async *follow(fromSeq: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    let s = Math.max(1, fromSeq);
    while (!signal.aborted && !this.closed) {
      while (s <= this.records.length) {
        yield { seq: s, events: decodeRecord(this.records[s - 1]!) };
        s++;
        if (signal.aborted) return;
      }
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiters.push(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
  }
}
