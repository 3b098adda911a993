// The HTTP gateway over a real nats-server and scheduler: every route of the catalog answers with
// a value its reply schema accepts and the route's status; refusals carry the API's codes as HTTP
// statuses (400, 401, 403, 404, 409, 413, 503); bearer tokens hold an identity to its role.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPS, type OpDef } from "../src/api/v1.js";
import { NatsBus } from "../src/bus/nats.js";
import { checker } from "../src/domain/validate.js";
import { startHttpGateway } from "../src/gateway/http.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const nats = withNats();
let c: TestCluster;
let open: { url: string; close(): Promise<void> };
let locked: { url: string; close(): Promise<void> };
let gwBus: NatsBus;
let taskId = "";
let updateId = "";
let windowId = "";

const TOKENS = { alice: "alice-token-0123456789", admin: "admin-token-0123456789", bob: "bob-token-01234567890" };

beforeAll(async () => {
  const log = await nats.openLog("ROOST_HTTP");
  c = await startCluster({ agents: 1, bus: await NatsBus.connect(nats.url, "http-scheduler"), log });
  gwBus = await NatsBus.connect(nats.url, "http-gateway");
  open = await startHttpGateway({ transport: gwBus, tokens: null, host: "127.0.0.1", port: 0 });
  locked = await startHttpGateway({
    transport: gwBus,
    host: "127.0.0.1",
    port: 0,
    tokens: [
      { token: TOKENS.alice, name: "alice", role: "www-data" },
      { token: TOKENS.bob, name: "bob", role: "other" },
      { token: TOKENS.admin, name: "root", admin: true },
    ],
  });
}, 60_000);

afterAll(async () => {
  await open?.close();
  await locked?.close();
  await gwBus?.close();
  await c?.stop();
});

type Reply = { ok: true; value: unknown } | { ok: false; error: { code: string; message: string; field?: string } };

async function call(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; r: Reply }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, r: (await res.json()) as Reply };
}

