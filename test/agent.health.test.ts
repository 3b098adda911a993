import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HealthChecker, type HealthListener, jitterOf, SNOOZE_FILE } from "../src/agent/health/checker.js";
import { type HealthCounters, healthPolicy, initialCounters, recordCheck, type Verdict } from "../src/agent/health/policy.js";
import { httpProbe, shellProbe } from "../src/agent/health/probes.js";
import { isDeadState, readStat } from "../src/agent/proc.js";
import type { HealthCheckConfig } from "../src/domain/types.js";

const HTTP = { endpoint: "/health", expectedResponse: "ok", expectedResponseCode: 0 };

function config(over: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return {
    initialIntervalSecs: 15,
    intervalSecs: 10,
    timeoutSecs: 1,
    maxConsecutiveFailures: 0,
    minConsecutiveSuccesses: 1,
    http: HTTP,
    ...over,
  };
}

const FAIL_REASON = 'expected "ok", got "starting"';

/** Runs a sequence ("S" passed, "F" failed) through recordCheck: one verdict letter per step. */
function run(cfg: HealthCheckConfig, seq: string): { letters: string; verdicts: Verdict[]; counters: HealthCounters[] } {
  const policy = healthPolicy(cfg);
  let c = initialCounters();
  const verdicts: Verdict[] = [];
  const counters: HealthCounters[] = [];
  for (const step of seq) {
    const ok = step === "S";
    const r = recordCheck(policy, c, ok, ok ? null : FAIL_REASON);
    c = r.counters;
    verdicts.push(r.verdict);
    counters.push(c);
  }
  const letters = verdicts.map((v) => (v.kind === "running" ? "R" : v.kind === "unhealthy" ? "U" : ".")).join("");
  return { letters, verdicts, counters };
}

describe("healthPolicy", () => {
  it.each([
    { initial: 15, interval: 10, forgiving: 2, maxCF: 0, minCS: 1, max: 3 }, // Aurora's defaults
    { initial: 0, interval: 10, forgiving: 0, maxCF: 0, minCS: 1, max: 1 },
    { initial: 30, interval: 10, forgiving: 3, maxCF: 2, minCS: 3, max: 8 },
    { initial: 0.9, interval: 0.3, forgiving: 3, maxCF: 0, minCS: 1, max: 4 }, // 3.0000000000000004 in floating point
    { initial: 1, interval: 0.3, forgiving: 4, maxCF: 1, minCS: 1, max: 6 },
    { initial: 5, interval: 0, forgiving: 0, maxCF: 1, minCS: 2, max: 3 },
  ])(
    "forgiving = ceil($initial / $interval) = $forgiving, maxAttemptsToRunning = $max",
    ({ initial, interval, forgiving, maxCF, minCS, max }) => {
      const p = healthPolicy(
        config({ initialIntervalSecs: initial, intervalSecs: interval, maxConsecutiveFailures: maxCF, minConsecutiveSuccesses: minCS }),
      );
      expect(p).toEqual({
        forgivingAttempts: forgiving,
        maxAttemptsToRunning: max,
        minConsecutiveSuccesses: minCS,
        maxConsecutiveFailures: maxCF,
      });
    },
  );
});

