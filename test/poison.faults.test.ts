// Hostile input against a real cell (3 nats-servers, 2 `roost scheduler` replicas, an agent, as
// child processes: test/support/haCluster.ts). Found by a tester, each bricked the cell for good:
// a status update with state "BOGUS" was appended and the fold threw on every replica and in
// every CLI read; one `nats pub roost.events hello` made every takeover retry forever.
//
// Here: garbage on every agent subject gets an error reply (or nothing, for a publish) and the
// log does not grow; foreign records published straight onto the log's subject become anomalies
// that every replica folds past, a restarted replica cold-starts past, `roost cluster status`
// lists and `roost log tail` marks; and a new job still runs.

import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pack, unpack } from "../src/eventlog/envelope.js";
import type { ClusterStatus } from "../src/cli/cluster.js";
import { HaCell, type LogEvent } from "./support/haCluster.js";
import { testSpec } from "./support/specs.js";

let cell: HaCell;
let nc: NatsConnection;

beforeAll(async () => {
  cell = await HaCell.start({
    schedulers: 2,
    agents: 1,
    policy: { agentTimeoutMs: 3000, reconcileWindowMs: 2000 },
    leaseMs: 2000,
    prefix: "roost-poison-",
  });
  nc = await connect({ servers: cell.nats.urls });
}, 120_000);

afterAll(async () => {
  await nc?.close();
  if (!cell) return;
  expect(await cell.stop()).toEqual({ daemons: [], natsServers: [], taskProcesses: [] });
}, 120_000);

const spec = (name: string) =>
  testSpec(name, {
    service: true,
    resources: { cpus: 0.01, ramMb: 1, diskMb: 1 },
    processes: [{ name: "main", cmdline: "exec sleep 100000" }],
  });

async function lastSeq(): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info("ROOST")).state.last_seq;
}

async function createAndRun(name: string): Promise<string> {
  const file = cell.spec(name, spec(name));
  const deadline = Date.now() + 60_000;
  let r = await cell.roost(["job", "create", file, "--json"]);
  // A leader change may be under way (a foreign write fences the leader): retry until one takes it.
  while (r.code !== 0 && !/already exists/.test(r.stderr) && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 500));
    r = await cell.roost(["job", "create", file, "--json"]);
  }
  const status = await cell.roostJson<{ instances: Array<{ taskId: string }> }>(["job", "status", `www-data/devel/${name}`]);
  const taskId = status.instances[0]!.taskId;
  await cell.tail!.until(
    (e: LogEvent) => e.type === "TaskStateChanged" && e.data.taskId === taskId && e.data.to === "RUNNING",
    `${taskId} RUNNING`,
    60_000,
  );
  return taskId;
}

describe("hostile input against a real cell", () => {
  let running: string;

  it("a status update with a state no agent reports gets an error reply, and the log does not grow", async () => {
    running = await createAndRun("victim");
    const before = await lastSeq();
    const ask = async (subject: string, data: Uint8Array) =>
      unpack<{ ok: boolean; error?: string }>((await nc.request(subject, data, { timeout: 5000 })).data);
    const bogus = await ask(
      "roost.agent.agent-1.status",
      pack({ agentId: "agent-1", update: { taskId: running, seq: 1_000_000, state: "BOGUS", ts: Date.now() } }),
    );
    expect(bogus.ok).toBe(false);
    expect(bogus.error).toMatch(/^invalid status update: update\.state: must be a state an agent reports/);
    expect((await ask("roost.agent.agent-1.status", new TextEncoder().encode("hello"))).ok).toBe(false);
    // A status report for agent-1 sent on another agent's subject is refused before it is read.
    const misbound = await ask(
      "roost.agent.agent-2.status",
      pack({ agentId: "agent-1", update: { taskId: running, seq: 1_000_001, state: "FAILED", ts: Date.now() } }),
    );
    expect(misbound).toMatchObject({ ok: false, error: expect.stringMatching(/^agentId: "agent-1" is not the agent of subject/) });
    const reg = await ask("roost.agent.agent-1.register", pack({ agentId: "agent-1", host: 7, resources: { cpus: -1 } }));
    expect(reg.ok).toBe(false);
    expect(reg.error).toMatch(/^invalid registration: .*host/);
    nc.publish("roost.agent.agent-1.heartbeat", new TextEncoder().encode("\u0000garbage"));
    nc.publish("roost.agent.x.heartbeat", pack({ agentId: "not a registered agent", ts: "now" }));
    const api = unpack<{ ok: boolean; error?: { code: string; message: string } }>(
      (await nc.request("roost.api.v1.www-data.job.create", pack({ spec: { role: ".." }, user: "\u0007" }), { timeout: 5000 })).data,
    );
    expect(api.ok).toBe(false);
    expect(api.error?.code).toBe("INVALID_REQUEST");
    expect(api.error?.message).not.toMatch(/internal error/);
    await nc.flush();
    expect(await lastSeq()).toBe(before);
  }, 90_000);

  it("foreign records on the log's subject: every replica folds past them, they are listed and marked, and a new job runs", async () => {
    const js = jetstream(nc);
    const foreign = [
      new TextEncoder().encode("hello"), // `nats pub roost.events hello`
      pack([["TaskStateChanged", 1, 99, Date.now(), "x", "a bogus event", { taskId: running, to: "BOGUS" }]]),
      pack([["TaskStateChanged", 1, 99, Date.now(), "x", "an event about nobody", { taskId: "no-such-task", to: "RUNNING" }]]),
    ];
    const seqs: number[] = [];
    for (const f of foreign) seqs.push((await js.publish("roost.events", f)).seq);

    // The leader's next append is fenced by these records (another writer): a leader, maybe
    // another, folds them as anomalies and goes on. Every replica stays up and catches up.
    const status = await cell.waitStatus(
      (s) => s.leader !== null && s.log !== null && s.schedulers.filter((m) => m.appliedSeq >= seqs[2]! && m.seenMsAgo < 2500).length === 2,
      "both replicas past the foreign records, with a leader",
      60_000,
    );
    expect([...cell.schedulers.values()].every((d) => d.running)).toBe(true);
    const anomalies = (status as ClusterStatus & { anomalies: Array<{ seq: number; index: number; type: string; why: string }> }).anomalies;
    expect(anomalies.map((a) => [a.seq, a.index, a.type])).toEqual([
      [seqs[0], 0, "(unreadable)"],
      [seqs[1], 0, "TaskStateChanged"],
      [seqs[2], 0, "TaskStateChanged"],
    ]);
    expect(anomalies[1]!.why).toMatch(/data\.to: must be one of/);
    expect(anomalies[2]!.why).toBe("unknown task no-such-task");

    // Reads work: job status (from the leader), the log itself with each anomaly marked.
    const job = await cell.roostJson<{ instances: Array<{ state: string }> }>(["job", "status", "www-data/devel/victim"]);
    expect(job.instances[0]!.state).toBe("RUNNING");
    const tail = await cell.roost(["log", "tail"]);
    expect(tail.code).toBe(0);
    for (const s of seqs) expect(tail.stdout).toMatch(new RegExp(`^${s}\\.0 .*!! ANOMALY`, "m"));

    // A replica started cold now folds past them too.
    const standby = status.schedulers.find((m) => m.role !== "leader")!.id;
    await cell.schedulers.get(standby)!.stop();
    await cell.restart(standby);
    await cell.healthy(60_000);

    // And the cell still schedules.
    await createAndRun("after-poison");
  }, 180_000);
});
