// The client API's requests, as schemas (TypeBox, checked by ajv in domain/validate.ts). The
// leader checks every request against its schema before it reads the state or decides anything
// (invariant 6), and a refusal names the field and the rule.
//
// What taught this: a malformed job key or an oversized `user` came back as "internal error: …",
// and a `user` with control characters went into event reasons verbatim.
//
// References to what already exists (a job key in kill/status, a role in quota.get, a task id)
// are looser than the rules for creating something new: a job an older build accepted under a
// name today's rules refuse must stay reachable, to be inspected and killed.

import { type Static, Type } from "../vendor/typebox.js";
import {
  MAX_INSTANCES,
  MAX_QUOTA_CPUS,
  MAX_QUOTA_MB,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  TASK_ID_MAX_LENGTH,
  USER_MAX_LENGTH,
  USER_PATTERN,
} from "../domain/limits.js";
import { RULE } from "../domain/validate.js";
import { UPDATE_STATES } from "../statemachines/update.js";

/** A part of a job key that exists: no "/", no control characters. */
const KEY_PART = "[^/\\u0000-\\u001f\\u007f]{1,64}";
export const JobKeySchema = Type.String({
  pattern: `^${KEY_PART}/${KEY_PART}/${KEY_PART}$`,
  maxLength: 3 * 64 + 2,
  [RULE]: "must be a job key ROLE/ENV/NAME (three parts of 1 to 64 characters, separated by /)",
});
export const UserSchema = Type.String({
  pattern: USER_PATTERN,
  maxLength: USER_MAX_LENGTH,
  [RULE]: `must be 1 to ${USER_MAX_LENGTH} printable ASCII characters, not starting or ending with a space`,
});
const RoleRefSchema = Type.String({
  minLength: 1,
  maxLength: NAME_MAX_LENGTH,
  pattern: "^[^/\\u0000-\\u001f\\u007f]*$",
  [RULE]: `must be a role: 1 to ${NAME_MAX_LENGTH} characters, no "/" or control characters`,
});
const NewRoleSchema = Type.String({
  pattern: NAME_PATTERN,
  maxLength: NAME_MAX_LENGTH,
  [RULE]: `must be a role name: letters, digits, "_", "." and "-", not starting with "." or "-", at most ${NAME_MAX_LENGTH} characters`,
});
const TaskIdRefSchema = Type.String({
  minLength: 1,
  maxLength: TASK_ID_MAX_LENGTH,
  pattern: "^[^\\u0000-\\u001f\\u007f]*$",
  [RULE]: `must be a task id: 1 to ${TASK_ID_MAX_LENGTH} characters, no control characters`,
});
const User = Type.Optional(UserSchema);

/** Instance ids, for an update's or a restart's scope (Aurora's instance ranges, 0-4,7, expanded by the client). */
const InstanceIds = Type.Array(Type.Integer({ minimum: 0, maximum: MAX_INSTANCES * 2 - 1 }), {
  minItems: 1,
  maxItems: MAX_INSTANCES * 2,
  [RULE]: "must be a non-empty list of instance ids (integers ≥ 0)",
});
const UpdateIdSchema = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: "^[^\\u0000-\\u001f\\u007f]*$",
  [RULE]: "must be an update id: 1 to 256 characters, no control characters",
});
/** A note for the update's history (Aurora's --message). */
const Message = Type.Optional(
  Type.String({
    maxLength: 1024,
    pattern: "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f]*$",
    [RULE]: "must be at most 1024 characters, no control characters",
  }),
);
/** pause, resume, abort, rollback: the job's active update (updateId, when given, must be it). */
const UpdateControl = Type.Object(
  { job: JobKeySchema, updateId: Type.Optional(UpdateIdSchema), message: Message, user: User },
  { additionalProperties: false },
);

/** The most events one `events` reply holds. */
export const MAX_EVENTS_PAGE = 1000;
/** The longest an `events` request may wait for a new event (a long poll). */
export const MAX_EVENTS_WAIT_MS = 30_000;
/** How long a follower (roost events --follow, client.events, the gateway's SSE) waits per page. */
export const EVENTS_FOLLOW_WAIT_MS = 20_000;

