// Announcer: service discovery's writer. Keeps the discovery bucket (storage/discoveryBucket.ts) equal
// to what the fold wants announced (views/discovery.ts: a RUNNING task with a port, under
// `role.env.job.instance`), and writes nothing else.
//
// Driven by the fold, as effects are (invariant 1: the log is the truth, side effects only after
// the event is acknowledged and folded): after each committed record the term updates its
// EndpointIndex, which looks only at the instances the record's events can have moved, and sends
// the keys whose wanted value changed here. When the term begins, "reconcile" makes the bucket
// equal to the whole fold: a new leader deletes what a predecessor left that its fold does not
// want (a task withdrawn while no leader wrote) and puts what is missing or differs.
//
// Only the leader writes, only while its term lasts (leading()), and every write is fenced:
//   reconcile  read the bucket stream's last sequence L and the fence (FENCE_KEY: the epoch that
//              last reconciled); a newer epoch there means this term is deposed: write nothing,
//              ever again. Else write our fence expecting L, then read every live key and
//              write the difference, each write expecting the sequence the previous one left.
//   changed    write the keys' wanted values, fenced the same way, coalesced: a key changed
//              again before it was written is written once, with its newest value, in the
//              position of its newest change (so a watcher sees each key's changes in the order
//              the fold made them, skipping none but superseded ones).
// A deposed leader that has not noticed yet can write only with the stream's current last
// sequence, which it learns only by reconciling, which reads the newer fence first: it stops.
// Any write that fails (fenced, timed out, no stream leader) makes the next round a reconcile,
// after a backoff (retryMs, doubling to 8×).
//
// An actor: messages only mark work (keys, a reconcile) and start the writing loop, which runs
// outside the mailbox, one round at a time, so a burst of records is written as one pipelined
// batch.

import type { EndpointStore, WriteOp } from "../storage/discoveryBucket.js";
import { FENCE_KEY } from "../views/discovery.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";

export type AnnouncerMsg = { type: "reconcile" } | { type: "changed"; keys: string[] };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "leading" | "epoch" | "schedulerId" | "retryMs">;

/** What the fold wants, read-only (views/discovery.ts EndpointIndex). */
export interface WantedEndpoints {
  get(key: string): string | undefined;
  keys(): IterableIterator<string>;
  readonly size: number;
}

const decoder = new TextDecoder();

export class Announcer extends Actor<AnnouncerMsg> {
  /** The bucket as this term last read or wrote it: key → value (the fence left out). */
  private readonly written = new Map<string, string>();
  /** Keys whose wanted value changed since they were last written, oldest change first. */
  private readonly dirty = new Set<string>();
  /** The bucket stream's last sequence after our last write; null: reconcile before writing. */
  private lastSeq: number | null = null;
  /** A newer epoch reconciled the bucket: this term writes nothing more. */
  private deposed = false;
  private loop: Promise<void> | null = null;
  private retryTimer: unknown = null;
  private retryDelay: number;
  /** Reconciliations and writes done this term (for tests and diagnostics). */
  readonly counts = { reconciles: 0, puts: 0, deletes: 0, failures: 0 };

  constructor(
    private readonly s: Deps,
    private readonly store: EndpointStore,
    private readonly wanted: WantedEndpoints,
  ) {
    super("announcer", s.log, () => s.clock.now());
    this.retryDelay = s.retryMs;
  }

  override get busy(): boolean {
    return super.busy || this.loop !== null;
  }

  /** A newer epoch reconciled the bucket: this term writes nothing more. */
  get isDeposed(): boolean {
    return this.deposed;
  }

  protected receive(m: AnnouncerMsg): void {
    if (m.type === "reconcile") this.lastSeq = null;
    else
      for (const k of m.keys) {
        // Re-inserted: a key's place is that of its newest change.
        this.dirty.delete(k);
        this.dirty.add(k);
      }
    this.kick();
  }

