// Service discovery's pure core (src/views/discovery.ts): the key escaping is a bijection between
// job keys and KV keys (no two jobs share a key; every key reads back as the job it was made
// from; anything else reads back as nothing), the wanted set is exactly the RUNNING tasks with a
// port, and the incremental index agrees with the whole-state computation after every record of
// real logs: the golden logs and swarm runs full of lost agents, reboots, partitions and kills.

import { describe, expect, it } from "vitest";
import type { Scheduler } from "../src/actors/scheduler.js";
import { decodeRecord, type LogEntry } from "../src/eventlog/envelope.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { runSwarm } from "../src/sim/swarm.js";
import {
  decodeEndpoint,
  desiredEndpoints,
  discoveryBucket,
  EndpointIndex,
  encodeEndpoint,
  endpointKey,
  endpointOfTask,
  escapeSegment,
  FENCE_KEY,
  jobKeyPrefix,
  parseEndpointKey,
  unescapeSegment,
} from "../src/views/discovery.js";
import { readGolden } from "./support/golden.js";
import { StateBuilder } from "./support/state.js";

const bytes = (s: string) => new TextEncoder().encode(s);

/** Every endpoint the state should announce, found the slow way: every task, whatever index points at it. */
function bruteForce(state: ClusterState): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of state.tasks.values()) {
    const e = endpointOfTask(t);
    if (!e) continue;
    const cfg = state.jobs.get(t.job)!.config;
    const key = `${escapeSegment(cfg.role)}.${escapeSegment(cfg.environment)}.${escapeSegment(cfg.name)}.${t.instance}`;
    expect(out.has(key), `two RUNNING tasks for ${key}`).toBe(false);
    out.set(key, encodeEndpoint(e));
  }
  return out;
}

const indexed = (index: EndpointIndex) => new Map([...index.keys()].map((k) => [k, index.get(k)!]));

describe("key escaping", () => {
  it("keeps names readable: letters, digits, _ and - stand for themselves, everything else is =XX per UTF-8 byte", () => {
    expect(endpointKey("www-data/devel/hello", 0)).toBe("www-data.devel.hello.0");
    expect(endpointKey("www-data/devel/hello.v2", 12)).toBe("www-data.devel.hello=2Ev2.12");
    expect(escapeSegment("a=b")).toBe("a=3Db");
    expect(escapeSegment("é")).toBe("=C3=A9");
    expect(escapeSegment("x y/z*>")).toBe("x=20y=2Fz=2A=3E");
    expect(jobKeyPrefix("r.1/prod/n_2")).toBe("r=2E1.prod.n_2");
  });

  it("round-trips, and two different job keys never share a key", () => {
    const parts = [
      "a",
      "a.b",
      "a=2Eb",
      "a_b",
      "a-b",
      "A",
      "=",
      "==",
      ".",
      "..",
      "a.",
      ".a",
      "é",
      "日本",
      "😀",
      "x y",
      "%2E",
      "_",
      "-",
      "0",
    ];
    const keys = new Map<string, string>();
    for (const r of parts)
      for (const e of ["devel", "staging.1", "=3D"])
        for (const n of parts) {
          const job = `${r}/${e}/${n}`;
          const key = endpointKey(job, 3);
          expect(key).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
          expect(key.startsWith(".") || key.endsWith(".") || key.includes("..")).toBe(false);
          expect(parseEndpointKey(key)).toEqual({ job, instance: 3 });
          expect(keys.get(key), `${job} and ${keys.get(key)} share ${key}`).toBeUndefined();
          keys.set(key, job);
        }
    for (const p of parts) expect(unescapeSegment(escapeSegment(p))).toBe(p);
  });

  it("reads anything that is not a canonical escaping as no key at all", () => {
    for (const bad of ["=41", "=c3=a9", "=C3", "a=", "a=4", "a b", "a.b", ""]) expect(unescapeSegment(bad), bad).toBeNull();
    // "/" escapes and reads back, but no part of a job key holds one: no key names such a job.
    expect(unescapeSegment("=2F")).toBe("/");
    for (const bad of ["a.=2F.c.0", "a.b.c", "a.b.c.d.0", "a.b.c.01", "a.b.c.-1", "a.b.c.x", "a.b.=41.0", FENCE_KEY, "a..c.0", "a.b.c.1e3"])
      expect(parseEndpointKey(bad), bad).toBeNull();
    expect(() => escapeSegment("")).toThrow(/empty/);
    expect(() => escapeSegment("a\uD800")).toThrow(/well-formed/);
    expect(() => endpointKey("a/b", 0)).toThrow(/ROLE\/ENV\/NAME/);
  });

  it("names the bucket after the log's stream, as the intake is", () => {
    expect(discoveryBucket("ROOST")).toBe("ROOST_DISCOVERY");
    expect(() => discoveryBucket("A.B")).toThrow(/letters, digits/);
  });
});

