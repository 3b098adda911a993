// A leader term's lease renewals belong to that term. The failure that taught it (failover
// bench, nats-server killed with the leader): a replica whose takeover failed won the lease again
// and stepped down 0.4 s later, "leader lease lost: wrong last sequence", because a renewal of
// its previous term, still out when that term ended, re-armed itself into the new term and its
// chain raced the new one.
//
// The lease here answers renewals only when the test says so; the term is ended the real way (an
// append of another writer lands, so the leader's own next append is fenced).

import { afterEach, describe, expect, it } from "vitest";
import type { Lease, LeaseHolder } from "../src/actors/lease.js";
import { Scheduler } from "../src/actors/scheduler.js";
import { MemoryBus } from "../src/bus/memory.js";
import { encodeRecord, makeEnvelope } from "../src/eventlog/envelope.js";
import type { LogRecord } from "../src/eventlog/envelope.js";
import { LogUnavailableError } from "../src/eventlog/log.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { testSpec } from "./support/specs.js";

class HeldLease implements Lease {
  readonly leaseMs = 300;
  acquires = 0;
  /** When the first acquisition was asked for, and won (performance.now()). */
  askedAt = 0;
  renewals = 0;
  /** When each renewal was asked for (performance.now()). */
  readonly renewedAt: number[] = [];
  /** While true, each renewal waits for the test (released by settle()). */
  hold = true;
  private readonly out: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private waiters: Array<() => void> = [];

