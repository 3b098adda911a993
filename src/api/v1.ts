// API v1: the catalog of operations. One entry per op says who may call it (its scope, which is
// also its subject), whether it writes, its request and reply schemas, and its HTTP route. The
// NATS server (actors/api.ts), the HTTP gateway, the typed client, the shipped JSON Schemas
// (schemas/api/v1/), the OpenAPI document and the README's API table are all read from here, so
// they cannot disagree.
//
// Subjects:
//   roost.api.v1.<role>.<op>      a role's operations; the role is the subject's 4th token
//   roost.api.v1.admin.<op>       operations that need the admin identity (quota.set, …)
//   roost.api.v1.cluster.<op>     cluster-wide reads
// Subject permissions (ops/, `roost dev --secure`) are written against these, so a role's
// identity can publish only under its own role. "admin" and "cluster" are therefore not roles.
//
// What taught this: the old roost.api.<op> subjects carried no role, so no server permission
// could tell role A's kill from role B's, and nothing in the request said which version of the
// contract the client spoke.

import { type TSchema, Type } from "../vendor/typebox.js";
import { checker, type Problem, RULE } from "../domain/validate.js";
import * as R from "./replies.js";
import { REQUEST_SCHEMAS } from "./requests.js";

export const API_V1_PREFIX = "roost.api.v1.";

type Scope = "role" | "admin" | "cluster";

/**
 * A role, as the 4th token of a subject: one NATS token, so no ".", and safe as a user name.
 * Stricter than NAME_PATTERN (which allows "."), for roles only.
 */
const ROLE_TOKEN_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$";
export const ROLE_TOKEN = new RegExp(ROLE_TOKEN_PATTERN);

/**
 * An idempotency key, chosen by the client: `key` on a write, `Nats-Msg-Id: <role>/<key>` on the
 * intake. Printable, no "/" (the role's separator) and no spaces.
 */
const REQUEST_KEY_PATTERN = "^[A-Za-z0-9_.:=+-]{1,128}$";
export const REQUEST_KEY = new RegExp(REQUEST_KEY_PATTERN);
const RequestKeySchema = Type.String({
  pattern: REQUEST_KEY_PATTERN,
  [RULE]: 'must be a request key: 1 to 128 letters, digits or "_.:=+-"',
});

interface HttpRoute {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Fastify syntax. `:role/:env/:name` make the request's `job`; `:id` its `taskId`; others are fields of the same name. */
  path: string;
  /** The status of a success (200 unless said). */
  status?: number;
  /** GET: the query string's parameters are the request's fields (numbers where a field takes one). */
  query?: boolean;
}

export interface OpDef {
  op: string;
  scope: Scope;
  /**
   * Writes are committed to the log. They take an idempotency `key`: the same key returns the
   * first outcome and changes nothing (for at least REQUEST_KEY_RETENTION_MS).
   */
  write: boolean;
  summary: string;
  request: TSchema;
  reply: TSchema;
  http: HttpRoute;
}

/** A write's request: its own fields, plus an optional idempotency key. */
function keyed<S extends TSchema>(schema: S): S {
  const o = schema as unknown as { properties: Record<string, TSchema>; required?: string[] };
  return Type.Object({ ...o.properties, key: Type.Optional(RequestKeySchema) }, { additionalProperties: false }) as unknown as S;
}

const Q = REQUEST_SCHEMAS;
const Empty = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], { [RULE]: "must be an empty mapping" });

