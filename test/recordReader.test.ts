// The fast record reader (src/eventlog/recordReader.ts) against its definition, decodeRecord by
// msgpackr (decodeRecordGeneric). Two halves, both needed:
// - it reads every record Roost writes (the golden logs, bench replay's synthetic log of every
//   event type): a reader that declined everything would agree with msgpackr trivially;
// - on anything at all (random values of every MessagePack kind, hand-made edge bytes, mutated and
//   truncated records) it either declines (null) or gives what msgpackr's path gives, value for
//   value, number for number (-0 and NaN included) and key order included.

import { readFileSync } from "node:fs";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { type AnyEnvelope, decodeRecord, decodeRecordGeneric, encodeRecord, pack, UNREADABLE, unpack } from "../src/eventlog/envelope.js";
import { readRecord } from "../src/eventlog/recordReader.js";
import { Rng } from "../src/sim/rng.js";
import { syntheticLog } from "../src/sim/synthetic.js";

/** Why a and b differ, or null: strict, with key order, prototypes and Object.is for numbers. */
function diff(a: unknown, b: unknown, path = "$"): string | null {
  if (typeof a !== typeof b) return `${path}: ${typeof a} vs ${typeof b}`;
  if (typeof a === "number") return Object.is(a, b) ? null : `${path}: ${a} vs ${b as number}`;
  if (a === null || b === null || typeof a !== "object") return a === b ? null : `${path}: ${String(a)} vs ${String(b)}`;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: different prototypes`;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return `${path}: length ${a.length} vs ${bb.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = diff(a[i], bb[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  if (ka.join("\u0000") !== kb.join("\u0000")) return `${path}: keys ${JSON.stringify(ka)} vs ${JSON.stringify(kb)}`;
  for (const k of ka) {
    const d = diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    if (d) return d;
  }
  return null;
}

/** readRecord agrees with the definition or declines; returns whether it read the record. */
function check(bytes: Uint8Array): boolean {
  const fast = readRecord(bytes);
  if (fast === null) return false;
  const d = diff(fast, decodeRecordGeneric(bytes));
  if (d !== null) throw new Error(`readRecord disagrees with msgpackr on ${Buffer.from(bytes).toString("hex").slice(0, 400)}: ${d}`);
  return true;
}

const env = (data: unknown, over: Partial<AnyEnvelope> = {}): AnyEnvelope =>
  ({
    type: "TaskStateChanged",
    v: 1,
    epoch: 3,
    ts: 1_795_230_002_108,
    corr: "c12",
    reason: "agent on host-145 reported STARTING",
    data,
    ...over,
  }) as AnyEnvelope;

describe("readRecord reads every record Roost writes", () => {
  it("the golden logs, record for record as msgpackr reads them (foreign records declined)", () => {
    let read = 0;
    let declined = 0;
    for (const name of ["v1-synthetic", "v1-rules", "v1-poisoned", "v1-devrun", "v1-services", "v1-deploys"]) {
      const records = unpack<Uint8Array[]>(readFileSync(new URL(`./golden/${name}.log`, import.meta.url)));
      for (const r of records) {
        if (check(r)) read++;
        else declined++;
      }
    }
    // v1-poisoned's foreign records (make-poisoned.ts) are the only ones the fast path declines.
    const poisoned = unpack<Uint8Array[]>(readFileSync(new URL("./golden/v1-poisoned.log", import.meta.url)));
    const foreign = poisoned.filter((r) => decodeRecordGeneric(r).some((e) => e.type === UNREADABLE)).length;
    expect(foreign).toBeGreaterThan(0);
    expect(declined).toBe(foreign);
    expect(read).toBeGreaterThan(100);
  });

  it("a synthetic log of every event type the generator writes, with non-ASCII reasons", () => {
    const types = new Set<string>();
    let n = 0;
    for (const record of syntheticLog({ seed: 7, events: 30_000, eventsPerRecord: 250 })) {
      const bytes = encodeRecord(record);
      expect(check(bytes)).toBe(true);
      for (const e of record) types.add(e.type);
      n++;
    }
    expect(n).toBeGreaterThan(100);
    expect(types.size).toBeGreaterThanOrEqual(7);
  });
});

describe("readRecord on what Roost does not write", () => {
  // Bytes made by hand where msgpackr's encoder would not make them.
  const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));
  /** A record of one envelope whose data is the given MessagePack bytes. */
  const withData = (dataHex: string) => {
    const head = encodeRecord([env(null)]);
    // The last byte is the data's nil (0xc0): replace it.
    expect(head.at(-1)).toBe(0xc0);
    return new Uint8Array([...head.subarray(0, head.length - 1), ...hex(dataHex)]);
  };

  it("reads each number encoding as msgpackr does", () => {
    for (const data of [
      "7f",
      "e0",
      "ff",
      "cc ff",
      "cd ffff",
      "ce ffffffff",
      "cf 001fffffffffffff",
      "cf ffffffffffffffff",
      "cf 0020000000000001", // 2^53 + 1: rounded, as msgpackr rounds
      "d0 80",
      "d1 8000",
      "d2 80000000",
      "d3 ffffffffffffffff",
      "d3 8000000000000000",
      "d3 ffdfffffffffffff",
      "cb 8000000000000000", // -0
      "cb 7ff8000000000000", // NaN
      "cb 7ff0000000000000", // Infinity
      "cb 3fb999999999999a",
    ])
      expect(check(withData(data)), data).toBe(true);
  });

  it("reads maps and arrays of every header, and strings of every header", () => {
    for (const data of [
      "80",
      "90",
      "de 0001 a1 61 01",
      "df 00000001 a1 61 01",
      "dc 0002 01 02",
      "dd 00000002 01 02",
      "d9 03 616263",
      "da 0003 616263",
      "db 00000003 616263",
      "a0",
      "82 a1 61 01 a1 61 02", // a repeated key: the last value, the first position
      "82 a1 62 01 a1 31 02", // an integer-like key: object order puts it first, in both
      "81 ab 636f6e7374727563746f72 01", // "constructor"
      "a6 e28692e28692", // →→ (UTF-8)
      "a4 f09f9880", // an astral character
    ])
      expect(check(withData(data)), data).toBe(true);
  });

  it("declines what only msgpackr should decide, and decodeRecord still reads it msgpackr's way", () => {
    for (const data of [
      "81 a9 5f5f70726f746f5f5f 01", // __proto__: msgpackr renames it
      "81 01 02", // a non-string key
      "c4 02 0102", // bin
      "d4 01 00", // fixext
      "c7 01 05 00", // ext 8
      "ca 3f800000", // float32
      "c1", // never used
      "a2 c0 80", // an overlong NUL
      "a3 eda080", // a surrogate
      "a2 e282", // a character cut short
      "a4 f4908080", // above U+10FFFF
      "a6 efbbbf616263", // a leading byte order mark
      "a1 80", // a lone continuation byte
    ]) {
      const bytes = withData(data);
      expect(readRecord(bytes), data).toBeNull();
      expect(diff(decodeRecord(bytes), decodeRecordGeneric(bytes)), data).toBeNull();
    }
  });

  it("declines records that are not canonical: decodeRecord gives msgpackr's UNREADABLE entries", () => {
    const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, mapsAsObjects: true });
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      hex("90"), // no envelope
      hex("c0"), // not a list
      hex("91 c0"), // an envelope that is not a list
      new Uint8Array([...encodeRecord([env(null)]), 0x00]), // a byte left over
      encodeRecord([env(null)]).subarray(0, 20), // cut short
      packr.pack([["TaskStateChanged", 1, 3, 5, "c", "r", {}, "an eighth field"]]),
      packr.pack([["TaskStateChanged", 2, 3, 5, "c", "r", {}]]), // a version newer than this build
      packr.pack([["NoSuchType", 1, 3, 5, "c", "r", {}]]),
      packr.pack([["TaskStateChanged", 1, -1, 5, "c", "r", {}]]),
      packr.pack([["TaskStateChanged", 1, 1.5, 5, "c", "r", {}]]),
      packr.pack([["TaskStateChanged", 1, 3, "5", "c", "r", {}]]),
      packr.pack([["TaskStateChanged", 1, 3, 5, 7, "r", {}]]),
      packr.pack([["TaskStateChanged", 1, 3, 5, "c", null, {}]]),
    ];
    for (const bytes of cases) {
      expect(readRecord(bytes)).toBeNull();
      expect(diff(decodeRecord(bytes), decodeRecordGeneric(bytes))).toBeNull();
    }
    // A value nested deeper than the reader's limit is msgpackr's to read.
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(readRecord(encodeRecord([env(deep)]))).toBeNull();
    let shallow: unknown = 1;
    for (let i = 0; i < 12; i++) shallow = { k: [shallow] };
    expect(check(encodeRecord([env(shallow)]))).toBe(true);
  });
});

