// Service discovery end to end, on a real nats-server with a real scheduler and agents running
// real processes (test/support/cluster.ts): a service's RUNNING instances with a port are in the
// discovery bucket and client.discover() and `roost discover` show them; an instance that fails
// is withdrawn, and a watch sees every change in the order the fold made it; a new leader
// reconciles a bucket someone tampered with (a stale key, a missing one, garbage) with its fold;
// a leader deposed by a newer one writes nothing more; and on a secured cell a client may read
// the bucket but never write it. Every wait is on a watch or the scheduler's own notifications.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Announcer } from "../src/actors/announcer.js";
import { systemClock } from "../src/actors/clock.js";
import { Scheduler } from "../src/actors/scheduler.js";
import { NatsBus } from "../src/bus/nats.js";
import { type EndpointChange, RoostClient, RoostError } from "../src/client/index.js";
import { type IntakeSource, openIntake } from "../src/eventlog/intake.js";
import type { JetStreamLog } from "../src/eventlog/jetstream.js";
import { authorizationConf, type Identity } from "../src/natsServer/auth.js";
import { type NatsServerHandle, startNatsServer } from "../src/natsServer/server.js";
import { foldRecord } from "../src/replay/fold.js";
import { jobStatus } from "../src/replay/queries.js";
import { ClusterState } from "../src/replay/state.js";
import { KvEndpointStore, liveEntries } from "../src/storage/discoveryBucket.js";
import { silentLogger } from "../src/util/logger.js";
import { discoveryBucket, EndpointIndex, endpointKey, FENCE_KEY, parseEndpointKey } from "../src/views/discovery.js";
import { startCluster, type TestCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { RoostProcess, roost } from "./support/roost.js";
import { testSpec } from "./support/specs.js";

const STREAM = "DISC";
const SERVICE = resolve("test/fixtures/service.mjs");
const BUCKET = discoveryBucket(STREAM);
const JOB = "www-data/devel/web";

const nats = withNats();
let c: TestCluster;
let log: JetStreamLog;
let intake: IntakeSource;
let store: KvEndpointStore;
let client: RoostClient;
let nc: NatsConnection;
let dir: string;
const warnings: string[] = [];
const stop = new AbortController();
let watch: Watch;

/** A watch's changes as they arrive, and a way to await one. */
class Watch {
  readonly changes: EndpointChange[] = [];
  private wake: (() => void) | null = null;
  private error: unknown = null;

  constructor(iterable: AsyncIterable<EndpointChange>) {
    void (async () => {
      try {
        for await (const ch of iterable) {
          this.changes.push(ch);
          this.wake?.();
        }
      } catch (err) {
        this.error = err;
        this.wake?.();
      }
    })();
  }

  /** Resolves once some change from `from` on satisfies `pred`; returns its index. */
  async until(pred: (ch: EndpointChange) => boolean, what: string, from = 0, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.error) throw this.error;
      const i = this.changes.findIndex((ch, j) => j >= from && pred(ch));
      if (i >= 0) return i;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${what}; changes so far: ${JSON.stringify(this.changes)}; the job's tasks: ${tasksNow()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
  }
}

/**
 * The job's tasks as the scheduler has them, with each one's last reason: a timeout says where an
 * instance stood (a CI run once saw instance 0, then 2, never announced, with nothing else to go on).
 */
function tasksNow(): string {
  const status = c ? jobStatus(c.scheduler.state, JOB) : null;
  return (status?.instances ?? []).map((i) => `${i.instance} ${i.taskId} ${i.state}${i.reason ? ` (${i.reason})` : ""}`).join("; ");
}

const put = (instance: number) => (ch: EndpointChange) => ch.op === "put" && ch.instance === instance;
const del = (instance: number) => (ch: EndpointChange) => ch.op === "delete" && ch.instance === instance;

/** What the fold of the log so far says the job's keys went through, in order: "put 0 <task>", "delete 1". */
async function changesInTheLog(job: string): Promise<string[]> {
  const state = new ClusterState();
  const index = new EndpointIndex();
  index.reset(state);
  const out: string[] = [];
  for await (const r of log.read(1)) {
    foldRecord(state, r.seq, r.events);
    for (const key of index.update(state, r.events)) {
      const k = parseEndpointKey(key)!;
      if (k.job !== job) continue;
      const v = index.get(key);
      out.push(v === undefined ? `delete ${k.instance}` : `put ${k.instance} ${(JSON.parse(v) as { taskId: string }).taskId}`);
    }
  }
  return out;
}

