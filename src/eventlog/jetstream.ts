// The production EventLog: one JetStream stream, one subject, one record per message.
//
// - append() publishes with Nats-Expected-Last-Sequence (fencing) and Nats-Msg-Id (idempotent
//   retry); appendAfter() adds Nats-Expected-Last-Msg-Id (the writer's previous record), which
//   makes pipelining safe (appender.ts, ChainedAppend). Publishes are written to the socket
//   synchronously in call order, so callers may pipeline many appends on one connection.
// - Errors are mapped to the EventLog contract: a wrong last sequence (10071) or wrong last msg
//   id (10070) is FencedError; a full stream (10077, discard: new) is a final error;
//   timeouts, no responders ("jetstream is not enabled", 503), a closed, draining or
//   reconnecting connection and a temporarily unavailable JetStream are LogUnavailableError
//   (retryable; an append that timed out may have landed: retry with the same msgId).
// - read()/follow() use an ordered consumer (ephemeral, ack-less, recreated by the client after a
//   gap) with consume(): fetch() would wait for `expires` on a short last batch. read() stops at
//   the last sequence as of the call and never starts a consumer when there is nothing to read.
//
// See /work/shared/reference/libraries.md §1 for the measured behaviour of client and server.

import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { RecordTooLargeError, type ChainedAppend, type RecordSizeLimit } from "./appender.js";
import { decodeRecord, type LogRecord } from "./envelope.js";
import { FencedError, LogUnavailableError, type AppendAck, type EventLog } from "./log.js";

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


const DEFAULT_MAX_MSGS = 1_000_000_000;
const DEFAULT_MAX_BYTES = -1;
/** Bytes of headers (msg id, expectations) and protocol slack reserved below max_payload. */
const HEADER_SLACK = 512;
/** Consumer buffer budget: max_messages is chosen so ~this many bytes are requested at once. */
const READ_BUFFER_BYTES = 32 * 2 ** 20;
const READ_MAX_MESSAGES = 5000;
const READ_MIN_MESSAGES = 64;

const WRONG_LAST_SEQ = /wrong last sequence:\s*(\d+)/i;
/** JSStreamStoreFailedF: the store refused the message (stream full, out of resources). */
const STREAM_STORE_FAILED = 10077;
/** JSStreamWrongLastMsgIDErr: "wrong last msg ID: <id>". */
const WRONG_LAST_MSG_ID = 10070;

/** True for errors that mean "JetStream or the connection is not reachable right now". */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  switch (err.name) {
    case "TimeoutError":
    case "JetStreamNotEnabled":
    case "NoRespondersError":
    case "ClosedConnectionError":
    case "DrainingConnectionError":
    case "ConnectionError":
      return true;
    case "RequestError":
      // no responders, or a request cancelled by a disconnect; not a permissions violation
      return !(err.cause instanceof Error && err.cause.name === "PermissionViolationError");
  }
  if (err instanceof JetStreamApiError) {
    // 10008: "JetStream system temporarily unavailable"; 503: no leader / not ready. But 10077
    // (also 503) is a store failure such as "maximum messages exceeded" on a full stream: final.
    if (err.code === STREAM_STORE_FAILED) return false;
    return err.code === 10008 || err.status === 503 || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
  }
  if (err.name === "JetStreamStatusError" && (err as { code?: number }).code === 503) return true;
  return false;
}

