// The SRE's tools on a recorded log: test/golden/v1-devrun, a real `roost dev --ha` run with jobs,
// a failure and its throttled replacement, a preemption, a leader failover and a job kill. No
// scheduler runs here: the log is loaded into a fresh nats-server and every answer comes from it.
//
//   - replay --at at the recording's ten points equals a fresh fold from genesis to each point,
//     also from a snapshot in the middle, and --at a time names the record written at or before it;
//   - diff between points says what the recording did between them;
//   - one test per command through the real CLI (history, replay, diff, inspect, verify, export,
//     task why --at), and their refusals of bad input;
//   - the same operations on the bus (every replica answers, in a queue group) and the gateway;
//   - the web UI's API on the log alone;
//   - last, verify against a snapshot that disagrees with the log: exit 1, naming the part.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsBus } from "../src/bus/nats.js";
import { decodeRecord } from "../src/eventlog/envelope.js";
import type { JetStreamLog } from "../src/eventlog/jetstream.js";
import { startHttpGateway } from "../src/gateway/http.js";
import { HistoryService } from "../src/history/service.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { ClusterState } from "../src/replay/state.js";
import { MemorySnapshotStore, SnapshotStore } from "../src/storage/snapshotStore.js";
import { startReplicaReads } from "../src/ui/replica.js";
import { startUiServer } from "../src/ui/server.js";
import { silentLogger } from "../src/util/logger.js";
import { diffStates, replayReport } from "../src/views/cluster.js";
import { loadGoldenIntoStream, readGolden } from "./support/golden.js";
import { withNats } from "./support/nats.js";
import { roost } from "./support/roost.js";

const nats = withNats();
const golden = readGolden("v1-devrun");
const points = (golden.meta as unknown as { points: Array<{ seq: number; ts: number; what: string }> }).points;
const decoded = golden.records.map((r) => decodeRecord(r));

/** A fresh fold of the recording from genesis through `seq`. */
function foldTo(seq: number): ClusterState {
  const s = new ClusterState();
  for (let i = 0; i < seq; i++) foldRecord(s, i + 1, decoded[i]!);
  return s;
}

const tsOf = (seq: number) => decoded[seq - 1]!.find((e) => typeof e.ts === "number")!.ts!;
const taskOf = (prefix: string, state = foldTo(decoded.length)) => [...state.tasks.keys()].find((k) => k.startsWith(prefix))!;

let log: JetStreamLog;
let dir: string;
let cli: (args: string[]) => ReturnType<typeof roost>;

