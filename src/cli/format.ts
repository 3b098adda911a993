// Human-readable output. Every command also has --json for machines.

import { checkEventData, type LogEntry, UNREADABLE } from "../domain/events.js";
import { formatProblem } from "../domain/validate.js";
import type { JobStatusReply, QuotaReply } from "../client/roostClient.js";
import type { JobSummary, TaskHistory } from "../replay/queries.js";
import type { WhyReport } from "../scheduling/why.js";

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ")).join("\n");
}

const iso = (ts: number) => new Date(ts).toISOString();

export function formatJobStatus(s: JobStatusReply): string {
  const update = s.update ? `  ${s.update.restart ? "restart" : "update"} ${s.update.updateId} ${s.update.status}` : "";
  const head = `${s.job}  ${s.service ? "service" : "batch"}  ${s.instances.length} instance(s)  config version ${s.configVersion}${update}  (log seq ${s.seq})`;
  const rows = [["INSTANCE", "STATE", "CONFIG", "HOST", "PORTS", "TASK", "REASON"]];
  for (const i of s.instances) {
    rows.push([
      String(i.instance),
      i.state,
      String(i.configVersion),
      i.host ?? "-",
      Object.entries(i.ports)
        .map(([k, v]) => `${k}=${v}`)
        .join(",") || "-",
      i.taskId,
      i.reason,
    ]);
  }
  return `${head}\n${table(rows)}`;
}

export function formatJobList(jobs: JobSummary[]): string {
  if (jobs.length === 0) return "no jobs";
  const rows = [["JOB", "TYPE", "INSTANCES", "ACTIVE", "STATES"]];
  for (const j of jobs) {
    rows.push([
      j.job,
      j.service ? "service" : "batch",
      String(j.instances),
      String(j.active),
      Object.entries(j.states)
        .map(([k, v]) => `${k}:${v}`)
        .join(" "),
    ]);
  }
  return table(rows);
}

export function formatTaskHistory(h: TaskHistory): string {
  const lines = [
    `task ${h.taskId}`,
    `  job ${h.job} instance ${h.instance}, now ${h.state}${h.host ? ` on ${h.host}` : ""}${
      Object.keys(h.ports).length
        ? ` ports ${Object.entries(h.ports)
            .map(([k, v]) => `${k}=${v}`)
            .join(",")}`
        : ""
    }`,
    `  failures ${h.failureCount}${h.exitCode !== null ? `, last exit code ${h.exitCode}` : ""}`,
  ];
  if (h.ancestorId) lines.push(`  rescheduled from ${h.ancestorId}`);
  if (h.successorId) lines.push(`  rescheduled as ${h.successorId}`);
  const rows = [["SEQ", "TIME", "STATE", "REASON"]];
  for (const e of h.events) rows.push([String(e.seq), iso(e.ts), e.state, e.reason ?? ""]);
  return `${lines.join("\n")}\n\n${table(rows)}`;
}

/** `roost quota get`: quota, production use and headroom per resource, then the production jobs. */
export function formatQuotaReport(q: QuotaReply): string {
  const head = `role ${q.role}: production quota${q.quotaSet ? "" : " (none set: zero)"}  (log seq ${q.seq})`;
  const rows = [["RESOURCE", "QUOTA", "IN USE", "HEADROOM"]];
  for (const r of ["cpus", "ramMb", "diskMb"] as const) rows.push([r, String(q.quota[r]), String(q.usage[r]), String(q.headroom[r])]);
  const jobs =
    q.jobs.length === 0
      ? "no production jobs use this quota"
      : table([
          ["JOB", "INSTANCES", "CPUS", "RAMMB", "DISKMB"],
          ...q.jobs.map((j) => [j.job, String(j.instances), String(j.cpus), String(j.ramMb), String(j.diskMb)]),
        ]);
  return `${head}\n${table(rows)}\n\n${jobs}`;
}

