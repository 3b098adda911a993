// The production EventLog: one JetStream stream, one subject, one record per message.
//
// - append() publishes with Nats-Expected-Last-Sequence (fencing) and Nats-Msg-Id (idempotent
//   retry); appendAfter() adds Nats-Expected-Last-Msg-Id (the writer's previous record), which
//   makes pipelining safe (appender.ts, ChainedAppend). Publishes are written to the socket
//   synchronously in call order, so callers may pipeline many appends on one connection.
// - Errors are mapped to the EventLog contract (jetstreamErrors.ts): fenced, final, or
//   LogUnavailableError (retryable).
// - read()/follow() pull from a consumer of their own, one pull session after another
//   (pullSession.ts: bytes in flight bounded, a lost consumer noticed by its heartbeats and
//   replaced at the next sequence), each record once and in order. read() stops at the last
//   sequence as of the call and never starts a consumer when there is nothing to read.
// - openJetStreamLog() connects, finds or creates the stream (stream.ts), and makes the log.

import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { RecordTooLargeError, type ChainedAppend, type RecordSizeLimit } from "./appender.js";
import { decodeRecord, type LogRecord } from "./envelope.js";
import { isUnavailable, mapUnavailable, retryWhileUnavailable, toLogError } from "./jetstreamErrors.js";
import { LogUnavailableError, type AppendAck, type EventLog } from "./log.js";
import { type JetStreamReadStats, type PullContext, pullContext, PullSession } from "./pullSession.js";
import { openLogStream } from "./stream.js";

export interface JetStreamLogOptions {
  /** NATS server URL(s). Ignored when `nc` is given. */
  servers: string | string[];
  /** Stream name. Default "ROOST". */
  stream?: string;
  /** The one subject records are published on. Default `${stream.toLowerCase()}.events`. */
  subject?: string;
  /** Stream replicas when the stream is created. Default 1. */
  replicas?: 1 | 3;
  /** Use this connection instead of opening one (then close() leaves it open). */
  nc?: NatsConnection;
  /** Create the stream when it does not exist. Default true. */
  create?: boolean;
  /**
   * Stream limits when the stream is created; discard: New makes a full stream refuse appends
   * instead of deleting history. maxBytes defaults to -1 (bounded by the server's
   * max_file_store): a positive max_bytes is reserved from the account's storage up front.
   */
  maxMsgs?: number;
  maxBytes?: number;
  /** Request timeout for publishes and API calls, ms. Default 5000. */
  timeoutMs?: number;
  /** How long to retry the first stream lookup/creation while JetStream is not ready. Default 20 s. */
  readyTimeoutMs?: number;
  /** Connection name shown by the server. Default "roost-eventlog". */
  name?: string;
  /**
   * read()/follow(): the most bytes requested from the server and not yet consumed (about; never
   * less than one pull of max_payload). Default 32 MiB.
   */
  readBufferBytes?: number;
  /**
   * read()/follow(): the idle heartbeat asked for while a pull waits, ms. After 2.5 heartbeats
   * of silence the consumer is presumed lost (its server died) and recreated. Default 2000.
   */
  heartbeatMs?: number;
  /**
   * read()/follow(): after this long without a record while a pull waits, compare with the
   * stream's last sequence; when the stream is ahead and still nothing comes for a heartbeat,
   * recreate the consumer. Default 15000.
   */
  stallCheckMs?: number;
}

/**
 * A raw record as stored: the stream sequence and the undecoded MessagePack bytes. `data` may be
 * a view into the client's receive buffer: copy it to keep it beyond the iteration step.
 */
export interface RawRecord {
  seq: number;
  data: Uint8Array;
}

/** The stream no longer holds records that were asked for (purged below a snapshot). */
export class LogGapError extends Error {
  override name = "LogGapError";
  constructor(
    readonly wantedSeq: number,
    readonly firstAvailableSeq: number,
  ) {
    super(
      `log gap: record ${wantedSeq} was asked for but the stream starts at ${firstAvailableSeq} ` +
        "(purged); load a snapshot that covers the purged records",
    );
  }
}

/** Bytes of headers (msg id, expectations) and protocol slack reserved below max_payload. */
const HEADER_SLACK = 512;

export class JetStreamLog implements EventLog, ChainedAppend, RecordSizeLimit {
  readonly name: string;
  readonly stream: string;
  readonly subject: string;
  readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly ownsConnection: boolean;
  private readonly maxRecordBytes: number;
  private readonly pulls: PullContext;
  /** How long read() retries a consumer that cannot be created or keeps failing, without progress. */
  private readonly readUnavailableMs: number;
  private closed = false;
  /** Counters of the consumers behind read()/follow(). */
  readonly readStats: JetStreamReadStats = {
    consumersCreated: 0,
    consumerRestarts: 0,
    lastRestartReason: null,
    pulls: 0,
    heartbeats: 0,
    stallChecks: 0,
  };