describe("values", () => {
  it("are JSON any language reads, in one form, and read back checked", () => {
    const v = encodeEndpoint({ host: "h1", ports: { z: 2, a: 1 }, taskId: "t-1" });
    expect(v).toBe('{"host":"h1","ports":{"a":1,"z":2},"taskId":"t-1"}');
    expect(decodeEndpoint(bytes(v))).toEqual({ endpoint: { host: "h1", ports: { a: 1, z: 2 }, taskId: "t-1" } });
    // An unknown field (a newer leader's) is ignored.
    expect(decodeEndpoint(bytes('{"host":"h","ports":{"p":9},"taskId":"t","zone":"z1"}'))).toEqual({
      endpoint: { host: "h", ports: { p: 9 }, taskId: "t" },
    });
  });

  it("say what is wrong with garbage, naming the field and the rule", () => {
    const problems = (s: string | Uint8Array) => {
      const d = decodeEndpoint(typeof s === "string" ? bytes(s) : s);
      return "problems" in d ? d.problems.map((p) => `${p.field}: ${p.rule}`).join("; ") : "ok";
    };
    expect(problems("hello")).toMatch(/must be JSON/);
    expect(problems(new Uint8Array([0xff, 0xfe]))).toMatch(/must be JSON/);
    expect(problems("[]")).toMatch(/must be a mapping/);
    expect(problems('{"host":"h","ports":{"http":70000},"taskId":"t"}')).toMatch(/ports\.http: must be a port/);
    expect(problems('{"host":"","ports":{},"taskId":"t"}')).toMatch(/host: must be a host/);
    expect(problems('{"ports":{},"taskId":"t"}')).toMatch(/host: is required/);
    expect(problems('{"host":"h","ports":{"a":1},"taskId":"t\\u0000"}')).toMatch(/taskId: must be a task id/);
    expect(problems(bytes(`{"host":"${"h".repeat(70_000)}"}`))).toMatch(/at most 65536 bytes/);
  });
});

