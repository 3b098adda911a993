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
  MAX_FINALIZATION_WAIT_SECS,
  MAX_HEALTH_COUNT,
  MAX_HEALTH_TEXT,
  MAX_HTTP_LIFECYCLE_WAIT_SECS,
  MAX_PROCESS_FAILURES,
  MAX_SERVICE_SECS,
  URL_PATH_PATTERN,
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

export { MAX_INSTANCES, PORT_NAME_PATTERN, URL_PATH_PATTERN };

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

/** Placement constraints as a mapping (the form the scheduler checks: jobSpec.ts lifts a list into it). */
const PLACEMENT_CONSTRAINTS = {
  description:
    'Placement constraints, by host attribute: "limit:N" (at most N instances per attribute value), "v1,v2" (value must be one of these) or "!v1,v2" (must be none of these). dedicated takes "ROLE/NAME" or "*/NAME". May also be a list of one-attribute mappings and {order: [...]} process order constraints (Aurora writes both in constraints).',
  type: "object",
  maxProperties: MAX_CONSTRAINTS,
  propertyNames: { pattern: ATTRIBUTE_PATTERN, maxLength: IDENTIFIER_MAX_LENGTH },
  additionalProperties: { type: "string", minLength: 1, maxLength: MAX_CONSTRAINT_LENGTH },
  default: {},
} as const;

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
    constraints: PLACEMENT_CONSTRAINTS,
    processConstraints: {
      description:
        "Order constraints among the processes (Thermos's order): each process starts only after the ones before it in an order succeeded. May also be written as {order: [...]} entries of a constraints list.",
      type: "array",
      maxItems: MAX_PROCESSES,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["order"],
        properties: {
          order: {
            type: "array",
            minItems: 1,
            maxItems: MAX_PROCESSES,
            items: { type: "string", pattern: IDENTIFIER_PATTERN, maxLength: IDENTIFIER_MAX_LENGTH },
          },
        },
      },
    },
    healthCheck: {
      description:
        "Aurora's HealthCheckConfig: the task is RUNNING only after minConsecutiveSuccesses checks pass, and FAILED once more than maxConsecutiveFailures fail in a row. http (the default) GETs the named port health; shell runs a command in the sandbox.",
      type: "object",
      additionalProperties: false,
      properties: {
        initialIntervalSecs: {
          description: "Grace period: failures in the first ceil(initial/interval) checks do not count.",
          type: "number",
          minimum: 0,
          maximum: MAX_SERVICE_SECS,
          default: 15,
        },
        intervalSecs: { type: "number", exclusiveMinimum: 0, maximum: MAX_SERVICE_SECS, default: 10 },
        timeoutSecs: { type: "number", exclusiveMinimum: 0, maximum: MAX_SERVICE_SECS, default: 1 },
        maxConsecutiveFailures: { type: "integer", minimum: 0, maximum: MAX_HEALTH_COUNT, default: 0 },
        minConsecutiveSuccesses: { type: "integer", minimum: 1, maximum: MAX_HEALTH_COUNT, default: 1 },
        http: {
          type: "object",
          additionalProperties: false,
          properties: {
            endpoint: { type: "string", pattern: URL_PATH_PATTERN, maxLength: MAX_HEALTH_TEXT, default: "/health" },
            expectedResponse: { type: "string", maxLength: MAX_HEALTH_TEXT, default: "ok" },
            expectedResponseCode: { description: "Checked only when not 0.", type: "integer", minimum: 0, maximum: 599, default: 0 },
          },
        },
        shell: {
          type: "object",
          additionalProperties: false,
          required: ["command"],
          properties: { command: { type: "string", minLength: 1, maxLength: MAX_HEALTH_TEXT, pattern: CMDLINE_PATTERN } },
        },
      },
    },
    lifecycle: {
      description:
        "Aurora's HttpLifecycleConfig: a graceful kill first POSTs gracefulShutdownEndpoint, then shutdownEndpoint, on the named port, before SIGTERM. http: false turns these steps off. Without lifecycle they run on port health when the task has one.",
      type: "object",
      additionalProperties: false,
      required: ["http"],
      properties: {
        http: {
          anyOf: [
            { type: "boolean", enum: [false] },
            {
              type: "object",
              additionalProperties: false,
              properties: {
                port: { type: "string", pattern: PORT_NAME_PATTERN, maxLength: PORT_NAME_MAX_LENGTH, default: "health" },
                gracefulShutdownEndpoint: {
                  type: "string",
                  pattern: URL_PATH_PATTERN,
                  maxLength: MAX_HEALTH_TEXT,
                  default: "/quitquitquit",
                },
                shutdownEndpoint: { type: "string", pattern: URL_PATH_PATTERN, maxLength: MAX_HEALTH_TEXT, default: "/abortabortabort" },
                gracefulShutdownWaitSecs: { type: "number", minimum: 0, maximum: MAX_HTTP_LIFECYCLE_WAIT_SECS, default: 5 },
                shutdownWaitSecs: { type: "number", minimum: 0, maximum: MAX_HTTP_LIFECYCLE_WAIT_SECS, default: 5 },
              },
            },
          ],
        },
      },
    },
    updateConfig: {
      description:
        "Aurora's UpdateConfig, for `roost update`: batchSize 1, watchSecs 45, maxPerInstanceFailures 0, maxTotalFailures 0, rollbackOnFailure true, waitForBatchCompletion false, pulseIntervalSecs (≥ 60: a coordinated update), and strategy: {queue: {batchSize}} | {batch: {batchSize, autopauseAfterBatch}} | {variableBatch: {batchSizes, autopauseAfterBatch}}. Checked with Aurora's rules.",
      type: "object",
    },
    slaPolicy: {
      description:
        "Aurora's SlaPolicy, for SLA-aware host drains (`roost host maintenance drain`): exactly one of count: {count ≥ 1, durationSecs 0-7200}, percentage: {percentage (0, 100], durationSecs 0-7200} (a task counts once RUNNING longer than durationSecs; one task may always be down), or coordinator: {url (http/https), statusKey (default drain)}, asked over HTTP before each task is drained. Absent: the drain's default (95% over 30 min).",
      type: "object",
    },
    cronSchedule: {
      description:
        "A cron job's schedule: 5 fields (minute hour day-of-month month day-of-week 0-6), Aurora's crontab subset; day of month and day of week never both set. A cron job is never a service.",
      type: "string",
      minLength: 1,
      maxLength: 256,
    },
    cronTimezone: { description: "The schedule's IANA time zone.", type: "string", minLength: 1, maxLength: 64, default: "UTC" },
    cronCollisionPolicy: {
      description: "What a trigger does while the previous run is still active: KILL_EXISTING (kill it, then run) or CANCEL_NEW (skip).",
      type: "string",
      enum: ["KILL_EXISTING", "CANCEL_NEW", "RUN_OVERLAP"],
      default: "KILL_EXISTING",
    },
    finalizationWaitSecs: {
      description: "Seconds between SIGTERM and SIGKILL in a kill; final processes run within it too. Aurora caps it at 60.",
      type: "number",
      minimum: 0,
      maximum: MAX_FINALIZATION_WAIT_SECS,
      default: 30,
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
          maxFailures: {
            description: "Restarted after a failure until it has failed this many times; 0 = without end.",
            type: "integer",
            minimum: 0,
            maximum: MAX_PROCESS_FAILURES,
            default: 1,
          },
          daemon: { description: "Restarted even after it succeeds.", type: "boolean", default: false },
          ephemeral: { description: "The task does not wait for it: it is killed once the others ended.", type: "boolean", default: false },
          minDuration: {
            description: "Seconds: the runs of a restarted process start at least this far apart.",
            type: "number",
            minimum: 0,
            maximum: MAX_SERVICE_SECS,
            default: 5,
          },
          final: {
            description: "Runs at finalization: after a kill, or once the other processes ended.",
            type: "boolean",
            default: false,
          },
        },
      },
    },
  },
} as const;

/**
 * The schema editors get (src/spec/job.schema.json): JOB_SCHEMA, with constraints also allowed as
 * a list (jobSpec.ts lifts such a list into constraints + processConstraints before it checks).
 */
export function jobSchemaText(): string {
  const { default: _, description, ...mapping } = PLACEMENT_CONSTRAINTS;
  const editor = {
    ...JOB_SCHEMA,
    properties: {
      ...JOB_SCHEMA.properties,
      constraints: {
        description,
        anyOf: [
          mapping,
          {
            type: "array",
            items: {
              anyOf: [JOB_SCHEMA.properties.processConstraints.items, { ...mapping, maxProperties: 1, minProperties: 1 }],
            },
          },
        ],
        default: {},
      },
    },
  };
  return `${JSON.stringify(editor, null, 2)}\n`;
}
