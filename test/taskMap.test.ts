// The lazy task table (src/replay/taskMap.ts, src/replay/taskColumns.ts): a decoded snapshot's
// tasks stay columns until used, and the table behaves exactly as the Map it replaced. Checked
// against a plain Map under random operations drawn from seeds, and the state digest of cold rows
// (written from the columns) against the digest of the same rows built as records.

import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import type { LogEntry } from "../src/eventlog/envelope.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { encodeSnapshot, readSnapshot, verifySnapshot } from "../src/replay/snapshot.js";
import { ClusterState, type TaskRecord } from "../src/replay/state.js";
import { TaskMap } from "../src/replay/taskMap.js";
import { IdIndex } from "../src/replay/idIndex.js";
import { idHash } from "../src/replay/packedIds.js";
import { PackedIds } from "../src/replay/packedIds.js";
import { SnapshotError } from "../src/replay/snapshot.js";
import { Rng } from "../src/sim/rng.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { asTaskId, type TaskId } from "../src/domain/types.js";
import { TASK_STATES, type TaskStateName } from "../src/statemachines/taskStates.js";

function foldAll(records: readonly LogEntry[][], state = new ClusterState(), firstSeq = 1): ClusterState {
  for (const [i, r] of records.entries()) foldRecord(state, firstSeq + i, r);
  return state;
}

const decode = (s: ClusterState) => readSnapshot(encodeSnapshot(s), { verify: false }).state;

describe("a decoded snapshot's tasks", () => {
  const original = foldAll([...syntheticLog({ seed: 31, events: 20_000, agents: 20 })]);

  it("are not built by decoding; a lookup builds its row, once", () => {
    const d = decode(original);
    expect(d.tasks).toBeInstanceOf(TaskMap);
    expect(d.tasks.size).toBe(original.tasks.size);
    expect(d.tasks.coldRows).toBe(original.tasks.size);
    const id = [...original.tasks.keys()][17]!;
    const t = d.tasks.get(id)!;
    expect(t).toStrictEqual(original.tasks.get(id));
    expect(d.tasks.get(id)).toBe(t);
    expect(d.tasks.coldRows).toBe(original.tasks.size - 1);
    expect(d.tasks.has(asTaskId("no-such-task"))).toBe(false);
    expect(d.tasks.get(asTaskId("no-such-task"))).toBeUndefined();
  });

  it("behave as a Map under random operations (seeds 1-20)", () => {
    const ids = [...original.tasks.keys()];
    for (let seed = 1; seed <= 20; seed++) {
      const rng = new Rng(seed);
      const d = decode(original);
      const model = new Map<TaskId, TaskRecord>([...original.tasks].map(([k, t]) => [k, structuredClone(t)]));
      const m = d.tasks;
      for (let step = 0; step < 300; step++) {
        const r = rng.int(100);
        const known = ids[rng.int(ids.length)]!;
        if (r < 35) expect(m.get(known)).toStrictEqual(model.get(known));
        else if (r < 45) expect(m.has(known)).toBe(model.has(known));
        else if (r < 60) {
          // The fold mutates in place: what get returns is what the table holds.
          const t = m.get(known);
          const u = model.get(known);
          if (t && u) {
            t.failureCount += 1;
            u.failureCount += 1;
          }
        } else if (r < 70) {
          const id = asTaskId(`new-${seed}-${step}`);
          const t = { ...structuredClone(original.tasks.get(known)!), taskId: id };
          m.set(id, t);
          model.set(id, structuredClone(t));
        } else if (r < 75) {
          const t = { ...structuredClone(original.tasks.get(known)!), lastReason: `replaced ${step}` };
          m.set(known, t);
          model.set(known, structuredClone(t));
        } else if (r < 80) m.warm(rng.int(500));
        else if (r < 82) {
          expect(m.delete(known)).toBe(model.delete(known));
        } else if (r < 90) {
          const pick = TASK_STATES[rng.int(TASK_STATES.length)];
          const want = [...model.values()].filter((t) => t.rescheduleWanted || t.state === pick).map((t) => t.taskId);
          expect([...m.matching((st, re) => re || st === pick)].map((t) => t.taskId)).toEqual(want);
        } else {
          const counts = new Map<TaskStateName, number>(TASK_STATES.map((s) => [s, 0]));
          for (const t of model.values()) counts.set(t.state, counts.get(t.state)! + 1);
          expect(m.stateCounts()).toEqual(counts);
        }
        expect(m.size).toBe(model.size);
      }
      // The same entries, in the same order, at the end.
      expect([...m.keys()]).toEqual([...model.keys()]);
      expect([...m.values()]).toStrictEqual([...model.values()]);
      expect(m.coldRows).toBe(0);
    }
  });

  it("visit rows set while iterating, as a Map does", () => {
    const d = decode(original);
    const n = d.tasks.size;
    let seen = 0;
    for (const [id, t] of d.tasks) {
      if (seen === 0) d.tasks.set(asTaskId(`${id}-late`), { ...t, taskId: asTaskId(`${id}-late`) });
      seen++;
    }
    expect(seen).toBe(n + 1);
  });

  it("digest the same from their columns as built into records, also after some are used", () => {
    const expected = stateHash(original);
    const cold = decode(original);
    expect(cold.tasks.untouchedCold()).not.toBeNull();
    expect(stateHash(cold)).toBe(expected); // from the columns
    expect(cold.tasks.coldRows).toBe(original.tasks.size); // ... building nothing
    const some = decode(original);
    for (const id of [...original.tasks.keys()].slice(0, 50)) some.tasks.get(id);
    expect(some.tasks.untouchedCold()).toBeNull();
    expect(stateHash(some)).toBe(expected);
    const warm = decode(original);
    warm.tasks.warm(Number.POSITIVE_INFINITY);
    expect(stateHash(warm)).toBe(expected); // from the records
    // A row changed after decoding changes the digest (the column path is not taken then).
    const changed = decode(original);
    changed.tasks.values().next().value!.failureCount += 1;
    expect(stateHash(changed)).not.toBe(expected);
  });

  it("fold on from a cold table to the state folding on from the original gives", () => {
    const log = [...syntheticLog({ seed: 41, events: 30_000, agents: 20 })];
    const cut = Math.floor(log.length * 0.7);
    const a = foldAll(log.slice(0, cut));
    const b = decode(a);
    foldAll(log.slice(cut), a, cut + 1);
    foldAll(log.slice(cut), b, cut + 1);
    expect(b.tasks.coldRows).toBeGreaterThan(0); // the tail touched only some rows
    expect(stateHash(b)).toBe(stateHash(a));
    expect([...b.tasks.keys()]).toEqual([...a.tasks.keys()]);
    expect([...b.pending]).toEqual([...a.pending]);
  });

  it("a snapshot whose task order is not by id fails its check (the digest reads cold rows in it), though it decodes", () => {
    const s = foldAll([...syntheticLog({ seed: 3, events: 3_000, agents: 5 })]);
    const bytes = encodeSnapshot(s);
    expect(() => verifySnapshot(bytes)).not.toThrow();
    // Swap two rows in the order column: still a permutation, no longer by id.
    const codec = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", mapsAsObjects: true, useToJSON: false });
    const [header, body] = codec.unpack(bytes) as [unknown, Uint8Array];
    const b = codec.unpack(body) as { order: [number, number, Uint8Array] };
    const col = b.order[2];
    const copy = Uint8Array.prototype.slice.call(col).buffer;
    const kind = b.order[0];
    const a = kind === 0 ? new Uint8Array(copy) : kind === 1 ? new Uint16Array(copy) : new Uint32Array(copy);
    [a[0], a[1]] = [a[1]!, a[0]!];
    b.order[2] = new Uint8Array(copy);
    const bad = codec.pack([header, codec.pack(b)]);
    expect(() => readSnapshot(bad, { verify: false })).not.toThrow();
    expect(() => verifySnapshot(bad)).toThrow(/task order is not by id/);
  });
});

