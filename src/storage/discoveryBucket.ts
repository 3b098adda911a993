// The discovery bucket on JetStream: a KV bucket (history 1, file storage, the log's replicas)
// whose keys name instances and whose values are endpoints (views/discovery.ts says what both
// look like). Two sides, each given only what it needs:
//
// - readBucket: the live entries (last value per key) under a key filter, and with `follow` every
//   change after them, in the stream's order. An ordered consumer with "last per subject", so the
//   current set costs one pass, not a get per key; it needs only the stream's info, consumer
//   create, pull and delete on the bucket's stream: what a client's permissions allow
//   (natsServer/auth.ts). Used by clients (`roost discover`, client.discover) and by the leader.
// - KvEndpointStore: the leader's writes (actors/announcer.ts). Every write is fenced on the
//   bucket stream's last sequence (Nats-Expected-Last-Sequence), like the log's appends: the
//   announcer knows the sequence its own previous write left, so a write from anyone else in
//   between (a deposed leader that has not noticed yet) makes the next write fail instead of
//   interleaving, and the announcer reconciles. Puts and deletes are the KV protocol itself (a
//   message on $KV.<bucket>.<key>; a delete is an empty one with KV-Operation: DEL), so `nats kv`
//   and the KV clients of every language read the bucket.

import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { FENCE_KEY } from "../views/discovery.js";

/** The bucket's stream, and the subject prefix of its keys (the KV protocol, ADR-8). */
const streamOf = (bucket: string) => `KV_${bucket}`;
const subjectOf = (bucket: string, key: string) => `$KV.${bucket}.${key}`;

/** One entry of the bucket as read: a put, or the marker a delete or purge left. */
export interface BucketEntry {
  key: string;
  op: "PUT" | "DEL" | "PURGE";
  value: Uint8Array;
  /** Its stream sequence (the KV revision). */
  revision: number;
}

/** The bucket does not exist: no scheduler that announces endpoints has led on this log yet. */
export class NoBucketError extends Error {
  override name = "NoBucketError";
}

const isStreamNotFound = (err: unknown): boolean =>
  /stream not found|10059/i.test(`${(err as Error)?.message} ${(err as { code?: unknown })?.code}`);

/**
 * The last entry of every key matching `filter` (a KV key, "*" and ">" allowed), then, with
 * `follow`, every later change, in order, until `signal` aborts. Deletes appear as DEL entries:
 * those of the initial set are keys withdrawn before the read began.
 */
export async function* readBucket(
  nc: NatsConnection,
  bucket: string,
  filter: string,
  opts: { follow?: boolean; signal?: AbortSignal; timeoutMs?: number } = {},
): AsyncGenerator<BucketEntry> {
  const js = jetstream(nc, { timeout: opts.timeoutMs ?? 10_000 });
  let consumer: Awaited<ReturnType<JetStreamClient["consumers"]["get"]>>;
  try {
    consumer = await js.consumers.get(streamOf(bucket), {
      deliver_policy: DeliverPolicy.LastPerSubject,
      filter_subjects: subjectOf(bucket, filter),
    });
  } catch (err) {
    if (isStreamNotFound(err)) throw new NoBucketError(`the discovery bucket ${bucket} does not exist`, { cause: err });
    throw err;
  }
  const prefix = subjectOf(bucket, "").length;
  try {
    const pending = (await consumer.info(true)).num_pending;
    if (pending === 0 && !opts.follow) return;
    if (opts.signal?.aborted) return;
    const messages = await consumer.consume({ max_messages: 1000 });
    const stop = () => messages.stop();
    opts.signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const m of messages) {
        const op = m.headers?.get("KV-Operation");
        yield {
          key: m.subject.slice(prefix),
          op: op === "DEL" || op === "PURGE" ? op : "PUT",
          value: m.data,
          revision: m.seq,
        };
        if (!opts.follow && m.info.pending === 0) return;
        if (opts.signal?.aborted) return;
      }
    } finally {
      opts.signal?.removeEventListener("abort", stop);
      messages.stop();
    }
  } finally {
    // An ordered consumer lingers 5 minutes after its last use unless deleted; best effort.
    await consumer.delete().catch(() => {});
  }
}

