// Domain vocabulary shared by the fold, the actors, the agent and the CLI.
// Names follow Aurora (role/environment/name, instances, tier, priority, maxTaskFailures),
// in camelCase.

import { Type, type Static } from "../vendor/typebox.js";
import { UpdateSettingsSchema } from "./update.js";
import { SlaPolicySchema } from "./maintenance.js";
import { Dict } from "./validate.js";

// Branded ids: a string that has been through a check (a schema, or the fold's own records) and
// means one thing. A task id passed where an agent id belongs, or a raw request string used as a
// job key before it was validated, is a compile error instead of a lookup that quietly misses.
// Brands cost nothing at run time (they are plain strings), and the log stores plain strings.
declare const brand: unique symbol;
type Brand<B extends string> = string & { readonly [brand]: B };

/** "role/environment/name", as the log writes it. */
export type JobKeyString = Brand<"JobKey">;
/** A task's id (one run of one instance). */
export type TaskId = Brand<"TaskId">;
/** An agent's id (one per host and boot). */
export type AgentId = Brand<"AgentId">;

/** The schemas of the branded strings: each checks a string, and types it with its brand. */
export const JobKeyStr = Type.Unsafe<JobKeyString>(Type.String());
export const TaskIdStr = Type.Unsafe<TaskId>(Type.String());
export const AgentIdStr = Type.Unsafe<AgentId>(Type.String());

/**
 * A string as an id, for what checked it already: a schema, a parser, or a test that makes one up.
 * The one place a plain string becomes branded without a schema.
 */
export const asJobKey = (s: string): JobKeyString => s as JobKeyString;
export const asTaskId = (s: string): TaskId => s as TaskId;
export const asAgentId = (s: string): AgentId => s as AgentId;

export interface JobKey {
  role: string;
  environment: string;
  name: string;
}

export function jobKeyString(k: JobKey): JobKeyString {
  return `${k.role}/${k.environment}/${k.name}` as JobKeyString;
}

export function parseJobKey(s: string): JobKey {
  const parts = s.split("/");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) {
    throw new Error(`job key "${s}" must have the form ROLE/ENV/NAME`);
  }
  return { role: parts[0]!, environment: parts[1]!, name: parts[2]! };
}

// The shapes below are also schemas (TypeBox: one definition gives the type and its JSON
// Schema). They are the *log's* shapes: only the types the fold relies on, no policy bounds, so
// that every JobCreated or AgentRegistered any build ever wrote still folds (limits.ts holds the
// bounds new requests must meet).

const Num = Type.Number();
const Int = Type.Integer();
const Str = Type.String();

const ResourcesSchema = Type.Object({ cpus: Num, ramMb: Num, diskMb: Num, gpus: Type.Optional(Num) });
export type Resources = Static<typeof ResourcesSchema>;

/**
 * One process of a task (Aurora's Thermos Process): a shell command line, and how it is run.
 * The run fields are optional in the log (jobs logged before them have none) and default to
 * Thermos's: maxFailures 1, daemon false, ephemeral false, minDuration 5, final false
 * (processDefaults below).
 */
const ProcessSpecSchema = Type.Object({
  name: Str,
  cmdline: Str,
  /** Runs until it has failed this many times; 0 = restarted without end. */
  maxFailures: Type.Optional(Int),
  /** Restarted even after it succeeds. */
  daemon: Type.Optional(Type.Boolean()),
  /** The task does not wait for it to end. */
  ephemeral: Type.Optional(Type.Boolean()),
  /** Seconds: runs of a restarted process start at least this far apart. */
  minDuration: Type.Optional(Num),
  /** Runs at finalization: after a kill, or after the other processes ended. */
  final: Type.Optional(Type.Boolean()),
});
export type ProcessSpec = Static<typeof ProcessSpecSchema>;

/** A process with every run field set: the log's (or a launch's) defaults filled in. */
export type FullProcessSpec = Required<ProcessSpec>;

export function processDefaults(p: ProcessSpec): FullProcessSpec {
  return {
    name: p.name,
    cmdline: p.cmdline,
    maxFailures: p.maxFailures ?? 1,
    daemon: p.daemon ?? false,
    ephemeral: p.ephemeral ?? false,
    minDuration: p.minDuration ?? 5,
    final: p.final ?? false,
  };
}

