// Messages between the scheduler and its agents (bus subjects in bus/bus.ts), as schemas: each
// side checks what it receives before acting on it (invariant 6). The leader refuses a
// registration, heartbeat or status update that breaks its schema with an error naming the field
// and the rule, and appends nothing; an agent refuses a launch or kill the same way.
//
// What taught this: a status update with state "BOGUS" was appended as TaskStateChanged and
// bricked the log; a launch naming a process ".." made the agent write that process's output
// outside its sandbox.
//
// Unknown fields are ignored, not refused (an agent and a scheduler of different builds meet
// during a rolling upgrade); only the known fields are read, and only they reach the log.

import { Type, type Static, type TSchema } from "../vendor/typebox.js";
import {
  AGENT_ID_MAX_LENGTH,
  AGENT_ID_PATTERN,
  ATTRIBUTE_VALUE_MAX_LENGTH,
  HOST_MAX_LENGTH,
  HOST_PATTERN,
  MAX_AGENT_CPUS,
  MAX_AGENT_DISK_MB,
  MAX_AGENT_GPUS,
  MAX_AGENT_RAM_MB,
  MAX_ATTRIBUTES,
  MAX_CMDLINE_BYTES,
  MAX_FINALIZATION_WAIT_SECS,
  MAX_HEALTH_COUNT,
  MAX_HEALTH_TEXT,
  MAX_HTTP_LIFECYCLE_WAIT_SECS,
  MAX_PROCESS_FAILURES,
  MAX_SERVICE_SECS,
  MAX_PORT_RANGES,
  MAX_PORTS_PER_TASK,
  MAX_PROCESSES,
  MAX_RUNNING_REPORTED,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  OPAQUE_ID_MAX_LENGTH,
  STATUS_MESSAGE_MAX_LENGTH,
  TASK_ID_MAX_LENGTH,
  TASK_ID_PATTERN,
  URL_PATH_PATTERN,
} from "../domain/limits.js";
import { Dict, OneOf, RULE } from "../domain/validate.js";

const ISOLATION_MODES = ["cgroups-v2", "cgroups-v1", "none"] as const;

const AgentIdSchema = Type.String({
  pattern: AGENT_ID_PATTERN,
  maxLength: AGENT_ID_MAX_LENGTH,
  [RULE]: `must be an agent id: letters, digits, "_", ":" and "-", in dot-separated words, at most ${AGENT_ID_MAX_LENGTH} characters`,
});
const TaskIdSchema = Type.String({
  pattern: TASK_ID_PATTERN,
  maxLength: TASK_ID_MAX_LENGTH,
  [RULE]: `must be a task id: letters, digits, "_", "." and "-", not starting with "." or "-", at most ${TASK_ID_MAX_LENGTH} characters`,
});
const HostSchema = Type.String({
  pattern: HOST_PATTERN,
  maxLength: HOST_MAX_LENGTH,
  [RULE]: `must be a host name: letters, digits, "_", ".", ":" and "-", at most ${HOST_MAX_LENGTH} characters`,
});
const NameSchema = Type.String({
  pattern: NAME_PATTERN,
  maxLength: NAME_MAX_LENGTH,
  [RULE]: `must be a name: letters, digits, "_", "." and "-", not starting with "." or "-", at most ${NAME_MAX_LENGTH} characters`,
});
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
/** Optional, and nil allowed: the codec writes an undefined field as nil. */
const Maybe = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

const AgentResourcesOffer = Type.Object({
  cpus: Type.Number({ exclusiveMinimum: 0, maximum: MAX_AGENT_CPUS }),
  ramMb: Type.Integer({ minimum: 1, maximum: MAX_AGENT_RAM_MB }),
  diskMb: Type.Integer({ minimum: 1, maximum: MAX_AGENT_DISK_MB }),
  gpus: Maybe(Type.Integer({ minimum: 0, maximum: MAX_AGENT_GPUS })),
  ports: Type.Array(Type.Tuple([Port, Port]), {
    maxItems: MAX_PORT_RANGES,
    [RULE]: `must be a list of at most ${MAX_PORT_RANGES} port ranges [lo, hi], 1 ≤ lo ≤ hi ≤ 65535`,
  }),
});