describe("readRecord against msgpackr, seeded fuzz", () => {
  /** A random MessagePack-able value of every kind Roost's encoder can write, and some it cannot. */
  function randomValue(rng: Rng, depth: number): unknown {
    const k = rng.int(depth > 3 ? 9 : 12);
    switch (k) {
      case 0:
        return null;
      case 1:
        return rng.chance(0.5);
      case 2:
        return rng.int(300) - 150;
      case 3:
        return rng.pick([
          0,
          -0,
          2 ** 31,
          -(2 ** 31) - 1,
          2 ** 32,
          2 ** 53 - 1,
          -(2 ** 53),
          1.5,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          1e300,
        ]);
      case 4:
        return (rng.next() - 0.5) * 10 ** rng.int(15);
      case 5:
      case 6:
        return randomString(rng);
      case 7:
        return rng.chance(0.05) ? new Uint8Array([1, 2, 3]) : rng.chance(0.05) ? 2n ** 60n : randomString(rng);
      case 8:
        return `host-${rng.int(50)}`; // repeats: the cache's hits
      case 9:
      case 10: {
        const o: Record<string, unknown> = {};
        const n = rng.int(6);
        for (let i = 0; i < n; i++)
          o[rng.chance(0.1) ? randomString(rng) : rng.pick(["taskId", "host", "to", "ports", "a", "1", "constructor"])] = randomValue(
            rng,
            depth + 1,
          );
        return o;
      }
      default: {
        const n = rng.int(5);
        return Array.from({ length: n }, () => randomValue(rng, depth + 1));
      }
    }
  }
  function randomString(rng: Rng): string {
    const alphabet = ["a", "Z", "0", "-", "/", " ", "é", "→", "😀", "\u0000", "ñ", "\uFFFD"];
    const n = rng.chance(0.2) ? 60 + rng.int(200) : rng.int(40);
    // Now and then what the reader declines: a lone surrogate, or a leading byte order mark.
    let s = rng.chance(0.01) ? "\uFEFF" : "";
    for (let i = 0; i < n; i++)
      s += rng.chance(0.8) ? String.fromCharCode(97 + rng.int(26)) : rng.chance(0.005) ? "\uD800" : rng.pick(alphabet);
    return s;
  }
  const types = ["TaskStateChanged", "TaskCreated", "TaskAssigned", "JobCreated", "AgentRegistered", "QuotaSet"] as const;

  it("2,000 random records: each read as msgpackr reads it, or declined", () => {
    const rng = new Rng(20261204);
    let read = 0;
    for (let i = 0; i < 2000; i++) {
      const n = 1 + rng.int(4);
      const events = Array.from({ length: n }, () =>
        env(randomValue(rng, 0), {
          type: rng.pick(types),
          reason: randomString(rng),
          corr: randomString(rng),
          epoch: rng.int(9),
          ts: rng.int(2 ** 40),
        }),
      );
      if (check(pack(events.map((e) => [e.type, e.v, e.epoch, e.ts, e.corr, e.reason, e.data])))) read++;
    }
    // Both halves exercised: most records are read, some (bin, bigint, surrogates) declined.
    expect(read).toBeGreaterThan(1000);
    expect(read).toBeLessThan(2000);
  });

  it("5,000 mutated records (a byte changed, cut short, grown): read as msgpackr reads them, or declined", () => {
    const rng = new Rng(4);
    const base = [...syntheticLog({ seed: 11, events: 2_000, eventsPerRecord: 4 })].map((r) => encodeRecord(r));
    let read = 0;
    for (let i = 0; i < 5000; i++) {
      const b = new Uint8Array(rng.pick(base));
      const cut = rng.int(3);
      let bytes: Uint8Array = b;
      if (cut === 0) for (let j = 1 + rng.int(3); j > 0; j--) b[rng.int(b.length)] = rng.int(256);
      else if (cut === 1) bytes = b.subarray(0, rng.int(b.length));
      else bytes = new Uint8Array([...b, rng.int(256)]);
      if (check(bytes)) read++;
    }
    expect(read).toBeGreaterThan(100);
    expect(read).toBeLessThan(5000);
  });
});