describe("the id index of a snapshot's rows", () => {
  it("finds every id at its position and misses every other, over ids sharing long prefixes (seeds 1-5)", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const rng = new Rng(seed);
      const ids = new Set<string>(["", "é", "\u{1F600}", "a".repeat(300)]);
      while (ids.size < 5_000) ids.add(`role-prod-job${rng.int(40)}-${rng.int(30)}-${rng.hex8().slice(0, rng.int(8) + 1)}`);
      const keys = [...ids].map(asTaskId);
      // Only the first n are indexed (the string table holds more ids than rows).
      const n = keys.length - 1000;
      const index = new IdIndex(PackedIds.of(keys), n);
      for (let p = 0; p < keys.length; p++) expect(index.find(keys[p]!)).toBe(p < n ? p : -1);
      expect(index.find(asTaskId("role-prod-job1-1-nothere"))).toBe(-1);
    }
  });

  it("refuses an id held twice, and a count beyond its keys", () => {
    const keys = ["a", "b", "c", "b"].map(asTaskId);
    expect(() => new IdIndex(PackedIds.of(keys), 4)).toThrow(SnapshotError);
    expect(() => new IdIndex(PackedIds.of(keys), 4)).toThrow(/task b twice/);
    expect(new IdIndex(PackedIds.of(keys), 3).find(asTaskId("b"))).toBe(1);
    expect(() => new IdIndex(PackedIds.of(keys), 5)).toThrow(/cannot index/);
  });

  it("hashes every character (ids differing only in their middle or their end differ)", () => {
    expect(idHash("role-prod-a-1-deadbeef")).not.toBe(idHash("role-prod-b-1-deadbeef"));
    expect(idHash("role-prod-a-1-deadbeef")).not.toBe(idHash("role-prod-a-1-deadbeee"));
    // The table masks the low bits: 4,096 ids that differ in their last digits fill most of 1,024
    // buckets (a hash without the final avalanche leaves whole ranges of them empty).
    const buckets = new Set<number>();
    for (let i = 0; i < 4096; i++) buckets.add(idHash(`role-prod-job-${i}`) & 1023);
    expect(buckets.size).toBeGreaterThan(1000);
  });

  it("keeps finding the snapshot's rows after every row is built, and rows set since", () => {
    const s = foldAll([...syntheticLog({ seed: 9, events: 5_000, agents: 5 })]);
    const d = decode(s);
    d.tasks.warm(Number.POSITIVE_INFINITY);
    expect(d.tasks.coldRows).toBe(0);
    for (const [id, t] of s.tasks) expect(d.tasks.get(id)).toStrictEqual(t);
    const extra = { ...[...s.tasks.values()][0]!, taskId: asTaskId("added-later") };
    d.tasks.set(extra.taskId, extra);
    expect(d.tasks.get(extra.taskId)).toBe(extra);
    expect(d.tasks.size).toBe(s.tasks.size + 1);
    const first = [...s.tasks.keys()][0]!;
    expect(d.tasks.delete(first)).toBe(true);
    expect(d.tasks.has(first)).toBe(false);
    expect(d.tasks.get(extra.taskId)).toBe(extra);
    expect(d.tasks.get([...s.tasks.keys()][1]!)).toStrictEqual(s.tasks.get([...s.tasks.keys()][1]!));
  });
});
