// The agent's sandbox rule and its launch and kill checks (issue 8, items 4-5).
//
// - safeFileName escapes any name, one to one, into a plain file name; every path under a work
//   dir is built from it and checked to lie inside its directory (src/agent/sandbox.ts).
// - Hostile process names and task ids, given to the Executor directly (as if every check
//   before it had failed), still write only inside their own task's sandbox, and two names never
//   share a file.
// - The Agent refuses a launch or kill of the wrong shape with the field and the rule, and
//   acknowledges a well-shaped launch that can never run, reporting it FAILED (127) at once
//   with the problem; nothing is written for it.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent } from "../src/agent/agent.js";
import { Executor, type ExecutorEvent, type LaunchSpec } from "../src/agent/executor.js";
import { isAlive, processesWithEnv } from "../src/agent/proc.js";
import type { LaunchRequest, StatusRequest } from "../src/agent/protocol.js";
import { pathInside, safeFileName, SAFE_NAME_MAX, sandboxesDir, taskSandboxDir } from "../src/agent/sandbox.js";
import type { StatusUpdate } from "../src/agent/statusQueue.js";
import { subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MAX_CMDLINE_BYTES } from "../src/domain/limits.js";

/** Names that once escaped the sandbox, or would collide, or are not names at all. */
const HOSTILE = [
  ".",
  "..",
  "...",
  "../x",
  "../../x",
  "a/b",
  "a_b",
  "a%2Fb",
  "/etc/passwd",
  "n\0ul",
  "%2e%2e",
  "%2E.",
  ".hidden",
  "",
  " ",
  "ünï/cödé",
  "x".repeat(300),
  `${"x".repeat(300)}y`,
  "%".repeat(150),
];