  protected override onStop(): void {
    if (this.retryTimer !== null) this.s.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private get mayWrite(): boolean {
    return !this.isStopped && !this.deposed && this.s.leading();
  }

  /** Start the writing loop unless it runs or a retry is pending (it will look at everything then). */
  private kick(): void {
    if (this.loop !== null || this.retryTimer !== null || !this.mayWrite) return;
    this.loop = this.rounds()
      .catch((err: unknown) => this.failed((err as Error).message))
      .finally(() => {
        this.loop = null;
        if (this.mayWrite && this.retryTimer === null && (this.lastSeq === null || this.dirty.size > 0)) this.kick();
      });
  }

  private async rounds(): Promise<void> {
    while (this.mayWrite) {
      if (this.lastSeq === null) {
        if (!(await this.reconcile())) return;
        continue;
      }
      if (this.dirty.size === 0) return;
      const ops: WriteOp[] = [];
      for (const key of this.dirty) {
        const value = this.wanted.get(key) ?? null;
        if (value !== (this.written.get(key) ?? null)) ops.push({ key, value });
      }
      this.dirty.clear();
      if (!(await this.apply(ops))) return;
    }
  }

  /** Make the bucket equal to the fold (see the file comment). False: it did not finish (a retry is set, or deposed). */
  private async reconcile(): Promise<boolean> {
    const { store, s } = this;
    const last = await store.lastSeq();
    const fence = await store.fence();
    if (!this.mayWrite) return false;
    if (fence !== null && fence.epoch > s.epoch) {
      this.deposed = true;
      s.log.warn(
        { bucket: store.bucket, epoch: s.epoch, fence },
        "discovery: a newer leader reconciled the bucket; this term writes no more announcements",
      );
      return false;
    }
    const mine = JSON.stringify({ epoch: s.epoch, schedulerId: s.schedulerId, seq: s.state.seq });
    const [fenced] = await store.write([{ key: FENCE_KEY, value: mine }], last);
    if (!fenced?.ok) {
      this.failed(`the bucket moved on before its fence was written (${fenced?.error.message ?? "no result"})`);
      return false;
    }
    this.lastSeq = fenced.seq;
    const live = await store.entries();
    if (!this.mayWrite) return false;
    this.written.clear();
    for (const [key, value] of live) if (key !== FENCE_KEY) this.written.set(key, decoder.decode(value));
    // From here on the wanted set as it is now; changes after this point arrive as "changed".
    this.dirty.clear();
    const ops: WriteOp[] = [];
    for (const key of this.written.keys()) if (this.wanted.get(key) === undefined) ops.push({ key, value: null });
    for (const key of this.wanted.keys()) {
      const value = this.wanted.get(key)!;
      if (this.written.get(key) !== value) ops.push({ key, value });
    }
    const stale = ops.filter((o) => o.value === null).length;
    if (!(await this.apply(ops))) return false;
    this.counts.reconciles++;
    s.log.info(
      { bucket: store.bucket, epoch: s.epoch, seq: s.state.seq, endpoints: this.wanted.size, put: ops.length - stale, deleted: stale },
      "discovery: reconciled the bucket with the fold",
    );
    return true;
  }

  /** Write `ops` fenced on lastSeq. False after a failure (the next round reconciles, after a backoff). */
  private async apply(ops: WriteOp[]): Promise<boolean> {
    if (ops.length === 0) return true;
    if (!this.mayWrite || this.lastSeq === null) return false;
    const results = await this.store.write(ops, this.lastSeq);
    let failure: string | null = null;
    results.forEach((r, i) => {
      const op = ops[i]!;
      if (!r.ok) {
        failure ??= `${op.value === null ? "delete" : "put"} ${op.key}: ${r.error.message}`;
        return;
      }
      this.lastSeq = r.seq;
      if (op.value === null) {
        this.written.delete(op.key);
        this.counts.deletes++;
      } else {
        this.written.set(op.key, op.value);
        this.counts.puts++;
      }
    });
    if (failure !== null) {
      this.failed(failure);
      return false;
    }
    this.retryDelay = this.s.retryMs;
    return true;
  }

  /** A write or read failed: reconcile after a backoff (the bucket's state and sequence are unknown now). */
  private failed(why: string): void {
    this.counts.failures++;
    this.lastSeq = null;
    if (!this.mayWrite || this.retryTimer !== null) return;
    this.s.log.warn({ bucket: this.store.bucket, why, retryMs: this.retryDelay }, "discovery: a write to the bucket failed; reconciling");
    this.retryTimer = this.s.clock.setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, this.s.retryMs * 8);
  }
}