/** A moment of the log: a sequence (0 = before the first record) or a time (RFC 3339). */
const AtSchema = Type.Union(
  [
    Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$", maxLength: 40 }),
  ],
  { [RULE]: "must be a log sequence (an integer ≥ 0) or a time (RFC 3339, e.g. 2026-12-02T03:12:00Z)" },
);
/** What a history question names: a task id, a job key, an agent id or a host. */
const SubjectIdSchema = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: "^[^\\u0000-\\u001f\\u007f]*$",
  [RULE]: "must be 1 to 256 characters, no control characters",
});
/** A host, as maintenance names it: an agent's host name (one no agent has registered on is allowed). */
const HostNameSchema = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: "^[^\\s\\u0000-\\u001f\\u007f]+$",
  [RULE]: "must be a host name: 1 to 255 characters, no spaces or control characters",
});
const Hosts = Type.Array(HostNameSchema, { minItems: 1, maxItems: 1000, [RULE]: "must be a list of 1 to 1000 host names" });
/** A drain's default SLA and its timeout (Aurora's sla_host_drain --default_percentage, --default_duration, --force_drain_timeout). */
const SlaPercentage = Type.Optional(
  Type.Number({ exclusiveMinimum: 0, maximum: 100, [RULE]: "must be a number > 0 and ≤ 100 (percent of a job's tasks that stay active)" }),
);
const SlaDurationSecs = Type.Optional(
  Type.Integer({ minimum: 0, maximum: 7200, [RULE]: "must be an integer from 0 to 7200 (seconds; Aurora's max_sla_duration_secs)" }),
);
const drainFields = {
  forceDrainTimeoutSecs: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 31_536_000, [RULE]: "must be an integer from 0 to 31536000 (seconds: at most a year)" }),
  ),
  slaAwareKillNonProd: Type.Optional(Type.Boolean()),
  force: Type.Optional(Type.Boolean({ [RULE]: "must be true or false (true: drain now, without an SLA check: Aurora's host_drain)" })),
};
const WindowIdSchema = Type.String({
  pattern: "^[A-Za-z0-9_.:-]{1,128}$",
  [RULE]: 'must be a maintenance window id: 1 to 128 letters, digits or "_.:-"',
});

/** What an SLA report judges by: PCT% of a job's tasks RUNNING for DURATION, for jobs of so many instances. */
const SlaReportAsk = {
  percentage: Type.Number({ minimum: 0, maximum: 100, [RULE]: "must be a number from 0 to 100 (percent of a job's tasks)" }),
  durationSecs: Type.Integer({ minimum: 0, maximum: 31_536_000, [RULE]: "must be an integer from 0 to 31536000 (seconds)" }),
  minJobInstanceCount: Type.Optional(
    Type.Integer({ minimum: 0, maximum: MAX_INSTANCES * 2, [RULE]: "must be an integer ≥ 0 (jobs with fewer live tasks are not checked)" }),
  ),
};
const SlaHostSchema = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: "^[^\\s\\u0000-\\u001f\\u007f]+$",
  [RULE]: "must be a host name: 1 to 255 characters, no spaces or control characters",
});
/** The most events one export page holds. */
export const MAX_EXPORT_PAGE = 5000;

