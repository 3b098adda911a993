// The API v1 contract, over a real nats-server: every op of the catalog (src/api/v1.ts) is called
// on its subject, as MessagePack and as JSON, and its reply is checked against the op's reply
// schema; every error code the scheduler gives has a case; and the shipped documents
// (schemas/, the README's table) are what the catalog makes now.
//
// A new op without a case here fails "every op has a case".

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonSchemaFiles, openApiDocument, withApiTable } from "../src/api/docs.js";
import { ApiErrorSchema } from "../src/api/errors.js";
import { OPS, type OpDef } from "../src/api/v1.js";
import { NatsBus } from "../src/bus/nats.js";
import { checker } from "../src/domain/validate.js";
import { pack, unpack } from "../src/eventlog/envelope.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const nats = withNats();
let c: TestCluster;
let client: NatsBus;
let taskId = "";
let updateId = "";
let windowId = "";

beforeAll(async () => {
  const log = await nats.openLog("ROOST_CONTRACT");
  c = await startCluster({ agents: 1, bus: await NatsBus.connect(nats.url, "contract-scheduler"), log });
  client = await NatsBus.connect(nats.url, "contract-client");
}, 60_000);

afterAll(async () => {
  await client?.close();
  await c?.stop();
});

type Reply = { ok: true; value: unknown } | { ok: false; error: { code: string; message: string; field?: string } };

/** A request as MessagePack (the default) or JSON (with the header), and its decoded reply. */
async function ask(subject: string, body: unknown, json = false): Promise<Reply> {
  if (!json) return unpack<Reply>((await client.nc.request(subject, pack(body), { timeout: 10_000 })).data);
  const h = headers();
  h.set("Content-Type", "application/json");
  const m = await client.nc.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000, headers: h });
  expect(m.headers?.get("Content-Type")).toBe("application/json");
  return JSON.parse(new TextDecoder().decode(m.data)) as Reply;
}

async function raw(subject: string, bytes: Uint8Array, json = false): Promise<Reply> {
  const h = headers();
  if (json) h.set("Content-Type", "application/json");
  const m = await client.nc.request(subject, bytes, { timeout: 10_000, headers: h });
  return (json ? JSON.parse(new TextDecoder().decode(m.data)) : unpack(m.data)) as Reply;
}

/** The requests' events (not the task lifecycle going on around them) appended since `from`. */
async function writesSince(from: number): Promise<string[]> {
  const out: string[] = [];
  const last = await c.log.lastSeq();
  if (last <= from) return out;
  for await (const r of c.log.read(from + 1)) {
    for (const e of r.events) if (/^(Job|Quota)/.test(e.type)) out.push(`${r.seq} ${e.type}`);
    if (r.seq >= last) break;
  }
  return out;
}

const checkError = checker(ApiErrorSchema);
function refused(r: Reply, code: string, field?: string): string {
  expect(r.ok, JSON.stringify(r)).toBe(false);
  if (r.ok) return "";
  expect(checkError(r.error)).toEqual([]);
  expect(r.error.code, r.error.message).toBe(code);
  if (field !== undefined) expect(r.error.field).toBe(field);
  expect(r.error.message).not.toMatch(/internal error/);
  return r.error.message;
}

const ROLE = "www-data";
const JOB = `${ROLE}/devel/contract`;

