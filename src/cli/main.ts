// The `roost` command. commander handles parsing and help (a well-kept library beats a
// hand-written parser); every subcommand takes --json.
//
// What only a long-running command needs (the scheduler and agent daemons, `roost dev`, the HTTP
// gateway, the UI server, the simulator) is imported in its action, not here: loaded for every
// command, it made `roost --version` take 0.77 s and every `roost job status` 0.2 s longer.

import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { cpus, totalmem, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import { parsePolicy, type SchedulingPolicy } from "../actors/policy.js";
import { REQUEST_KEY, ROLE_TOKEN } from "../api/v1.js";
import { NoResponderError } from "../bus/bus.js";
import { resolveCreds } from "../bus/creds.js";
import { NatsBus } from "../bus/nats.js";
import { type JobStatusReply, RoostClient, type TaskStatusReply } from "../client/roostClient.js";
import {
  type CliClusterOptions,
  type ClusterClient,
  cliConnectOptions,
  connectClient,
  foldLocally,
  natsServers,
  pollOnce,
  seconds,
  WaitTimeoutError,
} from "../client/transport.js";
import {
  DEFAULT_ENVIRONMENT_PATTERN,
  MAX_INSTANCES,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  TASK_ID_MAX_LENGTH,
  TASK_ID_PATTERN,
  USER_MAX_LENGTH,
  USER_PATTERN,
} from "../domain/limits.js";
import { jobKeyString, parseJobKey, type TaskId } from "../domain/types.js";
import { RESERVED_NAMES } from "../natsServer/auth.js";
import { type QuotaReport, quotaReport } from "../quota/quota.js";
import { foldRecord } from "../replay/fold.js";
import {
  instancesTerminal,
  type JobStatus,
  type JobSummary,
  jobList,
  jobStatus,
  type TaskHistory,
  taskHistory,
  withReasons,
} from "../replay/queries.js";
import { ClusterState } from "../replay/state.js";
import { activeAgents } from "../scheduling/offers.js";
import { type WhyReport, whyTask } from "../scheduling/why.js";
import { parseJobSpec } from "../spec/jobSpec.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { registerClusterCommand } from "./cluster.js";
import { registerCronCommands } from "./cron.js";
import type { CliDeps } from "./deps.js";
import { registerDiscoverCommand } from "./discover.js";
import { registerEventsCommand } from "./events.js";
import {
  entryAnomaly,
  formatEvent,
  formatJobList,
  formatJobStatus,
  formatQuotaReport,
  formatTaskHistory,
  formatWhy,
  table,
} from "./format.js";
import { atArg } from "./atArg.js";
import { addHistoryCommands, withHistory } from "./history.js";
import { registerHostCommands } from "./maintenance.js";
import { registerSimCommand } from "./sim.js";
import { registerSlaCommands } from "./sla.js";
import { registerSnapshotCommand } from "./snapshot.js";
import { registerUiCommand } from "./ui.js";
import { registerUpdateCommands } from "./update.js";

type Common = CliClusterOptions;

/** package.json's version, found next to (or above) this file at run time: works in src/ and dist/. */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, "package.json");
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, "utf8")) as { name?: unknown; version?: unknown };
        if (pkg.name === "roost" && typeof pkg.version === "string") return pkg.version;
      } catch {
        // not ours, or unreadable: look further up
      }
    }
    const up = dirname(dir);
    if (up === dir) return "unknown (no package.json of roost found above the installed files)";
    dir = up;
  }
}

const KEY_FLAG = "--key <key>";
const KEY_HELP =
  "idempotency key: the same key returns the first outcome and changes nothing, for 24 h (default: a new one, so the command runs once however often it is retried)";

function keyArg(v: string): string {
  if (!REQUEST_KEY.test(v)) throw new InvalidArgumentError('must be 1 to 128 letters, digits or "_.:=+-"');
  return v;
}

/** A fresh idempotency key for a write. */
const newKey = () => `cli-${randomUUID()}`;

const program = new Command();
program
  .name("roost")
  .description("An Aurora-style cluster scheduler on a replicated NATS JetStream log")
  .version(packageVersion(), "-V, --version", "print roost's version")
  // A usage error is one line like every other failure, `roost: <message>`, not commander's
  // "error: …" followed by the whole help (18 lines for a mistyped --timeout).
  .configureOutput({
    outputError: (str, write) =>
      write(
        `roost: ${str
          .replace(/^error: /, "")
          .trim()
          .replace(/\s*\n\s*/g, " ")} (see --help)\n`,
      ),
  });

// ---- option and argument checks: a bad value is refused at once, naming the flag and the rule ----

/** A whole number from `min` to `max`. */
function wholeNumber(name: string, rule: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be ${rule}, got "${v}"`);
    return n;
  };
}

/** A number greater than 0, from `min` to `max`. */
function positiveNumber(name: string, rule: string, max = Number.MAX_SAFE_INTEGER, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n <= 0 || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be ${rule}, got "${v}"`);
    return n;
  };
}

