// SLA reports (src/sla/reports.ts) on hand-folded states: aurora_admin's sla_list_safe_domain by
// host and by rack (all or nothing per rack), sla_probe_hosts' columns and predicted-safe-in, a
// job's uptime percentiles and up counts; and the edges: a job of one instance (one may always be
// down), an unknown host, an empty cluster, the duration format.

import { describe, expect, it } from "vitest";
import { formatJobSla, formatProbe, formatSafeHosts } from "../src/cli/sla.js";
import type { JobKeyString } from "../src/domain/types.js";
import type { JobConfig } from "../src/domain/types.js";
import { ClusterState } from "../src/replay/state.js";
import { formatDuration, jobSla, parseDuration, probeHosts, safeHosts, slaRead } from "../src/sla/reports.js";
import { StateBuilder } from "./support/state.js";

const MIN = 60_000;
const SMALL = { resources: { cpus: 0.1, ramMb: 16, diskMb: 16 } };

/** A production service, instance i placed on hosts[i] and RUNNING from runningAt[i]. */
function prodJob(b: StateBuilder, name: string, hosts: string[], runningAt: number[], over: Record<string, unknown> = {}): JobConfig {
  const job = b.job({ name, environment: "prod", instances: hosts.length, service: true, tier: "preferred", ...SMALL, ...over });
  const ids = hosts.map((_, i) => b.task(job, i, `${name}-${i}`));
  hosts.forEach((h, i) => {
    if (runningAt[i] === undefined) return;
    b.ts = runningAt[i]! - 2000; // RUNNING at exactly runningAt[i] (the fold orders by sequence, not by time)
    b.place(ids[i]!, h);
  });
  return job;
}

const T0 = Date.UTC(2026, 0, 1, 12);

/**
 * web: 10 production instances RUNNING since T0, 3 on h1 and 3 on h2 (rack r1), 2 on h3 and 2 on
 * h4 (rack r2); h5 (rack r3) runs nothing; a non-production batch task runs on h1.
 */
function cluster(): StateBuilder {
  const b = new StateBuilder();
  b.ts = T0 - 60_000;
  b.agent("h1", { rack: "r1" }).agent("h2", { rack: "r1" }).agent("h3", { rack: "r2" }).agent("h4", { rack: "r2" });
  b.agent("h5", { rack: "r3" });
  const hosts = ["h1", "h1", "h1", "h2", "h2", "h2", "h3", "h3", "h4", "h4"];
  prodJob(
    b,
    "web",
    hosts,
    hosts.map(() => T0),
  );
  const batch = b.job({ name: "batch", environment: "devel", instances: 1, ...SMALL });
  b.place(b.task(batch, 0, "batch-0"), "h1");
  return b;
}

const ask = (percentage: number, durationSecs: number, minJobInstanceCount = 10) => ({ percentage, durationSecs, minJobInstanceCount });
const safeOf = (r: ReturnType<typeof safeHosts>) => r.hosts.filter((h) => h.safe).map((h) => h.host);

