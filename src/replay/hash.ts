// A canonical hash of ClusterState: the determinism check. Two states hash equal exactly when
// they hold the same data, whatever the order things were inserted in, in any version.

import { createHash } from "node:crypto";
import type { AgentRecord, ClusterState, JobRecord, TaskRecord } from "./state.js";

/** A canonical JSON text: object keys sorted, Maps as sorted [key, value] pairs, Sets sorted. */
export function canonical(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return Number.isFinite(value) ? JSON.stringify(value) : `"${value}"`;
  if (typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value instanceof Set) return canonical([...value].map(canonical).sort());
  if (value instanceof Map) {
    const entries = [...value.entries()].map(([k, v]) => [canonical(k), canonical(v)] as const);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return `{${entries.map(([k, v]) => `${k}:${v}`).join(",")}}`;
  }
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(",")}}`;
  }
  throw new Error(`cannot hash a ${typeof value}`);
}

/**
 * The state digest, version 1: exactly these fields, by name. Golden logs pin their hash, so
 * this projection only ever grows by adding a digest version; derived caches and indexes
 * (TaskRecord.service, ClusterState.pending, …) stay out, and internal representation can change
 * freely as long as the projection does not.
 */
export const STATE_DIGEST_VERSION = 1;

function digestTask(t: TaskRecord) {
  return {
    job: t.job,
    instance: t.instance,
    configVersion: t.configVersion,
    ancestorId: t.ancestorId,
    successorId: t.successorId,
    state: t.state,
    failureCount: t.failureCount,
    everKilling: t.everKilling,
    agentId: t.agentId,
    host: t.host,
    ports: t.ports,
    agentSeq: t.agentSeq,
    exitCode: t.exitCode,
    rescheduleWanted: t.rescheduleWanted,
    history: t.history,
    lastReason: t.lastReason,
    // Added after digest v1 was first pinned: present only when set, so older logs hash as before.
    ...(t.throttleMs ? { throttleMs: t.throttleMs, throttledUntil: t.throttledUntil } : {}),
  };
}

function digestJob(j: JobRecord) {
  return { config: j.config, configVersion: j.configVersion, configs: j.configs, createdSeq: j.createdSeq, createdTs: j.createdTs, instances: j.instances, killedInstances: j.killedInstances };
}

function digestAgent(a: AgentRecord) {
  return {
    host: a.host,
    attributes: a.attributes,
    resources: a.resources,
    bootId: a.bootId,
    state: a.state,
    registeredSeq: a.registeredSeq,
    registeredTs: a.registeredTs,
    used: a.used,
    usedPorts: a.usedPorts,
    tasks: a.tasks,
  };
}

export function stateHash(state: ClusterState): string {
  const h = createHash("sha256");
  h.update(canonical({ digest: STATE_DIGEST_VERSION, seq: state.seq, eventCount: state.eventCount, leader: state.leader, anomalies: state.anomalies }));
  // Sections added after v1 was pinned hash nothing when empty, so older logs hash as before.
  if (state.quotas.size) h.update(`quotas=${canonical(state.quotas)}\n`);
  if (state.reservations.size) h.update(`reservations=${canonical(state.reservations)}\n`);
  const section = <T>(name: string, m: Map<string, T>, project: (v: T) => unknown) => {
    for (const key of [...m.keys()].sort()) h.update(`${name}:${key}=${canonical(project(m.get(key)!))}\n`);
  };
  section("job", state.jobs, digestJob);
  section("task", state.tasks, digestTask);
  section("agent", state.agents, digestAgent);
  return h.digest("hex");
}
