// A returning agent's stale copies are killed at once (issue 8, item 5).
//
// Leader side: its kill retries back off (5 s, 10 s, 20 s with retryMs 1000), and an agent heard
// again after it was away restarts that backoff (Launcher.agentReturned): through its
// registration, or through its first heartbeat while the log holds it UNREACHABLE. A scheduler
// on the in-memory log and bus, with a bare agent id: the test plays the agent's part.
//
// Agent side: an agent whose connection comes back heartbeats and registers at once, and a
// registration lost on the way (sent into a dead connection) does not hold up the next one for
// its 5 s timeout. A real Agent on a bus that can report a reconnection; the test plays the
// leader's part.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Scheduler } from "../src/actors/scheduler.js";
import { Agent } from "../src/agent/agent.js";
import type { RegisterRequest } from "../src/agent/protocol.js";
import { subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";
import { MemoryLog } from "../src/eventlog/memory.js";
import { asAgentId } from "../src/domain/types.js";

const AGENT = asAgentId("agent-x");
/** With retryMs 1000 a kill's retry sleeps 5 s, then 10 s, then 20 s. */
const RETRY_MS = 1000;
/** Far below the first backoff (5 s): what "at once" is held to here. */
const AT_ONCE_MS = 1000;

let bus: MemoryBus;
let log: MemoryLog;
let s: Scheduler;

function registration(running: string[]): RegisterRequest {
  return {
    agentId: AGENT,
    host: "host-x",
    attributes: {},
    resources: { cpus: 1, ramMb: 64, diskMb: 64, ports: [[31000, 31009]] },
    bootId: "boot-x",
    running,
  };
}

/** Polls (bounded) until pred holds: a retry loop falling asleep makes no event. */
async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleeping = (key: string) => () => s.launcher.loopsFor(AGENT).some((l) => l.key === key && l.state === "sleeping");

/** Serves kills for the agent from now on; resolves with the first kill's time after `since`. */
function serveKills(answer: (n: number) => unknown = () => ({ ok: true })): {
  kills: Array<{ taskId: string; at: number }>;
  next: (timeoutMs: number) => Promise<number>;
} {
  const kills: Array<{ taskId: string; at: number }> = [];
  const waiters: Array<() => void> = [];
  bus.serve(subjects.kill(AGENT), (d) => {
    kills.push({ taskId: (d as { taskId: string }).taskId, at: Date.now() });
    for (const w of waiters.splice(0)) w();
    return answer(kills.length);
  });
  return {
    kills,
    next: (timeoutMs) => {
      const have = kills.length;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no kill within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (kills.length > have) {
            clearTimeout(timer);
            resolve(kills.at(-1)!.at);
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

describe("leader: a returning agent's stale copies are killed at once", () => {
  beforeEach(async () => {
    bus = new MemoryBus();
    log = new MemoryLog();
    s = new Scheduler({ log, bus, schedulerId: "s-test", retryMs: RETRY_MS, agentRequestTimeoutMs: 5000 });
    await s.start();
  });

  afterEach(async () => {
    await s.stop();
    await bus.close();
    await log.close();
  });

  it("re-registration wakes a kill retry sleeping in backoff", async () => {
    // The agent reports a copy the log does not know; nobody answers kills yet (it is away).
    expect(await s.agents.register(registration(["ghost-1"]))).toMatchObject({ ok: true });
    await until(sleeping("kill ghost-1 agent-x"), "the kill's retry to sleep in backoff");

    const served = serveKills();
    const t0 = Date.now();
    const next = served.next(AT_ONCE_MS);
    expect(await s.agents.register(registration(["ghost-1"]))).toMatchObject({ ok: true });
    expect((await next) - t0).toBeLessThan(AT_ONCE_MS);
    expect(served.kills.map((k) => k.taskId)).toEqual(["ghost-1"]);
    // Acknowledged: a zombie gets one kill, and its loop is done.
    await until(() => s.launcher.loopsFor(AGENT).length === 0, "the kill loop to end");
  });

  it("a heartbeat from an agent the log holds UNREACHABLE wakes it too, and asks the agent to register", async () => {
    expect(await s.agents.register(registration(["ghost-2"]))).toMatchObject({ ok: true });
    await until(sleeping("kill ghost-2 agent-x"), "the kill's retry to sleep in backoff");
    await s.commit([s.event("AgentStateChanged", { agentId: AGENT, to: "UNREACHABLE" }, "test: no heartbeat")]);
    expect(s.state.agents.get(AGENT)?.state).toBe("UNREACHABLE");

    const asks: unknown[] = [];
    bus.serve(subjects.leader, (d) => void asks.push(d));
    const served = serveKills();
    const t0 = Date.now();
    const next = served.next(AT_ONCE_MS);
    bus.publish(subjects.heartbeat(AGENT), { agentId: AGENT, ts: Date.now() });
    expect((await next) - t0).toBeLessThan(AT_ONCE_MS);
    await until(() => asks.length > 0, "the leader's request to register");
    expect(asks[0]).toMatchObject({ agentId: AGENT, epoch: s.epoch });
  });

  it("a kill whose request went out while the agent was away is sent again at once when it registers", async () => {
    // The first request reaches an agent that does not answer it (stopped, or cut off after it
    // was sent): without a kick it would only time out, 5 s later.
    const served = serveKills((n) => (n === 1 ? new Promise(() => {}) : { ok: true }));
    const first = served.next(AT_ONCE_MS);
    expect(await s.agents.register(registration(["ghost-3"]))).toMatchObject({ ok: true });
    await first;
    expect(s.launcher.loopsFor(AGENT)).toEqual([{ key: "kill ghost-3 agent-x", state: "sending" }]);
    const t0 = Date.now();
    const second = served.next(AT_ONCE_MS);
    expect(await s.agents.register(registration(["ghost-3"]))).toMatchObject({ ok: true });
    expect((await second) - t0).toBeLessThan(AT_ONCE_MS);
    expect(served.kills.map((k) => k.taskId)).toEqual(["ghost-3", "ghost-3"]);
  });

  it("without the agent's return the retry keeps its backoff (no request before it ends)", async () => {
    expect(await s.agents.register(registration(["ghost-4"]))).toMatchObject({ ok: true });
    await until(sleeping("kill ghost-4 agent-x"), "the kill's retry to sleep in backoff");
    const served = serveKills();
    // Other agents coming back change nothing for it.
    s.launcher.send({ type: "agentReturned", agentId: asAgentId("agent-other") });
    await expect(served.next(AT_ONCE_MS)).rejects.toThrow(/no kill within/);
    expect(served.kills).toEqual([]);
  });
});

/** A MemoryBus that can say its connection came back (as NatsBus does). */
class ReconnectingBus extends MemoryBus {
  private readonly listeners = new Set<() => void>();
  onReconnect(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  reconnected(): void {
    for (const l of [...this.listeners]) l();
  }
}

describe("agent: back on the bus, it says so at once", () => {
  let rbus: ReconnectingBus;
  let agent: Agent;
  let tmp: string;
  /** Registration requests as they arrive; answer(i) decides the reply to the i-th (0-based). */
  let registrations: Array<{ at: number; running: string[] }>;
  let heartbeats: number[];
  let answer: (i: number) => unknown;
  let waiters: Array<() => void>;

  const arrived = (pred: () => boolean, what: string, timeoutMs = AT_ONCE_MS) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else waiters.push(check);
      };
      check();
    });

  beforeEach(async () => {
    tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), "roost-return-"));
    rbus = new ReconnectingBus();
    registrations = [];
    heartbeats = [];
    waiters = [];
    answer = () => ({ ok: true, epoch: 1, schedulerId: "fake" });
    const wake = () => {
      for (const w of waiters.splice(0)) w();
    };
    rbus.serve(subjects.anyAgent.register, (d) => {
      registrations.push({ at: Date.now(), running: (d as RegisterRequest).running });
      wake();
      return answer(registrations.length - 1);
    });
    rbus.serve(subjects.anyAgent.heartbeat, () => {
      heartbeats.push(Date.now());
      wake();
    });
    rbus.serve(subjects.anyAgent.status, () => ({ ok: true }));
    agent = new Agent({
      bus: rbus,
      agentId: AGENT,
      host: "host-x",
      attributes: {},
      resources: { cpus: 1, ramMb: 64, diskMb: 64, ports: [[31000, 31009]] },
      workDir: path.join(tmp, "agent"),
      bootId: "boot-x",
      heartbeatMs: 60_000, // only the ones the test causes
      checkpoint: false,
    });
    await agent.start();
    expect(registrations).toHaveLength(1);
  });

  afterEach(async () => {
    await agent.stop({ graceMs: 0 });
    await rbus.close();
    await fs.promises.rm(tmp, { recursive: true, force: true });
  });

  it("the connection is back: a heartbeat and a registration go out at once", async () => {
    const t0 = Date.now();
    rbus.reconnected();
    await arrived(() => heartbeats.length >= 1 && registrations.length >= 2, "a heartbeat and a registration");
    expect(registrations[1]!.at - t0).toBeLessThan(AT_ONCE_MS);
    expect(heartbeats[0]! - t0).toBeLessThan(AT_ONCE_MS);
  });

  it("a registration lost on the way does not hold up the next: the leader's request to register sends a fresh one now", async () => {
    // The second registration goes unanswered (it went into a connection that died).
    answer = (i) => (i === 1 ? new Promise(() => {}) : { ok: true, epoch: 1, schedulerId: "fake" });
    rbus.reconnected();
    await arrived(() => registrations.length >= 2, "the registration that is lost");
    const t0 = Date.now();
    rbus.publish(subjects.leader, { schedulerId: "fake", epoch: 1, agentId: AGENT });
    await arrived(() => registrations.length >= 3, "a fresh registration");
    expect(registrations[2]!.at - t0).toBeLessThan(AT_ONCE_MS);
    // A request to register meant for another agent changes nothing.
    rbus.publish(subjects.leader, { schedulerId: "fake", epoch: 1, agentId: "agent-other" });
    await expect(arrived(() => registrations.length >= 4, "no registration", 300)).rejects.toThrow(/timed out/);
  });

  it("a new leader's announcement cuts short a registration still waiting on the dead one; repeating it does not", async () => {
    // The registration sent when the connection came back went to the leader that then died: it
    // would wait out its 5 s timeout, and the new leader holds placement until the agent registers.
    answer = (i) => (i === 1 ? new Promise(() => {}) : { ok: true, epoch: 2, schedulerId: "next" });
    rbus.reconnected();
    await arrived(() => registrations.length >= 2, "the registration the dead leader holds");
    const t0 = Date.now();
    rbus.publish(subjects.leader, { schedulerId: "next", epoch: 2 });
    await arrived(() => registrations.length >= 3, "a registration with the new leader");
    expect(registrations[2]!.at - t0).toBeLessThan(AT_ONCE_MS);
    await until(() => agent.isRegistered && agent.leaderEpoch === 2, "registered at epoch 2");
    // The same announcement again (a careless operator, a duplicate delivery), while a
    // registration is under way, sends nothing more: only a higher epoch cuts a wait short.
    answer = () => new Promise(() => {});
    rbus.publish(subjects.leader, { schedulerId: "next", epoch: 2 });
    await arrived(() => registrations.length >= 4, "the registration the repeated announcement starts");
    for (let i = 0; i < 5; i++) rbus.publish(subjects.leader, { schedulerId: "next", epoch: 2 });
    await expect(arrived(() => registrations.length >= 5, "no registration", 300)).rejects.toThrow(/timed out/);
  });

  it("a malformed leader announcement is ignored: it cannot make the agent refuse the real leader", async () => {
    for (const bad of [{ epoch: 1e300, schedulerId: "x" }, { epoch: "9".repeat(30), schedulerId: "x" }, { epoch: 5 }, "hello", null])
      rbus.publish(subjects.leader, bad);
    await expect(arrived(() => registrations.length >= 2, "no registration", 300)).rejects.toThrow(/timed out/);
    // The real leader (epoch 1) announces itself: the agent registers, and accepts its reply.
    rbus.publish(subjects.leader, { schedulerId: "fake", epoch: 1 });
    await arrived(() => registrations.length >= 2, "a registration with the real leader");
    await until(() => agent.isRegistered && agent.leaderEpoch === 1, "registered at epoch 1");
  });

  it("a well-formed announcement no leader confirms is dropped: the agent registers with the leader that answers", async () => {
    // On a bus without permissions anyone can claim a huge epoch. The real leader (epoch 1) keeps
    // answering; no leader at the claimed epoch ever does.
    rbus.publish(subjects.leader, { schedulerId: "evil", epoch: Number.MAX_SAFE_INTEGER });
    await arrived(() => registrations.length >= 2, "the agent registers again for the claimed leader");
    expect(agent.announced).toBe(Number.MAX_SAFE_INTEGER);
    // It retries while the claim stands, then drops it and takes the leader that answers.
    await until(() => agent.announced === 1, "the claim dropped", 20_000);
    expect(agent.isRegistered && agent.leaderEpoch === 1).toBe(true);
    expect(registrations.length).toBeGreaterThanOrEqual(3);
  }, 30_000);
});