describe("sla list-safe-hosts", () => {
  const now = T0 + 60 * MIN;

  it("by host: a host is safe when every job keeps PCT% of its tasks RUNNING past DURATION without it", () => {
    const { state } = cluster();
    const r = safeHosts(state, { ...ask(80, 1800), grouping: "by_host" }, now);
    expect(r.hosts.map((h) => h.host)).toEqual(["h1", "h2", "h3", "h4", "h5"]);
    // 80% of 10 = 8: h1 or h2 down leaves 7, h3 or h4 down leaves 8.
    expect(safeOf(r)).toEqual(["h3", "h4", "h5"]);
    const h1 = r.hosts.find((h) => h.host === "h1")!;
    expect(h1).toMatchObject({ rack: "r1", group: "h1", tasks: 4, safe: false });
    expect(h1.why).toContain("7 of 10 task(s) would stay active");
    // The batch job is not production: listed, not checked.
    expect(h1.jobs.map((j) => [j.job, j.skipped, j.safe])).toEqual([
      ["www/devel/batch", true, true],
      ["www/prod/web", false, false],
    ]);
    expect(r.hosts.find((h) => h.host === "h3")!.jobs[0]).toMatchObject({ predictedPct: 80, active: 8, required: 8, down: 2 });
    expect(r.hosts.find((h) => h.host === "h5")).toMatchObject({ tasks: 0, jobs: [], safe: true, why: null });

    const text = formatSafeHosts(r);
    expect(text).toContain("keeps 80% of them RUNNING for over 30m; by_host");
    expect(text).toMatch(/h3 +r2 +2 +www\/prod\/web 80\.00%/);
    expect(text).toMatch(/not safe:\nHOST +RACK +WHY\nh1 +r1 +SLA 80% over 30m of job www\/prod\/web/);
  });

  it("by rack: all or nothing, the hosts of a rack are safe only if all of them together are", () => {
    const { state } = cluster();
    // r2 together (h3 + h4) leaves 6 of 10: each host alone was safe, the rack is not.
    const r = safeHosts(state, { ...ask(80, 1800), grouping: "by_rack" }, now);
    expect(safeOf(r)).toEqual(["h5"]);
    const h3 = r.hosts.find((h) => h.host === "h3")!;
    expect(h3.group).toBe("rack=r2");
    expect(h3.why).toContain("with rack=r2 (h3, h4) down");
    expect(h3.jobs[0]).toMatchObject({ down: 4, active: 6 });
    // At 50%, r2 (6 left) is safe and r1 (4 left) is not.
    expect(safeOf(safeHosts(state, { ...ask(50, 1800), grouping: "by_rack" }, now))).toEqual(["h3", "h4", "h5"]);
    expect(safeOf(safeHosts(state, { ...ask(50, 1800), grouping: "by_host" }, now))).toEqual(["h1", "h2", "h3", "h4", "h5"]);
  });

  it("honours the duration and the min job instance count", () => {
    const { state } = cluster();
    // Nothing has run for 2 h: no task is active, every host with a web task breaks it.
    expect(safeOf(safeHosts(state, { ...ask(80, 7200), grouping: "by_host" }, now))).toEqual(["h5"]);
    // A job of fewer live tasks than the minimum is not checked (aurora_admin's --min_job_instance_count).
    expect(safeOf(safeHosts(state, { ...ask(80, 7200, 11), grouping: "by_host" }, now))).toEqual(["h1", "h2", "h3", "h4", "h5"]);
  });

  it("a job of one instance: one task may always be down", () => {
    const b = new StateBuilder();
    b.agent("h1");
    prodJob(b, "solo", ["h1"], [b.ts + 5000]);
    const r = safeHosts(b.state, { ...ask(95, 60, 0), grouping: "by_host" }, b.ts + 10 * MIN);
    expect(r.hosts[0]).toMatchObject({ host: "h1", safe: true });
    expect(r.hosts[0]!.jobs[0]).toMatchObject({ total: 1, active: 0, required: 0, predictedPct: 0, safe: true, skipped: false });
    expect(r.hosts[0]!.jobs[0]!.why).toContain("lowered from 1: one task may always be down");
  });

  it("an empty cluster has no hosts", () => {
    const r = safeHosts(new ClusterState(), { ...ask(95, 1800), grouping: "by_rack" }, T0);
    expect(r).toMatchObject({ hosts: [], seq: 0, grouping: "by_rack" });
    expect(formatSafeHosts(r)).toContain("no hosts known");
  });
});

describe("sla probe-hosts", () => {
  /** api: 10 production instances; 0–1 on h1 and 2–7 on h3 RUNNING since T0, 8–9 on h2 since T0 + 50 min. */
  function probeCluster(): StateBuilder {
    const b = new StateBuilder();
    b.ts = T0 - 60_000;
    b.agent("h1").agent("h2").agent("h3").agent("h4");
    const hosts = ["h1", "h1", "h3", "h3", "h3", "h3", "h3", "h3", "h2", "h2"];
    prodJob(b, "api", hosts, [...Array(8).fill(T0), T0 + 50 * MIN, T0 + 50 * MIN]);
    return b;
  }
  const now = T0 + 60 * MIN;

  it("HOST JOB PREDICTED_SLA SAFE? PREDICTED_SAFE_IN, for each host going down alone", () => {
    const { state } = probeCluster();
    const r = probeHosts(state, ["h1", "h2", "h3", "h4", "h9"], ask(80, 1800), now);
    expect(r.rows.map((x) => [x.host, x.job, x.predictedPct, x.safe, x.safeInSecs])).toEqual([
      // 6 old tasks stay active; the 8th needed is one of the two RUNNING 10 min: 20 min (and a second: "longer than") to go.
      ["h1", "www/prod/api", 60, false, 20 * 60 + 1],
      // The 8 old ones stay: safe now.
      ["h2", "www/prod/api", 80, true, 0],
      // Only 4 would be RUNNING at all: never, without changes.
      ["h3", "www/prod/api", 20, false, null],
    ]);
    expect(r.hosts).toEqual([
      { host: "h1", known: true, tasks: 2 },
      { host: "h2", known: true, tasks: 2 },
      { host: "h3", known: true, tasks: 6 },
      { host: "h4", known: true, tasks: 0 },
      { host: "h9", known: false, tasks: 0 },
    ]);
    const text = formatProbe(r);
    const lines = text.split("\n");
    expect(lines[1]).toMatch(/^HOST +JOB +PREDICTED_SLA +SAFE\? +PREDICTED_SAFE_IN$/);
    expect(lines[2]).toMatch(/^h1 +www\/prod\/api +60\.00% +no +20m1s$/);
    expect(lines[3]).toMatch(/^h2 +www\/prod\/api +80\.00% +yes +-$/);
    expect(lines[4]).toMatch(/^h3 +www\/prod\/api +20\.00% +no +n\/a$/);
    expect(text).toContain("h4: no live tasks: safe");
    expect(text).toContain("h9: unknown host (no agent, no live task)");
  });

  it("once the newer tasks have run for the duration, the host that had to wait is safe", () => {
    const { state } = probeCluster();
    const later = now + 20 * MIN + 1000;
    expect(probeHosts(state, ["h1"], ask(80, 1800), later).rows[0]).toMatchObject({ safe: true, predictedPct: 80, safeInSecs: 0 });
  });

  it("on an empty cluster every host is unknown", () => {
    const r = probeHosts(new ClusterState(), ["h1"], ask(95, 1800), T0);
    expect(r).toMatchObject({ rows: [], hosts: [{ host: "h1", known: false, tasks: 0 }] });
  });
});