export const OPS = [
  {
    op: "job.create",
    scope: "role",
    write: true,
    summary: "Create a job from its spec; its instances become PENDING tasks",
    request: keyed(Q["job.create"]),
    reply: R.JobCreateReply,
    http: { method: "POST", path: "/v1/jobs", status: 201 },
  },
  {
    op: "job.kill",
    scope: "role",
    write: true,
    summary: "Kill a job's instances (all when `instances` is null or absent)",
    request: keyed(Q["job.kill"]),
    reply: R.JobKillReply,
    http: { method: "DELETE", path: "/v1/jobs/:role/:env/:name" },
  },
  {
    op: "job.add",
    scope: "role",
    write: true,
    summary: "Add `count` instances to a running job, with its current config",
    request: keyed(Q["job.add"]),
    reply: R.JobAddReply,
    http: { method: "POST", path: "/v1/jobs/:role/:env/:name/instances", status: 201 },
  },
  {
    op: "job.restart",
    scope: "role",
    write: true,
    summary: "Restart instances in batches through RESTARTING, each watched like an update's (a restart update)",
    request: keyed(Q["job.restart"]),
    reply: R.UpdateWriteReply,
    http: { method: "POST", path: "/v1/jobs/:role/:env/:name/restarts", status: 201 },
  },
  {
    op: "update.start",
    scope: "role",
    write: true,
    summary: "Start a rolling update of a job to a new spec (its updateConfig says how); one active update per job",
    request: keyed(Q["update.start"]),
    reply: R.UpdateWriteReply,
    http: { method: "POST", path: "/v1/jobs/:role/:env/:name/updates", status: 201 },
  },
  ...(["pause", "resume", "abort", "rollback"] as const).map(
    (verb) =>
      ({
        op: `update.${verb}`,
        scope: "role",
        write: true,
        summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} the job's active update`,
        request: keyed(Q[`update.${verb}`]),
        reply: R.UpdateWriteReply,
        http: { method: "POST", path: `/v1/jobs/:role/:env/:name/update/${verb}` },
      }) as const,
  ),
  {
    op: "update.pulse",
    scope: "role",
    write: true,
    summary: "Pulse a coordinated update (updateConfig.pulseIntervalSecs): it rolls only while pulsed",
    request: keyed(Q["update.pulse"]),
    reply: R.UpdateWriteReply,
    http: { method: "POST", path: "/v1/jobs/:role/:env/:name/update/pulse" },
  },
  {
    op: "update.info",
    scope: "role",
    write: false,
    summary: "An update (the active one, or the newest, or updateId): status history and every instance action with its reason",
    request: Q["update.info"],
    reply: R.UpdateInfoReply,
    http: { method: "GET", path: "/v1/jobs/:role/:env/:name/update", query: true },
  },
  {
    op: "update.list",
    scope: "role",
    write: false,
    summary: "The role's updates, newest first (status: active, or one status; job: one job)",
    request: Q["update.list"],
    reply: R.UpdateListReply,
    http: { method: "GET", path: "/v1/roles/:role/updates", query: true },
  },
  {
    op: "job.status",
    scope: "role",
    write: false,
    summary: "A job's instances: state, host, ports and the latest reason",
    request: Q["job.status"],
    reply: R.JobStatusReply,
    http: { method: "GET", path: "/v1/jobs/:role/:env/:name" },
  },
  {
    op: "job.list",
    scope: "role",
    write: false,
    summary: "The role's jobs, counted by task state",
    request: Empty,
    reply: R.JobListReply,
    http: { method: "GET", path: "/v1/roles/:role/jobs" },
  },
  {
    op: "task.history",
    scope: "role",
    write: false,
    summary: "A task's state changes, each with the reason from the log",
    request: Q["task.history"],
    reply: R.TaskHistoryReply,
    http: { method: "GET", path: "/v1/roles/:role/tasks/:id/history" },
  },
  {
    op: "task.why",
    scope: "role",
    write: false,
    summary: "Why a task waits (the vetoes per host), or why it was placed where it is",
    request: Q["task.why"],
    reply: R.TaskWhyReply,
    http: { method: "GET", path: "/v1/roles/:role/tasks/:id/why" },
  },
  {
    op: "task.status",
    scope: "role",
    write: false,
    summary: "A task and each of its processes (state, runs, exit code, pid) and health checks, asked of its agent",
    request: Q["task.status"],
    reply: R.TaskStatusReply,
    http: { method: "GET", path: "/v1/roles/:role/tasks/:id/status" },
  },
  {
    op: "quota.get",
    scope: "role",
    write: false,
    summary: "The role's production quota, usage and headroom",
    request: Q["quota.get"],
    reply: R.QuotaReply,
    http: { method: "GET", path: "/v1/quota/:role" },
  },
  {
    op: "request.get",
    scope: "role",
    write: false,
    summary: "A keyed request's outcome: pending, done (with its value) or rejected (with its error)",
    request: Type.Object({ key: RequestKeySchema }, { additionalProperties: false }),
    reply: R.RequestOutcomeReply,
    http: { method: "GET", path: "/v1/roles/:role/requests/:key" },
  },
  {
    op: "cron.schedule",
    scope: "role",
    write: true,
    summary: "Schedule a cron job from its spec (with cronSchedule), or replace its template; nothing runs until a trigger",
    request: keyed(Q["cron.schedule"]),
    reply: R.CronScheduleReply,
    http: { method: "POST", path: "/v1/cron", status: 201 },
  },
  {
    op: "cron.deschedule",
    scope: "role",
    write: true,
    summary: "Deschedule a cron job: no more triggers (a run under way goes on)",
    request: keyed(Q["cron.deschedule"]),
    reply: R.CronDescheduleReply,
    http: { method: "DELETE", path: "/v1/cron/:role/:env/:name" },
  },
  {
    op: "cron.start",
    scope: "role",
    write: true,
    summary: "Run a cron job now, under its collision policy",
    request: keyed(Q["cron.start"]),
    reply: R.CronStartReply,
    http: { method: "POST", path: "/v1/cron/:role/:env/:name/runs", status: 201 },
  },
  {
    op: "cron.show",
    scope: "role",
    write: false,
    summary: "A cron job: schedule, time zone, policy, next fire times, its newest trigger with its outcome and reason",
    request: Q["cron.show"],
    reply: R.CronShowReply,
    http: { method: "GET", path: "/v1/cron/:role/:env/:name" },
  },
  {
    op: "cron.list",
    scope: "role",
    write: false,
    summary: "The role's cron jobs, each with its next fire time and newest trigger",
    request: Empty,
    reply: R.CronListReply,
    http: { method: "GET", path: "/v1/roles/:role/cron" },
  },
  {
    op: "quota.set",
    scope: "admin",
    write: true,
    summary: "Set a role's production quota (never below what it uses)",
    request: keyed(Q["quota.set"]),
    reply: R.QuotaReply,
    http: { method: "PUT", path: "/v1/quota/:role" },
  },
  // Host maintenance (Aurora's aurora_admin host_* commands, Mesos's maintenance windows): admin writes.
  {
    op: "host.maintenance.start",
    scope: "admin",
    write: true,
    summary: "Put hosts in maintenance (SCHEDULED): new tasks go elsewhere when another host fits; hosts already SCHEDULED are skipped",
    request: keyed(Q["host.maintenance.start"]),
    reply: R.HostMaintenanceWriteReply,
    http: { method: "POST", path: "/v1/hosts/maintenance/start" },
  },
  {
    op: "host.maintenance.drain",
    scope: "admin",
    write: true,
    summary:
      "Drain hosts (DRAINING): their tasks move elsewhere while each job's SLA holds (default 95% over 30 min), forced after forceDrainTimeoutSecs (7 days) or at once with force; DRAINED when empty",
    request: keyed(Q["host.maintenance.drain"]),
    reply: R.HostMaintenanceWriteReply,
    http: { method: "POST", path: "/v1/hosts/maintenance/drain" },
  },
  {
    op: "host.maintenance.end",
    scope: "admin",
    write: true,
    summary: "End hosts' maintenance (NONE): back in service; hosts not in maintenance are skipped",
    request: keyed(Q["host.maintenance.end"]),
    reply: R.HostMaintenanceWriteReply,
    http: { method: "POST", path: "/v1/hosts/maintenance/end" },
  },
  {
    op: "host.maintenance.schedule",
    scope: "admin",
    write: true,
    summary:
      "Schedule a maintenance window: its hosts are SCHEDULED until `start`, drain from then (SLA-aware), and return to service after durationSecs",
    request: keyed(Q["host.maintenance.schedule"]),
    reply: R.HostMaintenanceWriteReply,
    http: { method: "POST", path: "/v1/hosts/maintenance/windows", status: 201 },
  },
  {
    op: "host.maintenance.cancel",
    scope: "admin",
    write: true,
    summary: "Cancel a maintenance window: the hosts it still holds return to service",
    request: keyed(Q["host.maintenance.cancel"]),
    reply: R.HostMaintenanceWriteReply,
    http: { method: "DELETE", path: "/v1/hosts/maintenance/windows/:windowId" },
  },
  {
    op: "host.maintenance.status",
    scope: "cluster",
    write: false,
    summary:
      "Hosts' maintenance: mode, active tasks, since when and why, the drain request and the tasks it waits for (every known host, or `hosts`)",
    request: Q["host.maintenance.status"],
    reply: R.HostMaintenanceStatusReply,
    http: { method: "GET", path: "/v1/hosts/maintenance", query: true },
  },
  {
    op: "host.maintenance.windows",
    scope: "cluster",
    write: false,
    summary: "Maintenance windows: hosts, start, end, and whether scheduled, open, ended or cancelled",
    request: Empty,
    reply: R.HostMaintenanceWindowsReply,
    http: { method: "GET", path: "/v1/hosts/maintenance/windows" },
  },
  {
    op: "events",
    scope: "role",
    write: false,
    summary: "The role's events from a log sequence or a time, filtered; waits up to waitMs for the next one",
    request: Q.events,
    reply: R.EventsReply,
    http: { method: "GET", path: "/v1/roles/:role/events" },
  },
  {
    op: "request.get",
    scope: "admin",
    write: false,
    summary: "The outcome of a keyed admin request (quota.set)",
    request: Type.Object({ key: RequestKeySchema }, { additionalProperties: false }),
    reply: R.RequestOutcomeReply,
    http: { method: "GET", path: "/v1/admin/requests/:key" },
  },
  {
    op: "info",
    scope: "cluster",
    write: false,
    summary: "The leader, its agents, its anomalies and its actors",
    request: Empty,
    reply: R.ClusterInfoReply,
    http: { method: "GET", path: "/v1/cluster" },
  },
  {
    op: "job.list",
    scope: "cluster",
    write: false,
    summary: "Every role's jobs, counted by task state",
    request: Empty,
    reply: R.JobListReply,
    http: { method: "GET", path: "/v1/jobs" },
  },
  {
    op: "task.history",
    scope: "cluster",
    write: false,
    summary: "Any task's state changes, each with the reason from the log",
    request: Q["task.history"],
    reply: R.TaskHistoryReply,
    http: { method: "GET", path: "/v1/tasks/:id/history" },
  },
  {
    op: "task.why",
    scope: "cluster",
    write: false,
    summary: "Why any task waits, or why it was placed where it is",
    request: Q["task.why"],
    reply: R.TaskWhyReply,
    http: { method: "GET", path: "/v1/tasks/:id/why" },
  },
  {
    op: "task.status",
    scope: "cluster",
    write: false,
    summary: "Any task and each of its processes and health checks, asked of its agent",
    request: Q["task.status"],
    reply: R.TaskStatusReply,
    http: { method: "GET", path: "/v1/tasks/:id/status" },
  },
  {
    op: "events",
    scope: "cluster",
    write: false,
    summary: "Every event from a log sequence or a time, filtered; waits up to waitMs for the next one",
    request: Q.events,
    reply: R.EventsReply,
    http: { method: "GET", path: "/v1/events" },
  },
  {
    op: "update.list",
    scope: "cluster",
    write: false,
    summary: "Every role's updates, newest first (status: active, or one status; job: one job)",
    request: Q["update.list"],
    reply: R.UpdateListReply,
    http: { method: "GET", path: "/v1/updates", query: true },
  },
  {
    op: "hash",
    scope: "cluster",
    write: false,
    summary: "The leader's state hash at its sequence, and a hash per part (roost verify compares a fold with it)",
    request: Empty,
    reply: R.HashReply,
    http: { method: "GET", path: "/v1/cluster/hash" },
  },
  {
    op: "cron.list",
    scope: "cluster",
    write: false,
    summary: "Every role's cron jobs, each with its next fire time and newest trigger",
    request: Empty,
    reply: R.CronListReply,
    http: { method: "GET", path: "/v1/cron" },
  },
  // SLA reports (aurora_admin's sla_*): pure reads of the fold at the leader's clock.
  {
    op: "sla.safe-hosts",
    scope: "cluster",
    write: false,
    summary: "Hosts whose tasks can all be killed now without breaking any job's SLA (by_rack: all or nothing per rack)",
    request: Q["sla.safe-hosts"],
    reply: R.SlaSafeHostsReply,
    http: { method: "GET", path: "/v1/sla/safe-hosts", query: true },
  },
  {
    op: "sla.probe",
    scope: "cluster",
    write: false,
    summary: "For each host and each job with tasks on it: the job's predicted SLA with the host down, safe or not, and when it would be",
    request: Q["sla.probe"],
    reply: R.SlaProbeReply,
    http: { method: "GET", path: "/v1/sla/probe", query: true },
  },
  {
    op: "sla.job",
    scope: "cluster",
    write: false,
    summary: "A job's uptime percentiles, and its instances up now and throughout the last minutes",
    request: Q["sla.job"],
    reply: R.SlaJobReply,
    http: { method: "GET", path: "/v1/sla/jobs/:role/:env/:name", query: true },
  },
  // The SRE's reads: answered by every replica (a standby too) from its own fold, at any moment.
  {
    op: "history",
    scope: "cluster",
    write: false,
    summary: "Every event that touched a task, job, agent or host (kind, id), from and to a sequence or time",
    request: Q.history,
    reply: R.HistoryReply,
    http: { method: "GET", path: "/v1/cluster/history", query: true },
  },
  {
    op: "replay",
    scope: "cluster",
    write: false,
    summary: "The cluster as it was at a sequence or time: jobs, tasks, agents, pending tasks with reasons, quotas, leader",
    request: Q.replay,
    reply: R.ReplayReply,
    http: { method: "GET", path: "/v1/cluster/replay", query: true },
  },
  {
    op: "diff",
    scope: "cluster",
    write: false,
    summary: "What changed between two moments (to: the end of the log by default)",
    request: Q.diff,
    reply: R.DiffReply,
    http: { method: "GET", path: "/v1/cluster/diff", query: true },
  },
  {
    op: "why",
    scope: "cluster",
    write: false,
    summary: "Why a task was where it was at a moment, with the events that led there",
    request: Q.why,
    reply: R.WhyAtReply,
    http: { method: "GET", path: "/v1/cluster/why", query: true },
  },
  {
    op: "inspect",
    scope: "cluster",
    write: false,
    summary: "A task's or an agent's state machine at a moment: state, the events it accepts, its transitions, its graph",
    request: Q.inspect,
    reply: R.InspectReply,
    http: { method: "GET", path: "/v1/cluster/inspect", query: true },
  },
  {
    op: "verify",
    scope: "cluster",
    write: false,
    summary: "Fold the log from genesis; compare with the newest snapshot and the live leader's state",
    request: Empty,
    reply: R.VerifyReply,
    http: { method: "GET", path: "/v1/cluster/verify", query: true },
  },
  {
    op: "export",
    scope: "cluster",
    write: false,
    summary: "A page of decoded events from and to a sequence or time; ask again from next",
    request: Q.export,
    reply: R.ExportReply,
    http: { method: "GET", path: "/v1/cluster/export", query: true },
  },
] as const satisfies readonly OpDef[];

