// `roost dev`: a whole cluster in the foreground. A nats-server child (JetStream under
// .roost/nats) when nats-server is on PATH, or an existing server with --nats; a scheduler and
// N agents as child processes (`roost scheduler`, `roost agent`), each with its log under
// .roost/logs. Without any nats-server it runs embedded: an in-process log and bus, reachable by
// other `roost` commands through a loopback HTTP gateway. Ctrl-C stops everything.

import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Agent } from "../agent/agent.js";
import { Scheduler } from "../actors/scheduler.js";
import { MemoryBus } from "../bus/memory.js";
import { MemoryLog } from "../eventlog/memory.js";
import { findNatsServer, startNatsServer, type NatsServerHandle } from "../nats/server.js";
import { startNatsCluster } from "../nats/cluster.js";
import { makeLogger } from "../util/logger.js";
import { DEV_POLICY } from "../actors/policy.js";
import type { ClusterFile } from "./client.js";
import { connectClient } from "./client.js";
import { startGateway } from "./gateway.js";

/** Wait until a leader answers and every agent is ACTIVE (the children take a moment). */
async function waitReady(nats: string, agents: number, timeoutMs = 60_000): Promise<void> {
  const client = await connectClient({ nats });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        const info = await client.request<{ agents: Array<{ state: string }> }>("cluster.info", {}, 1000);
        if (info.agents.filter((a) => a.state === "ACTIVE").length >= agents) return;
      } catch {
        // no leader yet
      }
      if (Date.now() > deadline) throw new Error(`the dev cluster did not become ready within ${timeoutMs / 1000} s; see .roost/logs`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.close();
  }
}

export interface DevFlags {
  agents: number;
  nats?: string;
  /** Run on the in-process log and bus even when a nats-server is available. */
  embedded?: boolean;
  /** High availability: 3 nats-servers (an R3 stream) and 3 scheduler replicas. */
  ha?: boolean;
  dir: string;
  json: boolean;
}

const ROOST_BIN = fileURLToPath(new URL("../../../bin/roost.js", import.meta.url));

export function devAgentSpec(i: number) {
  const lo = 20000 + i * 1000;
  return {
    id: `agent-${i}`,
    host: `host-${i}`,
    attributes: { host: `host-${i}`, rack: `rack-${((i - 1) % 3) + 1}`, zone: `zone-${((i - 1) % 2) + 1}` },
    resources: { cpus: 4, ramMb: 4096, diskMb: 16384, gpus: 0, ports: [[lo, lo + 999]] as Array<[number, number]> },
  };
}