describe("recordCheck (Aurora's attempt arithmetic)", () => {
  // initial/interval give forgiving = ceil(initial/interval); max = forgiving + maxCF + minCS.
  // Steps: S passed, F failed. Verdicts: R running, U unhealthy, . none.
  const table: { name: string; initial: number; interval: number; maxCF: number; minCS: number; seq: string; expect: string }[] = [
    // The grace (forgiving) attempts: failures there do not count.
    { name: "defaults: 2 grace failures, then a pass", initial: 15, interval: 10, maxCF: 0, minCS: 1, seq: "FFS", expect: "..R" },
    {
      name: "defaults: a failure after the grace fails (0 attempts left)",
      initial: 15,
      interval: 10,
      maxCF: 0,
      minCS: 1,
      seq: "FFF",
      expect: "..U",
    },
    {
      name: "3 grace attempts, 1 failure allowed after them",
      initial: 30,
      interval: 10,
      maxCF: 1,
      minCS: 1,
      seq: "FFFFS",
      expect: "....R",
    },
    { name: "a grace failure resets the run of successes", initial: 2, interval: 1, maxCF: 2, minCS: 3, seq: "SFSSS", expect: "....R" },
    { name: "no grace: the first failure fails", initial: 0, interval: 10, maxCF: 0, minCS: 1, seq: "F", expect: "U" },
    { name: "no grace: the first pass is RUNNING", initial: 0, interval: 10, maxCF: 0, minCS: 1, seq: "SSSS", expect: "R..." },
    { name: "RUNNING has no grace left", initial: 15, interval: 10, maxCF: 0, minCS: 1, seq: "SF", expect: "RU" },
    // Failing fast: fewer attempts left than successes needed.
    { name: "failing fast: 2 needed, 1 left", initial: 0, interval: 10, maxCF: 1, minCS: 2, seq: "SF", expect: ".U" },
    { name: "failing fast before the failure limit", initial: 0, interval: 10, maxCF: 2, minCS: 2, seq: "FSFS", expect: "..U." },
    { name: "failures within the budget, then enough passes", initial: 0, interval: 10, maxCF: 2, minCS: 2, seq: "FFSS", expect: "...R" },
    {
      name: "FFSFSSS: 2 grace, 1 counted failure, 3 passes",
      initial: 2,
      interval: 1,
      maxCF: 2,
      minCS: 3,
      seq: "FFSFSSS",
      expect: "......R",
    },
    { name: "FFSFSSS with 1 failure allowed fails fast", initial: 2, interval: 1, maxCF: 1, minCS: 3, seq: "FFSFSSS", expect: "...U..." },
    // The deadline: out of attempts before RUNNING (only reachable when no success is required,
    // since failing fast catches every other way there).
    { name: "deadline: 3 attempts used up", initial: 1, interval: 1, maxCF: 2, minCS: 0, seq: "FFFF", expect: "..U." },
    // Consecutive failures after RUNNING.
    { name: "after RUNNING, maxConsecutiveFailures 0", initial: 0, interval: 10, maxCF: 0, minCS: 1, seq: "SSF", expect: "R.U" },
    { name: "after RUNNING, maxConsecutiveFailures 2", initial: 0, interval: 10, maxCF: 2, minCS: 1, seq: "SFFSFFFS", expect: "R.....U." },
    {
      name: "after RUNNING, 2 failures in a row are tolerated",
      initial: 0,
      interval: 10,
      maxCF: 2,
      minCS: 1,
      seq: "SFFSFFS",
      expect: "R......",
    },
    // minConsecutiveSuccesses 3, a failure in between resets the run.
    { name: "3 in a row needed: SSFSSS", initial: 2, interval: 1, maxCF: 2, minCS: 3, seq: "SSFSSS", expect: ".....R" },
    { name: "3 in a row needed: SSFSSF fails fast", initial: 2, interval: 1, maxCF: 2, minCS: 3, seq: "SSFSSF", expect: ".....U" },
    { name: "3 in a row needed: the first 3 passes", initial: 0, interval: 1, maxCF: 0, minCS: 3, seq: "SSSF", expect: "..RU" },
    // Unhealthy is final.
    { name: "nothing after unhealthy", initial: 0, interval: 10, maxCF: 0, minCS: 1, seq: "FSSSF", expect: "U...." },
  ];

  it.each(table)("$name: $seq → $expect", ({ initial, interval, maxCF, minCS, seq, expect: want }) => {
    const cfg = config({
      initialIntervalSecs: initial,
      intervalSecs: interval,
      maxConsecutiveFailures: maxCF,
      minConsecutiveSuccesses: minCS,
    });
    expect(run(cfg, seq).letters).toBe(want);
  });

  it("words the verdicts, quoting the last check's reason", () => {
    const ff = run(config({ initialIntervalSecs: 0, maxConsecutiveFailures: 1, minConsecutiveSuccesses: 2 }), "SF").verdicts[1];
    expect(ff).toEqual({
      kind: "unhealthy",
      message: `unhealthy: failing fast: 2 successes needed, 1 attempt left; last check: ${FAIL_REASON}`,
    });
    const ff0 = run(config(), "FFF").verdicts[2];
    expect(ff0).toEqual({
      kind: "unhealthy",
      message: `unhealthy: failing fast: 1 success needed, 0 attempts left; last check: ${FAIL_REASON}`,
    });
    const after = run(config({ initialIntervalSecs: 0, maxConsecutiveFailures: 2 }), "SFFF").verdicts;
    expect(after[0]).toEqual({ kind: "running", message: "healthy after 1 consecutive successful health check" });
    expect(after[3]).toEqual({ kind: "unhealthy", message: `unhealthy: ${FAIL_REASON}` });
    const three = run(config({ initialIntervalSecs: 0, minConsecutiveSuccesses: 3 }), "SSS").verdicts[2];
    expect(three).toEqual({ kind: "running", message: "healthy after 3 consecutive successful health checks" });
    const dl = run(config({ initialIntervalSecs: 1, intervalSecs: 1, maxConsecutiveFailures: 2, minConsecutiveSuccesses: 0 }), "FFF")
      .verdicts[2];
    expect(dl).toEqual({
      kind: "unhealthy",
      message: `unhealthy: deadline: 3 attempts used up without 0 consecutive successful health checks; last check: ${FAIL_REASON}`,
    });
  });

  it("the deadline on a pass: the last attempt spent without enough successes in a row", () => {
    const policy = healthPolicy(config({ initialIntervalSecs: 0, maxConsecutiveFailures: 1, minConsecutiveSuccesses: 2 }));
    const c: HealthCounters = { attempts: 2, consecutiveFailures: 0, consecutiveSuccesses: 0, running: false, unhealthy: false };
    const r = recordCheck(policy, c, true, null);
    expect(r.verdict).toEqual({
      kind: "unhealthy",
      message: "unhealthy: deadline: 3 attempts used up without 2 consecutive successful health checks; last check passed",
    });
    expect(r.counters).toMatchObject({ attempts: 3, consecutiveSuccesses: 1, unhealthy: true });
  });

  it("counts: grace failures are not counted, a pass resets failures, a failure resets passes; inputs are not mutated", () => {
    const { counters } = run(config({ initialIntervalSecs: 20, maxConsecutiveFailures: 3, minConsecutiveSuccesses: 2 }), "FFSFF");
    expect(counters.map((c) => [c.attempts, c.consecutiveFailures, c.consecutiveSuccesses])).toEqual([
      [1, 0, 0],
      [2, 0, 0],
      [3, 0, 1],
      [4, 1, 0],
      [5, 2, 0],
    ]);
    const policy = healthPolicy(config());
    const c0 = initialCounters();
    recordCheck(policy, c0, true, null);
    expect(c0).toEqual(initialCounters());
  });
});