export const RegisterRequestSchema = Type.Object({
  agentId: AgentIdSchema,
  host: HostSchema,
  attributes: Dict(
    Type.String({
      maxLength: ATTRIBUTE_VALUE_MAX_LENGTH,
      pattern: "^[^\\u0000-\\u001f\\u007f]*$",
      [RULE]: `must be printable text of at most ${ATTRIBUTE_VALUE_MAX_LENGTH} characters`,
    }),
    {
      keys: NameSchema,
      maxEntries: MAX_ATTRIBUTES,
    },
  ),
  resources: AgentResourcesOffer,
  bootId: Type.String({ minLength: 1, maxLength: OPAQUE_ID_MAX_LENGTH }),
  /**
   * Tasks the agent is running now, re-attached ones included, and tasks whose final status
   * update it has not delivered yet (for reconciliation: none of these is gone).
   */
  running: Type.Array(Type.String({ minLength: 1, maxLength: TASK_ID_MAX_LENGTH }), { maxItems: MAX_RUNNING_REPORTED }),
  /** How it confines tasks (isolation.ts); absent from agents of earlier builds. */
  isolation: Maybe(
    Type.Object({
      mode: OneOf(ISOLATION_MODES, { rule: `must be one of ${ISOLATION_MODES.join(", ")}` }),
      detail: Type.String({ maxLength: STATUS_MESSAGE_MAX_LENGTH }),
    }),
  ),
});
export type RegisterRequest = Static<typeof RegisterRequestSchema>;

export interface RegisterReply {
  ok: boolean;
  error?: string;
  schedulerId?: string;
  epoch?: number;
}

/** The states an agent reports (the rest are the scheduler's to decide). */
const AGENT_REPORTED_STATES = ["STARTING", "RUNNING", "FINISHED", "FAILED", "KILLED", "LOST"] as const;

export const StatusRequestSchema = Type.Object({
  agentId: AgentIdSchema,
  update: Type.Object({
    taskId: Type.String({ minLength: 1, maxLength: TASK_ID_MAX_LENGTH }),
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    state: OneOf(AGENT_REPORTED_STATES, { rule: `must be a state an agent reports: ${AGENT_REPORTED_STATES.join(", ")}` }),
    exitCode: Maybe(Type.Integer({ minimum: -255, maximum: 255 })),
    message: Maybe(Type.String({ maxLength: STATUS_MESSAGE_MAX_LENGTH })),
    ts: Type.Number(),
  }),
});
export type StatusRequest = Static<typeof StatusRequestSchema>;

export const HeartbeatSchema = Type.Object({ agentId: AgentIdSchema, ts: Type.Number() });
export type Heartbeat = Static<typeof HeartbeatSchema>;

/**
 * roost.leader: a leader announcing itself (agents register again), or asking one agent to
 * (agentId). Who may publish it is the front door's business (permissions); its shape is checked
 * here, so a garbage epoch cannot make an agent ignore every real leader.
 */
export const LeaderAnnouncementSchema = Type.Object({
  schedulerId: Type.String({ minLength: 1, maxLength: OPAQUE_ID_MAX_LENGTH }),
  epoch: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  agentId: Maybe(AgentIdSchema),
});
export type LeaderAnnouncement = Static<typeof LeaderAnnouncementSchema>;

/**
 * The least a launch must be for an agent to take it up: an object with every field of its type,
 * and a task id it can report on (a status update carries at most TASK_ID_MAX_LENGTH characters).
 * A launch that breaks this is refused with the field and the rule ({ok: false}); the leader
 * retries it. One that has this shape but breaks LaunchRequestSchema (a process named "..", a
 * cmdline with a NUL byte or over the limit, an unsafe task id) can never run: the agent
 * acknowledges it and reports it FAILED at once with the problem, so nothing retries in vain and
 * the reason reaches the log.
 */
export const LaunchShapeSchema = Type.Object({
  taskId: Type.String({ minLength: 1, maxLength: TASK_ID_MAX_LENGTH }),
  job: Type.String(),
  instance: Type.Number(),
  processes: Type.Array(Type.Object({ name: Type.String(), cmdline: Type.String() })),
  ports: Dict(Type.Number()),
  resources: Type.Object({ cpus: Type.Number(), ramMb: Type.Number(), diskMb: Type.Number(), gpus: Maybe(Type.Number()) }),
});

const Secs = (opts: { min?: number; max: number; positive?: boolean }) =>
  Type.Number(opts.positive ? { exclusiveMinimum: 0, maximum: opts.max } : { minimum: opts.min ?? 0, maximum: opts.max });
const UrlPath = Type.String({
  pattern: URL_PATH_PATTERN,
  maxLength: MAX_HEALTH_TEXT,
  [RULE]: 'must be a URL path: "/" then no white space',
});