function toLogError(err: unknown, expectedLastSeq: number): Error {
  if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
    const m = WRONG_LAST_SEQ.exec(err.message);
    return new FencedError(expectedLastSeq, m ? Number(m[1]) : undefined);
  }
  if (err instanceof JetStreamApiError && err.code === WRONG_LAST_MSG_ID) {
    // The stream ends where expected, but not with this writer's previous record.
    return new FencedError(expectedLastSeq, undefined);
  }
  if (isUnavailable(err)) {
    return new LogUnavailableError(`event log unavailable: ${(err as Error).message}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

function mapUnavailable(err: unknown): Error {
  if (isUnavailable(err)) return new LogUnavailableError(`event log unavailable: ${(err as Error).message}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/** Does NATS subject pattern `pattern` (with * and >) match the literal subject `subject`? */
function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Refuse an existing stream whose configuration would lose or hide events. Loose on the rest. */
function checkCompatible(cfg: StreamConfig, subject: string): void {
  const problems: string[] = [];
  if (!(cfg.subjects ?? []).some((p) => subjectMatches(p, subject))) {
    problems.push(`its subjects ${JSON.stringify(cfg.subjects ?? [])} do not capture "${subject}"`);
  }
  if (cfg.retention !== RetentionPolicy.Limits) problems.push(`retention is "${cfg.retention}", not "limits"`);
  if (cfg.discard === DiscardPolicy.Old && (cfg.max_msgs > 0 || cfg.max_bytes > 0)) {
    problems.push('discard is "old" with limits set: the oldest events would be deleted silently');
  }
  if (cfg.max_age && cfg.max_age > 0) problems.push("max_age is set: events would expire");
  if (cfg.sealed) problems.push("the stream is sealed");
  if (problems.length > 0) {
    throw new Error(`stream ${cfg.name} exists but cannot hold the event log: ${problems.join("; ")}`);
  }
}

export class JetStreamLog implements EventLog, ChainedAppend, RecordSizeLimit {
  readonly name: string;
  readonly stream: string;
  readonly subject: string;
  readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly ownsConnection: boolean;
  private readonly maxRecordBytes: number;
  private closed = false;

  /** Use openJetStreamLog(). */
  constructor(args: {
    nc: NatsConnection;
    js: JetStreamClient;
    jsm: JetStreamManager;
    stream: string;
    subject: string;
    ownsConnection: boolean;
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
    yield* this.consume(start, target, undefined, batchFor(info));
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
    yield* this.consume(start, null, signal, batchFor(info));
  }

  private async *consume(
    start: number,
    target: number | null,
    signal: AbortSignal | undefined,
    maxMessages: number,
  ): AsyncGenerator<RawRecord> {
    let consumer;
    try {
      consumer = await this.js.consumers.get(this.stream, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
      });
    } catch (err) {
      throw mapUnavailable(err);
    }
    let messages;
    try {
      messages = await consumer.consume({ max_messages: maxMessages });
    } catch (err) {
      consumer.delete().catch(() => {});
      throw mapUnavailable(err);
    }
    const msgs = messages;
    const onAbort = () => msgs.stop();
    signal?.addEventListener("abort", onAbort, { once: true });
    let next = start;
    try {
      if (signal?.aborted) return;
      for await (const m of msgs) {
        if (signal?.aborted) return;
        const seq = m.seq;
        if (seq !== next) {
          // Only a purge below `next` can do this (deny_delete forbids holes).
          throw new LogGapError(next, seq);
        }
        next = seq + 1;
        yield { seq, data: m.data };
        if (target !== null && seq >= target) return;
        if (signal?.aborted) return;
      }
      // The iterator ended on its own: the connection closed (or the consumer failed).
      if (signal?.aborted) return;
      if (target === null && this.closed) return;
      throw new LogUnavailableError(
        `event log unavailable: the consumer on ${this.stream} ended at sequence ${next - 1}` +
          (target === null ? "" : ` before reaching ${target}`) +
          (this.nc.isClosed() ? " (connection closed)" : ""),
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
      msgs.stop();
      // Ordered consumers are ephemeral (5 min inactivity); delete it now rather than later.
      if (!this.nc.isClosed()) consumer.delete().catch(() => {});
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

function batchFor(info: StreamInfo): number {
  const { messages, bytes } = info.state;
  if (messages <= 0) return READ_MAX_MESSAGES;
  const avg = Math.max(1, bytes / messages);
  return Math.max(READ_MIN_MESSAGES, Math.min(READ_MAX_MESSAGES, Math.floor(READ_BUFFER_BYTES / avg)));
}

async function retryWhileUnavailable<T>(what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isUnavailable(err) || Date.now() + delay > deadline) {
        if (isUnavailable(err)) throw new LogUnavailableError(`${what}: ${(err as Error).message}`, { cause: err });
        throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
  }
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
    }));
  try {
    const jsm = await retryWhileUnavailable(`JetStream on ${nc.getServer()} is not ready`, readyTimeout, () =>
      jetstreamManager(nc, { timeout }),
    );
    const js = jetstream(nc, { timeout });
    await retryWhileUnavailable(`cannot open stream ${stream}`, readyTimeout, async () => {
      let info: StreamInfo | null = null;
      try {
        info = await jsm.streams.info(stream);
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      }
      if (info) {
        checkCompatible(info.config, subject);
        return;
      }
      if (opts.create === false) throw new Error(`stream ${stream} does not exist (and create is false)`);
      const config: Partial<StreamConfig> & { name: string } = {
        name: stream,
        subjects: [subject],
        storage: StorageType.File,
        num_replicas: opts.replicas ?? 1,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.New,
        max_msgs: opts.maxMsgs ?? DEFAULT_MAX_MSGS,
        max_bytes: opts.maxBytes ?? DEFAULT_MAX_BYTES,
        max_age: 0,
        duplicate_window: nanos(2 * 60_000),
        allow_direct: true,
        deny_delete: true,
        deny_purge: false,
      };
      try {
        await jsm.streams.add(config);
      } catch (err) {
        // Lost a creation race to another process: use its stream if it fits.
        if (err instanceof JetStreamApiError && /already in use/i.test(err.message)) {
          checkCompatible((await jsm.streams.info(stream)).config, subject);
          return;
        }
        throw err;
      }
    });
    return new JetStreamLog({ nc, js, jsm, stream, subject, ownsConnection });
  } catch (err) {
    if (ownsConnection) await nc.close().catch(() => {});
    throw err;
  }
}

export { RecordTooLargeError };
