// Snapshots (src/replay/snapshot.ts): a state survives encode/decode whole, Maps, Sets, history
// and derived indexes included, so folding on from a decoded snapshot gives the same state as
// folding on from the original. Bad bytes throw SnapshotError. Also: the memory store and a cold
// start over the memory log, and the byte-level stateHash against the string implementation.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { decodeRecord, encodeRecord, makeEnvelope, unpack, type AnyEnvelope, type LogEntry } from "../src/eventlog/envelope.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { MemorySnapshotStore, snapshotName, type LoadOptions, type NewestReport } from "../src/storage/snapshotStore.js";
import { coldStart } from "../src/storage/coldStart.js";
import { foldRecord } from "../src/replay/fold.js";
import { canonical } from "../src/replay/canonical.js";
import { digestTask, STATE_DIGEST_VERSION, stateHash } from "../src/replay/hash.js";
import { sortStrings } from "../src/replay/steps.js";
import {
  AGENT_FIELDS,
  decodeSnapshot,
  encodeSnapshot,
  JOB_FIELDS,
  readSnapshot,
  readSnapshotHeader,
  checkedByWriter,
  encodeSnapshotWithHeader,
  SNAPSHOT_CODEC,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  SnapshotError,
  STATE_FIELDS,
  TASK_FIELDS,
  verifySnapshot,
} from "../src/replay/snapshot.js";
import { ClusterState, type AgentRecord, type JobRecord, type TaskRecord } from "../src/replay/state.js";
import { startVerifier, toShared } from "../src/storage/verifyWorker.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { asTaskId, asAgentId, type TaskId } from "../src/domain/types.js";

function foldAll(records: readonly LogEntry[][], state = new ClusterState(), firstSeq = 1): ClusterState {
  for (const [i, r] of records.entries()) foldRecord(state, firstSeq + i, r);
  return state;
}

function golden(name: string): { records: LogEntry[][]; expected: { stateHash: string } } {
  const dir = new URL("./golden/", import.meta.url);
  const raw = unpack<Uint8Array[]>(readFileSync(new URL(`${name}.log`, dir)));
  return { records: raw.map((r) => decodeRecord(r)), expected: JSON.parse(readFileSync(new URL(`${name}.json`, dir), "utf8")) };
}

/**
 * Everything a state holds, in plain arrays that keep every container's order (Map and Set
 * iteration order, the pending order), for toStrictEqual: undefined is not null, and every field
 * counts, hashed or not (taskId, service, maxTaskFailures, the derived counters).
 */
function view(s: ClusterState) {
  return {
    seq: s.seq,
    eventCount: s.eventCount,
    leader: s.leader,
    jobs: [...s.jobs].map(([k, j]) => [k, { ...j, instances: [...j.instances], killedInstances: [...j.killedInstances] }]),
    tasks: [...s.tasks].map(([k, t]) => [k, { ...t }]),
    agents: [...s.agents].map(([k, a]) => [k, { ...a, usedPorts: [...a.usedPorts], tasks: [...a.tasks] }]),
    quotas: [...s.quotas],
    reservations: [...s.reservations],
    pending: [...s.pending],
    anomalies: s.anomalies,
    anomalyCount: s.anomalyCount,
    agentsVersion: s.agentsVersion,
    capacityVersion: s.capacityVersion,
  };
}

function roundTrip(s: ClusterState): ClusterState {
  return decodeSnapshot(encodeSnapshot(s));
}

/** The digest as written before stateHash learned to write bytes: one string per entry. */
function referenceStateHash(state: ClusterState): string {
  const h = createHash("sha256");
  const anomalies = state.anomalies.map((a) => [a.seq, a.index, a.type]);
  h.update(canonical({ digest: STATE_DIGEST_VERSION, seq: state.seq, eventCount: state.eventCount, leader: state.leader, anomalies }));
  if (state.quotas.size) h.update(`quotas=${canonical(state.quotas)}\n`);
  if (state.reservations.size) h.update(`reservations=${canonical(state.reservations)}\n`);
  if (state.requests.size) h.update(`requests=${canonical(state.requests)}\n`);
  if (state.updates.size) h.update(`updates=${canonical(state.updates)}\n`);
  if (state.cronJobs.size) h.update(`cronJobs=${canonical(state.cronJobs)}\n`);
  if (state.hosts.size) h.update(`hosts=${canonical(state.hosts)}\n`);
  if (state.windows.size) h.update(`windows=${canonical(state.windows)}\n`);
  if (state.anomalyCount > state.anomalies.length) h.update(`anomalyCount=${canonical(state.anomalyCount)}\n`);
  const section = <T>(name: string, m: Map<string, T>, project: (v: T) => unknown) => {
    for (const key of [...m.keys()].sort()) h.update(`${name}:${key}=${canonical(project(m.get(key)!))}\n`);
  };
  section("job", state.jobs, (j: JobRecord) => ({
    config: j.config,
    configVersion: j.configVersion,
    configs: j.configs,
    createdSeq: j.createdSeq,
    createdTs: j.createdTs,
    instances: j.instances,
    killedInstances: j.killedInstances,
  }));
  section("task", state.tasks, digestTask);
  section("agent", state.agents, (a: AgentRecord) => ({
    host: a.host,
    attributes: a.attributes,
    resources: a.resources,
    bootId: a.bootId,
    state: a.state,
    registeredSeq: a.registeredSeq,
    registeredTs: a.registeredTs,
    used: a.used,
    usedPorts: a.usedPorts,
    tasks: a.tasks,
  }));
  return h.digest("hex");
}

