import { afterEach, describe, expect, it, vi } from "vitest";
import { StatusDeduper, StatusQueue, type StatusUpdate } from "../src/agent/statusQueue.js";

interface Call {
  update: StatusUpdate;
  at: number;
  resolve: (acked: boolean) => void;
  reject: (err: Error) => void;
}

/** A send function whose calls the test answers by hand. */
function manualSend() {
  const calls: Call[] = [];
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;
  const send = (update: StatusUpdate): Promise<boolean> =>
    new Promise<boolean>((resolve, reject) => {
      const n = (inFlight.get(update.taskId) ?? 0) + 1;
      inFlight.set(update.taskId, n);
      maxInFlight = Math.max(maxInFlight, n);
      const done = () => inFlight.set(update.taskId, (inFlight.get(update.taskId) ?? 1) - 1);
      calls.push({
        update,
        at: Date.now(),
        resolve: (acked) => {
          done();
          resolve(acked);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      });
    });
  return { calls, send, maxInFlight: () => maxInFlight };
}

/** Lets promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

afterEach(() => {
  vi.useRealTimers();
});

describe("StatusQueue", () => {
  it("assigns per-task seqs and delivers in order per task", async () => {
    const delivered: StatusUpdate[] = [];
    const q = new StatusQueue({
      send: async (u) => {
        delivered.push(u);
        return true;
      },
      now: () => 42,
    });
    const a1 = q.enqueue("a", "STARTING");
    const b1 = q.enqueue("b", "STARTING");
    const a2 = q.enqueue("a", "RUNNING");
    const a3 = q.enqueue("a", "FAILED", { exitCode: 3, message: 'process "web" exited with code 3' });
    expect([a1.seq, a2.seq, a3.seq, b1.seq]).toEqual([1, 2, 3, 1]);
    expect(a3).toEqual({
      taskId: "a",
      seq: 3,
      state: "FAILED",
      exitCode: 3,
      message: 'process "web" exited with code 3',
      ts: 42,
    });
    await q.onIdle();
    expect(delivered.filter((u) => u.taskId === "a").map((u) => [u.seq, u.state])).toEqual([
      [1, "STARTING"],
      [2, "RUNNING"],
      [3, "FAILED"],
    ]);
    expect(delivered.filter((u) => u.taskId === "b").map((u) => u.seq)).toEqual([1]);
    expect(q.pending()).toEqual([]);
    // Seqs keep counting after the queue drained.
    expect(q.enqueue("a", "LOST").seq).toBe(4);
    await q.onIdle();
  });

  it("keeps only the head of a task in flight", async () => {
    const m = manualSend();
    const q = new StatusQueue({ send: m.send });
    q.enqueue("t", "STARTING");
    q.enqueue("t", "RUNNING");
    q.enqueue("t", "FINISHED");
    await flush();
    expect(m.calls.map((c) => c.update.seq)).toEqual([1]);
    expect(q.pending().map((u) => u.seq)).toEqual([1, 2, 3]);

    m.calls[0]!.resolve(true);
    await flush();
    expect(m.calls.map((c) => c.update.seq)).toEqual([1, 2]);
    expect(q.pending().map((u) => u.seq)).toEqual([2, 3]);

    m.calls[1]!.resolve(true);
    await flush();
    m.calls[2]!.resolve(true);
    await q.onIdle();
    expect(m.calls.map((c) => c.update.seq)).toEqual([1, 2, 3]);
    expect(m.maxInFlight()).toBe(1);
    expect(q.pending()).toEqual([]);
  });

  it("retries the head with exponential backoff, capped, until it is acked", async () => {
    vi.useFakeTimers({ now: 0 });
    const m = manualSend();
    const q = new StatusQueue({ send: m.send, initialRetryMs: 1000, maxRetryMs: 4000 });
    q.enqueue("t", "RUNNING");
    q.enqueue("t", "FINISHED");
    await vi.advanceTimersByTimeAsync(0);
    expect(m.calls).toHaveLength(1);

    // Fail five times: rejected, not acked, rejected, not acked, not acked.
    const failures: Array<(c: Call) => void> = [
      (c) => c.reject(new Error("no connection")),
      (c) => c.resolve(false),
      (c) => c.reject(new Error("timeout")),
      (c) => c.resolve(false),
      (c) => c.resolve(false),
    ];
    const expectedDelays = [1000, 2000, 4000, 4000, 4000];
    for (const [i, fail] of failures.entries()) {
      fail(m.calls[m.calls.length - 1]!);
      const before = m.calls.length;
      await vi.advanceTimersByTimeAsync(expectedDelays[i]! - 1);
      expect(m.calls.length).toBe(before); // not yet
      await vi.advanceTimersByTimeAsync(1);
      expect(m.calls.length).toBe(before + 1); // retried exactly after the backoff delay
    }
    expect(m.calls.map((c) => c.update.seq)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(m.calls.map((c) => c.at)).toEqual([0, 1000, 3000, 7000, 11000, 15000]);

    m.calls[m.calls.length - 1]!.resolve(true);
    await vi.advanceTimersByTimeAsync(0);
    // After the ack the next update goes out at once, with the backoff reset.
    expect(m.calls[m.calls.length - 1]!.update.seq).toBe(2);
    m.calls[m.calls.length - 1]!.resolve(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(m.calls[m.calls.length - 1]!.update.seq).toBe(2);
    const n = m.calls.length;
    await vi.advanceTimersByTimeAsync(1);
    expect(m.calls.length).toBe(n + 1);
    m.calls[m.calls.length - 1]!.resolve(true);
    await vi.advanceTimersByTimeAsync(0);
    await q.onIdle();
    expect(q.pending()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("retries with real timers too, and a send that throws synchronously counts as a failure", async () => {
    let attempts = 0;
    const delivered: number[] = [];
    const q = new StatusQueue({
      send: (u) => {
        attempts++;
        if (attempts === 1) throw new Error("boom");
        if (attempts === 2) return Promise.reject(new Error("nope"));
        if (attempts === 3) return Promise.resolve(false);
        delivered.push(u.seq);
        return Promise.resolve(true);
      },
      initialRetryMs: 5,
      maxRetryMs: 20,
    });
    q.enqueue("t", "STARTING");
    q.enqueue("t", "RUNNING");
    await q.onIdle();
    expect(delivered).toEqual([1, 2]);
    expect(attempts).toBe(5);
  });

  it("may deliver duplicates when acks are lost; the deduper drops them", async () => {
    const deduper = new StatusDeduper();
    const accepted: StatusUpdate[] = [];
    let received = 0;
    let n = 0;
    const q = new StatusQueue({
      // The receiver gets every update, but every other ack is lost on the way back.
      send: async (u) => {
        received++;
        if (deduper.accept(u)) accepted.push(u);
        return n++ % 2 === 1;
      },
      initialRetryMs: 1,
      maxRetryMs: 2,
    });
    q.enqueue("t", "STARTING");
    q.enqueue("t", "RUNNING");
    q.enqueue("u", "STARTING");
    q.enqueue("t", "KILLED");
    await q.onIdle();
    expect(received).toBeGreaterThan(4); // duplicates were sent
    const byTask = (id: string) => accepted.filter((u) => u.taskId === id).map((u) => u.seq);
    expect(byTask("t")).toEqual([1, 2, 3]);
    expect(byTask("u")).toEqual([1]);
    expect(deduper.lastSeq("t")).toBe(3);
    expect(deduper.accept({ taskId: "t", seq: 2 })).toBe(false);
    expect(deduper.accept({ taskId: "t", seq: 4 })).toBe(true);
  });

  it("lets tasks progress independently of a stuck one", async () => {
    const m = manualSend();
    const q = new StatusQueue({ send: m.send, initialRetryMs: 10_000 });
    q.enqueue("stuck", "STARTING");
    q.enqueue("stuck", "RUNNING");
    q.enqueue("ok", "STARTING");
    q.enqueue("ok", "RUNNING");
    q.enqueue("ok", "FINISHED");
    await flush();
    // Answer only the "ok" task's calls, as they come.
    for (let i = 0; i < 3; i++) {
      const call = m.calls.find((c) => c.update.taskId === "ok" && c.update.seq === i + 1);
      expect(call).toBeDefined();
      call!.resolve(true);
      await flush();
    }
    expect(q.pending().map((u) => `${u.taskId}#${u.seq}`)).toEqual(["stuck#1", "stuck#2"]);
    expect(m.calls.filter((c) => c.update.taskId === "stuck").map((c) => c.update.seq)).toEqual([1]);
    m.calls.find((c) => c.update.taskId === "stuck")!.resolve(true);
    await flush();
    m.calls.find((c) => c.update.taskId === "stuck" && c.update.seq === 2)!.resolve(true);
    await q.onIdle();
  });

  it("sends nothing while paused and resends heads at once on resume", async () => {
    vi.useFakeTimers({ now: 0 });
    const m = manualSend();
    const q = new StatusQueue({ send: m.send, initialRetryMs: 1000, maxRetryMs: 60_000 });
    q.enqueue("a", "STARTING");
    await vi.advanceTimersByTimeAsync(0);
    // Build up a long backoff on "a".
    for (let i = 0; i < 4; i++) {
      m.calls[m.calls.length - 1]!.resolve(false);
      await vi.advanceTimersByTimeAsync(60_000);
    }
    expect(m.calls).toHaveLength(5);
    m.calls[4]!.resolve(false); // next retry of "a" would be 16 s away

    q.pause();
    q.enqueue("b", "STARTING");
    q.enqueue("b", "RUNNING");
    await vi.advanceTimersByTimeAsync(120_000);
    expect(m.calls).toHaveLength(5); // no retry and no new send while paused
    expect(q.pending().map((u) => `${u.taskId}#${u.seq}`)).toEqual(["a#1", "b#1", "b#2"]);

    q.resume();
    await vi.advanceTimersByTimeAsync(0);
    expect(
      m.calls
        .slice(5)
        .map((c) => `${c.update.taskId}#${c.update.seq}`)
        .sort(),
    ).toEqual(["a#1", "b#1"]);
    // A send in flight when pausing completes; its failure is retried only after resume.
    q.pause();
    m.calls[5]!.resolve(false);
    m.calls[6]!.resolve(true);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(m.calls).toHaveLength(7);
    expect(q.pending().map((u) => `${u.taskId}#${u.seq}`)).toEqual(["a#1", "b#2"]);
    q.resume();
    await vi.advanceTimersByTimeAsync(0);
    expect(
      m.calls
        .slice(7)
        .map((c) => `${c.update.taskId}#${c.update.seq}`)
        .sort(),
    ).toEqual(["a#1", "b#2"]);
    m.calls[7]!.resolve(true);
    m.calls[8]!.resolve(true);
    await vi.advanceTimersByTimeAsync(0);
    await q.onIdle();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stop() halts sending and retries; pending() still lists the unacked updates", async () => {
    vi.useFakeTimers({ now: 0 });
    const m = manualSend();
    const q = new StatusQueue({ send: m.send, initialRetryMs: 100 });
    q.enqueue("t", "STARTING");
    q.enqueue("t", "RUNNING");
    await vi.advanceTimersByTimeAsync(0);
    m.calls[0]!.resolve(false);
    await vi.advanceTimersByTimeAsync(0);
    q.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(m.calls).toHaveLength(1);
    expect(q.pending().map((u) => u.seq)).toEqual([1, 2]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("restore() requeues checkpointed updates and continues their seqs", async () => {
    const delivered: string[] = [];
    const q = new StatusQueue({
      send: async (u) => {
        delivered.push(`${u.taskId}#${u.seq}:${u.state}`);
        return true;
      },
    });
    q.restore(
      [
        { taskId: "t", seq: 5, state: "FINISHED", ts: 2 },
        { taskId: "t", seq: 4, state: "RUNNING", ts: 1 },
      ],
      { t: 5, other: 7 },
    );
    expect(q.enqueue("t", "LOST").seq).toBe(6);
    expect(q.enqueue("other", "RUNNING").seq).toBe(8);
    await q.onIdle();
    expect(delivered.filter((d) => d.startsWith("t#"))).toEqual(["t#4:RUNNING", "t#5:FINISHED", "t#6:LOST"]);
  });
});

describe("StatusQueue: snapshot for a checkpoint", () => {
  it("snapshot() lists what is unacknowledged and the seqs, onChange says when they change, restore() takes them back", async () => {
    const m = manualSend();
    let changes = 0;
    const q = new StatusQueue({ send: m.send, onChange: () => changes++, now: () => 7 });
    q.enqueue("a", "STARTING");
    q.enqueue("a", "RUNNING");
    q.enqueue("b", "STARTING");
    expect(changes).toBe(3);
    await flush();
    m.calls.find((c) => c.update.taskId === "b")!.resolve(true);
    await flush();
    expect(changes).toBe(4); // b#1 acknowledged
    const snap = q.snapshot();
    expect(snap).toEqual({
      pending: [
        { taskId: "a", seq: 1, state: "STARTING", ts: 7 },
        { taskId: "a", seq: 2, state: "RUNNING", ts: 7 },
      ],
      lastSeqs: { a: 2, b: 1 },
    });
    // Restricted to some tasks, pending ones always included.
    expect(q.snapshot([]).lastSeqs).toEqual({ a: 2 });
    // forget() drops an idle task's counter only.
    expect(q.forget("a")).toBe(false);
    expect(q.forget("b")).toBe(true);
    expect(q.lastSeqOf("b")).toBe(0);
    q.stop();

    const delivered: string[] = [];
    const q2 = new StatusQueue({
      send: async (u) => {
        delivered.push(`${u.taskId}#${u.seq}:${u.state}`);
        return true;
      },
    });
    q2.restore(snap.pending, snap.lastSeqs);
    q2.enqueue("a", "FINISHED");
    q2.enqueue("b", "LOST");
    await q2.onIdle();
    expect(delivered.filter((d) => d.startsWith("a#"))).toEqual(["a#1:STARTING", "a#2:RUNNING", "a#3:FINISHED"]);
    expect(delivered.filter((d) => d.startsWith("b#"))).toEqual(["b#2:LOST"]);
  });
});

describe("StatusDeduper", () => {
  it("accepts each (taskId, seq) once, per task", () => {
    const d = new StatusDeduper();
    expect(d.accept({ taskId: "a", seq: 1 })).toBe(true);
    expect(d.accept({ taskId: "a", seq: 1 })).toBe(false);
    expect(d.accept({ taskId: "b", seq: 1 })).toBe(true);
    expect(d.accept({ taskId: "a", seq: 2 })).toBe(true);
    expect(d.accept({ taskId: "a", seq: 1 })).toBe(false);
    expect(d.lastSeq("a")).toBe(2);
    d.forget("a");
    expect(d.lastSeq("a")).toBe(0);
  });
});
