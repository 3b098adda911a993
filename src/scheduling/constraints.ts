// A job's constraints, compiled once per task group from Aurora's form:
//   {host: "limit:1", rack: "r1,r2", zone: "!z3", dedicated: "ml/train"}
//
// Total: a constraint string the grammar refuses (a job an older build or a foreign record put in
// the log; today's intake refuses them) compiles to one no host satisfies, with why. Placement and
// `task why` read every job in the log, and a throw here would stop both for every job.

import { constraintProblem, parseConstraint } from "../domain/constraints.js";

interface ValueConstraint {
  attribute: string;
  values: ReadonlySet<string>;
  negated: boolean;
  /** Set when the constraint string is malformed: then no host satisfies it. */
  malformed?: string;
}

interface LimitConstraint {
  attribute: string;
  limit: number;
}

export interface CompiledConstraints {
  values: ValueConstraint[];
  limits: LimitConstraint[];
  /** The dedicated value the job asks for ("role/name"), or null. */
  dedicated: string | null;
}

const cache = new WeakMap<Record<string, string>, CompiledConstraints>();

export function compileConstraints(constraints: Record<string, string>): CompiledConstraints {
  let c = cache.get(constraints);
  if (c) return c;
  c = { values: [], limits: [], dedicated: null };
  for (const attribute of Object.keys(constraints).sort()) {
    const problem = constraintProblem(constraints[attribute]!);
    if (problem !== undefined) {
      c.values.push({ attribute, values: new Set(), negated: false, malformed: `"${constraints[attribute]}": ${problem}` });
      continue;
    }
    const parsed = parseConstraint(constraints[attribute]!);
    if (attribute === "dedicated" && parsed.kind === "value" && !parsed.negated) {
      c.dedicated = parsed.values[0]!;
    } else if (parsed.kind === "limit") {
      c.limits.push({ attribute, limit: parsed.limit });
    } else {
      c.values.push({ attribute, values: new Set(parsed.values), negated: parsed.negated });
    }
  }
  cache.set(constraints, c);
  return c;
}

/** Does a host's `dedicated` attribute ("role/name" or "*\/name") admit this job's request? */
export function dedicatedMatches(hostValue: string, requested: string, role: string): boolean {
  if (hostValue !== requested && !(hostValue.startsWith("*/") && requested.endsWith(hostValue.slice(1)))) return false;
  const hostRole = hostValue.split("/")[0];
  return hostRole === "*" || hostRole === role;
}
