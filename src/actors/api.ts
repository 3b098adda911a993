// The client API on the bus (roost.api.<op>): one subscription that checks each request against its
// schema (api/requests.ts) and hands it to the actor that owns the op: writes to JobIntake (one at
// a time: a check and its commit finish before the next check), reads to Reads. A refusal names
// the field and the rule; "internal error" is kept for the scheduler's own bugs.

import { API_PREFIX, type Bus, type Reply } from "../bus/bus.js";
import { REQUEST_SCHEMAS, type RequestOp } from "../api/requests.js";
import { checker, formatProblems, type Problem } from "../domain/validate.js";
import { RecordTooLargeError } from "../eventlog/appender.js";
import { FencedError, LogUnavailableError } from "../eventlog/log.js";
import { SpecError } from "../spec/jobSpec.js";
import type { Logger } from "../util/logger.js";

/** A caller's mistake, answered as {ok: false, error}. */
export class RequestError extends Error {
  override name = "RequestError";
}

const CHECKS = Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([op, schema]) => [op, checker(schema)])) as Record<
  RequestOp,
  (v: unknown) => Problem[]
>;

/** Throws a RequestError naming every field that breaks the op's request schema. */
export function checked(op: RequestOp, req: unknown): void {
  const problems = CHECKS[op](req);
  if (problems.length > 0) {
    throw new RequestError(
      `invalid ${op} request (${problems.length === 1 ? "1 problem" : `${problems.length} problems`}): ${formatProblems(problems)}`,
    );
  }
}

const WRITE_OPS = ["job.create", "job.kill", "job.add", "quota.set"] as const;
const READ_OPS = ["job.status", "job.list", "quota.get", "task.history", "task.why", "cluster.info"] as const;
export type WriteOp = (typeof WRITE_OPS)[number];
export type ReadOp = (typeof READ_OPS)[number];

/** Who answers the API: the actor for each kind of op. */
export interface ApiHandlers {
  write(op: WriteOp, req: unknown): Promise<unknown>;
  read(op: ReadOp, req: unknown): Promise<unknown>;
}

const isWrite = (op: string): op is WriteOp => (WRITE_OPS as readonly string[]).includes(op);
const isRead = (op: string): op is ReadOp => (READ_OPS as readonly string[]).includes(op);

/** Serve roost.api.>: check, route, and turn what went wrong into a reply. */
export function serveApi(bus: Bus, h: ApiHandlers, log: Logger): () => void {
  return bus.serve(`${API_PREFIX}>`, async (data, subject): Promise<Reply<unknown>> => {
    const op = subject.slice(API_PREFIX.length);
    if (!isWrite(op) && !isRead(op)) {
      return { ok: false, error: `unknown request ${subject}; known: ${[...WRITE_OPS, ...READ_OPS].join(", ")}` };
    }
    try {
      const req = data ?? {};
      checked(op, req);
      return { ok: true, value: await (isWrite(op) ? h.write(op, req) : h.read(op, req)) };
    } catch (err) {
      return errorReply(err as Error, subject, log);
    }
  });
}

function errorReply(err: Error, subject: string, log: Logger): Reply<unknown> {
  if (err instanceof RequestError || err instanceof SpecError) return { ok: false, error: err.message };
  if (err instanceof RecordTooLargeError) return { ok: false, error: `the request is too large to log: ${err.message}` };
  if (
    err instanceof LogUnavailableError ||
    err instanceof FencedError ||
    /is not the leader|no longer the leader|has stopped/.test(err.message)
  ) {
    return { ok: false, error: `not committed, try again: ${err.message}` };
  }
  log.error({ err, subject }, "request failed");
  return { ok: false, error: `internal error: ${err.message}` };
}