/** Every file (not directory) under dir, as absolute paths. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

let tmp: string;
beforeEach(async () => {
  tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-sandbox-"));
});
afterEach(async () => {
  for (const pid of processesWithEnv("ROOST_SANDBOX_TEST", tmp)) {
    try {
      if (isAlive(pid)) process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await fs.promises.rm(tmp, { recursive: true, force: true });
});

describe("safeFileName and pathInside", () => {
  it("gives a plain, bounded file name for any name, never . or .., and two names never the same one", () => {
    const seen = new Map<string, string>();
    for (const name of HOSTILE) {
      const f = safeFileName(name);
      expect(f).not.toBe("");
      expect(f).not.toBe(".");
      expect(f).not.toBe("..");
      expect(f.startsWith(".")).toBe(false);
      expect(f).not.toMatch(/[/\0]/);
      expect(f.length).toBeLessThanOrEqual(SAFE_NAME_MAX);
      expect(Buffer.byteLength(`${f}.stdout`)).toBeLessThanOrEqual(255);
      expect(seen.get(f), `${JSON.stringify(name)} and ${JSON.stringify(seen.get(f))} share ${f}`).toBeUndefined();
      seen.set(f, name);
    }
    expect(safeFileName("..")).toBe("%2E.");
    expect(safeFileName("a/b")).toBe("a%2Fb");
    expect(safeFileName("a%2Fb")).toBe("a%252Fb");
    expect(safeFileName("n\0ul")).toBe("n%00ul");
  });

  it("leaves a valid name or task id as it is", () => {
    for (const name of ["main", "web-1", "a.b_c", "www-data-devel-hello-0-1a2b3c4d", "_x", "9"]) expect(safeFileName(name)).toBe(name);
  });

  it("builds every path inside its directory, task ids .. and ../../x included", () => {
    const work = path.join(tmp, "agent");
    const sandboxes = sandboxesDir(work);
    for (const id of [...HOSTILE, "t-1"]) {
      const dir = taskSandboxDir(work, id);
      expect(path.dirname(dir)).toBe(sandboxes);
      expect(path.relative(sandboxes, dir)).not.toMatch(/^\.\.?(\/|$)/);
      for (const suffix of [".stdout", ".stderr", ".exit"]) expect(path.dirname(pathInside(dir, id, suffix))).toBe(dir);
    }
    expect(() => pathInside(tmp, "x", "/../../y")).toThrow(/unsafe file suffix/);
  });
});

describe("Executor: hostile names stay in their own sandbox", () => {
  it("every file a task writes lands inside its sandbox, one file per process and stream", async () => {
    const events: ExecutorEvent[] = [];
    const ended = new Map<string, () => void>();
    const executor = new Executor({
      onEvent: (e) => {
        events.push(e);
        if (e.type !== "started") ended.get(e.taskId)?.();
      },
      defaultGraceMs: 500,
    });
    const work = path.join(tmp, "agent");
    // Task ids that would climb out of <work>/sandboxes, and one that is fine.
    const taskIds = ["..", "../../x", "t-ok"];
    const specs: LaunchSpec[] = taskIds.map((taskId) => ({
      taskId,
      processes: HOSTILE.map((name, i) => ({ name, cmdline: `echo out-${i}; echo err-${i} >&2` })),
      env: { ROOST_SANDBOX_TEST: tmp },
      sandboxDir: taskSandboxDir(work, taskId),
    }));
    const done = specs.map((s) => new Promise<void>((resolve) => ended.set(s.taskId, resolve)));
    for (const s of specs) executor.launch(s);
    await Promise.all(done);
    await executor.shutdown(0);
    for (const s of specs) {
      const exited = events.find((e) => e.taskId === s.taskId && e.type === "exited");
      expect(exited, `${s.taskId}: ${JSON.stringify(events.filter((e) => e.taskId === s.taskId))}`).toMatchObject({
        exitCode: 0,
        killed: false,
      });
    }

    // Nothing outside <work>/sandboxes/<one dir per task>.
    expect(fs.readdirSync(tmp)).toEqual(["agent"]);
    expect(fs.readdirSync(work)).toEqual(["sandboxes"]);
    expect(fs.readdirSync(sandboxesDir(work)).sort()).toEqual(specs.map((s) => path.basename(s.sandboxDir)).sort());
    for (const s of specs) {
      const files = filesUnder(s.sandboxDir);
      // Flat, inside the sandbox: task.json and three files per process, none shared.
      for (const f of files) expect(path.dirname(f)).toBe(s.sandboxDir);
      expect(files).toHaveLength(1 + 3 * HOSTILE.length);
      expect(files.map((f) => path.basename(f))).toContain("task.json");
      const outs = files.filter((f) => f.endsWith(".stdout")).map((f) => fs.readFileSync(f, "utf8"));
      const errs = files.filter((f) => f.endsWith(".stderr")).map((f) => fs.readFileSync(f, "utf8"));
      expect(outs.sort()).toEqual(HOSTILE.map((_, i) => `out-${i}\n`).sort());
      expect(errs.sort()).toEqual(HOSTILE.map((_, i) => `err-${i}\n`).sort());
      // Each process's own file, under its own escaped name.
      HOSTILE.forEach((name, i) => {
        expect(fs.readFileSync(path.join(s.sandboxDir, `${safeFileName(name)}.stdout`), "utf8")).toBe(`out-${i}\n`);
        expect(fs.readFileSync(path.join(s.sandboxDir, `${safeFileName(name)}.exit`), "utf8")).toBe("0\n");
      });
    }
  });
});

// ---- the Agent's checks ----------------------------------------------------------------------

const AGENT_ID = "agent-v";

/** Acknowledges registrations and status updates, and records the updates. */
class FakeLeader {
  readonly updates: StatusUpdate[] = [];
  private readonly waiters = new Set<() => void>();
  constructor(bus: MemoryBus) {
    bus.serve(subjects.anyAgent.register, () => ({ ok: true, epoch: 1, schedulerId: "fake" }));
    bus.serve(subjects.anyAgent.status, (d) => {
      this.updates.push((d as StatusRequest).update as StatusUpdate);
      for (const w of [...this.waiters]) w();
      return { ok: true };
    });
  }