/** Why the fold skips this entry whatever the state (unreadable, or breaking its schema), or null. */
export function entryAnomaly(e: LogEntry): string | null {
  if (e.type === UNREADABLE) return e.data.why;
  const bad = checkEventData(e.type, e.data);
  return bad === null ? null : formatProblem(bad, "data");
}

/**
 * One log entry as a line: seq.index time epoch type key fields — reason. An entry the fold
 * skips is marked `!! ANOMALY` with why; `anomaly` passes one the caller knows of otherwise (an
 * event that names a task the state does not hold).
 */
export function formatEvent(seq: number, idx: number, e: LogEntry, anomaly: string | null = entryAnomaly(e)): string {
  if (anomaly !== null) {
    return `${seq}.${idx}  ${iso(e.ts)}  e${e.epoch}  ${e.type}  !! ANOMALY (the fold skips it): ${anomaly}${e.reason ? `  — ${e.reason}` : ""}`;
  }
  if (e.type === UNREADABLE) return `${seq}.${idx}  ${e.type}`; // unreachable: entryAnomaly names it
  let what: string;
  switch (e.type) {
    case "TaskStateChanged":
      what = `task=${e.data.taskId} to=${e.data.to}${e.data.exitCode !== undefined ? ` exit=${e.data.exitCode}` : ""}${e.data.agentSeq !== undefined ? ` agentSeq=${e.data.agentSeq}` : ""}`;
      break;
    case "TaskAssigned":
      what = `task=${e.data.taskId} host=${e.data.host} agent=${e.data.agentId}${
        Object.keys(e.data.ports).length
          ? ` ports=${Object.entries(e.data.ports)
              .map(([k, v]) => `${k}:${v}`)
              .join(",")}`
          : ""
      }`;
      break;
    case "TaskCreated":
      what = `task=${e.data.taskId} job=${e.data.job} instance=${e.data.instance} state=${e.data.state}${e.data.ancestorId ? ` ancestor=${e.data.ancestorId}` : ""}`;
      break;
    case "JobCreated":
      what = `job=${e.data.job.role}/${e.data.job.environment}/${e.data.job.name} instances=${e.data.job.instances} config=v${e.data.configVersion}`;
      break;
    case "JobKillRequested":
      what = `job=${e.data.job} instances=${e.data.instances === null ? "all" : e.data.instances.join(",")} user=${e.data.user}`;
      break;
    case "AgentRegistered":
      what = `agent=${e.data.agentId} host=${e.data.host} cpus=${e.data.resources.cpus} ramMb=${e.data.resources.ramMb}`;
      break;
    case "AgentStateChanged":
      what = `agent=${e.data.agentId} to=${e.data.to}`;
      break;
    case "JobInstancesAdded":
      what = `job=${e.data.job} count=${e.data.count} user=${e.data.user}`;
      break;
    case "QuotaSet":
      what = `role=${e.data.role} cpus=${e.data.cpus} ramMb=${e.data.ramMb} diskMb=${e.data.diskMb} user=${e.data.user}`;
      break;
    case "SlotReserved":
      what = `task=${e.data.taskId} agent=${e.data.agentId} victims=${e.data.victims.join(",")} until=${iso(e.data.expiresTs)}`;
      break;
    case "SlotReleased":
      what = `task=${e.data.taskId} agent=${e.data.agentId}`;
      break;
    case "LeaderElected":
      what = `scheduler=${e.data.schedulerId} epoch=${e.data.epoch} host=${e.data.host} pid=${e.data.pid}`;
      break;
    case "RequestDecided":
      what = `key=${e.data.key} op=${e.data.op} outcome=${e.data.outcome}${e.data.error ? ` error=${e.data.error.code}` : ""}`;
      break;
    case "JobUpdateStarted":
      what = `update=${e.data.updateId} job=${e.data.job} v${e.data.fromVersion}→v${e.data.toVersion} instances=${e.data.instances === null ? "all" : e.data.instances.join(",")} status=${e.data.status} user=${e.data.user}`;
      break;
    case "JobUpdateStateChanged":
      what = `update=${e.data.updateId} to=${e.data.to}${e.data.user !== undefined ? ` user=${e.data.user}` : ""}`;
      break;
    case "JobInstanceUpdateEvent":
      what = `update=${e.data.updateId} instance=${e.data.instance} action=${e.data.action}`;
      break;
    case "JobUpdatePulsed":
      what = `update=${e.data.updateId} user=${e.data.user}`;
      break;
    case "CronJobScheduled":
      what = `job=${e.data.job.role}/${e.data.job.environment}/${e.data.job.name} cron="${e.data.job.cronSchedule ?? ""}" tz=${e.data.job.cronTimezone ?? "UTC"} policy=${e.data.job.cronCollisionPolicy ?? "KILL_EXISTING"} user=${e.data.user}`;
      break;
    case "CronJobDescheduled":
      what = `job=${e.data.job} user=${e.data.user}`;
      break;
    case "CronTriggered":
      what = `job=${e.data.job} minute=${iso(e.data.minuteMs)} outcome=${e.data.outcome}${e.data.missed > 0 ? ` missed=${e.data.missed}` : ""}${e.data.user !== undefined ? ` user=${e.data.user}` : ""}`;
      break;
    case "HostMaintenanceChanged":
      what = `hosts=${e.data.hosts.join(",")} to=${e.data.to}${e.data.user !== undefined ? ` user=${e.data.user}` : ""}${e.data.windowId !== undefined ? ` window=${e.data.windowId}` : ""}`;
      break;
    case "SlaDrainDenied":
      what = `task=${e.data.taskId} host=${e.data.host}`;
      break;
    case "MaintenanceWindowScheduled":
      what = `window=${e.data.windowId} hosts=${e.data.hosts.join(",")} start=${iso(e.data.startTs)} durationMs=${e.data.durationMs} user=${e.data.user}`;
      break;
    case "MaintenanceWindowEnded":
      what = `window=${e.data.windowId}${e.data.cancelled ? " cancelled" : " elapsed"}${e.data.user !== undefined ? ` user=${e.data.user}` : ""}`;
      break;
  }
  return `${seq}.${idx}  ${iso(e.ts)}  e${e.epoch}  ${e.type}  ${what}  — ${e.reason}`;
}

