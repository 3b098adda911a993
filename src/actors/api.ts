// The client API on the bus, v1 (the catalog: api/v1.ts). One subscription on roost.api.v1.> reads
// the subject (which op, and for a role's op, which role), checks the body against the op's
// schema, checks that the request acts only on the subject's role, and hands it to the actor that
// owns the op: writes to JobIntake (one at a time: a check and its commit finish before the next
// check), reads to Reads. Every refusal is {ok: false, error: {code, message, field?}} and changes
// nothing; the message names the field and the rule.
//
// The role check is defence in depth: subject permissions (ops/, `roost dev --secure`) already
// keep role A's identity off role B's subjects, and this keeps a request on role A's subject from
// acting on role B's job. What taught it: with the old roost.api.<op> subjects any client could
// kill any job, and no server permission could say otherwise.

import { ApiError, type ErrorCode, invalidRequest } from "../api/errors.js";
import { REQUEST_SCHEMAS, type RequestOp } from "../api/requests.js";
import { API_V1_PREFIX, HISTORY_OPS, type OPS, type OpDef, parseSubject, requestProblems } from "../api/v1.js";
import type { Bus, RequestMeta } from "../bus/bus.js";
import { checker, type Problem } from "../domain/validate.js";
import { RecordTooLargeError } from "../eventlog/appender.js";
import { FencedError, LogUnavailableError } from "../eventlog/log.js";
import { SpecError } from "../spec/jobSpec.js";
import type { Logger } from "../util/logger.js";

/**
 * A caller's mistake, answered as {ok: false, error: {code, …}}: INVALID_REQUEST unless the thrower
 * says which code (NOT_FOUND, CONFLICT, QUOTA_EXCEEDED, PERMISSION_DENIED).
 */
export class RequestError extends ApiError {
  override name = "RequestError";
  constructor(message: string, code: ErrorCode = "INVALID_REQUEST", field?: string) {
    super(code, message, field);
  }
}

/** The largest request body the API decodes (NATS's default max_payload): bigger is TOO_LARGE. */
const MAX_REQUEST_BYTES = 1024 * 1024 - 1;

const CHECKS = Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([op, schema]) => [op, checker(schema)])) as Record<
  RequestOp,
  (v: unknown) => Problem[]
>;

/** Throws a RequestError naming every field that breaks the op's request schema. */
export function checked(op: RequestOp, req: unknown): void {
  const problems = CHECKS[op](req);
  if (problems.length > 0) throw invalid(op, problems);
}

function invalid(op: string, problems: readonly Problem[]): RequestError {
  const e = invalidRequest(op, problems);
  return new RequestError(e.message, "INVALID_REQUEST", e.field);
}

const READ_OPS = [
  "job.status",
  "job.list",
  "quota.get",
  "task.history",
  "task.why",
  "task.status",
  "update.info",
  "update.list",
  "cron.show",
  "cron.list",
  "cluster.info",
  "cluster.hash",
  "request.get",
  "events",
  "sla.safe-hosts",
  "sla.probe",
  "sla.job",
  "host.maintenance.status",
  "host.maintenance.windows",
] as const;
/** The writes: the catalog's own (api/v1.ts OPS, `write: true`), so a new write cannot be left out here. */
export type WriteOp = Extract<(typeof OPS)[number], { write: true }>["op"];
/** The reads; "events" is answered by the event feed (eventFeed.ts), the others by the Reads actor. */
type ReadOp = (typeof READ_OPS)[number];

/** Whose request it is: the role of its subject (null for the admin and cluster scopes). */
export interface Caller {
  role: string | null;
}

/** Who answers the API: the actor for each kind of op. */
export interface ApiHandlers {
  /** `key`: the write's idempotency key (taken out of `req`), or null. */
  write(op: WriteOp, req: unknown, caller: Caller, key: string | null): Promise<unknown>;
  read(op: ReadOp, req: unknown, caller: Caller): Promise<unknown>;
}

export type ReadsOp = Exclude<ReadOp, "events">;

/** The op the actors know a v1 op by: the cluster's info is "cluster.info"; job.list is job.list in both scopes. */
function internalOp(def: OpDef): WriteOp | ReadOp {
  return (def.scope === "cluster" && (def.op === "info" || def.op === "hash") ? `cluster.${def.op}` : def.op) as WriteOp | ReadOp;
}