  async tryAcquire(_me: LeaseHolder): Promise<number | null> {
    if (this.acquires === 0) this.askedAt = performance.now();
    this.acquires++;
    this.wake();
    return this.acquires;
  }
  renew(): Promise<void> {
    this.renewals++;
    this.renewedAt.push(performance.now());
    this.wake();
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve, reject) => this.out.push({ resolve, reject }));
  }
  async release(): Promise<void> {}
  async evict(): Promise<boolean> {
    return false;
  }
  async holder(): Promise<null> {
    return null;
  }
  get held(): number {
    return this.out.length;
  }
  /** Answer the oldest renewal still out. */
  settle(how: "resolve" | "reject"): void {
    const r = this.out.shift()!;
    if (how === "resolve") r.resolve();
    else r.reject(new Error("leader lease lost: a stale renewal of the previous term"));
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Resolves once `cond` holds, re-checked on every acquire and renewal. */
  async until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

let scheduler: Scheduler | null = null;
afterEach(async () => {
  await scheduler?.stop();
  scheduler = null;
});

/** A leader whose first term ended while one of its renewals was still out, and which leads again. */
async function leaderAgainWithAStaleRenewal(lease: HeldLease, log: MemoryLog): Promise<Scheduler> {
  const s = new Scheduler({ log, bus: new MemoryBus(), lease, schedulerId: "a" });
  await s.start();
  await lease.until(() => s.role === "leader" && lease.held === 1, "the first term's renewal to be out");
  // Another writer appends; the leader's next append is fenced and the term ends.
  const foreign = makeEnvelope(
    "LeaderElected",
    { schedulerId: "b", epoch: 50, host: "h", pid: 1 },
    { epoch: 50, ts: 0, corr: "t", reason: "test" },
  );
  await log.append(encodeRecord([foreign]), await log.lastSeq(), "foreign-1");
  await s.intake.create({ spec: testSpec("web"), user: "t" }).catch(() => {});
  await lease.until(() => lease.acquires === 2 && s.role === "leader", "the second term");
  lease.hold = false;
  return s;
}

describe("a leader term's lease renewals", () => {
  it("a renewal of the previous term that fails does not end the next term", async () => {
    const lease = new HeldLease();
    scheduler = await leaderAgainWithAStaleRenewal(lease, new MemoryLog());
    const epoch = scheduler.epoch;
    lease.settle("reject");
    const after = lease.renewals;
    await lease.until(() => lease.renewals >= after + 3, "three renewals of the second term");
    expect(lease.acquires).toBe(2);
    expect(scheduler.role).toBe("leader");
    expect(scheduler.epoch).toBe(epoch);
  });

  it("a renewal of the previous term that lands starts no second chain", async () => {
    const lease = new HeldLease();
    scheduler = await leaderAgainWithAStaleRenewal(lease, new MemoryLog());
    lease.settle("resolve");
    const after = lease.renewals;
    await lease.until(() => lease.renewals >= after + 6, "six more renewals");
    // One chain renews every leaseMs/3 counted from the last renewal sent, so its renewals are
    // never closer than that (timers do not fire early). Two chains, whatever their phase, put
    // two renewals at most leaseMs/6 apart.
    const times = lease.renewedAt.slice(after);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(Math.min(...gaps)).toBeGreaterThan((lease.leaseMs / 3) * 0.8);
    await scheduler.stop();
    const stopped = lease.renewals;
    // Waiting for something not to happen: three renewal periods (leaseMs / 3 each).
    await new Promise((r) => setTimeout(r, lease.leaseMs));
    expect(lease.renewals).toBe(stopped);
    expect(lease.acquires).toBe(2);
  });
});

/** A memory log whose followers take `windDownMs` to stop once told to (a consumer on a dead nats-server). */
class SlowToStopLog extends MemoryLog {
  constructor(private readonly windDownMs: number) {
    super();
  }
  override async *follow(fromSeq: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    yield* super.follow(fromSeq, signal);
    await new Promise((r) => setTimeout(r, this.windDownMs));
  }
}

describe("the lease of a new leader", () => {
  it("is renewed before it could run out, however long the follower takes to stop", async () => {
    const lease = new HeldLease();
    lease.hold = false;
    scheduler = new Scheduler({ log: new SlowToStopLog(2 * lease.leaseMs), bus: new MemoryBus(), lease, schedulerId: "a" });
    await scheduler.start();
    await lease.until(() => lease.renewals >= 1, "the first renewal");
    // Renewed before the lease could run out (it runs leaseMs from the win), not only once the
    // follower had stopped (2 leases later) and a third of a lease on.
    expect(lease.renewedAt[0]! - lease.askedAt).toBeLessThan(lease.leaseMs * 0.9);
    await lease.until(() => scheduler!.role === "leader", "the takeover");
  });
});

/** A memory log that does not answer while `down`: a stream electing its leader after its nats-server died. */
class OutageLog extends MemoryLog {
  down = false;
  /** Probes and reads refused while down: each takeover attempt begins with one. */
  readsRefused = 0;
  private refuse(): never {
    throw new LogUnavailableError("event log unavailable: timeout (test outage)");
  }
  override async *read(fromSeq: number): AsyncIterable<LogRecord> {
    if (this.down) {
      this.readsRefused++;
      this.refuse();
    }
    yield* super.read(fromSeq);
  }
  override async *follow(fromSeq: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    if (this.down) this.refuse();
    yield* super.follow(fromSeq, signal);
  }
  override async lastSeq(): Promise<number> {
    if (this.down) this.refuse();
    return super.lastSeq();
  }
  /** What a takeover asks first (EventLog.probe); refused while down, and counted with the reads. */
  probes = 0;
  async probe(_timeoutMs: number): Promise<number> {
    this.probes++;
    if (this.down) {
      this.readsRefused++;
      this.refuse();
    }
    return super.lastSeq();
  }
  override async append(record: Uint8Array, expectedLastSeq: number, msgId: string) {
    if (this.down) this.refuse();
    return super.append(record, expectedLastSeq, msgId);
  }
  override async appendAfter(record: Uint8Array, expectedLastSeq: number, msgId: string, prevMsgId: string | undefined) {
    if (this.down) this.refuse();
    return super.appendAfter(record, expectedLastSeq, msgId, prevMsgId);
  }
}

/** Granted only once `grant` is set; counts releases; renewals fail once `lose` is set. */
class GatedLease extends HeldLease {
  grant = false;
  lose = false;
  releases = 0;
  override async tryAcquire(me: LeaseHolder): Promise<number | null> {
    return this.grant ? super.tryAcquire(me) : null;
  }
  override renew(): Promise<void> {
    if (this.lose) {
      this.renewals++;
      return Promise.reject(new Error("leader lease lost: expired or taken"));
    }
    return super.renew();
  }
  override async release(): Promise<void> {
    this.releases++;
  }
}

// The failure that taught it (failover bench, the stream-leader nats-server killed with the
// leader): the replica that won the lease found the log without a leader, its takeover timed out,
// and it gave the lease up; another replica won it 3 s later, by when the log answered again.
describe("a takeover the log does not answer", () => {
  async function standby(log: OutageLog, lease: GatedLease): Promise<Scheduler> {
    lease.hold = false;
    const s = new Scheduler({ log, bus: new MemoryBus(), lease, schedulerId: "a" });
    await s.start();
    log.down = true;
    lease.grant = true;
    await lease.until(() => lease.acquires === 1 && log.readsRefused >= 3, "three takeover attempts the log refused");
    return s;
  }

  it("is tried again while the lease is ours, and leads once the log answers: the lease is never given up", async () => {
    const log = new OutageLog();
    const lease = new GatedLease();
    scheduler = await standby(log, lease);
    expect(scheduler.role).not.toBe("leader");
    log.down = false;
    await lease.until(() => scheduler!.role === "leader", "the takeover");
    expect(lease.acquires).toBe(1);
    expect(lease.releases).toBe(0);
    expect(log.probes).toBeGreaterThanOrEqual(4); // every attempt asked first
    // One LeaderElected, written once the log answered.
    const elected: number[] = [];
    for await (const r of log.read(1)) for (const e of r.events) if (e.type === "LeaderElected") elected.push(r.seq);
    expect(elected).toHaveLength(1);
  });

  it("is given up once the lease is lost: no replica holds a lease it cannot use", async () => {
    const log = new OutageLog();
    const lease = new GatedLease();
    scheduler = await standby(log, lease);
    lease.lose = true;
    await lease.until(() => lease.releases >= 1, "the lease given up");
    expect(scheduler.role).not.toBe("leader");
    // Once the log answers and renewals land, it wins the lease again and leads.
    lease.lose = false;
    log.down = false;
    await lease.until(() => scheduler!.role === "leader", "the takeover once the log answers");
    expect(lease.acquires).toBeGreaterThanOrEqual(2);
  });
});
