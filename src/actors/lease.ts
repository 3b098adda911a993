// The leader lease. One scheduler holds it; its revision is the leader epoch stamped on every
// event. The lease only decides who should lead; the log's fencing (expected sequence and
// previous msgId) decides who can write, so a paused ex-leader that still believes it leads
// can append nothing.
//
// KvLease is the lease recipe that works on nats-server 2.9: a dedicated KV bucket whose every
// key expires after leaseMs (no per-key TTL on 2.9), renewed every leaseMs/3 and polled by
// candidates (expiry emits no watch event). Every write (take, renew, release, evict) is fenced
// with the whole stream's Nats-Expected-Last-Sequence, not the KV's per-key revision check: on a
// clustered 2.9.10 stream the per-subject check runs only before the write is proposed, against
// what is stored, so two contenders that both saw the lease free (a delete marker) were both
// granted it (seen in the failover bench: epochs 31 and 32 within 25 ms of an eviction; the
// log's fencing kept one writer). The whole-stream check runs as each write is applied, in
// order. The bucket holds one key, so the stream's last sequence is the lease's revision.
// A renewal that times out is retried as the same write (one msgId), until the lease it extends
// could have run out; only a refusal by the fence, or no confirmation for a whole lease, loses it.
//
// Waiting out the lease made every failover cost a whole lease (3 s: the failover bench's new
// LeaderElected landed 3.06 s after the SIGKILL). So a standby also asks whether the holder still
// lives: each scheduler process answers on its own subject (subjects.schedulerAlive(token), the
// token in the lease's value), and NATS answers "no responders" at once when no subscription is
// left anywhere, which is what a dead process's closed connection leaves. Twice, 300 ms apart
// (more than a live holder takes to reconnect when its nats-server dies), and the standby evicts
// the holder: it deletes the key only at the revision it read (evict()), so a holder that renewed
// in between keeps it. A stalled holder (SIGSTOP, a 500 ms pause of its event loop) still holds
// its connection and subscription: its silence is a timeout, not "no responders", and the lease
// decides as before. A holder evicted while alive (its server died and it had not reconnected
// 300 ms later) loses its next renewal, and its appends are fenced by the new
// leader's LeaderElected: there is still one writer.

import { randomUUID } from "node:crypto";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "./clock.js";

export interface LeaseHolder {
  id: string;
  host: string;
  pid: number;
  /** The holder process's own token: it answers on subjects.schedulerAlive(token) while it lives. */
  token?: string;
}

export interface Lease {
  readonly leaseMs: number;
  /** Take the lease if nobody holds it: the revision (the epoch), or null. */
  tryAcquire(me: LeaseHolder): Promise<number | null>;
  /**
   * Extend it; throws LeaseLostError if it was lost (expired and taken, or deleted), or if it could
   * not be confirmed within `withinMs` (default: one attempt).
   */
  renew(withinMs?: number): Promise<void>;
  /** Give it up (on a clean stop), so a standby takes over at once. */
  release(): Promise<void>;
  /** Delete the lease if it is still at `revision` (its holder is gone): true if it was deleted. */
  evict(revision: number): Promise<boolean>;
  /** Who holds it now, and at which revision (possibly stale: reads may hit any replica). */
  holder(): Promise<(LeaseHolder & { revision: number }) | null>;
}

class LeaseLostError extends Error {
  override name = "LeaseLostError";
}

const KEY = "leader";
const KV_OPERATION = "KV-Operation";
/** One attempt of a lease write, ms (a renewal retries within its window). */
const WRITE_TIMEOUT_MS = 1000;

function wrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;
}

export class KvLease implements Lease {
  private revision = 0;
  /** Counts takes and releases: a renewal begun under an earlier one neither lands its revision
   *  nor retries on (it renews a lease this handle no longer holds as such). */
  private generation = 0;
  private value: Uint8Array = new Uint8Array();
  private readonly stream: string;
  private readonly subject: string;
  /** This handle's own id, in its renewals' msgIds. */
  private readonly writer = randomUUID();
  private constructor(
    private readonly kv: KV,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    bucket: string,
    readonly leaseMs: number,
  ) {
    this.stream = `KV_${bucket}`;
    this.subject = `$KV.${bucket}.${KEY}`;
  }

  static async open(nc: NatsConnection, opts: { bucket?: string; leaseMs?: number; replicas?: number } = {}): Promise<KvLease> {
    const leaseMs = opts.leaseMs ?? 3000;
    const kvm = new Kvm(nc);
    const bucket = opts.bucket ?? "roost_leader";
    let kv: KV;
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        kv = await kvm.create(bucket, { history: 1, ttl: leaseMs, replicas: opts.replicas ?? 1 });
        break;
      } catch (err) {
        // JetStream may still be electing its meta leader right after start.
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return new KvLease(
      kv,
      jetstream(nc, { timeout: WRITE_TIMEOUT_MS }),
      // No API check on creation: a request that can time out while JetStream is still starting
      // (a replica of a booting cell died here in CI, its 1 s request unanswered).
      await jetstreamManager(nc, { timeout: WRITE_TIMEOUT_MS, checkAPI: false }),
      bucket,
      leaseMs,
    );
  }