/**
 * The longest --timeout (setTimeout cannot wait longer than 24.8 days), and the shortest: a
 * millisecond, the client's least timeout (below it, --timeout 0.0001 was refused by the client
 * library as "timeoutMs must be …", naming no flag).
 */
const MAX_TIMEOUT_S = 1_000_000;
const MIN_TIMEOUT_S = 0.001;
const timeoutArg = positiveNumber(
  "--timeout",
  `a positive number of seconds (from ${MIN_TIMEOUT_S} to ${MAX_TIMEOUT_S})`,
  MAX_TIMEOUT_S,
  MIN_TIMEOUT_S,
);

const NAME_RE = new RegExp(NAME_PATTERN);
const NAME_RULE = `letters, digits, "_", "." and "-", not starting with "." or "-", at most ${NAME_MAX_LENGTH} characters`;

/** A job key ROLE/ENV/NAME, each part a valid name (the leader would refuse it anyway, less clearly). */
function jobKeyArg(v: string): string {
  const parts = v.split("/");
  if (parts.length !== 3 || parts.some((p) => !NAME_RE.test(p) || p.length > NAME_MAX_LENGTH)) {
    throw new InvalidArgumentError(`a job key must be ROLE/ENV/NAME, each part ${NAME_RULE}; got "${v}"`);
  }
  return jobKeyString(parseJobKey(v));
}

function roleArg(v: string): string {
  if (!NAME_RE.test(v) || v.length > NAME_MAX_LENGTH) throw new InvalidArgumentError(`a role must be ${NAME_RULE}; got "${v}"`);
  return v;
}

const TASK_ID_RE = new RegExp(TASK_ID_PATTERN);
function taskIdArg(v: string): string {
  if (!TASK_ID_RE.test(v) || v.length > TASK_ID_MAX_LENGTH) {
    throw new InvalidArgumentError(
      `a task id is letters, digits, "_", "." and "-" (at most ${TASK_ID_MAX_LENGTH} characters), as \`roost job status\` shows it; got "${v}"`,
    );
  }
  return v;
}

const USER_RE = new RegExp(USER_PATTERN);
function userArg(v: string): string {
  if (!USER_RE.test(v) || v.length > USER_MAX_LENGTH) {
    throw new InvalidArgumentError(
      `--user must be printable ASCII without leading or trailing spaces, at most ${USER_MAX_LENGTH} characters; got ${JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v)}`,
    );
  }
  return v;
}

