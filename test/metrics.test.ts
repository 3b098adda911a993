// Prometheus metrics (src/metrics/): a real scheduler and agent on a real nats-server report what
// they did, in registries of their own; the names follow Prometheus' rules and carry no id in a
// label; `roost agent --metrics` serves them over HTTP; and the shipped ops configs (the Grafana
// dashboard, the Prometheus scrape config) query only metrics the code registers.
//
// Values are read from the registries after the events they count were awaited (a commit, a
// reply): no sleeps, and no assertion on how long anything took.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Fastify from "fastify";
import type { MetricObjectWithValues, MetricValue, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { subjects } from "../src/bus/bus.js";
import { NatsBus } from "../src/bus/nats.js";
import { asAgentId, asJobKey, asTaskId } from "../src/domain/types.js";
import { AgentMetrics } from "../src/metrics/agent.js";
import { mountMetrics } from "../src/metrics/http.js";
import { SchedulerMetrics } from "../src/metrics/scheduler.js";
import { ClusterState, type TaskRecord } from "../src/replay/state.js";
import { apiRequest, errorOf } from "./support/api.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const root = join(import.meta.dirname, "..");
const nats = withNats();
let c: TestCluster;

beforeAll(async () => {
  const log = await nats.openLog("METRICS");
  const bus = await NatsBus.connect(nats.url, "metrics-scheduler");
  c = await startCluster({ agents: 1, bus, log });
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** A metric as getMetricsAsJSON() gives it ("counter", "gauge", "histogram", … at run time). */
type Json = Omit<MetricObjectWithValues<MetricValue<string>>, "type"> & { type: string };
const json = async (registry: Registry): Promise<Json[]> => (await registry.getMetricsAsJSON()) as unknown as Json[];

/** The sum of a series' samples whose labels include `labels` (a histogram's series by its full name: x_count, x_bucket). */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metrics = await json(registry);
  const base = name.replace(/_(count|sum|bucket)$/, "");
  const m = metrics.find((x) => x.name === name) ?? metrics.find((x) => x.name === base && x.type === "histogram");
  if (!m) return undefined;
  const hits = m.values.filter(
    (v) =>
      ((v as { metricName?: string }).metricName ?? m.name) === name &&
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return hits.length === 0 ? undefined : hits.reduce((s, v) => s + v.value, 0);
}

describe("a scheduler's metrics", () => {
  it("count the placements, appends and status updates of a job, and show the folded state", async () => {
    const reg = c.scheduler.metrics.registry;
    const r = await apiRequest<{ taskIds: string[] }>(c.bus, "job.create", { spec: testSpec("web", { instances: 2 }) });
    expect(r.ok, errorOf(r)).toBe(true);
    await waitFor(c.scheduler, (s) => [...s.tasks.values()].filter((t) => t.state === "RUNNING").length === 2, "2 tasks RUNNING");
    // The agent has its acknowledgements: the leader counted each update before it answered.
    await c.agents[0]!.statuses.onIdle();

    expect(await value(reg, "roost_placements_total")).toBe(2);
    expect(await value(reg, "roost_scheduling_attempts_total", { result: "scheduled" })).toBe(2);
    expect(await value(reg, "roost_scheduling_attempt_duration_seconds_count", { result: "scheduled" })).toBe(2);
    expect(await value(reg, "roost_bus_requests_total", { op: "job.create", result: "ok" })).toBe(1);
    expect(await value(reg, "roost_leader")).toBe(1);
    expect(await value(reg, "roost_epoch")).toBe(c.scheduler.epoch);
    expect(await value(reg, "roost_leader_elections_total")).toBe(1);
    expect(await value(reg, "roost_tasks", { state: "RUNNING" })).toBe(2);
    expect(await value(reg, "roost_tasks", { state: "PENDING" })).toBe(0);
    expect(await value(reg, "roost_agents", { state: "ACTIVE" })).toBe(1);
    expect(await value(reg, "roost_folded_seq")).toBe(c.scheduler.state.seq);
    expect(await value(reg, "roost_fold_lag_records")).toBeGreaterThanOrEqual(0);

    // Every record the leader committed was appended once, ok, and timed.
    const ok = (await value(reg, "roost_log_appends_total", { result: "ok" }))!;
    expect(ok).toBeGreaterThan(0);
    expect(await value(reg, "roost_log_append_duration_seconds_count")).toBe(ok);
    expect(await value(reg, "roost_log_appends_total", { result: "fenced" })).toBe(0);
    expect(await value(reg, "roost_log_appended_events_total")).toBeGreaterThanOrEqual(ok);

    // STARTING and RUNNING of each task, committed and timed from their receipt.
    const committed = (await value(reg, "roost_status_updates_total", { result: "committed" }))!;
    expect(committed).toBeGreaterThanOrEqual(4);
    expect(await value(reg, "roost_status_update_latency_seconds_count")).toBe(committed);

    // The text Prometheus scrapes.
    const text = await reg.metrics();
    expect(text).toMatch(/^roost_placements_total 2$/m);
    expect(text).toMatch(/^roost_leader 1$/m);
    expect(text).toMatch(/^roost_tasks\{state="RUNNING"\} 2$/m);
    expect(text).toMatch(/^# TYPE roost_scheduling_attempt_duration_seconds histogram$/m);
  });

  it("count refused API requests by op and error code, and a subject naming no op as unknown", async () => {
    const reg = c.scheduler.metrics.registry;
    const before = (await value(reg, "roost_bus_requests_total", { op: "job.create", result: "INVALID_REQUEST" })) ?? 0;
    const bad = await apiRequest(c.bus, "job.create", { spec: 42 });
    expect(bad.ok).toBe(false);
    expect(await value(reg, "roost_bus_requests_total", { op: "job.create", result: "INVALID_REQUEST" })).toBe(before + 1);

    const missing = await apiRequest(c.bus, "job.status", { job: "www-data/devel/nope" });
    expect(missing.ok ? "" : missing.error.code).toBe("NOT_FOUND");
    expect(await value(reg, "roost_bus_requests_total", { op: "job.status", result: "NOT_FOUND" })).toBe(1);

    const unknown = await c.bus.request<{ ok: boolean }>("roost.api.v1.www-data.no.such.op", {});
    expect(unknown.ok).toBe(false);
    expect(await value(reg, "roost_bus_requests_total", { op: "unknown", result: "INVALID_REQUEST" })).toBe(1);
  });

  it("say why tasks are pending: a task that fits no agent waits for its veto, and is an unschedulable attempt", async () => {
    const reg = c.scheduler.metrics.registry;
    const r = await apiRequest<{ taskIds: string[] }>(c.bus, "job.create", {
      spec: testSpec("huge", { resources: { cpus: 0.1, ramMb: 100_000, diskMb: 16 } }),
    });
    expect(r.ok, errorOf(r)).toBe(true);
    const taskId = asTaskId(r.ok ? r.value.taskIds[0]! : "");
    await waitFor(c.scheduler, () => c.scheduler.placement.reasonFor(taskId) !== undefined, "placement looked at the task");
    expect(await value(reg, "roost_pending_tasks", { reason: "Insufficient: ramMb" })).toBe(1);
    expect(await value(reg, "roost_scheduling_attempts_total", { result: "unschedulable" })).toBeGreaterThanOrEqual(1);
    const kill = await apiRequest(c.bus, "job.kill", { job: "www-data/devel/huge" });
    expect(kill.ok, errorOf(kill)).toBe(true);
  });

  it("keep the pending reasons a bounded set: veto texts of known shapes, at most 32, the rest other", async () => {
    const m = new SchedulerMetrics();
    const st = new ClusterState();
    st.pendingGroups(); // built (as a leader's placement builds them), then kept by markPending
    const reasons = new Map<string, string>();
    const pend = (job: string) => st.markPending({ taskId: asTaskId(`t-${job}`), job: asJobKey(`r/e/${job}`), configVersion: 1 });
    for (let i = 0; i < 40; i++) {
      pend(`j${i}`);
      reasons.set(`r/e/j${i}`, `Constraint not satisfied: attr${i}`);
    }
    // Free text and numbers are never labels.
    pend("free");
    reasons.set("r/e/free", "needs ramMb 512, free 100 of 1024");
    pend("none");
    pend("agents");
    reasons.set("r/e/agents", "No active agents");
    // j0's second task has a slot held for it: reserved; its first keeps the group's reason.
    const held = { taskId: asTaskId("t-held"), job: asJobKey("r/e/j0"), configVersion: 1, state: "PENDING" } as const;
    st.tasks.set(held.taskId, held as unknown as TaskRecord);
    st.markPending(held);
    st.reservations.set(held.taskId, { taskId: held.taskId, agentId: asAgentId("a1"), victims: [], expiresTs: 0 });
    m.watch({
      state: () => st,
      leading: () => true,
      epoch: () => 1,
      pendingReason: (job, version) => (version === 1 ? reasons.get(job) : "wrong version"),
      mailboxes: () => [],
      logLastSeq: async () => 0,
    });
    const metrics = await m.registry.getMetricsAsJSON();
    const pending = metrics.find((x) => x.name === "roost_pending_tasks")!.values;
    const byReason = new Map(pending.map((v) => [String(v.labels.reason), v.value]));
    expect(byReason.size).toBe(32 + 4); // 32 veto texts, other, not evaluated, no active agent, reserved
    expect(byReason.get("other")).toBe(40 - 32 + 1);
    expect(byReason.get("not evaluated")).toBe(1);
    expect(byReason.get("no active agent")).toBe(1);
    expect(byReason.get("Constraint not satisfied: attr0")).toBe(1);
    expect(byReason.get("reserved")).toBe(1);
    expect([...byReason.values()].reduce((a, b) => a + b, 0)).toBe(st.pending.size);
  });
});

describe("an agent's metrics", () => {
  it("count its launches and delivered status updates, and show its tasks and registration", async () => {
    const reg = c.agents[0]!.metrics.registry;
    await waitFor(c.scheduler, (s) => [...s.tasks.values()].filter((t) => t.state === "RUNNING").length >= 2, "tasks RUNNING");
    await c.agents[0]!.statuses.onIdle();
    expect(await value(reg, "roost_agent_launches_total", { result: "launched" })).toBe(2);
    expect(await value(reg, "roost_agent_launch_duration_seconds_count")).toBe(2);
    expect(await value(reg, "roost_agent_tasks", { state: "running" })).toBe(2);
    expect(await value(reg, "roost_agent_status_updates_total", { state: "RUNNING" })).toBe(2);
    expect(await value(reg, "roost_agent_status_update_delivery_seconds_count")).toBeGreaterThanOrEqual(4);
    expect(await value(reg, "roost_agent_registered")).toBe(1);
    expect(await value(reg, "roost_agent_leader_epoch")).toBe(c.scheduler.epoch);
    expect(await value(reg, "roost_agent_registrations_total")).toBeGreaterThanOrEqual(1);
  });

  it("`roost agent --metrics host:port` serves GET /metrics over HTTP, Node's process metrics included", async () => {
    // It joins this file's cell: the scheduler on this nats-server accepts its registration.
    const dir = mkdtempSync(join(tmpdir(), "roost-metrics-agent-"));
    const agentId = "metrics-agent";
    const bus = await NatsBus.connect(nats.url, "metrics-watcher");
    const heartbeat = new Promise<void>((resolve) => bus.serve(subjects.heartbeat(agentId), () => void resolve()));
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "agent", "--nats", nats.url, "--id", agentId, "--metrics", "127.0.0.1:0"].concat([
        "--work-dir",
        dir,
        "--cpus",
        "1",
        "--ram-mb",
        "256",
        "--ports",
        "41000-41010",
      ]),
      { cwd: root, env: { ...process.env, ROOST_LOG_LEVEL: "info" }, stdio: ["ignore", "ignore", "pipe"] },
    );
    try {
      const log = logLines(child);
      const { url } = (await log.until("serving metrics")) as { url: string };
      await log.until("registered");
      await heartbeat;
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      expect(Number(/^roost_agent_heartbeats_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
      expect(text).toMatch(/^roost_agent_registered 1$/m);
      expect(text).toContain(`roost_agent_leader_epoch ${c.scheduler.epoch}\n`);
      expect(text).toMatch(/^process_cpu_seconds_total /m);
      expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("mountMetrics answers GET /metrics on an app a process already serves, with the registry's content type", async () => {
    const m = new AgentMetrics();
    m.heartbeat();
    const app = Fastify();
    mountMetrics(app, m.registry);
    const res = await app.inject({ method: "GET", url: "/metrics" });
    await app.close();
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe(m.registry.contentType);
    expect(res.body).toMatch(/^roost_agent_heartbeats_total 1$/m);
  });
});

/** The JSON log lines on a child's stderr; until(msg) resolves with the first (seen so far or later) whose msg is `msg`. */
function logLines(child: ChildProcess): { until(msg: string): Promise<Record<string, unknown>> } {
  const seen: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let tail = "";
  let exited: number | null | undefined;
  createInterface({ input: child.stderr! }).on("line", (line) => {
    tail = `${tail}\n${line}`.slice(-4000);
    try {
      seen.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
    for (const w of waiters) w();
  });
  child.once("exit", (code) => {
    exited = code;
    for (const w of waiters) w();
  });
  return {
    until: (msg) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = seen.find((o) => o.msg === msg);
          if (hit) resolve(hit);
          else if (exited !== undefined) reject(new Error(`the agent exited (${exited}) before logging "${msg}":${tail}`));
          else return;
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

// ---- names --------------------------------------------------------------------------------------

/** Registries as a daemon has them (Node's default metrics included), with samples of every label. */
async function registries(): Promise<Array<{ who: string; prefix: string; metrics: Json[] }>> {
  return [
    { who: "scheduler (live)", prefix: "roost_", metrics: await json(c.scheduler.metrics.registry) },
    { who: "agent (live)", prefix: "roost_agent_", metrics: await json(c.agents[0]!.metrics.registry) },
    {
      who: "scheduler daemon",
      prefix: "roost_",
      metrics: await json(new SchedulerMetrics({ defaultMetrics: true }).registry),
    },
    { who: "agent daemon", prefix: "roost_agent_", metrics: await json(new AgentMetrics({ defaultMetrics: true }).registry) },
  ];
}

const NODE_DEFAULT = /^(process|nodejs)_/;
/** Labels that would hold an id: one series per task, job, agent or request. */
const ID_LABELS = new Set([
  "task",
  "taskId",
  "task_id",
  "instance",
  "job",
  "jobKey",
  "agent",
  "agentId",
  "agent_id",
  "host",
  "key",
  "corr",
]);

describe("metric names", () => {
  it("use the roost_ prefix (the agent's roost_agent_), counters end in _total, base units, and no label holds an id", async () => {
    for (const r of await registries()) {
      for (const m of r.metrics) {
        const where = `${r.who}: ${m.name}`;
        if (!NODE_DEFAULT.test(m.name)) expect(m.name.startsWith(r.prefix), where).toBe(true);
        if (m.type === "counter") expect(m.name.endsWith("_total"), where).toBe(true);
        // (Node's own nodejs_active_resources_total is a gauge: prom-client's name, not ours.)
        else if (!NODE_DEFAULT.test(m.name)) expect(m.name.endsWith("_total"), where).toBe(false);
        expect(m.name, where).not.toMatch(/_(ms|milliseconds|mb|kb|minutes)(_|$)/);
        for (const v of m.values) for (const label of Object.keys(v.labels)) expect(ID_LABELS.has(label), `${where}{${label}}`).toBe(false);
      }
    }
  });
});

// ---- ops/: the dashboard and the scrape config --------------------------------------------------

/** Every series name a registry can expose: a histogram's _bucket, _sum and _count. */
async function exposed(): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const r of await registries()) {
    for (const m of r.metrics) {
      if (m.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.set(`${m.name}${s}`, "histogram");
      else if (m.type === "summary") for (const s of ["_sum", "_count", ""]) names.set(`${m.name}${s}`, "summary");
      else names.set(m.name, m.type);
    }
  }
  return names;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Array<{ expr: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

describe("ops/grafana/roost-dashboard.json", () => {
  const dashboard = JSON.parse(readFileSync(join(root, "ops", "grafana", "roost-dashboard.json"), "utf8")) as {
    title: string;
    uid: string;
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; query: string }> };
  };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  const referenced = (expr: string) => [...expr.matchAll(/\b(?:roost|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);

  it("is a dashboard with a $datasource variable that every panel and query uses", () => {
    const DATASOURCE = "$" + "{datasource}"; // Grafana's variable syntax, not a template string
    expect(dashboard.title).toBe("Roost");
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
    expect(panels.length).toBeGreaterThan(10);
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.datasource?.uid, p.title).toBe(DATASOURCE);
    }
  });

  it("queries only metrics the code registers, and charts every roost metric", async () => {
    const names = await exposed();
    const used = new Set<string>();
    for (const { panel, expr } of exprs) {
      const refs = referenced(expr);
      expect(refs.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of refs) {
        expect(names.has(name), `${panel}: ${name} is not registered by SchedulerMetrics or AgentMetrics`).toBe(true);
        used.add(name.replace(/_(bucket|sum|count)$/, ""));
      }
    }
    const roost = [...names.keys()]
      .filter((n) => n.startsWith("roost_"))
      .map((n) => (names.get(n) === "histogram" ? n.replace(/_(bucket|sum|count)$/, "") : n));
    for (const n of new Set(roost)) expect(used.has(n), `no panel charts ${n}`).toBe(true);
  });

  it("takes a rate of every counter and histogram, and a quantile of histograms from their buckets", async () => {
    const names = await exposed();
    for (const { panel, expr } of exprs) {
      for (const m of expr.matchAll(/\b(?:roost|process|nodejs)_[a-z0-9_]+\b/g)) {
        const kind = names.get(m[0]);
        if (kind !== "counter" && kind !== "histogram") continue;
        const before = expr.slice(0, m.index).trimEnd();
        expect(before, `${panel}: ${m[0]} must be inside rate() or increase()`).toMatch(/(?:^|[^a-z_])(?:rate|increase)\($/);
        if (kind === "histogram") expect(m[0], `${panel}: a histogram is read from its buckets`).toMatch(/_bucket$/);
      }
      if (/_bucket\b/.test(expr)) expect(expr, panel).toMatch(/histogram_quantile\(/);
    }
  });
});

describe("ops/prometheus/prometheus.yml", () => {
  it("parses as YAML and scrapes the scheduler replicas and the agents", () => {
    const doc = parseYaml(readFileSync(join(root, "ops", "prometheus", "prometheus.yml"), "utf8")) as {
      global: { scrape_interval: string; scrape_timeout: string };
      scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const jobs = new Map(doc.scrape_configs.map((j) => [j.job_name, j]));
    expect([...jobs.keys()].sort()).toEqual(["roost-agent", "roost-scheduler"]);
    for (const j of jobs.values()) {
      expect(j.metrics_path ?? "/metrics").toBe("/metrics");
      const targets = j.static_configs.flatMap((s) => s.targets);
      expect(targets.length).toBeGreaterThan(0);
      for (const t of targets) expect(t).toMatch(/^[a-z0-9.-]+:\d+$/);
    }
    const secs = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1]);
    expect(secs(doc.global.scrape_timeout)).toBeLessThan(secs(doc.global.scrape_interval));
  });
});
