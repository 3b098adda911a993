// `roost update start|pause|resume|abort|rollback|pulse|wait|info|list` and `roost job restart`:
// Aurora's update commands (its client/cli/update.py), over the API's update ops.
//
//   roost update start ROLE/ENV/NAME FILE [--instances 0-4,7] [--message M]
//   roost update wait ROLE/ENV/NAME [UPDATE_ID]     exit 0 ROLLED_FORWARD, 4 ROLLED_BACK, 20 other
//   roost update info ROLE/ENV/NAME [UPDATE_ID]     "Current status: …", a progress bar, every action
//   roost job restart ROLE/ENV/NAME [--batch-size N] [--watch-secs S] [--instances …]
//
// info and list answer with no leader up: they fold the log here (the same read models,
// updater/info.ts). wait polls info, so it rides through a leader change: a read is retried
// while no scheduler answers (client/transport.ts), and the update carries on in the log.

import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { type Command, InvalidArgumentError } from "commander";
import type { RoostClient, UpdateInfoReply, UpdateListReply, UpdateWriteReply } from "../client/roostClient.js";
import { type CliClusterOptions, pollOnce } from "../client/transport.js";
import { isoTime } from "../domain/time.js";
import { parseJobSpec } from "../spec/jobSpec.js";
import { updateInfo, updateList } from "../updater/info.js";
import type { CliDeps } from "./deps.js";
import { table } from "./format.js";

type Common = CliClusterOptions;

type UpdateCliDeps = CliDeps;

/** Aurora's `update wait` exit codes. */
const WAIT_EXIT = { ROLLED_FORWARD: 0, ROLLED_BACK: 4, OTHER: 20 } as const;

/** How often `update wait` and `job restart` ask again (Aurora polls every 5 s; a local cell is faster). */
const POLL_MS = 1000;

function positiveInt(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min) throw new InvalidArgumentError(`${flag} takes a whole number ≥ ${min}; got "${v}"`);
    return n;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `[██████░░░░] 3/6 done, 2 in flight, 0 failed` */
function progressBar(p: UpdateInfoReply["progress"], width = 30): string {
  const total = Math.max(p.total, 1);
  const full = Math.round((p.done / total) * width);
  const fail = Math.min(width - full, Math.round((p.failed / total) * width));
  return `[${"█".repeat(full)}${"x".repeat(fail)}${"░".repeat(width - full - fail)}] ${p.done}/${p.total} done, ${p.working} in flight, ${p.failed} failed`;
}

function strategyText(settings: Record<string, unknown>): string {
  const st = settings.strategy as Record<string, Record<string, unknown>> | undefined;
  if (!st) return "";
  const [kind, body] = Object.entries(st)[0] ?? ["?", {}];
  if (kind === "variableBatch") return `variable batches [${(body.batchSizes as number[]).join(", ")}]`;
  return `${kind === "batch" ? "batches" : "a queue"} of ${String(body.batchSize)}`;
}

function formatUpdateInfo(u: UpdateInfoReply): string {
  const what = u.restart ? "restart" : "update";
  const lines = [
    `${what} ${u.updateId} of ${u.job}`,
    `Current status: ${u.status}`,
    `Started by ${u.user} at ${isoTime(u.createdTs)} (log seq ${u.createdSeq})${u.message ? `: ${u.message}` : ""}`,
    u.restart
      ? `Restarting config version ${u.fromVersion}: ${strategyText(u.settings)}, watchSecs ${String(u.settings.watchSecs)}`
      : `Config version ${u.fromVersion} → ${u.toVersion}: ${strategyText(u.settings)}, watchSecs ${String(u.settings.watchSecs)}, ` +
        `maxPerInstanceFailures ${String(u.settings.maxPerInstanceFailures)}, maxTotalFailures ${String(u.settings.maxTotalFailures)}, ` +
        `rollbackOnFailure ${String(u.settings.rollbackOnFailure)}`,
  ];
  if (u.instances !== null) lines.push(`Instances: ${u.instances.join(",")}`);
  if (u.plan) lines.push(`Plan: ${u.plan.added.length} added, ${u.plan.changed.length} changed, ${u.plan.removed.length} removed`);
  lines.push(`Progress: ${progressBar(u.progress)}`, "", "Update events:");
  for (const s of u.statuses) {
    lines.push(`  ${isoTime(s.ts)}  ${s.status}${s.user ? `  by ${s.user}` : ""}${s.message ? `: ${s.message}` : ""}`);
  }
  lines.push("", "Instance events:");
  if (u.actions.length === 0) lines.push("  (none yet)");
  const rows = [["TIME", "INSTANCE", "ACTION", "REASON"]];
  for (const a of u.actions) rows.push([isoTime(a.ts), String(a.instance), a.action, a.reason]);
  if (u.actions.length > 0)
    lines.push(
      ...table(rows)
        .split("\n")
        .map((l) => `  ${l}`),
    );
  return lines.join("\n");
}

