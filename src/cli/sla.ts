// `roost sla list-safe-hosts|probe-hosts|job`: aurora_admin's sla_list_safe_domain and
// sla_probe_hosts, and a job's uptime, over the API's sla.* reads (sla/reports.ts). They ask the
// leader (its clock is `now`); with no leader up they fold the log here and judge at this
// machine's clock, so an SRE can plan a drain during an outage.
//
//   roost sla list-safe-hosts 95 30m [--grouping by_rack] [--min-job-instance-count 10]
//   roost sla probe-hosts 95 30m host-1 host-2
//   roost sla job www-data/prod/web [--minutes 5,30,60]

import { type Command, InvalidArgumentError } from "commander";
import type { SlaJobReply, SlaProbeReply, SlaSafeHostsReply } from "../client/roostClient.js";
import type { CliClusterOptions, foldLocally } from "../client/transport.js";
import { isoTime } from "../domain/time.js";
import {
  DEFAULT_MIN_JOB_INSTANCE_COUNT,
  DEFAULT_UP_WINDOWS_MINUTES,
  formatDuration,
  type Grouping,
  parseDuration,
  type SlaRequest,
  slaRead,
} from "../sla/reports.js";
import type { CliDeps } from "./deps.js";
import { table } from "./format.js";

type Common = CliClusterOptions;

type SlaCliDeps = Pick<CliDeps, "withClusterOptions" | "withClient" | "readWithFallback" | "jobKeyArg">;

function percentArg(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || n > 100) throw new InvalidArgumentError(`PCT takes a percentage from 0 to 100; got "${v}"`);
  return n;
}

function durationArg(v: string): number {
  const s = parseDuration(v);
  if (s === null) throw new InvalidArgumentError(`DURATION takes a duration like 30m, 1h30m, 90s or 7d (XdYhZmWs); got "${v}"`);
  return s;
}

function countArg(v: string): number {
  if (!/^\d{1,6}$/.test(v.trim())) throw new InvalidArgumentError(`--min-job-instance-count takes a whole number ≥ 0; got "${v}"`);
  return Number(v);
}

function groupingArg(v: string): Grouping {
  if (v !== "by_host" && v !== "by_rack") throw new InvalidArgumentError(`--grouping takes by_host or by_rack; got "${v}"`);
  return v;
}

function minutesArg(v: string): number[] {
  const parts = v.split(",").map((p) => p.trim());
  if (parts.length > 10 || parts.some((p) => !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 10_080))
    throw new InvalidArgumentError(`--minutes takes 1 to 10 whole numbers of minutes from 1 to 10080, comma-separated; got "${v}"`);
  return parts.map(Number);
}

const pct = (n: number) => `${n.toFixed(2)}%`;

export function registerSlaCommands(program: Command, d: SlaCliDeps): void {
  const sla = program.command("sla").description("SLA reports: hosts safe to drain, a drain's predicted effect, a job's uptime");
  const local =
    <T>(op: "sla.safe-hosts" | "sla.probe" | "sla.job", req: SlaRequest) =>
    (st: Awaited<ReturnType<typeof foldLocally>>) =>
      slaRead(st, op, req, Date.now()) as T | null;

  d.withClusterOptions(
    sla
      .command("list-safe-hosts")
      .argument("<pct>", "percentage of each job's tasks that must stay RUNNING", percentArg)
      .argument("<duration>", "for how long they must have been RUNNING (30m, 1h, 90s, 1d)", durationArg)
      .option("--grouping <g>", "by_host, or by_rack: a rack's hosts are safe only if all of them together are", groupingArg, "by_host")
      .option(
        "--min-job-instance-count <n>",
        "jobs with fewer live tasks are not checked (aurora_admin's --min_job_instance_count)",
        countArg,
        DEFAULT_MIN_JOB_INSTANCE_COUNT,
      )
      .description("hosts whose tasks can all be killed now without breaking any job's SLA (aurora_admin's sla_list_safe_domain)"),
  ).action(async (percentage: number, durationSecs: number, o: Common & { grouping: Grouping; minJobInstanceCount: number }) => {
    const req = { percentage, durationSecs, grouping: o.grouping, minJobInstanceCount: o.minJobInstanceCount };
    await d.withClient(o, async (c) => {
      const r = await d.readWithFallback<SlaSafeHostsReply>(c.transport, "sla.safe-hosts", req, local("sla.safe-hosts", req), "report");
      console.log(o.json ? JSON.stringify(r, null, 2) : formatSafeHosts(r));
    });
  });

  d.withClusterOptions(
    sla
      .command("probe-hosts")
      .argument("<pct>", "percentage of each job's tasks that must stay RUNNING", percentArg)
      .argument("<duration>", "for how long they must have been RUNNING (30m, 1h, 90s, 1d)", durationArg)
      .argument("<hosts...>", "the hosts to probe, each going down alone")
      .option(
        "--min-job-instance-count <n>",
        "jobs with fewer live tasks are not checked (aurora_admin's --min_job_instance_count)",
        countArg,
        DEFAULT_MIN_JOB_INSTANCE_COUNT,
      )
      .description("each host's going down, job by job: HOST JOB PREDICTED_SLA SAFE? PREDICTED_SAFE_IN (aurora_admin's sla_probe_hosts)"),
  ).action(async (percentage: number, durationSecs: number, hosts: string[], o: Common & { minJobInstanceCount: number }) => {
    const req = { percentage, durationSecs, hosts, minJobInstanceCount: o.minJobInstanceCount };
    await d.withClient(o, async (c) => {
      const r = await d.readWithFallback<SlaProbeReply>(c.transport, "sla.probe", req, local("sla.probe", req), "report");
      console.log(o.json ? JSON.stringify(r, null, 2) : formatProbe(r));
    });
  });

  d.withClusterOptions(
    sla
      .command("job")
      .argument("<job>", "ROLE/ENV/NAME", d.jobKeyArg)
      .option("--minutes <list>", "the windows to count instances up throughout, in minutes", minutesArg, DEFAULT_UP_WINDOWS_MINUTES)
      .description("a job's uptime percentiles (50/75/90/95/99), and its instances up now and throughout the last minutes"),
  ).action(async (job: string, o: Common & { minutes: number[] }) => {
    const req = { job, minutes: o.minutes };
    await d.withClient(o, async (c) => {
      const r = await d.readWithFallback<SlaJobReply>(c.transport, "sla.job", req, local("sla.job", req), `job ${job}`);
      console.log(o.json ? JSON.stringify(r, null, 2) : formatJobSla(r));
    });
  });
}

