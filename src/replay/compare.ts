// Where two states part: `roost verify` must not stop at "the hashes differ". An operator who
// learns that a snapshot, a fresh fold and the leader disagree needs the first part that differs
// (a task's state, an agent's free ports, a quota) to know which event to read. This walks the
// same projection stateHash digests (hash.ts), part by part in a fixed order, and names the
// first difference with both values.

import { createHash } from "node:crypto";
import { canonical } from "./canonical.js";
import { digestAgent, digestJob, digestTask } from "./hash.js";
import type { ClusterState } from "./state.js";

export interface Difference {
  /** The part, e.g. "tasks", "jobs", "agents", "quotas", "leader", "seq". */
  part: string;
  /** Which entry of it (a task id, a job key, …), when it is a map. */
  key?: string;
  /** The first differing field of that entry, when both sides have it. */
  field?: string;
  a: string;
  b: string;
}

const MAX_TEXT = 300;
const show = (v: unknown): string => {
  const s = v === undefined ? "(absent)" : canonical(v);
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
};

function firstField(a: Record<string, unknown>, b: Record<string, unknown>): { field: string; a: string; b: string } | null {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const k of keys) {
    const x = show(a[k]);
    const y = show(b[k]);
    if (x !== y) return { field: k, a: x, b: y };
  }
  return null;
}

function mapDifference<V>(
  part: string,
  a: ReadonlyMap<string, V>,
  b: ReadonlyMap<string, V>,
  digest: (v: V) => Record<string, unknown>,
): Difference | null {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const key of keys) {
    const x = a.get(key);
    const y = b.get(key);
    if (x === undefined || y === undefined) {
      return { part, key, a: x === undefined ? "(absent)" : "(present)", b: y === undefined ? "(absent)" : "(present)" };
    }
    const f = firstField(digest(x), digest(y));
    if (f) return { part, key, ...f };
  }
  return null;
}

/** The first part in which `a` and `b` differ (in the digest's projection), or null when none does. */
export function firstDifference(a: ClusterState, b: ClusterState): Difference | null {
  const scalars: Array<[string, unknown, unknown]> = [
    ["seq", a.seq, b.seq],
    ["eventCount", a.eventCount, b.eventCount],
    ["leader", a.leader, b.leader],
    ["anomalies", a.anomalies.map((x) => [x.seq, x.index, x.type]), b.anomalies.map((x) => [x.seq, x.index, x.type])],
    ["anomalyCount", a.anomalyCount, b.anomalyCount],
  ];
  for (const [part, x, y] of scalars) {
    if (show(x) !== show(y)) return { part, a: show(x), b: show(y) };
  }
  return (
    mapDifference("jobs", a.jobs, b.jobs, digestJob) ??
    mapDifference("tasks", a.tasks, b.tasks, digestTask) ??
    mapDifference("agents", a.agents, b.agents, digestAgent) ??
    mapDifference("quotas", a.quotas, b.quotas, (q) => ({ ...q })) ??
    mapDifference("reservations", a.reservations, b.reservations, (r) => ({ ...r })) ??
    mapDifference("requests", a.requests, b.requests, (r) => ({ ...r })) ??
    mapDifference("updates", a.updates, b.updates, (u) => ({ ...u })) ??
    mapDifference("cronJobs", a.cronJobs, b.cronJobs, (c) => ({ ...c })) ??
    mapDifference("hosts", a.hosts, b.hosts, (h) => ({ ...h })) ??
    mapDifference("windows", a.windows, b.windows, (w) => ({ ...w }))
  );
}

/** One line for people: `tasks[www-data-…-0-ab12].state: "RUNNING" vs "FAILED"`. */
export function describeDifference(d: Difference, names: [string, string] = ["a", "b"]): string {
  const where = `${d.part}${d.key !== undefined ? `[${d.key}]` : ""}${d.field !== undefined ? `.${d.field}` : ""}`;
  return `${where}: ${names[0]} ${d.a}, ${names[1]} ${d.b}`;
}

/**
 * A SHA-256 per part of the digest's projection: what a leader can send cheaply (a few short
 * strings), so `roost verify` can name the part where the leader's state and a fold disagree
 * without shipping the state.
 */
export function partHashes(s: ClusterState): Record<string, string> {
  const h = (v: unknown) => createHash("sha256").update(canonical(v)).digest("hex");
  const sorted = <V>(m: ReadonlyMap<string, V>, d: (v: V) => unknown) => [...m.keys()].sort().map((k) => [k, d(m.get(k)!)]);
  return {
    seq: String(s.seq),
    eventCount: String(s.eventCount),
    leader: h(s.leader),
    anomalies: h([s.anomalyCount, s.anomalies.map((x) => [x.seq, x.index, x.type])]),
    jobs: h(sorted(s.jobs, digestJob)),
    tasks: h(sorted(s.tasks, digestTask)),
    agents: h(sorted(s.agents, digestAgent)),
    quotas: h(sorted(s.quotas, (q) => q)),
    reservations: h(sorted(s.reservations, (r) => r)),
    requests: h(sorted(s.requests, (r) => r)),
    updates: h(sorted(s.updates, (u) => u)),
    // Absent when there are none, as in the hash, so a leader and a fold of an older build agree.
    ...(s.cronJobs.size ? { cronJobs: h(sorted(s.cronJobs, (c) => c)) } : {}),
    ...(s.hosts.size ? { hosts: h(sorted(s.hosts, (x) => x)) } : {}),
    ...(s.windows.size ? { windows: h(sorted(s.windows, (w) => w)) } : {}),
  };
}
