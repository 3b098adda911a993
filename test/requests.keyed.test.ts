// Keyed writes, exactly once: the same idempotency key returns the first outcome and changes
// nothing, whether the first was done or refused, sent twice at once or again after the leader
// changed; the outcome is a fold of the log (RequestDecided), kept 24 h of log time, carried by
// snapshots and the state digest.

import { afterEach, describe, expect, it } from "vitest";
import { Scheduler } from "../src/actors/scheduler.js";
import { makeEnvelope, type AnyEnvelope, type EventPayloads, type EventType } from "../src/domain/events.js";
import { REQUEST_KEY_RETENTION_MS } from "../src/domain/limits.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { decodeSnapshot, encodeSnapshot } from "../src/replay/snapshot.js";
import { ClusterState } from "../src/replay/state.js";
import { apiRequest, type V1Reply } from "./support/api.js";
import { startCluster, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

const api = <T>(op: string, data: unknown, role?: string) => apiRequest<T>(c!.bus, op, data, role);
const jobCreates = () => c!.scheduler.state.jobs.size;

describe("a keyed write runs once", () => {
  it("the same key twice, one after the other: one job, the same reply, the request's events carry the key", async () => {
    c = await startCluster({ agents: 0 });
    const body = { spec: testSpec("once"), user: "t", key: "k-1" };
    const first = await api<{ job: string; taskIds: string[]; seq: number }>("job.create", body);
    const again = await api<{ job: string; taskIds: string[]; seq: number }>("job.create", body);
    expect(first.ok && again.ok).toBe(true);
    expect(again).toEqual(first);
    expect(jobCreates()).toBe(1);
    const rec = await c.log.get(first.ok ? first.value.seq : 0);
    const decided = rec!.events.find((e) => e.type === "RequestDecided");
    expect(decided?.data).toMatchObject({ key: "www-data/k-1", op: "job.create", outcome: "done" });
    expect(new Set(rec!.events.map((e) => e.corr))).toEqual(new Set(["req:www-data/k-1"]));
    const got = await api("request.get", { key: "k-1" }, "www-data");
    expect(got).toEqual({
      ok: true,
      value: { key: "k-1", state: "done", op: "job.create", seq: first.ok ? first.value.seq : 0, value: first.ok ? first.value : null },
    });
  });

  it("the same key many times at once: exactly one acts, every copy gets its outcome", async () => {
    c = await startCluster({ agents: 0 });
    const body = { spec: testSpec("burst", { instances: 3 }), user: "t", key: "burst" };
    const replies = await Promise.all(Array.from({ length: 20 }, () => api<{ taskIds: string[] }>("job.create", body)));
    expect(replies.every((r) => r.ok)).toBe(true);
    expect(new Set(replies.map((r) => JSON.stringify(r))).size).toBe(1);
    expect(c.scheduler.state.tasks.size).toBe(3);
  });

  it("a refusal is the first outcome too: the key stays refused, even once the request would pass", async () => {
    c = await startCluster({ agents: 0 });
    const prod = { spec: testSpec("big", { environment: "prod", tier: "preferred" }), user: "t", key: "q-1" };
    const refused = await api("job.create", prod);
    expect(refused.ok ? "" : refused.error.code).toBe("QUOTA_EXCEEDED");
    await api("quota.set", { role: "www-data", cpus: 100, ramMb: 100_000, diskMb: 100_000 });
    const again = await api("job.create", prod);
    expect(again.ok ? "" : again.error.code).toBe("QUOTA_EXCEEDED");
    expect(again.ok ? "" : again.error.message).toMatch(/the first outcome of request www-data\/q-1/);
    expect(jobCreates()).toBe(0);
    const got = await api<{ state: string; error: { code: string } }>("request.get", { key: "q-1" }, "www-data");
    expect(got.ok && got.value).toMatchObject({ state: "rejected", error: { code: "QUOTA_EXCEEDED" } });
    // A fresh key is a new request.
    expect((await api("job.create", { ...prod, key: "q-2" })).ok).toBe(true);
  });

  it("keys are per role; an unknown key is NOT_FOUND; a malformed key is refused naming the field", async () => {
    c = await startCluster({ agents: 0 });
    expect((await api("job.create", { spec: testSpec("a"), key: "same" })).ok).toBe(true);
    const other = await api("job.create", { spec: testSpec("a", { role: "other" }), key: "same" });
    expect(other.ok).toBe(true);
    expect(jobCreates()).toBe(2);
    const unknown = (await api("request.get", { key: "never" }, "www-data")) as V1Reply<unknown>;
    expect(unknown.ok ? "" : unknown.error.code).toBe("NOT_FOUND");
    const bad = await api("job.create", { spec: testSpec("b"), key: "has space" });
    expect(bad.ok ? "" : `${bad.error.code} ${bad.error.field}`).toBe("INVALID_REQUEST key");
    expect(jobCreates()).toBe(2);
  });

  it("after a leader change, the new leader answers a key with the first outcome", async () => {
    c = await startCluster({ agents: 0 });
    const body = { spec: testSpec("survivor"), key: "failover" };
    const first = await api<{ seq: number }>("job.create", body);
    await c.scheduler.stop();
    // A new replica replays the log and takes over (no lease: at once).
    c.scheduler = new Scheduler({ log: c.log, bus: c.bus, schedulerId: "sched-2", retryMs: 100 });
    await c.scheduler.start();
    const again = await api<{ seq: number }>("job.create", body);
    expect(again).toEqual(first);
    expect(jobCreates()).toBe(1);
  });
});

describe("RequestDecided in the fold", () => {
  const env = <T extends EventType>(type: T, data: EventPayloads[T], ts: number) =>
    makeEnvelope(type, data, { epoch: 1, ts, corr: "c", reason: "test" }) as AnyEnvelope;

  it("keeps outcomes 24 h of log time, refuses a key decided twice as an anomaly, and a snapshot carries them", () => {
    const s = new ClusterState();
    const t0 = 1_000_000;
    foldRecord(s, 1, [env("RequestDecided", { key: "r/a", op: "job.kill", outcome: "done", value: { job: "r/e/n", instances: [0] } }, t0)]);
    foldRecord(s, 2, [
      env("RequestDecided", { key: "r/b", op: "job.kill", outcome: "rejected", error: { code: "NOT_FOUND", message: "no" } }, t0 + 1),
    ]);
    foldRecord(s, 3, [
      env("RequestDecided", { key: "r/a", op: "job.kill", outcome: "rejected", error: { code: "X", message: "x" } }, t0 + 2),
    ]);
    expect(s.anomalies).toEqual([{ seq: 3, index: 0, type: "RequestDecided", why: "request r/a was decided already" }]);
    expect(s.requests.get("r/a")).toEqual({ op: "job.kill", outcome: "done", value: { job: "r/e/n", instances: [0] }, seq: 1, ts: t0 });

    const back = decodeSnapshot(encodeSnapshot(s));
    expect(stateHash(back)).toBe(stateHash(s));
    expect([...back.requests]).toEqual([...s.requests]);

    foldRecord(s, 4, [env("RequestDecided", { key: "r/c", op: "job.add", outcome: "done", value: {} }, t0 + REQUEST_KEY_RETENTION_MS)]);
    expect([...s.requests.keys()]).toEqual(["r/a", "r/b", "r/c"]);
    foldRecord(s, 5, [env("RequestDecided", { key: "r/d", op: "job.add", outcome: "done", value: {} }, t0 + REQUEST_KEY_RETENTION_MS + 1)]);
    expect([...s.requests.keys()]).toEqual(["r/b", "r/c", "r/d"]);
  });
});