const JOB = "www-data/devel/web";
const CASES: Record<string, { method: string; path: () => string; body?: () => unknown }> = {
  "role.job.create": {
    method: "POST",
    path: () => "/v1/jobs",
    body: () => ({ spec: testSpec("web", { instances: 2 }), user: "t", key: "h-1" }),
  },
  "role.job.add": { method: "POST", path: () => `/v1/jobs/${JOB}/instances`, body: () => ({ count: 1 }) },
  // A coordinated update moved through every control op, then a restart (as in api.contract.test.ts).
  "role.update.start": {
    method: "POST",
    path: () => `/v1/jobs/${JOB}/updates`,
    body: () => ({
      spec: testSpec("web", {
        instances: 3,
        processes: [{ name: "main", cmdline: "sleep 999" }],
        updateConfig: { pulseIntervalSecs: 60, watchSecs: 0 },
      }),
      key: "h-u",
    }),
  },
  "role.update.pulse": { method: "POST", path: () => `/v1/jobs/${JOB}/update/pulse`, body: () => ({ updateId }) },
  "role.update.pause": { method: "POST", path: () => `/v1/jobs/${JOB}/update/pause`, body: () => ({ message: "hold" }) },
  "role.update.resume": { method: "POST", path: () => `/v1/jobs/${JOB}/update/resume`, body: () => ({}) },
  "role.update.info": { method: "GET", path: () => `/v1/jobs/${JOB}/update` },
  "role.update.list": { method: "GET", path: () => "/v1/roles/www-data/updates?status=active" },
  "cluster.update.list": { method: "GET", path: () => "/v1/updates" },
  "role.update.rollback": { method: "POST", path: () => `/v1/jobs/${JOB}/update/rollback`, body: () => ({}) },
  "role.update.abort": { method: "POST", path: () => `/v1/jobs/${JOB}/update/abort`, body: () => ({}) },
  "role.job.restart": { method: "POST", path: () => `/v1/jobs/${JOB}/restarts`, body: () => ({ batchSize: 2, watchSecs: 0 }) },
  "role.job.status": { method: "GET", path: () => `/v1/jobs/${JOB}` },
  "role.job.list": { method: "GET", path: () => "/v1/roles/www-data/jobs" },
  "role.task.history": { method: "GET", path: () => `/v1/roles/www-data/tasks/${taskId}/history` },
  "role.task.why": { method: "GET", path: () => `/v1/roles/www-data/tasks/${taskId}/why` },
  "role.task.status": { method: "GET", path: () => `/v1/roles/www-data/tasks/${taskId}/status` },
  "role.quota.get": { method: "GET", path: () => "/v1/quota/www-data" },
  "role.request.get": { method: "GET", path: () => "/v1/roles/www-data/requests/h-1" },
  "admin.quota.set": { method: "PUT", path: () => "/v1/quota/www-data", body: () => ({ cpus: 2, ramMb: 2048, diskMb: 2048, key: "hq-1" }) },
  "admin.request.get": { method: "GET", path: () => "/v1/admin/requests/hq-1" },
  "cluster.info": { method: "GET", path: () => "/v1/cluster" },
  "cluster.job.list": { method: "GET", path: () => "/v1/jobs" },
  "cluster.task.history": { method: "GET", path: () => `/v1/tasks/${taskId}/history` },
  "cluster.task.why": { method: "GET", path: () => `/v1/tasks/${taskId}/why` },
  "cluster.task.status": { method: "GET", path: () => `/v1/tasks/${taskId}/status` },
  "role.events": { method: "GET", path: () => "/v1/roles/www-data/events?limit=5" },
  "cluster.events": { method: "GET", path: () => "/v1/events?type=TaskCreated&from=1" },
  "cluster.hash": { method: "GET", path: () => "/v1/cluster/hash" },
  "cluster.history": { method: "GET", path: () => `/v1/cluster/history?kind=job&id=${JOB}` },
  "cluster.replay": { method: "GET", path: () => "/v1/cluster/replay?at=2" },
  "cluster.diff": { method: "GET", path: () => "/v1/cluster/diff?from=1" },
  "cluster.why": { method: "GET", path: () => `/v1/cluster/why?taskId=${taskId}` },
  "cluster.inspect": { method: "GET", path: () => `/v1/cluster/inspect?kind=task&id=${taskId}&graph=dot` },
  "cluster.verify": { method: "GET", path: () => "/v1/cluster/verify" },
  "cluster.export": { method: "GET", path: () => "/v1/cluster/export?from=1&limit=5" },
  // A cron job that fires on 1 January only: started by hand, then descheduled.
  "role.cron.schedule": {
    method: "POST",
    path: () => "/v1/cron",
    body: () => ({ spec: testSpec("nightly", { cronSchedule: "0 0 1 1 *" }), user: "t" }),
  },
  "role.cron.start": { method: "POST", path: () => "/v1/cron/www-data/devel/nightly/runs", body: () => ({ user: "t" }) },
  "role.cron.show": { method: "GET", path: () => "/v1/cron/www-data/devel/nightly" },
  "role.cron.list": { method: "GET", path: () => "/v1/roles/www-data/cron" },
  "cluster.cron.list": { method: "GET", path: () => "/v1/cron" },
  // SLA reports: numbers and lists from the query (hosts=a,b; minutes=5,30).
  "cluster.sla.safe-hosts": {
    method: "GET",
    path: () => "/v1/sla/safe-hosts?percentage=95.5&durationSecs=1800&grouping=by_rack&minJobInstanceCount=1",
  },
  "cluster.sla.probe": { method: "GET", path: () => "/v1/sla/probe?percentage=50&durationSecs=0&hosts=host-1,nowhere" },
  "cluster.sla.job": { method: "GET", path: () => `/v1/sla/jobs/${JOB}?minutes=1,5` },
  // Host maintenance (admin) on hosts no agent runs on; status takes hosts=a,b in the query.
  "admin.host.maintenance.start": {
    method: "POST",
    path: () => "/v1/hosts/maintenance/start",
    body: () => ({ hosts: ["maint-1"], key: "hm-1" }),
  },
  "admin.host.maintenance.drain": {
    method: "POST",
    path: () => "/v1/hosts/maintenance/drain",
    body: () => ({ hosts: ["maint-1"], force: true }),
  },
  "cluster.host.maintenance.status": { method: "GET", path: () => "/v1/hosts/maintenance?hosts=maint-1,maint-2" },
  "admin.host.maintenance.end": { method: "POST", path: () => "/v1/hosts/maintenance/end", body: () => ({ hosts: ["maint-1"] }) },
  "admin.host.maintenance.schedule": {
    method: "POST",
    path: () => "/v1/hosts/maintenance/windows",
    body: () => ({ hosts: ["maint-2"], start: new Date(Date.now() + 86_400_000).toISOString(), durationSecs: 3600 }),
  },
  "cluster.host.maintenance.windows": { method: "GET", path: () => "/v1/hosts/maintenance/windows" },
  "admin.host.maintenance.cancel": { method: "DELETE", path: () => `/v1/hosts/maintenance/windows/${windowId}` },
  "role.cron.deschedule": { method: "DELETE", path: () => "/v1/cron/www-data/devel/nightly" },
  "role.job.kill": { method: "DELETE", path: () => `/v1/jobs/${JOB}` },
};