const asLines = (changes: EndpointChange[]) =>
  changes.map((ch) => (ch.op === "put" ? `put ${ch.instance} ${ch.endpoint.taskId}` : `delete ${ch.instance}`));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-discovery-"));
  log = await nats.openLog(STREAM);
  const bus = await NatsBus.connect(nats.url, "discovery-scheduler");
  intake = await openIntake(bus.nc, { stream: `${STREAM}_INTAKE`, ackWaitMs: 2000 });
  store = await KvEndpointStore.open(bus.nc, { bucket: BUCKET });
  // A failed instance's replacement serves a long flap penalty: the count stays at 2 while we look.
  c = await startCluster({ agents: 3, bus, log, intake, discovery: store, policy: { throttleInitialMs: 120_000, throttleMaxMs: 120_000 } });
  client = await RoostClient.connect({ nats: nats.url, stream: STREAM, timeoutMs: 15_000 });
  nc = await connect({ servers: nats.url, name: "discovery-test-by-hand" });
  watch = new Watch(client.discover(JOB, { watch: true, signal: stop.signal, onWarning: (m) => warnings.push(m) }));
}, 60_000);

afterAll(async () => {
  stop.abort();
  await client?.close();
  await nc?.close();
  await c?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("service discovery", () => {
  it("shows 3 endpoints for 3 healthy instances and 2 after one fails; the watch gets every change in the fold's order", async () => {
    // Each instance is an HTTP service with a health check (RUNNING, so announced, only once it
    // passes); its /health turns "bad" once its file appears: it stops being healthy, and the
    // agent ends it FAILED.
    const spec = testSpec("web", {
      instances: 3,
      service: true,
      resources: { cpus: 0.1, ramMb: 128, diskMb: 16, ports: ["http", "health"] },
      processes: [{ name: "main", cmdline: `BAD_FILE=${dir}/fail-$ROOST_INSTANCE exec ${process.execPath} ${SERVICE}` }],
      // A grace of 10 s to start listening (50 forgiven checks): on a loaded CI machine a Node
      // service once took longer than the 0.4 s a 0.2 s grace gives, and two of three instances
      // failed fast before they were ever announced. Once RUNNING there is no grace left, so the
      // instance made to fail still fails at its first bad check.
      healthCheck: { initialIntervalSecs: 10, intervalSecs: 0.2 },
    });
    const created = await client.createJob({ spec, user: "svc" });
    for (const i of [0, 1, 2]) await watch.until(put(i), `instance ${i} announced`);

    const three = await client.discover(JOB);
    expect(three.job).toBe(JOB);
    expect(three.endpoints.map((e) => e.instance)).toEqual([0, 1, 2]);
    for (const e of three.endpoints) {
      const t = c.scheduler.state.tasks.get(created.taskIds[e.instance]! as never)!;
      expect(t.state).toBe("RUNNING");
      expect(e).toEqual({ instance: e.instance, host: t.host, ports: t.ports, taskId: t.taskId });
      expect(Object.keys(e.ports).sort()).toEqual(["health", "http"]);
      expect(c.scheduler.state.tasks.get(t.taskId)!.lastReason).toMatch(/healthy after/);
    }

    const before = watch.changes.length;
    writeFileSync(join(dir, "fail-1"), "");
    await watch.until(del(1), "instance 1 withdrawn", before);
    const two = await client.discover(JOB);
    expect(two.endpoints.map((e) => e.instance)).toEqual([0, 2]);
    const failed = c.scheduler.state.tasks.get(created.taskIds[1]! as never)!;
    expect(failed.state).toBe("FAILED");
    expect(failed.lastReason).toContain('unhealthy: expected "ok", got "bad"');

    // The watch saw what the fold did, change for change (no key changed twice faster than a write).
    expect(asLines(watch.changes)).toEqual(await changesInTheLog(JOB));
    expect(asLines(watch.changes).slice(0, 3).sort()).toEqual(created.taskIds.map((t, i) => `put ${i} ${t}`));
    expect(warnings).toEqual([]);
  }, 60_000);

  it("roost discover prints the endpoints, as lines or JSON; a job without endpoints is an answer; a bad key is refused", async () => {
    const base = ["--nats", nats.url, "--stream", STREAM];
    const text = await roost(["discover", JOB, ...base], dir);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    const e0 = (await client.discover(JOB)).endpoints[0]!;
    expect(lines[0]).toBe(`0 ${e0.host} health=${e0.ports.health} http=${e0.ports.http} task=${e0.taskId}`);
    expect(lines[1]).toMatch(/^2 host-\d health=\d+ http=\d+ task=www-data-devel-web-2-/);

    const json = await roost(["discover", JOB, ...base, "--json"], dir);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await client.discover(JOB));

    const none = await roost(["discover", "www-data/devel/nothing", ...base], dir);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout.trim()).toBe("no endpoints for www-data/devel/nothing: no instance is RUNNING with a port");

    const bad = await roost(["discover", "www-data/web", ...base], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/a job key must be ROLE\/ENV\/NAME/);

    const w = new RoostProcess(["discover", JOB, ...base, "--watch", "--json"], dir);
    // The current endpoints come in the order they were announced (health checks decide it).
    await w.until(() => w.output.includes('"instance":0') && w.output.includes('"instance":2'), "the watch to print the current endpoints");
    expect(w.output.split("\n").map((l) => (JSON.parse(l) as EndpointChange).op)).toEqual(["put", "put"]);
    expect(await w.stop("SIGINT")).toBe(0);
  }, 60_000);

  it("client.discover refuses a malformed job key naming the field and the rule, and finds nothing where no bucket is", async () => {
    const err = await client.discover("web").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RoostError);
    expect(err).toMatchObject({ code: "INVALID_REQUEST", field: "job" });
    expect((err as Error).message).toMatch(
      /^invalid discover request \(1 problem\): job: must be a job key ROLE\/ENV\/NAME .*\(got "web"\)/,
    );
    expect(() => client.discover("a/b\u0000/c", { watch: true })).toThrow(/job: must be a job key/);
    await expect(client.discover(JOB, { watch: "yes" as never })).rejects.toThrow(/watch: must be true or false/);
    // A log whose leader never announced anything has no bucket yet: no endpoints; a watch says why it cannot.
    const other = await RoostClient.connect({ nats: nats.url, stream: "NOPE", timeoutMs: 5000 });
    try {
      expect(await other.discover(JOB)).toEqual({ job: JOB, endpoints: [] });
      await expect(other.discover(JOB, { watch: true })[Symbol.asyncIterator]().next()).rejects.toThrow(
        /the discovery bucket NOPE_DISCOVERY does not exist yet/,
      );
    } finally {
      await other.close();
    }
  });

  it("skips garbage in the bucket with a warning; a new leader reconciles the bucket with its fold (stale, missing, garbage)", async () => {
    const kv = await new Kvm(nc).open(BUCKET);
    const k0 = endpointKey(JOB, 0);
    const stale = endpointKey(JOB, 7);
    const garbage = endpointKey(JOB, 8);
    const foreign = "not.an.endpoint";

    // The leader steps down; while none leads, someone writes into the bucket by hand.
    const old = c.scheduler;
    await old.stop();
    const from = watch.changes.length;
    await kv.put(stale, JSON.stringify({ host: "gone", ports: { http: 1 }, taskId: "www-data-devel-web-7-stale" }));
    await kv.put(garbage, "this is no endpoint");
    await kv.put(foreign, "x");
    await kv.delete(k0);
    await watch.until(put(7), "the stale key", from);
    await watch.until(del(0), "the deleted key", from);
    expect(warnings.join("\n")).toMatch(
      /skipped the value of "www-data\.devel\.web\.8" in the discovery bucket: \(message\): must be JSON/,
    );
    const tampered = await client.discover(JOB, { onWarning: () => {} });
    expect(tampered.endpoints.map((e) => e.instance)).toEqual([2, 7]);

    // A new leader: it folds the log and makes the bucket say what its fold says.
    const next = new Scheduler({ log, bus: c.bus, schedulerId: "sched-next", retryMs: 100, intake, discovery: store, policy: old.policy });
    c.scheduler = next; // stopped with the cluster
    await next.start();
    {
      await watch.until(put(0), "instance 0 announced again", from);
      await watch.until(del(7), "the stale key withdrawn", from);
      await vi.waitFor(
        async () => expect([...(await liveEntries(nc, BUCKET)).keys()].sort()).toEqual([FENCE_KEY, k0, endpointKey(JOB, 2)]),
        {
          timeout: 10_000,
        },
      );
      const fence = JSON.parse(new TextDecoder().decode((await liveEntries(nc, BUCKET)).get(FENCE_KEY)!)) as { epoch: number };
      expect(fence).toMatchObject({ epoch: next.epoch, schedulerId: "sched-next" });
      expect(next.epoch).toBeGreaterThan(old.epoch);
      expect((await client.discover(JOB)).endpoints.map((e) => e.instance)).toEqual([0, 2]);
      expect(next.announcer!.counts).toMatchObject({ reconciles: 1, failures: 0 });

      // A leader deposed by this one writes nothing more: it reads the newer fence and stops.
      const deposed = new Announcer(
        {
          state: new ClusterState(),
          clock: systemClock,
          log: silentLogger,
          leading: () => true,
          epoch: old.epoch,
          schedulerId: "old",
          retryMs: 50,
        },
        store,
        wantedOf(new Map([[endpointKey(JOB, 5), '{"host":"h","ports":{"p":1},"taskId":"t"}']])),
      );
      const seqBefore = await store.lastSeq();
      deposed.send({ type: "reconcile" });
      await vi.waitFor(() => expect(deposed.isDeposed).toBe(true), { timeout: 10_000 });
      expect(await store.lastSeq()).toBe(seqBefore);
      expect(deposed.counts).toMatchObject({ puts: 0, deletes: 0 });
      deposed.stop();
      // The new leader keeps following its fold: a kill withdraws instance 2.
      await waitFor(next, (s) => [...s.agents.values()].every((a) => a.state === "ACTIVE"), "agents back");
      const mark = watch.changes.length;
      await client.killJob({ job: JOB, instances: [2] });
      await watch.until(del(2), "instance 2 withdrawn after its kill", mark);
    }
  }, 60_000);
});

