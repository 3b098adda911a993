// EventLog wrappers and helpers shared by the Appender and JetStream tests.

import { supportsChainedAppend } from "../../src/eventlog/appender.js";
import { asTaskId } from "../../src/domain/types.js";
import { makeEnvelope, type AnyEnvelope, type LogEntry, type LogRecord } from "../../src/eventlog/envelope.js";
import { LogUnavailableError, type AppendAck, type EventLog } from "../../src/eventlog/log.js";

/** A small, distinct event; `n` is recoverable from the decoded event (see evN). */
export function ev(n: number, writer = "w"): AnyEnvelope {
  return makeEnvelope(
    "TaskStateChanged",
    { taskId: asTaskId(`${writer}/task-${n}`), to: "RUNNING", agentSeq: n },
    { epoch: 1, ts: 1_700_000_000_000 + n, corr: `c-${n}`, reason: "test" },
  );
}

/** The `n` and writer of an event made by ev(). */
export function evKey(e: LogEntry): string {
  if (e.type !== "TaskStateChanged") throw new Error(`unexpected event type ${e.type}`);
  return e.data.taskId;
}

export async function collect(it: AsyncIterable<LogRecord>): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/** Settled state of a promise, without awaiting rejections as failures. */
export type Settled<T> = { ok: true; value: T } | { ok: false; err: unknown };
export function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
}

/**
 * A log without ChainedAppend: forwards everything but appendAfter to `inner`, so the Appender
 * keeps one record in flight over it (what a log without the previous-record check gets).
 */
export function unchained(inner: EventLog): EventLog {
  return {
    name: `unchained(${inner.name})`,
    append: (record, expectedLastSeq, msgId) => inner.append(record, expectedLastSeq, msgId),
    lastSeq: () => inner.lastSeq(),
    get: (seq) => inner.get(seq),
    read: (fromSeq) => inner.read(fromSeq),
    follow: (fromSeq, signal) => inner.follow(fromSeq, signal),
    close: () => inner.close(),
  };
}

export interface AppendCall {
  expected: number;
  msgId: string;
  prevMsgId: string | undefined;
}

/**
 * Forwards to `inner`, recording every call and the peak number of appends outstanding at once.
 * Exposes appendAfter only when `inner` has it, so the Appender sees the same capabilities.
 * `fault(call, attempt)` may inject failures:
 *   "drop"  reject with LogUnavailableError without forwarding (the record did not land);
 *   "ghost" forward, wait for the ack, then reject with LogUnavailableError (it DID land);
 *   undefined  forward normally.
 */
export type Fault = "drop" | "ghost" | undefined;

export function instrument(
  inner: EventLog,
  fault: (call: AppendCall, attempt: number) => Fault = () => undefined,
): EventLog & { calls: AppendCall[]; peakInFlight: number; faults: number } {
  const attempts = new Map<string, number>();
  let inFlight = 0;
  const state = {
    calls: [] as AppendCall[],
    peakInFlight: 0,
    faults: 0,
  };
  const run = (call: AppendCall, forward: () => Promise<AppendAck>): Promise<AppendAck> => {
    state.calls.push(call);
    const attempt = (attempts.get(call.msgId) ?? 0) + 1;
    attempts.set(call.msgId, attempt);
    const f = fault(call, attempt);
    inFlight++;
    state.peakInFlight = Math.max(state.peakInFlight, inFlight);
    const done = () => {
      inFlight--;
    };
    if (f === "drop") {
      state.faults++;
      done();
      return Promise.reject(new LogUnavailableError(`injected: ${call.msgId} dropped`));
    }
    const p = forward();
    if (f === "ghost") {
      state.faults++;
      return p.then(
        () => {
          done();
          throw new LogUnavailableError(`injected: ${call.msgId} landed but the ack was lost`);
        },
        (err: unknown) => {
          done();
          throw err;
        },
      );
    }
    return p.then(
      (ack) => {
        done();
        return ack;
      },
      (err: unknown) => {
        done();
        throw err;
      },
    );
  };
  const base = {
    name: `instrumented(${inner.name})`,
    get calls() {
      return state.calls;
    },
    get peakInFlight() {
      return state.peakInFlight;
    },
    get faults() {
      return state.faults;
    },
    append: (record: Uint8Array, expected: number, msgId: string) =>
      run({ expected, msgId, prevMsgId: undefined }, () => inner.append(record, expected, msgId)),
    lastSeq: () => inner.lastSeq(),
    get: (seq: number) => inner.get(seq),
    read: (fromSeq: number) => inner.read(fromSeq),
    follow: (fromSeq: number, signal: AbortSignal) => inner.follow(fromSeq, signal),
    close: () => inner.close(),
  };
  if (supportsChainedAppend(inner)) {
    return Object.assign(base, {
      appendAfter: (record: Uint8Array, expected: number, msgId: string, prevMsgId: string | undefined) =>
        run({ expected, msgId, prevMsgId }, () => inner.appendAfter(record, expected, msgId, prevMsgId)),
    });
  }
  return base;
}