describe("the HTTP gateway", () => {
  it("serves every op of the catalog at its route, with its status and a value its reply schema accepts", async () => {
    const defs = new Map((OPS as readonly OpDef[]).map((d) => [`${d.scope}.${d.op}`, d]));
    expect(Object.keys(CASES).sort()).toEqual([...defs.keys()].sort());
    for (const [name, k] of Object.entries(CASES)) {
      const def = defs.get(name)!;
      const { status, r } = await call(open.url, k.method, k.path(), k.body?.());
      expect(r.ok, `${name}: ${JSON.stringify(r)}`).toBe(true);
      expect(status, name).toBe(def.http.status ?? 200);
      if (r.ok) expect(checker(def.reply)(r.value), name).toEqual([]);
      if (name === "role.update.start" && r.ok) updateId = (r.value as { updateId: string }).updateId;
      if (name === "admin.host.maintenance.schedule" && r.ok) windowId = (r.value as { windowId: string }).windowId;
      if (name === "role.job.create" && r.ok) {
        taskId = (r.value as { taskIds: string[] }).taskIds[0]!;
        await waitFor(c.scheduler, (s) => s.tasks.get(taskId as never)?.state === "RUNNING", "the task runs");
      }
    }
  }, 60_000);

  it("maps each refusal to its status: 400, 404, 409, 413, and JSON errors naming the field", async () => {
    const before = c.scheduler.state.jobs.size;
    let x = await call(open.url, "GET", "/v1/jobs/www-data/devel/nope");
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([404, "NOT_FOUND"]);
    x = await call(open.url, "POST", "/v1/jobs", { spec: testSpec("web2"), user: "t", extra: 1 });
    expect([x.status, x.r.ok ? "" : x.r.error.field]).toEqual([400, "extra"]);
    x = await call(open.url, "POST", "/v1/jobs", { spec: { role: "www-data" } });
    expect(x.status).toBe(400);
    expect(x.r.ok ? "" : x.r.error.message).toMatch(/invalid job spec/);
    x = await call(open.url, "POST", "/v1/jobs", { spec: testSpec("web", { service: true }) });
    await call(open.url, "POST", "/v1/jobs", { spec: testSpec("svc", { service: true }) });
    x = await call(open.url, "POST", "/v1/jobs", { spec: testSpec("svc", { service: true }) });
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([409, "CONFLICT"]);
    const big = await fetch(`${open.url}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `"${"x".repeat(1024 * 1024)}"`,
    });
    expect(big.status).toBe(413);
    expect(((await big.json()) as Reply).ok).toBe(false);
    const bad = await fetch(`${open.url}/v1/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: "{spec:" });
    expect(bad.status).toBe(400);
    x = await call(open.url, "GET", "/v1/nowhere");
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([404, "NOT_FOUND"]);
    x = await call(open.url, "GET", "/v1/jobs/www-data/devel/..%2F..%2Fetc");
    expect([x.status, x.r.ok ? "" : x.r.error.field]).toEqual([400, "job"]);
    expect(c.scheduler.state.jobs.size).toBe(before + 1); // only svc
  });

  it("tokens: no token 401, another role's job 403, quota.set without admin 403, a cluster read only for one's role, admin may", async () => {
    let x = await call(locked.url, "GET", `/v1/jobs/${JOB}`);
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([401, "UNAUTHENTICATED"]);
    x = await call(locked.url, "GET", `/v1/jobs/${JOB}`, undefined, "not-a-token-at-all-xx");
    expect(x.status).toBe(401);
    x = await call(locked.url, "GET", `/v1/jobs/${JOB}`, undefined, TOKENS.alice);
    expect(x.status).toBe(200);
    x = await call(locked.url, "DELETE", `/v1/jobs/${JOB}`, undefined, TOKENS.bob);
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([403, "PERMISSION_DENIED"]);
    x = await call(locked.url, "POST", "/v1/jobs", { spec: testSpec("mine") }, TOKENS.bob);
    expect(x.status).toBe(403);
    x = await call(locked.url, "PUT", "/v1/quota/www-data", { cpus: 1, ramMb: 1, diskMb: 1 }, TOKENS.alice);
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([403, "PERMISSION_DENIED"]);
    // The same rules as the NATS permissions: a role's identity has no cluster subjects. A
    // cluster-wide read route answers for its role alone; one a role has no op for is refused.
    x = await call(locked.url, "GET", "/v1/cluster", undefined, TOKENS.bob);
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([403, "PERMISSION_DENIED"]);
    x = await call(locked.url, "GET", "/v1/jobs", undefined, TOKENS.bob);
    expect([x.status, x.r.ok ? x.r.value : null]).toEqual([200, []]);
    x = await call(locked.url, "GET", "/v1/events?type=JobCreated", undefined, TOKENS.alice);
    expect(x.status).toBe(200);
    const mine = (x.r as { ok: true; value: { events: Array<{ role: string }> } }).value.events;
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((e) => e.role === "www-data")).toBe(true);
    x = await call(locked.url, "GET", "/v1/events?type=JobCreated", undefined, TOKENS.bob);
    expect([x.status, x.r.ok ? (x.r.value as { events: unknown[] }).events : null]).toEqual([200, []]);
    x = await call(locked.url, "GET", "/v1/roles/www-data/events", undefined, TOKENS.bob);
    expect([x.status, x.r.ok ? "" : x.r.error.code]).toEqual([403, "PERMISSION_DENIED"]);
    x = await call(locked.url, "GET", "/v1/events?limit=0", undefined, TOKENS.admin);
    expect([x.status, x.r.ok ? "" : x.r.error.field]).toEqual([400, "limit"]);
    x = await call(locked.url, "GET", `/v1/jobs/${JOB}`, undefined, TOKENS.admin);
    expect(x.status).toBe(200);
  });

  it("GET /v1/events with Accept: text/event-stream: server-sent events, resumable with Last-Event-ID", async () => {
    const ac = new AbortController();
    const res = await fetch(`${open.url}/v1/events?type=TaskCreated`, { headers: { accept: "text/event-stream" }, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    while ((text.match(/\nevent: TaskCreated\n/g) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const ids = [...text.matchAll(/^id: (\d+\.\d+)$/gm)].map((m) => m[1]!);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    const data = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as { type: string; seq: number; index: number };
    expect(data.type).toBe("TaskCreated");
    expect(`${data.seq}.${data.index}`).toBe(ids[0]);
    // Resumed after the first: the next event is the second.
    const ac2 = new AbortController();
    const again = await fetch(`${open.url}/v1/events?type=TaskCreated`, {
      headers: { accept: "text/event-stream", "last-event-id": ids[0]! },
      signal: ac2.signal,
    });
    const r2 = again.body!.getReader();
    let t2 = "";
    while (!/^id: /m.test(t2)) t2 += new TextDecoder().decode((await r2.read()).value);
    ac2.abort();
    expect(/^id: (\d+\.\d+)$/m.exec(t2)![1]).toBe(ids[1]);
  });
});