function wantedOf(m: Map<string, string>) {
  return {
    get: (k: string) => m.get(k),
    keys: () => m.keys(),
    get size() {
      return m.size;
    },
  };
}

describe("fencing: a leader that does not know it was deposed", () => {
  it("has its next write refused once a newer term reconciled, and then stops writing", async () => {
    const bucket = "FENCING_DISCOVERY";
    const s = await KvEndpointStore.open(nc, { bucket });
    const deps = (epoch: number) => ({
      state: new ClusterState(),
      clock: systemClock,
      log: silentLogger,
      leading: () => true,
      epoch,
      schedulerId: `s${epoch}`,
      retryMs: 50,
    });
    const oldWanted = new Map([["r.e.n.0", '{"host":"a","ports":{"p":1},"taskId":"old"}']]);
    const older = new Announcer(deps(5), s, wantedOf(oldWanted));
    older.send({ type: "reconcile" });
    await vi.waitFor(() => expect(older.counts.reconciles).toBe(1), { timeout: 10_000 });
    await vi.waitFor(() => expect(older.busy).toBe(false));

    const newer = new Announcer(deps(6), s, wantedOf(new Map([["r.e.n.1", '{"host":"b","ports":{"p":2},"taskId":"new"}']])));
    newer.send({ type: "reconcile" });
    await vi.waitFor(() => expect(newer.counts.reconciles).toBe(1), { timeout: 10_000 });
    const after = await liveEntries(nc, bucket);
    expect([...after.keys()].sort()).toEqual([FENCE_KEY, "r.e.n.1"]);

    // The older term's fold moves on and it writes: refused (fenced), it reconciles, sees epoch 6, stops.
    oldWanted.set("r.e.n.2", '{"host":"a","ports":{"p":3},"taskId":"old2"}');
    older.send({ type: "changed", keys: ["r.e.n.2"] });
    await vi.waitFor(() => expect(older.isDeposed).toBe(true), { timeout: 10_000 });
    expect(older.counts.failures).toBeGreaterThanOrEqual(1);
    expect(await liveEntries(nc, bucket)).toEqual(after);
    older.stop();
    newer.stop();
  }, 30_000);
});