export const REQUEST_SCHEMAS = {
  /** `spec` is checked by the job spec's own schema (spec/schema.ts), with the field paths it names. */
  "job.create": Type.Object({ spec: Type.Unknown(), user: User }, { additionalProperties: false }),
  "job.kill": Type.Object(
    {
      job: JobKeySchema,
      instances: Type.Optional(
        Type.Union([Type.Array(Type.Integer({ minimum: 0, maximum: MAX_INSTANCES * 2 }), { maxItems: MAX_INSTANCES * 2 }), Type.Null()], {
          [RULE]: "must be a list of instance ids (integers ≥ 0), or null for all",
        }),
      ),
      user: User,
    },
    { additionalProperties: false },
  ),
  "job.add": Type.Object(
    { job: JobKeySchema, count: Type.Integer({ minimum: 1, maximum: MAX_INSTANCES }), user: User },
    { additionalProperties: false },
  ),
  "job.restart": Type.Object(
    {
      job: JobKeySchema,
      instances: Type.Optional(InstanceIds),
      batchSize: Type.Optional(
        Type.Integer({ minimum: 1, maximum: MAX_INSTANCES, [RULE]: `must be an integer from 1 to ${MAX_INSTANCES}` }),
      ),
      watchSecs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, [RULE]: "must be an integer from 0 to 86400 (seconds)" })),
      maxPerInstanceFailures: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INSTANCES, [RULE]: "must be an integer ≥ 0" })),
      maxTotalFailures: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INSTANCES, [RULE]: "must be an integer ≥ 0" })),
      user: User,
    },
    { additionalProperties: false },
  ),
  /** `spec` is the job's whole new spec (its updateConfig says how it rolls), checked by the job spec's schema. */
  "update.start": Type.Object(
    { job: JobKeySchema, spec: Type.Unknown(), instances: Type.Optional(InstanceIds), message: Message, user: User },
    { additionalProperties: false },
  ),
  "update.pause": UpdateControl,
  "update.resume": UpdateControl,
  "update.abort": UpdateControl,
  "update.rollback": UpdateControl,
  "update.pulse": Type.Object({ job: JobKeySchema, updateId: UpdateIdSchema, user: User }, { additionalProperties: false }),
  "update.info": Type.Object({ job: JobKeySchema, updateId: Type.Optional(UpdateIdSchema) }, { additionalProperties: false }),
  "update.list": Type.Object(
    {
      job: Type.Optional(JobKeySchema),
      status: Type.Optional(
        Type.Union([Type.Literal("active"), ...UPDATE_STATES.map((s) => Type.Literal(s))], {
          [RULE]: `must be "active" or an update status (${UPDATE_STATES.join(", ")})`,
        }),
      ),
    },
    { additionalProperties: false },
  ),
  "job.status": Type.Object({ job: JobKeySchema }, { additionalProperties: false }),
  "job.list": Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], { [RULE]: "must be an empty mapping" }),
  "quota.get": Type.Object({ role: RoleRefSchema }, { additionalProperties: false }),
  "quota.set": Type.Object(
    {
      role: NewRoleSchema,
      cpus: Type.Number({ minimum: 0, maximum: MAX_QUOTA_CPUS }),
      ramMb: Type.Integer({ minimum: 0, maximum: MAX_QUOTA_MB }),
      diskMb: Type.Integer({ minimum: 0, maximum: MAX_QUOTA_MB }),
      user: User,
    },
    { additionalProperties: false },
  ),
  "task.history": Type.Object({ taskId: TaskIdRefSchema }, { additionalProperties: false }),
  "task.why": Type.Object({ taskId: TaskIdRefSchema }, { additionalProperties: false }),
  "task.status": Type.Object({ taskId: TaskIdRefSchema }, { additionalProperties: false }),
  history: Type.Object(
    {
      kind: Type.Union([Type.Literal("task"), Type.Literal("job"), Type.Literal("agent"), Type.Literal("host")], {
        [RULE]: "must be task, job, agent or host",
      }),
      id: SubjectIdSchema,
      from: Type.Optional(AtSchema),
      to: Type.Optional(AtSchema),
    },
    { additionalProperties: false },
  ),
  replay: Type.Object({ at: Type.Optional(AtSchema) }, { additionalProperties: false }),
  diff: Type.Object({ from: AtSchema, to: Type.Optional(AtSchema) }, { additionalProperties: false }),
  why: Type.Object({ taskId: TaskIdRefSchema, at: Type.Optional(AtSchema) }, { additionalProperties: false }),
  inspect: Type.Object(
    {
      kind: Type.Union([Type.Literal("task"), Type.Literal("agent")], { [RULE]: "must be task or agent" }),
      id: SubjectIdSchema,
      at: Type.Optional(AtSchema),
      graph: Type.Optional(Type.Union([Type.Literal("mermaid"), Type.Literal("dot")], { [RULE]: "must be mermaid or dot" })),
    },
    { additionalProperties: false },
  ),
  export: Type.Object(
    {
      from: Type.Optional(AtSchema),
      to: Type.Optional(AtSchema),
      limit: Type.Optional(
        Type.Integer({ minimum: 1, maximum: MAX_EXPORT_PAGE, [RULE]: `must be an integer from 1 to ${MAX_EXPORT_PAGE}` }),
      ),
    },
    { additionalProperties: false },
  ),
  "host.maintenance.start": Type.Object({ hosts: Hosts, user: User }, { additionalProperties: false }),
  "host.maintenance.drain": Type.Object(
    { hosts: Hosts, percentage: SlaPercentage, durationSecs: SlaDurationSecs, ...drainFields, user: User },
    { additionalProperties: false },
  ),
  "host.maintenance.end": Type.Object({ hosts: Hosts, user: User }, { additionalProperties: false }),
  "host.maintenance.schedule": Type.Object(
    {
      hosts: Hosts,
      start: Type.Union(
        [
          Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
          Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$", maxLength: 40 }),
        ],
        { [RULE]: "must be a time (RFC 3339, e.g. 2026-12-02T03:00:00Z) or epoch milliseconds" },
      ),
      durationSecs: Type.Integer({
        minimum: 1,
        maximum: 2_592_000,
        [RULE]: "must be an integer from 1 to 2592000 (seconds: at most 30 days)",
      }),
      percentage: SlaPercentage,
      slaDurationSecs: SlaDurationSecs,
      ...drainFields,
      user: User,
    },
    { additionalProperties: false },
  ),
  "host.maintenance.cancel": Type.Object({ windowId: WindowIdSchema, user: User }, { additionalProperties: false }),
  /** `hosts`: a list, or (in a URL's query) names separated by commas. */
  "host.maintenance.status": Type.Object(
    {
      hosts: Type.Optional(
        Type.Union(
          [Hosts, Type.String({ pattern: "^[^\\s,\\u0000-\\u001f\\u007f]+(,[^\\s,\\u0000-\\u001f\\u007f]+)*$", maxLength: 65_536 })],
          {
            [RULE]: "must be a list of host names, or host names separated by commas",
          },
        ),
      ),
    },
    { additionalProperties: false },
  ),
  "host.maintenance.windows": Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], {
    [RULE]: "must be an empty mapping",
  }),
  /** `spec` is a cron job's spec (with cronSchedule), checked like job.create's. */
  "cron.schedule": Type.Object({ spec: Type.Unknown(), user: User }, { additionalProperties: false }),
  "cron.deschedule": Type.Object({ job: JobKeySchema, user: User }, { additionalProperties: false }),
  "cron.start": Type.Object({ job: JobKeySchema, user: User }, { additionalProperties: false }),
  "cron.show": Type.Object({ job: JobKeySchema }, { additionalProperties: false }),
  "cron.list": Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], { [RULE]: "must be an empty mapping" }),
  "cluster.info": Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], { [RULE]: "must be an empty mapping" }),
  /** SLA reports (aurora_admin's sla_list_safe_domain): hosts whose tasks may all be killed now. */
  "sla.safe-hosts": Type.Object(
    {
      ...SlaReportAsk,
      grouping: Type.Optional(Type.Union([Type.Literal("by_host"), Type.Literal("by_rack")], { [RULE]: "must be by_host or by_rack" })),
    },
    { additionalProperties: false },
  ),
  /** aurora_admin's sla_probe_hosts: each host's going down, job by job. */
  "sla.probe": Type.Object(
    {
      ...SlaReportAsk,
      hosts: Type.Array(SlaHostSchema, { minItems: 1, maxItems: 1000, [RULE]: "must be a list of 1 to 1000 host names" }),
    },
    { additionalProperties: false },
  ),
  /** A job's uptime percentiles and up counts over the last `minutes` windows. */
  "sla.job": Type.Object(
    {
      job: JobKeySchema,
      minutes: Type.Optional(
        Type.Array(Type.Integer({ minimum: 1, maximum: 10_080 }), {
          minItems: 1,
          maxItems: 10,
          [RULE]: "must be a list of 1 to 10 window lengths in minutes (integers from 1 to 10080)",
        }),
      ),
    },
    { additionalProperties: false },
  ),
  events: Type.Object(
    {
      from: Type.Optional(
        Type.Union(
          [
            Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
            Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$", maxLength: 40 }),
          ],
          { [RULE]: "must be a log sequence (an integer ≥ 1) or a time (RFC 3339, e.g. 2026-12-02T03:12:00Z)" },
        ),
      ),
      limit: Type.Optional(
        Type.Integer({ minimum: 1, maximum: MAX_EVENTS_PAGE, [RULE]: `must be an integer from 1 to ${MAX_EVENTS_PAGE}` }),
      ),
      waitMs: Type.Optional(
        Type.Integer({ minimum: 0, maximum: MAX_EVENTS_WAIT_MS, [RULE]: `must be an integer from 0 to ${MAX_EVENTS_WAIT_MS} (ms)` }),
      ),
      job: Type.Optional(JobKeySchema),
      role: Type.Optional(RoleRefSchema),
      agent: Type.Optional(
        Type.String({ minLength: 1, maxLength: 128, pattern: "^[^\\u0000-\\u001f\\u007f]*$", [RULE]: "must be an agent id" }),
      ),
      type: Type.Optional(
        Type.Array(Type.String({ pattern: "^[A-Za-z]{1,64}$", [RULE]: "must be an event type, e.g. TaskStateChanged" }), {
          maxItems: 32,
          [RULE]: "must be a list of at most 32 event types",
        }),
      ),
    },
    { additionalProperties: false },
  ),
};

export type RequestOp = keyof typeof REQUEST_SCHEMAS;
export type Request<Op extends RequestOp> = Static<(typeof REQUEST_SCHEMAS)[Op]>;
