// JetStreamLog.follow()/read() against real nats-servers: a follower survives the loss of the
// server holding its consumer (3-node cluster, R3 stream, SIGKILL) and of its own server, yielding
// every record once and in order; an idle follower does not churn consumers; read() keeps the
// bytes requested but not yet consumed under its budget.

import { jetstreamManager, type ConsumerInfo } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { Appender } from "../src/eventlog/appender.js";
import { encodeRecord } from "../src/eventlog/envelope.js";
import { openJetStreamLog, type JetStreamLog } from "../src/eventlog/jetstream.js";
import { startNatsCluster, type NatsClusterHandle } from "../src/natsServer/cluster.js";
import { ev, evKey } from "./support/logs.js";
import { withNats } from "./support/nats.js";

/** Follows a log in the background; every record's sequence and event key, awaitable by count. */
class Follower {
  readonly seqs: number[] = [];
  readonly keys: string[] = [];
  error: unknown = null;
  private readonly ac = new AbortController();
  private waiters: Array<() => void> = [];
  readonly done: Promise<void>;

  /** Follow from `from`; `before` (a stopped follower) supplies what was seen up to there. */
  constructor(
    private readonly log: JetStreamLog,
    from: number,
    before?: Follower,
  ) {
    if (before) {
      this.seqs.push(...before.seqs);
      this.keys.push(...before.keys);
    }
    this.done = (async () => {
      try {
        for await (const r of log.follow(from, this.ac.signal)) {
          this.seqs.push(r.seq);
          this.keys.push(evKey(r.events[0]!));
          this.notify();
        }
      } catch (err) {
        this.error = err;
        this.notify();
      }
    })();
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** Resolves once `n` records were seen; rejects on a follow() error or after timeoutMs. */
  async until(n: number, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.seqs.length < n) {
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}: the follower saw ${this.seqs.length} of ${n} records (reader: ${JSON.stringify(this.log.readStats)}, connected to ${this.log.nc.info?.server_name})`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(): Promise<void> {
    this.ac.abort();
    await this.done;
  }
}

/** Bounded poll (nothing to await on the server side) until `pred` holds or the deadline passes. */
async function pollUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (pred(last)) return last;
    } catch {
      // the cluster may be electing: try again
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function consumersOf(nc: NatsConnection, stream: string): Promise<ConsumerInfo[]> {
  const jsm = await jetstreamManager(nc, { timeout: 2000 });
  const out: ConsumerInfo[] = [];
  for await (const c of jsm.consumers.list(stream)) out.push(c);
  return out;
}

/** The one consumer of `stream` (the follower's), with the name of the server hosting it. */
async function followerConsumer(nc: NatsConnection, stream: string): Promise<{ name: string; host: string }> {
  const cs = await pollUntil(
    "the follower's consumer to be listed",
    10_000,
    () => consumersOf(nc, stream),
    (cs) => cs.length === 1 && !!cs[0]!.cluster?.leader,
  );
  return { name: cs[0]!.name, host: cs[0]!.cluster!.leader! };
}

/** Index of member `nN` of a startNatsCluster() cluster. */
const memberIndex = (serverName: string) => Number(/^n(\d+)$/.exec(serverName)![1]) - 1;

describe("JetStreamLog.follow() across the loss of a nats-server (3 nodes, R3)", () => {
  let cluster: NatsClusterHandle | null = null;
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
    await cluster?.stop();
    cluster = null;
  });

  /** A fresh cluster, a writer (own connection) and a follower log on a connection to every server. */
  async function setup(stream: string) {
    cluster = await startNatsCluster();
    const urls = cluster.urls;
    const writerLog = await openJetStreamLog({ servers: urls, stream, replicas: 3, timeoutMs: 2000, name: "writer" });
    closers.push(() => writerLog.close());
    const appender = new Appender(writerLog, { lastSeq: 0, writerId: "w", maxEventsPerRecord: 1, retryForMs: 25_000 });
    let appended = 0;
    const append = async () => {
      const n = appended + 1;
      const seq = await appender.append([ev(n)]);
      expect(seq).toBe(n);
      appended = n;
    };
    const followerLog = await openJetStreamLog({
      servers: urls,
      stream,
      create: false,
      timeoutMs: 2000,
      name: "follower",
      heartbeatMs: 1000,
      stallCheckMs: 3000,
    });
    closers.push(() => followerLog.close());
    const observer = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    closers.push(() => observer.close());
    return { cluster, writerLog, followerLog, observer, append, appended: () => appended };
  }

  /** Every record 1..n exactly once, in order, with its own event. */
  function expectExactly(f: Follower, n: number): void {
    expect(f.seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(f.keys).toEqual(Array.from({ length: n }, (_, i) => `w/task-${i + 1}`));
  }

  it("the server holding the follower's consumer is SIGKILLed: the follower resumes, each record once, in order", async () => {
    const stream = "FOLLOW_CONSUMER_LOSS";
    const { cluster, followerLog, observer, append, appended } = await setup(stream);
    for (let i = 0; i < 5; i++) await append();

    // Follow until the consumer sits on a server other than the follower's own, so the
    // follower's connection survives the kill and only the consumer is lost (the silent case).
    const own = () => followerLog.nc.info?.server_name;
    let follower = new Follower(followerLog, 1);
    closers.push(() => follower.stop());
    await follower.until(appended(), "the first records", 10_000);
    let consumer = await followerConsumer(observer, stream);
    for (let tries = 0; consumer.host === own() && tries < 10; tries++) {
      await follower.stop();
      const again = new Follower(followerLog, follower.seqs.length + 1, follower);
      closers.push(() => again.stop());
      follower = again;
      await append();
      await follower.until(appended(), "the follower to restart", 10_000);
      consumer = await followerConsumer(observer, stream);
    }
    expect(consumer.host).not.toBe(own());

    await cluster.kill(memberIndex(consumer.host));
    // Keep appending (the writer retries while the stream elects a leader, if it led it).
    for (let i = 0; i < 10; i++) await append();
    await follower.until(appended(), "the records appended after the kill", 20_000);
    expect(follower.error).toBeNull();
    expectExactly(follower, appended());
    expect(followerLog.readStats.consumerRestarts).toBeGreaterThanOrEqual(1);
    expect(followerLog.readStats.lastRestartReason).toMatch(/no heartbeat|nothing was delivered/);
    // Nothing more arrives than was appended.
    await append();
    await follower.until(appended(), "one more record", 10_000);
    expectExactly(follower, appended());
  }, 45_000); // ~10 s when it passes; the margin lets a stalled follower fail with its own message

  it("the follower's own server is SIGKILLed while records keep coming: each record once, in order", async () => {
    const stream = "FOLLOW_OWN_SERVER_LOSS";
    const { cluster, followerLog, append, appended } = await setup(stream);
    for (let i = 0; i < 5; i++) await append();
    const follower = new Follower(followerLog, 1);
    closers.push(() => follower.stop());
    await follower.until(appended(), "the first records", 10_000);

    const victim = followerLog.nc.info!.server_name;
    // Appends keep going while the server dies: some land while the follower is disconnected.
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    const appending = (async () => {
      for (let i = 0; i < 20; i++) {
        if (i === 3) started();
        await append();
      }
    })();
    await running;
    await cluster.kill(memberIndex(victim));
    await appending;
    await follower.until(appended(), "the records appended around the kill", 20_000);
    expect(follower.error).toBeNull();
    expectExactly(follower, appended());
    expect(followerLog.nc.info!.server_name).not.toBe(victim);
  }, 45_000);
});

describe("JetStreamLog read()/follow() on one server", () => {
  const nats = withNats();

  it("an idle follower keeps its consumer: heartbeats and stall checks, no recreation", async () => {
    const log = await nats.openLog("FOLLOW_IDLE", { heartbeatMs: 200, stallCheckMs: 400 });
    const writer = await nats.openLog("FOLLOW_IDLE");
    await writer.append(encodeRecord([ev(1)]), 0, "i:1");
    const follower = new Follower(log, 1);
    try {
      await follower.until(1, "the first record", 10_000);
      // Several heartbeat periods and stall checks on an idle log (waited on by counting them).
      await pollUntil(
        "heartbeats and stall checks",
        15_000,
        async () => ({ ...log.readStats }),
        (s) => s.heartbeats >= 8 && s.stallChecks >= 3,
      );
      expect(log.readStats.consumersCreated).toBe(1);
      expect(log.readStats.consumerRestarts).toBe(0);
      await writer.append(encodeRecord([ev(2)]), 1, "i:2");
      await follower.until(2, "a record after the idle spell", 10_000);
      expectExactlyN(follower, 2);
      expect(log.readStats.consumersCreated).toBe(1);
    } finally {
      await follower.stop();
    }
  });

  it("read() keeps the bytes requested but not consumed under readBufferBytes, on a log of mixed record sizes", async () => {
    const stream = "READ_BOUNDED";
    const budget = 4 * 2 ** 20;
    const log = await nats.openLog(stream, { readBufferBytes: budget });
    // 100 records of ~256 KiB, then 3,000 small ones: the average (~8.6 KiB) says nothing about
    // the first stretch.
    const bigWriter = "x".repeat(256 * 1024);
    const BIG = 100;
    const SMALL = 3000;
    const acks: Array<Promise<unknown>> = [];
    for (let i = 1; i <= BIG; i++) acks.push(log.append(encodeRecord([ev(i, bigWriter)]), i - 1, `b:${i}`));
    for (let i = BIG + 1; i <= BIG + SMALL; i++) acks.push(log.append(encodeRecord([ev(i)]), i - 1, `b:${i}`));
    await Promise.all(acks);
    const bigSize = encodeRecord([ev(1, bigWriter)]).length;
    const smallSize = encodeRecord([ev(BIG + 1)]).length;

    const nc = await connect({ servers: nats.url });
    try {
      const it = log.readRaw(1)[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.done).toBe(false);
      expect(first.value!.seq).toBe(1);
      // The reader holds the first record and reads no further: wait until the server has
      // delivered all it will (the consumer's delivered sequence stops moving).
      let prev = -1;
      let stableSince = Date.now();
      const delivered = await pollUntil(
        "the consumer's deliveries to settle",
        10_000,
        async () => {
          const cs = await consumersOf(nc, stream);
          const d = cs.length === 1 ? cs[0]!.delivered.stream_seq : -1;
          if (d !== prev) {
            prev = d;
            stableSince = Date.now();
          }
          return { d, stableMs: Date.now() - stableSince };
        },
        (v) => v.d >= 1 && v.stableMs >= 600,
      );
      // Delivered, not yet consumed: records 2..d.
      const inFlight = (Math.min(delivered.d, BIG) - 1) * bigSize + Math.max(0, delivered.d - BIG) * smallSize;
      expect(inFlight).toBeLessThanOrEqual(budget + bigSize);
      expect(delivered.d).toBeLessThan(BIG);
      // And the rest of the read is complete and in order.
      let next = 2;
      for (let r = await it.next(); !r.done; r = await it.next()) {
        expect(r.value.seq).toBe(next);
        next++;
      }
      expect(next - 1).toBe(BIG + SMALL);
    } finally {
      await nc.close();
    }
  });
});

function expectExactlyN(f: Follower, n: number): void {
  expect(f.seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
}
