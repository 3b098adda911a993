// API v1 requests over a bus, for tests: the subject from the op and the request (api/v1.ts
// addressFor), or on role `www-data` (the role of testSpec) when the request names none.

import type { ApiErrorBody } from "../../src/api/errors.js";
import { addressFor } from "../../src/api/v1.js";
import type { Bus } from "../../src/bus/bus.js";

export type V1Reply<T> = { ok: true; value: T } | { ok: false; error: ApiErrorBody };

export function apiRequest<T = unknown>(bus: Bus, op: string, data: unknown, role?: string): Promise<V1Reply<T>> {
  const subject = addressFor(op, data, role) ?? `roost.api.v1.${role ?? "www-data"}.${op}`;
  return bus.request<V1Reply<T>>(subject, data);
}

/** A refusal's message ("" for a success). */
export const errorOf = (r: V1Reply<unknown>): string => (r.ok ? "" : r.error.message);
