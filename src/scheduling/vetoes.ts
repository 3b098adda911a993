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

/** vetoText of single-attribute vetoes, kept: a blocked task group is judged against every agent,
 *  and building the same few strings for each was 12% of placing a backlog while agents joined. */
const TEXTS = { constraint: new Map<string, string>(), limit: new Map<string, string>() };
const TEXTS_MAX = 1024;

function textOf(v: Veto): string {
  if (v.kind !== "constraint" && v.kind !== "limit") return vetoText(v);
  const cache = TEXTS[v.kind];
  let t = cache.get(v.attribute);
  if (t === undefined) {
    t = vetoText(v);
    if (cache.size < TEXTS_MAX) cache.set(v.attribute, t);
  }
  return t;
}

const INSUFFICIENT: Readonly<Record<Resource, string>> = {
  cpus: "Insufficient: cpus",
  ramMb: "Insufficient: ramMb",
  diskMb: "Insufficient: diskMb",
  gpus: "Insufficient: gpus",
  ports: "Insufficient: ports",
};

/** Several vetoes of one agent as one reason: "Insufficient: cpus, ramMb" style. */
export function reasonOf(vetoes: readonly Veto[]): string {
  if (vetoes.length === 1) {
    const v = vetoes[0]!;
    return v.kind === "insufficient" ? INSUFFICIENT[v.resource] : textOf(v);
  }
  // The other vetoes' texts, each once, in order; then the resources short, in order.
  const parts: string[] = [];
  let insufficient = "";
  for (const v of vetoes) {
    if (v.kind === "insufficient") insufficient += insufficient === "" ? `Insufficient: ${v.resource}` : `, ${v.resource}`;
    else {
      const t = textOf(v);
      if (!parts.includes(t)) parts.push(t);
    }
  }
  if (insufficient !== "") parts.push(insufficient);
  return parts.join("; ");
}

export function totalScore(vetoes: readonly Veto[]): number {
  let s = 0;
  for (const v of vetoes) s += vetoScore(v);
  return s;
}