/** One valid request per op, in catalog order; the job is created first and killed last. */
const CASES: Record<string, { subject: string; body: () => unknown }> = {
  "role.job.create": {
    subject: `roost.api.v1.${ROLE}.job.create`,
    body: () => ({ spec: testSpec("contract", { instances: 2 }), user: "t", key: "contract-create" }),
  },
  "role.job.add": { subject: `roost.api.v1.${ROLE}.job.add`, body: () => ({ job: JOB, count: 1, user: "t" }) },
  // A coordinated update (it waits for pulses), moved through every control op, then a restart.
  "role.update.start": {
    subject: `roost.api.v1.${ROLE}.update.start`,
    body: () => ({
      job: JOB,
      spec: testSpec("contract", {
        instances: 3,
        processes: [{ name: "main", cmdline: "sleep 999" }],
        updateConfig: { pulseIntervalSecs: 60, watchSecs: 0 },
      }),
      message: "contract",
      user: "t",
      key: "contract-update",
    }),
  },
  "role.update.pulse": { subject: `roost.api.v1.${ROLE}.update.pulse`, body: () => ({ job: JOB, updateId, user: "t" }) },
  "role.update.pause": { subject: `roost.api.v1.${ROLE}.update.pause`, body: () => ({ job: JOB, message: "hold" }) },
  "role.update.resume": { subject: `roost.api.v1.${ROLE}.update.resume`, body: () => ({ job: JOB, updateId }) },
  "role.update.info": { subject: `roost.api.v1.${ROLE}.update.info`, body: () => ({ job: JOB }) },
  "role.update.list": { subject: `roost.api.v1.${ROLE}.update.list`, body: () => ({ status: "active" }) },
  "cluster.update.list": { subject: "roost.api.v1.cluster.update.list", body: () => ({}) },
  "role.update.rollback": { subject: `roost.api.v1.${ROLE}.update.rollback`, body: () => ({ job: JOB }) },
  "role.update.abort": { subject: `roost.api.v1.${ROLE}.update.abort`, body: () => ({ job: JOB, user: "t" }) },
  "role.job.restart": { subject: `roost.api.v1.${ROLE}.job.restart`, body: () => ({ job: JOB, batchSize: 2, watchSecs: 0 }) },
  "role.job.status": { subject: `roost.api.v1.${ROLE}.job.status`, body: () => ({ job: JOB }) },
  "role.job.list": { subject: `roost.api.v1.${ROLE}.job.list`, body: () => ({}) },
  "role.task.history": { subject: `roost.api.v1.${ROLE}.task.history`, body: () => ({ taskId }) },
  "role.task.why": { subject: `roost.api.v1.${ROLE}.task.why`, body: () => ({ taskId }) },
  "role.task.status": { subject: `roost.api.v1.${ROLE}.task.status`, body: () => ({ taskId }) },
  "role.quota.get": { subject: `roost.api.v1.${ROLE}.quota.get`, body: () => ({ role: ROLE }) },
  "admin.quota.set": {
    subject: "roost.api.v1.admin.quota.set",
    body: () => ({ role: ROLE, cpus: 4, ramMb: 4096, diskMb: 4096, user: "t", key: "contract-quota" }),
  },
  "role.request.get": { subject: `roost.api.v1.${ROLE}.request.get`, body: () => ({ key: "contract-create" }) },
  "admin.request.get": { subject: "roost.api.v1.admin.request.get", body: () => ({ key: "contract-quota" }) },
  "cluster.info": { subject: "roost.api.v1.cluster.info", body: () => ({}) },
  "cluster.job.list": { subject: "roost.api.v1.cluster.job.list", body: () => null },
  "cluster.task.history": { subject: "roost.api.v1.cluster.task.history", body: () => ({ taskId }) },
  "cluster.task.why": { subject: "roost.api.v1.cluster.task.why", body: () => ({ taskId }) },
  "cluster.task.status": { subject: "roost.api.v1.cluster.task.status", body: () => ({ taskId }) },
  "role.events": { subject: `roost.api.v1.${ROLE}.events`, body: () => ({ from: 1, limit: 50 }) },
  "cluster.events": { subject: "roost.api.v1.cluster.events", body: () => ({ from: 1, type: ["TaskCreated"] }) },
  // The SRE's reads: every replica answers them (history/serve.ts), the cell's one too.
  "cluster.hash": { subject: "roost.api.v1.cluster.hash", body: () => ({}) },
  "cluster.history": { subject: "roost.api.v1.cluster.history", body: () => ({ kind: "job", id: JOB }) },
  "cluster.replay": { subject: "roost.api.v1.cluster.replay", body: () => ({ at: 1 }) },
  "cluster.diff": { subject: "roost.api.v1.cluster.diff", body: () => ({ from: 1 }) },
  "cluster.why": { subject: "roost.api.v1.cluster.why", body: () => ({ taskId }) },
  "cluster.inspect": { subject: "roost.api.v1.cluster.inspect", body: () => ({ kind: "task", id: taskId, graph: "mermaid" }) },
  "cluster.verify": { subject: "roost.api.v1.cluster.verify", body: () => ({}) },
  "cluster.export": { subject: "roost.api.v1.cluster.export", body: () => ({ from: 1, limit: 5 }) },
  // A cron job that fires on 1 January only: started by hand here, then descheduled.
  "role.cron.schedule": {
    subject: `roost.api.v1.${ROLE}.cron.schedule`,
    body: () => ({ spec: testSpec("contract-cron", { cronSchedule: "0 0 1 1 *" }), user: "t" }),
  },
  "role.cron.start": { subject: `roost.api.v1.${ROLE}.cron.start`, body: () => ({ job: `${ROLE}/devel/contract-cron`, user: "t" }) },
  "role.cron.show": { subject: `roost.api.v1.${ROLE}.cron.show`, body: () => ({ job: `${ROLE}/devel/contract-cron` }) },
  "role.cron.list": { subject: `roost.api.v1.${ROLE}.cron.list`, body: () => ({}) },
  "cluster.cron.list": { subject: "roost.api.v1.cluster.cron.list", body: () => null },
  // SLA reports: pure reads of the leader's fold at its clock.
  "cluster.sla.safe-hosts": {
    subject: "roost.api.v1.cluster.sla.safe-hosts",
    body: () => ({ percentage: 95, durationSecs: 1800, grouping: "by_rack", minJobInstanceCount: 1 }),
  },
  "cluster.sla.probe": {
    subject: "roost.api.v1.cluster.sla.probe",
    body: () => ({ percentage: 50, durationSecs: 0, hosts: ["host-1", "nowhere"] }),
  },
  "cluster.sla.job": { subject: "roost.api.v1.cluster.sla.job", body: () => ({ job: JOB, minutes: [1, 5] }) },
  // Host maintenance (admin) on hosts no agent runs on (allowed, and said), so the contract job stays put.
  "admin.host.maintenance.start": {
    subject: "roost.api.v1.admin.host.maintenance.start",
    body: () => ({ hosts: ["maint-1"], user: "t", key: "contract-maint" }),
  },
  "admin.host.maintenance.drain": {
    subject: "roost.api.v1.admin.host.maintenance.drain",
    body: () => ({ hosts: ["maint-1"], percentage: 50, durationSecs: 60, forceDrainTimeoutSecs: 3600, user: "t" }),
  },
  "cluster.host.maintenance.status": { subject: "roost.api.v1.cluster.host.maintenance.status", body: () => ({ hosts: ["maint-1"] }) },
  "admin.host.maintenance.end": { subject: "roost.api.v1.admin.host.maintenance.end", body: () => ({ hosts: ["maint-1"], user: "t" }) },
  "admin.host.maintenance.schedule": {
    subject: "roost.api.v1.admin.host.maintenance.schedule",
    body: () => ({ hosts: ["maint-2"], start: Date.now() + 86_400_000, durationSecs: 3600, user: "t" }),
  },
  "cluster.host.maintenance.windows": { subject: "roost.api.v1.cluster.host.maintenance.windows", body: () => ({}) },
  "admin.host.maintenance.cancel": { subject: "roost.api.v1.admin.host.maintenance.cancel", body: () => ({ windowId, user: "t" }) },
  "role.cron.deschedule": {
    subject: `roost.api.v1.${ROLE}.cron.deschedule`,
    body: () => ({ job: `${ROLE}/devel/contract-cron`, user: "t" }),
  },
  "role.job.kill": { subject: `roost.api.v1.${ROLE}.job.kill`, body: () => ({ job: JOB, instances: null, user: "t" }) },
};

