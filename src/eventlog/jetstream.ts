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
// - read()/follow() pull from an ephemeral, ack-less R1 consumer of their own (PullSession), not
//   the client's ordered consumer, for two reasons measured on 2.9.10:
//   * bytes in flight: every pull request carries max_bytes as well as a batch size (the client's
//     consume() takes one or the other, and with max_bytes only asks for 100 messages a pull), so
//     a run of large records cannot pull hundreds of MB at once; the next pull is sent only when
//     the previous one is over and the records not yet consumed leave room for it.
//   * stalls: when the server holding the R1 consumer died (3-node R3, SIGKILL), the client's
//     ordered consumer yielded nothing for the 60 s observed while the stream took new records
//     (it keeps asking the lost consumer for its info, which times out). A session asks for idle
//     heartbeats and ends when the consumer goes silent, loses messages (delivery-sequence gap or
//     a heartbeat ahead of what arrived), is deleted, or delivers nothing while the stream holds
//     records past it (checked with stream info after stallCheckMs without records); the reader
//     then creates a new consumer at the sequence after the last one it yielded, so records come
//     out once each, in order. An idle follower costs a heartbeat every heartbeatMs, a pull every
//     30 s and a stream info every stallCheckMs: no consumer churn.
//   read() stops at the last sequence as of the call and never starts a consumer when there is
//   nothing to read.
//
// See /work/shared/reference/libraries.md §1 for the measured behaviour of client and server.