/** --instances: ids and ranges like 0,2-3, each id below MAX_INSTANCES. */
function parseInstances(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new InvalidArgumentError(`--instances takes instance ids and ranges like 0,2-3; got "${s}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new InvalidArgumentError(`--instances: range ${part.trim()} runs backwards (in "${s}")`);
    if (hi >= MAX_INSTANCES)
      throw new InvalidArgumentError(
        `--instances: instance ids are below ${MAX_INSTANCES} (a job has at most ${MAX_INSTANCES}); got ${hi} in "${s}"`,
      );
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

const CREDS_HELP = 'credentials of a secured cell, {"user", "pass", "tls"?} (default: $ROOST_CREDS, then the cluster file\'s)';

const DEFAULT_TIMEOUT_HELP =
  "give up on any wait on the cluster (reaching NATS, a scheduler to answer, the log) after this many seconds (default: 10)";

/** The options of every command that talks to a cluster; `timeoutHelp` when --timeout means more there. */
function withClusterOptions(c: Command, timeoutHelp = DEFAULT_TIMEOUT_HELP): Command {
  return c
    .option("--json", "machine-readable output")
    .option("--nats <url>", "reach the cluster at this NATS URL instead of the cluster file")
    .option("--cluster <file>", "cluster file written by `roost dev`", ".roost/cluster.json")
    .option("--creds <file>", CREDS_HELP)
    .option("--timeout <s>", timeoutHelp, timeoutArg);
}

function print(opts: Common, value: unknown, human: () => string): void {
  console.log(opts.json ? JSON.stringify(value, null, 2) : human());
}

async function withClient<T>(opts: Common, fn: (c: RoostClient) => Promise<T>, how: { follow?: boolean } = {}): Promise<T> {
  const client = new RoostClient(await connectClient(cliConnectOptions(opts, how)));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** How long a read waits for the leader before it folds the log here instead. */
const READ_LEADER_WAIT_MS = 3000;

/** Ask the leader; when none answers, fold the log here and answer from that. */
async function readWithFallback<T>(
  client: ClusterClient,
  op: string,
  data: unknown,
  local: (s: Awaited<ReturnType<typeof foldLocally>>) => T | null,
  what: string,
): Promise<T> {
  try {
    return await client.request<T>(op, data, { retry: false, timeoutMs: Math.min(READ_LEADER_WAIT_MS, client.timeoutMs) });
  } catch (err) {
    if (!(err instanceof NoResponderError)) throw err;
    const state = await foldLocally(client);
    console.error(`no leader answered; this is the state folded from the log here, at sequence ${state.seq}`);
    const v = local(state);
    if (v === null) throw new Error(`${what} does not exist`);
    return v;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const isTerminal = (state: string): boolean => (TERMINAL_STATES as ReadonlySet<string>).has(state);

/** What still keeps a wait on `status` from being over, instance by instance. */
function notDone(status: JobStatusReply, pred: (i: JobStatusReply["instances"][number]) => boolean): string {
  const left = status.instances.filter((i) => !pred(i));
  const shown = left.slice(0, 5).map((i) => `instance ${i.instance} is ${i.state}${i.reason ? ` (${i.reason})` : ""}`);
  return `${shown.join("; ")}${left.length > shown.length ? `; and ${left.length - shown.length} more` : ""}`;
}

// ---- roost dev / scheduler / agent -------------------------------------------------------

// Each dev agent offers its own 1000 ports from 21000 on (devAgentSpec): at most 44 fit below 65536.
const MAX_DEV_AGENTS = 32;

/** `roost dev --agents`: a whole number from 1 to MAX_DEV_AGENTS, refused at once otherwise. */
function parseDevAgents(v: string): number {
  const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_DEV_AGENTS) {
    throw new InvalidArgumentError(`--agents must be a whole number from 1 to ${MAX_DEV_AGENTS}, got "${v}"`);
  }
  return n;
}

program
  .command("dev")
  .description("run a local cluster in the foreground: nats-server, a scheduler and N agents")
  .option("--agents <n>", `number of agents (1 to ${MAX_DEV_AGENTS})`, parseDevAgents, 3)
  .option("--nats <url>", "use this nats-server instead of starting one")
  .option("--dir <dir>", "state directory", ".roost")
  .option("--embedded", "run on an in-process log and bus, without nats-server")
  .option("--ha", "high availability: 3 nats-servers (R3 stream) and 3 scheduler replicas")
  .option("--json", "machine-readable output (one JSON object per line)")
  .option(
    "--secure",
    "NATS users and permissions: one credentials file per identity in <dir>/creds (admin, scheduler, gateway, agents, roles)",
  )
  .option("--roles <list>", "with --secure: the roles given users, comma-separated", parseRoles, ["www-data"])
  .option("--policy <json>", "override scheduling timings over the dev ones, e.g. '{\"minRequiredInstances\":2}'", parsePolicyArg)
  .action(async (o) =>
    (await import("./dev.js")).runDev({
      policy: o.policy,
      agents: o.agents,
      nats: o.nats,
      dir: o.dir,
      json: !!o.json,
      embedded: !!o.embedded,
      ha: !!o.ha,
      secure: !!o.secure,
      roles: o.roles,
    }),
  );

/** `roost dev --policy`: a policy override, refused at once when it is not one (actors/policy.ts parsePolicy). */
function parsePolicyArg(v: string): Partial<SchedulingPolicy> {
  try {
    return parsePolicy(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `roost dev --roles`: role names, each a valid role and none reserved (natsServer/auth.ts). */
function parseRoles(v: string): string[] {
  const roles = v.split(",").map((r) => r.trim());
  for (const r of roles) {
    if (!ROLE_TOKEN.test(r) || RESERVED_NAMES.includes(r))
      throw new InvalidArgumentError(
        `--roles: "${r}" must be 1 to 64 letters, digits, "_" or "-", and not one of ${RESERVED_NAMES.join(", ")}`,
      );
  }
  if (new Set(roles).size !== roles.length) throw new InvalidArgumentError("--roles: a role is named twice");
  return roles;
}

/** A regular expression option: refused at once when it does not compile. */
function regexArg(flag: string): (v: string) => string {
  return (v) => {
    try {
      new RegExp(v);
    } catch (err) {
      throw new InvalidArgumentError(`${flag} "${v}" is not a regular expression: ${(err as Error).message}`);
    }
    return v;
  };
}

program
  .command("scheduler")
  .description("run one scheduler replica: a hot standby until it holds the leader lease")
  .requiredOption("--nats <url>", "NATS URL")
  .option("--stream <name>", "JetStream stream holding the log", "ROOST")
  .addOption(new Option("--replicas <n>", "stream replicas when creating it").choices(["1", "3"]).default("1"))
  .option("--id <id>", "scheduler id (default host:pid)")
  .option("--creds <file>", CREDS_HELP)
  .option(
    "--policy <json>",
    "override scheduling timings, e.g. '{\"preemptionDelayMs\":5000}' (defaults: Aurora's)",
    // Parsed here, before connecting, as roost dev's: a bad one used to surface only after NATS
    // answered (or as "connection refused" when it did not), naming no flag.
    parsePolicyArg,
  )
  .option("--json", "log as JSON lines (always)")
  .option(
    "--lease-ms <ms>",
    "leader lease: a leader that cannot renew within this long is replaced",
    wholeNumber("--lease-ms", "a whole number of milliseconds ≥ 1", 1),
    3000,
  )
  .option(
    "--snapshot-every <events>",
    "write a snapshot of the folded state every this many events (a standby writes it when one is up; 0: never)",
    wholeNumber("--snapshot-every", "a whole number of events ≥ 0", 0),
    100_000,
  )
  .option("--control-stdin", "read control lines (quiesce, stop, kill) on stdin and stop at its end (used by `roost dev`)")
  .option("--http <host:port>", "serve the web UI and Prometheus /metrics here (port 0: any free port)", (v: string) => listenArg(v))
  .option(
    "--allowed-environments <regex>",
    "environments a job may name (Aurora's allowed_job_environments)",
    regexArg("--allowed-environments"),
    DEFAULT_ENVIRONMENT_PATTERN,
  )
  .action(async (o) =>
    (await import("./daemons.js")).runScheduler({
      nats: o.nats,
      stream: o.stream,
      replicas: Number(o.replicas) as 1 | 3,
      id: o.id,
      policy: o.policy,
      leaseMs: o.leaseMs,
      snapshotEvery: o.snapshotEvery,
      control: !!o.controlStdin,
      allowedEnvironments: o.allowedEnvironments,
      creds: o.creds,
      http: o.http,
    }),
  );

program
  .command("agent")
  .description("run one agent (one per host) against a NATS server")
  .requiredOption("--nats <url>", "NATS URL")
  .option("--id <id>", "agent id (default: host name)")
  .option("--host <host>", "host name to advertise (default: this machine's)")
  .option("--attr <name=value>", "an attribute (repeatable), e.g. rack=r1", (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option("--cpus <n>", "cpus to offer", positiveNumber("--cpus", "a number greater than 0"), cpus().length)
  .option("--ram-mb <n>", "RAM to offer, MB", wholeNumber("--ram-mb", "a whole number of MB ≥ 1", 1), Math.floor(totalmem() / 2 ** 20))
  .option("--disk-mb <n>", "disk to offer, MB", wholeNumber("--disk-mb", "a whole number of MB ≥ 1", 1), 65536)
  .option("--gpus <n>", "gpus to offer", wholeNumber("--gpus", "a whole number ≥ 0", 0), 0)
  .option("--ports <ranges>", "port ranges to offer, e.g. 31000-32000", "31000-32000")
  .option("--work-dir <dir>", "where task sandboxes live", ".roost/agent")
  .option("--kill-tasks-on-exit", "kill running tasks when the agent stops", false)
  .option("--creds <file>", CREDS_HELP)
  .option("--control-stdin", "read control lines (stop, kill) on stdin and stop at its end (used by `roost dev`)")
  .option("--metrics <host:port>", "serve Prometheus metrics on GET /metrics at this address, e.g. 0.0.0.0:9101")
  .option(
    "--no-isolation",
    "run tasks unconfined (no cgroup memory and cpu limits); by default cgroups v2, else v1, where the host has them",
  )
  .option("--json", "log as JSON lines (always)")
  .action(async (o) =>
    (await import("./daemons.js")).runAgent({
      isolation: o.isolation !== false,
      nats: o.nats,
      id: o.id,
      host: o.host,
      attr: o.attr,
      cpus: o.cpus,
      ramMb: o.ramMb,
      diskMb: o.diskMb,
      gpus: o.gpus,
      ports: o.ports,
      workDir: o.workDir,
      killTasksOnExit: o.killTasksOnExit,
      control: !!o.controlStdin,
      creds: o.creds,
      metrics: o.metrics,
    }),
  );

// ---- roost job ----------------------------------------------------------------------------

const job = program.command("job").description("create, inspect and kill jobs");

/** How long `job create --wait` waits for the instances unless --timeout says otherwise. */
const CREATE_WAIT_S = 300;
/** How long `job kill` waits for the tasks to end unless --timeout says otherwise. */
const KILL_WAIT_S = 60;
/** How often a wait asks the leader for the job's status. */
const WAIT_POLL_MS = 500;

withClusterOptions(
  job.command("create").argument("<file>", "job spec (YAML or JSON)").description("create a job from a spec file"),
  `give up on any wait on the cluster after this many seconds (default: 10); with --wait, also on the instances (default: ${CREATE_WAIT_S})`,
)
  .option("--user <name>", "who is asking", userArg, userInfo().username)
  .option(KEY_FLAG, KEY_HELP, keyArg)
  .option(
    "--wait",
    "print each instance's state as it changes until every instance is RUNNING (a batch job: has ended); exit 1 at --timeout",
  )
  .action(async (file: string, o: Common & { user: string; wait?: boolean; key?: string }) => {
    const config = parseJobSpec(readFileSync(file, "utf8"), file);
    await withClient(o, async (c) => {
      const r = await c.createJob({ spec: config, user: o.user }, { key: o.key ?? newKey() });
      const createdText = `created ${r.job} (log seq ${r.seq})\n${r.taskIds.map((t, i) => `  instance ${i}: ${t}`).join("\n")}`;
      if (!o.wait) {
        print(o, r, () => createdText);
        return;
      }
      // JSON lines with --json: created, then one per change, then done (or timeout).
      const line = (value: Record<string, unknown>, human: string) => console.log(o.json ? JSON.stringify(value) : human);
      line({ event: "created", ...r }, createdText);
      const waitS = o.timeout ?? CREATE_WAIT_S;
      const deadline = Date.now() + waitS * 1000;
      const seen = new Map<number, string>();
      let status: JobStatusReply | null = null;
      const finished = (i: JobStatusReply["instances"][number]) => (status!.service ? i.state === "RUNNING" : isTerminal(i.state));
      for (;;) {
        // A poll nobody answered (a leader change) is asked again, until the wait's deadline.
        const polled = await pollOnce((t) => c.jobStatus({ job: r.job }, t), deadline);
        if (polled === null) continue;
        status = polled;
        for (const i of status.instances) {
          const now = `${i.taskId}\0${i.state}\0${i.reason}`;
          if (seen.get(i.instance) === now) continue;
          seen.set(i.instance, now);
          const replaced = i.taskId !== r.taskIds[i.instance] ? ` (task ${i.taskId})` : "";
          line(
            { event: "instance", job: r.job, instance: i.instance, taskId: i.taskId, state: i.state, reason: i.reason },
            `instance ${i.instance}${replaced} ${i.state}${i.reason ? `: ${i.reason}` : ""}`,
          );
        }
        if (status.instances.every(finished)) break;
        if (Date.now() >= deadline) {
          const what = notDone(status, finished);
          line(
            {
              event: "timeout",
              ...r,
              waitedS: waitS,
              notDone: status.instances.filter((i) => !finished(i)).map((i) => i.instance),
              status,
            },
            "",
          );
          throw new WaitTimeoutError(
            `timed out after ${seconds(waitS * 1000)} waiting for ${r.job} to ${status.service ? "be RUNNING" : "end"}: ${what}. ` +
              `The job stays created: see \`roost job status ${r.job}\`, \`roost task why TASK\`, or kill it with \`roost job kill ${r.job}\``,
          );
        }
        await sleep(Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now())));
      }
      line({ event: "done", ...r, status }, `\n${formatJobStatus(status)}`);
    });
  });

