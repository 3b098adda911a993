// Domain vocabulary shared by the fold, the actors, the agent and the CLI.
// Names follow Aurora (role/environment/name, instances, tier, priority, maxTaskFailures),
// in camelCase.

import { Type, type Static } from "typebox";
import { Dict } from "./validate.js";

export type JobKeyString = string; // "role/environment/name"

export interface JobKey {
  role: string;
  environment: string;
  name: string;
}

export function jobKeyString(k: JobKey): JobKeyString {
  return `${k.role}/${k.environment}/${k.name}`;
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

export const ResourcesSchema = Type.Object({ cpus: Num, ramMb: Num, diskMb: Num, gpus: Type.Optional(Num) });
export type Resources = Static<typeof ResourcesSchema>;

/** One process of a task (Thermos-style): a shell command line. */
export const ProcessSpecSchema = Type.Object({ name: Str, cmdline: Str });
export type ProcessSpec = Static<typeof ProcessSpecSchema>;

/** What every instance of a job runs. Stored in JobCreated; tasks refer to it by version. */
export const TaskConfigSchema = Type.Object({
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