function ask(r: { percentage: number; durationSecs: number; minJobInstanceCount: number }): string {
  return `every production job of ${r.minJobInstanceCount}+ live tasks keeps ${r.percentage}% of them RUNNING for over ${formatDuration(r.durationSecs)}`;
}

export function formatSafeHosts(r: SlaSafeHostsReply): string {
  const at = `at ${isoTime(r.now)}, log seq ${r.seq}`;
  if (r.hosts.length === 0) return `no hosts known (${at})`;
  const safe = r.hosts.filter((h) => h.safe);
  const unsafe = r.hosts.filter((h) => !h.safe);
  const jobs = (h: SlaSafeHostsReply["hosts"][number]) =>
    h.jobs
      .filter((j) => !j.skipped)
      .map((j) => `${j.job} ${pct(j.predictedPct)}`)
      .join(", ") || "-";
  const out = [`hosts safe to drain now (${ask(r)}; ${r.grouping}; ${at}):`];
  if (safe.length === 0) out.push("none");
  else
    out.push(
      table([["HOST", "RACK", "TASKS", "JOBS (PREDICTED SLA)"], ...safe.map((h) => [h.host, h.rack ?? "-", String(h.tasks), jobs(h)])]),
    );
  if (unsafe.length > 0) {
    out.push("", "not safe:");
    out.push(table([["HOST", "RACK", "WHY"], ...unsafe.map((h) => [h.host, h.rack ?? "-", h.why ?? ""])]));
  }
  return out.join("\n");
}

export function formatProbe(r: SlaProbeReply): string {
  const rows = [["HOST", "JOB", "PREDICTED_SLA", "SAFE?", "PREDICTED_SAFE_IN"]];
  for (const x of r.rows) {
    rows.push([
      x.host,
      x.job,
      pct(x.predictedPct),
      x.skipped ? "yes (not checked)" : x.safe ? "yes" : "no",
      x.safe ? "-" : x.safeInSecs === null ? "n/a" : formatDuration(x.safeInSecs),
    ]);
  }
  const out = [`if each host went down alone now (${ask(r)}; at ${isoTime(r.now)}, log seq ${r.seq}):`];
  if (rows.length > 1) out.push(table(rows));
  for (const h of r.hosts) {
    if (!h.known) out.push(`${h.host}: unknown host (no agent, no live task)`);
    else if (h.tasks === 0) out.push(`${h.host}: no live tasks: safe`);
  }
  const never = r.rows.filter((x) => !x.safe && x.safeInSecs === null);
  if (never.length > 0) out.push(`n/a: never without changes (too few of the job's other tasks are RUNNING)`);
  return out.join("\n");
}

export function formatJobSla(r: SlaJobReply): string {
  const out = [`${r.job}: ${r.live} live instance(s), ${r.running} RUNNING now (at ${isoTime(r.now)}, log seq ${r.seq})`];
  out.push(`uptime: ${r.percentiles.map((p) => `${p.percentile}%: ${formatDuration(p.uptimeSecs)}`).join("  ")}`);
  out.push(
    table([
      ["UP THROUGHOUT", "INSTANCES", "PERCENT"],
      ["now", `${r.running}/${r.live}`, pct(r.live === 0 ? 0 : (100 * r.running) / r.live)],
      ...r.windows.map((w) => [`last ${formatDuration(w.minutes * 60)}`, `${w.up}/${r.live}`, pct(w.percentage)]),
    ]),
  );
  return out.join("\n");
}