withClusterOptions(
  job.command("status").argument("<job>", "ROLE/ENV/NAME", jobKeyArg).description("show each instance: state, host, ports, reason"),
).action(async (k: string, o: Common) => {
  await withClient(o, async (c) => {
    const s = await readWithFallback<JobStatus>(c.transport, "job.status", { job: k }, (st) => jobStatus(st, k), `job ${k}`);
    print(o, s, () => formatJobStatus(s));
  });
});

withClusterOptions(job.command("list").description("list jobs with their task states")).action(async (o: Common) => {
  await withClient(o, async (c) => {
    const jobs = await readWithFallback<JobSummary[]>(c.transport, "job.list", {}, (st) => jobList(st), "job list");
    print(o, jobs, () => formatJobList(jobs));
  });
});

withClusterOptions(
  job.command("kill").argument("<job>", "ROLE/ENV/NAME", jobKeyArg).description("kill a job, or some of its instances"),
  `give up on any wait on the cluster after this many seconds (default: 10), and on the tasks to end (default: ${KILL_WAIT_S})`,
)
  .option("--instances <ids>", "instance ids and ranges, e.g. 0,2-3 (default: all)", parseInstances)
  .option("--user <name>", "who is asking", userArg, userInfo().username)
  .option("--no-wait", "return once the kill is logged, without waiting for the tasks to end")
  .option(KEY_FLAG, KEY_HELP, keyArg)
  .action(async (k: string, o: Common & { instances?: number[]; user: string; wait: boolean; key?: string }) => {
    const instances = o.instances ?? null;
    await withClient(o, async (c) => {
      const r = await c.killJob({ job: k, instances, user: o.user }, { key: o.key ?? newKey() });
      let status: JobStatusReply | null = null;
      if (o.wait) {
        const waitS = o.timeout ?? KILL_WAIT_S;
        const deadline = Date.now() + waitS * 1000;
        for (;;) {
          const polled = await pollOnce((t) => c.jobStatus({ job: k }, t), deadline);
          if (polled === null) continue;
          status = polled;
          if (instancesTerminal(status, r.instances)) break;
          if (Date.now() >= deadline) {
            const what = notDone({ ...status, instances: status.instances.filter((i) => r.instances.includes(i.instance)) }, (i) =>
              isTerminal(i.state),
            );
            throw new WaitTimeoutError(
              `the kill is logged (seq ${r.seq}) but not every task ended within ${seconds(waitS * 1000)}: ${what}; see \`roost job status ${k}\``,
            );
          }
          await sleep(Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now())));
        }
      }
      print(
        o,
        { ...r, ...(status ? { status } : {}) },
        () => `kill of ${k} instances ${r.instances.join(",")} logged (seq ${r.seq})${status ? `\n\n${formatJobStatus(status)}` : ""}`,
      );
    });
  });