/** A state with every odd value the codecs must carry: unicode, escapes, non-finite and huge
 *  numbers, -0, undefined, several ports, a non-numeric history; with `loneSurrogates`, strings
 *  that are not well-formed UTF-16 too (only stateHash can take those, see below). */
function oddState(loneSurrogates = false): ClusterState {
  const log = [...syntheticLog({ seed: 5, events: 600, agents: 4 })];
  const s = foldAll(log);
  // Not PENDING ones: the pending index must stay exactly the PENDING tasks.
  const tasks = [...s.tasks.values()].filter((x) => x.state !== "PENDING");
  const t = (i: number) => tasks[i] as unknown as Record<string, unknown>;
  t(0).lastReason = 'naïve "quoted" \\ back\nslash\ttab \u0001 — 東京 🚀';
  t(1).lastReason = loneSurrogates ? "lone \ud800 high and \udc00 low" : "pair \ud83d\ude00 ok";
  t(2).exitCode = undefined;
  t(3).ports = { http: 31000, admin: 31001, debug: 31002 };
  t(4).ports = { weird: Number.NaN };
  t(5).history = [...(t(5).history as number[]), 7, -0, Number.POSITIVE_INFINITY, 2 ** 53 + 2];
  t(6).history = [1, 2, 3];
  t(7).agentSeq = -0;
  t(8).instance = 1e21;
  t(9).throttleMs = 1.5;
  t(9).throttledUntil = Number.NaN;
  t(10).failureCount = -(2 ** 53 - 1);
  t(11).configVersion = 2 ** 53 - 1;
  t(12).host = "höst-ü";
  t(13).successorId = "a task the state does not hold";
  t(14).ancestorId = undefined;
  t(15).state = "NOT_A_STATE";
  t(16).everKilling = "yes";
  t(17).job = 42;
  s.anomalies.push({ seq: 3, index: 0, type: "Weird\u2028Type", why: "x" });
  s.anomalyCount = 7; // more than are kept
  s.quotas.set("röle", { cpus: 0.1 + 0.2, ramMb: 10, diskMb: 1 });
  const agent = [...s.agents.values()][0]!;
  agent.used.cpus = -0;
  agent.attributes = { ...agent.attributes, "😀": "v" };
  const job = [...s.jobs.values()][0]!;
  job.killedInstances.add(99);
  job.instances.set(1000, asTaskId("gone-task"));
  s.agentsVersion = 17;
  s.capacityVersion = 23;
  return s;
}