  /** Use openJetStreamLog(). */
  constructor(args: {
    nc: NatsConnection;
    js: JetStreamClient;
    jsm: JetStreamManager;
    stream: string;
    subject: string;
    ownsConnection: boolean;
    readBufferBytes?: number;
    heartbeatMs?: number;
    stallCheckMs?: number;
    readUnavailableMs?: number;
  }) {
    this.nc = args.nc;
    this.js = args.js;
    this.jsm = args.jsm;
    this.stream = args.stream;
    this.name = args.stream;
    this.subject = args.subject;
    this.ownsConnection = args.ownsConnection;
    const maxPayload = args.nc.info?.max_payload ?? 1024 * 1024;
    this.maxRecordBytes = maxPayload - HEADER_SLACK;
    this.pulls = pullContext(args.nc, args.jsm, args.stream, args, this.readStats);
    this.readUnavailableMs = args.readUnavailableMs ?? 20_000;
  }

  /** The largest record append() accepts (the server's max_payload less header room); the
   *  Appender caps its records at this. */
  get maxRecordSize(): number {
    return this.maxRecordBytes;
  }

  append(record: Uint8Array, expectedLastSeq: number, msgId: string): Promise<AppendAck> {
    return this.appendAfter(record, expectedLastSeq, msgId, undefined);
  }

  /**
   * append(), also fenced on the writer's previous record: with `prevMsgId` the record lands only
   * if the stream's last message carries that msgId (Nats-Expected-Last-Msg-Id). This is what
   * makes pipelined appends safe against a second writer (see appender.ts). A duplicate msgId is
   * answered before either check (checked on 2.9.10), so retries stay idempotent.
   */
  appendAfter(record: Uint8Array, expectedLastSeq: number, msgId: string, prevMsgId: string | undefined): Promise<AppendAck> {
    if (record.length > this.maxRecordBytes) {
      return Promise.reject(
        new RecordTooLargeError(`record of ${record.length} bytes exceeds the server's limit of ${this.maxRecordBytes}`),
      );
    }
    // js.publish writes to the socket before its first await: call order is wire order.
    return this.js
      .publish(this.subject, record, {
        msgID: msgId,
        expect: prevMsgId
          ? { lastSequence: expectedLastSeq, lastMsgID: prevMsgId, streamName: this.stream }
          : { lastSequence: expectedLastSeq, streamName: this.stream },
      })
      .then(
        (pa) => ({ seq: pa.seq, duplicate: pa.duplicate === true }),
        (err: unknown) => {
          throw toLogError(err, expectedLastSeq);
        },
      );
  }

  async lastSeq(): Promise<number> {
    return (await this.info()).state.last_seq;
  }

  async get(seq: number): Promise<LogRecord | null> {
    try {
      const m = await this.jsm.streams.getMessage(this.stream, { seq });
      return m ? { seq: m.seq, events: decodeRecord(m.data) } : null;
    } catch (err) {
      if (/no message found|not found/i.test((err as Error).message)) return null;
      throw mapUnavailable(err);
    }
  }

  /** Managers with a shorter request timeout than the log's, by timeout: for probe(). */
  private readonly probeManagers = new Map<number, Promise<JetStreamManager>>();

  async probe(timeoutMs: number): Promise<number> {
    let jsm = this.probeManagers.get(timeoutMs);
    if (jsm === undefined) {
      // No API check: that would be a request of its own, with nothing to say a probe does not.
      jsm = jetstreamManager(this.nc, { timeout: timeoutMs, checkAPI: false });
      this.probeManagers.set(timeoutMs, jsm);
    }
    try {
      return (await (await jsm).streams.info(this.stream)).state.last_seq;
    } catch (err) {
      throw mapUnavailable(err);
    }
  }

  /** Stream info, with connectivity errors mapped to LogUnavailableError. */
  async info(): Promise<StreamInfo> {
    try {
      return await this.jsm.streams.info(this.stream);
    } catch (err) {
      throw mapUnavailable(err);
    }
  }

  async *read(fromSeq: number): AsyncIterable<LogRecord> {
    for await (const r of this.readRaw(fromSeq)) {
      yield { seq: r.seq, events: decodeRecord(r.data) };
    }
  }

  /** Like read(), without decoding: the stored bytes of each record. */
  async *readRaw(fromSeq: number): AsyncIterable<RawRecord> {
    const start = Math.max(1, Math.floor(fromSeq));
    const info = await this.info();
    const target = info.state.last_seq;
    if (target < start) return; // caught up: a consumer would only wait
    if (info.state.first_seq > start) throw new LogGapError(start, info.state.first_seq);
    yield* this.consume(start, target, undefined);
  }

  async *follow(fromSeq: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    for await (const r of this.followRaw(fromSeq, signal)) {
      yield { seq: r.seq, events: decodeRecord(r.data) };
    }
  }

  /** Like follow(), without decoding. */
  async *followRaw(fromSeq: number, signal: AbortSignal): AsyncIterable<RawRecord> {
    if (signal.aborted) return;
    const start = Math.max(1, Math.floor(fromSeq));
    const info = await this.info();
    if (info.state.messages > 0 && info.state.first_seq > start) throw new LogGapError(start, info.state.first_seq);
    yield* this.consume(start, null, signal);
  }

