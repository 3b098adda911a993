// The SRE's commands: history, replay --at, diff, inspect, verify, export, and `task why --at`.
// Each reads the log itself (the newest snapshot at or before the moment, then the records after
// it) through the same HistoryService every replica and the web UI answer with, so it works with
// no scheduler up, during the outage it is needed for. Only `verify` asks the live leader, for
// its state hash, and says so when none answers.
//
//   roost history task|job|agent|host ID [--from A] [--to B]
//   roost replay --at SEQ|TIME
//   roost diff --from A [--to B]
//   roost inspect task|agent ID [--at A] [--graph mermaid|dot]
//   roost verify
//   roost export [--from A] [--to B] > events.ndjson

import { type Command, InvalidArgumentError, Option } from "commander";
import { NoResponderError } from "../bus/bus.js";
import { isoTime } from "../domain/time.js";
import { connectClient, cliConnectOptions, type ClusterClient } from "../client/transport.js";
import { HistoryService, type LiveHash, NotFoundError } from "../history/service.js";
import { AtError, type AtSpec, type LogReader } from "../history/timeMachine.js";
import { atArg } from "./atArg.js";
import type { DiffReport, ReplayReport } from "../views/cluster.js";
import { table } from "./format.js";
import { type SnapshotOptions, withCluster } from "./snapshot.js";

interface HistoryCliOptions extends SnapshotOptions {
  timeout?: number;
}

/** A LogReader over a CLI cluster client (the embedded dev cluster's bridge has no JetStream). */
function clientReader(c: ClusterClient): LogReader {
  return { get: (seq) => c.get(seq), lastSeq: async () => (await c.lastSeq()) ?? 0, read: (from) => c.readLog(from) };
}

/** Run `fn` with a HistoryService over this cluster's log and snapshots (and the client, to ask the leader). */
export async function withHistory<T>(o: HistoryCliOptions, fn: (h: HistoryService, client: ClusterClient) => Promise<T>): Promise<T> {
  const client = await connectClient(cliConnectOptions(o));
  try {
    const progress = (msg: string) => console.error(`roost: ${msg}`);
    const liveHash = async (): Promise<LiveHash | null> => {
      try {
        return await client.request<LiveHash>("cluster.hash", {}, { retry: false, timeoutMs: Math.min(3000, client.timeoutMs) });
      } catch (err) {
        if (err instanceof NoResponderError) return null;
        throw err;
      }
    };
    if (/^https?:/i.test(client.where)) {
      return await fn(new HistoryService({ log: clientReader(client), liveHash, progress }), client);
    }
    return await withCluster(o, ({ log, store }) => fn(new HistoryService({ log, store, liveHash, progress }), client), true);
  } catch (err) {
    if (err instanceof AtError || err instanceof NotFoundError) throw new Error(err.message);
    throw err;
  } finally {
    await client.close();
  }
}

const out = (o: { json?: boolean }, value: unknown, human: () => string) => console.log(o.json ? JSON.stringify(value, null, 2) : human());

const moment = (m: { seq: number; ts: number }) => `sequence ${m.seq} (${m.ts ? isoTime(m.ts) : "before the first record"})`;

function formatReplay(r: ReplayReport): string {
  const s = r.summary;
  const lines = [
    `the cluster at ${moment(r.at)}`,
    `leader: ${r.leader ? `${r.leader.schedulerId} (epoch ${r.leader.epoch})` : "none yet"}`,
    `jobs ${s.jobs}, tasks ${s.tasks.total} (${Object.entries(s.tasks.byState)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}), agents ${s.agents.total}, pending ${s.pending}, anomalies ${s.anomalyCount}`,
    "",
  ];
  if (r.jobs.length) {
    lines.push(
      table([
        ["JOB", "TYPE", "INSTANCES", "ACTIVE", "TASKS"],
        ...r.jobs.map((j) => [
          j.job,
          j.service ? "service" : "batch",
          String(j.instances),
          String(j.active),
          j.tasks.map((t) => `${t.instance}:${t.state}${t.host ? `@${t.host}` : ""}`).join(" "),
        ]),
      ]),
      "",
    );
  }
  if (r.agents.length) {
    lines.push(
      table([
        ["AGENT", "HOST", "STATE", "TASKS", "FREE CPUS", "FREE RAM MB", "FREE DISK MB"],
        ...r.agents.map((a) => [
          a.agentId,
          a.host,
          a.state,
          String(a.tasks),
          String(a.free.cpus),
          String(a.free.ramMb),
          String(a.free.diskMb),
        ]),
      ]),
      "",
    );
  }
  if (r.pending.length) {
    lines.push(table([["PENDING TASK", "SINCE", "REASON"], ...r.pending.map((p) => [p.taskId, `seq ${p.since.seq}`, p.reason])]), "");
  }
  if (r.quotas.length) {
    lines.push(
      table([
        ["ROLE", "QUOTA CPUS/RAM/DISK", "USED CPUS/RAM/DISK", "PROD JOBS"],
        ...r.quotas.map((q) => [
          q.role,
          `${q.quota.cpus}/${q.quota.ramMb}/${q.quota.diskMb}`,
          `${q.used.cpus}/${q.used.ramMb}/${q.used.diskMb}`,
          String(q.jobs),
        ]),
      ]),
    );
  }
  return lines.join("\n").trimEnd();
}

