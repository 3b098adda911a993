// `roost cluster status`: the scheduler replicas (from the members board, so standbys show even
// when no leader is up), the log (stream, replicas, last sequence), and the agents (from the
// leader, or folded from the log when there is none).

import { jetstreamManager } from "@nats-io/jetstream";
import type { Command } from "commander";
import type { ActorStats } from "../actors/actor.js";
import { KvMemberBoard, type MemberStatus } from "../actors/members.js";
import { NoResponderError } from "../bus/bus.js";
import type { Anomaly } from "../replay/state.js";
import {
  type CliClusterOptions,
  type ClusterClient,
  cliConnectOptions,
  connectClient,
  foldLocally,
  NatsClient,
  WaitTimeoutError,
  within,
} from "../client/transport.js";
import { table } from "./format.js";

/**
 * A replica's role as the board says, except "deposed": it still says leader, but a newer leader
 * has been elected (a killed leader's entry lives on the board until it expires, 8–10 s).
 */
type MemberRole = MemberStatus["role"] | "deposed";

export interface ClusterStatus {
  schedulers: Array<Pick<MemberStatus, "id" | "pid" | "host" | "epoch" | "appliedSeq"> & { role: MemberRole; seenMsAgo: number }>;
  log: { stream: string; replicas: number; lastSeq: number; leader: string | null; newestSnapshot: string | null } | null;
  agents: AgentLine[];
  leader: { schedulerId: string; epoch: number } | null;
  /** Log entries the fold skipped (the leader's, or this fold's when no leader answers): the first ones kept. */
  anomalies: Anomaly[];
  /** How many there are in all (anomalies holds the first MAX_ANOMALIES_KEPT). */
  anomalyCount: number;
  /** Where the agents and anomalies come from: the leader, or the log folded here. */
  source: "leader" | "local fold";
  /** Why they are missing: no leader answered and the log could not be folded here (else null). */
  foldError: string | null;
  /** The leader's actors: mailbox depth and the message each is handling (empty with no leader). */
  actors: ActorStats[];
}

/** An agent's line; `isolation` as it said at registration (null: it did not say). */
type AgentLine = {
  agentId: string;
  host: string;
  state: string;
  tasks: number;
  lastHeartbeat: number | null;
  isolation: { mode: string; detail: string } | null;
};

type Info = {
  schedulerId: string;
  epoch: number;
  agents: Array<Omit<AgentLine, "isolation"> & { isolation?: AgentLine["isolation"] }>;
  anomalies?: Anomaly[];
  anomalyCount?: number;
  actors?: ActorStats[];
};

/** The members board's entries, with a leader whose epoch is older than `currentEpoch` shown as deposed. */
function labelMembers(members: MemberStatus[], now: number, currentEpoch: number): ClusterStatus["schedulers"] {
  return members.map((m) => ({
    id: m.id,
    pid: m.pid,
    host: m.host,
    role: m.role === "leader" && m.epoch < currentEpoch ? "deposed" : m.role,
    epoch: m.epoch,
    appliedSeq: m.appliedSeq,
    seenMsAgo: now - m.ts,
  }));
}