/** The ops every replica answers from its own fold (history/serve.ts); the leader's API leaves them alone. */
export const HISTORY_OPS: ReadonlySet<string> = new Set(["history", "replay", "diff", "why", "inspect", "verify", "export"]);

type V1Op = (typeof OPS)[number];
type RoleOp = Extract<V1Op, { scope: "role" }>["op"];
type AdminOp = Extract<V1Op, { scope: "admin" }>["op"];
type ClusterOp = Extract<V1Op, { scope: "cluster" }>["op"];

const BY_SCOPE: Record<Scope, Map<string, OpDef>> = { role: new Map(), admin: new Map(), cluster: new Map() };
for (const d of OPS as readonly OpDef[]) BY_SCOPE[d.scope].set(d.op, d);

/** The subject of an op: a role's, the admin's or the cluster's. */
function roleSubject(role: string, op: RoleOp): string {
  return `${API_V1_PREFIX}${role}.${op}`;
}
function adminSubject(op: AdminOp): string {
  return `${API_V1_PREFIX}admin.${op}`;
}
function clusterSubject(op: ClusterOp): string {
  return `${API_V1_PREFIX}cluster.${op}`;
}

/** What a subject asks for: the op's definition, and the role for a role's op. */
export type Addressed = { def: OpDef; role: string | null };