export function formatWhy(w: WhyReport): string {
  const lines = [`task ${w.taskId} is ${w.state}: ${w.summary}`];
  if (w.heldSlot)
    lines.push(
      `  a slot is held for it on ${w.heldSlot.host} (preempting ${w.heldSlot.victims.join(", ")}) until ${iso(w.heldSlot.expiresTs)}`,
    );
  if (w.vetoes?.length) {
    lines.push("", "hosts that cannot take it:");
    for (const v of w.vetoes) {
      lines.push(`  ${v.reason} — ${v.hosts} host(s)`);
      for (const e of v.examples) lines.push(`    ${e.host}: ${e.detail}`);
    }
  }
  if (w.feasible?.length)
    lines.push("", `hosts that could take it now: ${w.feasible.map((f) => `${f.host} (score ${f.score})`).join(", ")}`);
  const d = w.placement?.decision;
  if (d) {
    lines.push(
      "",
      `decision (log seq ${w.placement!.seq}): ${d.mode}, ${d.feasible} feasible of ${d.evaluated} hosts looked at, chosen score ${d.score}${d.reserved ? ", in a held slot" : ""}`,
    );
    for (const a of d.alternatives) lines.push(`  not ${a.host}: ${a.score !== undefined ? `lower score ${a.score}` : a.veto}`);
    const vetoes = Object.entries(d.vetoes);
    if (vetoes.length) lines.push(`  ruled out: ${vetoes.map(([r, n]) => `${r} (${n})`).join(", ")}`);
  }
  return lines.join("\n");
}