function formatDiff(d: DiffReport): string {
  const lines = [`from ${moment(d.from)}`, `to   ${moment(d.to)}`, ""];
  const none = (xs: readonly unknown[]) => (xs.length ? "" : " none");
  lines.push(`jobs created:${none(d.jobs.created)} ${d.jobs.created.join(", ")}`.trimEnd());
  lines.push(`jobs killed:${none(d.jobs.killed)} ${d.jobs.killed.join(", ")}`.trimEnd());
  for (const c of d.jobs.changed) lines.push(`job ${c.job}: ${c.what} ${c.from} → ${c.to}`);
  lines.push(`tasks that changed state:${none(d.tasks)}`);
  for (const g of d.tasks)
    lines.push(`  ${g.from} → ${g.to}: ${g.count} (${g.examples.join(", ")}${g.count > g.examples.length ? ", …" : ""})`);
  lines.push(`agents that came:${none(d.agents.came)} ${d.agents.came.join(", ")}`.trimEnd());
  lines.push(`agents that went:${none(d.agents.went)} ${d.agents.went.join(", ")}`.trimEnd());
  for (const c of d.agents.changed) lines.push(`  agent ${c.agentId} (${c.host}): ${c.from} → ${c.to}`);
  lines.push(`quota changes:${none(d.quotas)}`);
  for (const q of d.quotas) {
    const f = q.from ? `${q.from.cpus}/${q.from.ramMb}/${q.from.diskMb}` : "none";
    lines.push(`  ${q.role}: ${f} → ${q.to.cpus}/${q.to.ramMb}/${q.to.diskMb} (cpus/ramMb/diskMb)`);
  }
  if (d.leader)
    lines.push(
      `leader: ${d.leader.from?.schedulerId ?? "none"} → ${d.leader.to?.schedulerId ?? "none"} (epoch ${d.leader.to?.epoch ?? 0})`,
    );
  return lines.join("\n");
}

