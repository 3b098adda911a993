// Where scheduler replicas say who they are: id, pid, host, role, epoch and how far they have
// folded. `roost cluster status` reads it, with or without a leader. On NATS it is a KV bucket
// whose entries expire after 10 s, so a replica that died disappears by itself.
//
// A replica follows the board with one watch for its whole life, and reads it from memory. It
// used to list the bucket every 2 s (`kv.keys()` and a get per key), and each listing created
// and deleted an ephemeral consumer: a proposal to the JetStream meta leader every 2 s per
// replica, and an INFO line "new consumer leader" in a nats-server's log each time (400 lines in
// 2 minutes on one server of the failover bench, which lists it every 200 ms as well).
//
// On 2.9 an entry that expires (the stream's max_age) sends no watch event (libraries.md), so the
// view ages its entries itself: an entry is dropped from answers 10 s after it arrived, as the
// bucket drops it 10 s after its put. Live replicas put every second.

import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { QueuedIterator } from "@nats-io/transport-node";
import { fastChecker } from "../domain/validate.js";
import { Type } from "../vendor/typebox.js";

export interface MemberStatus {
  id: string;
  pid: number;
  host: string;
  role: "leader" | "standby";
  epoch: number;
  appliedSeq: number;
  ts: number;
}

export interface MemberBoard {
  put(m: MemberStatus): Promise<void>;
  list(): Promise<MemberStatus[]>;
}

/** An entry's max_age in the bucket: a replica that stopped putting is gone after this. */
const MEMBER_TTL_MS = 10_000;
/** Pause before a watch that ended (its connection lost, the server gone) is started again. */
const REWATCH_MS = 1000;

/** What a board entry must be to count: anyone who may write the bucket could write garbage. */
const checkMember = fastChecker(
  Type.Object({
    id: Type.String({ minLength: 1, maxLength: 256 }),
    pid: Type.Integer({ minimum: 0 }),
    host: Type.String({ maxLength: 256 }),
    role: Type.Union([Type.Literal("leader"), Type.Literal("standby")]),
    epoch: Type.Integer({ minimum: 0 }),
    appliedSeq: Type.Integer({ minimum: 0 }),
    ts: Type.Number(),
  }),
);

/** A board entry's value as a MemberStatus, or null when it is not one. */
export function parseMember(value: Uint8Array): MemberStatus | null {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(value));
  } catch {
    return null;
  }
  return checkMember(v) === null ? (v as MemberStatus) : null;
}

const byId = (a: MemberStatus, b: MemberStatus) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export class KvMemberBoard implements MemberBoard {
  /** The followed view, key → status and when it arrived (local clock); null until the watch has
   *  delivered every entry the bucket held when it started (and again after the watch ended). */
  #view: Map<string, { status: MemberStatus; at: number }> | null = null;
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  #closed = false;
  #wake: (() => void) | null = null;
  /** When the view last received an entry (local clock). */
  #lastArrival = 0;
  /** The follow loop, while it runs. */
  #following: Promise<void> | null = null;

  private constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly ttlMs: number,
  ) {}

  /**
   * With `follow`, the board is read from one watch kept for its life (close() ends it). `ttlMs`
   * (tests) is the entries' life in a bucket this creates; the view ages entries by the same.
   */
  static async open(
    nc: NatsConnection,
    opts: { bucket?: string; replicas?: number; follow?: boolean; ttlMs?: number } = {},
  ): Promise<KvMemberBoard> {
    const ttlMs = opts.ttlMs ?? MEMBER_TTL_MS;
    const kv = await new Kvm(nc).create(opts.bucket ?? "roost_members", { history: 1, ttl: ttlMs, replicas: opts.replicas ?? 1 });
    const board = new KvMemberBoard(kv, nc, ttlMs);
    if (opts.follow) board.#following = board.#follow();
    return board;
  }

  async put(m: MemberStatus): Promise<void> {
    await this.kv.put(m.id.replace(/[^A-Za-z0-9_-]/g, "_"), JSON.stringify(m));
  }

  /** Every member whose entry is live, by id: from the followed view once it is complete, else
   *  read from the bucket. Entries that are no MemberStatus are left out. */
  async list(): Promise<MemberStatus[]> {
    const now = Date.now();
    // A view that heard nothing for a whole entry life is suspect: live replicas put every second.
    // Its watch may be following a stream that is gone (an operator deleted the bucket and a
    // replica made it again: the watch resumes past the new stream's first sequences and would
    // miss them). Start it again, and read the bucket meanwhile.
    if (this.#view && now - this.#lastArrival >= this.ttlMs) {
      const stale = this.#watch;
      this.#watch = null; // what it still delivers cannot make the view again
      this.#view = null;
      stale?.stop();
    }
    const view = this.#view;
    if (view) {
      const out: MemberStatus[] = [];
      for (const [key, e] of view) {
        if (now - e.at < this.ttlMs) out.push(e.status);
        else view.delete(key);
      }
      return out.sort(byId);
    }
    const out: MemberStatus[] = [];
    for await (const k of await this.kv.keys()) {
      const e = await this.kv.get(k).catch(() => null);
      const m = e && e.operation === "PUT" && e.value.length ? parseMember(e.value) : null;
      if (m) out.push(m);
    }
    return out.sort(byId);
  }

  /** Whether list() answers from the followed view (for tests). */
  get following(): boolean {
    return this.#view !== null;
  }

  /** Stop following (resolves once the watch is gone); list() reads the bucket again. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#view = null;
    this.#watch?.stop();
    this.#wake?.();
    await this.#following;
  }

  async #follow(): Promise<void> {
    while (!this.#closed && !this.nc.isClosed()) {
      const next = new Map<string, { status: MemberStatus; at: number }>();
      try {
        const w = await this.kv.watch();
        this.#watch = w;
        if (this.#closed) w.stop();
        for await (const e of w) {
          const now = Date.now();
          this.#lastArrival = now;
          const m = e.operation === "PUT" && e.value.length ? parseMember(e.value) : null;
          // An entry delivered from the bucket at the start is as old as its put, never older
          // than now (a server clock ahead of ours); an update has just arrived.
          if (m) next.set(e.key, { status: m, at: e.isUpdate ? now : Math.min(now, e.created.getTime()) });
          else next.delete(e.key);
          // The first update comes after every entry the bucket held at the start (the library
          // marks the last of those as an update too): from here the view is complete.
          if (e.isUpdate && this.#watch === w && this.#view !== next && !this.#closed) this.#view = next;
        }
      } catch {
        // The watch could not start or ended with an error: list() reads the bucket meanwhile.
      }
      this.#view = null;
      this.#watch = null;
      if (this.#closed || this.nc.isClosed()) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, REWATCH_MS);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
  }
}

export class MemoryMemberBoard implements MemberBoard {
  private readonly members = new Map<string, MemberStatus>();
  async put(m: MemberStatus): Promise<void> {
    this.members.set(m.id, m);
  }
  async list(): Promise<MemberStatus[]> {
    return [...this.members.values()].sort(byId);
  }
}
