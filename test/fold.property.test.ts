// The fold is total: whatever bytes the log holds, folding them never throws, never needs its
// last-resort catch, and gives the same state twice. Records are drawn from a seed: valid logs
// (syntheticLog, golden logs) with entries mutated in shape and value, plus random MessagePack
// and random bytes. A failing seed is printed so it can be replayed.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EVENT_TYPES } from "../src/domain/events.js";
import { decodeRecord, encodeRecord, pack, unpack } from "../src/eventlog/envelope.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { Rng } from "../src/sim/rng.js";
import { syntheticLog } from "../src/sim/synthetic.js";
import { TASK_STATES } from "../src/statemachines/taskStates.js";

/** A random MessagePack-able value, biased towards the shapes events hold. */
function randomValue(rng: Rng, depth = 0, names: string[] = []): unknown {
  switch (rng.int(depth > 2 ? 9 : 12)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.int(2_000) - 1000;
    case 3:
      return rng.pick([0, -0, 1.5, -1, 2 ** 53, 1e308, -1e308, 0.1, Number.MAX_SAFE_INTEGER, 2 ** 31]);
    case 4:
      return rng.pick([
        "",
        "x",
        "BOGUS",
        "RUNNING",
        "constructor",
        "__proto__",
        "toString",
        "\u0000",
        "a/b/c",
        "..",
        ...TASK_STATES,
        ...names,
      ]);
    case 5:
      return rng.pick(names.length ? names : ["t"]);
    case 6:
      return new Uint8Array(rng.int(4));
    case 7:
      return rng.pick(EVENT_TYPES);
    case 8:
      return String(rng.int(100));
    case 9:
    case 10: {
      const o: Record<string, unknown> = {};
      const keys = [
        "taskId",
        "agentId",
        "to",
        "job",
        "instance",
        "ports",
        "resources",
        "cpus",
        "task",
        "state",
        "constructor",
        "hasOwnProperty",
        "agentSeq",
      ];
      for (let i = rng.int(5); i > 0; i--) o[rng.pick(keys)] = randomValue(rng, depth + 1, names);
      return o;
    }
    default:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1, names));
  }
}

/** Change one thing somewhere inside a value: a field's value, a field removed, a type swapped. */
function mutate(rng: Rng, v: unknown, names: string[], depth = 0): unknown {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || depth > 6 || rng.chance(0.15)) return randomValue(rng, 0, names);
  if (Array.isArray(v)) {
    if (v.length === 0) return [randomValue(rng, 1, names)];
    const out = [...v];
    const i = rng.int(out.length);
    if (rng.chance(0.1)) out.splice(i, 1);
    else out[i] = mutate(rng, out[i], names, depth + 1);
    return out;
  }
  const o = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(o);
  if (keys.length === 0 || rng.chance(0.1)) {
    o[rng.pick(["extra", "constructor", "to", "taskId"])] = randomValue(rng, 1, names);
    return o;
  }
  const k = rng.pick(keys);
  if (rng.chance(0.15)) delete o[k];
  else o[k] = mutate(rng, o[k], names, depth + 1);
  return o;
}

function foldBytes(records: Uint8Array[]): ClusterState {
  const s = new ClusterState();
  for (const [i, r] of records.entries()) foldRecord(s, i + 1, decodeRecord(r));
  return s;
}

function poisonedLog(seed: number, base: Uint8Array[]): Uint8Array[] {
  const rng = new Rng(seed);
  const names: string[] = [];
  for (const r of base.slice(0, 50)) {
    for (const e of decodeRecord(r)) if (e.type === "TaskCreated") names.push(e.data.taskId, e.data.job);
  }
  const out: Uint8Array[] = [];
  for (const bytes of base) {
    const roll = rng.next();
    if (roll < 0.5) {
      out.push(bytes);
    } else if (roll < 0.8) {
      // The same record with one entry changed somewhere (shape or value).
      const raw = unpack<unknown[]>(bytes);
      out.push(pack(mutate(rng, raw, names)));
    } else if (roll < 0.9) {
      // Random MessagePack, shaped like a record now and then.
      out.push(
        pack(rng.chance(0.5) ? [[rng.pick(EVENT_TYPES), 1, 1, 1, "c", "r", randomValue(rng, 0, names)]] : randomValue(rng, 0, names)),
      );
    } else {
      // Bytes: the record cut short, or flipped.
      const b = Uint8Array.from(bytes);
      if (rng.chance(0.5)) out.push(b.subarray(0, rng.int(b.length)));
      else {
        for (let k = 0; k < 3; k++) b[rng.int(b.length)] = rng.int(256);
        out.push(b);
      }
    }
  }
  return out;
}

describe("the fold is total (property)", () => {
  const synthetic = [...syntheticLog({ seed: 11, events: 3_000, agents: 8, eventsPerRecord: 5 })].map(encodeRecord);
  const rules = unpack<Uint8Array[]>(readFileSync(new URL("./golden/v1-rules.log", import.meta.url)));

  it("folds 300 seeded poisoned logs without throwing, identically twice, never by its last-resort catch", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const base = seed % 2 === 0 ? rules : synthetic.slice(0, 150);
      const log = poisonedLog(seed, base);
      let a: ClusterState;
      let b: ClusterState;
      try {
        a = foldBytes(log);
        b = foldBytes(log);
      } catch (err) {
        throw new Error(`seed ${seed}: the fold threw: ${(err as Error).message}`);
      }
      const caught = a.anomalies.filter((x) => x.why.startsWith("the fold failed"));
      expect(caught, `seed ${seed}: an event slipped past the checks: ${JSON.stringify(caught[0])}`).toEqual([]);
      expect(stateHash(a), `seed ${seed}`).toBe(stateHash(b));
      expect(a.seq).toBe(log.length);
    }
  });

  it("folds pure noise: random bytes and random MessagePack values", () => {
    const rng = new Rng(20261201);
    const log: Uint8Array[] = [];
    for (let i = 0; i < 2_000; i++) {
      log.push(rng.chance(0.5) ? Uint8Array.from({ length: rng.int(64) }, () => rng.int(256)) : pack([randomValue(rng), randomValue(rng)]));
    }
    const s = foldBytes(log);
    expect(s.anomalies.filter((x) => x.why.startsWith("the fold failed"))).toEqual([]);
    expect(s.anomalyCount).toBeGreaterThan(1_000);
    expect(s.anomalies.length).toBe(1_000); // kept: the first MAX_ANOMALIES_KEPT, the rest counted
    expect(stateHash(s)).toBe(stateHash(foldBytes(log)));
  });
});