withClusterOptions(
  job
    .command("add")
    .argument("<job>", "ROLE/ENV/NAME", jobKeyArg)
    .argument(
      "<count>",
      `how many instances to add (1 to ${MAX_INSTANCES})`,
      wholeNumber("COUNT", `a whole number from 1 to ${MAX_INSTANCES}`, 1, MAX_INSTANCES),
    )
    .description("add instances to a running job (production jobs must fit the role's quota)"),
)
  .option("--user <name>", "who is asking", userArg, userInfo().username)
  .option(KEY_FLAG, KEY_HELP, keyArg)
  .action(async (k: string, count: number, o: Common & { user: string; key?: string }) => {
    await withClient(o, async (c) => {
      const r = await c.addInstances({ job: k, count, user: o.user }, { key: o.key ?? newKey() });
      print(
        o,
        r,
        () =>
          `added ${r.instances.length} instance(s) to ${r.job} (log seq ${r.seq})\n${r.taskIds.map((t, i) => `  instance ${r.instances[i]}: ${t}`).join("\n")}`,
      );
    });
  });

// ---- roost quota --------------------------------------------------------------------------

/** A number option: refuse what is not a number here; the scheduler checks the rules. */
function numberArg(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`"${v}" is not a number`);
  return n;
}

const quota = program.command("quota").description("production quota per role");