async function clusterStatus(c: ClusterClient, stream = "ROOST"): Promise<ClusterStatus> {
  const now = Date.now();
  const t = c.timeoutMs;
  let members: MemberStatus[] = [];
  let log: ClusterStatus["log"] = null;
  if (c instanceof NatsClient) {
    // Each part is shown when it can be read; one that times out is said on stderr and left out.
    const skip = (err: unknown): null => {
      if (err instanceof WaitTimeoutError) c.note(`${err.message}; leaving it out`);
      return null;
    };
    const board = await within(t, `the members board (KV roost_members) at ${c.where}`, KvMemberBoard.open(c.nc)).catch(skip);
    members =
      (await within(t, `the members board (KV roost_members) at ${c.where}`, board?.list() ?? Promise.resolve([])).catch(skip)) ?? [];
    const jsm = await within(t, `JetStream at ${c.where}`, jetstreamManager(c.nc, { timeout: Math.min(5000, t) })).catch(skip);
    const si = jsm ? await within(t, `the log's stream ${stream} at ${c.where}`, jsm.streams.info(stream)).catch(skip) : null;
    if (jsm && si) {
      let newestSnapshot: string | null = null;
      try {
        newestSnapshot = await within(
          t,
          `the snapshot store at ${c.where}`,
          (async () => {
            const names = (await jsm.streams.names().next()).filter((n) => n === "OBJ_roost_snapshots");
            if (!names.length) return null;
            const { Objm } = await import("@nats-io/obj");
            const os = await new Objm(c.nc).open("roost_snapshots");
            return (
              (await os.list())
                .map((e) => e.name)
                .sort()
                .at(-1) ?? null
            );
          })(),
        );
      } catch {
        newestSnapshot = null;
      }
      log = { stream, replicas: si.config.num_replicas, lastSeq: si.state.last_seq, leader: si.cluster?.leader ?? null, newestSnapshot };
    }
  }
  let info: Info | null = null;
  try {
    // Once: a status must come back promptly, and says so when no leader answers.
    info = await c.request<Info>("cluster.info", {}, { retry: false, timeoutMs: Math.min(3000, t) });
  } catch (err) {
    if (!(err instanceof NoResponderError)) throw err;
  }
  let agents: ClusterStatus["agents"];
  let anomalies: Anomaly[];
  let anomalyCount: number;
  let foldedEpoch = 0;
  let foldError: string | null = null;
  if (info) {
    agents = info.agents.map((a) => ({
      agentId: a.agentId,
      host: a.host,
      state: a.state,
      tasks: a.tasks,
      lastHeartbeat: a.lastHeartbeat,
      isolation: a.isolation ?? null,
    }));
    anomalies = info.anomalies ?? [];
    anomalyCount = info.anomalyCount ?? anomalies.length;
  } else {
    // A status is for bad days: show what can be seen even when the log cannot be folded here.
    const st = await foldLocally(c).catch((err: Error) => {
      foldError = err.message;
      return null;
    });
    agents = st
      ? [...st.agents.values()].map((a) => ({
          agentId: a.agentId,
          host: a.host,
          state: a.state,
          tasks: a.tasks.size,
          lastHeartbeat: null,
          isolation: a.isolation ?? null,
        }))
      : [];
    anomalies = st?.anomalies ?? [];
    anomalyCount = st?.anomalyCount ?? 0;
    foldedEpoch = st?.leader?.epoch ?? 0;
  }
  // The current leader's epoch: the answering leader's, the newest LeaderElected, the highest on the board.
  const currentEpoch = Math.max(info?.epoch ?? 0, foldedEpoch, ...members.map((m) => m.epoch));
  let schedulers = labelMembers(members, now, currentEpoch);
  if (schedulers.length === 0 && info) {
    schedulers = [{ id: info.schedulerId, pid: 0, host: "", role: "leader", epoch: info.epoch, appliedSeq: 0, seenMsAgo: 0 }];
  }
  return {
    schedulers,
    log,
    agents: agents.sort((a, b) => (a.agentId < b.agentId ? -1 : 1)),
    leader: info ? { schedulerId: info.schedulerId, epoch: info.epoch } : null,
    anomalies,
    anomalyCount,
    source: info ? "leader" : "local fold",
    foldError,
    actors: info?.actors ?? [],
  };
}

/** How many anomalies the human output lists (--json has them all). */
const ANOMALIES_SHOWN = 5;

