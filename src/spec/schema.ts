// The JSON Schema of a Roost job spec file: the single source of truth.
//
// src/spec/job.schema.json is a checked artifact generated from this constant (editors and
// yaml-language-server can point at it). After changing the schema, regenerate the file with
//   npm run build && node dist/src/spec/writeSchema.js
// test/spec.test.ts fails if the file and this constant disagree.
//
// Field names follow Aurora's job configuration (JobConfiguration and TaskConfig), in camelCase.
// Defaults are declared here for documentation only: validation runs with useDefaults off, and
// jobSpec.ts fills every default itself while normalising, so a spec always normalises to the
// same JobConfig.

import {
  MAX_CMDLINE_BYTES,
  MAX_CONSTRAINT_LENGTH,
  MAX_CONSTRAINTS,
  MAX_CPUS,
  MAX_DISK_MB,
  MAX_GPUS,
  MAX_INSTANCES,
  MAX_PORTS_PER_TASK,
  MAX_PRIORITY,
  MAX_PROCESSES,
  MAX_RAM_MB,
  MAX_TASK_FAILURES,
  MIN_CPUS,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  PORT_NAME_MAX_LENGTH,
  PORT_NAME_PATTERN,
} from "../domain/limits.js";

export { MAX_INSTANCES, PORT_NAME_PATTERN };

/**
 * Roles, environments, job and process names (domain/limits.ts): Aurora's good-identifier
 * characters, never starting with "." or "-", so never "." or "..".
 */
export const IDENTIFIER_PATTERN = NAME_PATTERN;
const IDENTIFIER_MAX_LENGTH = NAME_MAX_LENGTH;
/** A constraint's attribute name (host, rack, zone, dedicated, ...). */
const ATTRIBUTE_PATTERN = NAME_PATTERN;
/**
 * A command line must contain something other than white space, and no NUL byte (exec cannot
 * pass one: such a task failed to launch forever). Its size in UTF-8 bytes is checked in
 * jobSpec.ts; maxLength (characters) is the schema's coarse bound.
 */
export const CMDLINE_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";

const TIERS = ["preferred", "preemptible", "revocable"] as const;

export const JOB_SCHEMA = {
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "Roost job spec",
  description:
    "A job for the Roost scheduler: its key (role/environment/name), how many instances to run, and the task every instance runs. Unknown fields are errors.",
  type: "object",
  additionalProperties: false,
  required: ["role", "environment", "name", "resources", "processes"],
  properties: {
    role: {
      description: "The unix user the tasks run as and the owner of the quota they use.",
      type: "string",
      pattern: IDENTIFIER_PATTERN,
      maxLength: IDENTIFIER_MAX_LENGTH,
    },
    environment: {
      description:
        "A name the scheduler allows (roost scheduler --allowed-environments); by default Aurora's ^(prod|devel|test|staging\\d*)$: prod, devel, test, or staging followed by optional digits.",
      type: "string",
      pattern: IDENTIFIER_PATTERN,
      maxLength: IDENTIFIER_MAX_LENGTH,
    },
    name: {
      description: "The job's name, unique within role/environment.",
      type: "string",
      pattern: IDENTIFIER_PATTERN,
      maxLength: IDENTIFIER_MAX_LENGTH,
    },
    instances: {
      description: "How many instances (tasks) of the job to run; their ids are 0..instances-1.",
      type: "integer",
      minimum: 1,
      maximum: MAX_INSTANCES,
      default: 1,
    },
    service: {
      description: "A service is restarted after any exit; a batch job (false) only after a failure, up to maxTaskFailures.",
      type: "boolean",
      default: false,
    },
    tier: {
      description: "preferred (never preempted), preemptible (the default) or revocable.",
      type: "string",
      enum: [...TIERS],
      default: "preemptible",
    },
    priority: {
      description: "Priority among the role's jobs of the same tier; higher may preempt lower.",
      type: "integer",
      minimum: 0,
      maximum: MAX_PRIORITY,
      default: 0,
    },
    maxTaskFailures: {
      description: "How many times a batch task may fail before it is given up on; -1 = unlimited. Ignored for services.",
      type: "integer",
      minimum: -1,
      maximum: MAX_TASK_FAILURES,
      default: 1,
    },
    resources: {
      description: "What each instance needs.",
      type: "object",
      additionalProperties: false,
      required: ["cpus", "ramMb", "diskMb"],
      properties: {
        cpus: { description: "CPU cores, in thousandths at the finest (0.001).", type: "number", minimum: MIN_CPUS, maximum: MAX_CPUS },
        ramMb: { description: "Memory in MiB.", type: "integer", minimum: 1, maximum: MAX_RAM_MB },
        diskMb: { description: "Sandbox disk in MiB.", type: "integer", minimum: 1, maximum: MAX_DISK_MB },
        gpus: { description: "Whole GPUs.", type: "integer", minimum: 0, maximum: MAX_GPUS, default: 0 },
        ports: {
          description:
            "Named ports. Each instance is assigned concrete port numbers; commands see them as {{ports.NAME}} and $ROOST_PORT_<NAME>.",
          type: "array",
          uniqueItems: true,
          maxItems: MAX_PORTS_PER_TASK,
          items: { type: "string", pattern: PORT_NAME_PATTERN, maxLength: PORT_NAME_MAX_LENGTH },
          default: [],
        },
      },
    },
    constraints: {
      description:
        'Placement constraints, by host attribute: "limit:N" (at most N instances per attribute value), "v1,v2" (value must be one of these) or "!v1,v2" (must be none of these). dedicated takes "ROLE/NAME" or "*/NAME".',
      type: "object",
      maxProperties: MAX_CONSTRAINTS,
      propertyNames: { pattern: ATTRIBUTE_PATTERN, maxLength: IDENTIFIER_MAX_LENGTH },
      additionalProperties: { type: "string", minLength: 1, maxLength: MAX_CONSTRAINT_LENGTH },
      default: {},
    },
    processes: {
      description: "The processes every instance runs, each a shell command line.",
      type: "array",
      minItems: 1,
      maxItems: MAX_PROCESSES,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "cmdline"],
        properties: {
          name: { description: "Unique within the task.", type: "string", pattern: IDENTIFIER_PATTERN, maxLength: IDENTIFIER_MAX_LENGTH },
          cmdline: {
            description: `A shell command line of at most ${MAX_CMDLINE_BYTES} bytes, without NUL; {{ports.NAME}} is replaced by the assigned port.`,
            type: "string",
            minLength: 1,
            maxLength: MAX_CMDLINE_BYTES,
            pattern: CMDLINE_PATTERN,
          },
        },
      },
    },
  },
} as const;

/** The exact text of src/spec/job.schema.json. */
export function jobSchemaText(): string {
  return `${JSON.stringify(JOB_SCHEMA, null, 2)}\n`;
}
