// Exactly once across a failover, in a real cell (3 nats-servers, 2 `roost scheduler` replicas as
// child processes): 1,000 keyed creates are published on the durable intake while the leader is
// SIGKILLed partway through; exactly 1,000 jobs exist, each created once, each key decided once.
// Then 100 of the keys are published again after JetStream's duplicate window: each gets its
// original outcome and nothing is created.

import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NoResponderError } from "../src/bus/bus.js";
import { NatsBus } from "../src/bus/nats.js";
import { pack } from "../src/eventlog/envelope.js";
import { openIntake } from "../src/eventlog/intake.js";
import { apiRequest } from "./support/api.js";
import { HaCell } from "./support/haCluster.js";
import { testSpec } from "./support/specs.js";

let cell: HaCell;
let nc: NatsConnection;
let bus: NatsBus;

beforeAll(async () => {
  cell = await HaCell.start({
    schedulers: 2,
    agents: 0,
    leaseMs: 2000,
    prefix: "roost-intake-ha-",
    // The intake as the scheduler would create it, but with a short duplicate window (2 min by
    // default), so that a copy can be published past it. Created before, not updated after: on
    // nats-server 2.9.10 a stream update left the consumer blind to new messages (num_pending 0
    // with 100 in the stream) in 2 runs of 4.
    beforeSchedulers: async (nc) => void (await openIntake(nc, { stream: "ROOST_INTAKE", replicas: 3, duplicateWindowMs: 300 })),
  });
  nc = await connect({ servers: cell.nats.urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  bus = NatsBus.over(nc);
}, 120_000);

afterAll(async () => {
  await nc?.close();
  if (!cell) return;
  expect(await cell.stop()).toEqual({ daemons: [], natsServers: [], taskProcesses: [] });
}, 120_000);

const N = 1000;
const spec = (i: number) => testSpec(`keyed-${i}`, { resources: { cpus: 0.01, ramMb: 1, diskMb: 1 } });

async function publish(i: number): Promise<{ duplicate: boolean; seq: number }> {
  return jetstream(nc).publish("roost.intake.v1.www-data.job.create", pack({ spec: spec(i), user: "svc" }), {
    msgID: `www-data/key-${i}`,
    timeout: 30_000,
  });
}

type Outcome = { state: string; seq?: number; value?: { job: string; taskIds: string[]; seq: number } };

/** request.get until decided; no leader answering (the failover) is waited out. */
async function outcome(i: number, deadline: number): Promise<Outcome> {
  for (;;) {
    if (Date.now() > deadline) throw new Error(`key-${i} undecided`);
    try {
      const r = await apiRequest<Outcome>(bus, "request.get", { key: `key-${i}` }, "www-data");
      if (r.ok && r.value.state !== "pending") return r.value;
      if (!r.ok && r.error.code !== "NOT_FOUND" && r.error.code !== "UNAVAILABLE") throw new Error(r.error.message);
    } catch (err) {
      if (!(err instanceof NoResponderError)) throw err;
    }
    await new Promise((res) => setTimeout(res, 50)); // polling is request.get's contract
  }
}

describe("the intake across a failover", () => {
  it("1,000 keyed creates, the leader SIGKILLed partway: 1,000 jobs, each created once; 100 re-published after the window change nothing", async () => {
    const tail = cell.tail!;
    const old = await cell.leader();
    const mark = tail.mark();
    const acks: Array<{ duplicate: boolean }> = [];
    for (let from = 0; from < N; from += 50) {
      acks.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => publish(from + j)))));
      if (from === 250) await old.daemon.kill9(); // a quarter published: the leader dies mid-stream
    }
    expect(acks.filter((a) => a.duplicate)).toEqual([]);
    const deadline = Date.now() + 120_000;
    const outcomes: Outcome[] = [];
    for (let i = 0; i < N; i++) outcomes.push(await outcome(i, deadline));
    expect(outcomes.filter((o) => o.state !== "done")).toEqual([]);
    const next = await cell.leader(30_000, old.id);
    expect(next.id).not.toBe(old.id);

    const list = await cell.roostJson<Array<{ job: string }>>(["job", "list"]);
    expect(list.filter((j) => j.job.startsWith("www-data/devel/keyed-"))).toHaveLength(N);
    await tail.reach(Math.max(...outcomes.map((o) => o.seq!)));
    const created = tail.events.filter((e) => e.seq > 0 && e.type === "JobCreated" && e.data.job.name.startsWith("keyed-"));
    expect(created).toHaveLength(N);
    const decided = tail.events.filter((e) => e.type === "RequestDecided" && String(e.data.key).startsWith("www-data/key-"));
    expect(decided).toHaveLength(N);
    expect(new Set(decided.map((e) => e.data.key)).size).toBe(N);
    expect(tail.mark()).toBeGreaterThan(mark);

    // Past JetStream's duplicate window (300 ms here), the same msgIds again.
    const jsm = await jetstreamManager(nc);
    await new Promise((res) => setTimeout(res, 500)); // the window is time: let it pass
    const lastBefore = (await jsm.streams.info("ROOST")).state.last_seq;
    const again = await Promise.all(Array.from({ length: 100 }, (_, i) => publish(i * 10)));
    expect(again.filter((a) => a.duplicate)).toEqual([]);
    // The leader takes each copy, finds the key decided, and acknowledges it: the intake empties.
    const drainBy = Date.now() + 60_000;
    while ((await jsm.streams.info("ROOST_INTAKE")).state.messages > 0) {
      if (Date.now() > drainBy) {
        const info = await cell.roostJson<{ intake?: unknown }>(["cluster", "status"]).catch((e: Error) => e.message);
        const st = (await jsm.streams.info("ROOST_INTAKE")).state;
        const ci = await jsm.consumers.info("ROOST_INTAKE", "roost-leader").catch((e: Error) => e.message);
        throw new Error(`the intake did not drain: ${JSON.stringify({ st, ci, info }).slice(0, 3000)}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    for (let i = 0; i < 100; i++) expect(await outcome(i * 10, deadline)).toEqual(outcomes[i * 10]);
    expect((await jsm.streams.info("ROOST")).state.last_seq).toBe(lastBefore);
  }, 300_000);
});
