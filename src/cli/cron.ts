// `roost cron schedule|deschedule|start|show|list`: Aurora's cron commands (its client's
// `cron schedule | deschedule | start | show`), over the API's cron ops, plus `list`.
//
//   roost cron schedule FILE          a spec with cronSchedule; scheduling a key again replaces it
//   roost cron deschedule ROLE/ENV/NAME
//   roost cron start ROLE/ENV/NAME    run it now, under its collision policy
//   roost cron show ROLE/ENV/NAME     schedule, next fire times, the newest trigger and its reason
//   roost cron list
//
// show and list answer with no leader up: they fold the log here (the same read model,
// cron/queries.ts) and compute the next fire times from this machine's clock, and say so.

import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import type { Command } from "commander";
import type { CronListReply, CronShowReply } from "../client/roostClient.js";
import type { CliClusterOptions } from "../client/transport.js";
import { cronList, cronShow } from "../cron/queries.js";
import { isoTime } from "../domain/time.js";
import { parseJobSpec } from "../spec/jobSpec.js";
import type { CliDeps } from "./deps.js";
import { table } from "./format.js";

type Common = CliClusterOptions;

type CronCliDeps = Omit<CliDeps, "parseInstances">;

type WriteOpts = Common & { user: string; key?: string };

const minute = (ms: number) => `${isoTime(ms).slice(0, 16)}Z`;

export function registerCronCommands(program: Command, d: CronCliDeps): void {
  const cron = program.command("cron").description("cron jobs: schedule, deschedule, run now, show, list");
  const print = (o: Common, value: unknown, human: () => string) => console.log(o.json ? JSON.stringify(value, null, 2) : human());
  const writeCmd = (c: Command) =>
    d.withClusterOptions(c).option("--user <name>", "who is asking", d.userArg, userInfo().username).option(d.keyFlag, d.keyHelp, d.keyArg);

  writeCmd(
    cron
      .command("schedule")
      .argument("<file>", "job spec with a cronSchedule (YAML or JSON)")
      .description("schedule a cron job (or replace the spec of one scheduled); nothing runs until it fires"),
  ).action(async (file: string, o: WriteOpts) => {
    const spec = parseJobSpec(readFileSync(file, "utf8"), file);
    await d.withClient(o, async (c) => {
      const r = await c.scheduleCron({ spec, user: o.user }, { key: o.key ?? d.newKey() });
      const tz = spec.cronTimezone ?? "UTC";
      print(
        o,
        r,
        () =>
          `scheduled ${r.job}: "${spec.cronSchedule ?? ""}" (${tz}), ${spec.cronCollisionPolicy ?? "KILL_EXISTING"} (log seq ${r.seq})\n` +
          `next run: ${r.nextFire === null ? "never" : minute(r.nextFire)}`,
      );
    });
  });

  writeCmd(
    cron
      .command("deschedule")
      .argument("<job>", "ROLE/ENV/NAME", d.jobKeyArg)
      .description("deschedule a cron job: no more triggers (a run under way goes on; `roost job kill` ends it)"),
  ).action(async (job: string, o: WriteOpts) => {
    await d.withClient(o, async (c) => {
      const r = await c.descheduleCron({ job, user: o.user }, { key: o.key ?? d.newKey() });
      print(o, r, () => `descheduled ${r.job} (log seq ${r.seq})`);
    });
  });

  writeCmd(
    cron.command("start").argument("<job>", "ROLE/ENV/NAME", d.jobKeyArg).description("run a cron job now, under its collision policy"),
  ).action(async (job: string, o: WriteOpts) => {
    await d.withClient(o, async (c) => {
      const r = await c.startCron({ job, user: o.user }, { key: o.key ?? d.newKey() });
      const what =
        r.outcome === "fired"
          ? `started ${r.job} (log seq ${r.seq})\n${r.taskIds.map((t, i) => `  instance ${i}: ${t}`).join("\n")}`
          : r.outcome === "skipped"
            ? `${r.job} not started: its previous run is still active and its policy is CANCEL_NEW (log seq ${r.seq})`
            : `${r.job}: its previous run is still active and is being killed (KILL_EXISTING); this run starts once it has ended (log seq ${r.seq})`;
      print(o, r, () => what);
    });
  });

  d.withClusterOptions(
    cron
      .command("show")
      .argument("<job>", "ROLE/ENV/NAME", d.jobKeyArg)
      .description("a cron job: schedule, next fire times, its newest trigger with the outcome and reason"),
  ).action(async (job: string, o: Common) => {
    await d.withClient(o, async (c) => {
      const r = await d.readWithFallback<CronShowReply>(
        c.transport,
        "cron.show",
        { job },
        (st) => cronShow(st, job, Date.now()),
        `cron job ${job}`,
      );
      print(o, r, () => formatCronShow(r));
    });
  });

  d.withClusterOptions(cron.command("list").description("cron jobs, each with its next fire time and newest trigger")).action(
    async (o: Common) => {
      await d.withClient(o, async (c) => {
        const r = await d.readWithFallback<CronListReply>(c.transport, "cron.list", {}, (st) => cronList(st, Date.now()), "cron list");
        print(o, r, () => formatCronList(r));
      });
    },
  );
}

function formatCronShow(r: CronShowReply): string {
  const t = r.lastTrigger;
  const p = r.pendingRun;
  const rows = [
    ["job", r.job],
    ["schedule", `${r.schedule} (${r.timezone}), ${r.collisionPolicy}, ${r.instances} instance(s)`],
    ["scheduled", `by ${r.user} at log seq ${r.scheduledSeq} (${isoTime(r.scheduledTs)})`],
    ["next runs", r.nextFires.length ? r.nextFires.map(minute).join(", ") : "none"],
    [
      "last trigger",
      t === null
        ? "none yet"
        : `${minute(t.minuteMs)} ${t.outcome}${t.missed > 0 ? ` (${t.missed} missed)` : ""}${t.user !== null ? ` by ${t.user}` : ""} at log seq ${t.seq}: ${t.reason}`,
    ],
    ...(p === null
      ? []
      : [["waiting run", `for ${minute(p.minuteMs)}: starts once the killed run has ended (collided at log seq ${p.seq})`]]),
    ["active tasks", String(r.activeTasks)],
  ];
  return `${table(rows)}\n(log seq ${r.seq})`;
}

function formatCronList(r: CronListReply): string {
  if (r.length === 0) return "no cron jobs";
  return table([
    ["JOB", "SCHEDULE", "TZ", "POLICY", "NEXT", "LAST", "ACTIVE"],
    ...r.map((j) => [
      j.job,
      j.schedule,
      j.timezone,
      j.collisionPolicy,
      j.nextFire === null ? "-" : minute(j.nextFire),
      j.lastTrigger === null ? "-" : `${minute(j.lastTrigger.minuteMs)} ${j.lastTrigger.outcome}`,
      String(j.activeTasks),
    ]),
  ]);
}
