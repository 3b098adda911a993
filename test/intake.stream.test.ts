// The durable intake over a real nats-server: keyed requests published on
// roost.intake.v1.<role>.<op> are decided once each, including those published while no leader
// is up and those published again after JetStream's duplicate window; a msgId that names another
// role is refused and counted; a request the leader cannot read is refused as its key's outcome.

import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scheduler } from "../src/actors/scheduler.js";
import { NoResponderError } from "../src/bus/bus.js";
import { NatsBus } from "../src/bus/nats.js";
import { pack } from "../src/eventlog/envelope.js";
import { openIntake, type IntakeSource } from "../src/eventlog/intake.js";
import type { JetStreamLog } from "../src/eventlog/jetstream.js";
import { apiRequest } from "./support/api.js";
import { startCluster, type TestCluster } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const nats = withNats();
let c: TestCluster;
let client: NatsBus;
let log: JetStreamLog;
let intake: IntakeSource;
const DUP_WINDOW_MS = 300;

beforeAll(async () => {
  log = await nats.openLog("ROOST_IT");
  const bus = await NatsBus.connect(nats.url, "intake-scheduler");
  intake = await openIntake(bus.nc, { stream: "ROOST_IT_INTAKE", duplicateWindowMs: DUP_WINDOW_MS, ackWaitMs: 2000 });
  c = await startCluster({ agents: 0, bus, log, intake });
  client = await NatsBus.connect(nats.url, "intake-client");
}, 60_000);

afterAll(async () => {
  await client?.close();
  await c?.stop();
});

/**
 * Wait for an intake counter to reach `n`. Polled: a message decided from an outcome already on
 * the log, or refused, commits nothing, so no state change announces it.
 */
async function counted(read: () => number, n: number, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (read() < n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${read()} of ${n})`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Publish a request on the intake; the PubAck says whether JetStream took it as a duplicate. */
async function publish(subject: string, msgId: string, body: unknown, json = false): Promise<{ duplicate: boolean }> {
  const h = headers();
  if (json) h.set("Content-Type", "application/json");
  const data = json ? new TextEncoder().encode(JSON.stringify(body)) : pack(body);
  const ack = await jetstream(client.nc).publish(subject, data, { msgID: msgId, headers: h });
  return { duplicate: ack.duplicate };
}

type Outcome = { state: string; value?: { job: string; taskIds: string[] }; error?: { code: string; message: string } };
async function outcome(role: string, key: string): Promise<Outcome> {
  for (;;) {
    let r: Awaited<ReturnType<typeof apiRequest<Outcome>>>;
    try {
      r = await apiRequest<Outcome>(client, "request.get", { key }, role);
    } catch (err) {
      // A leader just taking over may not answer yet (or not in time under load): ask again.
      if (!(err instanceof NoResponderError)) throw err;
      await new Promise((res) => setTimeout(res, 20));
      continue;
    }
    if (r.ok && r.value.state !== "pending") return r.value;
    if (!r.ok && r.error.code !== "NOT_FOUND") throw new Error(r.error.message);
    await new Promise((res) => setTimeout(res, 20)); // polling the outcome is the client's contract
  }
}

describe("the durable intake", () => {
  it("decides each keyed create once; the events carry the key; request.get returns the outcome", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `create-${i}`);
    await Promise.all(
      keys.map((k, i) => publish("roost.intake.v1.www-data.job.create", `www-data/${k}`, { spec: testSpec(`intake-${i}`), user: "svc" })),
    );
    const outcomes = await Promise.all(keys.map((k) => outcome("www-data", k)));
    expect(outcomes.every((o) => o.state === "done")).toBe(true);
    expect(new Set(outcomes.map((o) => o.value!.job)).size).toBe(40);
    expect([...c.scheduler.state.jobs.keys()].filter((j) => j.startsWith("www-data/devel/intake-"))).toHaveLength(40);
  });

  it("the same msgId again: a duplicate inside JetStream's window, the first outcome after it; nothing runs twice", async () => {
    const body = { spec: testSpec("dup"), user: "svc" };
    expect(await publish("roost.intake.v1.www-data.job.create", "www-data/dup", body)).toEqual({ duplicate: false });
    const first = await outcome("www-data", "dup");
    expect(await publish("roost.intake.v1.www-data.job.create", "www-data/dup", body)).toEqual({ duplicate: true });
    await new Promise((res) => setTimeout(res, DUP_WINDOW_MS + 200)); // the window is time: let it pass
    expect(await publish("roost.intake.v1.www-data.job.create", "www-data/dup", body)).toEqual({ duplicate: false });
    // The leader decides the late copy from the key's outcome on the log: the same one.
    const seq = c.scheduler.state.seq;
    await counted(() => c.scheduler.term?.intakeStats?.decided ?? 0, 42, "the late copy decided");
    expect(await outcome("www-data", "dup")).toEqual(first);
    expect(c.scheduler.state.seq).toBe(seq);
    expect([...c.scheduler.state.jobs.keys()].filter((j) => j === "www-data/devel/dup")).toHaveLength(1);
  });

  it("refuses a msgId naming another role (counted, nothing decided), and records an unreadable request as refused", async () => {
    const stats = c.scheduler.term!.intakeStats!;
    const refused = stats.refused;
    await publish("roost.intake.v1.mallory.job.create", "www-data/stolen", { spec: testSpec("stolen", { role: "mallory" }) });
    await publish("roost.intake.v1.www-data.job.explode", "www-data/x", {});
    await counted(() => stats.refused, refused + 2, "two refusals");
    expect((await apiRequest(client, "request.get", { key: "stolen" }, "www-data")).ok).toBe(false);
    expect(c.scheduler.state.jobs.has("mallory/devel/stolen" as never)).toBe(false);

    await client.nc.publish("roost.intake.v1.www-data.job.kill", new Uint8Array([0x92, 0x01]), {
      headers: (() => {
        const h = headers();
        h.set("Nats-Msg-Id", "www-data/garbled");
        return h;
      })(),
    });
    const garbled = await outcome("www-data", "garbled");
    expect(garbled).toMatchObject({ state: "rejected", error: { code: "INVALID_REQUEST" } });
    expect(garbled.error!.message).toMatch(/not valid MessagePack/);
    const json = await publish("roost.intake.v1.www-data.job.kill", "www-data/nojob", { job: "www-data/devel/none" }, true);
    expect(json.duplicate).toBe(false);
    expect(await outcome("www-data", "nojob")).toMatchObject({ state: "rejected", error: { code: "NOT_FOUND" } });
  });

  it("requests published while no leader is up are decided after the takeover, each once", async () => {
    await c.scheduler.stop();
    const keys = Array.from({ length: 20 }, (_, i) => `offline-${i}`);
    for (const [i, k] of keys.entries()) {
      await publish("roost.intake.v1.www-data.job.create", `www-data/${k}`, { spec: testSpec(`offline-${i}`), user: "svc" });
    }
    c.scheduler = new Scheduler({ log, bus: c.bus, schedulerId: "sched-2", retryMs: 100, intake });
    await c.scheduler.start();
    const outcomes = await Promise.all(keys.map((k) => outcome("www-data", k)));
    expect(outcomes.map((o) => o.state)).toEqual(keys.map(() => "done"));
    expect([...c.scheduler.state.jobs.keys()].filter((j) => j.startsWith("www-data/devel/offline-"))).toHaveLength(20);
  });
});