/** The commands, added to `program`. */
export function addHistoryCommands(program: Command, withClusterOptions: (c: Command) => Command): void {
  const kinds = ["task", "job", "agent", "host"];
  withClusterOptions(
    program
      .command("history")
      .description("every event that touched a task, job, agent or host: seq, time, epoch, actor, state change, reason")
      .argument("<kind>", `one of ${kinds.join(", ")}`, (v: string) => {
        if (!kinds.includes(v)) throw new InvalidArgumentError(`must be one of ${kinds.join(", ")}`);
        return v;
      })
      .argument("<id>", "a task id, ROLE/ENV/NAME, an agent id, or a host name")
      .option("--from <seq|time>", "from this sequence or time (default: where its story starts)", atArg)
      .option("--to <seq|time>", "up to this sequence or time (default: the end of the log)", atArg),
  ).action(async (kind: "task" | "job" | "agent" | "host", id: string, o: HistoryCliOptions & { from?: AtSpec; to?: AtSpec }) => {
    const r = await withHistory(o, (h) => h.history({ kind, id, from: o.from, to: o.to }));
    out(o, r, () => {
      const rows = [["SEQ", "TIME", "EPOCH", "ACTOR", "EVENT", "CHANGE", "REASON"]];
      for (const i of r.items) {
        rows.push([
          `${i.seq}.${i.index}`,
          i.time,
          String(i.epoch),
          i.actor,
          i.type,
          i.change ? `${kind === "task" ? "" : `${i.change.of}: `}${i.change.from} → ${i.change.to}` : "",
          i.reason,
        ]);
      }
      const tail = r.truncated ? `\n(stopped at ${r.items.length} events; resume with --from ${r.next})` : "";
      return `${kind} ${id}: ${r.items.length} event(s) from ${moment(r.from)} to ${moment(r.to)}\n${table(rows)}${tail}`;
    });
  });

  withClusterOptions(
    program
      .command("replay")
      .description(
        "the cluster as it was at a moment: jobs and tasks, agents and free resources, pending tasks with reasons, quotas, leader",
      )
      .option("--at <seq|time>", "the moment: a log sequence, or a time (the last record written at or before it); default: now", atArg),
  ).action(async (o: HistoryCliOptions & { at?: AtSpec }) => {
    const r = await withHistory(o, (h) => h.replay({ at: o.at }));
    out(o, r, () => formatReplay(r));
  });

  withClusterOptions(
    program
      .command("diff")
      .description("what changed between two moments: jobs created or killed, task state changes (grouped), agents, quotas")
      .requiredOption("--from <seq|time>", "the earlier moment", atArg)
      .option("--to <seq|time>", "the later moment (default: the end of the log)", atArg),
  ).action(async (o: HistoryCliOptions & { from: AtSpec; to?: AtSpec }) => {
    const r = await withHistory(o, (h) => h.diff({ from: o.from, to: o.to }));
    out(o, r, () => formatDiff(r));
  });

  withClusterOptions(
    program
      .command("inspect")
      .description("a task's or an agent's state machine: its state, the events it accepts now, its transitions; --graph draws it")
      .argument("<kind>", "task or agent", (v: string) => {
        if (v !== "task" && v !== "agent") throw new InvalidArgumentError("must be task or agent");
        return v;
      })
      .argument("<id>", "the task id or agent id")
      .option("--at <seq|time>", "as of this moment (default: now)", atArg)
      .addOption(new Option("--graph <format>", "print the whole machine with the current state marked").choices(["mermaid", "dot"])),
  ).action(async (kind: "task" | "agent", id: string, o: HistoryCliOptions & { at?: AtSpec; graph?: "mermaid" | "dot" }) => {
    const r = await withHistory(o, (h) => h.inspect({ kind, id, at: o.at, graph: o.graph }));
    if (o.graph && !o.json) {
      console.log(r.rendered);
      return;
    }
    out(o, r, () => {
      const accepts = r.accepts.map(
        (a) =>
          `  ${a.event}${a.guard ? ` [${a.guard}]` : ""} → ${a.targetless ? "(stays)" : a.target}${a.actions.length ? ` / ${a.actions.join(", ")}` : ""}`,
      );
      const hist = r.history.map((x) => `  ${x.seq}.${x.idx}  ${isoTime(x.ts)}  ${x.from} → ${x.to}  ${x.reason ?? ""}`);
      return [
        `${kind} ${id} at ${moment(r.at)}: ${r.state}`,
        "accepts now:",
        ...(accepts.length ? accepts : ["  nothing (a final state)"]),
        "transitions:",
        ...hist,
      ].join("\n");
    });
  });

  withClusterOptions(
    program
      .command("verify")
      .description("fold the log from genesis and compare with the newest snapshot and the live leader's state; exit 1 on a mismatch"),
  ).action(async (o: HistoryCliOptions) => {
    const r = await withHistory(o, (h) => h.verify());
    out(o, r, () =>
      [
        `folded ${r.seq} records from genesis: state ${r.stateHash.slice(0, 16)} (${r.anomalyCount} anomalies)`,
        ...r.checks.map((c) =>
          c.note
            ? `  ${c.what}: ${c.note}`
            : `  ${c.ok ? "ok      " : "MISMATCH"} ${c.what} at sequence ${c.seq}${c.difference ? `: first difference ${c.difference}` : ""}`,
        ),
        r.ok ? "verified" : "MISMATCH",
      ].join("\n"),
    );
    if (!r.ok) process.exitCode = 1;
  });

  withClusterOptions(
    program
      .command("export")
      .description("the decoded events, one JSON object per line (seq, index, ts, epoch, type, reason, corr, data, job, role, agent)")
      .option("--from <seq|time>", "from this sequence or time (default: the first record)", atArg)
      .option("--to <seq|time>", "up to this sequence or time (default: the end of the log)", atArg),
  ).action(async (o: HistoryCliOptions & { from?: AtSpec; to?: AtSpec }) => {
    await withHistory(o, async (h) => {
      for await (const item of h.export({ from: o.from, to: o.to })) {
        if (!process.stdout.write(`${JSON.stringify(item)}\n`)) await new Promise((r) => process.stdout.once("drain", r));
      }
    });
  });
}
