// `roost host maintenance start|drain|status|end|schedule|cancel|windows`: host maintenance, after
// Aurora's aurora_admin (host_deactivate, sla_host_drain / host_drain, host_status,
// host_activate) and Mesos's maintenance windows, over the API's admin host.maintenance.* ops.
//
//   roost host maintenance start HOSTS... [--file hosts.txt]     → SCHEDULED (new tasks go elsewhere)
//   roost host maintenance drain HOSTS... [--default-percentage 95 --default-duration 30m
//                                          --force-drain-timeout 7d --sla-aware-kill-non-prod | --force]
//   roost host maintenance status [HOSTS...]                     mode, tasks, since, reason
//   roost host maintenance end HOSTS...                          → NONE (back in service)
//   roost host maintenance schedule --start TIME --duration D HOSTS...   a window
//   roost host maintenance cancel WINDOW_ID
//   roost host maintenance windows
//
// The same command twice is harmless: hosts already in the mode are reported as skipped.

import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { type Command, InvalidArgumentError } from "commander";
import type { HostMaintenanceStatusReply, HostMaintenanceWindowsReply, HostMaintenanceWriteReply } from "../client/roostClient.js";
import type { CliClusterOptions } from "../client/transport.js";
import type { CliDeps } from "./deps.js";
import { table } from "./format.js";

type Common = CliClusterOptions;

type HostCliDeps = Pick<CliDeps, "withClusterOptions" | "withClient" | "userArg" | "keyArg" | "newKey" | "keyFlag" | "keyHelp">;

type WriteOpts = Common & { user: string; key?: string; file?: string };
type DrainOpts = WriteOpts & {
  defaultPercentage?: number;
  defaultDuration?: number;
  forceDrainTimeout?: number;
  slaAwareKillNonProd?: boolean;
  force?: boolean;
};

/** "7d", "30m", "1h30m", "0s" or bare seconds → seconds. */
function durationArg(v: string): number {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v.trim());
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  if (!m || v.trim() === "") throw new InvalidArgumentError(`must be a duration like 7d, 2h, 30m, 90s or 1h30m (got "${v}")`);
  const [, d, h, min, s] = m;
  return Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3600 + Number(min ?? 0) * 60 + Number(s ?? 0);
}

function percentageArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 100) throw new InvalidArgumentError(`must be a number > 0 and ≤ 100 (got "${v}")`);
  return n;
}

/** A window's start: RFC 3339, epoch ms, or "+D" (from now, e.g. +10m). */
function startArg(v: string): string | number {
  if (/^\d+$/.test(v)) return Number(v);
  if (v.startsWith("+")) return Date.now() + durationArg(v.slice(1)) * 1000;
  if (Number.isNaN(Date.parse(v)))
    throw new InvalidArgumentError(`must be a time (RFC 3339, e.g. 2026-12-02T03:00:00Z), epoch ms, or +D from now (got "${v}")`);
  return v;
}

