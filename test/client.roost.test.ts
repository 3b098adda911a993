// The typed client, `import { RoostClient } from "roost"`, against a real nats-server and an
// in-process scheduler with its durable intake: one method per operation, the same key twice
// creates once, a write sent while no leader is up is decided once after the takeover, and
// events() pages through history and follows new events. The package's export itself is checked
// the way a service would use it: a node process importing "roost".

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scheduler } from "../src/actors/scheduler.js";
import { NatsBus } from "../src/bus/nats.js";
import { RoostClient, RoostError, type RoostEvent } from "../src/client/index.js";
import { ClientError, natsServers } from "../src/client/transport.js";
import { type IntakeSource, openIntake } from "../src/eventlog/intake.js";
import type { JetStreamLog } from "../src/eventlog/jetstream.js";
import { startCluster, type TestCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const nats = withNats();
let c: TestCluster;
let log: JetStreamLog;
let intake: IntakeSource;
let client: RoostClient;

beforeAll(async () => {
  log = await nats.openLog("ROOST");
  const bus = await NatsBus.connect(nats.url, "client-scheduler");
  intake = await openIntake(bus.nc, { stream: "ROOST_INTAKE", ackWaitMs: 2000 });
  c = await startCluster({ agents: 1, bus, log, intake });
  client = await RoostClient.connect({ nats: nats.url, timeoutMs: 15_000 });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await c?.stop();
});

describe("RoostClient", () => {
  it('is the package\'s export: a node process can import { RoostClient } from "roost"', () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const r = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'import { RoostClient, RoostError } from "roost"; console.log(typeof RoostClient.connect, typeof RoostError)',
      ],
      { cwd: root, encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("function function");
  });

  it("creates a job once for one key, and reads it back with each read method", async () => {
    const spec = testSpec("api", { instances: 2 });
    const first = await client.createJob({ spec, user: "svc" }, { key: "rc-once" });
    const again = await client.createJob({ spec, user: "svc" }, { key: "rc-once" });
    expect(again).toEqual(first);
    expect(first.taskIds).toHaveLength(2);
    expect([...c.scheduler.state.jobs.keys()].filter((j) => j === "www-data/devel/api")).toHaveLength(1);
    const status = await client.jobStatus({ job: first.job });
    expect(status.instances.map((i) => i.instance)).toEqual([0, 1]);
    expect((await client.listJobs()).map((j) => j.job)).toContain(first.job);
    expect((await client.taskHistory({ taskId: first.taskIds[0]! })).taskId).toBe(first.taskIds[0]);
    expect(await client.taskWhy({ taskId: first.taskIds[0]! })).not.toBeNull();
    expect((await client.getQuota({ role: "www-data" })).role).toBe("www-data");
    expect(await client.getRequest({ key: "rc-once" }, { role: "www-data" })).toMatchObject({ state: "done", seq: first.seq });
    expect((await client.clusterInfo()).schedulerId).toBe("sched-test");
    const added = await client.addInstances({ job: first.job, count: 1, user: "svc" });
    expect(added.instances).toEqual([2]);
  });

  it("a refusal rejects with the API's code and the field", async () => {
    const err = await client.createJob({ spec: { ...testSpec("bad"), instances: -1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RoostError);
    expect(err).toMatchObject({ code: "INVALID_REQUEST" });
    expect((err as Error).message).toMatch(/instances/);
    await expect(client.jobStatus({ job: "www-data/devel/nope" })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it.each([
    ["timeoutMs", NaN],
    ["timeoutMs", -1],
    ["timeoutMs", Infinity],
    ["timeoutMs", "3000"],
  ])("a time option no timer can honour (%s %s) is refused at once, naming the field; nothing is sent", async (field, bad) => {
    // Before: NaN per call hung with no leader up; Infinity and "3000" became 1 ms timers.
    const rule = {
      code: "INVALID_REQUEST",
      field,
      message: expect.stringMatching(/^timeoutMs must be a number of milliseconds from 1 to 2147483647 \(got /),
    };
    await expect(RoostClient.connect({ nats: nats.url, timeoutMs: bad as number })).rejects.toMatchObject(rule);
    await expect(client.listJobs({ timeoutMs: bad as number })).rejects.toMatchObject(rule);
  });

  it("a write sent while no leader is up is decided once, after the takeover", async () => {
    await c.scheduler.stop();
    const pending = client.createJob({ spec: testSpec("during-failover"), user: "svc" }, { key: "rc-failover" });
    c.scheduler = new Scheduler({ log, bus: c.bus, schedulerId: "sched-2", retryMs: 100, intake });
    await c.scheduler.start();
    const r = await pending;
    expect(r.job).toBe("www-data/devel/during-failover");
    // Sent again (as a client that gave up and retried would): the first outcome, nothing new.
    expect(await client.createJob({ spec: testSpec("during-failover"), user: "svc" }, { key: "rc-failover" })).toEqual(r);
    expect([...c.scheduler.state.jobs.keys()].filter((j) => j === r.job)).toHaveLength(1);
  }, 60_000);

  it("events(): history page by page, filtered, then new events as they are committed", async () => {
    const seen: RoostEvent[] = [];
    for await (const e of client.events({ filter: { job: "www-data/devel/api" }, pageSize: 2 })) seen.push(e);
    expect(seen[0]).toMatchObject({ type: "JobCreated", job: "www-data/devel/api", role: "www-data" });
    expect(seen.every((e) => e.job === "www-data/devel/api")).toBe(true);
    expect(seen.map((e) => `${e.seq}.${e.index}`)).toEqual([...new Set(seen.map((e) => `${e.seq}.${e.index}`))]);

    const ac = new AbortController();
    const followed: RoostEvent[] = [];
    const following = (async () => {
      for await (const e of client.events({
        from: c.scheduler.state.seq + 1,
        follow: true,
        signal: ac.signal,
        filter: { type: ["JobKillRequested"] },
      })) {
        followed.push(e);
        ac.abort();
      }
    })();
    await client.killJob({ job: "www-data/devel/api", instances: null, user: "svc" });
    await following;
    expect(followed.map((e) => [e.type, e.job])).toEqual([["JobKillRequested", "www-data/devel/api"]]);
    await waitFor(
      c.scheduler,
      (s) => [...s.tasks.values()].filter((t) => t.job === "www-data/devel/api").every((t) => t.state === "KILLED"),
      "killed",
    );
  }, 60_000);
});

describe("natsServers: the NATS URLs every client and daemon connects to", () => {
  const refused = (v: unknown): string => {
    try {
      natsServers(v as string);
    } catch (err) {
      expect(err).toBeInstanceOf(ClientError);
      expect((err as ClientError).field).toBe("nats");
      return (err as Error).message;
    }
    throw new Error(`natsServers(${JSON.stringify(v)}) was accepted`);
  };

  it("takes nats://, tls:// and HOST:PORT, several separated by commas", () => {
    expect(natsServers(" nats://a:4222, tls://b:4223 ,c:4224")).toEqual(["nats://a:4222", "tls://b:4223", "c:4224"]);
  });

  it("refuses an empty list: the NATS client would fall back to 127.0.0.1:4222, whatever listens there", () => {
    expect(refused("")).toBe('no NATS URL given (nats "")');
    expect(refused(" , ")).toBe('no NATS URL given (nats " , ")');
  });

  it("refuses what is no string, naming the field", () => {
    expect(refused(42)).toBe("nats must be a string of NATS URLs (got number)");
    expect(refused(undefined)).toBe("nats must be a string of NATS URLs (got undefined)");
  });

  it("refuses credentials in a URL, and never echoes them, even in one that does not parse", () => {
    expect(refused("nats://ops:s3cret@h:4222")).toMatch(/^nats URL "nats:\/\/\*\*\*:\*\*\*@h:4222": carries credentials/);
    for (const bad of ["ops:s3/cret@h", "nats://ops:s3cret@/x y", "ops:s3@cret@h:1:2"]) {
      const msg = refused(bad);
      expect(msg, bad).toMatch(/must be nats:\/\/HOST:PORT/);
      expect(msg, bad).not.toMatch(/s3/);
    }
  });
});
