// A snapshot's task ids stay bytes until read (src/replay/packedIds.ts): each id is the right
// string, the same string every time, hashes as idHash would before it is made, and the bytes
// are let go once every id is made; a decoded snapshot makes only the ids it reads.

import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { asTaskId, type TaskId } from "../src/domain/types.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { idHash, PackedIds } from "../src/replay/packedIds.js";
import { decodeSnapshot, encodeSnapshot, readSnapshot } from "../src/replay/snapshot.js";
import { SnapshotError } from "../src/replay/snapshotError.js";
import { ClusterState } from "../src/replay/state.js";
import { Rng } from "../src/sim/rng.js";
import { syntheticLog } from "../src/sim/synthetic.js";

function pack(ids: readonly string[]): { bytes: Buffer; lengths: number[] } {
  return { bytes: Buffer.from(ids.join(""), "latin1"), lengths: ids.map((s) => s.length) };
}

describe("PackedIds", () => {
  it("reads every id exactly, the same string each time, and hashes as idHash before and after (seeds 1-10)", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const rng = new Rng(seed);
      const ids = Array.from({ length: 200 + rng.int(300) }, (_, i) =>
        rng.int(20) === 0 ? "" : `role${rng.int(5)}-prod-job${rng.int(50)}-${i}-${rng.int(1e9).toString(16)}`,
      );
      const { bytes, lengths } = pack(ids);
      const t = PackedIds.fromBytes(bytes, ids.length, (i) => lengths[i]!)!;
      expect(t.length).toBe(ids.length);
      expect(t.unmade).toBe(ids.filter((s) => s.length > 0).length);
      // Hashes first, before any id is made, then ids in a random order, then hashes again.
      for (let i = 0; i < ids.length; i++) expect(t.hashAt(i)).toBe(idHash(ids[i]!));
      const order = ids.map((_, i) => i).sort(() => rng.int(3) - 1);
      for (const i of order) {
        const s = t.at(i);
        expect(s).toBe(ids[i]);
        expect(t.at(i)).toBe(s);
        expect(t.hashAt(i)).toBe(idHash(ids[i]!));
      }
      expect(t.unmade).toBe(0);
    }
  });

  it("materializeAll makes the ids no one read, and the table still reads them all", () => {
    const ids = ["a-1", "", "b-22", "c-333"];
    const { bytes, lengths } = pack(ids);
    const t = PackedIds.fromBytes(bytes, ids.length, (i) => lengths[i]!)!;
    expect(t.at(2)).toBe("b-22");
    expect(t.unmade).toBe(2);
    t.materializeAll();
    expect(t.unmade).toBe(0);
    expect(ids.map((_, i) => t.at(i))).toEqual(ids);
  });

  it("refuses lengths that do not add up to the bytes exactly", () => {
    const { bytes } = pack(["abc", "de"]);
    expect(PackedIds.fromBytes(bytes, 2, (i) => [3, 2][i]!)).not.toBeNull();
    expect(PackedIds.fromBytes(bytes, 2, (i) => [3, 1][i]!)).toBeNull(); // shorter than the bytes
    expect(PackedIds.fromBytes(bytes, 2, (i) => [3, 3][i]!)).toBeNull(); // longer
    expect(PackedIds.fromBytes(bytes, 2, (i) => [6, -1][i]!)).toBeNull(); // a negative length
    expect(PackedIds.fromBytes(bytes, 2, (i) => [Number.NaN, 5][i]!)).toBeNull();
    expect(PackedIds.fromBytes(bytes, -1, () => 0)).toBeNull();
  });

  it("PackedIds.of: ids that are strings already", () => {
    const ids = ["x", "yy", ""].map(asTaskId);
    const t = PackedIds.of(ids);
    expect(ids.map((_, i) => t.at(i))).toEqual(ids);
    expect(t.hashAt(1)).toBe(idHash("yy"));
    expect(t.unmade).toBe(0);
  });
});