describe("on a secured cell", () => {
  let server: NatsServerHandle;
  let sdir: string;
  let asScheduler: NatsConnection;
  const credsOf = (name: string) => join(sdir, `${name}.json`);

  beforeAll(async () => {
    sdir = mkdtempSync(join(tmpdir(), "roost-discovery-secure-"));
    const ids: Identity[] = [
      { kind: "scheduler", name: "scheduler", password: "sched-pass-0123456789" },
      { kind: "admin", name: "admin", password: "admin-pass-0123456789" },
      { kind: "role", name: "www-data", password: "www-pass-0123456789" },
      { kind: "agent", name: "agent-1", password: "agent-pass-0123456789" },
    ];
    for (const id of ids) writeFileSync(credsOf(id.name), JSON.stringify({ user: id.name, pass: id.password }), { mode: 0o600 });
    server = await startNatsServer({ extraConf: authorizationConf(ids, "roost.events") });
    asScheduler = await connect({ servers: server.url, user: "scheduler", pass: "sched-pass-0123456789" });
    // The scheduler may write the bucket: create it and announce one endpoint (and garbage, by hand).
    const s = await KvEndpointStore.open(asScheduler, { bucket: "ROOST_DISCOVERY" });
    const last = await s.lastSeq();
    const r = await s.write(
      [
        { key: endpointKey(JOB, 0), value: '{"host":"h1","ports":{"http":31000},"taskId":"www-data-devel-web-0-a"}' },
        { key: endpointKey(JOB, 1), value: '{"host":"h1","ports":{"http":"31001"},"taskId":"www-data-devel-web-1-a"}' },
      ],
      last,
    );
    expect(r.every((x) => x.ok)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await asScheduler?.close();
    await server?.stop();
    rmSync(sdir, { recursive: true, force: true });
  });

  it("a role reads the endpoints (garbage skipped with a warning) with no leader up, and can neither put, delete nor purge", async () => {
    const seen: string[] = [];
    const role = await RoostClient.connect({ nats: server.url, creds: credsOf("www-data"), timeoutMs: 5000 });
    try {
      const r = await role.discover(JOB, { onWarning: (m) => seen.push(m) });
      expect(r.endpoints).toEqual([{ instance: 0, host: "h1", ports: { http: 31000 }, taskId: "www-data-devel-web-0-a" }]);
      expect(seen.join("\n")).toMatch(/skipped the value of "www-data\.devel\.web\.1".*ports\.http: must be a port/);
      // The reader deleted its consumer (else it lingers 5 minutes on the server).
      expect((await (await jetstreamManager(asScheduler)).streams.info("KV_ROOST_DISCOVERY")).state.consumer_count).toBe(0);
      // The watch too: its current set, then stop.
      const ac = new AbortController();
      const w = new Watch(role.discover(JOB, { watch: true, signal: ac.signal, onWarning: () => {} }));
      await w.until(put(0), "the role's watch");
      ac.abort();
    } finally {
      await role.close();
    }

    const www = await connect({ servers: server.url, user: "www-data", pass: "www-pass-0123456789" });
    try {
      const js = jetstream(www, { timeout: 3000 });
      await expect(js.publish(`$KV.ROOST_DISCOVERY.${endpointKey(JOB, 0)}`, "{}")).rejects.toThrow(/permissions violation/i);
      await expect((await new Kvm(www).open("ROOST_DISCOVERY")).put(endpointKey(JOB, 3), "{}")).rejects.toThrow(/permissions violation/i);
      await expect((await new Kvm(www).open("ROOST_DISCOVERY")).delete(endpointKey(JOB, 0))).rejects.toThrow(/permissions violation/i);
      const jsm = await jetstreamManager(www, { checkAPI: false, timeout: 3000 });
      await expect(jsm.streams.purge("KV_ROOST_DISCOVERY")).rejects.toThrow(/permissions violation/i);
      await expect(jsm.streams.delete("KV_ROOST_DISCOVERY")).rejects.toThrow(/permissions violation/i);
      await expect(jsm.streams.info("KV_OTHER")).rejects.toThrow(/permissions violation/i);
    } finally {
      await www.close();
    }
    // Nothing changed.
    const live = await liveEntries(asScheduler, "ROOST_DISCOVERY");
    expect([...live.keys()].sort()).toEqual([endpointKey(JOB, 0), endpointKey(JOB, 1)]);

    // An agent may not read it; the admin may read but not write.
    const agent = await RoostClient.connect({ nats: server.url, creds: credsOf("agent-1"), timeoutMs: 3000 });
    try {
      await expect(agent.discover(JOB)).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
    } finally {
      await agent.close();
    }
    const admin = await RoostClient.connect({ nats: server.url, creds: credsOf("admin"), timeoutMs: 5000 });
    try {
      expect((await admin.discover(JOB, { onWarning: () => {} })).endpoints).toHaveLength(1);
      const js = jetstream((admin.transport as unknown as { nc: NatsConnection }).nc, { timeout: 3000 });
      await expect(js.publish(`$KV.ROOST_DISCOVERY.${endpointKey(JOB, 0)}`, "{}")).rejects.toThrow(/permissions violation/i);
    } finally {
      await admin.close();
    }
  }, 60_000);
});