import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { connect, createInbox, nanos, nuid, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
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

/** Counters of the consumers behind read()/follow(), for diagnostics and tests. */
export interface JetStreamReadStats {
  /** Consumers created: one per read()/follow(), plus one per recreation. */
  consumersCreated: number;
  /** Consumers given up on and replaced at the next sequence (stall, lost messages, deletion). */
  consumerRestarts: number;
  lastRestartReason: string | null;
  /** Pull requests sent. */
  pulls: number;
  /** Idle heartbeats received. */
  heartbeats: number;
  /** Stream-info comparisons made by the stall watchdog. */
  stallChecks: number;
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
/** read()/follow(): bytes requested and not yet consumed, at most (see readBufferBytes). */
const READ_BUFFER_BYTES = 32 * 2 ** 20;
/** read()/follow(): messages per pull request. */
const READ_MAX_MESSAGES = 5000;
/** A pull request waits this long for messages, then the server ends it (408) and we pull again. */
const PULL_EXPIRES_MS = 30_000;
const DEFAULT_HEARTBEAT_MS = 2000;
const DEFAULT_STALL_CHECK_MS = 15_000;
/** The server deletes a consumer nobody pulled from for this long (a reader that died). */
const CONSUMER_INACTIVE_MS = 120_000;
/** NATS refuses a max_payload above 64 MB: no record is larger. */
const MAX_REQUEST_BYTES = 64 * 2 ** 20;
/** Per-message bytes counted on top of the payload (headers, subject, reply). */
const MSG_OVERHEAD_BYTES = 128;

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
    const bufferBytes = Math.max(1, args.readBufferBytes ?? READ_BUFFER_BYTES);
    const heartbeatMs = Math.min(PULL_EXPIRES_MS / 4, Math.max(100, args.heartbeatMs ?? DEFAULT_HEARTBEAT_MS));
    this.pulls = {
      nc: args.nc,
      jsm: args.jsm,
      stream: args.stream,
      inboxPrefix: (args.nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix,
      batch: READ_MAX_MESSAGES,
      bufferBytes,
      // A pull must be able to carry the largest record, or the server answers 409 with nothing.
      requestBytes: Math.min(MAX_REQUEST_BYTES, Math.max(Math.floor(bufferBytes / 2), maxPayload + 64 * 1024)),
      heartbeatMs,
      stallCheckMs: Math.max(heartbeatMs, args.stallCheckMs ?? DEFAULT_STALL_CHECK_MS),
      stats: this.readStats,
    };
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

/** What the pull sessions of one JetStreamLog share. */
interface PullContext {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  inboxPrefix: string | undefined;
  /** Messages per pull request. */
  batch: number;
  /** Bytes requested and not yet consumed, at most (one request's worth at least). */
  bufferBytes: number;
  /** max_bytes of a pull request. */
  requestBytes: number;
  heartbeatMs: number;
  stallCheckMs: number;
  stats: JetStreamReadStats;
}

interface Pulled {
  seq: number;
  data: Uint8Array;
  bytes: number;
}

/** Why a session ended: its consumer is to be replaced (restart), the subscription closed, or a final error. */
type SessionEnd = { kind: "restart"; reason: string } | { kind: "closed" } | { kind: "error"; err: Error };

/**
 * One ephemeral, ack-less R1 consumer from `start`, and the pull requests on it. The
 * subscription callback queues records; the reader takes them. One pull is outstanding at a
 * time, for READ_MAX_MESSAGES and requestBytes (max_bytes), with idle heartbeats; the next is
 * sent when it is over (batch delivered, 408 expired, 409 max bytes) and the queue has room for
 * another, so requested-but-unconsumed bytes stay under bufferBytes. The session ends with
 * "restart" when it cannot trust the consumer any more:
 * - silence (no record, heartbeat or status) for 2.5 heartbeats while a pull waits: the
 *   consumer's server died or the request was lost;
 * - a delivery-sequence gap, or a heartbeat reporting more deliveries than arrived: records
 *   were lost in transit (a reconnect);
 * - 409 consumer deleted, or any other status that ends the pull unexpectedly;
 * - nothing delivered for stallCheckMs while the stream holds records past the last one, and
 *   still nothing a heartbeat later.
 * Records queued before the end are still good: the reader drains them before moving on.
 */
class PullSession {
  end: SessionEnd | null = null;
  private readonly name = `roost_${nuid.next()}`;
  private readonly inbox: string;
  private readonly inboxDot: string;
  private readonly pullSubject: string;
  private sub: Subscription | null = null;
  private created = false;
  private queue: Array<Pulled | undefined> = [];
  private head = 0;
  private queuedBytes = 0;
  private requestBytes: number;
  private req: { no: number; left: number; delivered: number; until: number } | null = null;
  private reqNo = 0;
  private lastDseq = 0;
  /** The stream sequence the consumer should deliver next. */
  private nextSeq: number;
  private lastActivity = 0;
  private lastDelivery = 0;
  private lastCheck = 0;
  private checking = false;
  private suspectAt = 0;
  private confirming = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private waiter: (() => void) | null = null;

  constructor(
    private readonly ctx: PullContext,
    start: number,
  ) {
    this.nextSeq = start;
    this.requestBytes = ctx.requestBytes;
    this.inbox = createInbox(ctx.inboxPrefix);
    this.inboxDot = `${this.inbox}.`;
    this.pullSubject = `$JS.API.CONSUMER.MSG.NEXT.${ctx.stream}.${this.name}`;
  }

  async open(): Promise<void> {
    const { nc, jsm, stream, heartbeatMs } = this.ctx;
    await jsm.consumers.add(stream, {
      name: this.name,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.nextSeq,
      replay_policy: ReplayPolicy.Instant,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(CONSUMER_INACTIVE_MS),
    });
    this.created = true;
    this.ctx.stats.consumersCreated++;
    const sub = nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => this.onMsg(err, msg) });
    this.sub = sub;
    void sub.closed.then(() => this.finish({ kind: "closed" }));
    const now = Date.now();
    this.lastActivity = this.lastDelivery = this.lastCheck = now;
    const every = Math.max(50, Math.floor(heartbeatMs / 2));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref?.();
    this.pull();
  }

  /** The next queued record, if any. */
  take(): Pulled | undefined {
    if (this.head >= this.queue.length) return undefined;
    const m = this.queue[this.head]!;
    this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.queuedBytes -= m.bytes;
    if (this.req === null) this.pull();
    return m;
  }

  /** Resolves when a record is queued, the session ended, or wake() is called. */
  wait(): Promise<void> {
    if (this.end !== null || this.head < this.queue.length) return Promise.resolve();
    return new Promise((resolve) => (this.waiter = resolve));
  }

  wake(): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w();
    }
  }

  close(): void {
    this.finish({ kind: "closed" });
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
    try {
      this.sub?.unsubscribe();
    } catch {
      // the connection is closed
    }
    this.sub = null;
    if (this.created && !this.ctx.nc.isClosed()) {
      // Best effort (its server may be gone): an orphan expires after CONSUMER_INACTIVE_MS.
      this.ctx.jsm.consumers.delete(this.ctx.stream, this.name).catch(() => {});
    }
    this.created = false;
  }

  private finish(end: SessionEnd): void {
    if (this.end === null) {
      this.end = end;
      this.req = null;
    }
    this.wake();
  }

  private restart(reason: string): void {
    this.finish({ kind: "restart", reason: `consumer ${this.name}: ${reason}` });
  }

  private pull(): void {
    if (this.end !== null || this.req !== null || this.sub === null) return;
    const queued = this.queue.length - this.head;
    const { batch, bufferBytes, heartbeatMs, nc } = this.ctx;
    if (queued >= batch) return;
    if (queued > 0 && this.queuedBytes + this.requestBytes > bufferBytes) return;
    const now = Date.now();
    const no = ++this.reqNo;
    this.req = { no, left: batch, delivered: 0, until: now + PULL_EXPIRES_MS + 2 * heartbeatMs };
    this.lastActivity = now;
    try {
      nc.publish(
        this.pullSubject,
        JSON.stringify({
          batch,
          max_bytes: this.requestBytes,
          expires: nanos(PULL_EXPIRES_MS),
          idle_heartbeat: nanos(heartbeatMs),
        }),
        { reply: `${this.inboxDot}${no}` },
      );
      this.ctx.stats.pulls++;
    } catch (err) {
      if (isUnavailable(err)) this.finish({ kind: "closed" });
      else this.finish({ kind: "error", err: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  private onMsg(err: Error | null, msg: Msg): void {
    if (this.end !== null) return;
    if (err) {
      // The server refused the subscription (permissions): final.
      this.finish({ kind: "error", err });
      return;
    }
    const now = Date.now();
    this.lastActivity = now;
    if (msg.subject.startsWith(this.inboxDot)) {
      this.onStatus(msg);
      return;
    }
    const ack = parseAckReply(msg.reply);
    if (ack === null) {
      this.restart(`a message on ${msg.subject} without JetStream delivery info`);
      return;
    }
    if (ack.dseq !== this.lastDseq + 1) {
      this.restart(`delivery ${ack.dseq} arrived after ${this.lastDseq}: messages were lost in transit`);
      return;
    }
    this.lastDseq = ack.dseq;
    this.nextSeq = ack.sseq + 1;
    this.lastDelivery = now;
    this.suspectAt = 0;
    const bytes = msg.data.length + MSG_OVERHEAD_BYTES;
    this.queue.push({ seq: ack.sseq, data: msg.data, bytes });
    this.queuedBytes += bytes;
    const r = this.req;
    if (r !== null) {
      r.delivered++;
      if (--r.left <= 0) {
        this.req = null;
        this.pull();
      }
    }
    this.wake();
  }

  private onStatus(msg: Msg): void {
    const h = msg.headers;
    const code = h?.code ?? 0;
    const description = h?.description ?? "";
    if (code === 100) {
      this.ctx.stats.heartbeats++;
      const delivered = Number(h?.get("Nats-Last-Consumer") || 0);
      if (delivered > this.lastDseq) {
        this.restart(`a heartbeat reports ${delivered} deliveries, ${this.lastDseq} arrived: messages were lost in transit`);
      }
      return;
    }
    if (code === 409 && /consumer deleted/i.test(description)) {
      this.restart("the consumer was deleted");
      return;
    }
    const r = this.req;
    if (r === null || msg.subject !== `${this.inboxDot}${r.no}`) return; // about a pull already given up on
    if (code === 408 || code === 404) {
      // Expired (or nothing to wait for): pull again.
      this.req = null;
      this.pull();
      return;
    }
    if (code === 409 && /exceeds maxbytes/i.test(description)) {
      if (r.delivered === 0) {
        // The next record is larger than a pull may carry (max_payload raised since we opened).
        if (this.requestBytes >= MAX_REQUEST_BYTES) {
          this.finish({ kind: "error", err: new Error(`a record of ${this.ctx.stream} exceeds ${MAX_REQUEST_BYTES} bytes`) });
          return;
        }
        this.requestBytes = Math.min(MAX_REQUEST_BYTES, this.requestBytes * 2);
      }
      this.req = null;
      this.pull();
      return;
    }
    this.restart(`the pull ended with ${code} ${description}`);
  }

  private tick(): void {
    if (this.end !== null) return;
    const r = this.req;
    if (r === null) return; // nothing asked for: the reader is behind, and the queue is full
    const now = Date.now();
    const { heartbeatMs, stallCheckMs, stats, jsm, stream } = this.ctx;
    if (now > r.until) {
      // Expired, and its 408 lost: pull again (silence would have ended the session first).
      this.req = null;
      this.pull();
      return;
    }
    if (now - this.lastActivity > 2.5 * heartbeatMs) {
      // Confirm after the poll phase: if the event loop was blocked, heartbeats may be waiting
      // in the socket, unread; setImmediate runs after they are.
      if (this.confirming) return;
      this.confirming = true;
      const since = this.lastActivity;
      setImmediate(() => {
        this.confirming = false;
        if (this.end === null && this.req !== null && this.lastActivity === since) {
          this.restart(`no heartbeat for ${Date.now() - since} ms`);
        }
      });
      return;
    }
    if (this.head < this.queue.length) return; // records waiting for the reader: not stalled
    if (this.suspectAt > 0 && now - this.suspectAt >= heartbeatMs) {
      if (this.lastDelivery < this.suspectAt) {
        this.restart(`the stream holds sequence ${this.nextSeq} and later, but nothing was delivered for ${now - this.lastDelivery} ms`);
        return;
      }
      this.suspectAt = 0;
    }
    if (!this.checking && now - this.lastDelivery >= stallCheckMs && now - this.lastCheck >= stallCheckMs) {
      this.checking = true;
      this.lastCheck = now;
      stats.stallChecks++;
      jsm.streams
        .info(stream)
        .then(
          (si) => {
            if (this.end === null && this.lastDelivery < now && si.state.last_seq >= this.nextSeq) this.suspectAt = Date.now();
          },
          () => {}, // no stream leader right now: check again later
        )
        .finally(() => (this.checking = false));
    }
  }
}

/**
 * Stream and delivery sequences from a JetStream message's reply subject:
 * $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending> or, with domain and
 * account hash, $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>].
 */
function parseAckReply(reply: string | undefined): { sseq: number; dseq: number } | null {
  if (!reply?.startsWith("$JS.ACK.")) return null;
  const t = reply.split(".");
  const base = t.length === 9 ? 5 : t.length >= 11 ? 7 : -1;
  if (base < 0) return null;
  const sseq = Number(t[base]);
  const dseq = Number(t[base + 1]);
  return Number.isSafeInteger(sseq) && Number.isSafeInteger(dseq) ? { sseq, dseq } : null;
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

export { RecordTooLargeError };