/** The hosts named on the command line and in --file (one per line; blank lines and # comments ignored), once each. */
function hostsOf(args: string[], file: string | undefined): string[] {
  const fromFile = file
    ? readFileSync(file, "utf8")
        .split("\n")
        .map((l) => l.replace(/#.*/, "").trim())
        .filter((l) => l !== "")
    : [];
  const hosts = [...new Set([...args, ...fromFile])];
  if (hosts.length === 0) throw new Error("name at least one host (HOSTS... or --file hosts.txt)");
  return hosts;
}

export function registerHostCommands(program: Command, d: HostCliDeps): void {
  const host = program.command("host").description("hosts: maintenance (admin)");
  const m = host
    .command("maintenance")
    .description("host maintenance (admin): start (SCHEDULED), drain (SLA-aware), status, end, and maintenance windows");
  const print = (o: Common, value: unknown, human: () => string) => console.log(o.json ? JSON.stringify(value, null, 2) : human());
  const writeCmd = (c: Command) =>
    d.withClusterOptions(c).option("--user <name>", "who is asking", d.userArg, userInfo().username).option(d.keyFlag, d.keyHelp, d.keyArg);
  const hostsCmd = (c: Command) =>
    writeCmd(c.argument("[hosts...]", "host names").option("--file <file>", "more host names, one per line"));
  const drainFlags = (c: Command, durationFlag: string) =>
    c
      .option(
        "--default-percentage <pct>",
        "default SLA of jobs without their own slaPolicy: percent of tasks that stay active (default 95)",
        percentageArg,
      )
      .option(`${durationFlag} <duration>`, "… for longer than this (e.g. 30m; default 30m)", durationArg)
      .option("--force-drain-timeout <duration>", "drain whatever the SLAs say once this has passed (e.g. 7d, 0s; default 7d)", durationArg)
      .option("--sla-aware-kill-non-prod", "judge non-production jobs by their SLA too (default: drained without a check)")
      .option("--force", "drain at once, without an SLA check (Aurora's host_drain)");
  const drainReq = (o: DrainOpts, duration: number | undefined, durationField: "durationSecs" | "slaDurationSecs") => ({
    ...(o.defaultPercentage !== undefined ? { percentage: o.defaultPercentage } : {}),
    ...(duration !== undefined ? { [durationField]: duration } : {}),
    ...(o.forceDrainTimeout !== undefined ? { forceDrainTimeoutSecs: o.forceDrainTimeout } : {}),
    ...(o.slaAwareKillNonProd ? { slaAwareKillNonProd: true } : {}),
    ...(o.force ? { force: true } : {}),
  });

  hostsCmd(m.command("start").description("put hosts in maintenance (SCHEDULED): new tasks go elsewhere when another host fits")).action(
    async (args: string[], o: WriteOpts) => {
      await d.withClient(o, async (c) => {
        const r = await c.startMaintenance({ hosts: hostsOf(args, o.file), user: o.user }, { key: o.key ?? d.newKey() });
        print(o, r, () => formatWrite(r));
      });
    },
  );

  drainFlags(
    hostsCmd(
      m
        .command("drain")
        .description(
          "drain hosts (DRAINING): tasks move elsewhere while each job's SLA holds, forced after --force-drain-timeout; DRAINED when empty",
        ),
    ),
    "--default-duration",
  ).action(async (args: string[], o: DrainOpts & { defaultDuration?: number }) => {
    await d.withClient(o, async (c) => {
      const r = await c.drainHosts(
        { hosts: hostsOf(args, o.file), ...drainReq(o, o.defaultDuration, "durationSecs"), user: o.user },
        { key: o.key ?? d.newKey() },
      );
      print(o, r, () => formatWrite(r));
    });
  });

  hostsCmd(m.command("end").description("end hosts' maintenance (NONE): back in service")).action(async (args: string[], o: WriteOpts) => {
    await d.withClient(o, async (c) => {
      const r = await c.endMaintenance({ hosts: hostsOf(args, o.file), user: o.user }, { key: o.key ?? d.newKey() });
      print(o, r, () => formatWrite(r));
    });
  });

  d.withClusterOptions(
    m
      .command("status")
      .argument("[hosts...]", "host names (default: every known host)")
      .option("--file <file>", "more host names, one per line")
      .description("each host's maintenance mode, active tasks, since when, and why"),
  ).action(async (args: string[], o: Common & { file?: string }) => {
    await d.withClient(o, async (c) => {
      const names = args.length > 0 || o.file ? hostsOf(args, o.file) : undefined;
      const r = await c.maintenanceStatus(names ? { hosts: names } : {});
      print(o, r, () => formatStatus(r));
    });
  });

  drainFlags(
    hostsCmd(
      m
        .command("schedule")
        .requiredOption("--start <time>", "when the window opens: RFC 3339, epoch ms, or +D from now (e.g. +10m)", startArg)
        .requiredOption("--duration <duration>", "how long it lasts (e.g. 2h)", durationArg)
        .description(
          "schedule a maintenance window: hosts SCHEDULED until --start, drained from then (SLA-aware), back in service after --duration",
        ),
    ),
    "--sla-duration",
  ).action(async (args: string[], o: DrainOpts & { start: string | number; duration: number; slaDuration?: number }) => {
    await d.withClient(o, async (c) => {
      const r = await c.scheduleMaintenance(
        {
          hosts: hostsOf(args, o.file),
          start: o.start,
          durationSecs: o.duration,
          ...drainReq(o, o.slaDuration, "slaDurationSecs"),
          user: o.user,
        },
        { key: o.key ?? d.newKey() },
      );
      print(o, r, () => formatWrite(r));
    });
  });

  writeCmd(
    m
      .command("cancel")
      .argument("<windowId>", "the window's id (roost host maintenance windows)")
      .description("cancel a maintenance window"),
  ).action(async (windowId: string, o: WriteOpts) => {
    await d.withClient(o, async (c) => {
      const r = await c.cancelMaintenance({ windowId, user: o.user }, { key: o.key ?? d.newKey() });
      print(o, r, () => formatWrite(r));
    });
  });

  d.withClusterOptions(m.command("windows").description("maintenance windows: hosts, start, end, state")).action(async (o: Common) => {
    await d.withClient(o, async (c) => {
      const r = await c.maintenanceWindows();
      print(o, r, () => formatWindows(r));
    });
  });
}

function formatWrite(r: HostMaintenanceWriteReply): string {
  const lines = r.hosts.map((h) => `${h.host}: ${h.changed ? `${h.from} → ${h.to}` : h.to}${h.note ? ` (${h.note})` : ""}`);
  if (r.windowId !== undefined)
    lines.unshift(
      `window ${r.windowId}${r.startTs !== undefined && r.endTs !== undefined ? `: ${new Date(r.startTs).toISOString()} to ${new Date(r.endTs).toISOString()}` : ""}`,
    );
  if (r.unknownHosts.length > 0) lines.push(`note: no agent has registered on ${r.unknownHosts.join(", ")} (allowed)`);
  if (r.hosts.every((h) => !h.changed))
    lines.push(`nothing to change${r.seq === null ? "" : ` (the request's outcome is at log seq ${r.seq})`}`);
  else lines.push(`(log seq ${r.seq})`);
  return lines.join("\n");
}

function formatStatus(r: HostMaintenanceStatusReply): string {
  if (r.length === 0) return "no hosts";
  return table([
    ["HOST", "MODE", "TASKS", "SINCE", "REASON"],
    ...r.flatMap((h) => [
      [h.host, h.mode, String(h.tasks), h.since ?? "-", h.reason],
      ...h.denials.map((x) => ["", "", "", "", `waits: ${x.reason}`]),
    ]),
  ]);
}

function formatWindows(r: HostMaintenanceWindowsReply): string {
  if (r.length === 0) return "no maintenance windows";
  return table([
    ["WINDOW", "STATE", "START", "END", "HOSTS", "BY"],
    ...r.map((w) => [w.windowId, w.state, w.start, w.end, w.hosts.join(","), w.user + (w.endedBy ? ` (cancelled by ${w.endedBy})` : "")]),
  ]);
}
