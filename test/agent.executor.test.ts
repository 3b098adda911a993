import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Executor, type ExecutorEvent, type LaunchSpec } from "../src/agent/executor.js";
import { isAlive, listDescendants, processesWithEnv } from "../src/agent/proc.js";
import { waitForFile, waitForPid } from "./support/files.js";

type Exited = Extract<ExecutorEvent, { type: "exited" }>;
type Started = Extract<ExecutorEvent, { type: "started" }>;

/** Collects executor events and lets tests await them. */
class Events {
  readonly all: ExecutorEvent[] = [];
  private waiters: Array<{ pred: (e: ExecutorEvent) => boolean; resolve: (e: ExecutorEvent) => void }> = [];

  readonly onEvent = (e: ExecutorEvent): void => {
    this.all.push(e);
    for (const w of [...this.waiters]) {
      if (w.pred(e)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };

  next(pred: (e: ExecutorEvent) => boolean, timeoutMs = 15_000): Promise<ExecutorEvent> {
    const seen = this.all.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out waiting for an executor event")), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  async started(taskId: string): Promise<Started> {
    return (await this.next((e) => e.type === "started" && e.taskId === taskId)) as Started;
  }

  async exited(taskId: string): Promise<Exited> {
    return (await this.next((e) => e.type === "exited" && e.taskId === taskId)) as Exited;
  }

  of(taskId: string): ExecutorEvent[] {
    return this.all.filter((e) => e.taskId === taskId);
  }
}

/** Fails instead of hanging when a promise (e.g. a kill) does not settle in time. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sessionOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

let tmp: string;
let events: Events;
let executor: Executor;
/** Pids the tests learned about: killed in afterEach in case a test failed half-way. */
let seenPids: number[];
/** Put in the environment of every task of the current test, to find its processes. */
let testRun: string;

beforeEach(async () => {
  tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-executor-"));
  events = new Events();
  executor = new Executor({ onEvent: events.onEvent, defaultGraceMs: 2000 });
  seenPids = [];
  testRun = `${process.pid}-${Math.random().toString(36).slice(2)}`;
});

afterEach(async () => {
  // Safety net first, so that a broken kill cannot leave processes behind or hang the hook.
  for (const pid of [...seenPids, ...processesWithEnv("ROOST_TEST_RUN", testRun)]) {
    try {
      if (isAlive(pid)) process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await within(executor.shutdown(200), 10_000, "executor shutdown");
  await fs.promises.rm(tmp, { recursive: true, force: true });
});

function spec(taskId: string, processes: Record<string, string>, env: Record<string, string> = {}): LaunchSpec {
  return {
    taskId,
    processes: Object.entries(processes).map(([name, cmdline]) => ({ name, cmdline })),
    env: { ROOST_TEST_RUN: testRun, ...env },
    sandboxDir: path.join(tmp, taskId),
  };
}

async function pidFrom(file: string): Promise<number> {
  const pid = await waitForPid(file);
  seenPids.push(pid);
  return pid;
}

describe("Executor: task outcome", () => {
  it("reports exitCode 0 when every process exits 0", async () => {
    executor.launch(spec("t-ok", { a: "true", b: "exit 0" }));
    const started = await events.started("t-ok");
    expect(Object.keys(started.pids).sort()).toEqual(["a", "b"]);
    const exited = await events.exited("t-ok");
    expect(exited).toEqual({
      type: "exited",
      taskId: "t-ok",
      exitCode: 0,
      signal: null,
      message: "all processes finished",
      killed: false,
    });
    expect(events.of("t-ok").map((e) => e.type)).toEqual(["started", "exited"]);
    expect(executor.isRunning("t-ok")).toBe(false);
    expect(executor.runningTasks()).toEqual([]);
  });

  it("reports the code of a failing process, naming it", async () => {
    executor.launch(spec("t-fail", { web: "exit 3" }));
    const exited = await events.exited("t-fail");
    expect(exited.exitCode).toBe(3);
    expect(exited.killed).toBe(false);
    expect(exited.signal).toBeNull();
    expect(exited.message).toBe('process "web" exited with code 3');
  });

  it("kills the other processes when one fails and reports the failing code", async () => {
    const t = spec("t-two", {
      good: "echo $$ > good.pid; sleep 1000",
      bad: "while [ ! -f good.pid ]; do sleep 0.02; done; exit 4",
    });
    executor.launch(t);
    const goodPid = await pidFrom(path.join(t.sandboxDir, "good.pid"));
    const exited = await events.exited("t-two");
    expect(exited.exitCode).toBe(4);
    expect(exited.killed).toBe(false);
    expect(exited.message).toBe('process "bad" exited with code 4');
    expect(isAlive(goodPid)).toBe(false);
    expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
  });

  it("reports a process killed by a signal as 128 + signo", async () => {
    executor.launch(spec("t-sig", { usr: "kill -USR1 $$" }));
    const exited = await events.exited("t-sig");
    expect(exited.exitCode).toBe(128 + os.constants.signals.SIGUSR1);
    expect(exited.signal).toBe("SIGUSR1");
    expect(exited.message).toBe('process "usr" was killed by signal SIGUSR1');
    expect(exited.killed).toBe(false);
  });

  it("reports a launch failure with exit code 127 and a clear message", async () => {
    const file = path.join(tmp, "a-file");
    fs.writeFileSync(file, "not a directory\n");
    executor.launch({ taskId: "t-bad", processes: [{ name: "p", cmdline: "true" }], env: {}, sandboxDir: path.join(file, "sandbox") });
    const exited = await events.exited("t-bad");
    expect(exited.exitCode).toBe(127);
    expect(exited.killed).toBe(false);
    expect(exited.message).toMatch(/sandbox/);
    expect(events.of("t-bad").map((e) => e.type)).toEqual(["exited"]);
  });

  it("reports a failure to spawn a later process, killing the ones already started", async () => {
    // A NUL byte in an argument makes spawn() throw for the second process only.
    const t = spec("t-partial", { first: "sleep 1000", second: "true\0" });
    executor.launch(t);
    const exited = await events.exited("t-partial");
    expect(exited.exitCode).toBe(127);
    expect(exited.killed).toBe(false);
    expect(exited.message).toContain('"second"');
    expect(events.of("t-partial").map((e) => e.type)).toEqual(["exited"]);
    expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
  });

  it("leaves no process behind when a task finishes with orphans (background and setsid)", async () => {
    const t = spec("t-orphans", {
      main: [
        "sh -c 'echo $$ > bg.pid; exec sleep 1000' &",
        "setsid sh -c 'echo $$ > sid.pid; exec sleep 1000' &",
        "while [ ! -s bg.pid ] || [ ! -s sid.pid ]; do sleep 0.02; done",
        "exit 0",
      ].join("\n"),
    });
    executor.launch(t);
    const exited = await events.exited("t-orphans");
    const bg = await pidFrom(path.join(t.sandboxDir, "bg.pid"));
    const sid = await pidFrom(path.join(t.sandboxDir, "sid.pid"));
    expect(exited.exitCode).toBe(0);
    expect(isAlive(bg)).toBe(false);
    expect(isAlive(sid)).toBe(false);
    expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
  });
});

describe("Executor: sandbox, output and environment", () => {
  it("appends stdout and stderr to files in the sandbox and writes task.json", async () => {
    const t = spec("t-out", { hello: "echo hello out; echo hello err >&2" });
    executor.launch(t);
    const started = await events.started("t-out");
    await events.exited("t-out");
    expect(fs.readFileSync(path.join(t.sandboxDir, "hello.stdout"), "utf8")).toBe("hello out\n");
    expect(fs.readFileSync(path.join(t.sandboxDir, "hello.stderr"), "utf8")).toBe("hello err\n");
    const taskJson = JSON.parse(fs.readFileSync(path.join(t.sandboxDir, "task.json"), "utf8"));
    expect(taskJson.taskId).toBe("t-out");
    expect(taskJson.pids).toEqual(started.pids);
    expect(taskJson.processes).toEqual(t.processes);
  });

  it("runs processes in the sandbox with the extra environment", async () => {
    const t = spec("t-env", { env: 'echo "$ROOST_PORT_HTTP $ROOST_TASK_ID"; pwd' }, { ROOST_PORT_HTTP: "31001", ROOST_TASK_ID: "t-env" });
    executor.launch(t);
    const exited = await events.exited("t-env");
    expect(exited.exitCode).toBe(0);
    const lines = fs.readFileSync(path.join(t.sandboxDir, "env.stdout"), "utf8").trim().split("\n");
    expect(lines[0]).toBe("31001 t-env");
    expect(fs.realpathSync(lines[1]!)).toBe(fs.realpathSync(t.sandboxDir));
  });
});

describe("Executor: kill", () => {
  it("kills a tree with a background and a setsid grandchild, leaving nothing alive", async () => {
    const t = spec("t-tree", {
      main: [
        "sh -c 'echo $$ > bg.pid; exec sleep 1000' &",
        "setsid sh -c 'echo $$ > sid.pid; exec sleep 1000' &",
        "echo $$ > root.pid",
        "wait",
      ].join("\n"),
      other: "echo $$ > other.pid; sleep 1000",
    });
    executor.launch(t);
    const started = await events.started("t-tree");
    const root = await pidFrom(path.join(t.sandboxDir, "root.pid"));
    const bg = await pidFrom(path.join(t.sandboxDir, "bg.pid"));
    const sid = await pidFrom(path.join(t.sandboxDir, "sid.pid"));
    const other = await pidFrom(path.join(t.sandboxDir, "other.pid"));
    expect(started.pids.main).toBe(root);
    for (const pid of [root, bg, sid, other]) expect(isAlive(pid)).toBe(true);
    // The setsid grandchild really left the task's session (and so its process group).
    expect(sessionOf(sid)).not.toBe(root);
    expect(listDescendants(root)).toEqual(expect.arrayContaining([bg, sid]));
    expect(executor.isRunning("t-tree")).toBe(true);

    await within(executor.kill("t-tree", 2000), 10_000, "kill");

    for (const pid of [root, bg, sid, other]) expect(isAlive(pid)).toBe(false);
    expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
    const exited = await events.exited("t-tree");
    expect(exited.killed).toBe(true);
    expect(exited.message).toBe("killed by scheduler (ended by SIGTERM)");
    expect(executor.isRunning("t-tree")).toBe(false);
    expect(events.of("t-tree").map((e) => e.type)).toEqual(["started", "exited"]);
  });

  it("SIGKILLs a process that ignores SIGTERM once the grace period is over", async () => {
    const t = spec("t-stubborn", { stubborn: 'trap "" TERM; echo $$ > root.pid; sleep 1000' });
    executor.launch(t);
    const root = await pidFrom(path.join(t.sandboxDir, "root.pid"));
    const children = listDescendants(root);
    seenPids.push(...children);
    const t0 = Date.now();
    await within(executor.kill("t-stubborn", 400), 10_000, "kill");
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(380);
    expect(isAlive(root)).toBe(false);
    for (const pid of children) expect(isAlive(pid)).toBe(false);
    const exited = await events.exited("t-stubborn");
    expect(exited.killed).toBe(true);
    expect(exited.signal).toBe("SIGKILL");
    expect(exited.exitCode).toBe(137);
  });

  it("kills promptly (well before the grace period) a process that honours SIGTERM", async () => {
    const t = spec("t-polite", { polite: "echo $$ > root.pid; exec sleep 1000" });
    executor.launch(t);
    const root = await pidFrom(path.join(t.sandboxDir, "root.pid"));
    const t0 = Date.now();
    await within(executor.kill("t-polite", 10_000), 10_000, "kill");
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(isAlive(root)).toBe(false);
    const exited = await events.exited("t-polite");
    expect(exited).toMatchObject({ killed: true, signal: "SIGTERM", exitCode: 128 + os.constants.signals.SIGTERM });
  });

  it("kills a task right after launching it", async () => {
    const t = spec("t-early", { a: "sleep 1000", b: "sleep 1000 & wait" });
    executor.launch(t);
    await within(executor.kill("t-early", 1000), 10_000, "kill");
    expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
    const exited = await events.exited("t-early");
    expect(exited.killed).toBe(true);
    expect(events.of("t-early").map((e) => e.type)).toEqual(["started", "exited"]);
  });

  it("resolves at once for an unknown or finished task", async () => {
    await executor.kill("nope");
    executor.launch(spec("t-done", { a: "true" }));
    await events.exited("t-done");
    await executor.kill("t-done");
    expect(events.of("t-done").map((e) => e.type)).toEqual(["started", "exited"]);
  });

  it("shutdown kills every task", async () => {
    const a = spec("t-a", { p: "echo $$ > p.pid; sleep 1000" });
    const b = spec("t-b", { p: "echo $$ > p.pid; sleep 1000" });
    executor.launch(a);
    executor.launch(b);
    const pa = await pidFrom(path.join(a.sandboxDir, "p.pid"));
    const pb = await pidFrom(path.join(b.sandboxDir, "p.pid"));
    expect(executor.runningTasks().sort()).toEqual(["t-a", "t-b"]);
    await within(executor.shutdown(1000), 10_000, "shutdown");
    expect(isAlive(pa)).toBe(false);
    expect(isAlive(pb)).toBe(false);
    expect(executor.runningTasks()).toEqual([]);
    expect((await events.exited("t-a")).killed).toBe(true);
    expect((await events.exited("t-b")).killed).toBe(true);
  });
});

describe("Executor: killing many tasks at once", () => {
  it("reaps every tree, launched and adopted, setsid escapees and SIGTERM-ignoring processes included, before reporting it exited", async () => {
    // Each task: a root with a background child and an escapee (setsid, orphaned at once,
    // ignoring SIGTERM: only the launch marker finds it, only SIGKILL ends it). Every other task
    // has a second root that ignores SIGTERM too; in the others, the roots end at SIGTERM while
    // the escapee lives on until the grace period is over. Half the tasks are adopted by a second
    // executor, half launched by it.
    const escapee = 'trap "" TERM; echo $$ > sid.pid; exec sleep 1000';
    const pidFiles = (i: number) => ["root.pid", "bg.pid", "sid.pid", ...(i % 2 === 0 ? ["stubborn.pid"] : [])];
    const taskSpec = (taskId: string, i: number): LaunchSpec =>
      spec(
        taskId,
        {
          main: [
            // In the foreground: when it returns, the escapee's parent is gone.
            `sh -c 'setsid sh -c "$ESCAPEE" &'`,
            "sh -c 'echo $$ > bg.pid; exec sleep 1000' &",
            "echo $$ > root.pid",
            "wait",
          ].join("\n"),
          ...(i % 2 === 0 ? { stubborn: 'trap "" TERM; echo $$ > stubborn.pid; sleep 1000' } : {}),
        },
        { ESCAPEE: escapee, ROOST_MASS_TASK: taskId },
      );
    const PER_HALF = 6;
    const adoptedIds = Array.from({ length: PER_HALF }, (_, i) => `t-mass-adopted-${i}`);
    const launchedIds = Array.from({ length: PER_HALF }, (_, i) => `t-mass-launched-${i}`);
    const ready = async (taskId: string, i: number): Promise<void> => {
      const dir = path.join(tmp, taskId);
      const [root, , sid] = await Promise.all(pidFiles(i).map((f) => pidFrom(path.join(dir, f))));
      expect(sessionOf(sid!)).not.toBe(sessionOf(root!)); // it really escaped
    };

    const first = new Executor({ onEvent: () => {}, defaultGraceMs: 300 });
    for (const [i, id] of adoptedIds.entries()) first.launch(taskSpec(id, i));
    await Promise.all(adoptedIds.map((id, i) => ready(id, i)));
    const records = first.records();
    expect(records.map((r) => r.taskId).sort()).toEqual([...adoptedIds].sort());
    first.detach();

    // Whatever of a task's tree is still alive when its "exited" is reported.
    const aliveAtExit = new Map<string, number[]>();
    const second = new Executor({
      defaultGraceMs: 300,
      onEvent: (e) => {
        if (e.type === "exited") aliveAtExit.set(e.taskId, processesWithEnv("ROOST_MASS_TASK", e.taskId));
        events.onEvent(e);
      },
    });
    try {
      for (const rec of records) second.adopt(rec);
      for (const [i, id] of launchedIds.entries()) second.launch(taskSpec(id, i));
      await Promise.all(launchedIds.map((id, i) => ready(id, i)));
      const all = [...adoptedIds, ...launchedIds];
      expect(second.runningTasks().sort()).toEqual([...all].sort());

      await within(Promise.all(all.map((id) => second.kill(id, 300))), 20_000, "mass kill");

      for (const id of all) {
        const exited = await events.exited(id);
        expect(exited.killed).toBe(true);
        expect(aliveAtExit.get(id)).toEqual([]);
      }
      expect(second.runningTasks()).toEqual([]);
      for (const pid of seenPids) expect(isAlive(pid)).toBe(false);
      expect(processesWithEnv("ROOST_TEST_RUN", testRun)).toEqual([]);
    } finally {
      await second.shutdown(200);
    }
  });
});

describe("Executor: launch idempotence", () => {
  it("ignores a second launch of a known task", async () => {
    const t = spec("t-idem", { p: "echo $$ > first.pid; sleep 1000" });
    executor.launch(t);
    executor.launch({ ...t, processes: [{ name: "p", cmdline: "echo second > second.txt; sleep 1000" }] });
    const pid = await pidFrom(path.join(t.sandboxDir, "first.pid"));
    await events.started("t-idem");
    executor.launch(t);
    expect(executor.runningTasks()).toEqual(["t-idem"]);
    await within(executor.kill("t-idem", 1000), 10_000, "kill");
    expect(isAlive(pid)).toBe(false);
    expect(fs.existsSync(path.join(t.sandboxDir, "second.txt"))).toBe(false);
    // Relaunching after it ended is ignored too (a duplicated launch message must not rerun it).
    executor.launch(t);
    expect(executor.isRunning("t-idem")).toBe(false);
    expect(events.of("t-idem").map((e) => e.type)).toEqual(["started", "exited"]);
  });
});

describe("Executor: exit status wrapper", () => {
  it("passes any command line through untouched, closes its status pipe, and writes <name>.exit", async () => {
    const cmdline = [
      `printf '%s|' "it's" 'say "hi"' '$HOME' "back\\\\slash" "$0"; echo`,
      "[ -e /proc/$$/fd/3 ] && echo fd3-open || echo fd3-closed",
      "exit 7",
    ].join("\n");
    const t = spec("t-quote", { "odd name": cmdline });
    executor.launch(t);
    const exited = await events.exited("t-quote");
    expect(exited.exitCode).toBe(7);
    expect(exited.message).toBe('process "odd name" exited with code 7');
    // The name is escaped one to one into a file name (sandbox.ts): the space is %20.
    const out = fs.readFileSync(path.join(t.sandboxDir, "odd%20name.stdout"), "utf8");
    expect(out).toBe(`it's|say "hi"|$HOME|back\\slash|/bin/sh|\nfd3-closed\n`);
    expect(fs.readFileSync(path.join(t.sandboxDir, "odd%20name.exit"), "utf8")).toBe("7\n");
  });

  it("records a signal death as 128 + signo in the exit file", async () => {
    const t = spec("t-sigfile", { usr: "kill -USR1 $$" });
    executor.launch(t);
    expect((await events.exited("t-sigfile")).signal).toBe("SIGUSR1");
    expect(fs.readFileSync(path.join(t.sandboxDir, "usr.exit"), "utf8").trim()).toBe(String(128 + os.constants.signals.SIGUSR1));
  });

  it("a kill with SIGTERM still records the exit status", async () => {
    const t = spec("t-termfile", { p: "echo $$ > p.pid; sleep 1000" });
    executor.launch(t);
    await pidFrom(path.join(t.sandboxDir, "p.pid"));
    await within(executor.kill("t-termfile", 5000), 10_000, "kill");
    expect((await events.exited("t-termfile")).killed).toBe(true);
    expect(fs.readFileSync(path.join(t.sandboxDir, "p.exit"), "utf8").trim()).toBe(String(128 + os.constants.signals.SIGTERM));
  });
});

describe("Executor: adopt", () => {
  it("a second executor re-attaches to a task, watches it and reports its exit code", async () => {
    const t = spec("t-adopt", { a: "echo $$ > a.pid; while [ ! -f go ]; do sleep 0.02; done; exit 9", b: "echo $$ > b.pid; sleep 1000" });
    executor.launch(t);
    const started = await events.started("t-adopt");
    const a = await pidFrom(path.join(t.sandboxDir, "a.pid"));
    const b = await pidFrom(path.join(t.sandboxDir, "b.pid"));
    expect(started.pids).toEqual({ a, b });
    const rec = executor.records()[0]!;
    expect(rec).toMatchObject({ taskId: "t-adopt", started: true, killed: false });
    expect(rec.processes.map((p) => p.commandPid)).toEqual([a, b]);
    executor.detach();

    const events2 = new Events();
    const second = new Executor({ onEvent: events2.onEvent, defaultGraceMs: 1000 });
    try {
      second.adopt(rec);
      expect(second.runningTasks()).toEqual(["t-adopt"]);
      fs.writeFileSync(path.join(t.sandboxDir, "go"), "");
      const exited = (await events2.exited("t-adopt")) as Exited;
      expect(exited).toMatchObject({ exitCode: 9, killed: false, message: 'process "a" exited with code 9' });
      expect(isAlive(b)).toBe(false);
      expect(events2.of("t-adopt").map((e) => e.type)).toEqual(["exited"]);
      expect(events.of("t-adopt").map((e) => e.type)).toEqual(["started"]); // the first one let go
    } finally {
      await second.shutdown(200);
    }
  });

  it("a pid whose start time differs is not the task's process: it is left alone and the task is lost", async () => {
    const { spawn } = await import("node:child_process");
    const stranger = spawn("sleep", ["1000"], { stdio: "ignore" });
    seenPids.push(stranger.pid!);
    await new Promise((r) => stranger.once("spawn", r));
    const stat = fs.readFileSync(`/proc/${stranger.pid}/stat`, "utf8");
    const start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const sandboxDir = path.join(tmp, "t-reused");
    const second = new Executor({ onEvent: events.onEvent, defaultGraceMs: 500 });
    try {
      second.adopt({
        taskId: "t-reused",
        sandboxDir,
        spec: { taskId: "t-reused", processes: [{ name: "p", cmdline: "sleep 1000" }], env: {}, sandboxDir },
        marker: "no-such-marker",
        minStart: start - 1,
        started: true,
        killed: false,
        processes: [{ name: "p", pid: stranger.pid!, startTime: start - 1, commandPid: null, exitFile: path.join(sandboxDir, "p.exit") }],
      });
      const lost = await events.next((e) => e.type === "lost" && e.taskId === "t-reused");
      expect(lost).toEqual({
        type: "lost",
        taskId: "t-reused",
        message: 'process "p" exited while the agent was down; exit status unknown',
      });
      expect(isAlive(stranger.pid!)).toBe(true);
    } finally {
      stranger.kill("SIGKILL");
      await second.shutdown(200);
    }
  });
});

describe("Executor: Thermos processes", () => {
  const proc = (name: string, cmdline: string, more: Record<string, unknown> = {}) => ({ name, cmdline, ...more });
  const thermos = (taskId: string, processes: LaunchSpec["processes"], more: Partial<LaunchSpec> = {}): LaunchSpec => ({
    taskId,
    processes,
    env: { ROOST_TEST_RUN: testRun },
    sandboxDir: path.join(tmp, taskId),
    ...more,
  });
  const lines = (file: string) => fs.readFileSync(file, "utf8").trim().split("\n");

  it("restarts a failing process until maxFailures, minDuration apart, then fails the task", async () => {
    const t = thermos("t-retry", [proc("flaky", "echo run >> runs; exit 4", { maxFailures: 3, minDuration: 0.5 })]);
    const at = Date.now();
    executor.launch(t);
    const exited = await events.exited("t-retry");
    expect(exited).toMatchObject({
      exitCode: 4,
      killed: false,
      message: 'process "flaky" exited with code 4 (failed 3 of 3 allowed times)',
    });
    expect(lines(path.join(t.sandboxDir, "runs"))).toHaveLength(3);
    // Three runs, each started at least 0.5 s after the one before: two waits of nearly 0.5 s
    // (a lower bound, which a loaded machine only lengthens).
    expect(Date.now() - at).toBeGreaterThanOrEqual(900);
  });

  it("a process that succeeds on a later run lets the task succeed; a daemon is restarted after success", async () => {
    const t = thermos("t-later", [
      proc("second-time", "echo x >> tries; [ $(wc -l < tries) -ge 2 ]", { maxFailures: 5, minDuration: 0 }),
      proc("beat", "echo x >> beats", { daemon: true, ephemeral: true, minDuration: 0.05 }),
    ]);
    executor.launch(t);
    expect(await events.exited("t-later")).toMatchObject({ exitCode: 0, message: "all processes finished" });
    expect(lines(path.join(t.sandboxDir, "tries"))).toHaveLength(2);
    // The daemon ran more than once, and (ephemeral) did not hold the task up.
    expect(lines(path.join(t.sandboxDir, "beats")).length).toBeGreaterThanOrEqual(1);
  });

  it("an ephemeral process is killed once the others succeeded; final processes run after them, in order", async () => {
    const t = thermos(
      "t-final",
      [
        proc("main", "echo main >> log"),
        proc("side", "exec sleep 1000", { ephemeral: true }),
        proc("flush", "echo flush >> log", { final: true }),
        proc("report", "echo report >> log", { final: true }),
      ],
      { processConstraints: [{ order: ["flush", "report"] }], finalizationWaitMs: 5000 },
    );
    executor.launch(t);
    expect(await events.exited("t-final")).toMatchObject({ exitCode: 0, killed: false });
    expect(lines(path.join(t.sandboxDir, "log"))).toEqual(["main", "flush", "report"]);
  });

  it("a final process that runs past finalizationWait is SIGKILLed, and the task still ends", async () => {
    const t = thermos("t-slowfinal", [proc("main", "true"), proc("hang", "trap '' TERM; exec sleep 1000", { final: true })], {
      finalizationWaitMs: 300,
    });
    executor.launch(t);
    const at = Date.now();
    expect(await events.exited("t-slowfinal")).toMatchObject({ killed: false });
    expect(Date.now() - at).toBeGreaterThanOrEqual(250);
  });

  it("status() shows every process: state, runs, failures, exit code and pid", async () => {
    const t = thermos(
      "t-status",
      [proc("once", "exit 0"), proc("serve", "echo up >ready; exec sleep 1000"), proc("bye", "true", { final: true })],
      {
        processConstraints: [{ order: ["once", "serve"] }],
      },
    );
    executor.launch(t);
    await waitForFile(path.join(t.sandboxDir, "ready"));
    await events.started("t-status");
    const s = executor.status("t-status")!;
    expect(s.phase).toBe("main");
    expect(s.processes.map((p) => [p.name, p.state, p.runs, p.exitCode])).toEqual([
      ["once", "SUCCESS", 1, 0],
      ["serve", "RUNNING", 1, null],
      ["bye", "WAITING", 0, null],
    ]);
    expect(s.processes[1]!.pid).toBeGreaterThan(0);
    expect(executor.status("nope")).toBeNull();
  });

  it("an agent restarted mid-restart adopts the process states and carries on", async () => {
    const t = thermos("t-adoptstate", [
      proc("flaky", "echo x >> runs; [ -f ok ] && exec sleep 1000; exit 2", { maxFailures: 0, minDuration: 0.1 }),
    ]);
    executor.launch(t);
    await events.started("t-adoptstate");
    // Let it fail at least twice, then hand over to a second executor.
    for (
      let i = 0;
      i < 200 && !(fs.existsSync(path.join(t.sandboxDir, "runs")) && lines(path.join(t.sandboxDir, "runs")).length >= 2);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const rec = executor.records()[0]!;
    expect(rec.processes[0]!.failures).toBeGreaterThanOrEqual(1);
    executor.detach();
    fs.writeFileSync(path.join(t.sandboxDir, "ok"), "");
    const events2 = new Events();
    const second = new Executor({ onEvent: events2.onEvent, defaultGraceMs: 500 });
    try {
      second.adopt(rec);
      for (let i = 0; i < 200 && second.status("t-adoptstate")?.processes[0]?.state !== "RUNNING"; i++)
        await new Promise((r) => setTimeout(r, 20));
      const p = second.status("t-adoptstate")!.processes[0]!;
      expect(p.state).toBe("RUNNING");
      expect(p.failures).toBeGreaterThanOrEqual(rec.processes[0]!.failures!);
      await within(second.kill("t-adoptstate", 500), 10_000, "kill");
      expect((await events2.exited("t-adoptstate")).killed).toBe(true);
    } finally {
      await second.shutdown(200);
    }
  });
});