describe("snapshot round trip", () => {
  for (const events of [0, 1, 2_000, 20_000, 60_000]) {
    it(`a synthetic state of ${events} events decodes to the same state`, () => {
      const s = foldAll([...syntheticLog({ seed: 11 + events, events, agents: 25 })]);
      const d = roundTrip(s);
      expect(stateHash(d)).toBe(stateHash(s));
      expect(view(d)).toStrictEqual(view(s));
    });
  }

  it("folding on from a decoded snapshot gives the state folding on from the original gives", () => {
    const log = [...syntheticLog({ seed: 77, events: 40_000, agents: 30 })];
    const cut = Math.floor(log.length * 0.6);
    const original = foldAll(log.slice(0, cut));
    const decoded = roundTrip(original);
    expect(decoded.pending.size).toBeGreaterThan(0); // the cut leaves tasks waiting
    foldAll(log.slice(cut), original, cut + 1);
    foldAll(log.slice(cut), decoded, cut + 1);
    expect(stateHash(decoded)).toBe(stateHash(original));
    expect(view(decoded)).toStrictEqual(view(original));
    expect(decoded.anomalies).toEqual([]);
    expect(stateHash(decoded)).toBe(stateHash(foldAll(log)));
  });

  it("counts a decoded state's tasks by state from its columns, building no row, and the fold keeps the counts", () => {
    const log = [...syntheticLog({ seed: 78, events: 20_000, agents: 30 })];
    const cut = Math.floor(log.length / 2);
    const decoded = roundTrip(foldAll(log.slice(0, cut)));
    const cold = decoded.tasks.coldRows;
    expect(cold).toBeGreaterThan(1000);
    const recount = (st: ClusterState) => {
      const c = new Map<string, number>();
      for (const t of st.tasks.values()) c.set(t.state, (c.get(t.state) ?? 0) + 1);
      return c;
    };
    const counts = decoded.taskStateCounts();
    expect(decoded.tasks.coldRows).toBe(cold); // read from the columns
    foldAll(log.slice(cut), decoded, cut + 1);
    const kept = [...decoded.taskStateCounts()].filter(([, n]) => n > 0);
    expect(new Map(kept)).toEqual(recount(decoded));
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(cold);
  });

  for (const name of ["v1-synthetic", "v1-rules", "v1-deploys"]) {
    it(`${name}: a snapshot at every cut, folded on, reaches the golden hash`, () => {
      const { records, expected } = golden(name);
      const step = Math.max(1, Math.floor(records.length / 15));
      for (let cut = 0; cut <= records.length; cut += step) {
        const prefix = foldAll(records.slice(0, cut));
        const decoded = roundTrip(prefix);
        expect(stateHash(decoded)).toBe(stateHash(prefix));
        expect(view(decoded)).toStrictEqual(view(prefix));
        foldAll(records.slice(cut), decoded, cut + 1);
        expect(stateHash(decoded)).toBe(expected.stateHash);
      }
    });
  }

  it("keeps the pending index in the order tasks became PENDING, not their creation order", () => {
    const s = foldAll([...syntheticLog({ seed: 3, events: 3_000, agents: 5 })]);
    const pending = [...s.pending];
    expect(pending.length).toBeGreaterThan(3);
    // Re-order: move the first pending task to the end (as a task that went PENDING again would).
    (s.pending as Set<TaskId>).delete(pending[0]!);
    (s.pending as Set<TaskId>).add(pending[0]!);
    const d = roundTrip(s);
    expect([...d.pending]).toEqual([...pending.slice(1), pending[0]]);
  });

  it("carries odd values exactly (unicode, escapes, NaN, -0, undefined, values no column fits)", () => {
    const s = oddState();
    const d = roundTrip(s);
    expect(stateHash(d)).toBe(stateHash(s));
    expect(view(d)).toStrictEqual(view(s));
    const t = [...d.tasks.values()].filter((x) => x.state !== "PENDING");
    expect(Object.is(t[7]!.agentSeq, -0)).toBe(true);
    expect(Object.is([...d.agents.values()][0]!.used.cpus, -0)).toBe(true);
    expect("exitCode" in t[2]! && t[2]!.exitCode === undefined).toBe(true);
  });

  it("a string with a lone surrogate does not survive MessagePack: decoding says so instead of loading a different state", () => {
    // msgpackr writes a lone surrogate as U+FFFD (as the log's codec does), so such a snapshot
    // fails its hash check and a cold start falls back to the log.
    expect(() => roundTrip(oddState(true))).toThrow(/hash mismatch/);
  });

  it("shares strings and objects as the fold does (job key, config.task)", () => {
    const s = foldAll([...syntheticLog({ seed: 8, events: 2_000, agents: 5 })]);
    const d = roundTrip(s);
    const job = [...d.jobs.values()][0]!;
    expect(job.configs[job.configVersion]).toBe(job.config.task);
    const tasks = [...d.tasks.values()];
    // Same task order, and each task's record has fold.ts's field order (one hidden class).
    expect(Object.keys(tasks[0]!)).toEqual([...TASK_FIELDS]);
  });

  it("continues to decode after the same snapshot is decoded twice (no shared mutable state)", () => {
    const s = foldAll([...syntheticLog({ seed: 4, events: 2_000, agents: 5 })]);
    const bytes = encodeSnapshot(s);
    const a = decodeSnapshot(bytes);
    const b = decodeSnapshot(bytes);
    expect(a.tasks.values().next().value).not.toBe(b.tasks.values().next().value);
    [...a.tasks.values()][0]!.history.push(1, 2, 3, 4);
    expect(stateHash(b)).toBe(stateHash(s));
  });
});

