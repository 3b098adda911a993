// Agent recovery: a real Agent on a MemoryBus with a tiny fake scheduler that records
// registrations and status updates (and acknowledges them, unless told not to). An agent
// "killed with -9" is dropped with abandon(): processes and checkpoint are left as they are.
// A new Agent on the same work dir must re-attach, report what ended meanwhile, and so on.

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, killCheckpointedTasks } from "../src/agent/agent.js";
import { readCheckpoint, type Checkpoint } from "../src/agent/checkpoint.js";
import { isAlive } from "../src/agent/proc.js";
import type { KillRequest, LaunchRequest, RegisterRequest, StatusRequest } from "../src/agent/protocol.js";
import type { StatusUpdate } from "../src/agent/statusQueue.js";
import { subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";
import { waitForFile, waitForPid } from "./support/files.js";
import { ROOST as ROOST_CLI } from "./support/roost.js";

const AGENT_ID = "agent-r";

/** Serves what a leader serves to agents, and records it. */
class FakeScheduler {
  readonly registrations: RegisterRequest[] = [];
  /** Updates acknowledged, in arrival order (duplicates included). */
  readonly acked: StatusUpdate[] = [];
  /** Every delivery attempt, acknowledged or not. */
  readonly attempts: StatusUpdate[] = [];
  ack = true;
  private readonly listeners = new Set<() => void>();

  constructor(bus: MemoryBus) {
    bus.serve(subjects.anyAgent.register, (d) => {
      this.registrations.push(d as RegisterRequest);
      this.notify();
      return { ok: true, epoch: 1, schedulerId: "fake" };
    });
    bus.serve(subjects.anyAgent.status, (d) => {
      const u = (d as StatusRequest).update as StatusUpdate;
      this.attempts.push(u);
      this.notify();
      if (!this.ack) return { ok: false, error: "not acknowledging (test)" };
      this.acked.push(u);
      this.notify();
      return { ok: true };
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Resolves with pred's first defined value, checked now and after every message. */
  waitFor<T>(pred: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
    const now = pred();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(
          new Error(`timed out waiting for ${what}; acked: ${JSON.stringify(this.acked.map((u) => `${u.taskId}#${u.seq}:${u.state}`))}`),
        );
      }, timeoutMs);
      const check = (): void => {
        const v = pred();
        if (v === undefined) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(v);
      };
      this.listeners.add(check);
    });
  }

  status(taskId: string, state: StatusUpdate["state"]): Promise<StatusUpdate> {
    return this.waitFor(() => this.acked.find((u) => u.taskId === taskId && u.state === state), `${taskId} ${state}`);
  }

  of(taskId: string): string[] {
    return this.acked.filter((u) => u.taskId === taskId).map((u) => `${u.seq}:${u.state}`);
  }
}

let tmp: string;
let workDir: string;
let bus: MemoryBus;
let fake: FakeScheduler;
let agents: Agent[];
/** Agent processes (agentProcess.ts) started by the current test. */
let children: ChildProcess[];

beforeEach(async () => {
  tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-recovery-"));
  workDir = path.join(tmp, "agent");
  bus = new MemoryBus();
  fake = new FakeScheduler(bus);
  agents = [];
  children = [];
});

afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // Safety net: nothing started under this test's work dir may survive it.
  for (const pid of processesUnder(tmp)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const a of agents) a.abandon();
  await bus.close();
  await fs.promises.rm(tmp, { recursive: true, force: true });
});

function newAgent(opts: { bootId?: string; agentId?: string; checkpoint?: boolean } = {}): Agent {
  const a = new Agent({
    bus,
    agentId: opts.agentId ?? AGENT_ID,
    host: "host-r",
    attributes: { host: "host-r" },
    resources: { cpus: 4, ramMb: 4096, diskMb: 4096, ports: [[31000, 31099]] },
    workDir,
    bootId: opts.bootId ?? "boot-A",
    heartbeatMs: 60_000,
    graceMs: 1000,
    statusRetryMs: 50,
    checkpoint: opts.checkpoint,
  });
  agents.push(a);
  return a;
}