function formatUpdateList(list: UpdateListReply): string {
  if (list.length === 0) return "no updates";
  const rows = [["JOB", "UPDATE ID", "STATUS", "KIND", "CREATED BY", "STARTED", "LAST MODIFIED", "PROGRESS"]];
  for (const u of list) {
    rows.push([
      u.job,
      u.updateId,
      u.status,
      u.restart ? "restart" : "update",
      u.user,
      isoTime(u.createdTs),
      isoTime(u.lastTs),
      `${u.progress.done}/${u.progress.total}${u.progress.failed ? ` (${u.progress.failed} failed)` : ""}`,
    ]);
  }
  return table(rows);
}

function writeText(verb: string, r: UpdateWriteReply): string {
  return `${verb} ${r.updateId} of ${r.job}: ${r.status} (log seq ${r.seq})`;
}

export function registerUpdateCommands(program: Command, job: Command, d: UpdateCliDeps): void {
  const update = program.command("update").description("rolling updates: start, pause, resume, abort, rollback, pulse, wait, info, list");
  const jobArg = (c: Command) => c.argument("<job>", "ROLE/ENV/NAME", d.jobKeyArg);

  d.withClusterOptions(
    jobArg(update.command("start"))
      .argument("<file>", "the job's new spec (YAML or JSON); its updateConfig says how it rolls")
      .description("start a rolling update of a job to a new config (one active update per job)"),
  )
    .option("--instances <ids>", "only these instance ids and ranges, e.g. 0-4,7 (default: all)", d.parseInstances)
    .option("--message <text>", "a note for the update's history")
    .option("--user <name>", "who is asking", d.userArg, userInfo().username)
    .option(d.keyFlag, d.keyHelp, d.keyArg)
    .action(async (k: string, file: string, o: Common & { instances?: number[]; message?: string; user: string; key?: string }) => {
      const spec = parseJobSpec(readFileSync(file, "utf8"), file);
      await d.withClient(o, async (c) => {
        const r = await c.startUpdate(
          {
            job: k,
            spec,
            user: o.user,
            ...(o.instances ? { instances: o.instances } : {}),
            ...(o.message !== undefined ? { message: o.message } : {}),
          },
          { key: o.key ?? d.newKey() },
        );
        console.log(
          o.json
            ? JSON.stringify(r, null, 2)
            : `${writeText("update", r)}\n  config version ${r.fromVersion} → ${r.toVersion}: ${r.added?.length ?? 0} added, ${r.changed?.length ?? 0} changed, ${r.removed?.length ?? 0} removed\n  follow it: roost update info ${k}   wait for it: roost update wait ${k} ${r.updateId}`,
        );
      });
    });

  for (const verb of ["pause", "resume", "abort", "rollback"] as const) {
    const past = { pause: "paused", resume: "resumed", abort: "aborted", rollback: "rolling back" }[verb];
    d.withClusterOptions(jobArg(update.command(verb)).description(`${verb} the job's active update`))
      .option("--update <id>", "the update id (default: the job's active update)")
      .option("--message <text>", "a note for the update's history")
      .option("--user <name>", "who is asking", d.userArg, userInfo().username)
      .option(d.keyFlag, d.keyHelp, d.keyArg)
      .action(async (k: string, o: Common & { update?: string; message?: string; user: string; key?: string }) => {
        await d.withClient(o, async (c) => {
          const r = await c.controlUpdate(
            verb,
            {
              job: k,
              user: o.user,
              ...(o.update !== undefined ? { updateId: o.update } : {}),
              ...(o.message !== undefined ? { message: o.message } : {}),
            },
            { key: o.key ?? d.newKey() },
          );
          console.log(o.json ? JSON.stringify(r, null, 2) : writeText(past, r));
        });
      });
  }

  d.withClusterOptions(
    jobArg(update.command("pulse"))
      .argument("<updateId>", "the coordinated update's id")
      .description("pulse a coordinated update (updateConfig.pulseIntervalSecs): it rolls only while pulsed"),
  )
    .option("--user <name>", "who is asking", d.userArg, userInfo().username)
    .option(d.keyFlag, d.keyHelp, d.keyArg)
    .action(async (k: string, id: string, o: Common & { user: string; key?: string }) => {
      await d.withClient(o, async (c) => {
        const r = await c.pulseUpdate({ job: k, updateId: id, user: o.user }, { key: o.key ?? d.newKey() });
        console.log(o.json ? JSON.stringify(r, null, 2) : writeText("pulsed", r));
      });
    });

  d.withClusterOptions(
    jobArg(update.command("info"))
      .argument("[updateId]", "the update (default: the job's active one, else its newest)")
      .description("an update's status, progress, and every instance's actions with times and reasons"),
  ).action(async (k: string, id: string | undefined, o: Common) => {
    await d.withClient(o, async (c) => {
      const req = { job: k, ...(id !== undefined ? { updateId: id } : {}) };
      const u = await d.readWithFallback<UpdateInfoReply>(
        c.transport,
        "update.info",
        req,
        (st) => updateInfo(st, k as never, id) as UpdateInfoReply | null,
        id === undefined ? `an update of ${k}` : `update ${id} of ${k}`,
      );
      console.log(o.json ? JSON.stringify(u, null, 2) : formatUpdateInfo(u));
    });
  });

  d.withClusterOptions(
    update
      .command("list")
      .argument("[job]", "ROLE/ENV/NAME (default: every job)", d.jobKeyArg)
      .description("updates, newest first: JOB, UPDATE ID, STATUS, …")
      .option("--status <status>", 'only "active" ones, or those in one status (e.g. ROLLED_BACK)'),
  ).action(async (k: string | undefined, o: Common & { status?: string }) => {
    await d.withClient(o, async (c) => {
      const req = { ...(k !== undefined ? { job: k } : {}), ...(o.status !== undefined ? { status: o.status } : {}) };
      const list = await d.readWithFallback<UpdateListReply>(
        c.transport,
        "update.list",
        req,
        (st) => updateList(st, req) as UpdateListReply,
        "the update list",
      );
      console.log(o.json ? JSON.stringify(list, null, 2) : formatUpdateList(list));
    });
  });

  d.withClusterOptions(
    jobArg(update.command("wait"))
      .argument("[updateId]", "the update (default: the job's active one, else its newest)")
      .description(
        `wait until the update ends; exit ${WAIT_EXIT.ROLLED_FORWARD} ROLLED_FORWARD, ${WAIT_EXIT.ROLLED_BACK} ROLLED_BACK, ${WAIT_EXIT.OTHER} any other end`,
      ),
    "give up on each request to the cluster after this many seconds (default: 10); the wait itself has no end",
  ).action(async (k: string, id: string | undefined, o: Common) => {
    await d.withClient(o, async (c) => {
      const u = await waitForUpdate(c, k, id, o, (p) => {
        if (!o.json) console.log(p);
      });
      if (o.json) console.log(JSON.stringify(u, null, 2));
      process.exitCode = exitFor(u.status);
    });
  });

  d.withClusterOptions(
    jobArg(job.command("restart")).description(
      "restart instances in batches through RESTARTING; each must be RUNNING for --watch-secs before the next batch (an update of the job's own config)",
    ),
    "give up on each request to the cluster after this many seconds (default: 10)",
  )
    .option("--batch-size <n>", "instances restarted at once (default 1)", positiveInt("--batch-size", 1))
    .option(
      "--watch-secs <s>",
      "how long a restarted instance must be RUNNING to count as done (default 45)",
      positiveInt("--watch-secs", 0),
    )
    .option("--max-per-instance-failures <n>", "failures an instance may have (default 0)", positiveInt("--max-per-instance-failures", 0))
    .option(
      "--max-total-failures <n>",
      "instances that may fail before the restart fails (default 0)",
      positiveInt("--max-total-failures", 0),
    )
    .option("--instances <ids>", "instance ids and ranges, e.g. 0-4,7 (default: every active instance)", d.parseInstances)
    .option("--no-wait", "return once the restart is logged")
    .option("--user <name>", "who is asking", d.userArg, userInfo().username)
    .option(d.keyFlag, d.keyHelp, d.keyArg)
    .action(
      async (
        k: string,
        o: Common & {
          batchSize?: number;
          watchSecs?: number;
          maxPerInstanceFailures?: number;
          maxTotalFailures?: number;
          instances?: number[];
          wait: boolean;
          user: string;
          key?: string;
        },
      ) => {
        await d.withClient(o, async (c) => {
          const r = await c.restartJob(
            {
              job: k,
              user: o.user,
              ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
              ...(o.watchSecs !== undefined ? { watchSecs: o.watchSecs } : {}),
              ...(o.maxPerInstanceFailures !== undefined ? { maxPerInstanceFailures: o.maxPerInstanceFailures } : {}),
              ...(o.maxTotalFailures !== undefined ? { maxTotalFailures: o.maxTotalFailures } : {}),
              ...(o.instances ? { instances: o.instances } : {}),
            },
            { key: o.key ?? d.newKey() },
          );
          if (!o.wait) {
            console.log(o.json ? JSON.stringify(r, null, 2) : writeText("restart", r));
            return;
          }
          if (!o.json) console.log(writeText("restart", r));
          const u = await waitForUpdate(c, k, r.updateId, o, (p) => {
            if (!o.json) console.log(p);
          });
          if (o.json) console.log(JSON.stringify(u, null, 2));
          else console.log(`restart ${u.updateId}: ${u.status}`);
          process.exitCode = exitFor(u.status);
        });
      },
    );
}