const REQUEST_CHECKS = new WeakMap<OpDef, (v: unknown) => Problem[]>();
/**
 * What is wrong with `req` as `def`'s request body, by the op's own schema: every problem, each
 * naming its field and rule. The scheduler checks every request with it before deciding anything
 * (actors/api.ts), and the client before sending one (client/transport.ts), so a bad request is
 * refused the same way with a leader up or none. Compiled on first use, once per op.
 */
export function requestProblems(def: OpDef, req: unknown): Problem[] {
  let c = REQUEST_CHECKS.get(def);
  if (!c) REQUEST_CHECKS.set(def, (c = checker(def.request)));
  return c(req);
}

/** Reads a subject under roost.api.v1.; a string says what is wrong with it. */
export function parseSubject(subject: string): Addressed | string {
  if (!subject.startsWith(API_V1_PREFIX)) return `subject ${subject} is not under ${API_V1_PREFIX}`;
  const rest = subject.slice(API_V1_PREFIX.length);
  const dot = rest.indexOf(".");
  if (dot <= 0) return `subject ${subject} names no operation; expected ${API_V1_PREFIX}<role|admin|cluster>.<op>`;
  const who = rest.slice(0, dot);
  const op = rest.slice(dot + 1);
  const scope: Scope = who === "admin" ? "admin" : who === "cluster" ? "cluster" : "role";
  const def = BY_SCOPE[scope].get(op);
  if (!def) {
    const known = [...BY_SCOPE[scope].keys()].join(", ");
    return `unknown operation "${op}" for ${scope === "role" ? "a role" : `the ${scope} scope`}; known: ${known}`;
  }
  if (scope === "role" && !ROLE_TOKEN.test(who)) {
    return `the role in the subject, "${who}", must be 1 to 64 letters, digits, "_" or "-"`;
  }
  return { def, role: scope === "role" ? who : null };
}

