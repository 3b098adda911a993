// `npm run bench -- health`: one agent (src/agent/agent.ts) running ROOST_BENCH_TASKS (default
// 1,000) real tasks, each with an HTTP health check every ROOST_BENCH_INTERVAL_SECS (default 1).
// It measures the agent, not the tasks: each task is a real process tree (the executor's wrapper
// and `sleep`), and its port "health" is served by ONE separate child process (a small node:http
// server on that many ports of 127.0.0.1, each answering "ok"), so that serving the checks costs
// the agent's process nothing. A fake leader on an in-memory bus accepts the registration and the
// status updates.
//
// Once every task is RUNNING (its checks passed) and a warm-up interval passed, ROOST_BENCH_WINDOWS
// (default 3) windows of ROOST_BENCH_WINDOW_SECS (default 10) s each:
//   healthChecksPerSec  checks the agent completed per second (median of the windows; spread = max − min)
//   agentCpuPercent     this process's CPU (process.cpuUsage, user + system) as % of one core: the
//                       agent's whole cost (checks, timers, heartbeats), with the bench's bookkeeping
//   serverCpuPercent    the stand-in server's CPU (/proc/<pid>/stat), for scale only
//   failures            failed checks over all windows (anything but "ok" in time)
//   launchSec           how long launching every task and seeing it RUNNING took
// Goal: 1,000 tasks checked every second (≥ 1,000 checks/s) for < 25 % of one core.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Agent } from "../src/agent/agent.js";
import { closeProbeConnections } from "../src/agent/health/probes.js";
import type { LaunchRequest, StatusRequest } from "../src/agent/protocol.js";
import { subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";
import { median } from "./support/stats.js";

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

const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
const round1 = (x: number) => Math.round(x * 10) / 10;

export default async function healthBench(): Promise<Record<string, number | string>> {
  const server = spawn(process.execPath, ["-e", SERVER_SCRIPT, String(TASKS)], { stdio: ["pipe", "pipe", "inherit"] });
  const workDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-bench-health-"));
  const bus = new MemoryBus();
  let agent: Agent | null = null;
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

    // The fake leader: accepts the registration and every status update, counting RUNNINGs.
    const agentId = "bench-agent";
    let running = 0;
    let failedTasks = 0;
    let allRunning: () => void = () => {};
    const everyoneRunning = new Promise<void>((r) => (allRunning = r));
    bus.serve(subjects.register(agentId), () => ({ ok: true, epoch: 1, schedulerId: "bench-leader" }));
    bus.serve(subjects.status(agentId), (d) => {
      const u = (d as StatusRequest).update;
      if (u.state === "RUNNING" && ++running === TASKS) allRunning();
      if (u.state === "FAILED") failedTasks++;
      return { ok: true };
    });
    agent = new Agent({
      bus,
      agentId,
      host: "bench-host",
      attributes: {},
      resources: { cpus: 64, ramMb: 1 << 20, diskMb: 1 << 20, ports: [[1, 65535]] },
      workDir,
      checkpoint: false,
      heartbeatMs: 1000,
    });
    let checks = 0;
    let failures = 0;
    const count = agent.metrics.healthCheck.bind(agent.metrics);
    agent.metrics.healthCheck = (ok, seconds) => {
      checks++;
      if (!ok) failures++;
      count(ok, seconds);
    };
    await agent.start();

    const t0 = performance.now();
    await Promise.all(
      ports.map((port, i) => {
        const req: LaunchRequest = {
          taskId: `bench-health-${i}`,
          job: "bench/prod/health",
          instance: i,
          processes: [{ name: "main", cmdline: "exec sleep 100000" }],
          ports: { health: port },
          resources: { cpus: 0.01, ramMb: 16, diskMb: 16, gpus: 0 },
          healthCheck: {
            initialIntervalSecs: INTERVAL_SECS,
            intervalSecs: INTERVAL_SECS,
            timeoutSecs: 1,
            // Failures are counted, never end a task: the rate stays that of TASKS tasks.
            maxConsecutiveFailures: 1000,
            minConsecutiveSuccesses: 1,
            http: { endpoint: "/health", expectedResponse: "ok", expectedResponseCode: 0 },
          },
          finalizationWaitSecs: 1,
        };
        return bus.request(subjects.launch(agentId), req, 120_000);
      }),
    );
    await everyoneRunning;
    const launchSec = (performance.now() - t0) / 1000;
    note(`${TASKS} tasks launched and healthy (RUNNING) in ${launchSec.toFixed(1)} s`);
    // One more interval with every connection open.
    await sleep(2 * INTERVAL_SECS * 1000);

    const rates: number[] = [];
    const cpus: number[] = [];
    const serverCpus: number[] = [];
    const failures0 = failures;
    for (let w = 0; w < WINDOWS; w++) {
      const c0 = checks;
      const cpu0 = process.cpuUsage();
      const s0 = procCpuMs(server.pid!);
      const t1 = performance.now();
      await sleep(WINDOW_SECS * 1000);
      const secs = (performance.now() - t1) / 1000;
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
    if (failedTasks > 0) note(`${failedTasks} tasks FAILED`);
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
      launchSec: round1(launchSec),
      watching: agent.health.watching(),
    };
  } finally {
    await agent?.stop({ killTasks: true, graceMs: 0 });
    closeProbeConnections();
    server.stdin!.end();
    server.kill("SIGKILL");
    await bus.close();
    await fs.promises.rm(workDir, { recursive: true, force: true });
  }
}
