// Decoded strings are interned before the fold keeps them (src/eventlog/intern.ts): equal values,
// nothing else changed, explicit limits kept, and (checked in V8 itself) no string the fold keeps
// is a slice of its record's strings. The same in V8 for the fast reader (recordReader.ts), which
// builds each string on its own and gives an id read again as the string read before.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { intern, internStrings } from "../src/eventlog/intern.js";

describe("internStrings", () => {
  it("returns the same value, equal in every string, arrays and maps changed in place", () => {
    const long = "prod/www-data/hello/0/abcdef01";
    const x = { a: long, b: [long, 1, null, { c: `${long}x` }], d: new Uint8Array([1, 2]), e: "short", f: true };
    const copy = structuredClone(x);
    expect(internStrings(x)).toBe(x);
    expect(x).toEqual(copy);
    expect(intern(long)).toBe(long);
    expect(internStrings(null)).toBe(null);
    expect(internStrings(7)).toBe(7);
    expect(internStrings("x".repeat(5000))).toBe("x".repeat(5000));
  });

  it("stops at its depth limit instead of recursing without end", () => {
    // A chain deeper than any stack: left as decoded below depth 4, and no throw.
    let deep: unknown = "prod/www-data/deepest/0/abcdef";
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(() => internStrings(deep)).not.toThrow();
  });

  it("has a null-prototype sink: keys like __proto__ or constructor change nothing", () => {
    const x = { k: "__proto__padding__", j: "constructor-of-it", p: "hasOwnProperty..." };
    internStrings(x);
    expect(({} as Record<string, unknown>).k).toBeUndefined();
    expect(Object.keys(x)).toEqual(["k", "j", "p"]);
  });
});

describe("decodeRecord's strings, in V8", () => {
  // What the issue was: msgpackr-extract hands out each string as a slice of one long string per
  // record, and the state kept those slices, so every record's whole string blob stayed alive.
  // The built module (npm test builds first), run in a child with V8's natives syntax on.
  const envelope = fileURLToPath(new URL("../dist/src/eventlog/envelope.js", import.meta.url));
  const run = (script: string) => {
    const r = spawnSync(process.execPath, ["--allow-natives-syntax", "--expose-gc", "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };

  // decodeRecord reads Roost's own records with its fast reader (recordReader.ts), which builds
  // every string on its own; decodeRecordGeneric is msgpackr's path, which interns.
  for (const decode of ["decodeRecord", "decodeRecordGeneric"]) {
    it(`${decode} keeps no SlicedString in a decoded payload (ids, hosts)`, () => {
      const out = run(`
        const { encodeRecord, ${decode}: decode } = await import(${JSON.stringify(envelope)});
        const events = [];
        for (let i = 0; i < 40; i++)
          events.push({ type: "TaskCreated", v: 1, epoch: 1, ts: i, corr: "corr-0000000000-" + i,
            reason: "the job wants instance " + i + " and has none", data: { taskId: "prod/www-data/hello/" + i + "/abcdef", nested: { host: "agent-" + i + ".rack-7.example.com" } } });
        const last = decode(encodeRecord(events)).at(-1);
        %DebugPrint(last.data.taskId); %DebugPrint(last.data.nested.host);
      `);
      const types = [...out.matchAll(/- type: (\w+)/g)].map((m) => m[1]);
      expect(types).toHaveLength(2);
      for (const t of types) expect(t).not.toMatch(/SLICED/);
    });
  }

  it("decodeRecord gives an id read twice as one string: a Map lookup by it compares a pointer", () => {
    const out = run(`
      const { encodeRecord, decodeRecord } = await import(${JSON.stringify(envelope)});
      const id = "prod/www-data/hello/7/abcdef";
      const created = { type: "TaskCreated", v: 1, epoch: 1, ts: 1, corr: "c", reason: "r", data: { taskId: id } };
      const moved = { type: "TaskStateChanged", v: 1, epoch: 1, ts: 2, corr: "c", reason: "r", data: { taskId: id, to: "RUNNING" } };
      const [a] = decodeRecord(encodeRecord([created]));
      const [b] = decodeRecord(encodeRecord([moved]));
      %DebugPrint(a.data.taskId); %DebugPrint(b.data.taskId);
    `);
    const addresses = [...out.matchAll(/DebugPrint: (0x[0-9a-f]+)/g)].map((m) => m[1]);
    expect(addresses).toHaveLength(2);
    expect(addresses[0]).toBe(addresses[1]);
  });

  it("decodeRecordGeneric interns a TaskAssigned's ids but leaves its placement decision as decoded (the state keeps none of it)", () => {
    const out = run(`
      const { encodeRecord, decodeRecordGeneric } = await import(${JSON.stringify(envelope)});
      const events = [];
      for (let i = 0; i < 40; i++) {
        const alt = (k) => ({ host: "agent-" + (i + k) + ".rack-7.example.com", score: 0.5 });
        events.push({ type: "TaskAssigned", v: 1, epoch: 1, ts: i, corr: "c", reason: "spread on a host",
          data: { taskId: "prod/www-data/hello/" + i + "/abcdef", agentId: "agent-" + i + "-0000000000", host: "agent-" + i + ".rack-7.example.com",
            ports: {}, placement: { mode: "spread", evaluated: 3, feasible: 3, score: 0.5, alternatives: [alt(1), alt(2)], vetoes: {} } } });
      }
      const last = decodeRecordGeneric(encodeRecord(events)).at(-1);
      console.log("type " + last.type);
      %DebugPrint(last.data.taskId); %DebugPrint(last.data.agentId); %DebugPrint(last.data.placement.alternatives[0].host);
    `);
    expect(out).toContain("type TaskAssigned");
    const types = [...out.matchAll(/- type: (\w+)/g)].map((m) => m[1]);
    expect(types).toHaveLength(3);
    expect(types[0]).not.toMatch(/SLICED/);
    expect(types[1]).not.toMatch(/SLICED/);
    // Left as msgpackr-extract hands it out: a slice of the record's strings (intern.ts says why).
    expect(types[2]).toMatch(/SLICED/);
  });

  it("keeps a reason without its record: 40 records of 1,000 events, only their reasons kept, retain < 10 MiB", () => {
    const out = run(`
      const { encodeRecord, decodeRecord } = await import(${JSON.stringify(envelope)});
      const pad = "y".repeat(40);
      const kept = [];
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let r = 0; r < 40; r++) {
        const events = [];
        for (let i = 0; i < 1000; i++)
          events.push({ type: "TaskStateChanged", v: 1, epoch: 1, ts: i, corr: "c",
            reason: "task " + r + "/" + i + " moved for a reason of some length",
            data: { a: "a" + i + pad, b: "b" + i + pad, c: "c" + i + pad, d: "d" + i + pad, e: "e" + i + pad, f: "f" + i + pad } });
        for (const e of decodeRecord(encodeRecord(events))) kept.push(e.reason);
      }
      gc();
      console.log(JSON.stringify({ retained: process.memoryUsage().heapUsed - before, kept: kept.length }));
    `);
    const { retained, kept } = JSON.parse(out.trim().split("\n").pop()!) as { retained: number; kept: number };
    expect(kept).toBe(40_000);
    // 40,000 reasons of ~50 characters are ~4.5 MiB with their copies; as slices of their
    // records they kept every record's strings too (six more of ~45 characters per event).
    expect(retained).toBeLessThan(10 * 2 ** 20);
  });
});