describe("snapshot header and errors", () => {
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number" });
  const state = foldAll([...syntheticLog({ seed: 21, events: 3_000, agents: 5 })]);
  const bytes = encodeSnapshot(state, { createdTs: 1234 });

  it("has a plain MessagePack header: format, version, seq, eventCount, stateHash, createdTs", () => {
    const [header] = packr.unpack(bytes) as [Record<string, unknown>, Uint8Array];
    expect(header).toMatchObject({
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      seq: state.seq,
      eventCount: state.eventCount,
      stateHash: stateHash(state),
      createdTs: 1234,
    });
    expect(readSnapshotHeader(bytes)).toEqual(header);
    expect(readSnapshot(bytes).header).toEqual(header);
  });

  const rewrite = (change: (header: Record<string, unknown>, body: Uint8Array) => [Record<string, unknown>, Uint8Array]) => {
    const [h, b] = packr.unpack(bytes) as [Record<string, unknown>, Uint8Array];
    return packr.pack(change({ ...h }, b));
  };

  it("refuses another format", () => {
    const bad = rewrite((h, b) => [{ ...h, format: "other" }, b]);
    expect(() => decodeSnapshot(bad)).toThrow(SnapshotError);
    expect(() => decodeSnapshot(bad)).toThrow(/format/);
  });

  it("refuses another version", () => {
    const bad = rewrite((h, b) => [{ ...h, version: SNAPSHOT_VERSION + 1 }, b]);
    expect(() => decodeSnapshot(bad)).toThrow(SnapshotError);
    expect(() => readSnapshotHeader(bad)).toThrow(/version/);
  });

  it("refuses a state that does not match its recorded hash", () => {
    const bad = rewrite((h, b) => [{ ...h, stateHash: "0".repeat(64) }, b]);
    expect(() => decodeSnapshot(bad)).toThrow(SnapshotError);
    expect(() => decodeSnapshot(bad)).toThrow(/hash mismatch/);
    // Another state's body under this header.
    const [, otherBody] = packr.unpack(encodeSnapshot(foldAll([...syntheticLog({ seed: 22, events: 3_000, agents: 5 })]))) as [
      unknown,
      Uint8Array,
    ];
    expect(() => decodeSnapshot(rewrite((h) => [h, otherBody]))).toThrow(SnapshotError);
  });

  it("refuses a body with a flipped byte", () => {
    const flipped = rewrite((h, b) => {
      const c = Uint8Array.prototype.slice.call(b);
      c[Math.floor(c.length / 2)]! ^= 0x5a;
      return [h, c];
    });
    expect(() => decodeSnapshot(flipped)).toThrow(SnapshotError);
  });

  it("refuses bytes that are no snapshot", () => {
    for (const junk of [
      new Uint8Array(0),
      new TextEncoder().encode("garbage, not a snapshot"),
      packr.pack({ format: SNAPSHOT_FORMAT }),
      packr.pack([1, 2]),
      bytes.subarray(0, bytes.length >> 1),
    ]) {
      expect(() => decodeSnapshot(junk)).toThrow(SnapshotError);
    }
  });

  it("knows every field of the state and its records, and refuses a record with an unknown one", () => {
    const s = foldAll([...syntheticLog({ seed: 2, events: 2_000, agents: 5 })]);
    expect(Object.keys(s).sort()).toEqual([...STATE_FIELDS].sort());
    expect(Object.keys(s.tasks.values().next().value!).sort()).toEqual([...TASK_FIELDS].sort());
    expect(Object.keys(s.jobs.values().next().value!).sort()).toEqual([...JOB_FIELDS].sort());
    // isolation is there only when an agent said it (registrations of earlier builds did not).
    expect(Object.keys(s.agents.values().next().value!).sort()).toEqual(AGENT_FIELDS.filter((f) => f !== "isolation").sort());
    const said = s.agents.values().next().value!;
    said.isolation = { mode: "cgroups-v1", detail: "memory and cpu" };
    const back = decodeSnapshot(encodeSnapshot(s)).agents.get(said.agentId)!;
    expect(back.isolation).toEqual({ mode: "cgroups-v1", detail: "memory and cpu" });
    expect(Object.keys(back).sort()).toEqual([...AGENT_FIELDS].sort());
    (s.tasks.values().next().value as TaskRecord & { extra?: number }).extra = 1;
    expect(() => encodeSnapshot(s)).toThrow(/TaskRecord has fields the snapshot codec does not know \(extra\)/);
  });

  it("refuses to write a state whose pending index is not exactly its PENDING tasks", () => {
    const s = foldAll([...syntheticLog({ seed: 2, events: 2_000, agents: 5 })]);
    const notPending = [...s.tasks.values()].find((t) => t.state !== "PENDING")!;
    (s.pending as Set<TaskId>).add(notPending.taskId);
    expect(() => encodeSnapshot(s)).toThrow(SnapshotError);
    (s.pending as Set<TaskId>).delete(notPending.taskId);
    (s.pending as Set<TaskId>).delete([...s.pending][0]!);
    expect(() => encodeSnapshot(s)).toThrow(/pending index holds/);
  });
});