withClusterOptions(
  quota
    .command("get")
    .argument("<role>", "the role", roleArg)
    .description("a role's production quota, what its production jobs use, and the headroom"),
).action(async (role: string, o: Common) => {
  await withClient(o, async (c) => {
    const q = await readWithFallback<QuotaReport>(c.transport, "quota.get", { role }, (st) => quotaReport(st, role), `role ${role}`);
    print(o, q, () => formatQuotaReport(q));
  });
});

withClusterOptions(
  quota
    .command("set")
    .argument("<role>", "the role", roleArg)
    .description("(admin) set a role's production quota; it cannot go below current usage"),
)
  .requiredOption("--cpus <n>", "cpus", numberArg)
  .requiredOption("--ram-mb <n>", "RAM, MB (integer)", numberArg)
  .requiredOption("--disk-mb <n>", "disk, MB (integer)", numberArg)
  .option("--user <name>", "who is asking", userArg, userInfo().username)
  .option(KEY_FLAG, KEY_HELP, keyArg)
  .action(async (role: string, o: Common & { cpus: number; ramMb: number; diskMb: number; user: string; key?: string }) => {
    await withClient(o, async (c) => {
      const q = await c.setQuota({ role, cpus: o.cpus, ramMb: o.ramMb, diskMb: o.diskMb, user: o.user }, { key: o.key ?? newKey() });
      print(o, q, () => `quota of role ${role} set (log seq ${q.seq})\n\n${formatQuotaReport(q)}`);
    });
  });

// ---- roost task / log ---------------------------------------------------------------------

// ---- roost gateway -----------------------------------------------------------------------

program
  .command("gateway")
  .description("the HTTP gateway: API v1 as JSON over HTTP, in front of a cluster's NATS (routes: schemas/openapi.json)")
  .requiredOption("--listen <host:port>", "where to listen, e.g. 127.0.0.1:8080 (port 0: any free port)", listenArg)
  .requiredOption("--nats <url>", "the cluster's NATS URL(s), comma-separated")
  .option("--creds <file>", CREDS_HELP)
  .option("--tokens <file>", 'bearer tokens: {"tokens": [{"token", "name", "role"?, "admin"?}]}; without it, no authentication')
  .option("--timeout <s>", "how long one request may wait for the scheduler (default 10)", timeoutArg)
  .action(async (o: { listen: { host: string; port: number }; nats: string; tokens?: string; timeout?: number; creds?: string }) => {
    const { parseTokens, startHttpGateway } = await import("../gateway/http.js");
    const tokens = o.tokens ? parseTokens(readFileSync(o.tokens, "utf8"), o.tokens) : null;
    const bus = await NatsBus.connect(natsServers(o.nats), `roost-gateway-${process.pid}`, resolveCreds(o.creds));
    const gw = await startHttpGateway({
      transport: bus,
      tokens,
      host: o.listen.host,
      port: o.listen.port,
      timeoutMs: (o.timeout ?? 10) * 1000,
    });
    console.log(`roost gateway listening on ${gw.url}${tokens ? ` (${tokens.length} identities)` : " (no authentication)"}`);
    await new Promise<void>((resolve) => {
      for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, () => resolve());
    });
    await gw.close();
    await bus.close();
  });

function listenArg(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535) throw new InvalidArgumentError("must be HOST:PORT, e.g. 127.0.0.1:8080");
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

// ---- roost request --------------------------------------------------------------------------

const request = program.command("request").description("keyed requests: what became of them");