function exitFor(status: string): number {
  return status === "ROLLED_FORWARD" ? WAIT_EXIT.ROLLED_FORWARD : status === "ROLLED_BACK" ? WAIT_EXIT.ROLLED_BACK : WAIT_EXIT.OTHER;
}

/** Poll the update until it is over; `progress` is told each new status or progress line. */
async function waitForUpdate(
  c: RoostClient,
  k: string,
  id: string | undefined,
  o: Common,
  progress: (line: string) => void,
): Promise<UpdateInfoReply> {
  let updateId = id;
  let last = "";
  // The wait has no end of its own; it gives up when no scheduler answers for --timeout. A poll
  // nobody answered (a leader change; `update wait` rides through one) is asked again until then.
  const patience = (o.timeout ?? 10) * 1000;
  let deadline = Date.now() + patience;
  for (;;) {
    const u = await pollOnce((t) => c.updateInfo({ job: k, ...(updateId !== undefined ? { updateId } : {}) }, t), deadline);
    if (u === null) continue;
    deadline = Date.now() + patience;
    updateId = u.updateId;
    const line = `${u.status} ${progressBar(u.progress)}`;
    if (line !== last) progress(`${isoTime(Date.now())} ${line}`);
    last = line;
    if (!u.active) return u;
    await sleep(POLL_MS);
  }
}