/** Thermos's order constraint: each process starts only after the ones before it succeeded. */
const ProcessConstraintSchema = Type.Object({ order: Type.Array(Str) });
export type ProcessConstraint = Static<typeof ProcessConstraintSchema>;

/**
 * Aurora's HealthCheckConfig: checks the executor runs on a task (Aurora's defaults in the spec's
 * normalisation): exactly one of `http` (a GET to the named port "health") or `shell`.
 */
const HealthCheckSchema = Type.Object({
  initialIntervalSecs: Num,
  intervalSecs: Num,
  timeoutSecs: Num,
  maxConsecutiveFailures: Int,
  minConsecutiveSuccesses: Int,
  http: Type.Optional(Type.Object({ endpoint: Str, expectedResponse: Str, expectedResponseCode: Int })),
  shell: Type.Optional(Type.Object({ command: Str })),
});
export type HealthCheckConfig = Static<typeof HealthCheckSchema>;

/**
 * Aurora's HttpLifecycleConfig: the HTTP steps of a graceful kill, POSTed to the named port
 * `port`; `false` turns them off (a task without that port has none anyway).
 */
const HttpLifecycleSchema = Type.Object({
  port: Str,
  gracefulShutdownEndpoint: Str,
  shutdownEndpoint: Str,
  gracefulShutdownWaitSecs: Num,
  shutdownWaitSecs: Num,
});
const LifecycleSchema = Type.Object({ http: Type.Union([HttpLifecycleSchema, Type.Literal(false)]) });
export type LifecycleConfig = Static<typeof LifecycleSchema>;

/** What every instance of a job runs. Stored in JobCreated; tasks refer to it by version. */
const TaskConfigSchema = Type.Object({
  service: Type.Boolean(),
  tier: Str,
  priority: Num,
  /** -1 = unlimited; ignored for services. */
  maxTaskFailures: Int,
  resources: Type.Object({ cpus: Num, ramMb: Num, diskMb: Num, gpus: Type.Optional(Num), ports: Type.Array(Str) }),
  constraints: Dict(Str),
  processes: Type.Array(ProcessSpecSchema),
  /** Order constraints among the processes (absent: none). */
  processConstraints: Type.Optional(Type.Array(ProcessConstraintSchema)),
  /** Absent: the task is RUNNING once its processes started. */
  healthCheck: Type.Optional(HealthCheckSchema),
  /** Absent: the HTTP steps run on port "health" when the task has one, with Aurora's defaults. */
  lifecycle: Type.Optional(LifecycleSchema),
  /** Seconds between SIGTERM and SIGKILL (and for final processes); absent: 30. At most 60. */
  finalizationWaitSecs: Type.Optional(Num),
});
export type TaskConfig = Static<typeof TaskConfigSchema>;

/**
 * A job as logged. The job-level fields after `task` came with updates and cron (Aurora's
 * JobConfiguration: update settings and cron schedule live on the job, not on its tasks); jobs
 * logged before them have none: they were never cron jobs, and their updates take the defaults.
 */
export const JobConfigSchema = Type.Object({
  role: Str,
  environment: Str,
  name: Str,
  instances: Int,
  task: TaskConfigSchema,
  /** Aurora's UpdateConfig, normalised (updater/settings.ts); absent: the defaults. */
  updateConfig: Type.Optional(UpdateSettingsSchema),
  /** A cron job's 5-field schedule (cron/expression.ts canonical form); absent: not a cron job. */
  cronSchedule: Type.Optional(Str),
  /** The schedule's IANA time zone (UTC unless given). */
  cronTimezone: Type.Optional(Str),
  /** KILL_EXISTING (Aurora's default) or CANCEL_NEW. */
  cronCollisionPolicy: Type.Optional(Str),
  /** Aurora's SlaPolicy: how many of its tasks a host drain may take down at once; absent: the drain's default. */
  slaPolicy: Type.Optional(SlaPolicySchema),
});
export type JobConfig = Static<typeof JobConfigSchema>;

/** Agent-advertised capacity. Port ranges are inclusive [lo, hi] pairs. */
export const AgentResourcesSchema = Type.Object({
  cpus: Num,
  ramMb: Num,
  diskMb: Num,
  gpus: Type.Optional(Num),
  ports: Type.Array(Type.Tuple([Int, Int])),
});
export type AgentResources = Static<typeof AgentResourcesSchema>;