/** The bucket's live keys and their values (deleted keys left out). */
export async function liveEntries(nc: NatsConnection, bucket: string, filter = ">"): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of readBucket(nc, bucket, filter)) {
    if (e.op === "PUT") out.set(e.key, e.value);
    else out.delete(e.key);
  }
  return out;
}

/** A write: the value to put under the key, or null to delete it. */
export interface WriteOp {
  key: string;
  value: string | null;
}

export type WriteResult = { ok: true; seq: number } | { ok: false; error: Error };

/** Who last reconciled the bucket (the value under FENCE_KEY). */
export interface Fence {
  epoch: number;
  schedulerId: string;
  /** The log sequence its fold was at. */
  seq: number;
}

/** What the announcer writes through (actors/announcer.ts); KvEndpointStore on NATS. */
export interface EndpointStore {
  readonly bucket: string;
  /** The bucket stream's last sequence, from its leader. */
  lastSeq(): Promise<number>;
  /** The fence as the stream's leader holds it, or null (none, or not readable). */
  fence(): Promise<Fence | null>;
  /**
   * Write `ops` in order, pipelined: the i-th expects the stream's last sequence to be `after + i`,
   * so once one fails (someone else wrote, or it timed out) every later one fails too.
   */
  write(ops: readonly WriteOp[], after: number): Promise<WriteResult[]>;
  /** Every live key and its value. */
  entries(): Promise<Map<string, Uint8Array>>;
}

const encoder = new TextEncoder();

export class KvEndpointStore implements EndpointStore {
  private constructor(
    private readonly nc: NatsConnection,
    readonly bucket: string,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  /** Create the bucket unless it exists (history 1, file storage, `replicas`: the log's). */
  static async open(nc: NatsConnection, opts: { bucket: string; replicas?: number; timeoutMs?: number }): Promise<KvEndpointStore> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await new Kvm(nc).create(opts.bucket, { history: 1, replicas: opts.replicas ?? 1 });
        break;
      } catch (err) {
        // JetStream may still be electing its meta leader right after start.
        if (Date.now() > deadline) throw new Error(`discovery bucket ${opts.bucket}: ${(err as Error).message}`, { cause: err });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const timeout = opts.timeoutMs ?? 5000;
    return new KvEndpointStore(nc, opts.bucket, jetstream(nc, { timeout }), await jetstreamManager(nc, { timeout }));
  }

  async lastSeq(): Promise<number> {
    return (await this.jsm.streams.info(streamOf(this.bucket))).state.last_seq;
  }

  async fence(): Promise<Fence | null> {
    // Null when there is none; any other failure throws (a fence not read must not pass for none).
    const m = await this.jsm.streams.getMessage(streamOf(this.bucket), { last_by_subj: subjectOf(this.bucket, FENCE_KEY) });
    if (!m || m.data.length === 0) return null;
    try {
      const f = JSON.parse(new TextDecoder().decode(m.data)) as Partial<Fence>;
      return typeof f.epoch === "number" ? { epoch: f.epoch, schedulerId: String(f.schedulerId), seq: Number(f.seq) } : null;
    } catch {
      return null;
    }
  }

  async write(ops: readonly WriteOp[], after: number): Promise<WriteResult[]> {
    const sent = ops.map((op, i) => {
      const h = op.value === null ? headers() : undefined;
      h?.set("KV-Operation", "DEL");
      return this.js.publish(subjectOf(this.bucket, op.key), op.value === null ? new Uint8Array() : encoder.encode(op.value), {
        expect: { lastSequence: after + i },
        ...(h ? { headers: h } : {}),
      });
    });
    return (await Promise.allSettled(sent)).map((r) =>
      r.status === "fulfilled" ? { ok: true, seq: r.value.seq } : { ok: false, error: r.reason as Error },
    );
  }

  entries(): Promise<Map<string, Uint8Array>> {
    return liveEntries(this.nc, this.bucket);
  }
}
