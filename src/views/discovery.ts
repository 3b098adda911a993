// Service discovery, the pure part: which endpoints the fold wants announced, how an endpoint is
// named in the JetStream KV bucket, and what a value read back from it must look like.
//
// A task is announced while its folded state is RUNNING (what its agent reports once it is up;
// with a health check, once that passes) and it holds at least one assigned port; it is withdrawn as soon as
// the fold moves it out of RUNNING. Only the newest task of an instance can be RUNNING (the fold
// refuses a second live task for an instance), so one key per instance is enough:
//
//   key    <role>.<environment>.<name>.<instance>      each of the first three escaped (below)
//   value  {"host": "...", "ports": {"http": 31001}, "taskId": "..."}   JSON, ports sorted by name
//
// Key escaping. NATS KV keys allow [-/_=.A-Za-z0-9] and "." separates subject tokens, while a role,
// environment or name may hold "." (and a job an older build accepted may hold anything but "/"
// and control characters). Inside a segment A-Z, a-z, 0-9, "_" and "-" stand for themselves and
// every other character is written as "=XX" per UTF-8 byte (upper-case hex): "hello.v2" is
// "hello=2Ev2". "=" itself is always escaped, the form is canonical (unescapeSegment refuses
// "=41" for "A", lower-case hex and bytes that are not UTF-8), and no segment is empty, so two
// job keys never share a key, a key never has an empty token, and a key names one instance or
// none. A job's keys are `<prefix>.*` (jobKeyPrefix): one filter subject watches one job.
//
// The bucket is per log (discoveryBucket: `<stream>_DISCOVERY`, next to `<stream>_INTAKE`): the
// leader reconciles the bucket with its fold, so two cells on one NATS must not share one.
//
// EndpointIndex keeps the wanted set as the fold moves, looking after each record only at the
// instances the record's events can have changed (not at every task): a leader folding thousands
// of tasks rewrites nothing that did not change. actors/announcer.ts writes what it reports.

import { Type } from "../vendor/typebox.js";
import { UNREADABLE, type LogEntry } from "../domain/events.js";
import { TASK_ID_MAX_LENGTH } from "../domain/limits.js";
import type { AgentId, JobKeyString, TaskId } from "../domain/types.js";
import { checker, Dict, RULE, type Problem } from "../domain/validate.js";
import type { ClusterState, TaskRecord } from "../replay/state.js";

/** What a client learns about one instance: where it listens, and which task that is. */
export interface Endpoint {
  host: string;
  /** Port name → port, as assigned (TaskAssigned.ports). */
  ports: Record<string, number>;
  taskId: string;
}

/** The KV bucket of a log's endpoints: `<stream>_DISCOVERY` (ROOST → ROOST_DISCOVERY). */
export function discoveryBucket(stream: string): string {
  const bucket = `${stream}_DISCOVERY`;
  if (!/^[-\w]+$/.test(bucket)) {
    throw new Error(
      `stream ${JSON.stringify(stream)} gives no valid discovery bucket name: a KV bucket is letters, digits, "_" and "-" (got ${JSON.stringify(bucket)})`,
    );
  }
  return bucket;
}

/**
 * The bucket's one key that is not an endpoint: the leader that last reconciled it, `{epoch,
 * schedulerId, seq}`. Its write fences the bucket (actors/announcer.ts). One token, so it never
 * matches a job's `<prefix>.*`, and never parses as an endpoint key.
 */
export const FENCE_KEY = "_leader";