/** An HTTP server on 127.0.0.1 with a handler the test sets; counts connections. */
async function server(
  handler: http.RequestListener,
): Promise<{ port: number; connections: () => number; closeAllConnections: () => void; close: () => Promise<void> }> {
  const s = http.createServer(handler);
  let connections = 0;
  s.on("connection", () => connections++);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    port: (s.address() as AddressInfo).port,
    connections: () => connections,
    closeAllConnections: () => s.closeAllConnections(),
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = await server(() => {});
  await s.close();
  return s.port;
}

describe("httpProbe", () => {
  let body = "ok";
  let status = 200;
  let delayMs = 0;
  let srv: Awaited<ReturnType<typeof server>>;
  beforeAll(async () => {
    srv = await server((req, res) => {
      const reply = () => {
        res.statusCode = status;
        res.end(req.url === "/health" ? body : "wrong path");
      };
      if (delayMs) setTimeout(reply, delayMs);
      else reply();
    });
  });
  afterAll(() => srv.close());
  afterEach(() => {
    body = "ok";
    status = 200;
    delayMs = 0;
  });

  it("passes on the expected body, trimmed and case-insensitive, on one kept-alive connection", async () => {
    const before = srv.connections();
    body = "  OK\n";
    for (let i = 0; i < 5; i++) expect(await httpProbe(srv.port, HTTP, 1000)).toEqual({ ok: true, reason: null });
    expect(srv.connections() - before).toBe(1);
  });

  it("fails on another body, quoting at most 100 characters of it", async () => {
    body = " starting \n";
    expect(await httpProbe(srv.port, HTTP, 1000)).toEqual({ ok: false, reason: 'expected "ok", got "starting"' });
    body = "x".repeat(5000);
    const r = await httpProbe(srv.port, HTTP, 1000);
    expect(r.reason).toBe(`expected "ok", got "${"x".repeat(100)}…"`);
  });

  it("checks the status code only when expectedResponseCode is not 0", async () => {
    status = 503;
    expect(await httpProbe(srv.port, HTTP, 1000)).toEqual({ ok: true, reason: null });
    expect(await httpProbe(srv.port, { ...HTTP, expectedResponseCode: 200 }, 1000)).toEqual({
      ok: false,
      reason: "expected HTTP 200, got 503",
    });
    status = 200;
    expect(await httpProbe(srv.port, { ...HTTP, expectedResponseCode: 200 }, 1000)).toEqual({ ok: true, reason: null });
  });

  it("times out", async () => {
    delayMs = 1500;
    const t = Date.now();
    expect(await httpProbe(srv.port, HTTP, 200)).toEqual({ ok: false, reason: "timed out after 0.2 s" });
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it("says so when nothing listens on the port", async () => {
    const port = await closedPort();
    expect(await httpProbe(port, HTTP, 1000)).toEqual({ ok: false, reason: `connection refused on port ${port}` });
  });

  it("reconnects when the server closed the kept-alive connection", async () => {
    const s = await server((_req, res) => res.end("ok"));
    try {
      expect((await httpProbe(s.port, HTTP, 1000)).ok).toBe(true);
      s.closeAllConnections();
      await new Promise((r) => setTimeout(r, 50));
      expect(await httpProbe(s.port, HTTP, 1000)).toEqual({ ok: true, reason: null });
    } finally {
      await s.close();
    }
  });
});

describe("shellProbe", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "roost-health-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("passes on exit 0, in the sandbox, with the task's environment", async () => {
    expect(
      await shellProbe('test "$PWD" = "$WANT" && test "$ROOST_X" = 1', dir, { WANT: fs.realpathSync(dir), ROOST_X: "1" }, 2000),
    ).toEqual({
      ok: true,
      reason: null,
    });
  });

  it("fails on another exit code, with the last line of stderr", async () => {
    expect(await shellProbe("exit 3", dir, {}, 2000)).toEqual({ ok: false, reason: "health check command exited with code 3" });
    const long = "e".repeat(300);
    expect(await shellProbe(`echo first >&2; echo ${long} >&2; echo >&2; exit 1`, dir, {}, 2000)).toEqual({
      ok: false,
      reason: `health check command exited with code 1: ${"e".repeat(200)}…`,
    });
  });

  it("times out and kills the whole process group", async () => {
    const pidFile = path.join(dir, "bg.pid");
    const t = Date.now();
    expect(await shellProbe(`sleep 30 & echo $! > ${pidFile}; wait`, dir, {}, 300)).toEqual({
      ok: false,
      reason: "Health check timed out.",
    });
    expect(Date.now() - t).toBeLessThan(2000);
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    const st = readStat(pid); // gone, or a zombie nobody reaped yet
    expect(st === null || isDeadState(st.state)).toBe(true);
  });
});

