// JetStreamLog against a real nats-server (JetStream, file storage) on free ports, plus the
// Appender properties over it. Every test uses its own stream.

import { jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { Appender } from "../src/eventlog/appender.js";
import { decodeRecord, encodeRecord, type LogRecord } from "../src/eventlog/envelope.js";
import { LogGapError, openJetStreamLog, type RawRecord } from "../src/eventlog/jetstream.js";
import { FencedError, LogUnavailableError } from "../src/eventlog/log.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { appenderSuite } from "./support/appenderSuite.js";
import { collect, ev, evKey } from "./support/logs.js";
import { withNats } from "./support/nats.js";
import { stopProcess } from "./support/stop.js";

const nats = withNats();
let streamNo = 0;
const streamName = (what: string) => `JSTEST_${what.toUpperCase()}_${++streamNo}`;

describe("JetStreamLog", () => {
  it("appends and reads back in order; the record codec round-trips", async () => {
    const log = await nats.openLog(streamName("rw"));
    expect(await log.lastSeq()).toBe(0);
    expect(await collect(log.read(1))).toEqual([]);
    const records = [[ev(1), ev(2)], [ev(3)], [ev(4), ev(5), ev(6)]];
    for (let i = 0; i < records.length; i++) {
      expect(await log.append(encodeRecord(records[i]!), i, `w:${i + 1}`)).toEqual({ seq: i + 1, duplicate: false });
    }
    expect(await log.lastSeq()).toBe(3);
    const read = await collect(log.read(1));
    expect(read).toEqual(records.map((events, i) => ({ seq: i + 1, events })));
    expect((await collect(log.read(2))).map((r) => r.seq)).toEqual([2, 3]);
    expect((await collect(log.read(0))).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(await collect(log.read(4))).toEqual([]); // caught up: returns at once
    const raw: RawRecord[] = [];
    for await (const r of log.readRaw(3)) raw.push({ seq: r.seq, data: Uint8Array.from(r.data) });
    expect(raw).toHaveLength(1);
    expect(decodeRecord(raw[0]!.data)).toEqual(records[2]);
  });

  it("read() stops at the end as of the call, across many consumer pulls", async () => {
    const log = await nats.openLog(streamName("many"));
    const N = 12_000; // more than one pull of max_messages (5000)
    const acks = [];
    for (let i = 0; i < N; i++) acks.push(log.append(encodeRecord([ev(i)]), i, `m:${i + 1}`));
    const seqs = (await Promise.all(acks)).map((a) => a.seq);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    let next = 1;
    let appendedDuringRead = false;
    for await (const r of log.read(1)) {
      expect(r.seq).toBe(next);
      expect(evKey(r.events[0]!)).toBe(`w/task-${next - 1}`);
      next++;
      if (!appendedDuringRead) {
        appendedDuringRead = true;
        await log.append(encodeRecord([ev(N)]), N, `m:${N + 1}`); // after the call: not read
      }
    }
    expect(next - 1).toBe(N);
    expect(await log.lastSeq()).toBe(N + 1);
  });

  it("refuses a writer with a stale expected sequence (FencedError) and leaves the log unchanged", async () => {
    const log = await nats.openLog(streamName("fence"));
    await log.append(encodeRecord([ev(1)]), 0, "a:1");
    await log.append(encodeRecord([ev(2)]), 1, "a:2");
    const err = await log.append(encodeRecord([ev(99, "stale")]), 1, "b:2").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect((err as FencedError).expectedLastSeq).toBe(1);
    expect((err as FencedError).actualLastSeq).toBe(2);
    expect(await log.lastSeq()).toBe(2);
    expect((await collect(log.read(1))).map((r) => evKey(r.events[0]!))).toEqual(["w/task-1", "w/task-2"]);
  });

  it("appendAfter also fences on the writer's previous record: a pipelined stale record cannot land", async () => {
    const log = await nats.openLog(streamName("chain"));
    await log.append(encodeRecord([ev(1, "A")]), 0, "A:1"); // the other writer took seq 1
    // The stale writer pipelined B:1 (fenced on 0) and B:2 (fenced on 1, after B:1).
    const b1 = log.appendAfter(encodeRecord([ev(1, "B")]), 0, "B:1", undefined).catch((e: unknown) => e);
    const b2 = log.appendAfter(encodeRecord([ev(2, "B")]), 1, "B:2", "B:1").catch((e: unknown) => e);
    expect(await b1).toBeInstanceOf(FencedError);
    expect(await b2).toBeInstanceOf(FencedError); // the sequence alone (1) would have matched
    expect(await log.lastSeq()).toBe(1);
    // Sequence fencing alone lets it in: that is why the Appender pipelines only with appendAfter.
    expect(await log.append(encodeRecord([ev(2, "B")]), 1, "B:2-unchained")).toEqual({ seq: 2, duplicate: false });
    // A correct chain lands; a retry of a landed record is a duplicate whatever it expects.
    expect(await log.appendAfter(encodeRecord([ev(3, "B")]), 2, "B:3", "B:2-unchained")).toEqual({ seq: 3, duplicate: false });
    expect(await log.appendAfter(encodeRecord([ev(3, "B")]), 2, "B:3", "B:2-unchained")).toEqual({ seq: 3, duplicate: true });
  });

  it("a duplicate msgId retry returns the original sequence (duplicate: true)", async () => {
    const log = await nats.openLog(streamName("dup"));
    const rec = encodeRecord([ev(1)]);
    expect(await log.append(rec, 0, "d:1")).toEqual({ seq: 1, duplicate: false });
    expect(await log.append(rec, 0, "d:1")).toEqual({ seq: 1, duplicate: true });
    await log.append(encodeRecord([ev(2)]), 1, "d:2");
    // A retry after more records landed: its expected sequence is stale, it is still a duplicate.
    expect(await log.append(rec, 0, "d:1")).toEqual({ seq: 1, duplicate: true });
    expect(await log.lastSeq()).toBe(2);
  });

  it("follow() sees records appended after it started and ends when aborted", async () => {
    const log = await nats.openLog(streamName("follow"));
    await log.append(encodeRecord([ev(1)]), 0, "f:1");
    const ac = new AbortController();
    const seen: LogRecord[] = [];
    const waiters: Array<{ n: number; resolve: () => void }> = [];
    const seenAtLeast = (n: number) => new Promise<void>((resolve) => (seen.length >= n ? resolve() : waiters.push({ n, resolve })));
    const done = (async () => {
      for await (const r of log.follow(1, ac.signal)) {
        seen.push(r);
        for (const w of waiters.filter((w) => seen.length >= w.n)) w.resolve();
      }
    })();
    await seenAtLeast(1);
    for (let i = 2; i <= 4; i++) await log.append(encodeRecord([ev(i)]), i - 1, `f:${i}`);
    await seenAtLeast(4);
    expect(seen.map((r) => [r.seq, evKey(r.events[0]!)])).toEqual([
      [1, "w/task-1"],
      [2, "w/task-2"],
      [3, "w/task-3"],
      [4, "w/task-4"],
    ]);
    ac.abort();
    await done; // ends cleanly, without throwing
    await log.append(encodeRecord([ev(5)]), 4, "f:5");
    expect(seen).toHaveLength(4);

    // From the middle, and from beyond the end (waits for the next record).
    const ac2 = new AbortController();
    const got: number[] = [];
    let wake: () => void = () => {};
    const two = new Promise<void>((r) => (wake = r));
    const done2 = (async () => {
      for await (const r of log.follow(5, ac2.signal)) {
        got.push(r.seq);
        if (got.length === 2) wake();
      }
    })();
    await log.append(encodeRecord([ev(6)]), 5, "f:6");
    await two;
    ac2.abort();
    await done2;
    expect(got).toEqual([5, 6]);

    // Already aborted: yields nothing.
    const ac3 = new AbortController();
    ac3.abort();
    expect(await collect(log.follow(1, ac3.signal))).toEqual([]);
  });

  it("reports a gap instead of skipping purged records", async () => {
    const log = await nats.openLog(streamName("gap"));
    for (let i = 0; i < 5; i++) await log.append(encodeRecord([ev(i)]), i, `g:${i + 1}`);
    const nc = await connect({ servers: nats.url });
    try {
      await (await jetstreamManager(nc)).streams.purge(log.stream, { seq: 4 }); // keeps 4 and 5
    } finally {
      await nc.close();
    }
    expect((await collect(log.read(4))).map((r) => r.seq)).toEqual([4, 5]);
    await expect(collect(log.read(1))).rejects.toBeInstanceOf(LogGapError);
  });

  it("opens an existing stream idempotently and refuses an incompatible one", async () => {
    const name = streamName("open");
    const a = await nats.openLog(name);
    await a.append(encodeRecord([ev(1)]), 0, "o:1");
    const b = await nats.openLog(name);
    expect(await b.lastSeq()).toBe(1);
    expect(b.subject).toBe(`${name.toLowerCase()}.events`);

    const bad = streamName("workqueue");
    const nc = await connect({ servers: nats.url });
    try {
      await (await jetstreamManager(nc)).streams.add({
        name: bad,
        subjects: [`${bad.toLowerCase()}.events`],
        retention: RetentionPolicy.Workqueue,
      });
    } finally {
      await nc.close();
    }
    await expect(openJetStreamLog({ servers: nats.url, stream: bad })).rejects.toThrow(/retention/);
    await expect(openJetStreamLog({ servers: nats.url, stream: streamName("absent"), create: false })).rejects.toThrow(/does not exist/);
  });

  it("a full stream (discard: new) refuses appends with a final error, not LogUnavailableError", async () => {
    const log = await nats.openLog(streamName("full"), { maxMsgs: 3 });
    const app = new Appender(log, { lastSeq: 0, writerId: "full", maxEventsPerRecord: 1, retryForMs: 20_000 });
    const started = Date.now();
    const rs = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        app.append([ev(i)]).then(
          (s) => s,
          (e: unknown) => e,
        ),
      ),
    );
    expect(rs.slice(0, 3)).toEqual([1, 2, 3]);
    expect(rs[3]).toBeInstanceOf(Error);
    expect(rs[3]).not.toBeInstanceOf(LogUnavailableError);
    expect(String((rs[3] as Error).message)).toMatch(/maximum messages/);
    expect(Date.now() - started).toBeLessThan(10_000); // not retried for retryForMs
    expect(await log.lastSeq()).toBe(3);
  });

  it("maps a lost server to LogUnavailableError", async () => {
    const server = await startNatsServer();
    try {
      const log = await openJetStreamLog({ servers: server.url, stream: "JSTEST_DOWN", timeoutMs: 1000 });
      try {
        expect(await log.append(encodeRecord([ev(1)]), 0, "u:1")).toEqual({ seq: 1, duplicate: false });
        const closed = new Promise<void>((resolve) => {
          void (async () => {
            for await (const s of log.nc.status()) if (s.type === "disconnect") return resolve();
          })();
        });
        await server.stop();
        await closed;
        await expect(log.append(encodeRecord([ev(2)]), 1, "u:2")).rejects.toBeInstanceOf(LogUnavailableError);
        await expect(log.lastSeq()).rejects.toBeInstanceOf(LogUnavailableError);
      } finally {
        await log.close();
      }
      await expect(log.append(encodeRecord([ev(3)]), 1, "u:3")).rejects.toBeInstanceOf(LogUnavailableError);
    } finally {
      await server.stop();
    }
  });

  it("probe() says where the log ends, and gives up after its own timeout, not the log's", async () => {
    // What a takeover asks first (actors/scheduler.ts): a server that does not answer (stopped
    // here with SIGSTOP; in the failover bench, a stream electing its leader) costs the probe's
    // timeout, and the takeover tries again, rather than the log's request timeout.
    const server = await startNatsServer();
    try {
      const log = await openJetStreamLog({ servers: server.url, stream: "JSTEST_PROBE", timeoutMs: 20_000 });
      try {
        await log.append(encodeRecord([ev(1)]), 0, "p:1");
        await log.append(encodeRecord([ev(2)]), 1, "p:2");
        expect(await log.probe(1000)).toBe(2);
        try {
          await stopProcess(server.pid);
          const t0 = performance.now();
          await expect(log.probe(300)).rejects.toBeInstanceOf(LogUnavailableError);
          // Far below the log's own 20 s: the probe's timeout decided.
          expect(performance.now() - t0).toBeLessThan(10_000);
        } finally {
          process.kill(server.pid, "SIGCONT");
        }
        expect(await log.probe(1000)).toBe(2);
      } finally {
        await log.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("Appender over JetStream: 5,000 requests without awaiting, group committed and pipelined", async () => {
    const log = await nats.openLog(streamName("appender"));
    const commits: number[] = [];
    const app = new Appender(log, { lastSeq: 0, writerId: "jsapp", onCommit: (seq) => commits.push(seq) });
    expect(app.pipelineDepth).toBe(32);
    const ps = Array.from({ length: 5000 }, (_, i) => app.append([ev(i)]));
    const seqs = await Promise.all(ps);
    expect(commits).toEqual(Array.from({ length: commits.length }, (_, i) => i + 1));
    expect(seqs[seqs.length - 1]).toBe(commits.length);
    expect(commits.length).toBeLessThan(5000 / 100); // group commit: up to 1000 events per record
    const events = (await collect(log.read(1))).flatMap((r) => r.events.map(evKey));
    expect(events).toEqual(Array.from({ length: 5000 }, (_, i) => `w/task-${i}`));
  });
});

appenderSuite("JetStreamLog", (what) => nats.openLog(streamName(`app_${what}`)), { pipelined: true });