const PLAIN = /^[A-Za-z0-9_-]$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** One segment of a key (see the file comment). Throws on "" and on a string that is not well-formed Unicode. */
export function escapeSegment(s: string): string {
  if (s.length === 0) throw new Error("a key segment cannot be empty");
  if (LONE_SURROGATE.test(s)) throw new Error(`${JSON.stringify(s)} is not well-formed Unicode (a lone surrogate)`);
  let out = "";
  for (const ch of s) {
    if (PLAIN.test(ch)) out += ch;
    else for (const b of utf8.encode(ch)) out += `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The segment an escaped one stands for, or null when `s` is no canonical escaping of anything. */
export function unescapeSegment(s: string): string | null {
  if (!/^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/.test(s)) return null;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === "=") {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else bytes.push(s.charCodeAt(i++));
  }
  let decoded: string;
  try {
    decoded = strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
  // Canonical only: "=41" is not "A", so every segment has exactly one key form.
  return escapeSegment(decoded) === s ? decoded : null;
}

/** `<role>.<env>.<name>` escaped: a job's keys are this plus `.<instance>`. */
export function jobKeyPrefix(job: string): string {
  const parts = job.split("/");
  if (parts.length !== 3) throw new Error(`job key ${JSON.stringify(job)} must have the form ROLE/ENV/NAME`);
  return parts.map(escapeSegment).join(".");
}

export function endpointKey(job: string, instance: number): string {
  if (!Number.isSafeInteger(instance) || instance < 0) throw new Error(`instance ${instance} must be an integer ≥ 0`);
  return `${jobKeyPrefix(job)}.${instance}`;
}

/** The job and instance a key names, or null when it is no endpoint key. */
export function parseEndpointKey(key: string): { job: JobKeyString; instance: number } | null {
  const parts = key.split(".");
  if (parts.length !== 4 || !/^(0|[1-9]\d{0,8})$/.test(parts[3]!)) return null;
  const segs = parts.slice(0, 3).map(unescapeSegment);
  if (segs.some((s) => s === null || s.includes("/"))) return null;
  return { job: segs.join("/") as JobKeyString, instance: Number(parts[3]) };
}

/** The value written for an endpoint: JSON, fields and ports in a fixed order, so equal endpoints are equal strings. */
export function encodeEndpoint(e: Endpoint): string {
  const ports: Record<string, number> = {};
  for (const name of Object.keys(e.ports).sort()) ports[name] = e.ports[name]!;
  return JSON.stringify({ host: e.host, ports, taskId: e.taskId });
}

/**
 * What a value read from the bucket must be. Unknown fields are allowed and ignored: a reader of
 * an older build meets a newer leader's values during an upgrade.
 */
const NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]*$";
const EndpointValueSchema = Type.Object({
  host: Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: NO_CONTROL,
    [RULE]: "must be a host: 1 to 255 characters, no control characters",
  }),
  ports: Dict(Type.Integer({ minimum: 1, maximum: 65535, [RULE]: "must be a port: an integer from 1 to 65535" }), {
    keys: Type.String({ minLength: 1, maxLength: 64, pattern: NO_CONTROL }),
    maxEntries: 64,
    rule: "must be a mapping of up to 64 port names to ports",
  }),
  taskId: Type.String({
    minLength: 1,
    maxLength: TASK_ID_MAX_LENGTH,
    pattern: NO_CONTROL,
    [RULE]: `must be a task id: 1 to ${TASK_ID_MAX_LENGTH} characters, no control characters`,
  }),
});
const checkEndpointValue = checker(EndpointValueSchema);

/** The largest value a reader decodes (ours are well under 4 KiB). */
const MAX_ENDPOINT_VALUE_BYTES = 64 * 1024;

/** A value read from the bucket: the endpoint it holds, or what is wrong with it. */
export function decodeEndpoint(bytes: Uint8Array): { endpoint: Endpoint } | { problems: Problem[] } {
  if (bytes.length > MAX_ENDPOINT_VALUE_BYTES) {
    return { problems: [{ field: "", rule: `must be at most ${MAX_ENDPOINT_VALUE_BYTES} bytes`, got: `${bytes.length} bytes` }] };
  }
  let v: unknown;
  try {
    v = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return { problems: [{ field: "", rule: "must be JSON {host, ports, taskId}" }] };
  }
  const problems = checkEndpointValue(v);
  if (problems.length > 0) return { problems };
  const o = v as Endpoint;
  return { endpoint: { host: o.host, ports: { ...o.ports }, taskId: o.taskId } };
}

/** The endpoint a task announces: RUNNING on a host with at least one port; else null. */
export function endpointOfTask(t: TaskRecord): Endpoint | null {
  if (t.state !== "RUNNING" || t.host === null || t.ports === null) return null;
  for (const _ in t.ports) return { host: t.host, ports: t.ports, taskId: t.taskId };
  return null;
}

/** A job's name parts, as the fold holds them (JobCreated's role, environment and name). */
interface JobName {
  role: string;
  environment: string;
  name: string;
}

/**
 * The key of an instance of a job as the fold holds it, or null when the job's name cannot be a
 * key (an empty part, or one that is not well-formed Unicode: a record an old build let through).
 * From the name's parts, not from its "a/b/c" string: a part of such a record may hold a "/".
 */
function keyOfJob(job: JobName, instance: number): string | null {
  try {
    return `${escapeSegment(job.role)}.${escapeSegment(job.environment)}.${escapeSegment(job.name)}.${instance}`;
  } catch {
    return null;
  }
}

/** Every endpoint the fold wants announced, by key: what a new leader reconciles the bucket with. */
export function desiredEndpoints(state: ClusterState): Map<string, Endpoint> {
  const out = new Map<string, Endpoint>();
  for (const job of state.jobs.values()) {
    for (const [instance, taskId] of job.instances) {
      const t = state.tasks.get(taskId);
      const e = t ? endpointOfTask(t) : null;
      const key = e ? keyOfJob(job.config, instance) : null;
      if (e && key !== null) out.set(key, e);
    }
  }
  return out;
}

interface Wanted {
  /** encodeEndpoint of the endpoint: what the bucket must hold. */
  value: string;
  agentId: AgentId | null;
  job: JobKeyString;
  instance: number;
}

/** A field of an entry's payload, whatever the entry (the fold skips broken ones; this must not throw on them). */
function field(e: LogEntry, name: string): unknown {
  const d = e.data as unknown;
  return d !== null && typeof d === "object" ? (d as Record<string, unknown>)[name] : undefined;
}

/**
 * The wanted endpoints, kept as the fold moves (update() after each folded record). A read model
 * of the fold: it reads the state, never changes it.
 */
export class EndpointIndex {
  private readonly wanted = new Map<string, Wanted>();
  /** Wanted keys by the agent their task runs on: an agent's loss withdraws them without naming them. */
  private readonly byAgent = new Map<AgentId, Set<string>>();

  /** Start over from a whole state (a new term). */
  reset(state: ClusterState): void {
    this.wanted.clear();
    this.byAgent.clear();
    for (const job of state.jobs.values()) for (const instance of job.instances.keys()) this.look(state, job.key, instance);
  }

  /** The value the bucket must hold under `key`, or undefined when the key must not exist. */
  get(key: string): string | undefined {
    return this.wanted.get(key)?.value;
  }

  keys(): IterableIterator<string> {
    return this.wanted.keys();
  }

  get size(): number {
    return this.wanted.size;
  }

  /**
   * After `events` (one record) were folded into `state`: the keys whose wanted value changed, in
   * the order the record's events first touched them. Looks only at the instances the events can
   * have changed: a task's own events, the instances a kill names, the tasks announced on an agent
   * that was lost, rebooted or cut off (agent events move their tasks without naming them).
   */
  update(state: ClusterState, events: readonly LogEntry[]): string[] {
    const jobs: JobKeyString[] = [];
    const instances: number[] = [];
    const add = (job: JobKeyString, instance: number) => {
      jobs.push(job);
      instances.push(instance);
    };
    const viaTask = (id: unknown) => {
      const t = typeof id === "string" ? state.tasks.get(id as TaskId) : undefined;
      if (t) add(t.job, t.instance);
    };
    for (const e of events) {
      switch (e.type) {
        case "TaskStateChanged":
        case "TaskAssigned":
        case "TaskCreated":
          viaTask(field(e, "taskId"));
          break;
        case "SlotReserved": {
          const victims = field(e, "victims");
          if (Array.isArray(victims)) for (const v of victims) viaTask(v);
          break;
        }
        case "JobKillRequested": {
          const job = state.jobs.get(field(e, "job") as JobKeyString);
          if (!job) break;
          const named = field(e, "instances");
          for (const i of Array.isArray(named) ? named : job.instances.keys()) if (typeof i === "number") add(job.key, i);
          break;
        }
        case "AgentRegistered":
        case "AgentStateChanged": {
          const keys = this.byAgent.get(field(e, "agentId") as AgentId);
          if (keys) for (const k of keys) add(this.wanted.get(k)!.job, this.wanted.get(k)!.instance);
          break;
        }
        // None of these moves a task into or out of RUNNING, or changes its host or ports (a job
        // is created again only once all its tasks ended).
        case "JobCreated":
        case "JobInstancesAdded":
        case "QuotaSet":
        case "SlotReleased":
        case "LeaderElected":
        case "RequestDecided":
        // An update moves tasks only through TaskCreated and TaskStateChanged, placed above.
        case "JobUpdateStarted":
        case "JobUpdateStateChanged":
        case "JobInstanceUpdateEvent":
        case "JobUpdatePulsed":
        // A cron run starts through JobCreated and TaskCreated; a trigger itself moves no task.
        case "CronJobScheduled":
        case "CronJobDescheduled":
        case "CronTriggered":
        // Maintenance moves tasks only through TaskStateChanged (DRAINING), placed above.
        case "HostMaintenanceChanged":
        case "SlaDrainDenied":
        case "MaintenanceWindowScheduled":
        case "MaintenanceWindowEnded":
        case UNREADABLE:
          break;
        default: {
          // A new event type must be placed above: one the fold lets move tasks is a candidate source.
          const never: never = e;
          void never;
        }
      }
    }
    // An instance named twice is reported once: its second look finds nothing changed.
    const changed: string[] = [];
    for (let i = 0; i < jobs.length; i++) {
      const key = this.look(state, jobs[i]!, instances[i]!);
      if (key !== null) changed.push(key);
    }
    return changed;
  }

  /** Look at one instance again: its key when what the bucket must hold for it changed, else null. */
  private look(state: ClusterState, jobKey: JobKeyString, instance: number): string | null {
    const job = state.jobs.get(jobKey);
    const key = job ? keyOfJob(job.config, instance) : null;
    if (!job || key === null) return null;
    const taskId = job.instances.get(instance);
    const t = taskId === undefined ? undefined : state.tasks.get(taskId);
    const e = t ? endpointOfTask(t) : null;
    const value = e ? encodeEndpoint(e) : undefined;
    if (value === this.wanted.get(key)?.value) return null;
    if (value === undefined) this.remove(key);
    else this.set(key, { value, agentId: t!.agentId, job: jobKey, instance });
    return key;
  }

  private set(key: string, w: Wanted): void {
    this.remove(key);
    this.wanted.set(key, w);
    if (w.agentId !== null) {
      let keys = this.byAgent.get(w.agentId);
      if (!keys) this.byAgent.set(w.agentId, (keys = new Set()));
      keys.add(key);
    }
  }

  private remove(key: string): void {
    const old = this.wanted.get(key);
    if (!old) return;
    this.wanted.delete(key);
    if (old.agentId === null) return;
    const keys = this.byAgent.get(old.agentId);
    keys?.delete(key);
    if (keys?.size === 0) this.byAgent.delete(old.agentId);
  }
}