async function launch(taskId: string, processes: Record<string, string>): Promise<void> {
  const req: LaunchRequest = {
    taskId,
    job: "www-data/devel/recovery",
    instance: 0,
    processes: Object.entries(processes).map(([name, cmdline]) => ({ name, cmdline })),
    ports: {},
    resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
  };
  const reply = await bus.request<{ ok: boolean; error?: string }>(subjects.launch(AGENT_ID), req);
  expect(reply).toEqual({ ok: true });
}

async function kill(taskId: string, graceMs = 1000): Promise<void> {
  const req: KillRequest = { taskId, graceMs };
  const reply = await bus.request<{ ok: boolean }>(subjects.kill(AGENT_ID), req);
  expect(reply.ok).toBe(true);
}

function sandbox(taskId: string): string {
  return path.join(workDir, "sandboxes", taskId);
}

/** Polls (bounded) until pred holds. */
async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function checkpoint(): Checkpoint {
  const cp = readCheckpoint(path.join(workDir, "checkpoint.json"));
  expect(cp).not.toBeNull();
  return cp!;
}

function startTimeOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

/** Live processes whose ROOST_SANDBOX lies under dir (every task process of these tests). */
function processesUnder(dir: string): number[] {
  const needle = Buffer.from(`ROOST_SANDBOX=${dir}${path.sep}`);
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = fs.readFileSync(`/proc/${entry}/environ`);
      const at = env.indexOf(needle);
      if ((at === 0 || (at > 0 && env[at - 1] === 0)) && isAlive(Number(entry))) out.push(Number(entry));
    } catch {
      // gone or unreadable
    }
  }
  return out;
}

