// The JSON Schema of a Roost job spec file: the single source of truth.
//
// src/spec/job.schema.json is a checked artifact generated from this constant (editors and
// yaml-language-server can point at it). After changing the schema, regenerate the file with
//   npm run build && node dist/src/spec/writeSchema.js
// test/spec.test.ts fails if the file and this constant disagree.
//
// Field names follow Aurora (aurora.md §2), in camelCase. Defaults are declared here for
// documentation only: validation runs with useDefaults off, and jobSpec.ts fills every default
// itself while normalising, so a spec always normalises to the same JobConfig.

/** Role and job name: Aurora's good-identifier rule, at most 64 characters. */
export const IDENTIFIER_PATTERN = "^[A-Za-z0-9_.-]+$";
export const IDENTIFIER_MAX_LENGTH = 64;
/** Aurora's environment rule. */
export const ENVIRONMENT_PATTERN = "^(devel|test|production|staging\\d*)$";
/** A named port; also safe to upper-case into an environment variable name. */
export const PORT_NAME_PATTERN = "^[a-z][a-z0-9_]*$";
/** A constraint's attribute name (host, rack, zone, dedicated, ...). */
export const ATTRIBUTE_PATTERN = "^[A-Za-z0-9_.-]+$";
/** A command line must contain something other than white space. */
export const CMDLINE_PATTERN = "\\S";

export const MAX_INSTANCES = 4000;

export const TIERS = ["preferred", "preemptible", "revocable"] as const;
export type Tier = (typeof TIERS)[number];

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
      description: "devel, test, production, or staging followed by optional digits (staging, staging2, ...).",
      type: "string",
      pattern: ENVIRONMENT_PATTERN,
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
      default: 0,
    },
    maxTaskFailures: {
      description: "How many times a batch task may fail before it is given up on; -1 = unlimited. Ignored for services.",
      type: "integer",
      minimum: -1,
      default: 1,
    },
    resources: {
      description: "What each instance needs.",
      type: "object",
      additionalProperties: false,
      required: ["cpus", "ramMb", "diskMb"],
      properties: {
        cpus: { description: "CPU cores (fractions allowed).", type: "number", exclusiveMinimum: 0 },
        ramMb: { description: "Memory in MiB.", type: "integer", exclusiveMinimum: 0 },
        diskMb: { description: "Sandbox disk in MiB.", type: "integer", exclusiveMinimum: 0 },
        gpus: { description: "Whole GPUs.", type: "integer", minimum: 0, default: 0 },
        ports: {
          description:
            "Named ports. Each instance is assigned concrete port numbers; commands see them as {{ports.NAME}} and $ROOST_PORT_<NAME>.",
          type: "array",
          uniqueItems: true,
          items: { type: "string", pattern: PORT_NAME_PATTERN },
          default: [],
        },
      },
    },
    constraints: {
      description:
        'Placement constraints, by host attribute: "limit:N" (at most N instances per attribute value), "v1,v2" (value must be one of these) or "!v1,v2" (must be none of these). dedicated takes "ROLE/NAME" or "*/NAME".',
      type: "object",
      propertyNames: { pattern: ATTRIBUTE_PATTERN },
      additionalProperties: { type: "string", minLength: 1 },
      default: {},
    },
    processes: {
      description: "The processes every instance runs, each a shell command line.",
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "cmdline"],
        properties: {
          name: { description: "Unique within the task.", type: "string", pattern: IDENTIFIER_PATTERN },
          cmdline: {
            description: "A shell command line; {{ports.NAME}} is replaced by the assigned port.",
            type: "string",
            minLength: 1,
            pattern: CMDLINE_PATTERN,
          },
        },
      },
    },
  },
} as const;

/** The exact text of src/spec/job.schema.json. */
export function jobSchemaText(): string {
  return JSON.stringify(JOB_SCHEMA, null, 2) + "\n";
}