withClusterOptions(
  request
    .command("get")
    .argument("<key>", "the request's idempotency key (--key of a write)", keyArg)
    .requiredOption("--role <role>", 'the role the request was for ("admin" for quota set)', roleArg)
    .description("the outcome of a keyed request: pending, done (with its value) or rejected (with its error)"),
).action(async (key: string, o: Common & { role: string }) => {
  await withClient(o, async (c) => {
    const r = await c.getRequest({ key }, { role: o.role });
    print(o, r, () =>
      [
        `request ${o.role}/${r.key}${r.op ? ` (${r.op})` : ""}: ${r.state}${r.seq ? ` at log seq ${r.seq}` : ""}`,
        ...(r.error ? [`  ${r.error.code}: ${r.error.message}`] : []),
      ].join("\n"),
    );
  });
});

const task = program.command("task").description("inspect tasks");
withClusterOptions(
  task.command("history").argument("<taskId>", "a task id", taskIdArg).description("every state change of a task, with time and reason"),
).action(async (taskId: string, o: Common) => {
  await withClient(o, async (c) => {
    const local = await readWithFallback<TaskHistory | null>(
      c.transport,
      "task.history",
      { taskId },
      (st) => taskHistory(st, taskId),
      `task ${taskId}`,
    );
    const h = await withReasons(local!, c.transport);
    print(o, h, () => formatTaskHistory(h));
  });
});

withClusterOptions(
  task
    .command("why")
    .argument("<taskId>", "a task id", taskIdArg)
    .description("why a task waits, or why it went where it did, with hosts and numbers")
    .option("--at <seq|time>", "as of this moment, judged from the log (default: now, from the leader)", atArg),
).action(async (taskId: string, o: Common & { at?: number | string }) => {
  if (o.at !== undefined) {
    const w = await withHistory(o, (h) => h.why({ taskId, at: o.at }));
    print(o, w, () =>
      [
        `at sequence ${w.at.seq}: ${formatWhy(w)}`,
        ...(w.cause && w.cause.state !== "RUNNING"
          ? [`why ${w.state}: ${w.cause.state} at ${w.cause.seq}.${w.cause.index} (${w.cause.type}): ${w.cause.reason}`]
          : []),
        ...(w.chain.length ? ["how it got there (newest first):"] : []),
        ...w.chain.map((c) => `  ${c.seq}.${c.index}  ${new Date(c.ts).toISOString()}  ${c.state}  ${c.type}: ${c.reason}`),
      ].join("\n"),
    );
    return;
  }
  await withClient(o, async (c) => {
    const w = await c.transport
      .request<WhyReport | null>("task.why", { taskId }, { retry: false, timeoutMs: Math.min(READ_LEADER_WAIT_MS, c.timeoutMs) })
      .catch(async (err) => {
        if (!(err instanceof NoResponderError)) throw err;
        // No leader: judge from the log, without the leader's in-memory pending reasons.
        const st = await foldLocally(c.transport);
        console.error(`no leader answered; this is judged from the state folded from the log here, at sequence ${st.seq}`);
        return whyTask(st, taskId, { agents: activeAgents(st), mode: "spread", reasonFor: () => undefined, log: c.transport });
      });
    if (!w) throw new Error(`task ${taskId} does not exist`);
    print(o, w, () => formatWhy(w));
  });
});

withClusterOptions(
  task
    .command("status")
    .argument("<taskId>", "a task id", taskIdArg)
    .description("a task and every one of its processes (state, runs, exit code, pid) and health checks, asked of its agent"),
).action(async (taskId: string, o: Common) => {
  await withClient(o, async (c) => {
    const s = await c.transport
      .request<TaskStatusReply>("task.status", { taskId }, { retry: false, timeoutMs: Math.min(READ_LEADER_WAIT_MS, c.timeoutMs) })
      .catch(async (err): Promise<TaskStatusReply> => {
        if (!(err instanceof NoResponderError)) throw err;
        // No leader to ask the agent: the task as the log has it, its processes unknown.
        const st = await foldLocally(c.transport);
        const t = st.tasks.get(taskId as TaskId);
        if (!t) throw new Error(`task ${taskId} does not exist`);
        return {
          taskId,
          job: t.job,
          instance: t.instance,
          state: t.state,
          host: t.host,
          agentId: t.agentId,
          processes: null,
          phase: null,
          killStep: null,
          health: null,
          isolation: null,
          memoryBytes: null,
          agentError: `no leader answered to ask the agent (the state is folded from the log here, at sequence ${st.seq})`,
        };
      });
    print(o, s, () => formatTaskStatus(s));
  });
});