describe("sla job", () => {
  it("uptime percentiles and instances up now and throughout the last N minutes", () => {
    const b = new StateBuilder();
    b.agent("h1");
    b.ts = T0;
    const job = b.job({ name: "up", environment: "prod", instances: 5, service: true, tier: "preferred", ...SMALL });
    const ids = [0, 1, 2, 3, 4].map((i) => b.task(job, i, `up-${i}`));
    const runAt = (i: number, at: number) => {
      b.ts = at - 2000;
      b.place(ids[i]!, "h1");
    };
    runAt(0, T0 + 10 * MIN);
    runAt(1, T0 + 30 * MIN);
    runAt(2, T0 + 60 * MIN);
    runAt(4, T0 + 61 * MIN);
    b.emit("JobKillRequested", { job: "www/prod/up" as JobKeyString, instances: [4], user: "t" });
    b.emit("TaskStateChanged", { taskId: ids[4]!, to: "KILLED", agentSeq: 2 });
    const now = T0 + 70 * MIN;
    const r = jobSla(b.state, "www/prod/up" as JobKeyString, [60, 5, 30], now)!;
    // Live: 0 (up 60 min), 1 (40 min), 2 (10 min) and 3 (PENDING: 0); 4 was killed.
    expect(r).toMatchObject({ job: "www/prod/up", live: 4, running: 3, seq: b.state.seq, now });
    expect(r.percentiles).toEqual([
      { percentile: 50, uptimeSecs: 600 },
      { percentile: 75, uptimeSecs: 0 },
      { percentile: 90, uptimeSecs: 0 },
      { percentile: 95, uptimeSecs: 0 },
      { percentile: 99, uptimeSecs: 0 },
    ]);
    expect(r.windows).toEqual([
      { minutes: 5, up: 3, percentage: 75 },
      { minutes: 30, up: 2, percentage: 50 },
      { minutes: 60, up: 1, percentage: 25 },
    ]);
    const text = formatJobSla(r);
    expect(text).toContain("www/prod/up: 4 live instance(s), 3 RUNNING now");
    expect(text).toContain("uptime: 50%: 10m  75%: 0s");
    expect(text).toMatch(/now +3\/4 +75\.00%\nlast 5m +3\/4 +75\.00%\nlast 30m +2\/4 +50\.00%\nlast 1h +1\/4 +25\.00%/);
    // All RUNNING long enough: the percentiles run from the shortest up to the longest.
    const all = jobSla(b.state, "www/prod/up" as JobKeyString, [5], T0 + 70 * MIN)!;
    expect(all.percentiles.map((p) => p.uptimeSecs)).toEqual([600, 0, 0, 0, 0]);
  });

  it("an unknown job is null (NOT_FOUND on the API), a job with no live task counts nothing", () => {
    const b = new StateBuilder();
    expect(jobSla(b.state, "www/prod/nope" as JobKeyString, [5], T0)).toBeNull();
    expect(slaRead(b.state, "sla.job", { job: "www/prod/nope" }, T0)).toBeNull();
    const job = b.job({ name: "idle", instances: 1, ...SMALL });
    void job;
    expect(jobSla(b.state, "www/devel/idle" as JobKeyString, [5], T0)).toMatchObject({
      live: 0,
      running: 0,
      windows: [{ minutes: 5, up: 0, percentage: 0 }],
    });
  });
});

describe("durations", () => {
  it("reads aurora_admin's XdYhZmWs and whole seconds, and writes the shortest", () => {
    expect(["30m", "1h", "1h30m", "90s", "1d", "7d", "1800", "2h0m5s"].map(parseDuration)).toEqual([
      1800, 3600, 5400, 90, 86_400, 604_800, 1800, 7205,
    ]);
    for (const bad of ["", "m", "5x", "1.5h", "-1m", "30 m", "1m1h"]) expect(parseDuration(bad), bad).toBeNull();
    expect([0, 59, 60, 1201, 5400, 90_061].map(formatDuration)).toEqual(["0s", "59s", "1m", "20m1s", "1h30m", "1d1h1m1s"]);
  });
});
