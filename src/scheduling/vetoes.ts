// Why an agent cannot take a task: Aurora's vetoes (SchedulingFilter's Veto and VetoType), in
// Aurora's order and with its scores. The pending reason of a task group is the veto set of the
// agent that came closest (lowest total score, as Aurora's NearestFit keeps it), e.g.
// "Insufficient: ramMb".

import { roundCpus } from "../domain/resources.js";

type Resource = "cpus" | "ramMb" | "diskMb" | "gpus" | "ports";

export type Veto =
  | { kind: "dedicated"; detail: string }
  | { kind: "maintenance"; detail: string }
  | { kind: "constraint"; attribute: string; detail: string }
  | { kind: "limit"; attribute: string; detail: string }
  | { kind: "insufficient"; resource: Resource; need: number; free: number; total: number };

const VETO_SCORE = { dedicated: 1_000_000, maintenance: 100_000, constraint: 10_000, limit: 10_000 } as const;

/** Aurora scales an insufficient-resource veto by the shortfall, up to 1,000. */
export function vetoScore(v: Veto): number {
  if (v.kind !== "insufficient") return VETO_SCORE[v.kind];
  const short = v.need - Math.max(0, v.free);
  return Math.max(1, Math.min(1000, Math.round((1000 * short) / Math.max(v.need, 1e-9))));
}

/** The short form shown as a pending reason. */
export function vetoText(v: Veto): string {
  switch (v.kind) {
    case "dedicated":
      return "Host is dedicated";
    case "maintenance":
      return "Host in maintenance";
    case "constraint":
      return `Constraint not satisfied: ${v.attribute}`;
    case "limit":
      return `Limit not satisfied: ${v.attribute}`;
    case "insufficient":
      return `Insufficient: ${v.resource}`;
  }
}

/** The long form, with numbers, for `roost task why`. */
export function vetoDetail(v: Veto): string {
  if (v.kind === "insufficient") {
    // Free and total are sums: of cpus in thousandths (the other resources are whole numbers).
    return v.resource === "ports"
      ? `needs ${v.need} free port(s), ${Math.max(0, v.free)} left in its ranges`
      : `needs ${v.resource} ${v.need}, free ${roundCpus(Math.max(0, v.free))} of ${roundCpus(v.total)}`;
  }
  return v.detail;
}

/** Several vetoes of one agent as one reason: "Insufficient: cpus, ramMb" style. */
export function reasonOf(vetoes: readonly Veto[]): string {
  const insufficient = vetoes.filter((v) => v.kind === "insufficient") as Array<Extract<Veto, { kind: "insufficient" }>>;
  const others = vetoes.filter((v) => v.kind !== "insufficient").map(vetoText);
  const parts = [...new Set(others)];
  if (insufficient.length) parts.push(`Insufficient: ${insufficient.map((v) => v.resource).join(", ")}`);
  return parts.join("; ");
}

export function totalScore(vetoes: readonly Veto[]): number {
  let s = 0;
  for (const v of vetoes) s += vetoScore(v);
  return s;
}