describe("stateHash writes the same bytes as the string implementation", () => {
  it("on golden states at every record, synthetic states and odd values", () => {
    for (const name of ["v1-synthetic", "v1-rules", "v1-deploys"]) {
      const { records } = golden(name);
      const s = new ClusterState();
      records.forEach((r, i) => {
        foldRecord(s, i + 1, r);
        if (i % 3 === 0 || i === records.length - 1) expect(stateHash(s)).toBe(referenceStateHash(s));
      });
    }
    const synthetic = foldAll([...syntheticLog({ seed: 99, events: 30_000, agents: 40 })]);
    expect(stateHash(synthetic)).toBe(referenceStateHash(synthetic));
    const odd = oddState(true);
    expect(stateHash(odd)).toBe(referenceStateHash(odd));
  });

  it("with and without the task order given, and ignores a wrong one", () => {
    const s = foldAll([...syntheticLog({ seed: 12, events: 5_000, agents: 10 })]);
    const keys = [...s.tasks.keys()];
    const order = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
    const h = referenceStateHash(s);
    expect(stateHash(s, { taskOrder: order })).toBe(h);
    expect(stateHash(s, { taskOrder: [...order].reverse() })).toBe(h);
    expect(stateHash(s, { taskOrder: [order[1]!, order[0]!, ...order.slice(2)] })).toBe(h);
    expect(stateHash(s, { taskOrder: [...order.slice(0, -1), order[0]!] })).toBe(h); // not a permutation
    expect(stateHash(s, { taskOrder: [...order.slice(0, -1), keys.length] })).toBe(h);
    expect(stateHash(s, { taskOrder: order.slice(1) })).toBe(h);
  });

  it("writes canonical() of any value the generic sections hold (holes, Sets, Maps, nesting)", () => {
    const s = foldAll([...syntheticLog({ seed: 14, events: 500, agents: 3 })]);
    // biome-ignore lint/suspicious/noSparseArray: a hole is one of the odd values the codecs must carry
    const sparse = [1, , undefined, "x"];
    s.leader = {
      schedulerId: "s\u00e9",
      epoch: 1e21,
      host: "h",
      pid: -0,
      seq: Number.NaN,
      ts: 1.5,
      extra: {
        sparse,
        set: new Set([3, "3", 10, 2]),
        map: new Map<unknown, unknown>([
          [10, "a"],
          [2, new Set([1])],
          ["2", null],
          [true, [undefined]],
        ]),
        date: new Date(0),
        typed: new Uint8Array([9, 8]),
      },
    } as never;
    s.quotas.set("b", { cpus: 1, ramMb: 2, diskMb: 3 });
    s.quotas.set("a", { cpus: 0.30000000000000004, ramMb: 2, diskMb: 3 });
    s.reservations.set(asTaskId("t"), {
      taskId: asTaskId("t"),
      agentId: asAgentId("agent-0"),
      victims: [asTaskId("v2"), asTaskId("v1")],
      expiresTs: 5,
    });
    expect(stateHash(s)).toBe(referenceStateHash(s));
    (s.leader as unknown as { extra: unknown }).extra = () => 1;
    expect(() => stateHash(s)).toThrow(/cannot hash a function/);
  });

  it("sorts ids exactly as Array#sort does", () => {
    for (const list of [
      [],
      ["b"],
      ["b", "a", "", "ab", "a-b", "A", "~", " "],
      ["x\ny", "x", "y"],
      ["é", "e", "f", "😀", "\ud800"],
      ["t-10", "t-9", "t-100", "t-1"],
    ]) {
      expect(sortStrings(list)).toEqual([...list].sort());
    }
  });

  it("changes when any task field changes", () => {
    const s = foldAll([...syntheticLog({ seed: 13, events: 2_000, agents: 5 })]);
    const before = stateHash(s);
    const t = [...s.tasks.values()][5]!;
    t.history.push(1, 2, 3, 4);
    expect(stateHash(s)).not.toBe(before);
    expect(stateHash(s)).toBe(referenceStateHash(s));
  });
});

