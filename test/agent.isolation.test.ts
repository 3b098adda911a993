// Resource isolation (src/agent/isolation.ts) on this host's real cgroups, with real processes,
// and sandbox disk usage (src/agent/diskUsage.ts).
//
// - createIsolator finds the cgroups this host lets us write (v2, else v1), or says why none.
// - A process that writes its pid into every procsFile before it execs its command is in the
//   task's cgroup (pids()); one that allocates past a 32 MiB limit is SIGKILLed by the kernel and
//   oomKills() counts it.
// - Limits land in the control files as documented (memory in the order the kernel accepts when
//   raised and lowered; cpu shares/weight and CFS quota for cpus 0.5).
// - prepare is idempotent, open finds a prepared cgroup, destroy refuses (false, no throw) while
//   a process is inside and removes the cgroup once it is gone; disabled means "none".
// - diskUsageBytes counts allocated blocks, stops early, and never throws.
//
// The cgroup tests run only where a probe (independent of isolation.ts) can make a memory cgroup;
// elsewhere they are skipped and their names say why. Every cgroup made here is under
// roost/<an agent id unique to this run> and is removed in afterAll.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { diskUsageBytes } from "../src/agent/diskUsage.js";
import { createIsolator, type Isolator, type TaskCgroup } from "../src/agent/isolation.js";

const ROOT = "/sys/fs/cgroup";
const MIB = 1024 * 1024;
const AGENT = `isolation-test-${process.pid}-${randomUUID().slice(0, 8)}`;

/** Where v2 and v1 would put this run's cgroups (the ones that exist are removed in afterAll). */
const AGENT_DIRS = [path.join(ROOT, "roost", AGENT), path.join(ROOT, "memory", "roost", AGENT), path.join(ROOT, "cpu", "roost", AGENT)];

/** Which cgroup version a plain mkdir shows writable, or why none: null reason means writable. */
function probeCgroups(): { version: 1 | 2 | null; reason: string } {
  const tryMkdir = (parent: string): string | null => {
    const dir = path.join(parent, `roost-probe-${AGENT}`);
    try {
      fs.mkdirSync(dir);
      fs.rmdirSync(dir);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  };
  let controllers: string[] = [];
  try {
    controllers = fs.readFileSync(path.join(ROOT, "cgroup.controllers"), "utf8").trim().split(/\s+/);
  } catch {
    // not v2 at ROOT
  }
  if (controllers.includes("memory") && tryMkdir(ROOT) === null) return { version: 2, reason: "" };
  const memory = path.join(ROOT, "memory");
  if (!fs.existsSync(path.join(memory, "memory.limit_in_bytes"))) return { version: null, reason: "no cgroup memory controller" };
  const problem = tryMkdir(memory);
  if (problem !== null) return { version: null, reason: `no writable cgroup memory controller: ${problem}` };
  return { version: 1, reason: "" };
}

const probe = probeCgroups();
const available = probe.version !== null;
const skipNote = available ? "" : ` (skipped: ${probe.reason})`;

/** rmdir a cgroup tree, deepest first; errors ignored (it may not exist). */
function rmdirTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmdirTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // left for the assertion below to report
  }
}

const children = new Set<ChildProcess>();

/** Exit code and signal of a child, when it exits. */
function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * Runs `/bin/sh -c 'echo $$ > F; ...; echo ready; exec CMD'` (as the executor's wrapper will),
 * resolving once the shell has joined every cgroup (it printed "ready"), or once CMD printed
 * readyText.
 */
async function startIn(cg: TaskCgroup, cmd: string, readyText = "ready\n"): Promise<ChildProcess> {
  const script = [...cg.procsFiles.map((f) => `echo $$ > ${shellQuote(f)} || exit 97`), "echo ready", `exec ${cmd}`].join("; ");
  const child = spawn("/bin/sh", ["-c", script], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes(readyText)) resolve();
    });
    child.once("exit", (code, signal) => reject(new Error(`exited ${code ?? signal} before joining its cgroup: ${stderr}`)));
  });
  return child;
}