export async function runDev(f: DevFlags): Promise<void> {
  const dir = resolve(f.dir);
  mkdirSync(join(dir, "logs"), { recursive: true });
  const say = (msg: string, data: Record<string, unknown> = {}) =>
    console.log(f.json ? JSON.stringify({ msg, ...data }) : msg);
  const clusterFile = join(dir, "cluster.json");
  const stops: Array<() => Promise<void>> = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say("stopping the dev cluster…");
    for (const s of stops.reverse()) await s().catch(() => {});
    rmSync(clusterFile, { force: true });
    say("stopped");
    process.exit(code);
  };
  process.once("SIGINT", () => void stopAll(0));
  process.once("SIGTERM", () => void stopAll(0));

  let natsUrl = f.nats;
  if (f.ha && (f.embedded || f.nats)) throw new Error("--ha starts its own 3 nats-servers: it cannot be combined with --embedded or --nats");
  if (f.ha) {
    if (!findNatsServer()) throw new Error("--ha needs nats-server on PATH (apt-get install nats-server)");
    const cluster = await startNatsCluster({ dir: join(dir, "nats-ha"), name: "roost" });
    stops.push(() => cluster.stop());
    natsUrl = cluster.urls.join(",");
    say(`3 nats-servers ${cluster.urls.join(" ")} (JetStream R3 in ${join(dir, "nats-ha")}, pids ${cluster.servers.map((s) => s!.pid).join(" ")})`, { nats: cluster.urls, pids: cluster.servers.map((s) => s!.pid) });
  } else if (!natsUrl && !f.embedded && findNatsServer()) {
    const server: NatsServerHandle = await startNatsServer({ dir: join(dir, "nats") });
    stops.push(() => server.stop());
    natsUrl = server.url;
    say(`nats-server ${server.url} (JetStream in ${join(dir, "nats")}, pid ${server.pid})`, { nats: server.url, pid: server.pid });
  }

  if (natsUrl) {
    const children: ChildProcess[] = [];
    const child = (name: string, args: string[]) => {
      const out = createWriteStream(join(dir, "logs", `${name}.log`), { flags: "a" });
      const c = spawn(process.execPath, [ROOST_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      c.stdout!.pipe(out);
      c.stderr!.pipe(out);
      c.on("exit", (code, signal) => {
        if (!stopping) say(`${name} exited (${signal ?? code}); see ${join(dir, "logs", `${name}.log`)}`, { exited: name, code, signal });
      });
      children.push(c);
      stops.push(
        () =>
          new Promise<void>((r) => {
            if (c.exitCode !== null || c.signalCode !== null) return r();
            c.once("exit", () => r());
            c.kill("SIGTERM");
          }),
      );
      return c;
    };
    const replicas = f.ha ? 3 : 1;
    for (let i = 1; i <= replicas; i++) {
      child(`scheduler-${i}`, ["scheduler", "--nats", natsUrl, "--id", `scheduler-${i}`, "--replicas", String(replicas), "--policy", JSON.stringify(DEV_POLICY)]);
    }
    for (let i = 1; i <= f.agents; i++) {
      const a = devAgentSpec(i);
      child(a.id, [
        "agent", "--nats", natsUrl, "--id", a.id, "--host", a.host,
        ...Object.entries(a.attributes).filter(([k]) => k !== "host").flatMap(([k, v]) => ["--attr", `${k}=${v}`]),
        "--cpus", String(a.resources.cpus), "--ram-mb", String(a.resources.ramMb), "--disk-mb", String(a.resources.diskMb),
        "--ports", a.resources.ports.map(([lo, hi]) => `${lo}-${hi}`).join(","),
        "--work-dir", join(dir, "agents", a.id), "--kill-tasks-on-exit",
      ]);
    }
    const file: ClusterFile = { mode: "nats", nats: natsUrl, stream: "ROOST", pid: process.pid, startedAt: new Date().toISOString() };
    writeFileSync(clusterFile, JSON.stringify(file, null, 2) + "\n");
    await waitReady(natsUrl, f.agents);
    say(`${f.ha ? "3 scheduler replicas" : "a scheduler"} and ${f.agents} agents started; logs in ${join(dir, "logs")}`, { agents: f.agents, schedulers: f.ha ? 3 : 1 });
  } else {
    say(
      (f.embedded ? "--embedded" : "no nats-server found on PATH") +
        ": running embedded (in-process log and bus; the log is not kept after exit)",
      { embedded: true },
    );
    const bus = new MemoryBus();
    const log = new MemoryLog();
    const logger = makeLogger("dev");
    const scheduler = new Scheduler({ log, bus, logger, schedulerId: "scheduler-1", policy: DEV_POLICY });
    await scheduler.start();
    stops.push(() => scheduler.stop());
    for (let i = 1; i <= f.agents; i++) {
      const a = devAgentSpec(i);
      const agent = new Agent({ bus, agentId: a.id, host: a.host, attributes: a.attributes, resources: a.resources, workDir: join(dir, "agents", a.id), logger: logger.child({ agentId: a.id }) });
      await agent.start();
      stops.push(() => agent.stop({ killTasks: true }));
    }
    const gw = await startGateway(bus, log);
    stops.push(() => gw.close());
    const file: ClusterFile = { mode: "embedded", http: gw.url, pid: process.pid, startedAt: new Date().toISOString() };
    writeFileSync(clusterFile, JSON.stringify(file, null, 2) + "\n");
    say(`scheduler and ${f.agents} agents running in-process; gateway ${gw.url}`, { gateway: gw.url, agents: f.agents });
  }
  say(`dev timings (shorter than Aurora's): ${JSON.stringify(DEV_POLICY)}`, { policy: DEV_POLICY });
  say(`cluster ready: ${clusterFile}. Try: roost job create examples/hello-service.yaml   (Ctrl-C stops everything)`, { clusterFile });
}