describe("a decoded snapshot's task ids", () => {
  const state = new ClusterState();
  let seq = 0;
  for (const r of syntheticLog({ seed: 7, events: 20_000, agents: 10 })) foldRecord(state, ++seq, r);
  const bytes = encodeSnapshot(state);

  it("are made only when read: after decoding, terminal tasks' ids are still bytes; warming makes them all", () => {
    // As a cold start reads a snapshot its writer checked (checking it here would read every id).
    const decoded = readSnapshot(bytes, { verify: false }).state;
    const cold = decoded.tasks.untouchedCold();
    expect(cold).not.toBeNull();
    const ids = cold!.ids as PackedIds;
    expect(ids).toBeInstanceOf(PackedIds);
    // Live tasks' ids are made (their jobs and agents list them); the others are not.
    expect(ids.unmade).toBeGreaterThan(0);
    expect(ids.unmade).toBeLessThan(ids.length);
    decoded.tasks.warm(Number.POSITIVE_INFINITY);
    expect(ids.unmade).toBe(0);
    expect(stateHash(decoded)).toBe(stateHash(state));
    expect(stateHash(decodeSnapshot(bytes))).toBe(stateHash(state)); // the checked decode reads them all
    expect([...decoded.tasks.keys()]).toEqual([...state.tasks.keys()]);
  });

  it("a job instance or agent task naming an index the table does not have, or an id table shorter than its lengths, is refused, naming it", () => {
    const outer = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", mapsAsObjects: true, useToJSON: false });
    const small = new Packr({ useRecords: false, structuredClone: true, int64AsType: "number", mapsAsObjects: true, useToJSON: false });
    const [header, bodyBytes] = outer.unpack(bytes) as [Record<string, unknown>, Uint8Array];
    const tamper = (change: (s: { jobs: unknown[][]; agents: unknown[][] }) => void) => {
      const body = outer.unpack(bodyBytes) as Record<string, unknown>;
      const s = small.unpack(body.small as Uint8Array) as { jobs: unknown[][]; agents: unknown[][] };
      change(s);
      return outer.pack([header, outer.pack({ ...body, small: small.pack(s) })]);
    };
    const withInstances = state.jobs.size > 0 && [...state.jobs.values()].some((j) => j.instances.size > 0);
    expect(withInstances).toBe(true);
    const badJob = tamper((s) => {
      const job = s.jobs.find((j) => (j[7] as number[]).length > 0)!;
      (job[7] as number[])[0] = 1e9;
    });
    expect(() => readSnapshot(badJob, { verify: false })).toThrow(SnapshotError);
    expect(() => readSnapshot(badJob, { verify: false })).toThrow(/job instances names task index 1000000000, out of range/);
    const badAgent = tamper((s) => {
      const agent = s.agents.find((a) => (a[10] as number[]).length > 0)!;
      (agent[10] as unknown[])[0] = "7";
    });
    expect(() => readSnapshot(badAgent, { verify: false })).toThrow(/agent tasks names task index 7, out of range/);
    // The id table itself: bytes one short of what its lengths add up to.
    const body = outer.unpack(bodyBytes) as { strs: { bytes: Uint8Array } } & Record<string, unknown>;
    const short = outer.pack([header, outer.pack({ ...body, strs: { ...body.strs, bytes: body.strs.bytes.subarray(1) } })]);
    expect(() => readSnapshot(short, { verify: false })).toThrow(SnapshotError);
    expect(() => readSnapshot(short, { verify: false })).toThrow("string table strs does not add up to its lengths");
    const ok = tamper(() => {});
    expect(stateHash(readSnapshot(ok, { verify: false }).state)).toBe(stateHash(state));
  });
});

// (TaskId is a brand: the tables hand back the strings they were given.)
const _typed: TaskId = PackedIds.of([asTaskId("t")]).at(0);
void _typed;
