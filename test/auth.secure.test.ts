// Authentication and authorization against a real secured cell: `roost dev --secure` (a nats-server
// with a user per identity, natsServer/auth.ts; a scheduler and agents as children, each with its
// own credentials). One case per kind of denial the front door must make. Before this, the bus was
// open: any client could act for any role, report status as any agent, publish onto the log's
// subject, or announce itself on roost.leader with a huge epoch and send every agent into a
// registration loop.
//
// Each denial is checked where it happens (the server refuses the publish: the client sees a
// permissions violation; the scheduler refuses what slipped past: its error names the rule) and
// by its effect: the log does not grow, the leader and its epoch stay, the agents stay ACTIVE.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pack, unpack } from "../src/eventlog/envelope.js";
import { RoostProcess, roost, roostJson } from "./support/roost.js";

let dir: string;
let dev: RoostProcess;
let natsUrl: string;
let httpUrl: string;
const conns: NatsConnection[] = [];

const JOB = (role: string, name: string) => `
role: ${role}
environment: devel
name: ${name}
service: true
resources: { cpus: 0.1, ramMb: 16, diskMb: 16 }
processes: [{ name: main, cmdline: "sleep 600" }]
`;

const credsFile = (name: string) => join(dir, ".roost", "creds", `${name}.json`);
const creds = (name: string) => JSON.parse(readFileSync(credsFile(name), "utf8")) as { user: string; pass: string };

async function as(name: string): Promise<NatsConnection> {
  const c = creds(name);
  const nc = await connect({ servers: natsUrl, user: c.user, pass: c.pass, name: `auth-test-${name}` });
  conns.push(nc);
  return nc;
}

type Info = {
  schedulerId: string;
  epoch: number;
  seq: number;
  agents: Array<{ agentId: string; state: string }>;
  intake?: { refused: number };
};
/** The leader's cluster.info, asked as the admin. */
async function info(): Promise<Info> {
  const r = unpack<{ ok: boolean; value: Info }>(
    (await (await adminConn()).request("roost.api.v1.cluster.info", pack({}), { timeout: 5000 })).data,
  );
  expect(r.ok).toBe(true);
  return r.value;
}
let admin: NatsConnection | null = null;
async function adminConn(): Promise<NatsConnection> {
  admin ??= await as("admin");
  return admin;
}
/** The log's last sequence, from its stream (what was appended, folded or not). */
const lastSeq = async () => (await roostJson<{ log: { lastSeq: number } }>(["cluster", "status"], dir)).log.lastSeq;

/** A request the server must refuse: the client's promise rejects with a permissions violation. */
async function refusedByServer(nc: NatsConnection, subject: string, body: unknown): Promise<void> {
  await expect(nc.request(subject, pack(body), { timeout: 3000 })).rejects.toThrow(/permissions violation/i);
}