function read(file: string): string {
  return fs.readFileSync(file, "utf8").trim();
}

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of AGENT_DIRS) rmdirTree(dir);
  // The shared roost/ directories too, only when empty (other agents' cgroups are never touched).
  for (const dir of AGENT_DIRS) {
    try {
      fs.rmdirSync(path.dirname(dir));
    } catch {
      // absent, or in use by another agent
    }
  }
  for (const dir of AGENT_DIRS) expect(fs.existsSync(dir), `${dir} left behind`).toBe(false);
});

describe("createIsolator", () => {
  it("is off when disabled, and says so", () => {
    const iso = createIsolator({ agent: AGENT, disabled: true });
    expect(iso.info.mode).toBe("none");
    expect(iso.info.detail).toMatch(/turned off/);
    expect(iso.prepare("t-1", { cpus: 1, ramMb: 64 })).toBeNull();
    expect(iso.open("t-1")).toBeNull();
  });

  it("gives none, with a reason for v2 and for v1, where no cgroup filesystem is mounted", () => {
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), "roost-nocgroup-"));
    try {
      const iso = createIsolator({ root: fake, agent: AGENT });
      expect(iso.info.mode).toBe("none");
      expect(iso.info.detail).toContain(`no cgroup v2 mount at ${fake}`);
      expect(iso.info.detail).toContain(`no cgroup v1 memory hierarchy at ${path.join(fake, "memory")}`);
      expect(iso.prepare("t-1", { cpus: 1, ramMb: 64 })).toBeNull();
      expect(fs.readdirSync(fake)).toEqual([]);
    } finally {
      fs.rmSync(fake, { recursive: true, force: true });
    }
  });

  it("uses cgroups v2 where the root lists memory (a fake cgroup2 tree of plain files: writes land as documented)", () => {
    // A real v2 memory controller cannot be had where memory is bound to a v1 hierarchy (as on
    // the host these tests were written on), so the v2 paths and values are checked on files.
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), "roost-fakev2-"));
    try {
      const agentDir = path.join(fake, "roost", AGENT);
      const taskDir = path.join(agentDir, "t-1");
      fs.mkdirSync(taskDir, { recursive: true });
      fs.writeFileSync(path.join(fake, "cgroup.controllers"), "cpuset cpu io memory pids\n");
      for (const dir of [fake, path.dirname(agentDir), agentDir]) {
        fs.writeFileSync(path.join(dir, "cgroup.procs"), "");
        fs.writeFileSync(path.join(dir, "cgroup.subtree_control"), "cpu memory\n");
      }
      fs.writeFileSync(path.join(agentDir, "memory.swap.max"), "");
      for (const f of ["cgroup.procs", "memory.max", "memory.swap.max", "cpu.weight", "cpu.max"])
        fs.writeFileSync(path.join(taskDir, f), "");
      fs.writeFileSync(path.join(taskDir, "memory.events"), "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
      fs.writeFileSync(path.join(taskDir, "memory.current"), "123456\n");

      const iso = createIsolator({ root: fake, agent: AGENT });
      expect(iso.info.mode, iso.info.detail).toBe("cgroups-v2");
      expect(iso.info.detail).toBe(`cgroups v2 at ${agentDir}: memory.max and memory.swap.max 0, cpu.weight and cpu.max per task`);
      const cg = iso.prepare("t-1", { cpus: 0.5, ramMb: 32 })!;
      expect(cg.procsFiles).toEqual([path.join(taskDir, "cgroup.procs")]);
      expect(read(path.join(taskDir, "memory.max"))).toBe(String(32 * MIB));
      expect(read(path.join(taskDir, "memory.swap.max"))).toBe("0");
      expect(read(path.join(taskDir, "cpu.weight"))).toBe("50");
      expect(read(path.join(taskDir, "cpu.max"))).toBe("50000 100000");
      expect(cg.oomKills()).toBe(2);
      expect(cg.memoryBytes()).toBe(123456);
      expect(cg.pids()).toEqual([]);
      fs.writeFileSync(path.join(taskDir, "cgroup.procs"), "4242\n17\n");
      expect(iso.open("t-1")?.pids()).toEqual([17, 4242]);
      expect(iso.open("t-2")).toBeNull();
      // Plain directories with files in them cannot be rmdir'ed: false, not a throw.
      expect(cg.destroy()).toBe(false);

      fs.writeFileSync(path.join(fake, "cgroup.controllers"), "cpu pids\n");
      const none = createIsolator({ root: fake, agent: AGENT });
      expect(none.info.mode).toBe("none");
      expect(none.info.detail).toContain(`the cgroup v2 mount at ${fake} has no memory controller (controllers: cpu pids)`);
    } finally {
      fs.rmSync(fake, { recursive: true, force: true });
    }
  });

  it.skipIf(!available)(`finds the cgroups this host lets us write${skipNote}`, () => {
    const iso = createIsolator({ agent: AGENT });
    expect(iso.info.mode, iso.info.detail).toBe(probe.version === 2 ? "cgroups-v2" : "cgroups-v1");
    expect(iso.info.detail).toContain(AGENT);
    for (const dir of iso.info.mode === "cgroups-v2" ? [AGENT_DIRS[0]!] : [AGENT_DIRS[1]!])
      expect(fs.existsSync(path.join(dir, "cgroup.procs"))).toBe(true);
  });
});