const log = program.command("log").description("read the event log");
withClusterOptions(log.command("tail").description("print the log as readable lines; entries the fold skips are marked as anomalies"))
  .option(
    "--from <seq>",
    "first record sequence, a positive integer (from 1, the default, the tail also folds the log and marks every anomaly)",
    wholeNumber("--from", "a positive integer sequence (1, 2, …)", 1),
    1,
  )
  .option("--follow", "keep printing new records")
  .action(async (o: Common & { from: number; follow?: boolean }) => {
    await withClient(
      o,
      async (c) => {
        const ac = new AbortController();
        process.once("SIGINT", () => ac.abort());
        const records = o.follow ? c.transport.followLog(o.from, ac.signal) : c.transport.readLog(o.from);
        // From the start, fold along: then also the entries only the state shows to be wrong (an
        // event naming a task nobody created) are marked. Later starts mark what is wrong by itself.
        const state = o.from === 1 ? new ClusterState() : null;
        for await (const r of records) {
          let marks: Map<number, string> | null = null;
          if (state) {
            state.anomalies.length = 0; // only this record's: the state keeps the first 1000 at most
            const before = state.anomalyCount;
            foldRecord(state, r.seq, r.events);
            if (state.anomalyCount > before) marks = new Map(state.anomalies.map((a) => [a.index, a.why]));
          }
          r.events.forEach((e, i) => {
            const anomaly = marks?.get(i) ?? entryAnomaly(e);
            console.log(
              o.json
                ? JSON.stringify({ seq: r.seq, idx: i, ...e, ...(anomaly !== null ? { anomaly } : {}) })
                : formatEvent(r.seq, i, e, anomaly),
            );
          });
        }
      },
      { follow: o.follow },
    );
  });

// ---- roost sim (src/cli/sim.ts) ----------------------------------------------------------

registerSimCommand(program);

// ---- roost cluster (src/cli/cluster.ts) -----------------------------------------------------
registerClusterCommand(program, withClusterOptions);

// ---- roost snapshot (src/cli/snapshot.ts) ------------------------------------------------
registerSnapshotCommand(program, withClusterOptions);

// ---- roost events (src/cli/events.ts) ----------------------------------------------------
registerEventsCommand(program, withClusterOptions);

// ---- roost history, replay, diff, inspect, verify, export (src/cli/history.ts) ---------------
addHistoryCommands(program, withClusterOptions);

// ---- roost ui (src/cli/ui.ts) --------------------------------------------------------------
registerUiCommand(program, withClusterOptions, listenArg);

// ---- roost discover (src/cli/discover.ts) ----------------------------------------------------
registerDiscoverCommand(program, withClusterOptions, jobKeyArg);

// ---- roost update …, roost job restart (src/cli/update.ts) -------------------------------------
const deps: CliDeps = {
  withClusterOptions,
  withClient,
  readWithFallback,
  jobKeyArg,
  userArg,
  keyArg,
  parseInstances,
  newKey,
  keyFlag: KEY_FLAG,
  keyHelp: KEY_HELP,
};
registerUpdateCommands(program, job, deps);

// ---- roost cron … (src/cli/cron.ts) ------------------------------------------------------------
registerCronCommands(program, deps);

// ---- roost host maintenance … (src/cli/maintenance.ts) -----------------------------------------
registerHostCommands(program, deps);

// ---- roost sla … (src/cli/sla.ts) ------------------------------------------------------------------
registerSlaCommands(program, deps);

/**
 * Every failure ends as one line, `roost: <message>` (with --json: {"error": …} on stderr), and
 * exit code 1: a refusal from the leader, a bad flag caught late, an unreachable cluster, a wait
 * that ran out. Never a stack trace, also not for a rejection nobody awaited.
 */
function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  const json = process.argv.includes("--json");
  if (json) console.error(JSON.stringify({ error: message }));
  else console.error(`roost: ${message}`);
  process.exit(1);
}
// The daemons keep Node's default (a stack in their log); a client command says one line.
if (!["dev", "scheduler", "agent"].includes(process.argv[2] ?? "")) process.on("unhandledRejection", fail);

program.parseAsync(process.argv).catch(fail);

/** `roost task status`: the task, then one line per process. */
function formatTaskStatus(s: TaskStatusReply): string {
  const out = [`task ${s.taskId}  ${s.job}/${s.instance}  ${s.state}${s.host ? `  on ${s.host} (${s.agentId})` : ""}`];
  if (s.processes === null) {
    out.push(`processes: unknown: ${s.agentError ?? "no agent was asked"}`);
    return out.join("\n");
  }
  const mem = s.memoryBytes !== null ? `  memory ${(s.memoryBytes / 2 ** 20).toFixed(1)} MiB` : "";
  out.push(`phase ${s.phase}${s.killStep ? ` (kill: ${s.killStep})` : ""}  isolation ${s.isolation}${mem}`);
  if (s.health) {
    const h = s.health;
    out.push(
      `health: ${h.running ? "passed (RUNNING)" : "not yet passed"}; ${h.consecutiveSuccesses} ok and ${h.consecutiveFailures} failed in a row, ${h.attempts} checks${h.snoozed ? "; SNOOZED (.healthchecksnooze)" : ""}${h.lastReason ? `; last failure: ${h.lastReason}` : ""}`,
    );
  }
  out.push(
    table([
      ["PROCESS", "STATE", "RUNS", "FAILURES", "EXIT", "PID", ""],
      ...s.processes.map((p) => [
        p.name,
        p.state,
        String(p.runs),
        String(p.failures),
        p.exitCode === null ? "-" : String(p.exitCode),
        p.pid === null ? "-" : String(p.pid),
        p.final ? "final" : "",
      ]),
    ]),
  );
  return out.join("\n");
}
