// The event stream (actors/eventFeed.ts): pages of decoded events from a sequence or a time,
// filtered by job, role, agent and type, a long poll for the next one, and a role's view that
// holds only its own jobs' events. An SRE asks "what happened to this job?" and a service follows
// its own jobs; neither may see another role's.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventsPage } from "../src/actors/eventFeed.js";
import type { EventItem } from "../src/replay/eventScope.js";
import { apiRequest, errorOf } from "./support/api.js";
import { startCluster, waitFor, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ agents: 2 });
  for (const [role, name] of [
    ["www-data", "web"],
    ["analytics", "etl"],
  ] as const) {
    const r = await apiRequest(c.bus, "job.create", { spec: testSpec(name, { role, instances: 2 }) });
    expect(r.ok, errorOf(r)).toBe(true);
  }
  await waitFor(c.scheduler, (s) => [...s.tasks.values()].filter((t) => t.state === "RUNNING").length === 4, "4 tasks RUNNING");
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

async function page(req: Record<string, unknown>, role?: string): Promise<EventsPage> {
  const r = await apiRequest<EventsPage>(c.bus, "events", req, role);
  if (!r.ok) throw new Error(errorOf(r));
  return r.value;
}

/** Every event from 1 on, page by page. */
async function all(req: Record<string, unknown>, role?: string): Promise<EventItem[]> {
  const out: EventItem[] = [];
  let from = 1;
  for (;;) {
    const p = await page({ ...req, from }, role);
    out.push(...p.events);
    if (p.next > p.lastSeq) return out;
    from = p.next;
  }
}

describe("events", () => {
  it("pages through the whole log in order, without a gap or a repeat, whatever the page size", async () => {
    const whole = await all({ limit: 1000 });
    const small = await all({ limit: 3 });
    expect(small.map((e) => `${e.seq}.${e.index}`)).toEqual(whole.map((e) => `${e.seq}.${e.index}`));
    expect(whole[0]).toMatchObject({ seq: 1, index: 0, type: "LeaderElected" });
    expect(new Set(whole.map((e) => e.seq)).size).toBe(c.scheduler.state.seq);
    expect(whole.every((e) => e.reason.length > 0)).toBe(true);
  });

  it("filters by job, type and agent; every event it returns passes the filter", async () => {
    const job = await all({ job: "analytics/devel/etl" });
    expect(job.length).toBeGreaterThan(4);
    expect(job.every((e) => e.job === "analytics/devel/etl")).toBe(true);
    const types = await all({ type: ["TaskAssigned", "JobCreated"] });
    expect(new Set(types.map((e) => e.type))).toEqual(new Set(["TaskAssigned", "JobCreated"]));
    expect(types.filter((e) => e.type === "TaskAssigned")).toHaveLength(4);
    const agent = await all({ agent: "agent-1" });
    expect(agent.length).toBeGreaterThan(0);
    expect(agent.every((e) => e.agent === "agent-1")).toBe(true);
    expect(agent.some((e) => e.type === "AgentRegistered")).toBe(true);
  });

  it("a role sees its own jobs' events only: no other role's, no agent's or leader's", async () => {
    const mine = await all({}, "www-data");
    expect(mine.length).toBeGreaterThan(4);
    expect(mine.every((e) => e.role === "www-data")).toBe(true);
    expect(mine.some((e) => e.type === "AgentRegistered" || e.type === "LeaderElected")).toBe(false);
    const other = await apiRequest(c.bus, "events", { role: "analytics" }, "www-data");
    expect(other).toMatchObject({ ok: false, error: { code: "PERMISSION_DENIED", field: "role" } });
    const job = await apiRequest(c.bus, "events", { job: "analytics/devel/etl" }, "www-data");
    expect(job).toMatchObject({ ok: false, error: { code: "PERMISSION_DENIED", field: "job" } });
  });

  it("from a time: the first record written at or after it", async () => {
    const whole = await all({});
    const third = whole.find((e) => e.seq === 3)!;
    const p = await page({ from: new Date(third.ts).toISOString() });
    expect(p.events[0]!.seq).toBeLessThanOrEqual(3);
    expect(p.events[0]!.ts).toBeGreaterThanOrEqual(third.ts - 1);
    const future = await page({ from: "2999-01-01T00:00:00Z" });
    expect(future).toEqual({ events: [], next: c.scheduler.state.seq + 1, lastSeq: c.scheduler.state.seq });
  });

  it("waits up to waitMs for the next event, and answers as soon as one is committed", async () => {
    const next = c.scheduler.state.seq + 1;
    const waiting = page({ from: next, waitMs: 20_000, type: ["JobKillRequested"] });
    const kill = await apiRequest(c.bus, "job.kill", { job: "www-data/devel/web" });
    expect(kill.ok, errorOf(kill)).toBe(true);
    const p = await waiting;
    expect(p.events.map((e) => e.type)).toEqual(["JobKillRequested"]);
    expect(p.events[0]!.job).toBe("www-data/devel/web");
    const empty = await page({ from: c.scheduler.state.seq + 1, waitMs: 50, type: ["QuotaSet"] });
    expect(empty.events).toEqual([]);
  }, 30_000);

  it("refuses a bad request, naming the field and the rule", async () => {
    for (const [req, field] of [
      [{ from: 0 }, "from"],
      [{ from: "yesterday" }, "from"],
      [{ limit: 0 }, "limit"],
      [{ limit: 1001 }, "limit"],
      [{ waitMs: 60_000 }, "waitMs"],
      [{ type: ["Task-Created"] }, "type.0"],
      [{ job: "../x" }, "job"],
      [{ extra: 1 }, "extra"],
    ] as const) {
      const r = await apiRequest(c.bus, "events", req);
      expect(r, JSON.stringify(req)).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
      expect(errorOf(r)).toContain(field.split(".")[0]);
    }
  });
});
