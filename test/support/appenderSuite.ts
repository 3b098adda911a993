// Appender properties, run against every EventLog implementation (memory and JetStream).
//
//   appenderSuite("MemoryLog", async () => new MemoryLog(), { pipelined: true });
//
// `open(name)` must return a fresh, empty log or one on a stream nobody else writes to.

import { describe, expect, it } from "vitest";
import { Appender, RecordTooLargeError } from "../../src/eventlog/appender.js";
import type { AnyEnvelope } from "../../src/eventlog/envelope.js";
import { FencedError, LogUnavailableError, type EventLog } from "../../src/eventlog/log.js";
import { collect, ev, evKey, instrument, settle, type Settled } from "./logs.js";

export interface SuiteOptions {
  /** The log supports ChainedAppend, so the Appender must keep several records in flight. */
  pipelined: boolean;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

interface Issued {
  keys: string[];
  result: Promise<Settled<number>>;
}

function issue(app: Appender, events: AnyEnvelope[]): Issued {
  return { keys: events.map(evKey), result: settle(app.append(events)) };
}

/** Records as (seq, keys), read back from the log. */
async function readKeys(log: EventLog, fromSeq: number): Promise<Array<{ seq: number; keys: string[] }>> {
  return (await collect(log.read(fromSeq))).map((r) => ({ seq: r.seq, keys: r.events.map(evKey) }));
}

/**
 * Every request resolved, each request's events sit whole in the record of the sequence it got,
 * records hold exactly the requests' events in issue order, and sequences run base+1..last.
 */
async function expectAllCommitted(log: EventLog, base: number, issued: Issued[], commits?: Array<{ seq: number; keys: string[] }>) {
  const results = await Promise.all(issued.map((i) => i.result));
  const bad = results.findIndex((r) => !r.ok);
  expect(bad, bad >= 0 ? `request ${bad} failed: ${String((results[bad] as { err: unknown }).err)}` : "").toBe(-1);
  const seqs = results.map((r) => (r as { value: number }).value);
  // Issue order is sequence order.
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThanOrEqual(seqs[i - 1]!);
  // The records the requests say they are in, rebuilt from the requests.
  const expected: Array<{ seq: number; keys: string[] }> = [];
  for (let i = 0; i < issued.length; i++) {
    const last = expected[expected.length - 1];
    if (last && last.seq === seqs[i]) last.keys.push(...issued[i]!.keys);
    else expected.push({ seq: seqs[i]!, keys: [...issued[i]!.keys] });
  }
  const last = await log.lastSeq();
  expect(expected.map((r) => r.seq)).toEqual(Array.from({ length: last - base }, (_, i) => base + 1 + i));
  expect(await readKeys(log, base + 1)).toEqual(expected);
  if (commits) expect(commits).toEqual(expected);
  return seqs;
}

export function appenderSuite(label: string, open: (name: string) => Promise<EventLog>, opts: SuiteOptions): void {
  describe(`Appender on ${label}`, () => {
    it("commits 5,000 pipelined requests in order, contiguous, onCommit in order before resolving", async () => {
      const log = instrument(await open("pipeline"));
      const base = await log.lastSeq();
      const commits: Array<{ seq: number; keys: string[] }> = [];
      const app = new Appender(log, {
        lastSeq: base,
        writerId: "pipe",
        maxEventsPerRecord: 50,
        onCommit: (seq, events) => commits.push({ seq, keys: events.map(evKey) }),
      });
      expect(app.pipelineDepth).toBe(opts.pipelined ? 32 : 1);
      const issued: Issued[] = [];
      let resolvedBeforeCommit = 0;
      let n = 0;
      for (let i = 0; i < 5000; i++) {
        const events = Array.from({ length: 1 + (i % 3) }, () => ev(n++, "pipe"));
        const p = app.append(events);
        void p.then((seq) => {
          if (!commits.some((c) => c.seq === seq)) resolvedBeforeCommit++;
        });
        issued.push({ keys: events.map(evKey), result: settle(p) });
      }
      await expectAllCommitted(log, base, issued, commits);
      expect(resolvedBeforeCommit).toBe(0);
      expect(app.failure).toBeNull();
      expect(app.committedRecords).toBe(commits.length);
      expect(commits.length).toBeGreaterThanOrEqual(Math.ceil(n / 50));
      for (const c of commits) expect(c.keys.length).toBeLessThanOrEqual(50);
      // Every record was sent exactly once, and the pipeline really was a pipeline.
      expect(log.calls.length).toBe(commits.length);
      if (opts.pipelined) expect(log.peakInFlight).toBeGreaterThan(1);
      else expect(log.peakInFlight).toBe(1);
    });

    it("two appenders racing: exactly one survives, the other's requests all fail fenced, nothing lost", async () => {
      for (let round = 0; round < 3; round++) {
        const log = await open(`race${round}`);
        const base = await log.lastSeq();
        const a = new Appender(log, { lastSeq: base, writerId: `A${round}`, maxEventsPerRecord: 20 });
        const b = new Appender(log, { lastSeq: base, writerId: `B${round}`, maxEventsPerRecord: 20 });
        const ia: Issued[] = [];
        const ib: Issued[] = [];
        let n = 0;
        for (let t = 0; t < 12; t++) {
          // Alternate who issues first in a tick, and issue from both in the same ticks.
          const order = (t + round) % 2 === 0 ? [a, b] : [b, a];
          for (const app of order) {
            const into = app === a ? ia : ib;
            const w = app === a ? "A" : "B";
            for (let k = 0; k < 30; k++) into.push(issue(app, [ev(n++, w), ev(n++, w)]));
          }
          await tick();
        }
        const ra = await Promise.all(ia.map((i) => i.result));
        const rb = await Promise.all(ib.map((i) => i.result));
        expect([a.failure, b.failure].filter((f) => f !== null)).toHaveLength(1);
        const [winner, wi, loser, lr] = a.failure === null ? [a, ia, b, rb] : [b, ib, a, ra];
        expect(loser.failure).toBeInstanceOf(FencedError);
        for (const r of lr) {
          expect(r.ok).toBe(false);
          expect((r as { err: unknown }).err).toBeInstanceOf(FencedError);
        }
        expect(winner.failure).toBeNull();
        await expectAllCommitted(log, base, wi);
      }
    });

    it("a stale writer with a pipeline behind its fenced record lands nothing", async () => {
      // The other writer appends exactly one record; the stale writer's record 2 is fenced on
      // base+1, which IS the log's end now. It must still be refused.
      const log = instrument(await open("stale"));
      const base = await log.lastSeq();
      const a = new Appender(log, { lastSeq: base, writerId: "owner" });
      expect(await a.append([ev(0, "owner")])).toBe(base + 1);
      const stale = new Appender(log, { lastSeq: base, writerId: "stale", maxEventsPerRecord: 1 });
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => settle(stale.append([ev(i, "stale")]))));
      for (const r of rs) {
        expect(r.ok).toBe(false);
        expect((r as { err: unknown }).err).toBeInstanceOf(FencedError);
      }
      expect(stale.failure).toBeInstanceOf(FencedError);
      expect(await log.lastSeq()).toBe(base + 1);
      expect(await a.append([ev(1, "owner")])).toBe(base + 2);
      expect((await readKeys(log, base + 1)).map((r) => r.keys)).toEqual([["owner/task-0"], ["owner/task-1"]]);
      if (opts.pipelined) expect(log.calls.filter((c) => c.msgId.startsWith("stale:")).length).toBeGreaterThan(1);
    });

    it("re-sends in order after LogUnavailableError (lost records and lost acks), each request resolves once, right seq", async () => {
      let base = 0;
      const inner = await open("recover");
      base = await inner.lastSeq();
      const id = (k: number) => `rec:${base + k}`; // msgId of this appender's k-th record
      const log = instrument(inner, (call, attempt) => {
        if (call.msgId === id(3) && attempt === 1) return "drop"; // did not land
        if (call.msgId === id(5) && attempt === 1) return "ghost"; // landed, ack lost
        if (call.msgId === id(9) && attempt <= 2) return "drop"; // fails twice
        if (call.msgId === id(12) && attempt === 1) return "ghost";
        if (call.msgId === id(13) && attempt === 1) return "drop";
        return undefined;
      });
      const commits: Array<{ seq: number; keys: string[] }> = [];
      const app = new Appender(log, {
        lastSeq: base,
        writerId: "rec",
        maxEventsPerRecord: 10,
        onCommit: (seq, events) => commits.push({ seq, keys: events.map(evKey) }),
      });
      const issued: Issued[] = [];
      let n = 0;
      for (let burst = 0; burst < 4; burst++) {
        for (let i = 0; i < 60; i++)
          issued.push(
            issue(
              app,
              Array.from({ length: 1 + (i % 3) }, () => ev(n++, "rec")),
            ),
          );
        await tick();
      }
      await expectAllCommitted(log, base, issued, commits);
      expect(app.failure).toBeNull();
      expect(log.faults).toBe(6);
      // Each record was committed once although some were sent several times.
      expect(new Set(commits.map((c) => c.seq)).size).toBe(commits.length);
      expect(commits.length).toBeGreaterThan(13);
    });

    it("gives up after retryForMs: later requests reject with LogUnavailableError, earlier ones stand", async () => {
      const inner = await open("giveup");
      const base = await inner.lastSeq();
      const log = instrument(inner, (call) => (call.msgId === `gu:${base + 3}` ? "drop" : undefined));
      const app = new Appender(log, { lastSeq: base, writerId: "gu", maxEventsPerRecord: 1, retryForMs: 200 });
      const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => settle(app.append([ev(i, "gu")]))));
      expect(rs.slice(0, 2)).toEqual([
        { ok: true, value: base + 1 },
        { ok: true, value: base + 2 },
      ]);
      for (const r of rs.slice(2)) {
        expect(r.ok).toBe(false);
        expect((r as { err: unknown }).err).toBeInstanceOf(LogUnavailableError);
      }
      expect(app.failure).toBeInstanceOf(LogUnavailableError);
      await expect(app.append([ev(99, "gu")])).rejects.toBeInstanceOf(LogUnavailableError);
      expect(await inner.lastSeq()).toBe(base + 2);
    });

    it("splits records by size and rejects only a request too large for any record", async () => {
      const log = await open("size");
      const base = await log.lastSeq();
      const app = new Appender(log, { lastSeq: base, writerId: "sz", maxRecordBytes: 2000 });
      const small: Issued[] = [];
      let n = 0;
      for (let i = 0; i < 40; i++) small.push(issue(app, [ev(n++, "sz")]));
      const huge = settle(app.append(Array.from({ length: 60 }, () => ev(n++, "sz"))));
      for (let i = 0; i < 40; i++) small.push(issue(app, [ev(n++, "sz")]));
      const h = await huge;
      expect(h.ok).toBe(false);
      expect((h as { err: unknown }).err).toBeInstanceOf(RecordTooLargeError);
      const seqs = await expectAllCommitted(log, base, small);
      expect(new Set(seqs).size).toBeGreaterThan(1); // 80 events of ~100 B cannot fit in one 2 kB record
      expect(app.failure).toBeNull();
    });

    it("flush() resolves once everything appended so far has settled", async () => {
      const log = await open("flush");
      const base = await log.lastSeq();
      const app = new Appender(log, { lastSeq: base, writerId: "fl", maxEventsPerRecord: 5 });
      await app.flush(); // idle: immediate
      let settled = 0;
      for (let i = 0; i < 200; i++) void app.append([ev(i, "fl")]).then(() => settled++);
      await app.flush();
      await Promise.resolve(); // let the last .then run
      expect(settled).toBe(200);
      expect(await log.lastSeq()).toBe(base + 40);
      expect(app.pending).toEqual({ requests: 0, records: 0 });
    });
  });
}