/**
 * Serve roost.api.v1.>: address, check, authorize, route, and turn what went wrong into a reply.
 * `count` is told each answer: the op (a closed set: "unknown" when the subject names none) and
 * "ok" or the error code, for metrics.
 */
export function serveApi(bus: Bus, h: ApiHandlers, log: Logger, count?: (op: string, result: string) => void): () => void {
  return bus.serve(
    `${API_V1_PREFIX}>`,
    async (data, subject, meta) => {
      const addressed = parseSubject(subject);
      const op = typeof addressed === "string" ? "unknown" : internalOp(addressed.def);
      try {
        const value = await handle(h, data, addressed, meta);
        count?.(op, "ok");
        return { ok: true, value };
      } catch (err) {
        const error = errorBody(err as Error, subject, log);
        count?.(op, error.code);
        return { ok: false, error };
      }
    },
    // The SRE's reads are every replica's (history/serve.ts): the leader's API does not answer them.
    { maxBytes: MAX_REQUEST_BYTES, ignore: (subject) => isHistorySubject(subject) },
  );
}

function isHistorySubject(subject: string): boolean {
  const a = parseSubject(subject);
  return typeof a !== "string" && a.def.scope === "cluster" && HISTORY_OPS.has(a.def.op);
}

async function handle(h: ApiHandlers, data: unknown, addressed: ReturnType<typeof parseSubject>, meta: RequestMeta): Promise<unknown> {
  if (meta.tooLarge) {
    throw new ApiError("TOO_LARGE", `the request is ${meta.bytes} bytes; rule: at most ${MAX_REQUEST_BYTES} bytes`);
  }
  if (meta.decodeError !== undefined) throw new ApiError("INVALID_REQUEST", meta.decodeError);
  if (typeof addressed === "string") throw new ApiError("INVALID_REQUEST", addressed);
  const { def, role } = addressed;
  const req = data ?? {};
  const problems = requestProblems(def, req);
  if (problems.length > 0) throw invalid(def.op, problems);
  if (role !== null) ownRole(def.op, req as Record<string, unknown>, role);
  const op = internalOp(def);
  const caller: Caller = { role };
  if (!def.write) return h.read(op as ReadOp, req, caller);
  const { key, ...rest } = req as { key?: string };
  return h.write(op as WriteOp, rest, caller, key ?? null);
}

/**
 * A role's request may name only its own role: its job keys, its quota. A spec's role is checked by
 * JobIntake once the spec is valid (a bad role gets the spec's own error), a task's by Reads.
 */
export function ownRole(op: string, req: Record<string, unknown>, role: string): void {
  const deny = (field: string, theirs: string) => {
    throw new ApiError(
      "PERMISSION_DENIED",
      `${field}: names role "${theirs}"; rule: a request on role "${role}"'s subject acts only on role "${role}"`,
      field,
    );
  };
  if (typeof req.job === "string") {
    const theirs = req.job.slice(0, req.job.indexOf("/"));
    if (theirs !== role) deny("job", theirs);
  }
  if (op === "quota.get" && typeof req.role === "string" && req.role !== role) deny("role", req.role);
}

/** What went wrong as the API's error, or null for the scheduler's own bug. */
export function asApiError(err: Error): ApiError | null {
  if (err instanceof ApiError) return err;
  if (err instanceof SpecError) {
    const only = err.issues.length === 1 ? err.issues[0]!.path : "";
    return new ApiError("INVALID_REQUEST", err.message, only ? `spec.${only}` : undefined);
  }
  if (err instanceof RecordTooLargeError) return new ApiError("TOO_LARGE", `the request is too large to log: ${err.message}`);
  if (
    err instanceof LogUnavailableError ||
    err instanceof FencedError ||
    /is not the leader|no longer the leader|has stopped/.test(err.message)
  ) {
    return new ApiError("UNAVAILABLE", `not committed, try again: ${err.message}`);
  }
  return null;
}

function errorBody(err: Error, subject: string, log: Logger) {
  const known = asApiError(err);
  if (known) return known.body();
  log.error({ err, subject }, "request failed");
  // Not the caller's fault, and nothing was committed for it: UNAVAILABLE is the closest code.
  return new ApiError("UNAVAILABLE", `internal error: ${err.message}`).body();
}
