// The `roost` command. commander handles parsing and help (a well-kept library beats a
// hand-written parser); every subcommand takes --json.

import { readFileSync } from "node:fs";
import { cpus, totalmem, userInfo } from "node:os";
import { Command, InvalidArgumentError, Option } from "commander";
import { NoResponderError } from "../bus/bus.js";
import { DEFAULT_ENVIRONMENT_PATTERN } from "../domain/limits.js";
import { jobKeyString, parseJobKey } from "../domain/types.js";
import { quotaReport, type QuotaReport } from "../quota/quota.js";
import { instancesTerminal, jobList, jobStatus, taskHistory, withReasons, type JobStatus, type JobSummary, type TaskHistory } from "../replay/queries.js";
import { parseJobSpec } from "../spec/jobSpec.js";
import { whyTask, type WhyReport } from "../scheduling/why.js";
import { connectClient, foldLocally, type ClusterClient } from "./client.js";
import { runAgent, runScheduler } from "./daemons.js";
import { runDev } from "./dev.js";
import { registerClusterCommand } from "./cluster.js";
import { formatWhy, formatEvent, formatJobList, formatJobStatus, formatQuotaReport, formatTaskHistory } from "./format.js";
import { registerSimCommand } from "./sim.js";
import { registerSnapshotCommand } from "./snapshot.js";

interface Common {
  json?: boolean;
  nats?: string;
  cluster?: string;
}

const program = new Command();
program.name("roost").description("An Aurora-style cluster scheduler on a replicated NATS JetStream log").showHelpAfterError();

function withClusterOptions(c: Command): Command {
  return c
    .option("--json", "machine-readable output")
    .option("--nats <url>", "reach the cluster at this NATS URL instead of the cluster file")
    .option("--cluster <file>", "cluster file written by `roost dev`", ".roost/cluster.json");
}

function print(opts: Common, value: unknown, human: () => string): void {
  console.log(opts.json ? JSON.stringify(value, null, 2) : human());
}