describe("API v1: every op over NATS", () => {
  it("every op of the catalog has a case here", () => {
    expect(Object.keys(CASES).sort()).toEqual((OPS as readonly OpDef[]).map((d) => `${d.scope}.${d.op}`).sort());
  });

  it("each answers on its subject, as MessagePack and as JSON, with a value its reply schema accepts", async () => {
    const defs = new Map((OPS as readonly OpDef[]).map((d) => [`${d.scope}.${d.op}`, d]));
    for (const [name, k] of Object.entries(CASES)) {
      const def = defs.get(name)!;
      const check = checker(def.reply);
      const encodings = def.write ? [false] : [false, true]; // a write is not repeated
      for (const json of encodings) {
        const r = await ask(k.subject, k.body(), json);
        expect(r.ok, `${name} ${json ? "JSON" : "MessagePack"}: ${JSON.stringify(r)}`).toBe(true);
        if (!r.ok) continue;
        expect(check(r.value), `${name}: ${JSON.stringify(r.value).slice(0, 500)}`).toEqual([]);
        if (name === "role.job.create") taskId = (r.value as { taskIds: string[] }).taskIds[0]!;
        if (name === "role.update.start") updateId = (r.value as { updateId: string }).updateId;
        if (name === "admin.host.maintenance.schedule") windowId = (r.value as { windowId: string }).windowId;
      }
      if (name === "role.job.create") {
        await waitFor(c.scheduler, (s) => s.tasks.get(taskId as never)?.state === "RUNNING", "the contract job's task runs");
      }
    }
  }, 60_000);
});