/** Aurora's HealthCheckConfig, as the job spec normalised it (domain/types.ts). */
const HealthCheckRequest = Type.Object({
  initialIntervalSecs: Secs({ max: MAX_SERVICE_SECS }),
  intervalSecs: Secs({ max: MAX_SERVICE_SECS, positive: true }),
  timeoutSecs: Secs({ max: MAX_SERVICE_SECS, positive: true }),
  maxConsecutiveFailures: Type.Integer({ minimum: 0, maximum: MAX_HEALTH_COUNT }),
  minConsecutiveSuccesses: Type.Integer({ minimum: 1, maximum: MAX_HEALTH_COUNT }),
  http: Maybe(
    Type.Object({
      endpoint: UrlPath,
      expectedResponse: Type.String({ maxLength: MAX_HEALTH_TEXT }),
      expectedResponseCode: Type.Integer({ minimum: 0, maximum: 599 }),
    }),
  ),
  shell: Maybe(Type.Object({ command: Type.String({ minLength: 1, maxLength: MAX_HEALTH_TEXT, pattern: "^[^\\u0000]*$" }) })),
});

/** Aurora's HttpLifecycleConfig, or false: no HTTP steps in a kill. */
const LifecycleRequest = Type.Object({
  http: Type.Union([
    Type.Literal(false),
    Type.Object({
      port: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH }),
      gracefulShutdownEndpoint: UrlPath,
      shutdownEndpoint: UrlPath,
      gracefulShutdownWaitSecs: Secs({ max: MAX_HTTP_LIFECYCLE_WAIT_SECS }),
      shutdownWaitSecs: Secs({ max: MAX_HTTP_LIFECYCLE_WAIT_SECS }),
    }),
  ]),
});

/**
 * What a launch must be for its task to run (see LaunchShapeSchema for what else happens). The
 * fields after `resources` came with health checks and Thermos processes; a scheduler of an
 * earlier build sends none of them, and the agent then runs the task as it did (every process
 * once, RUNNING once started, the agent's grace between SIGTERM and SIGKILL).
 */
export const LaunchRequestSchema = Type.Object({
  taskId: TaskIdSchema,
  job: Type.String({ minLength: 1, maxLength: 3 * NAME_MAX_LENGTH + 2 }),
  instance: Type.Integer({ minimum: 0 }),
  processes: Type.Array(
    Type.Object({
      name: NameSchema,
      cmdline: Type.String({
        minLength: 1,
        pattern: "^[^\\u0000]*$",
        maxLength: MAX_CMDLINE_BYTES,
        [RULE]: `must be a command line without NUL bytes, of at most ${MAX_CMDLINE_BYTES} characters`,
      }),
      maxFailures: Maybe(Type.Integer({ minimum: 0, maximum: MAX_PROCESS_FAILURES })),
      daemon: Maybe(Type.Boolean()),
      ephemeral: Maybe(Type.Boolean()),
      minDuration: Maybe(Secs({ max: MAX_SERVICE_SECS })),
      final: Maybe(Type.Boolean()),
    }),
    { minItems: 1, maxItems: MAX_PROCESSES },
  ),
  processConstraints: Maybe(
    Type.Array(Type.Object({ order: Type.Array(NameSchema, { minItems: 1, maxItems: MAX_PROCESSES }) }), { maxItems: MAX_PROCESSES }),
  ),
  healthCheck: Maybe(HealthCheckRequest),
  lifecycle: Maybe(LifecycleRequest),
  finalizationWaitSecs: Maybe(Secs({ max: MAX_FINALIZATION_WAIT_SECS })),
  ports: Dict(Port, { maxEntries: MAX_PORTS_PER_TASK }),
  resources: Type.Object({
    cpus: Type.Number({ minimum: 0 }),
    ramMb: Type.Number({ minimum: 0 }),
    diskMb: Type.Number({ minimum: 0 }),
    gpus: Maybe(Type.Number({ minimum: 0 })),
  }),
});
export type LaunchRequest = Static<typeof LaunchRequestSchema>;

export const KillRequestSchema = Type.Object({
  taskId: Type.String({ minLength: 1, maxLength: TASK_ID_MAX_LENGTH }),
  graceMs: Maybe(Type.Integer({ minimum: 0, maximum: 10 * 60_000 })),
});
export type KillRequest = Static<typeof KillRequestSchema>;

/** roost.agent.<id>.inspect: what a task's processes are doing (roost task status). */
export const InspectRequestSchema = Type.Object({ taskId: Type.String({ minLength: 1, maxLength: TASK_ID_MAX_LENGTH }) });

export type InspectReply =
  | { ok: false; error: string }
  | {
      ok: true;
      agentId: string;
      taskId: string;
      phase: string;
      killStep: string | null;
      processes: Array<{
        name: string;
        state: string;
        runs: number;
        failures: number;
        exitCode: number | null;
        pid: number | null;
        final: boolean;
      }>;
      health: {
        running: boolean;
        consecutiveSuccesses: number;
        consecutiveFailures: number;
        attempts: number;
        lastReason: string | null;
        snoozed: boolean;
      } | null;
      isolation: string;
      memoryBytes: number | null;
    };

export interface Ack {
  ok: boolean;
  error?: string;
}