beforeAll(async () => {
  await loadGoldenIntoStream(nats.url, "v1-devrun");
  log = await nats.openLog("ROOST", { create: false });
  dir = mkdtempSync(join(tmpdir(), "roost-history-"));
  cli = (args) => roost([...args, "--nats", nats.url, "--timeout", "20"], dir);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("replay --at: the cluster at a moment equals a fresh fold to it", () => {
  it("at each of the recording's ten points", async () => {
    expect(points).toHaveLength(10);
    const h = new HistoryService({ log });
    for (const p of points) {
      const want = foldTo(p.seq);
      const got = await h.replay({ at: p.seq });
      expect(got.at).toEqual({ seq: p.seq, ts: tsOf(p.seq) });
      expect(got).toEqual(replayReport(want, got.at));
      expect(stateHash(await h.tm.stateAt(p.seq))).toBe(stateHash(want));
    }
  });

  it("from a snapshot in the middle, the same states", async () => {
    const store = new MemorySnapshotStore();
    await store.put(foldTo(points[4]!.seq));
    const h = new HistoryService({ log, store });
    for (const p of points) expect(stateHash(await h.tm.stateAt(p.seq)), p.what).toBe(stateHash(foldTo(p.seq)));
  });

  it("--at a time is the last record written at or before it", async () => {
    const h = new HistoryService({ log });
    for (const p of points) {
      const m = await h.tm.resolve(new Date(p.ts).toISOString());
      expect(tsOf(m.seq)).toBeLessThanOrEqual(p.ts);
      if (m.seq < decoded.length) expect(tsOf(m.seq + 1)).toBeGreaterThan(p.ts);
    }
    expect((await h.tm.resolve("2020-01-01T00:00:00Z")).seq).toBe(0);
    await expect(h.replay({ at: 999 })).rejects.toThrow(/beyond the end of the log \(46\)/);
  });
});

describe("a leader with a big state folds no past moment", () => {
  it("answers now from its own state, and refuses a past moment naming who can", async () => {
    const head = foldTo(decoded.length);
    const h = new HistoryService({ log, head: () => head, mayBuild: () => "this replica leads a big state; ask a standby" });
    expect((await h.summary({})).at.seq).toBe(46);
    await expect(h.summary({ at: 10 })).rejects.toThrow(/ask a standby/);
    await expect(h.verify()).rejects.toThrow(/ask a standby/);
  });
});

describe("diff between points", () => {
  const h = () => new HistoryService({ log });
  const at = (i: number) => points[i]!;

  it("equals the diff of two fresh folds, at every pair of neighbours", async () => {
    for (let i = 0; i + 1 < points.length; i++) {
      const a = { seq: at(i).seq, ts: tsOf(at(i).seq) };
      const b = { seq: at(i + 1).seq, ts: tsOf(at(i + 1).seq) };
      expect(await h().diff({ from: a.seq, to: b.seq })).toEqual(diffStates(foldTo(a.seq), a, foldTo(b.seq), b));
    }
  });

  it("names what the recording did: the failure, the preemption, the failover, the kill", async () => {
    const failure = await h().diff({ from: at(0).seq, to: at(2).seq });
    expect(failure.tasks).toContainEqual(expect.objectContaining({ from: "(none)", to: "THROTTLED", count: 1 }));
    const preemption = await h().diff({ from: at(4).seq, to: at(5).seq });
    expect(preemption.tasks).toContainEqual(
      expect.objectContaining({ from: "RUNNING", to: "KILLED", examples: [taskOf("www-data-devel-filler-0")] }),
    );
    const failover = await h().diff({ from: at(6).seq, to: at(7).seq });
    expect(failover.leader?.from?.epoch).toBe(1);
    expect(failover.leader?.to?.epoch).toBe(34);
    const kill = await h().diff({ from: at(7).seq, to: at(8).seq });
    expect(kill.jobs.killed).toEqual(["www-data/devel/hello"]);
    const quota = await h().diff({ from: 0 });
    expect(quota.quotas).toEqual([{ role: "www-data", from: null, to: { cpus: 4, ramMb: 4096, diskMb: 1024 } }]);
    expect(quota.jobs.created).toHaveLength(4);
  });
});

describe("the CLI, with no scheduler up", () => {
  it("history task: every event, with seq, time, epoch, actor, state change and reason", async () => {
    const id = taskOf("www-data-devel-hello-0-9a6dba87");
    const r = await cli(["history", "task", id, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const h = JSON.parse(r.stdout);
    expect(h.items.map((i: { change: { to: string } | null }) => i.change?.to)).toEqual([
      "PENDING",
      "ASSIGNED",
      "STARTING",
      "RUNNING",
      "FAILED",
    ]);
    const failed = h.items.at(-1);
    expect(failed).toMatchObject({ epoch: 1, actor: "agent agent-1", type: "TaskStateChanged" });
    expect(failed.reason).toMatch(/exit code 137/);
    const human = await cli(["history", "task", id]);
    expect(human.stdout).toMatch(/RUNNING → FAILED/);
  });

  it("history job, agent and host; --from/--to bound it", async () => {
    const [job, agent, host, bounded] = (
      await Promise.all([
        cli(["history", "job", "www-data/devel/hello", "--json"]),
        cli(["history", "agent", "agent-1", "--json"]),
        cli(["history", "host", "host-1", "--json"]),
        cli(["history", "job", "www-data/devel/hello", "--from", "18", "--to", "19", "--json"]),
      ])
    ).map((r) => JSON.parse(r.stdout));
    expect(job.items[0]).toMatchObject({ seq: 5, type: "JobCreated" });
    expect(job.items.some((i: { type: string }) => i.type === "JobKillRequested")).toBe(true);
    expect(agent.items[0]).toMatchObject({ type: "AgentRegistered", change: { from: "NEW", to: "ACTIVE" } });
    expect(host.items.length).toBe(agent.items.length);
    expect(bounded.items.map((i: { seq: number }) => i.seq).every((s: number) => s >= 18 && s <= 19)).toBe(true);
    expect(bounded.items.length).toBeGreaterThan(0);
  });

  it("replay --at: jobs, tasks, agents with free resources, pending with reasons, quotas, leader", async () => {
    const r = JSON.parse((await cli(["replay", "--at", "33", "--json"])).stdout);
    expect(r).toEqual(replayReport(foldTo(33), { seq: 33, ts: tsOf(33) }));
    expect(r.leader.epoch).toBe(1);
    expect(r.agents[0].free).toBeDefined();
    const human = (await cli(["replay", "--at", new Date(tsOf(39)).toISOString()])).stdout;
    expect(human).toMatch(/leader: scheduler-1 \(epoch 34\)/);
  });

  it("diff --from --to", async () => {
    const r = JSON.parse((await cli(["diff", "--from", "32", "--to", "34", "--json"])).stdout);
    expect(r.tasks).toContainEqual(expect.objectContaining({ from: "RUNNING", to: "KILLED" }));
    const human = (await cli(["diff", "--from", "38"])).stdout;
    expect(human).toMatch(/leader: scheduler-3 → scheduler-1/);
  });

  it("task why --at: the placement, and the event that ended it", async () => {
    const filler = taskOf("www-data-devel-filler-0");
    const r = JSON.parse((await cli(["task", "why", filler, "--at", "40", "--json"])).stdout);
    expect(r.state).toBe("KILLED");
    expect(r.cause).toMatchObject({ seq: 33, state: "PREEMPTING" });
    expect(r.cause.reason).toMatch(/preempted for www-data-prod-checkout/);
    expect(r.placement.decision.feasible).toBe(3);
    const pending = JSON.parse((await cli(["task", "why", taskOf("www-data-prod-checkout-0"), "--at", "32", "--json"])).stdout);
    expect(pending.state).toBe("PENDING");
    expect(pending.vetoes.length + pending.feasible.length).toBeGreaterThan(0);
  });

  it("inspect task and agent: state, what it accepts now, transitions, the graph", async () => {
    const filler = taskOf("www-data-devel-filler-0");
    const r = JSON.parse((await cli(["inspect", "task", filler, "--at", "33", "--json"])).stdout);
    expect(r.state).toBe("PREEMPTING");
    expect(r.accepts.map((a: { event: string }) => a.event)).toContain("KILLED");
    expect(r.history.at(-1)).toMatchObject({ from: "RUNNING", to: "PREEMPTING" });
    const mermaid = (await cli(["inspect", "task", filler, "--at", "33", "--graph", "mermaid"])).stdout;
    expect(mermaid).toMatch(/^stateDiagram-v2/);
    expect(mermaid).toMatch(/class PREEMPTING current/);
    const dot = (await cli(["inspect", "agent", "agent-2", "--graph", "dot"])).stdout;
    expect(dot).toMatch(/^digraph/);
    const agent = JSON.parse((await cli(["inspect", "agent", "agent-2", "--json"])).stdout);
    expect(agent).toMatchObject({ state: "ACTIVE", history: [expect.objectContaining({ from: "NEW", to: "ACTIVE" })] });
  });

  it("verify: a fold from genesis (no snapshot, no leader: it says so)", async () => {
    const r = await cli(["verify", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({ ok: true, seq: 46, stateHash: golden.meta.stateHash });
    expect(v.checks.map((c: { note?: string }) => c.note)).toEqual(["no snapshot in the store", "no leader answered"]);
  });

  it("export: one JSON object per event, bounded by --from/--to", async () => {
    const all = (await cli(["export"])).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(all).toHaveLength(golden.meta.events);
    expect(all[0]).toMatchObject({ seq: 1, index: 0 });
    expect(all.find((e) => e.type === "JobCreated").job).toBe("www-data/devel/hello");
    const some = (await cli(["export", "--from", "33", "--to", "34"])).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(new Set(some.map((e) => e.seq))).toEqual(new Set([33, 34]));
  });

  it("refuses bad input, naming the flag or field, and changes nothing", async () => {
    const bad = [
      [["replay", "--at", "soon"], /--at.*must be a log sequence/],
      [["replay", "--at", "99"], /beyond the end of the log/],
      [["history", "pod", "x"], /must be one of task, job, agent, host/],
      [["history", "task", "nope"], /task nope does not exist/],
      [["inspect", "task", "nope"], /does not exist/],
      [["inspect", "task", "x", "--graph", "png"], /Allowed choices are mermaid, dot/],
      [["diff", "--from", "40", "--to", "10"], /before from/],
      [["diff"], /--from/],
    ] as const;
    const runs = await Promise.all(bad.map(([args]) => cli([...args])));
    bad.forEach(([args, msg], i) => {
      expect(runs[i]!.code, args.join(" ")).toBe(1);
      expect(runs[i]!.stderr, args.join(" ")).toMatch(msg);
    });
  });
});

describe("the same operations on the bus and the gateway", () => {
  it("every replica answers from its own fold; bad requests are refused naming the field", async () => {
    const bus = await NatsBus.connect([nats.url], "history-test");
    const state = foldTo(decoded.length);
    const reads = await startReplicaReads({ replica: { state, onChange: () => () => {} }, log, bus, logger: silentLogger });
    const gw = await startHttpGateway({
      transport: { request: (s, b, ms) => bus.request(s, b, ms) },
      tokens: null,
      host: "127.0.0.1",
      port: 0,
    });
    try {
      const ask = (op: string, body: unknown) =>
        bus.request<{ ok: boolean; value?: unknown; error?: { code: string; field?: string } }>(`roost.api.v1.cluster.${op}`, body, 10_000);
      const replay = await ask("replay", { at: 34 });
      expect(replay.value).toEqual(replayReport(foldTo(34), { seq: 34, ts: tsOf(34) }));
      expect((await ask("history", { kind: "job", id: "www-data/devel/batch" })).ok).toBe(true);
      expect((await ask("diff", { from: 5, to: 34 })).ok).toBe(true);
      expect((await ask("inspect", { kind: "agent", id: "agent-1", graph: "dot" })).ok).toBe(true);
      expect((await ask("verify", {})).value).toMatchObject({ ok: true, seq: 46 });
      const page = (await ask("export", { from: 1, limit: 10 })).value as { items: unknown[]; next: number };
      expect(page.items.length).toBeGreaterThanOrEqual(10);
      expect(page.next).toBeGreaterThan(1);
      for (const [op, body, field] of [
        ["replay", { at: "tomorrow" }, "at"],
        ["history", { kind: "pod", id: "x" }, "kind"],
        ["history", { kind: "task", id: "x", extra: 1 }, ""],
        ["why", { taskId: "\u0000" }, "taskId"],
        ["replay", [1, 2], ""],
      ] as const) {
        const r = await ask(op, body);
        expect(r.ok, `${op} ${JSON.stringify(body)}`).toBe(false);
        expect(r.error!.code).toBe("INVALID_REQUEST");
        if (field) expect(r.error!.field).toBe(field);
      }
      expect((await ask("why", { taskId: "nope" })).error!.code).toBe("NOT_FOUND");
      expect((await ask("replay", { at: 1000 })).error!.code).toBe("INVALID_REQUEST");

      const base = gw.url;
      const ok = await fetch(`${base}/v1/cluster/replay?at=34`);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { value: unknown }).value).toEqual(replay.value);
      const h = await fetch(`${base}/v1/cluster/history?kind=task&id=${taskOf("www-data-devel-filler-0")}`);
      expect(h.status).toBe(200);
      const bad = await fetch(`${base}/v1/cluster/replay?at=soon`);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { field: string } }).error.field).toBe("at");
    } finally {
      await gw.close();
      await reads.stop();
      await bus.close();
    }
  });
});

describe("the web UI's API on the log alone", () => {
  it("serves the app, the API at any moment, and refuses what is not there", async () => {
    const state = foldTo(decoded.length);
    const h = new HistoryService({ log, head: () => state, source: () => "log" });
    const ui = await startUiServer({ history: h, listen: { host: "127.0.0.1", port: 0 } });
    const base = ui.url.replace(/\/ui\/$/, "");
    // biome-ignore lint/suspicious/noExplicitAny: the replies' shapes are what the assertions check
    const get = async (p: string): Promise<{ status: number; body: any }> => {
      const r = await fetch(`${base}${p}`);
      // biome-ignore lint/suspicious/noExplicitAny: as above
      return { status: r.status, body: r.headers.get("content-type")?.includes("json") ? ((await r.json()) as any) : await r.text() };
    };
    try {
      expect((await get("/ui/")).body).toMatch(/<html/i);
      expect((await get("/ui/vendor/preact.mjs")).status).toBe(200);
      expect((await get("/ui/api/timeline")).body).toMatchObject({ first: { seq: 1 }, last: { seq: 46 }, source: "log" });
      expect((await get("/ui/api/summary?at=34")).body).toMatchObject({ at: { seq: 34 }, leader: { epoch: 1 } });
      const jobs = (await get("/ui/api/jobs?at=5&limit=1")).body;
      expect(jobs).toMatchObject({ total: 1, items: [{ job: "www-data/devel/hello" }] });
      const filler = taskOf("www-data-devel-filler-0");
      const task = (await get(`/ui/api/task?taskId=${filler}&at=33`)).body;
      expect(task.inspect.state).toBe("PREEMPTING");
      expect(task.history.at(-1).reason).toMatch(/preempted/);
      expect((await get("/ui/api/pending?at=32")).body.items[0].job).toBe("www-data/prod/checkout");
      const logPage = (await get("/ui/api/log?at=34&limit=5&type=TaskStateChanged")).body;
      expect(logPage.items.every((e: { type: string; seq: number }) => e.type === "TaskStateChanged" && e.seq <= 34)).toBe(true);
      expect((await get("/ui/api/summary?at=soon")).status).toBe(400);
      expect((await get("/ui/api/summary?at=4600")).status).toBe(400);
      expect((await get("/ui/api/task?taskId=nope")).status).toBe(404);
      expect((await get("/ui/api/nothing")).status).toBe(404);
      expect((await get("/ui/..%2f..%2fpackage.json")).status).toBe(404);
    } finally {
      await ui.close();
    }
  });
});

describe("verify, against a snapshot that disagrees with the log", () => {
  it("exits 1 and names the first part that differs", async () => {
    const forged = foldTo(40);
    const id = taskOf("www-data-devel-filler-1", forged);
    forged.tasks.get(id)!.state = "FAILED";
    const store = await SnapshotStore.forLog(log);
    await store.put(forged);
    const r = await cli(["verify"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(
        `MISMATCH snapshot snap/0+40 at sequence 40: first difference tasks\\[${id}\\]\\.state: snapshot "FAILED", fold "RUNNING"`,
      ),
    );
  });
});