/** A listener that records what it is told. */
function recorder() {
  const events: string[] = [];
  const checks: boolean[] = [];
  const listener: HealthListener = {
    onRunning: (m) => events.push(`running: ${m}`),
    onUnhealthy: (m) => events.push(m),
    onCheck: (ok, secs) => {
      expect(secs).toBeGreaterThanOrEqual(0);
      checks.push(ok);
    },
  };
  const until = async (pred: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out; events ${JSON.stringify(events)}, checks ${JSON.stringify(checks)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { events, checks, listener, until };
}

describe("HealthChecker", () => {
  let dir: string;
  let checker: HealthChecker;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "roost-health-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => checker?.stop());

  const fast = (over: Partial<HealthCheckConfig> = {}) =>
    config({ initialIntervalSecs: 0, intervalSecs: 0.05, timeoutSecs: 1, minConsecutiveSuccesses: 2, maxConsecutiveFailures: 1, ...over });

  it("spreads first checks over the interval, the same for the same task", () => {
    const js = Array.from({ length: 1000 }, (_, i) => jitterOf(`www-data-devel-hello-${i}-0123abcd`));
    expect(js.every((j) => j >= 0 && j < 1)).toBe(true);
    expect(jitterOf("a")).toBe(jitterOf("a"));
    const buckets = new Array(10).fill(0);
    for (const j of js) buckets[Math.floor(j * 10)]++;
    expect(Math.min(...buckets)).toBeGreaterThan(50);
  });

  it("reports RUNNING after the successes, then unhealthy after too many failures", async () => {
    let body = "ok";
    const srv = await server((_q, res) => res.end(body));
    try {
      checker = new HealthChecker();
      const r = recorder();
      const t = Date.now();
      checker.watch({ taskId: "t1", config: fast(), port: srv.port, sandboxDir: dir, env: {} }, r.listener);
      expect(checker.watching()).toBe(1);
      await r.until(() => r.events.length === 1);
      // The first check one interval (plus jitter) after watch(), then every interval.
      expect(Date.now() - t).toBeGreaterThanOrEqual(50 + 50);
      expect(r.events).toEqual(["running: healthy after 2 consecutive successful health checks"]);
      expect(checker.status("t1")).toMatchObject({ running: true, unhealthy: false, lastReason: null, snoozed: false });
      body = "draining";
      await r.until(() => r.events.length === 2);
      expect(r.events[1]).toBe('unhealthy: expected "ok", got "draining"');
      expect(checker.status("t1")).toMatchObject({ consecutiveFailures: 2, unhealthy: true, lastReason: 'expected "ok", got "draining"' });
      // No more checks once unhealthy.
      const n = r.checks.length;
      await new Promise((res) => setTimeout(res, 200));
      expect(r.checks.length).toBe(n);
    } finally {
      await srv.close();
    }
  });

  it("fails an http check without a health port", async () => {
    checker = new HealthChecker();
    const r = recorder();
    checker.watch(
      { taskId: "t2", config: fast({ minConsecutiveSuccesses: 1, maxConsecutiveFailures: 0 }), port: null, sandboxDir: dir, env: {} },
      r.listener,
    );
    await r.until(() => r.events.length === 1);
    expect(r.events).toEqual(['unhealthy: failing fast: 1 success needed, 0 attempts left; last check: no port named "health"']);
  });

  it("runs shell checks in the sandbox", async () => {
    checker = new HealthChecker();
    const r = recorder();
    fs.writeFileSync(path.join(dir, "ready"), "");
    checker.watch(
      { taskId: "t3", config: fast({ http: undefined, shell: { command: "test -f ready" } }), port: null, sandboxDir: dir, env: {} },
      r.listener,
    );
    await r.until(() => r.events.length === 1);
    expect(r.events[0]).toMatch(/^running: /);
    fs.rmSync(path.join(dir, "ready"));
    await r.until(() => r.events.length === 2);
    expect(r.events[1]).toBe("unhealthy: health check command exited with code 1");
  });

  it("pauses while .healthchecksnooze exists: no check, counters still", async () => {
    const sandbox = fs.mkdtempSync(path.join(dir, "snooze-"));
    const snooze = path.join(sandbox, SNOOZE_FILE);
    fs.writeFileSync(snooze, "");
    const srv = await server((_q, res) => res.end("ok"));
    try {
      checker = new HealthChecker();
      const r = recorder();
      checker.watch({ taskId: "t4", config: fast(), port: srv.port, sandboxDir: sandbox, env: {} }, r.listener);
      await new Promise((res) => setTimeout(res, 400));
      expect(r.checks).toEqual([]);
      expect(checker.status("t4")).toEqual({
        attempts: 0,
        consecutiveFailures: 0,
        consecutiveSuccesses: 0,
        running: false,
        unhealthy: false,
        lastReason: null,
        snoozed: true,
      });
      fs.rmSync(snooze);
      await r.until(() => r.events.length === 1);
      expect(checker.status("t4")).toMatchObject({ running: true, snoozed: false });
      expect(checker.status("t4")!.attempts).toBeGreaterThanOrEqual(2);
    } finally {
      await srv.close();
    }
  });

  it("keeps at most one check in flight, and ignores one in flight when unwatched", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let requests = 0;
    const srv = await server((_q, res) => {
      requests++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end("ok");
      }, 180);
    });
    try {
      checker = new HealthChecker();
      const r = recorder();
      // Each check takes ~180 ms, the interval is 50 ms.
      checker.watch({ taskId: "t5", config: fast({ minConsecutiveSuccesses: 100 }), port: srv.port, sandboxDir: dir, env: {} }, r.listener);
      await r.until(() => r.checks.length >= 3);
      expect(maxInFlight).toBe(1);
      await r.until(() => requests > r.checks.length); // one in flight
      checker.unwatch("t5");
      expect(checker.watching()).toBe(0);
      expect(checker.status("t5")).toBeNull();
      const n = r.checks.length;
      await new Promise((res) => setTimeout(res, 400));
      expect(r.checks.length).toBe(n);
      expect(r.events).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  it("many tasks on one port: no failure, one kept-alive connection", async () => {
    const srv = await server((_q, res) => res.end("ok"));
    try {
      checker = new HealthChecker();
      let checks = 0;
      let failures = 0;
      const listener: HealthListener = {
        onRunning: () => {},
        onUnhealthy: () => failures++,
        onCheck: (ok) => {
          checks++;
          if (!ok) failures++;
        },
      };
      // All on one server port: maxSockets 1 per host queues them on one connection.
      for (let i = 0; i < 100; i++) {
        checker.watch(
          {
            taskId: `many-${i}`,
            config: fast({ intervalSecs: 0.2, minConsecutiveSuccesses: 1 }),
            port: srv.port,
            sandboxDir: dir,
            env: {},
          },
          listener,
        );
      }
      await new Promise((res) => setTimeout(res, 1300));
      // Ticks at 0.2 × (1 + jitter) s and every 0.2 s after: about 5 per task in 1.3 s.
      expect(failures).toBe(0);
      expect(checks).toBeGreaterThan(300);
      expect(srv.connections()).toBe(1);
    } finally {
      checker.stop();
      await srv.close();
    }
  });
});