async function withClient<T>(opts: Common, fn: (c: ClusterClient) => Promise<T>): Promise<T> {
  const client = await connectClient({ nats: opts.nats, cluster: opts.cluster });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Ask the leader; when none answers, fold the log here and answer from that. */
async function readWithFallback<T>(client: ClusterClient, op: string, data: unknown, local: (s: Awaited<ReturnType<typeof foldLocally>>) => T | null, what: string): Promise<T> {
  try {
    return await client.request<T>(op, data, 3000);
  } catch (err) {
    if (!(err instanceof NoResponderError)) throw err;
    const state = await foldLocally(client);
    console.error(`no leader answered; this is the state folded from the log here, at sequence ${state.seq}`);
    const v = local(state);
    if (v === null) throw new Error(`${what} does not exist`);
    return v;
  }
}

function parseInstances(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new Error(`--instances "${s}": use ids and ranges like 0,2-3`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`--instances "${s}": range ${part} runs backwards`);
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
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
  .action(async (o) => runDev({ agents: o.agents, nats: o.nats, dir: o.dir, json: !!o.json, embedded: !!o.embedded, ha: !!o.ha }));

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
  .option("--policy <json>", 'override scheduling timings, e.g. \'{"preemptionDelayMs":5000}\' (defaults: Aurora\'s)')
  .option("--json", "log as JSON lines (always)")
  .option("--lease-ms <ms>", "leader lease: a leader that cannot renew within this long is replaced", (v) => Number(v), 3000)
  .option("--snapshot-every <events>", "write a snapshot of the folded state every this many events (a standby writes it when one is up; 0: never)", (v) => Number(v), 100_000)
  .option("--control-stdin", "read control lines (quiesce, stop, kill) on stdin and stop at its end (used by `roost dev`)")
  .option("--allowed-environments <regex>", "environments a job may name (Aurora's allowed_job_environments)", regexArg("--allowed-environments"), DEFAULT_ENVIRONMENT_PATTERN)
  .action(async (o) =>
    runScheduler({ nats: o.nats, stream: o.stream, replicas: Number(o.replicas) as 1 | 3, id: o.id, policy: o.policy, leaseMs: o.leaseMs, snapshotEvery: o.snapshotEvery, control: !!o.controlStdin, allowedEnvironments: o.allowedEnvironments }),
  );

program
  .command("agent")
  .description("run one agent (one per host) against a NATS server")
  .requiredOption("--nats <url>", "NATS URL")
  .option("--id <id>", "agent id (default: host name)")
  .option("--host <host>", "host name to advertise (default: this machine's)")
  .option("--attr <name=value>", "an attribute (repeatable), e.g. rack=r1", (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option("--cpus <n>", "cpus to offer", (v) => Number(v), cpus().length)
  .option("--ram-mb <n>", "RAM to offer, MB", (v) => Number(v), Math.floor(totalmem() / 2 ** 20))
  .option("--disk-mb <n>", "disk to offer, MB", (v) => Number(v), 65536)
  .option("--gpus <n>", "gpus to offer", (v) => Number(v), 0)
  .option("--ports <ranges>", "port ranges to offer, e.g. 31000-32000", "31000-32000")
  .option("--work-dir <dir>", "where task sandboxes live", ".roost/agent")
  .option("--kill-tasks-on-exit", "kill running tasks when the agent stops", false)
  .option("--control-stdin", "read control lines (stop, kill) on stdin and stop at its end (used by `roost dev`)")
  .option("--json", "log as JSON lines (always)")
  .action(async (o) =>
    runAgent({ nats: o.nats, id: o.id, host: o.host, attr: o.attr, cpus: o.cpus, ramMb: o.ramMb, diskMb: o.diskMb, gpus: o.gpus, ports: o.ports, workDir: o.workDir, killTasksOnExit: o.killTasksOnExit, control: !!o.controlStdin }),
  );

// ---- roost job ----------------------------------------------------------------------------

const job = program.command("job").description("create, inspect and kill jobs");

withClusterOptions(job.command("create").argument("<file>", "job spec (YAML or JSON)").description("create a job from a spec file"))
  .option("--user <name>", "who is asking", userInfo().username)
  .option("--wait", "wait until every instance is RUNNING (or has ended, for batch jobs)")
  .action(async (file: string, o: Common & { user: string; wait?: boolean }) => {
    const config = parseJobSpec(readFileSync(file, "utf8"), file);
    await withClient(o, async (c) => {
      const r = await c.request<{ job: string; taskIds: string[]; seq: number }>("job.create", { spec: config, user: o.user });
      let status: JobStatus | null = null;
      if (o.wait) {
        for (;;) {
          status = await c.request<JobStatus>("job.status", { job: r.job });
          const st = status;
          const done = st.service ? st.instances.every((i) => i.state === "RUNNING") : instancesTerminal(st, null);
          if (done) break;
          await new Promise((res) => setTimeout(res, 200));
        }
      }
      print(o, { ...r, ...(status ? { status } : {}) }, () => `created ${r.job} (log seq ${r.seq})\n${r.taskIds.map((t, i) => `  instance ${i}: ${t}`).join("\n")}${status ? `\n\n${formatJobStatus(status)}` : ""}`);
    });
  });

withClusterOptions(job.command("status").argument("<job>", "ROLE/ENV/NAME").description("show each instance: state, host, ports, reason"))
  .action(async (key: string, o: Common) => {
    const k = jobKeyString(parseJobKey(key));
    await withClient(o, async (c) => {
      const s = await readWithFallback<JobStatus>(c, "job.status", { job: k }, (st) => jobStatus(st, k), `job ${k}`);
      print(o, s, () => formatJobStatus(s));
    });
  });

withClusterOptions(job.command("list").description("list jobs with their task states"))
  .action(async (o: Common) => {
    await withClient(o, async (c) => {
      const jobs = await readWithFallback<JobSummary[]>(c, "job.list", {}, (st) => jobList(st), "job list");
      print(o, jobs, () => formatJobList(jobs));
    });
  });

withClusterOptions(job.command("kill").argument("<job>", "ROLE/ENV/NAME").description("kill a job, or some of its instances"))
  .option("--instances <ids>", "instance ids and ranges, e.g. 0,2-3 (default: all)")
  .option("--user <name>", "who is asking", userInfo().username)
  .option("--no-wait", "return once the kill is logged, without waiting for the tasks to end")
  .option("--timeout <s>", "how long to wait for the tasks to end", (v) => Number(v), 60)
  .action(async (key: string, o: Common & { instances?: string; user: string; wait: boolean; timeout: number }) => {
    const k = jobKeyString(parseJobKey(key));
    const instances = o.instances ? parseInstances(o.instances) : null;
    await withClient(o, async (c) => {
      const r = await c.request<{ job: string; instances: number[]; seq: number }>("job.kill", { job: k, instances, user: o.user });
      let status: JobStatus | null = null;
      if (o.wait) {
        const deadline = Date.now() + o.timeout * 1000;
        for (;;) {
          status = await c.request<JobStatus>("job.status", { job: k });
          if (instancesTerminal(status, r.instances)) break;
          if (Date.now() > deadline) throw new Error(`the kill is logged (seq ${r.seq}) but not every task ended within ${o.timeout} s; see \`roost job status ${k}\``);
          await new Promise((res) => setTimeout(res, 200));
        }
      }
      print(o, { ...r, ...(status ? { status } : {}) }, () => `kill of ${k} instances ${r.instances.join(",")} logged (seq ${r.seq})${status ? `\n\n${formatJobStatus(status)}` : ""}`);
    });
  });

withClusterOptions(job.command("add").argument("<job>", "ROLE/ENV/NAME").argument("<count>", "how many instances to add").description("add instances to a running job (production jobs must fit the role's quota)"))
  .option("--user <name>", "who is asking", userInfo().username)
  .action(async (key: string, count: string, o: Common & { user: string }) => {
    const k = jobKeyString(parseJobKey(key));
    await withClient(o, async (c) => {
      const r = await c.request<{ job: string; instances: number[]; taskIds: string[]; seq: number }>("job.add", { job: k, count: Number(count), user: o.user });
      print(o, r, () => `added ${r.instances.length} instance(s) to ${r.job} (log seq ${r.seq})\n${r.taskIds.map((t, i) => `  instance ${r.instances[i]}: ${t}`).join("\n")}`);
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

withClusterOptions(quota.command("get").argument("<role>").description("a role's production quota, what its production jobs use, and the headroom"))
  .action(async (role: string, o: Common) => {
    await withClient(o, async (c) => {
      const q = await readWithFallback<QuotaReport>(c, "quota.get", { role }, (st) => quotaReport(st, role), `role ${role}`);
      print(o, q, () => formatQuotaReport(q));
    });
  });

withClusterOptions(quota.command("set").argument("<role>").description("(admin) set a role's production quota; it cannot go below current usage"))
  .requiredOption("--cpus <n>", "cpus", numberArg)
  .requiredOption("--ram-mb <n>", "RAM, MB (integer)", numberArg)
  .requiredOption("--disk-mb <n>", "disk, MB (integer)", numberArg)
  .option("--user <name>", "who is asking", userInfo().username)
  .action(async (role: string, o: Common & { cpus: number; ramMb: number; diskMb: number; user: string }) => {
    await withClient(o, async (c) => {
      const q = await c.request<QuotaReport>("quota.set", { role, cpus: o.cpus, ramMb: o.ramMb, diskMb: o.diskMb, user: o.user });
      print(o, q, () => `quota of role ${role} set (log seq ${q.seq})\n\n${formatQuotaReport(q)}`);
    });
  });

// ---- roost task / log ---------------------------------------------------------------------

const task = program.command("task").description("inspect tasks");
withClusterOptions(task.command("history").argument("<taskId>").description("every state change of a task, with time and reason"))
  .action(async (taskId: string, o: Common) => {
    await withClient(o, async (c) => {
      const local = await readWithFallback<TaskHistory | null>(c, "task.history", { taskId }, (st) => taskHistory(st, taskId), `task ${taskId}`);
      const h = await withReasons(local!, c);
      print(o, h, () => formatTaskHistory(h));
    });
  });

withClusterOptions(task.command("why").argument("<taskId>").description("why a task waits, or why it went where it did, with hosts and numbers"))
  .action(async (taskId: string, o: Common) => {
    await withClient(o, async (c) => {
      const w = await readWithFallback<WhyReport | null>(c, "task.why", { taskId }, () => null, `task ${taskId}`).catch(async (err) => {
        if (!(err instanceof Error) || !/does not exist/.test(err.message)) throw err;
        // No leader: judge from the log, without the leader's in-memory pending reasons.
        const st = await foldLocally(c);
        const agents = [...st.agents.values()].filter((a) => a.state === "ACTIVE").sort((x, y) => (x.agentId < y.agentId ? -1 : 1));
        return whyTask(st, taskId, { agents, mode: "spread", reasonFor: () => undefined, log: c });
      });
      if (!w) throw new Error(`task ${taskId} does not exist`);
      print(o, w, () => formatWhy(w));
    });
  });

const log = program.command("log").description("read the event log");
withClusterOptions(log.command("tail").description("print the log as readable lines"))
  .option("--from <seq>", "first record sequence", (v) => Number(v), 1)
  .option("--follow", "keep printing new records")
  .action(async (o: Common & { from: number; follow?: boolean }) => {
    await withClient(o, async (c) => {
      const ac = new AbortController();
      process.once("SIGINT", () => ac.abort());
      const records = o.follow ? c.followLog(o.from, ac.signal) : c.readLog(o.from);
      for await (const r of records) {
        r.events.forEach((e, i) => console.log(o.json ? JSON.stringify({ seq: r.seq, idx: i, ...e }) : formatEvent(r.seq, i, e)));
      }
    });
  });

// ---- roost sim (src/cli/sim.ts) ----------------------------------------------------------

registerSimCommand(program);

// ---- roost cluster (src/cli/cluster.ts) -----------------------------------------------------
registerClusterCommand(program, withClusterOptions);

// ---- roost snapshot (src/cli/snapshot.ts) ------------------------------------------------
registerSnapshotCommand(program, withClusterOptions);

program.parseAsync(process.argv).catch((err: Error) => {
  const json = process.argv.includes("--json");
  if (json) console.error(JSON.stringify({ error: err.message }));
  else console.error(`roost: ${err.message}`);
  process.exit(1);
});