function formatClusterStatus(s: ClusterStatus): string {
  const out: string[] = [];
  out.push(
    s.leader
      ? `leader: ${s.leader.schedulerId} (epoch ${s.leader.epoch})`
      : s.foldError === null
        ? "leader: none answers (agents and anomalies below are folded from the log here)"
        : `leader: none answers, and the log cannot be folded here: ${s.foldError}`,
  );
  out.push("", "SCHEDULERS");
  out.push(
    s.schedulers.length
      ? table([
          ["ID", "PID", "HOST", "ROLE", "EPOCH", "APPLIED SEQ", "SEEN"],
          ...s.schedulers.map((m) => [
            m.id,
            String(m.pid),
            m.host,
            m.role,
            String(m.epoch),
            String(m.appliedSeq),
            `${Math.round(m.seenMsAgo / 1000)}s ago`,
          ]),
        ])
      : "  (none reporting)",
  );
  if (s.schedulers.some((m) => m.role === "deposed"))
    out.push("  (deposed: it still says leader on the members board, but a newer leader was elected; its entry expires within 10 s)");
  out.push("", "LOG");
  out.push(
    s.log
      ? `  stream ${s.log.stream}, ${s.log.replicas} replica(s), last seq ${s.log.lastSeq}, stream leader ${s.log.leader ?? "-"}, newest snapshot ${s.log.newestSnapshot ?? "none"}`
      : "  (not reachable from here)",
  );
  out.push("", "AGENTS");
  out.push(
    s.agents.length
      ? table([
          ["ID", "HOST", "STATE", "TASKS", "LAST HEARTBEAT", "ISOLATION"],
          ...s.agents.map((a) => [
            a.agentId,
            a.host,
            a.state,
            String(a.tasks),
            a.lastHeartbeat ? new Date(a.lastHeartbeat).toISOString() : "-",
            a.isolation?.mode ?? "-",
          ]),
        ])
      : "  (none)",
  );
  // An agent that cannot confine its tasks runs them unconfined: say so, with its reason.
  for (const a of s.agents) {
    if (a.isolation?.mode === "none") out.push(`  ! ${a.agentId} runs tasks UNCONFINED (no memory or cpu limits): ${a.isolation.detail}`);
  }
  out.push("", "LEADER'S ACTORS");
  out.push(
    s.actors.length
      ? table([
          ["ACTOR", "MAILBOX", "HANDLING", "FOR", "HANDLED", "FAILED"],
          ...s.actors.map((a) => [
            a.name,
            String(a.depth),
            a.handling ?? "-",
            a.handlingMs === null ? "-" : `${a.handlingMs} ms`,
            String(a.handled),
            String(a.failed),
          ]),
        ])
      : "  (no leader answers)",
  );
  out.push("", "ANOMALIES");
  if (s.foldError !== null) {
    out.push("  (unknown: the log cannot be folded here)");
  } else if (s.anomalyCount === 0) {
    out.push("  none: the fold applied every log entry");
  } else {
    out.push(
      `  ${s.anomalyCount} log entr${s.anomalyCount === 1 ? "y" : "ies"} the fold skipped${s.anomalyCount > ANOMALIES_SHOWN ? ` (the first ${Math.min(ANOMALIES_SHOWN, s.anomalies.length)}; all kept ones in --json)` : ""}; see them with \`roost log tail\`:`,
    );
    for (const a of s.anomalies.slice(0, ANOMALIES_SHOWN)) out.push(`  ${a.seq}.${a.index}  ${a.type}: ${a.why}`);
  }
  return out.join("\n");
}

export function registerClusterCommand(program: Command, withClusterOptions: (c: Command) => Command): void {
  const cluster = program.command("cluster").description("the cell as a whole");
  withClusterOptions(
    cluster.command("status").description("scheduler replicas (a replaced leader shows as deposed), the log, the agents and the anomalies"),
  )
    .option("--stream <name>", "the log's stream (default: the cluster file's, or ROOST)")
    .action(async (o: CliClusterOptions & { stream?: string }) => {
      const c = await connectClient(cliConnectOptions(o));
      try {
        const s = await clusterStatus(c, o.stream ?? (c instanceof NatsClient ? c.stream : "ROOST"));
        console.log(o.json ? JSON.stringify(s, null, 2) : formatClusterStatus(s));
      } finally {
        await c.close();
      }
    });
}