/**
 * The subject of a request, by the op's short name and the request: a role's op is sent on the
 * role its request names (the job key's first part, the spec's role, the quota's role), or on
 * `role`. "cluster.info", and job.list and the task reads without a role, are cluster ops (a task
 * id does not say its role unambiguously: roles may hold "-"); "quota.set" is an admin op.
 * Returns null when the request names no role it could be sent on.
 */
export function addressFor(op: string, req: unknown, role?: string): string | null {
  const r = (req ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  switch (op) {
    case "cluster.info":
      return clusterSubject("info");
    case "cluster.hash":
      return clusterSubject("hash");
    case "sla.safe-hosts":
    case "sla.probe":
    case "sla.job":
      return clusterSubject(op);
    case "quota.set":
      return adminSubject("quota.set");
    case "host.maintenance.start":
    case "host.maintenance.drain":
    case "host.maintenance.end":
    case "host.maintenance.schedule":
    case "host.maintenance.cancel":
      return adminSubject(op);
    case "host.maintenance.status":
    case "host.maintenance.windows":
      return clusterSubject(op);
    case "job.list":
    case "task.history":
    case "task.why":
    case "task.status":
    case "events":
    case "cron.list":
      if (role === undefined) return clusterSubject(op);
      break;
    case "update.list":
      if (role === undefined && typeof r.job !== "string") return clusterSubject(op);
  }
  if (!BY_SCOPE.role.has(op)) return null;
  let who = role;
  if (who === undefined) {
    const job = str(r.job);
    const spec = r.spec as Record<string, unknown> | null | undefined;
    if (job !== undefined) who = job.split("/")[0];
    else if (op === "job.create" || op === "cron.schedule") who = str(spec?.role);
    else if (op === "quota.get") who = str(r.role);
  }
  if (who === undefined || who === "" || !ROLE_TOKEN.test(who)) return null;
  return roleSubject(who, op as RoleOp);
}
