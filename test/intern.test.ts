// Decoded strings are interned before the fold keeps them (src/eventlog/intern.ts): equal values,
// nothing else changed, explicit limits kept, and (checked in V8 itself) no string the fold keeps
// is a slice of its record's strings.

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
  it("keeps no SlicedString in a decoded event (ids, corr, reason)", () => {
    const script = `
      const { encodeRecord, decodeRecord } = await import(${JSON.stringify(envelope)});
      const events = [];
      for (let i = 0; i < 40; i++)
        events.push({ type: "TaskCreated", v: 1, epoch: 1, ts: i, corr: "corr-0000000000-" + i,
          reason: "the job wants instance " + i + " and has none", data: { taskId: "prod/www-data/hello/" + i + "/abcdef", nested: { host: "agent-" + i + ".rack-7.example.com" } } });
      const out = decodeRecord(encodeRecord(events));
      const last = out[out.length - 1];
      %DebugPrint(last.data.taskId); %DebugPrint(last.corr); %DebugPrint(last.reason); %DebugPrint(last.data.nested.host);
    `;
    const r = spawnSync(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const types = [...r.stdout.matchAll(/- type: (\w+)/g)].map((m) => m[1]);
    expect(types).toHaveLength(4);
    for (const t of types) expect(t).not.toMatch(/SLICED/);
  });
});
