// `roost cluster status`: the scheduler replicas (from the members board, so standbys show even
// when no leader is up), the log (stream, replicas, last sequence), and the agents (from the
// leader, or folded from the log when there is none).

import { jetstreamManager } from "@nats-io/jetstream";
import type { Command } from "commander";
import { KvMemberBoard, type MemberStatus } from "../actors/members.js";
import { NoResponderError } from "../bus/bus.js";
import { NatsClient, connectClient, foldLocally, type ClusterClient } from "./client.js";
import { table } from "./format.js";

export interface ClusterStatus {
  schedulers: Array<Pick<MemberStatus, "id" | "pid" | "host" | "role" | "epoch" | "appliedSeq"> & { seenMsAgo: number }>;
  log: { stream: string; replicas: number; lastSeq: number; leader: string | null; newestSnapshot: string | null } | null;
  agents: Array<{ agentId: string; host: string; state: string; tasks: number; lastHeartbeat: number | null }>;
  leader: { schedulerId: string; epoch: number } | null;
}

type Info = { schedulerId: string; epoch: number; agents: Array<{ agentId: string; host: string; state: string; tasks: number; lastHeartbeat: number | null }> };

export async function clusterStatus(c: ClusterClient, stream = "ROOST"): Promise<ClusterStatus> {
  const now = Date.now();
  let schedulers: ClusterStatus["schedulers"] = [];
  let log: ClusterStatus["log"] = null;
  if (c instanceof NatsClient) {
    const board = await KvMemberBoard.open(c.nc).catch(() => null);
    schedulers = ((await board?.list()) ?? []).map((m) => ({ id: m.id, pid: m.pid, host: m.host, role: m.role, epoch: m.epoch, appliedSeq: m.appliedSeq, seenMsAgo: now - m.ts }));
    const jsm = await jetstreamManager(c.nc);
    const si = await jsm.streams.info(stream).catch(() => null);
    if (si) {
      let newestSnapshot: string | null = null;
      try {
        const names = (await jsm.streams.names().next()).filter((n) => n === "OBJ_roost_snapshots");
        if (names.length) {
          const { Objm } = await import("@nats-io/obj");
          const os = await new Objm(c.nc).open("roost_snapshots");
          const all = (await os.list()).map((e) => e.name).sort();
          newestSnapshot = all.at(-1) ?? null;
        }
      } catch {
        newestSnapshot = null;
      }
      log = { stream, replicas: si.config.num_replicas, lastSeq: si.state.last_seq, leader: si.cluster?.leader ?? null, newestSnapshot };
    }
  }
  let info: Info | null = null;
  try {
    info = await c.request<Info>("cluster.info", {}, 2000);
  } catch (err) {
    if (!(err instanceof NoResponderError)) throw err;
  }
  let agents: ClusterStatus["agents"];
  if (info) {
    agents = info.agents.map((a) => ({ agentId: a.agentId, host: a.host, state: a.state, tasks: a.tasks, lastHeartbeat: a.lastHeartbeat }));
  } else {
    const st = await foldLocally(c);
    agents = [...st.agents.values()].map((a) => ({ agentId: a.agentId, host: a.host, state: a.state, tasks: a.tasks.size, lastHeartbeat: null }));
  }
  if (schedulers.length === 0 && info) {
    schedulers = [{ id: info.schedulerId, pid: 0, host: "", role: "leader", epoch: info.epoch, appliedSeq: 0, seenMsAgo: 0 }];
  }
  return { schedulers, log, agents: agents.sort((a, b) => (a.agentId < b.agentId ? -1 : 1)), leader: info ? { schedulerId: info.schedulerId, epoch: info.epoch } : null };
}

export function formatClusterStatus(s: ClusterStatus): string {
  const out: string[] = [];
  out.push(s.leader ? `leader: ${s.leader.schedulerId} (epoch ${s.leader.epoch})` : "leader: none answers");
  out.push("", "SCHEDULERS");
  out.push(s.schedulers.length ? table([["ID", "PID", "HOST", "ROLE", "EPOCH", "APPLIED SEQ", "SEEN"], ...s.schedulers.map((m) => [m.id, String(m.pid), m.host, m.role, String(m.epoch), String(m.appliedSeq), `${Math.round(m.seenMsAgo / 1000)}s ago`])]) : "  (none reporting)");
  out.push("", "LOG");
  out.push(s.log ? `  stream ${s.log.stream}, ${s.log.replicas} replica(s), last seq ${s.log.lastSeq}, stream leader ${s.log.leader ?? "-"}, newest snapshot ${s.log.newestSnapshot ?? "none"}` : "  (not reachable from here)");
  out.push("", "AGENTS");
  out.push(s.agents.length ? table([["ID", "HOST", "STATE", "TASKS", "LAST HEARTBEAT"], ...s.agents.map((a) => [a.agentId, a.host, a.state, String(a.tasks), a.lastHeartbeat ? new Date(a.lastHeartbeat).toISOString() : "-"])]) : "  (none)");
  return out.join("\n");
}

export function registerClusterCommand(program: Command, withClusterOptions: (c: Command) => Command): void {
  const cluster = program.command("cluster").description("the cell as a whole");
  withClusterOptions(cluster.command("status").description("scheduler replicas, the log, and the agents"))
    .option("--stream <name>", "the log's stream", "ROOST")
    .action(async (o: { json?: boolean; nats?: string; cluster?: string; stream: string }) => {
      const c = await connectClient({ nats: o.nats, cluster: o.cluster });
      try {
        const s = await clusterStatus(c, o.stream);
        console.log(o.json ? JSON.stringify(s, null, 2) : formatClusterStatus(s));
      } finally {
        await c.close();
      }
    });
}
