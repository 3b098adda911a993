// `npm run bench -- kill`: a mass kill through the agent's executor and its reaper (src/agent/reaper.ts).
//
// Launches ROOST_BENCH_TASKS (default 1,000) tasks of one process each (`sleep 600`, or with
// ROOST_BENCH_STUBBORN=1 one that ignores SIGTERM, so that every tree lives through the whole
// grace period and is SIGKILLed), waits until all reported "started", then kills them all at once
// (grace ROOST_BENCH_GRACE_MS, default 5000) and waits until all reported "exited".
//   killCpuMs     this process's CPU time (user + system, process.cpuUsage) from the kill calls
//                 until the last "exited"
//   killWallMs    wall time over the same span
//   loopDelayMaxMs  event loop delay over the same span (perf_hooks histogram): how late a timer
//                 (a heartbeat) fires
//   ioStallMaxMs  the longest the loop went without reaching its check phase (a 5 ms timer →
//                 setImmediate probe): how long I/O (sockets, child exits) waited. Timers can keep
//                 running while I/O starves, so this is not the same as the timer delay.
// If the tasks have not all exited after ROOST_BENCH_TIMEOUT_MS (default 120,000), the figures
// are those at the timeout, with timedOut 1 and the number that had exited (a starved event loop
// can fire the timeout itself much later).
// The result keys carry N (kill1000CpuMs for 1,000 tasks). One run per invocation: the machine's
// process table is the shared resource, so take medians over separate invocations.
//
// Measured (2 shared cores, busy), N = 1,000, grace 5 s:
//   one /proc poll loop per task (before): never finished. The per-task scans outgrew the 50 ms
//     poll interval, Node's timers phase never yielded to I/O, so no child exit was delivered:
//     0 of 1,000 exited after 160-223 s, 107-209 s of CPU (3 runs). Already at N = 40 it hung.
//   one shared reaper (after): sleep 600 killed in 786 ms wall, 122 ms CPU (medians of 5);
//     ignoring SIGTERM (ROOST_BENCH_STUBBORN=1): 6.06 s wall, 1.54 s CPU (medians of 3).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Executor, type ExecutorEvent } from "../src/agent/executor.js";
import { processesWithEnv } from "../src/agent/proc.js";

const TASKS = Number(process.env.ROOST_BENCH_TASKS ?? 1000);
const GRACE_MS = Number(process.env.ROOST_BENCH_GRACE_MS ?? 5000);
const STUBBORN = process.env.ROOST_BENCH_STUBBORN === "1";
const TIMEOUT_MS = Number(process.env.ROOST_BENCH_TIMEOUT_MS ?? 120_000);
const note = (m: string) => process.stderr.write(`kill: ${m}\n`);

export default async function killBench(): Promise<Record<string, number | string>> {
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-bench-kill-"));
  const run = `${process.pid}-${Date.now()}`;
  const started = new Set<string>();
  const exited = new Set<string>();
  let onChange: () => void = () => {};
  const executor = new Executor({
    defaultGraceMs: GRACE_MS,
    onEvent: (e: ExecutorEvent) => {
      if (e.type === "started") started.add(e.taskId);
      else exited.add(e.taskId);
      onChange();
    },
  });
  const until = (pred: () => boolean) =>
    new Promise<void>((resolve) => {
      if (pred()) return resolve();
      onChange = () => {
        if (pred()) resolve();
      };
    });
  const cmdline = STUBBORN ? `trap "" TERM; sleep 600` : "sleep 600";
  const ids = Array.from({ length: TASKS }, (_, i) => `kill-${i}`);
  try {
    let t = performance.now();
    for (const taskId of ids) {
      executor.launch({
        taskId,
        processes: [{ name: "main", cmdline }],
        env: { ROOST_BENCH_RUN: run },
        sandboxDir: path.join(tmp, taskId),
      });
    }
    await until(() => started.size + exited.size >= TASKS);
    if (exited.size > 0) throw new Error(`${exited.size} tasks ended before the kill`);
    note(`${TASKS} tasks started in ${Math.round(performance.now() - t)} ms (${STUBBORN ? "ignoring SIGTERM" : "sleep 600"})`);
    // Let the process table settle (every command exec'd) before measuring.
    await new Promise((r) => setTimeout(r, 500));

    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    let probing = true;
    let lastCheck = performance.now();
    let ioStallMax = 0;
    const probe = (): void => {
      if (!probing) return;
      setTimeout(
        () =>
          setImmediate(() => {
            const now = performance.now();
            ioStallMax = Math.max(ioStallMax, now - lastCheck);
            lastCheck = now;
            probe();
          }),
        5,
      );
    };
    probe();
    const cpu0 = process.cpuUsage();
    t = performance.now();
    for (const id of ids) void executor.kill(id, GRACE_MS);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      until(() => exited.size >= TASKS).then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    const wallMs = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    probing = false;
    ioStallMax = Math.max(ioStallMax, performance.now() - lastCheck);
    loop.disable();
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const left = processesWithEnv("ROOST_BENCH_RUN", run);
    note(
      `${timedOut ? `TIMED OUT with ${exited.size} of ${TASKS} exited after` : "killed in"} ${Math.round(wallMs)} ms wall, ` +
        `${Math.round(cpuMs)} ms CPU (user ${Math.round(cpu.user / 1000)}, system ${Math.round(cpu.system / 1000)}); ` +
        `I/O stalled up to ${Math.round(ioStallMax)} ms; ${left.length} processes left`,
    );
    if (!timedOut && left.length > 0) throw new Error(`${left.length} processes of killed tasks survived: ${left.slice(0, 10).join(" ")}`);
    const k = `kill${TASKS}`;
    return {
      [`${k}CpuMs`]: Math.round(cpuMs),
      [`${k}WallMs`]: Math.round(wallMs),
      [`${k}LoopDelayMaxMs`]: Math.round(loop.max / 1e6),
      [`${k}IoStallMaxMs`]: Math.round(ioStallMax),
      timedOut: timedOut ? 1 : 0,
      exited: exited.size,
      tasks: TASKS,
      graceMs: GRACE_MS,
      stubborn: STUBBORN ? 1 : 0,
    };
  } finally {
    for (const pid of processesWithEnv("ROOST_BENCH_RUN", run)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}
