// Appender properties against the in-memory log: MemoryLog, which has the JetStream-style
// previous-msgId check (pipelined), and MemoryLog behind a wrapper that hides that check (so one
// record in flight).

import { describe, expect, it } from "vitest";
import { Appender, supportsChainedAppend } from "../src/eventlog/appender.js";
import { FencedError } from "../src/eventlog/log.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { appenderSuite } from "./support/appenderSuite.js";
import { ev, unchained } from "./support/logs.js";

appenderSuite("MemoryLog (previous-record fencing)", async () => new MemoryLog(), { pipelined: true });
appenderSuite("MemoryLog without previous-record fencing", async () => unchained(new MemoryLog()), { pipelined: false });

describe("Appender capability detection", () => {
  it("pipelines only over logs that fence on the previous record", () => {
    expect(supportsChainedAppend(unchained(new MemoryLog()))).toBe(false);
    expect(supportsChainedAppend(new MemoryLog())).toBe(true);
    expect(new Appender(unchained(new MemoryLog()), { lastSeq: 0, writerId: "x", maxInFlight: 8 }).pipelineDepth).toBe(1);
    expect(new Appender(new MemoryLog(), { lastSeq: 0, writerId: "x", maxInFlight: 8 }).pipelineDepth).toBe(8);
  });

  it("MemoryLog answers duplicates first, then checks the previous msgId, then the sequence", async () => {
    const log = new MemoryLog();
    const rec = new Uint8Array([0x90]);
    expect(await log.appendAfter(rec, 0, "a:1", undefined)).toEqual({ seq: 1, duplicate: false });
    await expect(log.appendAfter(rec, 1, "b:2", "b:1")).rejects.toBeInstanceOf(FencedError);
    expect(await log.appendAfter(rec, 7, "a:1", "zzz")).toEqual({ seq: 1, duplicate: true });
    expect(await log.appendAfter(rec, 1, "a:2", "a:1")).toEqual({ seq: 2, duplicate: false });
    await expect(log.append(rec, 1, "c:1")).rejects.toBeInstanceOf(FencedError);
    expect(await log.lastSeq()).toBe(2);
  });

  for (const [label, open, landed] of [
    ["one record in flight", () => unchained(new MemoryLog()), 2],
    // Pipelined, record 3 was already on the wire (and landed) when record 2's fold failed.
    ["pipelined", () => new MemoryLog(), 3],
  ] as const) {
    it(`dies with the error when onCommit throws, instead of an unhandled rejection (${label})`, async () => {
      const log = open();
      const boom = new Error("fold failed");
      const app = new Appender(log, {
        lastSeq: 0,
        writerId: "oc",
        maxEventsPerRecord: 1,
        onCommit: (seq) => {
          if (seq === 2) throw boom;
        },
      });
      const rs = await Promise.all(
        [1, 2, 3].map((i) =>
          app.append([ev(i)]).then(
            (s) => s,
            (e: unknown) => e,
          ),
        ),
      );
      expect(rs).toEqual([1, boom, boom]);
      expect(app.failure).toBe(boom);
      expect(await log.lastSeq()).toBe(landed); // record 2 is in the log; its owner must replay
    });
  }

  it("recheck: decides again once what may overtake it is folded, in a record of its own, and may drop everything", async () => {
    const folded: number[] = [];
    const app = new Appender(new MemoryLog(), { lastSeq: 0, writerId: "r", onCommit: (seq) => folded.push(seq) });
    const seenAt: number[][] = [];
    const seen = <T>(es: T): T => {
      seenAt.push([...folded]);
      return es;
    };
    const first = app.append([ev(1)]);
    // May be overtaken by anything: waits until record 1 is folded, then keeps its event.
    const second = app.append([ev(2)], { recheck: (es) => seen(es) });
    // Queued behind a recheck: rides after it, never before.
    const third = app.append([ev(3)]);
    // Drops everything: resolves with the log's last sequence, appends nothing.
    const fourth = app.append([ev(4)], { recheck: () => [] });
    expect(await Promise.all([first, second, third, fourth])).toEqual([1, 2, 2, 2]);
    expect(seenAt).toEqual([[1]]);
    expect(folded).toEqual([1, 2]);
  });

  it("recheck with overtakenBy: no bubble when nothing on the wire can overtake it", async () => {
    const folded: number[] = [];
    const app = new Appender(new MemoryLog(), { lastSeq: 0, writerId: "o", maxEventsPerRecord: 1, onCommit: (seq) => folded.push(seq) });
    const seenAt: number[][] = [];
    const seen = <T>(es: T): T => {
      seenAt.push([...folded]);
      return es;
    };
    const key = (e: { data: unknown }) => (e.data as { taskId: string }).taskId;
    const pending = [app.append([ev(1)]), app.append([ev(2)])];
    pending.push(app.append([ev(3)], { recheck: seen, overtakenBy: (e) => key(e) === "w/task-99" }));
    pending.push(app.append([ev(4)], { recheck: seen, overtakenBy: (e) => key(e) === "w/task-3" }));
    expect(await Promise.all(pending)).toEqual([1, 2, 3, 4]);
    // The first recheck ran with records 1 and 2 still on the wire; the second waited for record 3.
    expect(seenAt).toEqual([[], [1, 2, 3]]);
  });

  it("rejects empty requests without harming the appender", async () => {
    const app = new Appender(new MemoryLog(), { lastSeq: 0, writerId: "e" });
    await expect(app.append([])).rejects.toThrow(/at least one event/);
    expect(await app.append([ev(1)])).toBe(1);
  });
});