  update(taskId: string, state: string, timeoutMs = 10_000): Promise<StatusUpdate> {
    const find = () => this.updates.find((u) => u.taskId === taskId && u.state === state);
    const now = find();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${state} for ${taskId}; got ${JSON.stringify(this.updates)}`)), timeoutMs);
      const check = () => {
        const u = find();
        if (!u) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(u);
      };
      this.waiters.add(check);
    });
  }

  of(taskId: string): string[] {
    return this.updates.filter((u) => u.taskId === taskId).map((u) => u.state);
  }
}

describe("Agent: launch and kill checks", () => {
  let bus: MemoryBus;
  let leader: FakeLeader;
  let agent: Agent;
  let work: string;

  beforeEach(async () => {
    bus = new MemoryBus();
    leader = new FakeLeader(bus);
    work = path.join(tmp, "agent");
    agent = new Agent({
      bus,
      agentId: AGENT_ID,
      host: "host-v",
      attributes: {},
      resources: { cpus: 2, ramMb: 1024, diskMb: 1024, ports: [[31000, 31009]] },
      workDir: work,
      bootId: "boot-v",
      heartbeatMs: 60_000,
      graceMs: 10_000,
      statusRetryMs: 50,
    });
    await agent.start();
  });

  afterEach(async () => {
    await agent.stop({ graceMs: 0 });
    await bus.close();
  });

  const launch = (req: unknown) => bus.request<{ ok: boolean; error?: string }>(subjects.launch(AGENT_ID), req);
  const kill = (req: unknown) => bus.request<{ ok: boolean; error?: string }>(subjects.kill(AGENT_ID), req);
  const good = (taskId: string, over: Partial<LaunchRequest> = {}): LaunchRequest => ({
    taskId,
    job: "www-data/devel/v",
    instance: 0,
    processes: [{ name: "main", cmdline: "exec sleep 1000" }],
    ports: {},
    resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
    ...over,
  });

  it("refuses a launch of the wrong shape with the field and the rule", async () => {
    expect(await launch("hello")).toEqual({ ok: false, error: 'invalid launch request: (message): must be a mapping (got "hello")' });
    expect(await launch(null)).toEqual({ ok: false, error: "invalid launch request: (message): must be a mapping (got null)" });
    const { taskId: _taskId, ...noTaskId } = good("t-1");
    expect(await launch(noTaskId)).toEqual({ ok: false, error: "invalid launch request: taskId: is required" });
    expect(await launch({ ...good("t-2"), processes: "echo hi" })).toEqual({
      ok: false,
      error: 'invalid launch request: processes: must be a list (got "echo hi")',
    });
    expect(await launch({ ...good("t-3"), processes: [{ name: "main" }] })).toEqual({
      ok: false,
      error: "invalid launch request: processes[0].cmdline: is required",
    });
    expect(await launch({ ...good("t-4"), taskId: "x".repeat(257) })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^invalid launch request: taskId: must be a string: 1 to 256 characters/),
    });
    // Nothing was reported, nothing written.
    expect(leader.updates).toEqual([]);
    expect(fs.existsSync(sandboxesDir(work))).toBe(false);
  });

  it("acknowledges a launch that can never run and reports it FAILED (127) at once, writing nothing", async () => {
    const cases: Array<[string, LaunchRequest, RegExp]> = [
      [
        "t-dot",
        good("t-dot", { processes: [{ name: ".", cmdline: "echo x" }] }),
        /^cannot start: processes\[0\]\.name: must be a name: .* \(got "\."\)$/,
      ],
      [
        "t-dotdot",
        good("t-dotdot", {
          processes: [
            { name: "ok", cmdline: "echo x" },
            { name: "..", cmdline: "echo x" },
          ],
        }),
        /^cannot start: processes\[1\]\.name: must be a name.*\(got "\.\."\)$/,
      ],
      ["t-slash", good("t-slash", { processes: [{ name: "../x", cmdline: "echo x" }] }), /processes\[0\]\.name: must be a name/],
      [
        "t-nul",
        good("t-nul", { processes: [{ name: "main", cmdline: "echo a\0b" }] }),
        /^cannot start: processes\[0\]\.cmdline: must be a command line without NUL bytes/,
      ],
      [
        "t-long",
        good("t-long", { processes: [{ name: "main", cmdline: "x".repeat(MAX_CMDLINE_BYTES + 1) }] }),
        /processes\[0\]\.cmdline: must be a command line without NUL bytes, of at most 65535 characters/,
      ],
      [
        "t-bytes",
        good("t-bytes", { processes: [{ name: "main", cmdline: "é".repeat(40_000) }] }),
        /^cannot start: processes\[0\]\.cmdline: must be at most 65535 bytes in UTF-8, ports filled in \(got 80000\)$/,
      ],
      [
        "t-dup",
        good("t-dup", {
          processes: [
            { name: "a", cmdline: "true" },
            { name: "a", cmdline: "true" },
          ],
        }),
        /^cannot start: processes\[1\]\.name: must differ from the names of the other processes \(got "a"\)$/,
      ],
      [
        "t-port",
        good("t-port", { processes: [{ name: "main", cmdline: "echo {{ports.http}}" }] }),
        /^cannot start: processes\[0\]\.cmdline: command line uses \{\{ports\.http\}\} but no port named "http" is assigned/,
      ],
      [
        "t-health",
        good("t-health", {
          healthCheck: { initialIntervalSecs: 0, intervalSecs: -1, timeoutSecs: 1, maxConsecutiveFailures: 0, minConsecutiveSuccesses: 1 },
        }),
        /^cannot start: healthCheck\.intervalSecs: must be a number greater than 0/,
      ],
      [
        "t-order",
        good("t-order", { processConstraints: [{ order: ["main", "ghost"] }] }),
        /^cannot start: processConstraints\[0\]\.order: must name processes of the task \(got "ghost"\)$/,
      ],
      [
        "t-runs",
        good("t-runs", { processes: [{ name: "main", cmdline: "true", maxFailures: -3 }] }),
        /^cannot start: processes\[0\]\.maxFailures: /,
      ],
      ["t-final", good("t-final", { finalizationWaitSecs: 600 }), /^cannot start: finalizationWaitSecs: /],
      [
        "t-endpoint",
        good("t-endpoint", {
          lifecycle: {
            http: {
              port: "health",
              gracefulShutdownEndpoint: "quit",
              shutdownEndpoint: "/a",
              gracefulShutdownWaitSecs: 1,
              shutdownWaitSecs: 1,
            },
          },
        }),
        /^cannot start: lifecycle\.http\./,
      ],
      ["..", good(".."), /^cannot start: taskId: must be a task id/],
      ["../../x", good("../../x"), /^cannot start: taskId: must be a task id/],
    ];
    for (const [taskId, req, why] of cases) {
      expect(await launch(req), taskId).toEqual({ ok: true });
      const failed = await leader.update(taskId, "FAILED");
      expect(failed.exitCode, taskId).toBe(127);
      expect(failed.message, taskId).toMatch(why);
      expect(failed.message!.length).toBeLessThanOrEqual(2048);
      // A retried launch is answered the same, and reported nothing more.
      expect(await launch(req)).toEqual({ ok: true });
      expect(leader.of(taskId)).toEqual(["FAILED"]);
    }
    // Not one sandbox, nor any file outside one.
    expect(fs.readdirSync(tmp)).toEqual(fs.existsSync(work) ? ["agent"] : []);
    if (fs.existsSync(work)) expect(fs.readdirSync(work).filter((f) => !f.startsWith("checkpoint.json"))).toEqual([]);
  });

  it("refuses a kill of the wrong shape, and starts the kill of a running task at once", async () => {
    expect(await kill({})).toEqual({ ok: false, error: "invalid kill request: taskId: is required" });
    expect(await kill(7)).toEqual({ ok: false, error: "invalid kill request: (message): must be a mapping (got 7)" });
    expect(await kill({ taskId: "t-k", graceMs: -1 })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^invalid kill request: graceMs: /),
    });

    expect(await launch(good("t-k"))).toEqual({ ok: true });
    await leader.update("t-k", "RUNNING");
    const t0 = Date.now();
    // A grace of 10 s: `sleep` honours the SIGTERM sent at once, so it ends long before that.
    expect(await kill({ taskId: "t-k", graceMs: 10_000 })).toEqual({ ok: true });
    const killed = await leader.update("t-k", "KILLED");
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(killed.exitCode).toBe(128 + os.constants.signals.SIGTERM);
    // The sandbox of a valid task id is where it always was.
    expect(fs.existsSync(path.join(work, "sandboxes", "t-k", "main.stdout"))).toBe(true);
  });
});
