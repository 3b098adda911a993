// Aurora's constraint grammar, per host attribute: "limit:N" (at most N of the job's active tasks
// per attribute value), "v1,v2" (the value must be one of these) or "!v1,v2" (none of these).
// The job spec validates with it and placement compiles with it (scheduling/constraints.ts), so
// it lives here, in the core, rather than in the spec parser (which loads ajv and yaml).

export type Constraint = { kind: "limit"; limit: number } | { kind: "value"; values: string[]; negated: boolean };

export const CONSTRAINT_RULE = 'must be "limit:N" (N ≥ 1), a value list "v1,v2" or a negated list "!v1,v2"';

/** Why a constraint string is malformed, or undefined if it is well formed. */
export function constraintProblem(value: string): string | undefined {
  const v = value.trim();
  if (v === "") return "it is empty";
  if (v.startsWith("limit:")) {
    const n = v.slice("limit:".length).trim();
    if (!/^\d+$/.test(n)) return `the limit must be a whole number, got "${n}"`;
    const limit = Number(n);
    if (limit < 1) return "the limit must be at least 1";
    if (!Number.isSafeInteger(limit)) return "the limit is too large";
    return undefined;
  }
  const negated = v.startsWith("!");
  const body = negated ? v.slice(1) : v;
  if (negated && body.trim().startsWith("limit:")) return "a limit cannot be negated";
  const items = body.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) return items.length === 1 ? "the value list is empty" : "the value list has an empty item";
  if (items.some((s) => s.includes("!"))) return '"!" may appear only once, at the start, to negate the whole list';
  return undefined;
}

/** Parses a constraint string: "limit:N", "v1,v2" or "!v1,v2" (spaces around items are ignored). */
export function parseConstraint(value: string): Constraint {
  const problem = constraintProblem(value);
  if (problem !== undefined) throw new Error(`invalid constraint "${value}": ${problem}; ${CONSTRAINT_RULE}`);
  const v = value.trim();
  if (v.startsWith("limit:")) return { kind: "limit", limit: Number(v.slice("limit:".length).trim()) };
  const negated = v.startsWith("!");
  const values = (negated ? v.slice(1) : v).split(",").map((s) => s.trim());
  return { kind: "value", values, negated };
}

/** The canonical string of a constraint: "limit:N", "v1,v2" or "!v1,v2". */
export function formatConstraint(c: Constraint): string {
  return c.kind === "limit" ? `limit:${c.limit}` : (c.negated ? "!" : "") + c.values.join(",");
}
