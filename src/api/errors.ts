// The API's errors: a closed set of codes, so a client can decide what to do without reading
// English. Every refusal is {ok: false, error: {code, message, field?}}; `message` names the field
// and the rule it broke, `field` is the path of the field when one field is to blame.
//
// What taught this: replies used to be {ok: false, error: "<text>"}, and the CLI and the tests
// told "no leader, try again" from "your spec is wrong" by matching words in the text. A client
// retried a quota refusal until its deadline, and a wording change broke a retry loop.

import { Type, type Static } from "../vendor/typebox.js";
import { formatProblems, type Problem } from "../domain/validate.js";

export const ERROR_CODES = [
  /** The request breaks its schema or a rule (a bad field, an unknown op, bad bytes). Not retried. */
  "INVALID_REQUEST",
  /** No identity, or one the gateway does not know. */
  "UNAUTHENTICATED",
  /** The identity may not do this (another role's job, an admin op without admin). */
  "PERMISSION_DENIED",
  /** What the request names does not exist (a job, a task, a request key). */
  "NOT_FOUND",
  /** The request clashes with the state (the job exists, the job has no active tasks). */
  "CONFLICT",
  /** The role's production quota would be exceeded. */
  "QUOTA_EXCEEDED",
  /** The request (or what it would append) is over a size limit. */
  "TOO_LARGE",
  /** No leader, or the leader could not commit: nothing changed, try again. The only retryable code. */
  "UNAVAILABLE",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** How the HTTP gateway answers each code. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  // 409, not 403: the request is allowed, the state is what refuses it, and it may pass later.
  QUOTA_EXCEEDED: 409,
  TOO_LARGE: 413,
  UNAVAILABLE: 503,
};

export const ApiErrorSchema = Type.Object(
  {
    code: Type.Unsafe<ErrorCode>(Type.String({ enum: [...ERROR_CODES] })),
    message: Type.String(),
    field: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ApiErrorBody = Static<typeof ApiErrorSchema>;

/** A refusal with its code: thrown anywhere below the API, turned into a reply by the API. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

export const isErrorCode = (v: unknown): v is ErrorCode => typeof v === "string" && (ERROR_CODES as readonly string[]).includes(v);

/**
 * A request that breaks its op's schema: every problem named (field: rule), and `field` when one
 * field is to blame. One wording for the leader, the replicas' history reads and the gateway.
 */
export function invalidRequest(op: string, problems: readonly Problem[]): ApiError {
  return new ApiError(
    "INVALID_REQUEST",
    `invalid ${op} request (${problems.length === 1 ? "1 problem" : `${problems.length} problems`}): ${formatProblems(problems)}`,
    problems.length === 1 ? problems[0]!.field || undefined : undefined,
  );
}