describe("Agent recovery (same boot)", () => {
  it("re-attaches to a running task after a restart: same pids, reported running, killable as a tree", async () => {
    const a1 = newAgent();
    await a1.start();
    await launch("t-run", {
      web: "echo $$ > web.pid; sleep 1000",
      tree: ["sh -c 'echo $$ > bg.pid; exec sleep 1000' &", "setsid sh -c 'echo $$ > sid.pid; exec sleep 1000' &", "wait"].join("\n"),
    });
    const running = await fake.status("t-run", "RUNNING");
    const web = await waitForPid(path.join(sandbox("t-run"), "web.pid"));
    const bg = await waitForPid(path.join(sandbox("t-run"), "bg.pid"));
    const sid = await waitForPid(path.join(sandbox("t-run"), "sid.pid"));
    expect(running.message).toContain(String(web));

    // The checkpoint names the processes: the wrapper (watched, with its start time) and the command.
    await until(() => checkpoint().tasks[0]?.processes.every((p) => p.commandPid !== null) ?? false, "command pids checkpointed");
    const cp = checkpoint();
    expect(cp).toMatchObject({ version: 1, agentId: AGENT_ID, bootId: "boot-A" });
    expect(cp.tasks.map((t) => t.taskId)).toEqual(["t-run"]);
    const webRec = cp.tasks[0]!.processes.find((p) => p.name === "web")!;
    expect(webRec.commandPid).toBe(web);
    expect(webRec.startTime).toBe(startTimeOf(webRec.pid!));
    const wrappers = cp.tasks[0]!.processes.map((p) => p.pid!);

    // `roost agent` on SIGTERM without --kill-tasks-on-exit: the tasks keep running.
    await a1.stop({ killTasks: false });
    for (const pid of [web, bg, sid, ...wrappers]) expect(isAlive(pid)).toBe(true);
    expect(fs.existsSync(path.join(workDir, "checkpoint.json"))).toBe(true);

    const a2 = newAgent();
    await a2.start();
    expect(a2.recovery).toEqual({ rebooted: false, adopted: ["t-run"], lost: [], restoredUpdates: 0 });
    expect(fake.registrations.at(-1)!.running).toEqual(["t-run"]);
    expect(a2.executor.runningTasks()).toEqual(["t-run"]);
    for (const pid of [web, bg, sid, ...wrappers]) expect(isAlive(pid)).toBe(true);

    await kill("t-run");
    const killed = await fake.status("t-run", "KILLED");
    expect(killed.seq).toBe(3); // STARTING 1, RUNNING 2 (first agent), KILLED 3
    expect(killed.message).toBe("killed by scheduler (ended by SIGTERM)");
    for (const pid of [web, bg, sid, ...wrappers]) expect(isAlive(pid)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
    expect(fake.of("t-run")).toEqual(["1:STARTING", "2:RUNNING", "3:KILLED"]);
    await until(() => checkpoint().tasks.length === 0 && checkpoint().statusUpdates.pending.length === 0, "checkpoint emptied");
    expect(checkpoint().ended).toContain("t-run");
  });

  it("reports tasks that ended while the agent was down with their exit codes, and LOST without an exit file", async () => {
    const a1 = newAgent();
    await a1.start();
    const waitGo = "while [ ! -f go ]; do sleep 0.02; done";
    await launch("t-fail", { main: `${waitGo}; exit 3` });
    await launch("t-ok", { main: `${waitGo}; exit 0`, other: `${waitGo}; true` });
    await launch("t-gone", { main: "echo $$ > main.pid; sleep 1000" });
    await Promise.all(["t-fail", "t-ok", "t-gone"].map((t) => fake.status(t, "RUNNING")));
    await waitForPid(path.join(sandbox("t-gone"), "main.pid"));
    await until(() => checkpoint().tasks.every((t) => t.started), "started checkpointed");
    const goneWrapper = checkpoint().tasks.find((t) => t.taskId === "t-gone")!.processes[0]!.pid!;

    a1.abandon(); // kill -9

    // While no agent runs: two tasks end by themselves; one is killed outright (no exit status).
    for (const t of ["t-fail", "t-ok"]) fs.writeFileSync(path.join(sandbox(t), "go"), "");
    expect(await waitForFile(path.join(sandbox("t-fail"), "main.exit"))).toBe("3");
    expect(await waitForFile(path.join(sandbox("t-ok"), "main.exit"))).toBe("0");
    expect(await waitForFile(path.join(sandbox("t-ok"), "other.exit"))).toBe("0");
    process.kill(-goneWrapper, "SIGKILL");
    await until(() => !isAlive(goneWrapper), "t-gone's wrapper to die");

    const a2 = newAgent();
    await a2.start();
    const failed = await fake.status("t-fail", "FAILED");
    expect(failed).toMatchObject({ seq: 3, exitCode: 3, message: 'process "main" exited with code 3' });
    expect(await fake.status("t-ok", "FINISHED")).toMatchObject({ seq: 3, exitCode: 0 });
    const lost = await fake.status("t-gone", "LOST");
    expect(lost.seq).toBe(3);
    expect(lost.message).toBe('process "main" exited while the agent was down; exit status unknown');
    expect(lost.exitCode).toBeUndefined();
    // Ended tasks were still reported at registration (their final updates were on their way).
    expect([...fake.registrations.at(-1)!.running].sort()).toEqual(["t-fail", "t-gone", "t-ok"]);
    await until(() => a2.executor.runningTasks().length === 0, "nothing running");
    expect(processesUnder(tmp)).toEqual([]);
  });

  it("watches an adopted task: a process that fails later is reported with its code, the rest of the tree is killed", async () => {
    const a1 = newAgent();
    await a1.start();
    await launch("t-late", {
      worker: "echo $$ > worker.pid; while [ ! -f fail ]; do sleep 0.02; done; exit 5",
      helper: "echo $$ > helper.pid; sleep 1000",
    });
    await fake.status("t-late", "RUNNING");
    const helper = await waitForPid(path.join(sandbox("t-late"), "helper.pid"));
    await waitForPid(path.join(sandbox("t-late"), "worker.pid"));
    a1.abandon();

    const a2 = newAgent();
    await a2.start();
    expect(fake.registrations.at(-1)!.running).toEqual(["t-late"]);
    fs.writeFileSync(path.join(sandbox("t-late"), "fail"), "");
    const failed = await fake.status("t-late", "FAILED");
    expect(failed).toMatchObject({ seq: 3, exitCode: 5, message: 'process "worker" exited with code 5' });
    expect(isAlive(helper)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
  });

  it("re-sends unacknowledged status updates after a restart, with their original seqs, in order", async () => {
    fake.ack = false;
    const a1 = newAgent();
    await a1.start();
    await launch("t-acks", { main: "echo $$ > main.pid; sleep 1000" });
    // STARTING was tried and refused (RUNNING waits behind it); the checkpoint holds both.
    await fake.waitFor(
      () => (fake.attempts.some((u) => u.taskId === "t-acks" && u.state === "STARTING") ? true : undefined),
      "STARTING tried",
    );
    await until(() => checkpoint().statusUpdates.pending.length === 2, "two pending updates checkpointed");
    const pending = checkpoint().statusUpdates.pending;
    expect(pending.map((u) => [u.taskId, u.seq, u.state])).toEqual([
      ["t-acks", 1, "STARTING"],
      ["t-acks", 2, "RUNNING"],
    ]);
    expect(checkpoint().statusUpdates.lastSeqs).toEqual({ "t-acks": 2 });
    const main = await waitForPid(path.join(sandbox("t-acks"), "main.pid"));
    a1.abandon();

    fake.ack = true;
    const a2 = newAgent();
    await a2.start();
    expect(a2.recovery).toMatchObject({ adopted: ["t-acks"], restoredUpdates: 2 });
    await fake.status("t-acks", "RUNNING");
    // The very same updates (seq and timestamp), in order.
    expect(fake.acked.filter((u) => u.taskId === "t-acks")).toEqual(pending);
    expect(isAlive(main)).toBe(true);

    // Seqs go on from there.
    await kill("t-acks");
    expect((await fake.status("t-acks", "KILLED")).seq).toBe(3);
    expect(fake.of("t-acks")).toEqual(["1:STARTING", "2:RUNNING", "3:KILLED"]);
    expect(isAlive(main)).toBe(false);
  });

  it("refuses a duplicated launch of a task that ended before the restart", async () => {
    const a1 = newAgent();
    await a1.start();
    await launch("t-once", { main: "true" });
    await fake.status("t-once", "FINISHED");
    await until(() => checkpoint().ended.includes("t-once") && checkpoint().statusUpdates.pending.length === 0, "end checkpointed");
    a1.abandon();

    const a2 = newAgent();
    await a2.start();
    await launch("t-once", { main: "touch ran-again" });
    expect(a2.executor.runningTasks()).toEqual([]);
    expect(fs.existsSync(path.join(sandbox("t-once"), "ran-again"))).toBe(false);
  });
});

describe("Agent recovery (host rebooted)", () => {
  it("reports every checkpointed task LOST and adopts nothing", async () => {
    const a1 = newAgent({ bootId: "boot-A" });
    await a1.start();
    await launch("t-boot", { main: "echo $$ > main.pid; sleep 1000" });
    await fake.status("t-boot", "RUNNING");
    const main = await waitForPid(path.join(sandbox("t-boot"), "main.pid"));
    await until(() => checkpoint().tasks[0]?.started ?? false, "started checkpointed");
    const wrapper = checkpoint().tasks[0]!.processes[0]!.pid!;
    a1.abandon();
    // The reboot: every process of the host is gone.
    process.kill(-wrapper, "SIGKILL");
    await until(() => !isAlive(wrapper) && !isAlive(main), "the tasks' processes to die");

    const a2 = newAgent({ bootId: "boot-B" });
    await a2.start();
    expect(a2.recovery).toEqual({ rebooted: true, adopted: [], lost: ["t-boot"], restoredUpdates: 0 });
    expect(a2.executor.runningTasks()).toEqual([]);
    const lost = await fake.status("t-boot", "LOST");
    expect(lost).toMatchObject({ seq: 3, message: "the host rebooted" });
    await until(
      () => checkpoint().bootId === "boot-B" && checkpoint().tasks.length === 0 && checkpoint().statusUpdates.pending.length === 0,
      "new checkpoint",
    );
  });
});

describe("Agent checkpoint options", () => {
  it("writes no checkpoint with checkpoint: false, and kills its tasks on stop()", async () => {
    const a = newAgent({ checkpoint: false });
    await a.start();
    await launch("t-nocp", { main: "echo $$ > main.pid; sleep 1000" });
    await fake.status("t-nocp", "RUNNING");
    const main = await waitForPid(path.join(sandbox("t-nocp"), "main.pid"));
    await a.stop();
    expect(isAlive(main)).toBe(false);
    expect(fs.existsSync(path.join(workDir, "checkpoint.json"))).toBe(false);
  });

  it("refuses to start on another agent's checkpoint", async () => {
    const a1 = newAgent();
    await a1.start();
    await a1.stop({ killTasks: false });
    expect(fs.existsSync(path.join(workDir, "checkpoint.json"))).toBe(true);
    const other = newAgent({ agentId: "agent-other" });
    await expect(other.start()).rejects.toThrow(/checkpoint of agent agent-r, not agent-other/);
  });

  it("sets an unreadable checkpoint aside and starts without it", async () => {
    fs.mkdirSync(workDir, { recursive: true });
    fs.writeFileSync(path.join(workDir, "checkpoint.json"), "{not json");
    const a = newAgent();
    await a.start();
    expect(a.recovery).toBeNull();
    expect(fs.readdirSync(workDir).some((f) => f.startsWith("checkpoint.json.unreadable-"))).toBe(true);
  });
});

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** An agent in a process of its own (test/support/agentProcess.ts), and the JSON lines it prints. */
function agentProcess(mode: "launch" | "recover", bootId = "boot-A") {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/agentProcess.ts", mode, workDir, bootId], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(JSON.parse(l));
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    exited,
    /** The first line with the given key. */
    line(key: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`agent process (${mode}) printed no "${key}" line within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const check = (): void => {
          const l = lines.find((x) => key in x);
          if (!l) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(l);
        };
        waiters.add(check);
        check();
        void exited.then(() => setTimeout(check, 50));
      });
    },
  };
}

function ppidOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

describe("Agent recovery after a real kill -9", () => {
  it("a new agent process re-attaches to the tasks of one killed with -9 and reports their exit code", async () => {
    const first = agentProcess("launch");
    const { running } = await first.line("running");
    expect(running).toMatchObject({ taskId: "t-k9", seq: 2 });
    const dir = path.join(workDir, "sandboxes", "t-k9");
    const main = await waitForPid(path.join(dir, "main.pid"));
    const side = await waitForPid(path.join(dir, "side.pid"));
    const wrappers = checkpoint().tasks[0]!.processes.map((p) => p.pid!);
    expect(wrappers.map(ppidOf)).toEqual([first.child.pid, first.child.pid]);

    first.child.kill("SIGKILL");
    await first.exited;
    for (const pid of [main, side, ...wrappers]) expect(isAlive(pid)).toBe(true);
    // Orphans now: nobody we know will see them exit.
    for (const pid of wrappers) expect(ppidOf(pid)).not.toBe(first.child.pid);

    const second = agentProcess("recover");
    const { registered, recovery } = await second.line("registered");
    expect((registered as { running: string[] }).running).toEqual(["t-k9"]);
    expect(recovery).toEqual({ rebooted: false, adopted: ["t-k9"], lost: [], restoredUpdates: 0 });
    fs.writeFileSync(path.join(dir, "go"), "");
    const { ended } = await second.line("ended");
    expect(ended).toMatchObject({ taskId: "t-k9", seq: 3, state: "FAILED", exitCode: 4, message: 'process "main" exited with code 4' });
    await second.exited;
    expect(second.child.exitCode).toBe(0);
    for (const pid of [main, side, ...wrappers]) expect(isAlive(pid)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
  });
});

/** A TCP server that accepts and never speaks: a NATS client connecting to it waits for its INFO. */
async function silentServer(): Promise<{ url: string; connected: Promise<void>; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  let onConnect!: () => void;
  const connected = new Promise<void>((r) => (onConnect = r));
  const server = net.createServer((s) => {
    sockets.push(s);
    onConnect();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    connected,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const BOOT_ID = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

/**
 * A task left running by an agent gone as after kill -9 (abandoned, checkpoint written), on this
 * host's real boot id unless told otherwise; its command's pid and its wrapper's.
 */
async function orphanedTask(
  taskId: string,
  cmdline: string,
  opts: { bootId?: string; finalizationWaitSecs?: number } = {},
): Promise<{ main: number; wrapper: number }> {
  const a = newAgent({ bootId: opts.bootId ?? BOOT_ID });
  await a.start();
  const req: LaunchRequest = {
    taskId,
    job: "www-data/devel/recovery",
    instance: 0,
    processes: [{ name: "main", cmdline: `echo $$ > main.pid; ${cmdline}` }],
    ports: {},
    resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
    ...(opts.finalizationWaitSecs !== undefined ? { finalizationWaitSecs: opts.finalizationWaitSecs } : {}),
  };
  expect(await bus.request(subjects.launch(AGENT_ID), req)).toEqual({ ok: true });
  await fake.status(taskId, "RUNNING");
  const main = await waitForPid(path.join(sandbox(taskId), "main.pid"));
  await until(() => checkpoint().tasks[0]?.started ?? false, "started checkpointed");
  const wrapper = checkpoint().tasks[0]!.processes[0]!.pid!;
  a.abandon();
  return { main, wrapper };
}

/**
 * `roost agent` as roost dev runs it (--control-stdin), against a NATS that never answers, once
 * it is connecting; `saw(text)` resolves when its log has said `text`.
 */
async function connectingAgent(flags: string[]) {
  const nats = await silentServer();
  const child = spawn(
    process.execPath,
    [ROOST_CLI, "agent", "--nats", nats.url, "--id", AGENT_ID, "--work-dir", workDir, "--control-stdin", "--no-isolation", ...flags],
    { cwd: tmp, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ROOST_LOG_LEVEL: "info" } },
  );
  children.push(child);
  let output = "";
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    output += d;
    for (const w of [...waiters]) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exitCode = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  await Promise.race([nats.connected, exitCode.then(() => Promise.reject(new Error(`the agent exited before connecting: ${output}`)))]);
  return {
    stdin: child.stdin!,
    output: () => output,
    saw: (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!output.includes(text)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
    /** Its exit code, once it has exited and the stand-in NATS is closed. */
    exited: async () => {
      const code = await exitCode;
      await nats.close();
      return code;
    },
  };
}

describe("roost agent stopped while it connects", () => {
  it("kills the checkpoint's tasks with --kill-tasks-on-exit (and leaves them running without it)", async () => {
    const { main, wrapper } = await orphanedTask("t-conn", "sleep 1000");

    // Its control pipe closes (roost dev was killed) while it still connects.
    const kept = await connectingAgent([]);
    kept.stdin.end();
    expect(await kept.exited()).toBe(0);
    expect(isAlive(main)).toBe(true);
    expect(isAlive(wrapper)).toBe(true);

    const killing = await connectingAgent(["--kill-tasks-on-exit"]);
    killing.stdin.end();
    expect(await killing.exited()).toBe(0);
    expect(killing.output()).toContain("killing the checkpoint's tasks before connecting");
    expect(isAlive(main)).toBe(false);
    expect(isAlive(wrapper)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
    // Left for the next agent on this work dir, which reports what it finds.
    expect(checkpoint().tasks.map((t) => t.taskId)).toEqual(["t-conn"]);
  });

  it("a second stop hastens those kills: a task that ignores SIGTERM, with a 60 s grace, is SIGKILLed at once", async () => {
    const { main } = await orphanedTask("t-stubborn", "trap '' TERM; sleep 1000", { finalizationWaitSecs: 60 });
    const agent = await connectingAgent(["--kill-tasks-on-exit"]);
    agent.stdin.write("stop an orderly stop\n");
    await agent.saw("killing the checkpoint's tasks before connecting");
    expect(isAlive(main)).toBe(true); // SIGTERM ignored; its grace has 60 s to run
    agent.stdin.write("kill hurry\n");
    expect(await agent.exited()).toBe(0);
    expect(isAlive(main)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
  });

  it("kills nothing from another agent's checkpoint, or another boot's", async () => {
    const { main } = await orphanedTask("t-other", "sleep 1000", { bootId: "boot-A" });
    const opts = { workDir, agentId: AGENT_ID, reason: "test", graceMs: 0 };
    expect(await killCheckpointedTasks({ ...opts, agentId: "agent-other", bootId: "boot-A" })).toEqual([]);
    expect(await killCheckpointedTasks({ ...opts, bootId: "boot-B" })).toEqual([]);
    expect(isAlive(main)).toBe(true);
    // The same call on its own checkpoint and boot kills it.
    expect(await killCheckpointedTasks({ ...opts, bootId: "boot-A" })).toEqual(["t-other"]);
    expect(isAlive(main)).toBe(false);
    expect(processesUnder(tmp)).toEqual([]);
  });
});
