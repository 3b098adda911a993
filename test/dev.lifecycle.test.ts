// `roost dev` owns its directory and its children: one per directory (a lock), signals stop it in
// order (schedulers quiesce, agents kill their tasks and the KILLEDs reach the log with the true
// reason, then the rest), nothing is left behind even after kill -9, dead children are restarted,
// bad flags are refused at once. Real processes in temp dirs; processes are found by scanning
// /proc for those whose command line or working directory mentions the test's directory.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { acquireDevLock } from "../src/cli/devLock.js";
import { startNatsServer } from "../src/natsServer/server.js";
import { ROOST, roost } from "./support/roost.js";
import { stopProcess } from "./support/stop.js";

const SERVICE = `
role: www-data
environment: devel
name: sleeper
instances: 2
service: true
resources: { cpus: 0.1, ramMb: 16, diskMb: 16 }
processes: [{ name: main, cmdline: "sleep 1000" }]
`;

const dirs: string[] = [];
const devs: Dev[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "roost-life-"));
  dirs.push(d);
  writeFileSync(join(d, "svc.yaml"), SERVICE);
  return d;
}

/** `roost dev --json` in a process group of its own (as a shell runs it), its output awaitable. */
class Dev {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly dir: string,
    args: string[] = [],
  ) {
    this.child = spawn(process.execPath, [ROOST, "dev", "--agents", "2", "--json", ...args], {
      cwd: dir,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // The children's logs as a user sees them (under vitest they would default to "warn").
      env: { ...process.env, ROOST_LOG_LEVEL: "info" },
    });
    createInterface({ input: this.child.stdout! }).on("line", (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((r) => this.child.on("exit", (code, signal) => r({ code, signal })));
    devs.push(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first line (seen so far or later) that parses and satisfies pred. */
  async until(pred: (m: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; ) {
      for (; i < this.lines.length; i++) {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(this.lines[i]!);
        } catch {
          continue;
        }
        if (pred(m)) return m;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`no ${what}; roost dev said:\n${this.lines.slice(-20).join("\n")}\n${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ready(): Promise<Record<string, unknown>> {
    return this.until((m) => typeof m.clusterFile === "string", "cluster ready");
  }

  /**
   * Resolves once agent `name` runs again and has registered with a leader: the pid of its newest
   * start (none exited since) wrote "registered" to its log. An agent that starts while the
   * nats-server is down exits ("cannot reach NATS") and is restarted a second later; roost dev
   * killed -9 in that second leaves its tasks behind, with no agent to kill them (CI, twice).
   */
  async agentBack(name: string, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const logFile = join(this.dir, ".roost", "logs", `${name}.log`);
    for (;;) {
      let pid = 0;
      for (const l of this.lines) {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(l);
        } catch {
          continue;
        }
        if (m.restarted === name) pid = m.pid as number;
        else if (m.exited === name) pid = 0;
      }
      if (pid !== 0) {
        const registered = readFileSync(logFile, "utf8")
          .split("\n")
          .some((l) => l.includes('"registered"') && l.includes(`"pid":${pid},`));
        if (registered) return pid;
      }
      if (Date.now() > deadline) throw new Error(`${name} did not run and register again within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The pids roost dev printed once its children had started. */
  async pids(): Promise<Record<string, number>> {
    return (await this.until((m) => typeof m.pids === "object" && m.pids !== null && !Array.isArray(m.pids), "the children's pids"))
      .pids as Record<string, number>;
  }
}

/** Live processes (not zombies) whose command line or working directory mentions dir. */
function processesOf(dir: string): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // not ours to read
      }
      if (cmd.includes(dir) || cwd === dir || cwd.startsWith(`${dir}/`)) out.push({ pid, cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Poll /proc until the processes of dir satisfy `done` (or the deadline passes): what is left. */
async function awaitLeft(
  dir: string,
  done: (left: Array<{ pid: number; cmd: string }>) => boolean,
  timeoutMs: number,
): Promise<Array<{ pid: number; cmd: string }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = processesOf(dir);
    if (done(left) || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Poll /proc until no process of dir is left (or the deadline passes): what is left. */
function awaitNoneLeft(dir: string, timeoutMs: number): Promise<Array<{ pid: number; cmd: string }>> {
  return awaitLeft(dir, (left) => left.length === 0, timeoutMs);
}

interface LogLine {
  seq: number;
  type: string;
  epoch: number;
  ts: number;
  reason: string;
  data: Record<string, unknown>;
}

/** The log of a stopped dev cluster: a nats-server on its store, then `roost log tail --json`. */
async function readStoppedLog(dir: string): Promise<LogLine[]> {
  const server = await startNatsServer({ dir: join(dir, ".roost", "nats") });
  try {
    const r = await roost(["log", "tail", "--from", "1", "--json", "--nats", server.url], dir);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as LogLine);
  } finally {
    await server.stop();
  }
}

async function runService(dir: string): Promise<string[]> {
  const r = await roost(["job", "create", "svc.yaml", "--wait", "--json"], dir);
  expect(r.code, r.stderr).toBe(0);
  // --wait --json prints JSON lines: created, one per change, then done (with the task ids).
  const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { event: string; taskIds: string[] };
  expect(done.event).toBe("done");
  return done.taskIds;
}

function killedWithReason(log: LogLine[], taskIds: string[], why: RegExp): LogLine[] {
  const killed = log.filter((e) => e.type === "TaskStateChanged" && e.data.to === "KILLED" && taskIds.includes(e.data.taskId as string));
  expect(killed.map((e) => e.data.taskId).sort()).toEqual([...taskIds].sort());
  for (const e of killed) expect(e.reason).toMatch(why);
  return killed;
}

afterAll(async () => {
  for (const d of devs) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill("SIGKILL");
  for (const dir of dirs) {
    for (const p of processesOf(dir)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("roost dev owns its directory and its children", () => {
  it("refuses bad --agents at once, naming the flag and the rule, and creates nothing", async () => {
    const dir = tempDir();
    const t0 = Date.now();
    const results = await Promise.all(["abc", "0", "-1", "1.5", "1000"].map((n) => roost(["dev", `--agents=${n}`], dir)));
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const r of results) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/--agents must be a whole number from 1 to \d+/);
    }
    expect(existsSync(join(dir, ".roost"))).toBe(false);
  }, 30_000);

  let dirA: string;
  let devA: Dev;
  let tasksA: string[];

  it("a second roost dev in the same directory refuses, touching nothing; the first keeps running", async () => {
    dirA = tempDir();
    devA = new Dev(dirA);
    await devA.ready();
    const clusterFile = join(dirA, ".roost", "cluster.json");
    const before = readFileSync(clusterFile, "utf8");
    const logsBefore = readdirSync(join(dirA, ".roost", "logs")).sort();
    const procsBefore = processesOf(dirA)
      .map((p) => p.pid)
      .sort();

    const second = await roost(["dev", "--agents", "2"], dirA);
    expect(second.code).not.toBe(0);
    expect(second.stderr.trim()).toBe(`roost dev (pid ${devA.pid}) already runs here`);
    expect(second.stdout).toBe("");

    expect(readFileSync(clusterFile, "utf8")).toBe(before);
    expect(readdirSync(join(dirA, ".roost", "logs")).sort()).toEqual(logsBefore);
    expect(
      processesOf(dirA)
        .map((p) => p.pid)
        .sort(),
    ).toEqual(procsBefore);
    expect(devA.child.exitCode).toBe(null);
    tasksA = await runService(dirA); // the first one still serves: a job runs
    expect(tasksA).toHaveLength(2);
  }, 90_000);

  it("Ctrl-C to the process group: an ordered stop, no error in any log, tasks KILLED with the true reason", async () => {
    process.kill(-devA.pid, "SIGINT");
    expect((await devA.exited).code).toBe(0);
    expect(await awaitNoneLeft(dirA, 10_000)).toEqual([]);
    expect(existsSync(join(dirA, ".roost", "cluster.json"))).toBe(false);
    expect(existsSync(join(dirA, ".roost", "dev.lock"))).toBe(false);
    expect(devA.lines.join("\n") + devA.stderr).not.toMatch(/Error|\n\s+at /);
    const logs = readdirSync(join(dirA, ".roost", "logs")).filter((f) => f.endsWith(".log"));
    expect(logs.sort()).toEqual(["agent-1.log", "agent-2.log", "scheduler-1.log"]);
    for (const f of logs) {
      const text = readFileSync(join(dirA, ".roost", "logs", f), "utf8");
      expect(text, f).not.toMatch(/Error|\n\s+at /);
      expect(text, f).toMatch(/"msg":"stopped"/);
      for (const line of text.trim().split("\n")) expect(JSON.parse(line).level, `${f}: ${line}`).toBeLessThan(50);
    }
    const log = await readStoppedLog(dirA);
    killedWithReason(log, tasksA, /reported KILLED .*: roost dev is shutting down \(SIGINT\) \(ended by (SIGTERM|SIGKILL|POST \S+)\)$/);
  }, 60_000);

  it("SIGHUP: an ordered stop, nothing left, the KILLEDs logged before it ended; the directory serves again", async () => {
    const dir = tempDir();
    const dev = new Dev(dir);
    await dev.ready();
    const tasks = await runService(dir);
    const stopAt = Date.now();
    process.kill(dev.pid, "SIGHUP");
    expect((await dev.exited).code).toBe(0);
    expect(await awaitNoneLeft(dir, 10_000)).toEqual([]);

    const again = new Dev(dir);
    await again.ready();
    const r = await roost(["log", "tail", "--from", "1", "--json"], dir);
    expect(r.code, r.stderr).toBe(0);
    const log = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as LogLine);
    const killed = killedWithReason(
      log,
      tasks,
      /reported KILLED .*: roost dev is shutting down \(SIGHUP\) \(ended by (SIGTERM|SIGKILL|POST \S+)\)$/,
    );
    // Recorded by the first run's leader as it stopped, not replayed at this start.
    const elections = log.filter((e) => e.type === "LeaderElected");
    expect(elections).toHaveLength(2);
    for (const e of killed) {
      expect(e.epoch).toBe(elections[0]!.epoch);
      expect(e.seq).toBeLessThan(elections[1]!.seq);
      expect(e.ts).toBeGreaterThanOrEqual(stopAt);
    }
    // The stopping leader had quiesced: it did not reschedule the killed services (a later leader does).
    const rescheduledThen = log.filter(
      (e) => e.type === "TaskCreated" && tasks.includes(e.data.ancestorId as string) && e.epoch === elections[0]!.epoch,
    );
    expect(rescheduledThen).toEqual([]);
    process.kill(again.pid, "SIGTERM");
    expect((await again.exited).code).toBe(0);
    expect(await awaitNoneLeft(dir, 10_000)).toEqual([]);
  }, 90_000);

  it("restarts a child that dies (an agent, the nats-server) and says so; after kill -9 of roost dev nothing is left", async () => {
    const dir = tempDir();
    const dev = new Dev(dir);
    await dev.ready();
    const pids = await dev.pids();
    await runService(dir);

    // Both at once: the agent's restart may come while the nats-server is still down, so it
    // exits ("cannot reach NATS") and is restarted again.
    process.kill(pids["agent-2"]!, "SIGKILL");
    process.kill(pids["nats-server"]!, "SIGKILL");
    const agent = await dev.until((m) => m.restarted === "agent-2", "agent-2 restarted");
    expect(agent).toMatchObject({ signal: "SIGKILL", pid: expect.any(Number) });
    const server = await dev.until((m) => m.restarted === "nats-server", "nats-server restarted");
    expect(server).toMatchObject({ signal: "SIGKILL", pid: expect.any(Number) });
    // The cluster serves again: the leader answers (after the clients reconnect).
    const deadline = Date.now() + 30_000;
    let status = await roost(["job", "status", "www-data/devel/sleeper", "--json"], dir);
    while ((status.code !== 0 || /no leader answered/.test(status.stderr)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      status = await roost(["job", "status", "www-data/devel/sleeper", "--json"], dir);
    }
    expect(status.stderr).not.toMatch(/no leader answered/);
    expect(status.code, status.stderr).toBe(0);
    // Every agent runs again: one that exited meanwhile, restarted by nobody, would leave its tasks.
    await dev.agentBack("agent-2");

    process.kill(dev.pid, "SIGKILL");
    expect(await awaitNoneLeft(dir, 10_000)).toEqual([]);

    // Its lock is left behind, naming a dead pid: the next roost dev there takes it over.
    expect(JSON.parse(readFileSync(join(dir, ".roost", "dev.lock"), "utf8")).pid).toBe(dev.pid);
    const again = new Dev(dir);
    await again.ready();
    process.kill(again.pid, "SIGTERM");
    expect((await again.exited).code).toBe(0);
    expect(await awaitNoneLeft(dir, 10_000)).toEqual([]);
  }, 90_000);

  it("kill -9 of roost dev while an agent waits to be restarted: its task runs on; the next roost dev there re-attaches to it and stops it", async () => {
    const dir = tempDir();
    const dev = new Dev(dir);
    await dev.ready();
    const pids = await dev.pids();
    await runService(dir);
    // Stopped first, so that it cannot restart the agent before it dies.
    await stopProcess(dev.pid);
    process.kill(pids["agent-2"]!, "SIGKILL");
    process.kill(dev.pid, "SIGKILL");

    // Everything else stops; agent-2's task, with no agent to kill it, runs on.
    const sandboxes = join(dir, ".roost", "agents", "agent-2", "sandboxes");
    const left = await awaitLeft(
      dir,
      (ps) => ps.length > 0 && ps.every((p) => p.cmd.includes(sandboxes) || !/roost|nats-server/.test(p.cmd)),
      10_000,
    );
    expect(left.map((p) => p.cmd)).toContainEqual("sleep 1000");
    expect(left.filter((p) => /roost\.js|nats-server/.test(p.cmd))).toEqual([]);
    const orphan = readdirSync(sandboxes).find((t) => left.some((p) => p.cmd.includes(join(sandboxes, t))));
    expect(orphan).toBeDefined();

    const again = new Dev(dir);
    await again.ready();
    const log = readFileSync(join(dir, ".roost", "logs", "agent-2.log"), "utf8");
    expect(log).toMatch(new RegExp(`re-attached to its tasks.*${orphan}|${orphan}.*re-attached to its tasks`));
    process.kill(again.pid, "SIGTERM");
    expect((await again.exited).code).toBe(0);
    expect(await awaitNoneLeft(dir, 10_000)).toEqual([]);
  }, 90_000);

  it("takes over a lock whose holder is gone or is not a roost dev; refuses one held by a live roost dev", async () => {
    const dir = tempDir();
    const path = join(dir, "dev.lock");
    const sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
    const gone = spawn("true", [], { stdio: "ignore" });
    await new Promise((r) => gone.on("exit", r));
    try {
      for (const stale of [{ pid: gone.pid }, { pid: sleeper.pid }]) {
        writeFileSync(path, JSON.stringify(stale));
        const lock = await acquireDevLock(dir);
        expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
        lock.release();
        expect(existsSync(path)).toBe(false);
      }
      // A lock of a live process that looks like roost dev: refused, left as it is.
      const dev = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)", ROOST, "dev"], { stdio: "ignore" });
      try {
        await new Promise((r) => dev.on("spawn", r));
        const held = JSON.stringify({ pid: dev.pid });
        writeFileSync(path, held);
        await expect(acquireDevLock(dir)).rejects.toThrow(`roost dev (pid ${dev.pid}) already runs here`);
        expect(readFileSync(path, "utf8")).toBe(held);
        // The same pid with another start time: a reused pid, so a stale lock.
        writeFileSync(path, JSON.stringify({ pid: dev.pid, starttime: "1" }));
        (await acquireDevLock(dir)).release();
      } finally {
        dev.kill("SIGKILL");
      }
    } finally {
      sleeper.kill("SIGKILL");
    }
  });
});