describe("API v1: every refusal has its code, names the field and the rule, and appends nothing", () => {
  it("INVALID_REQUEST: bad bytes, bad JSON, unknown ops, unknown scopes, schema breaks", async () => {
    const before = c.scheduler.state.seq;
    expect(refused(await raw(`roost.api.v1.${ROLE}.job.status`, new Uint8Array([0x92, 0x01])), "INVALID_REQUEST")).toMatch(
      /not valid MessagePack/,
    );
    expect(refused(await raw(`roost.api.v1.${ROLE}.job.status`, new TextEncoder().encode("{job:"), true), "INVALID_REQUEST")).toMatch(
      /not valid JSON/,
    );
    expect(refused(await ask(`roost.api.v1.${ROLE}.job.explode`, {}), "INVALID_REQUEST")).toMatch(
      /unknown operation "job\.explode".*job\.create/,
    );
    expect(refused(await ask("roost.api.v1.admin.job.create", {}), "INVALID_REQUEST")).toMatch(
      /unknown operation "job\.create" for the admin scope/,
    );
    expect(refused(await ask(`roost.api.v1.${ROLE}`, {}), "INVALID_REQUEST")).toMatch(/names no operation/);
    expect(refused(await ask(`roost.api.v1.${ROLE}.job.status`, { job: "web" }, true), "INVALID_REQUEST", "job")).toMatch(
      /job: must be a job key/,
    );
    // A reference may hold dots (an older build's names stay reachable); this one names no job.
    refused(await ask(`roost.api.v1.${ROLE}.job.status`, { job: `${ROLE}/../etc` }), "NOT_FOUND", "job");
    refused(await ask(`roost.api.v1.${ROLE}.job.status`, { job: "../../etc" }), "PERMISSION_DENIED", "job");
    refused(await ask(`roost.api.v1.${ROLE}.job.status`, { job: JOB, constructor: 1 }), "INVALID_REQUEST", "constructor");
    expect(await writesSince(before)).toEqual([]);
  });

  it("TOO_LARGE: a body over 1 MiB - 1 is not decoded", async () => {
    const before = c.scheduler.state.seq;
    const big = new Uint8Array(1024 * 1024).fill(0x20);
    expect(refused(await raw(`roost.api.v1.${ROLE}.job.create`, big), "TOO_LARGE")).toMatch(/at most 1048575 bytes/);
    expect(await writesSince(before)).toEqual([]);
  });

  it("PERMISSION_DENIED: a request on role A's subject that acts on role B", async () => {
    const before = c.scheduler.state.seq;
    const other = "roost.api.v1.mallory";
    expect(refused(await ask(`${other}.job.kill`, { job: JOB }), "PERMISSION_DENIED", "job")).toMatch(/names role "www-data"/);
    refused(await ask(`${other}.job.status`, { job: JOB }), "PERMISSION_DENIED", "job");
    refused(await ask(`${other}.quota.get`, { role: ROLE }), "PERMISSION_DENIED", "role");
    refused(await ask(`${other}.job.create`, { spec: testSpec("stolen") }), "PERMISSION_DENIED", "spec.role");
    refused(await ask(`${other}.task.history`, { taskId }), "PERMISSION_DENIED", "taskId");
    refused(await ask(`${other}.task.why`, { taskId }), "PERMISSION_DENIED", "taskId");
    const list = await ask(`${other}.job.list`, {});
    expect(list).toEqual({ ok: true, value: [] });
    expect(await writesSince(before)).toEqual([]);
  });

  it("NOT_FOUND, CONFLICT and QUOTA_EXCEEDED", async () => {
    const before = c.scheduler.state.seq;
    refused(await ask(`roost.api.v1.${ROLE}.job.status`, { job: `${ROLE}/devel/nope` }), "NOT_FOUND", "job");
    refused(await ask("roost.api.v1.cluster.task.history", { taskId: "nope" }), "NOT_FOUND", "taskId");
    const created = await ask(`roost.api.v1.${ROLE}.job.create`, { spec: testSpec("twice", { service: true }), user: "t" });
    expect(created.ok).toBe(true);
    expect(await writesSince(before)).toHaveLength(1); // its JobCreated
    const seq = await c.log.lastSeq();
    expect(refused(await ask(`roost.api.v1.${ROLE}.job.create`, { spec: testSpec("twice"), user: "t" }), "CONFLICT")).toMatch(
      /already exists/,
    );
    const prod = testSpec("big", { environment: "prod", tier: "preferred", resources: { cpus: 100, ramMb: 16, diskMb: 16 } });
    expect(refused(await ask(`roost.api.v1.${ROLE}.job.create`, { spec: prod, user: "t" }), "QUOTA_EXCEEDED")).toMatch(/quota/);
    expect(await writesSince(seq)).toEqual([]);
  });
});

describe("the shipped API documents are what the catalog makes", () => {
  const root = join(import.meta.dirname, "..");
  it("schemas/api/v1/, schemas/openapi.json and the README's API table (regenerate: npm run api-docs)", () => {
    const dir = join(root, "schemas", "api", "v1");
    const files = jsonSchemaFiles();
    expect(readdirSync(dir).sort()).toEqual([...files.keys()].sort());
    for (const [name, text] of files) expect(readFileSync(join(dir, name), "utf8"), name).toBe(text);
    const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
    expect(JSON.parse(readFileSync(join(root, "schemas", "openapi.json"), "utf8"))).toEqual(openApiDocument(version));
    const readme = readFileSync(join(root, "README.md"), "utf8");
    expect(withApiTable(readme)).toBe(readme);
  });
});
