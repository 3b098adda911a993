// Reading the log: one pull session is one ephemeral, ack-less R1 consumer of the reader's own,
// and the pull requests on it. JetStreamLog.read()/follow() run one session after another, each
// from the sequence after the last record yielded (jetstream.ts, consume()).
//
// Why not the client's ordered consumer, for two reasons measured on nats-server 2.9.10 with
// @nats-io/jetstream 3.4 (test/eventlog.follow.test.ts exercises both):
// - bytes in flight: every pull request carries max_bytes as well as a batch size (the client's
//   consume() takes one or the other, and with max_bytes only asks for 100 messages a pull), so a
//   run of large records cannot pull hundreds of MB at once; the next pull is sent only when the
//   previous one is over and the records not yet consumed leave room for it.
// - stalls: when the server holding the R1 consumer died (3-node R3, SIGKILL), the client's
//   ordered consumer yielded nothing for the 60 s observed while the stream took new records (it
//   keeps asking the lost consumer for its info, which times out). A session asks for idle
//   heartbeats and ends when the consumer goes silent, loses messages (delivery-sequence gap or a
//   heartbeat ahead of what arrived), is deleted, or delivers nothing while the stream holds
//   records past it (checked with stream info after stallCheckMs without records); the reader
//   then creates a new consumer at the sequence after the last one it yielded, so records come
//   out once each, in order. An idle follower costs a heartbeat every heartbeatMs, a pull every
//   30 s and a stream info every stallCheckMs: no consumer churn.

import { AckPolicy, DeliverPolicy, type JetStreamManager, ReplayPolicy } from "@nats-io/jetstream";
import { createInbox, type Msg, type NatsConnection, nanos, nuid, type Subscription } from "@nats-io/transport-node";
import { isUnavailable } from "./jetstreamErrors.js";

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

/** What the pull sessions of one JetStreamLog share. */
export interface PullContext {
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

/** The read options of a JetStreamLog (JetStreamLogOptions: readBufferBytes, heartbeatMs, stallCheckMs). */
export interface PullOptions {
  readBufferBytes?: number;
  heartbeatMs?: number;
  stallCheckMs?: number;
}

/** What the pull sessions of one JetStreamLog share, from its connection and read options. */
export function pullContext(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  opts: PullOptions,
  stats: JetStreamReadStats,
): PullContext {
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const bufferBytes = Math.max(1, opts.readBufferBytes ?? READ_BUFFER_BYTES);
  const heartbeatMs = Math.min(PULL_EXPIRES_MS / 4, Math.max(100, opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS));
  return {
    nc,
    jsm,
    stream,
    inboxPrefix: (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix,
    batch: READ_MAX_MESSAGES,
    bufferBytes,
    // A pull must be able to carry the largest record, or the server answers 409 with nothing.
    requestBytes: Math.min(MAX_REQUEST_BYTES, Math.max(Math.floor(bufferBytes / 2), maxPayload + 64 * 1024)),
    heartbeatMs,
    stallCheckMs: Math.max(heartbeatMs, opts.stallCheckMs ?? DEFAULT_STALL_CHECK_MS),
    stats,
  };
}

/** A record as pulled: its sequence, its bytes, and what it counts against the read buffer. */
export interface Pulled {
  seq: number;
  data: Uint8Array;
  bytes: number;
}

/** Why a session ended: its consumer is to be replaced (restart), the subscription closed, or a final error. */
export type SessionEnd = { kind: "restart"; reason: string } | { kind: "closed" } | { kind: "error"; err: Error };

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
export class PullSession {
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