describe("memory snapshot store and cold start", () => {
  async function logOf(records: AnyEnvelope[][]): Promise<MemoryLog> {
    const log = new MemoryLog();
    for (let i = 0; i < records.length; i++) await log.append(encodeRecord(records[i]!), i, `m${i}`);
    return log;
  }
  const records = [...syntheticLog({ seed: 31, events: 10_000, agents: 10 })];
  const full = foldAll(records);

  it("puts, lists newest first, loads the newest, prunes", async () => {
    const store = new MemorySnapshotStore();
    for (const cut of [20, 60, 40]) await store.put(foldAll(records.slice(0, cut)));
    const list = await store.list();
    expect(list.map((s) => s.seq)).toEqual([60, 40, 20]);
    expect(list[0]!.name).toBe(snapshotName(60));
    expect(list[0]!.name).toBe("snap/000000000060");
    expect(list[0]!.description).toMatch(/^seq 60, \d+ events/);
    const loaded = await store.loadNewest();
    expect(loaded!.seq).toBe(60);
    expect(stateHash(loaded!.state)).toBe(stateHash(foldAll(records.slice(0, 60))));
    expect((await store.loadNewest(59))!.seq).toBe(40);
    expect(await store.prune(2)).toEqual([snapshotName(20)]);
    expect((await store.list()).map((s) => s.seq)).toEqual([60, 40]);
  });

  it("skips a newest snapshot that does not decode, and one beyond the log, and says why", async () => {
    const store = new MemorySnapshotStore();
    await store.put(foldAll(records.slice(0, 50)));
    await store.putBytes(snapshotName(80), new TextEncoder().encode("garbage"), { description: "garbage" });
    await store.put(foldAll(records.slice(0, 90)));
    const loaded = await store.loadNewest(85);
    expect(loaded!.seq).toBe(50);
    expect(loaded!.skipped.map((s) => s.name)).toEqual([snapshotName(90), snapshotName(80)]);
    expect(loaded!.skipped[0]!.error).toMatch(/beyond the log's last sequence 85/);
    expect(loaded!.skipped[1]!.error).toMatch(/not a snapshot/);
  });

  it("cold start: snapshot plus tail equals the fold from genesis; no snapshot folds it all", async () => {
    const log = await logOf(records);
    const store = new MemorySnapshotStore();
    const none = await coldStart(log, store);
    expect(none.fromSnapshot).toBeNull();
    expect(none.tailRecords).toBe(records.length);
    expect(stateHash(none.state)).toBe(stateHash(full));

    await store.put(foldAll(records.slice(0, 70)));
    await store.putBytes(snapshotName(90), new TextEncoder().encode("garbage"), { description: "garbage" });
    const r = await coldStart(log, store);
    expect(r.fromSnapshot).toBe(snapshotName(70));
    expect(r.snapshotSeq).toBe(70);
    expect(r.tailRecords).toBe(records.length - 70);
    expect(r.skipped.map((s) => s.name)).toEqual([snapshotName(90)]);
    expect(stateHash(r.state)).toBe(stateHash(full));
    expect(view(r.state)).toStrictEqual(view(full));

    const noStore = await coldStart(log);
    expect(noStore.fromSnapshot).toBeNull();
    expect(stateHash(noStore.state)).toBe(stateHash(full));
  });

  it("cold start with only unusable snapshots folds from genesis and reports them", async () => {
    const log = await logOf(records.slice(0, 30));
    const store = new MemorySnapshotStore();
    await store.putBytes(snapshotName(10), new Uint8Array([1, 2, 3]), { description: "junk" });
    await store.put(foldAll(records.slice(0, 50))); // beyond this log
    const r = await coldStart(log, store);
    expect(r.fromSnapshot).toBeNull();
    expect(r.skipped.map((s) => s.name)).toEqual([snapshotName(50), snapshotName(10)]);
    expect(stateHash(r.state)).toBe(stateHash(foldAll(records.slice(0, 30))));
  });

  it("a snapshot at the log's end leaves no tail", async () => {
    const log = await logOf(records);
    const store = new MemorySnapshotStore();
    await store.put(full);
    const r = await coldStart(log, store);
    expect(r.tailRecords).toBe(0);
    expect(stateHash(r.state)).toBe(stateHash(full));
  });

  it("the fold continues identically with effects after a cold start (the leader's path)", () => {
    const cut = 60;
    const original = foldAll(records.slice(0, cut));
    const decoded = roundTrip(original);
    const extra = [
      makeEnvelope(
        "LeaderElected",
        { schedulerId: "s2", epoch: 2, host: "h", pid: 2 },
        { epoch: 2, ts: 9e12, corr: "c", reason: "r" },
      ) as AnyEnvelope,
    ];
    const a: unknown[] = [];
    const b: unknown[] = [];
    [...records.slice(cut), extra].forEach((r, i) => {
      foldRecord(original, cut + 1 + i, r, a as never);
      foldRecord(decoded, cut + 1 + i, r, b as never);
    });
    expect(b).toEqual(a);
    expect(stateHash(decoded)).toBe(stateHash(original));
  });
});

describe("the state hash checked in a worker thread (deferred), and the log's stream", () => {
  const records = [...syntheticLog({ seed: 41, events: 10_000, agents: 10 })];
  const full = foldAll(records);
  const prefix = (n: number) => foldAll(records.slice(0, n));
  async function logOf(recs: AnyEnvelope[][]): Promise<MemoryLog> {
    const log = new MemoryLog();
    for (let i = 0; i < recs.length; i++) await log.append(encodeRecord(recs[i]!), i, `m${i}`);
    return log;
  }
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", mapsAsObjects: true, useToJSON: false });

  /** Snapshot bytes that decode (the body is intact) but whose header records another state hash. */
  function wrongHash(state: ClusterState): Uint8Array {
    const [h, b] = packr.unpack(encodeSnapshot(state)) as [Record<string, unknown>, Uint8Array];
    return packr.pack([{ ...h, stateHash: createHash("sha256").update("another state").digest("hex") }, b]);
  }

  /** Snapshot bytes with one byte of a column changed (a history timestamp), re-wrapped: they decode
   *  to another state than the one their header's hash records. */
  function wrongColumn(state: ClusterState): Uint8Array {
    const [h, b] = packr.unpack(encodeSnapshot(state)) as [Record<string, unknown>, Uint8Array];
    const body = packr.unpack(b) as { t: Record<string, [number, number, Uint8Array]> };
    const ts = Uint8Array.prototype.slice.call(body.t.hTs![2]);
    ts[0]! ^= 1;
    body.t.hTs![2] = ts;
    return packr.pack([h, packr.pack(body)]);
  }

  /** Snapshot bytes as a build of another codec would write them (its header says so), with the
   *  body digest intact; with `stateHash`, recording that hash instead of the state's. */
  function otherCodec(state: ClusterState, hash?: string): Uint8Array {
    const [h, b] = packr.unpack(encodeSnapshot(state)) as [Record<string, unknown>, Uint8Array];
    return packr.pack([{ ...h, codec: "another-codec", ...(hash ? { stateHash: hash } : {}) }, b]);
  }

  /** A memory store that records what each loadNewestReport was asked, and what it returned. */
  class RecordingStore extends MemorySnapshotStore {
    calls: Array<{ below: number | undefined; verify: LoadOptions["verify"]; loaded: string | null }> = [];
    override async loadNewestReport(maxSeq?: number, opts: LoadOptions = {}): Promise<NewestReport> {
      const r = await super.loadNewestReport(maxSeq, opts);
      this.calls.push({ below: opts.below, verify: opts.verify, loaded: r.loaded?.name ?? null });
      return r;
    }
  }

  it("readSnapshot(bytes, { verify: false }) decodes without the check; verifySnapshot checks", () => {
    const s = prefix(50);
    expect(verifySnapshot(encodeSnapshot(s)).stateHash).toBe(stateHash(s));
    for (const bad of [wrongHash(s), wrongColumn(s)]) {
      expect(() => verifySnapshot(bad)).toThrow(/hash mismatch/);
      expect(() => readSnapshot(bad)).toThrow(/hash mismatch/);
      const unchecked = readSnapshot(bad, { verify: false });
      expect(unchecked.state.seq).toBe(50);
      expect(stateHash(unchecked.state, { taskOrder: unchecked.taskOrder })).toBe(stateHash(unchecked.state));
    }
    expect(stateHash(readSnapshot(wrongHash(s), { verify: false }).state)).toBe(stateHash(s));
    expect(stateHash(readSnapshot(wrongColumn(s), { verify: false }).state)).not.toBe(stateHash(s));
  });

  it("the verifier thread: a match resolves from the worker, a mismatch rejects with the SnapshotError, cancel rejects", async () => {
    const s = prefix(50);
    const bytes = encodeSnapshot(s);
    const shared = toShared(bytes);
    expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(toShared(shared)).toBe(shared); // already shared: no copy
    const good = await startVerifier().check(shared);
    expect(good).toMatchObject({ by: "worker" });
    expect(good.workerFailure).toBeUndefined();
    for (const bad of [wrongHash(s), wrongColumn(s)]) {
      const verdict = startVerifier().check(bad);
      await expect(verdict).rejects.toThrow(SnapshotError);
      await expect(verdict).rejects.toThrow(/hash mismatch/);
    }
    const v = startVerifier();
    const cancelled = v.check(bytes);
    v.cancel();
    await expect(cancelled).rejects.toThrow(/cancelled/);
  });

  it("cold start with the check in a worker equals the fold from genesis", async () => {
    const log = await logOf(records);
    const store = new RecordingStore();
    await store.put(prefix(70));
    const r = await coldStart(log, store, { verify: "worker" });
    expect(r).toMatchObject({
      fromSnapshot: snapshotName(70),
      snapshotSeq: 70,
      snapshotVerify: "worker",
      skipped: [],
      tailRecords: records.length - 70,
    });
    expect(store.calls).toEqual([{ below: Infinity, verify: "worker", loaded: snapshotName(70) }]);
    expect(stateHash(r.state)).toBe(stateHash(full));
    expect(view(r.state)).toStrictEqual(view(full));
    // "auto" (the default) takes the check of the build that stored it, of this codec; one of
    // another codec (or written before codecs were recorded) it checks itself, inline when small.
    expect((await coldStart(log, store)).snapshotVerify).toBe("writer");
    const older = new MemorySnapshotStore();
    await older.putBytes(snapshotName(70), otherCodec(prefix(70)), { description: "another codec" });
    const r2 = await coldStart(log, older);
    expect(r2.snapshotVerify).toBe("inline");
    expect(stateHash(r2.state)).toBe(stateHash(full));
  });

  it("the writer's check: bytes that do not decode to their header's hash are not stored", async () => {
    const store = new MemorySnapshotStore();
    const good = encodeSnapshotWithHeader(prefix(70));
    for (const bytes of [wrongHash(prefix(70)), wrongColumn(prefix(70))]) {
      await expect(store.putEncoded({ bytes, header: readSnapshotHeader(bytes) })).rejects.toThrow(/state hash mismatch/);
    }
    expect(await store.list()).toEqual([]);
    const put = await store.putEncoded(good);
    expect(put.checkMs).toBeGreaterThan(0);
    expect((await store.list()).map((x) => x.name)).toEqual([snapshotName(70)]);
  });

  it("a cold start takes the writer's check only for this codec and the body its header records", async () => {
    // Stored past the writer's check (putBytes), as a codec bug or damage would leave them.
    const log = await logOf(records);
    const store = new RecordingStore();
    await store.put(prefix(40));
    // The body altered under an intact header: refused on its digest at once, no state built.
    await store.putBytes(snapshotName(70), wrongColumn(prefix(70)), { description: "altered body" });
    const r = await coldStart(log, store);
    expect(r.skipped).toEqual([{ name: snapshotName(70), error: expect.stringMatching(/body digest mismatch/) }]);
    expect(r).toMatchObject({ fromSnapshot: snapshotName(40), snapshotVerify: "writer" });
    expect(stateHash(r.state)).toBe(stateHash(full));
    // Of another codec, with another state hash than the body's: checked here, and skipped.
    await store.putBytes(snapshotName(70), otherCodec(prefix(70), "0".repeat(64)), { description: "another codec, wrong hash" });
    const r2 = await coldStart(log, store);
    expect(r2.skipped).toEqual([{ name: snapshotName(70), error: expect.stringMatching(/state hash mismatch/) }]);
    expect(r2.fromSnapshot).toBe(snapshotName(40));
    expect(view(r2.state)).toStrictEqual(view(full));
  });

  it("a golden snapshot decodes to its golden log's state hash (a decoder change that breaks it must bump SNAPSHOT_CODEC)", () => {
    const { records: g, expected } = golden("v1-deploys");
    const bytes = new Uint8Array(readFileSync(new URL("./golden/v1-deploys.snapshot", import.meta.url)));
    const { header, state } = readSnapshot(bytes);
    expect(header.stateHash).toBe(expected.stateHash);
    expect(header.codec).toBe(SNAPSHOT_CODEC);
    expect(checkedByWriter(bytes)).toBe(true);
    expect(stateHash(state)).toBe(expected.stateHash);
    expect(view(readSnapshot(bytes, { verify: false }).state)).toStrictEqual(view(foldAll(g)));
  });

  it("a snapshot that decodes but not to its hash is skipped after the deferred check; the older one is folded on instead", async () => {
    for (const bad of [wrongHash, wrongColumn]) {
      const log = await logOf(records);
      const store = new RecordingStore();
      await store.put(prefix(40));
      await store.putBytes(snapshotName(70), bad(prefix(70)), { description: "decodes, to another hash" });
      const r = await coldStart(log, store, { verify: "worker" });
      // The first load handed back the bad snapshot's unchecked state (its tail was folded onto it);
      // the verdict then sent the cold start back to the older snapshot.
      expect(store.calls).toEqual([
        { below: Infinity, verify: "worker", loaded: snapshotName(70) },
        { below: 70, verify: "worker", loaded: snapshotName(40) },
      ]);
      expect(r.skipped).toEqual([{ name: snapshotName(70), error: expect.stringMatching(/state hash mismatch/) }]);
      expect(r).toMatchObject({
        fromSnapshot: snapshotName(40),
        snapshotSeq: 40,
        snapshotVerify: "worker",
        tailRecords: records.length - 40,
      });
      expect(stateHash(r.state)).toBe(stateHash(full));
      expect(view(r.state)).toStrictEqual(view(full));
    }
  });

  it("with no other snapshot, a failed deferred check falls back to genesis", async () => {
    const log = await logOf(records);
    const store = new RecordingStore();
    await store.putBytes(snapshotName(70), wrongColumn(prefix(70)), { description: "decodes, to another hash" });
    const r = await coldStart(log, store, { verify: "worker" });
    expect(store.calls.map((c) => c.loaded)).toEqual([snapshotName(70), null]);
    expect(r).toMatchObject({ fromSnapshot: null, snapshotSeq: 0, snapshotVerify: null, tailRecords: records.length });
    expect(r.skipped).toEqual([{ name: snapshotName(70), error: expect.stringMatching(/state hash mismatch/) }]);
    expect(view(r.state)).toStrictEqual(view(full));
  });

  it("records the log's stream in the header; a snapshot of another stream is skipped, one without the field loads", async () => {
    const s = prefix(30);
    expect(readSnapshotHeader(encodeSnapshot(s, { stream: "ROOST_A" })).stream).toBe("ROOST_A");
    expect(readSnapshotHeader(encodeSnapshot(s))).not.toHaveProperty("stream");
    const a = new MemorySnapshotStore("ROOST_A");
    await a.put(s);
    expect((await a.loadNewest())!.header.stream).toBe("ROOST_A");
    const other = await a.loadNewestReport(Infinity, { stream: "ROOST_B" });
    expect(other.loaded).toBeNull();
    expect(other.skipped).toEqual([{ name: snapshotName(30), error: expect.stringMatching(/stream ROOST_A, not of ROOST_B/) }]);
    const older = new MemorySnapshotStore(); // writes no stream, as snapshots from before the field
    await older.put(s);
    expect((await older.loadNewestReport(Infinity, { stream: "ROOST_B" })).loaded!.seq).toBe(30);
  });
});