describe(`task cgroups${skipNote}`, () => {
  let iso: Isolator;
  const made: TaskCgroup[] = [];
  beforeAll(() => {
    iso = createIsolator({ agent: AGENT });
  });
  afterEach(async () => {
    // After a failed test: nothing of it may keep running or keep its cgroup.
    for (const cg of made) {
      for (const pid of cg.pids()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    for (const child of [...children]) {
      child.kill("SIGKILL");
      await exited(child);
    }
    for (const cg of made.splice(0)) cg.destroy();
  });
  const prepare = (taskId: string, cpus: number, ramMb: number): TaskCgroup => {
    const cg = iso.prepare(taskId, { cpus, ramMb });
    expect(cg).not.toBeNull();
    made.push(cg!);
    return cg!;
  };

  it.skipIf(!available)("puts a process that writes its pid into every procsFile into the task's cgroup", async () => {
    const cg = prepare("join-1", 1, 256);
    // v1: memory and (where the cpu hierarchy is writable) cpu; v2: one cgroup.
    expect(cg.procsFiles.length).toBe(iso.info.mode === "cgroups-v1" && fs.existsSync(AGENT_DIRS[2]!) ? 2 : 1);
    expect(cg.pids()).toEqual([]);
    const child = await startIn(cg, "sleep 60");
    expect(cg.pids()).toEqual([child.pid]);
    const mem = cg.memoryBytes();
    expect(mem).not.toBeNull();
    expect(mem!).toBeGreaterThan(0);
    // Children inherit the cgroup: a shell that forks a sleep, then waits for it.
    const parent = await startIn(cg, "/bin/sh -c 'sleep 60 & echo forked; wait'", "forked\n");
    const inside = cg.pids();
    const forked = inside.filter((pid) => pid !== child.pid && pid !== parent.pid);
    expect(inside).toContain(child.pid);
    expect(inside).toContain(parent.pid);
    expect(forked.length).toBe(1);
    // Killing the sleep ends its parent's wait (an event, not a poll).
    process.kill(forked[0]!, "SIGKILL");
    await exited(parent);
    child.kill("SIGKILL");
    await exited(child);
    expect(cg.pids()).toEqual([]);
  });

  it.skipIf(!available)("SIGKILLs a process that allocates past 32 MiB, and counts the OOM kill", async () => {
    const cg = prepare("oom-1", 0.5, 32);
    expect(cg.oomKills()).toBe(0);
    const python = spawnSync("python3", ["-c", "pass"]).status === 0;
    const hog = python
      ? `python3 -c 'b = bytearray(200 * 1024 * 1024)'`
      : `${shellQuote(process.execPath)} -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'`;
    const child = await startIn(cg, hog);
    const { code, signal } = await exited(child);
    expect({ code, signal }).toEqual({ code: null, signal: "SIGKILL" });
    expect(cg.oomKills()).toBeGreaterThanOrEqual(1);
    expect(cg.destroy()).toBe(true);
    // Still known once the cgroup is gone.
    expect(cg.oomKills()).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(!available)("writes memory and cpu limits as documented, raising and lowering memory", () => {
    const cg = prepare("limits-1", 0.5, 32);
    const memDir = path.dirname(cg.procsFiles[0]!);
    if (iso.info.mode === "cgroups-v2") {
      expect(read(path.join(memDir, "memory.max"))).toBe(String(32 * MIB));
      if (fs.existsSync(path.join(memDir, "memory.swap.max"))) expect(read(path.join(memDir, "memory.swap.max"))).toBe("0");
      if (fs.existsSync(path.join(memDir, "cpu.max"))) {
        expect(read(path.join(memDir, "cpu.weight"))).toBe("50");
        expect(read(path.join(memDir, "cpu.max"))).toBe("50000 100000");
      }
    } else {
      const memsw = path.join(memDir, "memory.memsw.limit_in_bytes");
      const check = (mb: number) => {
        expect(read(path.join(memDir, "memory.limit_in_bytes"))).toBe(String(mb * MIB));
        if (fs.existsSync(memsw)) expect(read(memsw)).toBe(String(mb * MIB));
      };
      check(32);
      // Raising needs memsw first, lowering needs limit_in_bytes first: both must work.
      iso.prepare("limits-1", { cpus: 0.5, ramMb: 64 });
      check(64);
      iso.prepare("limits-1", { cpus: 0.5, ramMb: 16 });
      check(16);
      const cpuFile = cg.procsFiles[1];
      if (cpuFile !== undefined) {
        const cpuDir = path.dirname(cpuFile);
        expect(read(path.join(cpuDir, "cpu.shares"))).toBe("512");
        expect(read(path.join(cpuDir, "cpu.cfs_period_us"))).toBe("100000");
        expect(read(path.join(cpuDir, "cpu.cfs_quota_us"))).toBe("50000");
      }
    }
    // A limit under one page is rounded up, never down to 0.
    iso.prepare("limits-1", { cpus: 0.001, ramMb: 0.001 });
    expect(read(path.join(memDir, iso.info.mode === "cgroups-v2" ? "memory.max" : "memory.limit_in_bytes"))).toBe("4096");
  });

  it.skipIf(!available)("prepares idempotently, opens what exists, and destroys only an empty cgroup", async () => {
    const a = prepare("life-1", 1, 128);
    const b = prepare("life-1", 1, 128);
    expect(b.procsFiles).toEqual(a.procsFiles);
    const opened = iso.open("life-1");
    expect(opened?.procsFiles).toEqual(a.procsFiles);
    expect(iso.open("never-prepared")).toBeNull();
    // Another agent with the same id (a restart) finds it too.
    expect(createIsolator({ agent: AGENT }).open("life-1")?.procsFiles).toEqual(a.procsFiles);

    const child = await startIn(a, "sleep 60");
    expect(opened!.pids()).toEqual([child.pid]);
    expect(a.destroy()).toBe(false);
    expect(iso.open("life-1")).not.toBeNull();
    child.kill("SIGKILL");
    await exited(child);
    expect(a.destroy()).toBe(true);
    for (const f of a.procsFiles) expect(fs.existsSync(path.dirname(f))).toBe(false);
    expect(a.destroy()).toBe(true);
    expect(iso.open("life-1")).toBeNull();
  });

  it.skipIf(!available)("sweep removes orphans old enough and empty, keeps what it is told and what is fresh; close leaves nothing", () => {
    prepare("sweep-keep", 0.1, 16);
    prepare("sweep-orphan", 0.1, 16);
    // Fresh: a launch may be under way (the default minimum age, 60 s).
    expect(iso.sweep(new Set(["sweep-keep"]))).toEqual([]);
    expect(iso.open("sweep-orphan")).not.toBeNull();
    expect(iso.sweep(new Set(["sweep-keep"]), 0)).toEqual(["sweep-orphan"]);
    expect(iso.open("sweep-orphan")).toBeNull();
    expect(iso.open("sweep-keep")).not.toBeNull();
    // close() leaves a non-empty agent cgroup alone, and removes an empty one.
    iso.close();
    expect(iso.open("sweep-keep")).not.toBeNull();
    expect(iso.sweep(new Set(), 0)).toEqual(["sweep-keep"]);
    iso.close();
    expect(AGENT_DIRS.filter((d) => fs.existsSync(d))).toEqual([]);
  });

  it.skipIf(!available)("refuses a task id that names a control file, and writes nothing", () => {
    expect(() => iso.prepare("cgroup.procs", { cpus: 1, ramMb: 64 })).toThrow(/control file/);
    expect(() => iso.prepare("t-2", { cpus: 0, ramMb: 64 })).toThrow(/cpus must be a positive number/);
    expect(iso.open("t-2")).toBeNull();
  });
});

describe("diskUsageBytes", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "roost-du-"));
  });
  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("counts the blocks of every file, not sizes; once per hard link; never through a symlink", () => {
    const dir = path.join(tmp, "a");
    fs.mkdirSync(path.join(dir, "sub"), { recursive: true });
    fs.writeFileSync(path.join(dir, "sub", "data"), randomBytes(3 * MIB));
    const used = diskUsageBytes(dir);
    expect(used).toBeGreaterThanOrEqual(3 * MIB);
    expect(used).toBeLessThan(4 * MIB);
    // A 1 GiB sparse file holds no blocks; a hard link is the same blocks; a link to / is a link.
    fs.writeFileSync(path.join(dir, "sparse"), "");
    fs.truncateSync(path.join(dir, "sparse"), 1024 * MIB);
    fs.linkSync(path.join(dir, "sub", "data"), path.join(dir, "hardlink"));
    fs.symlinkSync("/", path.join(dir, "root"));
    expect(diskUsageBytes(dir)).toBeLessThan(4 * MIB);
    expect(diskUsageBytes(path.join(dir, "sub", "data"))).toBeGreaterThanOrEqual(3 * MIB);
  });

  it("stops once stopAbove is passed", () => {
    const dir = path.join(tmp, "many");
    fs.mkdirSync(dir);
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, `f${i}`), randomBytes(256 * 1024));
    const all = diskUsageBytes(dir);
    expect(all).toBeGreaterThanOrEqual(5 * MIB);
    const partial = diskUsageBytes(dir, MIB);
    expect(partial).toBeGreaterThan(MIB);
    expect(partial).toBeLessThan(all);
    expect(partial).toBeLessThanOrEqual(MIB + 2 * 256 * 1024);
  });

  it("gives 0 for a missing directory, and walks a tree 1000 directories deep", () => {
    expect(diskUsageBytes(path.join(tmp, "missing"))).toBe(0);
    const deep = path.join(tmp, "deep", ...Array.from({ length: 1000 }, () => "d"));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, "leaf"), randomBytes(64 * 1024));
    expect(diskUsageBytes(path.join(tmp, "deep"))).toBeGreaterThanOrEqual(64 * 1024 + 1000 * 512);
  });
});
