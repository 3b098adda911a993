// JobIntake commits a create in the background while it checks the next write (actors/jobIntake.ts).
// What must still hold when writes arrive all at once: a job key is created once (the others are
// CONFLICT), a request key acts once (its copies get the first outcome), production creates never
// overrun the quota together, and a write that is not a create sees every create before it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiRequest, errorOf } from "./support/api.js";
import { startCluster, type TestCluster } from "./support/cluster.js";
import { testSpec } from "./support/specs.js";

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ agents: 0 });
});

afterAll(async () => {
  await c?.stop();
});

const jobsNamed = (prefix: string) => [...c.scheduler.state.jobs.keys()].filter((j) => j.startsWith(`www-data/devel/${prefix}`));

describe("creates in flight together", () => {
  it("300 creates at once, 100 of them on 10 keys and 100 copies of 10 request keys: each job once, each key once", async () => {
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) sends.push(apiRequest(c.bus, "job.create", { spec: testSpec(`p-${i}`) }));
    for (let i = 0; i < 100; i++) sends.push(apiRequest(c.bus, "job.create", { spec: testSpec(`same-${i % 10}`) }));
    for (let i = 0; i < 100; i++) sends.push(apiRequest(c.bus, "job.create", { spec: testSpec(`keyed-${i % 10}`), key: `pk-${i % 10}` }));
    const replies = (await Promise.all(sends)) as Array<{ ok: boolean; value?: { job: string; seq: number }; error?: { code: string } }>;
    expect(replies.slice(0, 100).every((r) => r.ok)).toBe(true);
    const same = replies.slice(100, 200);
    expect(same.filter((r) => r.ok)).toHaveLength(10);
    expect(same.filter((r) => !r.ok).every((r) => r.error?.code === "CONFLICT")).toBe(true);
    const keyed = replies.slice(200);
    expect(keyed.every((r) => r.ok)).toBe(true);
    for (let k = 0; k < 10; k++) {
      const copies = keyed.filter((_, i) => i % 10 === k).map((r) => r.value);
      expect(new Set(copies.map((v) => JSON.stringify(v))).size).toBe(1);
    }
    expect(jobsNamed("p-")).toHaveLength(100);
    expect(jobsNamed("same-")).toHaveLength(10);
    expect(jobsNamed("keyed-")).toHaveLength(10);
    const created = c.scheduler.state.tasks.size;
    expect(created).toBe(120);
  });

  it("production creates at once never overrun the role's quota together", async () => {
    const q = await apiRequest(c.bus, "quota.set", { role: "www-data", cpus: 1, ramMb: 1000, diskMb: 1000, user: "t" });
    expect(q.ok, errorOf(q)).toBe(true);
    const prod = (name: string) =>
      testSpec(name, { environment: "prod", tier: "preferred", resources: { cpus: 0.1, ramMb: 16, diskMb: 16 } });
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => apiRequest(c.bus, "job.create", { spec: prod(`q-${i}`) })));
    expect(replies.filter((r) => r.ok)).toHaveLength(10);
    expect(replies.filter((r) => !r.ok).every((r) => !r.ok && r.error.code === "QUOTA_EXCEEDED")).toBe(true);
  });

  it("a kill sent right behind its job's create sees the create", async () => {
    const [create, kill] = await Promise.all([
      apiRequest(c.bus, "job.create", { spec: testSpec("then-killed", { instances: 3 }) }),
      apiRequest(c.bus, "job.kill", { job: "www-data/devel/then-killed" }),
    ]);
    expect(create.ok, errorOf(create)).toBe(true);
    expect(kill.ok, errorOf(kill)).toBe(true);
  });
});