describe("the wanted set", () => {
  it("is the RUNNING tasks with a port: not one without ports, not one ASSIGNED, not one that left RUNNING", () => {
    const b = new StateBuilder().agent("h1").agent("h2");
    const web = b.job({ name: "web", instances: 4, resources: { cpus: 0.1, ramMb: 16, diskMb: 16, ports: ["http", "admin"] } });
    const plain = b.job({ name: "plain", instances: 1 });
    const [w0, w1, w2, w3] = [0, 1, 2, 3].map((i) => b.task(web, i));
    const p0 = b.task(plain, 0);
    b.place(w0!, "h1", { http: 31000, admin: 31001 });
    b.place(w1!, "h2", { http: 31000, admin: 31001 });
    b.place(w2!, "h1", { http: 31002, admin: 31003 });
    b.emit("TaskAssigned", { taskId: w3!, agentId: "h2" as never, host: "h2", ports: { http: 31004, admin: 31005 } });
    b.place(p0, "h2");
    b.emit("TaskStateChanged", { taskId: w2!, to: "KILLING" });
    const want = desiredEndpoints(b.state);
    expect([...want.keys()].sort()).toEqual(["www.devel.web.0", "www.devel.web.1"]);
    expect(want.get("www.devel.web.1")).toEqual({ host: "h2", ports: { http: 31000, admin: 31001 }, taskId: "web-1" });
  });

  it("changes by record: only the keys a record moved, and an agent's loss withdraws what ran there", () => {
    const b = new StateBuilder().agent("h1").agent("h2");
    const web = b.job({ name: "web", instances: 3, resources: { cpus: 0.1, ramMb: 16, diskMb: 16, ports: ["http"] } });
    const ids = [0, 1, 2].map((i) => b.task(web, i));
    const index = new EndpointIndex();
    index.reset(b.state);
    expect(index.size).toBe(0);
    const step = (type: string, data: unknown): string[] => {
      const entry = { type, v: 1, epoch: 1, ts: b.ts, corr: "t", reason: "test", data } as LogEntry;
      foldRecord(b.state, b.state.seq + 1, [entry]);
      return index.update(b.state, [entry]);
    };
    step("TaskAssigned", { taskId: ids[0], agentId: "h1", host: "h1", ports: { http: 31000 } });
    expect(step("TaskStateChanged", { taskId: ids[0], to: "RUNNING", agentSeq: 1 })).toEqual(["www.devel.web.0"]);
    step("TaskAssigned", { taskId: ids[1], agentId: "h1", host: "h1", ports: { http: 31001 } });
    step("TaskAssigned", { taskId: ids[2], agentId: "h2", host: "h2", ports: { http: 31000 } });
    expect(step("TaskStateChanged", { taskId: ids[1], to: "RUNNING", agentSeq: 1 })).toEqual(["www.devel.web.1"]);
    expect(step("TaskStateChanged", { taskId: ids[2], to: "RUNNING", agentSeq: 1 })).toEqual(["www.devel.web.2"]);
    // A duplicate status update changes nothing.
    expect(step("TaskStateChanged", { taskId: ids[2], to: "RUNNING", agentSeq: 1 })).toEqual([]);
    // h1 is cut off: its two tasks go PARTITIONED, named by no event.
    expect(step("AgentStateChanged", { agentId: "h1", to: "UNREACHABLE" }).sort()).toEqual(["www.devel.web.0", "www.devel.web.1"]);
    expect([...index.keys()]).toEqual(["www.devel.web.2"]);
    // A kill of the job withdraws the rest; garbage entries are looked past.
    expect(step("JobKillRequested", { job: "www/devel/web", instances: null, user: "u" })).toEqual(["www.devel.web.2"]);
    expect(step("TaskStateChanged", { taskId: 42 })).toEqual([]);
    expect(index.size).toBe(0);
    expect(indexed(index)).toEqual(bruteForce(b.state));
  });

  it("never throws on a job whose name cannot be a key (a record an old build let through): it is not announced", () => {
    const b = new StateBuilder().agent("h1");
    const odd = b.rawJob({ ...b.job({ name: "ok" }), name: "" });
    const t = b.task(odd, 0, "odd-0");
    b.place(t, "h1", { p: 31000 });
    expect(desiredEndpoints(b.state).size).toBe(0);
    const index = new EndpointIndex();
    index.reset(b.state);
    expect(index.size).toBe(0);
  });

  for (const name of ["v1-devrun", "v1-rules", "v1-poisoned"]) {
    it(`agrees with the whole-state computation after every record of golden log ${name}`, () => {
      const { records } = readGolden(name);
      const state = new ClusterState();
      const index = new EndpointIndex();
      index.reset(state);
      let announcedOnce = 0;
      records.forEach((bytesOfRecord, i) => {
        const events = decodeRecord(bytesOfRecord);
        foldRecord(state, i + 1, events);
        index.update(state, events);
        const want = bruteForce(state);
        expect(indexed(index), `after record ${i + 1}`).toEqual(want);
        expect(new Map([...desiredEndpoints(state)].map(([k, e]) => [k, encodeEndpoint(e)]))).toEqual(want);
        announcedOnce = Math.max(announcedOnce, want.size);
      });
      if (name === "v1-devrun") expect(announcedOnce).toBeGreaterThanOrEqual(3);
    });
  }

  it("agrees with the whole-state computation after every record every replica folds in 40 swarm runs (lost agents, reboots, partitions, failovers)", async () => {
    let checked = 0;
    let peak = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const indexes = new Map<Scheduler, { index: EndpointIndex; seq: number }>();
      let mismatch: string | null = null;
      const r = await runSwarm(seed, {
        onFold: (replica, seq, events) => {
          let x = indexes.get(replica);
          if (!x || seq !== x.seq + 1) {
            // A replica seen for the first time, or after a gap: start from its whole state.
            x = { index: new EndpointIndex(), seq };
            x.index.reset(replica.state);
            indexes.set(replica, x);
          } else {
            x.index.update(replica.state, events);
            x.seq = seq;
          }
          const want = bruteForce(replica.state);
          peak = Math.max(peak, want.size);
          checked++;
          const got = indexed(x.index);
          if (mismatch === null && JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort()))
            mismatch = `seed ${seed}, record ${seq} (${events.map((e) => e.type).join(", ")}): index ${JSON.stringify([...got.keys()])}, fold ${JSON.stringify([...want.keys()])}`;
        },
      });
      expect(r.ok, r.violation?.message).toBe(true);
      expect(mismatch).toBeNull();
    }
    expect(checked).toBeGreaterThan(1000);
    expect(peak).toBeGreaterThan(0);
  }, 120_000);
});