  /**
   * The lease is free when its stream holds no message (expired) or its last message is a delete
   * marker; it is taken by a write fenced on that last sequence, so of several contenders that saw
   * it free exactly one lands.
   */
  async tryAcquire(me: LeaseHolder): Promise<number | null> {
    try {
      const { state } = await this.jsm.streams.info(this.stream);
      const last = state.last_seq;
      if (state.messages > 0) {
        const m = await this.jsm.streams.getMessage(this.stream, { seq: last }).catch(() => null);
        const op = m?.header?.get(KV_OPERATION);
        if (m === null || (op !== "DEL" && op !== "PURGE")) return null; // held (or just expired: next time)
      }
      const value = new TextEncoder().encode(JSON.stringify(me));
      const ack = await this.js.publish(this.subject, value, { expect: { lastSequence: last } });
      this.generation++;
      this.value = value;
      this.revision = ack.seq;
      return ack.seq;
    } catch {
      return null; // taken meanwhile, or JetStream unreachable: try again later
    }
  }

  /**
   * Rewrite the value fenced on our own revision. An attempt that times out may still have landed,
   * so every attempt of one renewal carries the same msgId: a retry that finds it landed is told
   * so (a duplicate, with its sequence) instead of being refused by the fence.
   */
  async renew(withinMs = 0): Promise<void> {
    const from = this.revision;
    const generation = this.generation;
    const until = Date.now() + withinMs;
    for (;;) {
      try {
        const ack = await this.js.publish(this.subject, this.value, {
          msgID: `lease:${this.writer}:${from}`,
          expect: { lastSequence: from },
        });
        if (generation !== this.generation) throw new Error("taken or released again meanwhile");
        this.revision = ack.seq;
        return;
      } catch (err) {
        if (wrongLastSequence(err) || generation !== this.generation || Date.now() >= until)
          throw new LeaseLostError(`leader lease lost: ${(err as Error).message}`);
      }
    }
  }

  async release(): Promise<void> {
    this.generation++;
    await this.writeDelete(this.revision);
  }

  async evict(revision: number): Promise<boolean> {
    return this.writeDelete(revision);
  }

  /** A delete marker, fenced on `revision` being the stream's last message. */
  private async writeDelete(revision: number): Promise<boolean> {
    const h = headers();
    h.set(KV_OPERATION, "DEL");
    try {
      await this.js.publish(this.subject, new Uint8Array(), { headers: h, expect: { lastSequence: revision } });
      return true;
    } catch {
      return false; // renewed, taken or gone meanwhile
    }
  }

  async holder(): Promise<(LeaseHolder & { revision: number }) | null> {
    const e = await this.kv.get(KEY).catch(() => null);
    if (e?.operation !== "PUT" || e.value.length === 0) return null;
    try {
      return { ...(JSON.parse(new TextDecoder().decode(e.value)) as LeaseHolder), revision: e.revision };
    } catch {
      return null;
    }
  }
}

/** The lease's shared state in memory, on an injected clock: one board per simulated cell. */
export class MemoryLeaseBoard {
  rev = 0;
  held: { holder: LeaseHolder; revision: number; expires: number } | null = null;

  constructor(
    readonly clock: Clock,
    readonly leaseMs = 3000,
  ) {}

  live(): MemoryLeaseBoard["held"] {
    if (this.held && this.held.expires <= this.clock.now()) this.held = null;
    return this.held;
  }

  /** One contender's handle on the board. */
  lease(): MemoryLease {
    return new MemoryLease(this);
  }
}

/** The same contract as KvLease, for the simulator and tests. */
export class MemoryLease implements Lease {
  private mine = 0;
  constructor(private readonly board: MemoryLeaseBoard) {}

  get leaseMs(): number {
    return this.board.leaseMs;
  }

  async tryAcquire(me: LeaseHolder): Promise<number | null> {
    const b = this.board;
    if (b.live()) return null;
    b.held = { holder: me, revision: ++b.rev, expires: b.clock.now() + b.leaseMs };
    this.mine = b.held.revision;
    return this.mine;
  }

  async renew(): Promise<void> {
    const b = this.board;
    const h = b.live();
    if (!h || h.revision !== this.mine) throw new LeaseLostError("leader lease lost: expired or taken");
    h.revision = this.mine = ++b.rev;
    h.expires = b.clock.now() + b.leaseMs;
  }

  async release(): Promise<void> {
    if (this.board.live()?.revision === this.mine) this.board.held = null;
  }

  async evict(revision: number): Promise<boolean> {
    if (this.board.live()?.revision !== revision) return false;
    this.board.held = null;
    return true;
  }

  async holder(): Promise<(LeaseHolder & { revision: number }) | null> {
    const h = this.board.live();
    return h ? { ...h.holder, revision: h.revision } : null;
  }
}