  /**
   * Records from `start` to `target` (read) or on and on (follow, target null), each once and in
   * order, over as many consumers as it takes: a session that ends for any reason but a final
   * error is replaced by a new consumer at the sequence after the last record yielded. follow()
   * retries until aborted or closed; read() gives up (LogUnavailableError) after
   * readUnavailableMs without progress.
   */
  private async *consume(start: number, target: number | null, signal: AbortSignal | undefined): AsyncGenerator<RawRecord> {
    let next = start;
    let failures = 0; // sessions in a row that yielded nothing
    let progressAt = Date.now();
    for (;;) {
      if (signal?.aborted) return;
      if (this.closed || this.nc.isClosed() || this.nc.isDraining()) {
        if (target === null && this.closed) return;
        throw new LogUnavailableError(
          `event log unavailable: reading ${this.stream} stopped at sequence ${next - 1}` +
            (target === null ? "" : ` before reaching ${target}`) +
            " (connection closed)",
        );
      }
      const session = new PullSession(this.pulls, next);
      let why: string;
      let openErr: unknown = null;
      try {
        await session.open();
      } catch (err) {
        openErr = err;
      }
      if (openErr !== null) {
        session.close();
        if (!isUnavailable(openErr)) throw mapUnavailable(openErr);
        why = `cannot create a consumer: ${(openErr as Error).message}`;
      } else {
        const from = next;
        const wake = () => session.wake();
        signal?.addEventListener("abort", wake, { once: true });
        try {
          for (;;) {
            for (let r = session.take(); r !== undefined; r = session.take()) {
              if (r.seq < next) continue;
              // The consumer starts at `next` and reports lost deliveries itself: a higher
              // sequence means the stream no longer holds `next` (a purge; deny_delete forbids holes).
              if (r.seq > next) throw new LogGapError(next, r.seq);
              next = r.seq + 1;
              yield { seq: r.seq, data: r.data };
              if (target !== null && r.seq >= target) return;
              if (signal?.aborted) return;
            }
            if (signal?.aborted || session.end !== null) break;
            await session.wait();
          }
        } finally {
          signal?.removeEventListener("abort", wake);
          session.close();
        }
        if (signal?.aborted) return;
        const end = session.end!;
        if (end.kind === "error") throw end.err;
        if (next > from) {
          failures = 0;
          progressAt = Date.now();
        }
        if (end.kind === "closed") {
          why = "the subscription closed"; // the loop's head ends the read if the connection did
        } else {
          why = end.reason;
          this.readStats.consumerRestarts++;
          this.readStats.lastRestartReason = why;
        }
      }
      if (target !== null && Date.now() - progressAt > this.readUnavailableMs) {
        throw new LogUnavailableError(
          `event log unavailable: reading ${this.stream} made no progress past sequence ${next - 1} ` +
            `for ${Date.now() - progressAt} ms (${why})`,
        );
      }
      if (failures > 0) await pause(Math.min(2000, 50 * 2 ** failures), signal);
      failures++;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsConnection && !this.nc.isClosed()) {
      try {
        await this.nc.drain();
      } catch {
        await this.nc.close().catch(() => {});
      }
    }
  }
}

/** Sleep `ms`, or less if the signal aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Connect (unless given `nc`), find or create the stream, and return the log on it. */
export async function openJetStreamLog(opts: JetStreamLogOptions): Promise<JetStreamLog> {
  const stream = opts.stream ?? "ROOST";
  const subject = opts.subject ?? `${stream.toLowerCase()}.events`;
  const timeout = opts.timeoutMs ?? 5000;
  const readyTimeout = opts.readyTimeoutMs ?? 20_000;
  const ownsConnection = opts.nc === undefined;
  const nc =
    opts.nc ??
    (await connect({
      servers: opts.servers,
      name: opts.name ?? "roost-eventlog",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout,
      // Every publish is a request, and by default the client builds two Errors per request (their
      // stack traces point at the caller should it fail) besides the one it always builds. Errors
      // here are mapped by class and code (jetstreamErrors.ts), never by stack. Turned off, bench
      // placement committed 16.8k placements/s against 15.0k–16.0k, and its submit-to-placed
      // p99 was 18.1/18.6 ms against 23.7/22.5 (2 pairs back to back, 2026-12-04).
      noAsyncTraces: true,
    }));
  try {
    const jsm = await retryWhileUnavailable(`JetStream on ${nc.getServer()} is not ready`, readyTimeout, () =>
      jetstreamManager(nc, { timeout }),
    );
    const js = jetstream(nc, { timeout });
    await openLogStream(
      jsm,
      { stream, subject, replicas: opts.replicas, create: opts.create, maxMsgs: opts.maxMsgs, maxBytes: opts.maxBytes },
      readyTimeout,
    );
    return new JetStreamLog({
      nc,
      js,
      jsm,
      stream,
      subject,
      ownsConnection,
      readBufferBytes: opts.readBufferBytes,
      heartbeatMs: opts.heartbeatMs,
      stallCheckMs: opts.stallCheckMs,
      readUnavailableMs: readyTimeout,
    });
  } catch (err) {
    if (ownsConnection) await nc.close().catch(() => {});
    throw err;
  }
}