/** Publish on a subject the server must refuse, and see the violation come back as a status. */
async function publishRefused(nc: NatsConnection, subject: string, body: unknown): Promise<void> {
  const seen = (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && /permissions violation/i.test(String((s as { error?: Error }).error?.message ?? ""))) return;
    }
  })();
  nc.publish(subject, pack(body));
  await nc.flush();
  await seen;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roost-secure-"));
  writeFileSync(join(dir, "web.yaml"), JOB("www-data", "web"));
  writeFileSync(join(dir, "etl.yaml"), JOB("analytics", "etl"));
  dev = new RoostProcess(["dev", "--secure", "--agents", "2", "--roles", "www-data,analytics", "--json"], dir);
  await dev.until((l) => l.includes("clusterFile"), "the secure dev cluster to be ready", 90_000);
  const file = JSON.parse(readFileSync(join(dir, ".roost", "cluster.json"), "utf8")) as { nats: string; http: string; creds: string };
  natsUrl = file.nats;
  httpUrl = file.http;
  expect(file.creds).toBe(credsFile("admin"));
  // Each role runs a job, with its own credentials.
  for (const [role, f] of [
    ["www-data", "web.yaml"],
    ["analytics", "etl.yaml"],
  ] as const) {
    const r = await roost(["job", "create", f, "--creds", credsFile(role), "--json"], dir);
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(conns.map((c) => c.close()));
  expect(await dev?.stop("SIGINT")).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("roost dev --secure", () => {
  it("writes one credentials file per identity, readable by its owner only, and refuses a client without one", async () => {
    const names = readdirSync(join(dir, ".roost", "creds")).sort();
    expect(names).toEqual([
      "admin.json",
      "agent-1.json",
      "agent-2.json",
      "analytics.json",
      "gateway.json",
      "scheduler.json",
      "www-data.json",
    ]);
    for (const n of names)
      expect(readFileSync(join(dir, ".roost", "creds", n), "utf8")).toMatch(/^\{"user":"[^"]+","pass":"[^"]{20,}"\}\n$/);
    await expect(connect({ servers: natsUrl, name: "anonymous" })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: natsUrl, user: "www-data", pass: "guess" })).rejects.toThrow(/authorization/i);
    const r = await roost(["job", "list", "--nats", natsUrl, "--timeout", "3"], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused a client without credentials: Authorization Violation; give --creds FILE or ROOST_CREDS/);
  });

  it("role A acting on role B's job: refused by the server over NATS, by the gateway over HTTP; the job runs on", async () => {
    const before = await lastSeq();
    const kill = await roost(["job", "kill", "analytics/devel/etl", "--creds", credsFile("www-data"), "--timeout", "5"], dir);
    expect(kill.code).toBe(1);
    expect(kill.stderr).toMatch(
      /PERMISSION_DENIED: nats-server refused user "www-data" to publish to roost\.(intake|api)\.v1\.analytics\.job\.kill/,
    );
    const www = await as("www-data");
    await refusedByServer(www, "roost.api.v1.analytics.job.status", { job: "analytics/devel/etl" });
    // The scheduler's own check: a request on www-data's subject about analytics' job.
    const own = unpack<{ ok: boolean; error?: { code: string; message: string } }>(
      (await www.request("roost.api.v1.www-data.job.kill", pack({ job: "analytics/devel/etl" }), { timeout: 5000 })).data,
    );
    expect(own).toMatchObject({ ok: false, error: { code: "PERMISSION_DENIED" } });
    expect(own.error!.message).toMatch(/analytics/);
    // Over HTTP: www-data's bearer token on analytics' job.
    const tokens = JSON.parse(readFileSync(join(dir, ".roost", "gateway-tokens.json"), "utf8")) as {
      tokens: Array<{ token: string; name: string }>;
    };
    const wwwToken = tokens.tokens.find((t) => t.name === "www-data")!.token;
    const res = await fetch(`${httpUrl}/v1/jobs/analytics/devel/etl`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${wwwToken}` },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("PERMISSION_DENIED");
    expect((await fetch(`${httpUrl}/v1/jobs/analytics/devel/etl`, { method: "DELETE" })).status).toBe(401);
    expect(await lastSeq()).toBe(before);
    const s = await roostJson<{ instances: Array<{ state: string }> }>(["job", "status", "analytics/devel/etl"], dir);
    expect(s.instances.every((i) => i.state !== "KILLED" && i.state !== "KILLING")).toBe(true);
  }, 60_000);

  it("a non-admin setting quota: refused; the admin may", async () => {
    const before = await lastSeq();
    const r = await roost(
      ["quota", "set", "www-data", "--cpus", "100", "--ram-mb", "1000", "--disk-mb", "1000", "--creds", credsFile("www-data")],
      dir,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /PERMISSION_DENIED: nats-server refused user "www-data" to publish to roost\.(intake|api)\.v1\.admin\.quota\.set/,
    );
    await refusedByServer(await as("analytics"), "roost.api.v1.admin.quota.set", {
      role: "analytics",
      quota: { cpus: 1, ramMb: 1, diskMb: 1 },
    });
    expect(await lastSeq()).toBe(before);
    const ok = await roost(["quota", "set", "www-data", "--cpus", "100", "--ram-mb", "1000", "--disk-mb", "1000", "--json"], dir);
    expect(ok.code, ok.stderr).toBe(0);
  }, 30_000);

  it("a client publishing onto the log's subject: refused by the server (even the admin); the log is unchanged", async () => {
    const before = await lastSeq();
    for (const who of ["www-data", "admin", "agent-1", "gateway"]) {
      const nc = await as(who);
      await publishRefused(nc, "roost.events", { forged: who });
      await expect(jetstream(nc).publish("roost.events", pack({ forged: who }), { timeout: 2000 })).rejects.toThrow(
        /permissions violation/i,
      );
    }
    expect(await lastSeq()).toBe(before);
  }, 30_000);

  it("a client posing as an agent: refused on another agent's subjects, and the scheduler refuses a body naming another agent", async () => {
    const before = await lastSeq();
    const update = { agentId: "agent-1", update: { taskId: "www-data-devel-web-0-x", seq: 99, state: "FAILED", ts: 1 } };
    await refusedByServer(await as("www-data"), "roost.agent.agent-1.status", update);
    const agent2 = await as("agent-2");
    await refusedByServer(agent2, "roost.agent.agent-1.status", update);
    await refusedByServer(agent2, "roost.agent.agent-1.register", { agentId: "agent-1" });
    // Nor may it listen for another agent's launches.
    const sub = agent2.subscribe("roost.agent.agent-1.launch");
    await expect(sub.closed).resolves.toBeInstanceOf(Error);
    // On its own subject, a body naming agent-1 is refused by the scheduler.
    const own = unpack<{ ok: boolean; error?: string }>(
      (await agent2.request("roost.agent.agent-2.status", pack(update), { timeout: 5000 })).data,
    );
    expect(own.ok).toBe(false);
    expect(own.error).toMatch(/^agentId: "agent-1" is not the agent of subject roost\.agent\.agent-2\.status/);
    expect(await lastSeq()).toBe(before);
  }, 30_000);

  it("a client announcing itself as the leader: refused; the leader, its epoch and the agents stay", async () => {
    const before = await info();
    const seq = await lastSeq();
    for (const who of ["www-data", "agent-1", "admin"]) {
      await publishRefused(await as(who), "roost.leader", { schedulerId: "evil", epoch: 1e12 });
    }
    const after = await info();
    expect([after.schedulerId, after.epoch]).toEqual([before.schedulerId, before.epoch]);
    expect(after.agents.map((a) => [a.agentId, a.state])).toEqual(before.agents.map((a) => [a.agentId, a.state]));
    expect(await lastSeq()).toBe(seq);
  }, 30_000);

  it("an intake message whose msgId names another role: refused by the leader and counted; nothing is created", async () => {
    const count = async () => (await info()).intake?.refused ?? 0;
    const refusedBefore = await count();
    const seq = await lastSeq();
    const www = await as("www-data");
    const h = headers();
    const spec = {
      role: "www-data",
      environment: "devel",
      name: "sneaky",
      resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
      processes: [{ name: "m", cmdline: "true" }],
    };
    const ack = await jetstream(www).publish("roost.intake.v1.www-data.job.create", pack({ spec }), { msgID: "analytics/k-1", headers: h });
    expect(ack.duplicate).toBe(false);
    // And a role cannot publish onto another role's intake subject at all.
    await expect(
      jetstream(www).publish("roost.intake.v1.analytics.job.create", pack({ spec }), { msgID: "analytics/k-2", timeout: 2000 }),
    ).rejects.toThrow(/permissions violation/i);
    for (let i = 0; (await count()) === refusedBefore; i++) {
      expect(i, "the leader counts the refused intake message").toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await count()).toBe(refusedBefore + 1);
    expect(await lastSeq()).toBe(seq);
    const got = await roost(["job", "status", "www-data/devel/sneaky", "--json"], dir);
    expect(got.code).toBe(1);
  }, 30_000);

  it("never writes a password into a log or onto stdout", async () => {
    const secrets = readdirSync(join(dir, ".roost", "creds")).map(
      (n) => JSON.parse(readFileSync(join(dir, ".roost", "creds", n), "utf8")).pass as string,
    );
    const logs = readdirSync(join(dir, ".roost", "logs")).map((n) => readFileSync(join(dir, ".roost", "logs", n), "utf8"));
    const out = [...logs, dev.output].join("\n");
    expect(out.length).toBeGreaterThan(0);
    for (const s of secrets) expect(out.includes(s)).toBe(false);
  });
});
