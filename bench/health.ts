// `npm run bench -- health`: the agent's health checker (src/agent/health/checker.ts) against real
// sockets. It measures the checker, not the tasks: the tasks are stand-ins, ONE separate child
// process (a small node:http server on ROOST_BENCH_TASKS ports of 127.0.0.1, each answering "ok"),
// so that serving the checks costs this process nothing.
//
// ROOST_BENCH_TASKS (default 1,000) targets with HTTP checks every ROOST_BENCH_INTERVAL_SECS
// (default 1; initialIntervalSecs 0, timeoutSecs 1, failures never end a target's checks), watched
// by one HealthChecker in this process. After a warm-up (every first check done and connections
// open), ROOST_BENCH_WINDOWS (default 3) windows of ROOST_BENCH_WINDOW_SECS (default 10) s each:
//   healthChecksPerSec  checks completed per second (median of the windows; the spread is max − min)
//   agentCpuPercent     this process's CPU (process.cpuUsage, user + system) as % of one core: the
//                       checker's cost, with the bench's own bookkeeping (median; spread)
//   serverCpuPercent    the stand-in server's CPU (/proc/<pid>/stat), for scale only
//   failures            failed checks over all windows (anything but "ok" in time)
// Goal: 1,000 tasks checked every second (≥ 1,000 checks/s) for < 25 % of one core.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HealthChecker, type HealthListener } from "../src/agent/health/checker.js";
import { closeProbeConnections } from "../src/agent/health/probes.js";
import type { HealthCheckConfig } from "../src/domain/types.js";

const TASKS = Number(process.env.ROOST_BENCH_TASKS ?? 1000);
const INTERVAL_SECS = Number(process.env.ROOST_BENCH_INTERVAL_SECS ?? 1);
const WINDOWS = Number(process.env.ROOST_BENCH_WINDOWS ?? 3);
const WINDOW_SECS = Number(process.env.ROOST_BENCH_WINDOW_SECS ?? 10);
const note = (m: string) => process.stderr.write(`health: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The stand-in tasks: N servers on free ports of 127.0.0.1, one process. Prints the ports as one
 * JSON line, then serves until its stdin closes (the bench ended, however it ended).
 */
const SERVER_SCRIPT = `
const http = require("node:http");
const n = Number(process.argv[1]);
const handler = (req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end(req.url === "/health" ? "ok" : "not found");
};
const ports = [];
let listening = 0;
for (let i = 0; i < n; i++) {
  const s = http.createServer(handler);
  s.listen(0, "127.0.0.1", () => {
    ports[i] = s.address().port;
    if (++listening === n) process.stdout.write(JSON.stringify(ports) + "\\n");
  });
}
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

/** A process's CPU time (user + system) in ms, from /proc/<pid>/stat. */
function procCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
const round1 = (x: number) => Math.round(x * 10) / 10;

export default async function healthBench(): Promise<Record<string, number | string>> {
  const server = spawn(process.execPath, ["-e", SERVER_SCRIPT, String(TASKS)], { stdio: ["pipe", "pipe", "inherit"] });
  const checker = new HealthChecker();
  const sandbox = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-bench-health-"));
  try {
    const ports = await new Promise<number[]>((resolve, reject) => {
      let buf = "";
      server.stdout!.setEncoding("utf8");
      server.stdout!.on("data", (s: string) => {
        buf += s;
        const nl = buf.indexOf("\n");
        if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as number[]);
      });
      server.once("exit", (code) => reject(new Error(`the stand-in server exited (code ${code}) before listening`)));
      server.once("error", reject);
    });
    note(`stand-in server (pid ${server.pid}) listening on ${ports.length} ports`);

    let checks = 0;
    let failures = 0;
    let unhealthy = 0;
    let lastFailure = "";
    const listener: HealthListener = {
      onRunning: () => {},
      onUnhealthy: (m) => {
        unhealthy++;
        lastFailure = m;
      },
      onCheck: (ok) => {
        checks++;
        if (!ok) failures++;
      },
    };
    const config: HealthCheckConfig = {
      initialIntervalSecs: 0,
      intervalSecs: INTERVAL_SECS,
      timeoutSecs: 1,
      // Failures are counted, never end a target's checks: the rate stays that of TASKS targets.
      maxConsecutiveFailures: 1000,
      minConsecutiveSuccesses: 1,
      http: { endpoint: "/health", expectedResponse: "ok", expectedResponseCode: 0 },
    };
    for (let i = 0; i < TASKS; i++) {
      checker.watch({ taskId: `bench-health-${i}`, config, port: ports[i]!, sandboxDir: sandbox, env: {} }, listener);
    }
    // First checks land between 1 and 2 intervals after watch(); one more interval with every
    // connection open.
    const warmupMs = 3 * INTERVAL_SECS * 1000 + 500;
    await sleep(warmupMs);
    note(`warm-up ${warmupMs} ms: ${checks} checks, ${failures} failed`);

    const rates: number[] = [];
    const cpus: number[] = [];
    const serverCpus: number[] = [];
    const failures0 = failures;
    for (let w = 0; w < WINDOWS; w++) {
      const c0 = checks;
      const cpu0 = process.cpuUsage();
      const s0 = procCpuMs(server.pid!);
      const t0 = performance.now();
      await sleep(WINDOW_SECS * 1000);
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const rate = (checks - c0) / secs;
      const pct = ((cpu.user + cpu.system) / 1000 / (secs * 1000)) * 100;
      const serverPct = ((procCpuMs(server.pid!) - s0) / (secs * 1000)) * 100;
      rates.push(rate);
      cpus.push(pct);
      serverCpus.push(serverPct);
      note(
        `window ${w + 1}/${WINDOWS}: ${Math.round(rate)} checks/s, agent CPU ${round1(pct)}% ` +
          `(user ${Math.round(cpu.user / 1000)} ms, system ${Math.round(cpu.system / 1000)} ms), server CPU ${round1(serverPct)}%`,
      );
    }
    if (unhealthy > 0) note(`${unhealthy} targets unhealthy; last: ${lastFailure}`);
    return {
      healthChecksPerSec: Math.round(median(rates)),
      healthChecksPerSecSpread: Math.round(spread(rates)),
      agentCpuPercent: round1(median(cpus)),
      agentCpuPercentSpread: round1(spread(cpus)),
      serverCpuPercent: round1(median(serverCpus)),
      failures: failures - failures0,
      tasks: TASKS,
      intervalSecs: INTERVAL_SECS,
      windows: WINDOWS,
      durationSec: WINDOWS * WINDOW_SECS,
      watching: checker.watching(),
    };
  } finally {
    checker.stop();
    closeProbeConnections();
    server.stdin!.end();
    server.kill("SIGKILL");
    await fs.promises.rm(sandbox, { recursive: true, force: true });
  }
}
