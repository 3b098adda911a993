// Domain vocabulary shared by the fold, the actors, the agent and the CLI.
// Names follow Aurora (role/environment/name, instances, tier, priority, maxTaskFailures),
// in camelCase.

import { Type, type Static } from "typebox";
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

/** One process of a task (Thermos-style): a shell command line. */
const ProcessSpecSchema = Type.Object({ name: Str, cmdline: Str });
export type ProcessSpec = Static<typeof ProcessSpecSchema>;

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
});
export type TaskConfig = Static<typeof TaskConfigSchema>;

export const JobConfigSchema = Type.Object({ role: Str, environment: Str, name: Str, instances: Int, task: TaskConfigSchema });
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
