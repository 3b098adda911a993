// Snapshots: a ClusterState as bytes, and back. Pure: no I/O (stores live in eventlog/snapshots.ts).
//
// A snapshot is disposable: the log is the truth, so a snapshot that cannot be read is skipped and
// the log folded instead. That frees the format to be fast rather than forever-readable.
//
// Layout (MessagePack, msgpackr):
//   snapshot = [header, body]                      plain MessagePack array
//   header   = {format: "roost-snapshot", version, seq, eventCount, stateHash, createdTs,
//               digest, tasks, jobs, agents, stream?, codec?, bodySha256?}
//                                                  plain map: any MessagePack reader can list it
//   body     = bin: a msgpackr map of
//     strs   task ids, once: the state's tasks first (in the state's order), then ids the
//            state refers to but does not hold; everything else refers to them by index
//     syms   every other string, once: job keys, agent ids, hosts, reasons, port names
//            (each table, when all ASCII, as one bin of bytes plus a column of lengths)
//     t      the tasks as columns: one packed numeric column per field ([kind, base, bytes]:
//            the narrowest of u8/u16/u32 holding value - base, else f64), the history as four
//            columns (seq, idx, ts, state) of all tasks' entries back to back plus a length each
//     order  the task indexes in stateHash's order (sorted ids), so checking needs no sort
//     pending the PENDING index, in the order tasks became PENDING (it is not derivable)
//     small  bin: msgpackr (structuredClone) of jobs, agents, leader, quotas, reservations,
//            anomalies, keyed requests' outcomes, and the task field values that did not fit a column ("odd" values)
//
// Decoding checks the format and version and the columns (every string index in range, the order
// a permutation, the pending index exactly the PENDING rows), rebuilds the small containers, and
// leaves the tasks as columns: the state's TaskMap builds a row when it is used (taskMap.ts,
// taskColumns.ts; decoding 2.4M tasks into objects was 15 s of a 19 s cold start). Checking then
// recomputes stateHash, reading untouched rows straight from the columns, and compares it with the
// header: a snapshot either decodes to exactly the state that was written, or throws SnapshotError.
//
// The header also names the codec that wrote it and the body's SHA-256 (SNAPSHOT_CODEC below): the
// store checks the state hash before it stores a snapshot, so a reader of the same codec takes
// that check and only compares the digest (checkedByWriter), which costs I/O, not object building.
//
// The agentsVersion/capacityVersion counters are carried too (they may restart at any value).

import { createHash } from "node:crypto";
import { Packr } from "msgpackr";
import type { AgentId, JobKeyString, TaskId } from "../domain/types.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import { STATE_DIGEST_VERSION, stateHash, stateHashSteps } from "./hash.js";
import { SnapshotError } from "./snapshotError.js";
import { type AgentRecord, ClusterState, HISTORY_STRIDE, type JobRecord, type TaskRecord } from "./state.js";
import { runSteps, type Steps, sortStringsSteps, TASKS_PER_STEP } from "./steps.js";
import {
  type Column,
  F_EVER_KILLING,
  F_EXIT_NULL,
  F_PORTS_NULL,
  F_RESCHEDULE,
  F_SERVICE,
  F64,
  TaskColumns,
  U8,
  U16,
  U32,
  unpackColumn,
} from "./taskColumns.js";
import { TaskMap } from "./taskMap.js";
import { PackedIds } from "./packedIds.js";
import type { IdTables } from "./idIndex.js";

export { SnapshotError };

export const SNAPSHOT_FORMAT = "roost-snapshot";
export const SNAPSHOT_VERSION = 1;

/**
 * What this build's decoder makes of a body: bump it with any change to what bytes decode to.
 * A snapshot records the codec of the build that wrote it, which checked before it stored them
 * that its bytes decode to the state hash in their header (src/storage/snapshotStore.ts,
 * putEncoded). A reader of the same codec then needs only the body's digest to know it holds
 * those bytes: decoding is a function of the bytes and the codec. Any other reader checks the
 * state hash itself, as before. test/snapshot.test.ts pins a golden snapshot's decoding.
 */
export const SNAPSHOT_CODEC = "roost-columns-1";

export interface SnapshotHeader {
  format: typeof SNAPSHOT_FORMAT;
  version: number;
  /** The log sequence the state covers: a cold start folds from seq + 1. */
  seq: number;
  eventCount: number;
  /** stateHash() of the state (src/replay/hash.ts), digest version `digest`. */
  stateHash: string;
  /** Epoch ms when the snapshot was taken (the writer's clock; informational). */
  createdTs: number;
  digest: number;
  tasks: number;
  jobs: number;
  agents: number;
  /** The JetStream stream of the log this state is a fold of, when the writer knew it (absent in
   *  older snapshots and for a memory log). A cold start skips a snapshot of another stream. */
  stream?: string;
  /** The codec of the build that wrote it (SNAPSHOT_CODEC), and the SHA-256 of the body bytes, hex
   *  (both absent in older snapshots). */
  codec?: string;
  bodySha256?: string;
}

/** The body digest is computed this many bytes a step. */
const DIGEST_PIECE = 16 * 2 ** 20;

/** Plain MessagePack for the outer array and the header: readable by any MessagePack reader. */
const outer = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", mapsAsObjects: true, useToJSON: false });
/** The columns and the string table (no records: they are arrays and bins). undefined survives. */
const bodyCodec = new Packr({ useRecords: false, moreTypes: false, int64AsType: "number", mapsAsObjects: true, useToJSON: false });
/** Jobs, agents and the rest: small, nested, with shared objects (a job's config.task is its
 *  configs[version]) and Sets; structuredClone keeps both. */
const smallCodec = new Packr({ useRecords: false, structuredClone: true, int64AsType: "number", mapsAsObjects: true, useToJSON: false });

// ---- numeric columns ------------------------------------------------------------------------

/** The narrowest exact column for n values: integers as value - min in u8/u16/u32, else f64. */
function packColumn(v: Float64Array, n: number): Column {
  let min = Infinity;
  let max = -Infinity;
  let ints = true;
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    // -0 and NaN need f64 (NaN fails isSafeInteger; -0 would come back as 0).
    if (ints && (!Number.isSafeInteger(x) || (x === 0 && 1 / x < 0))) ints = false;
  }
  if (n === 0) return [U8, 0, new Uint8Array(0)];
  const range = max - min;
  const kind = !ints ? F64 : range < 2 ** 8 ? U8 : range < 2 ** 16 ? U16 : range < 2 ** 32 ? U32 : F64;
  if (kind === F64) {
    const out = v.slice(0, n);
    return [F64, 0, new Uint8Array(out.buffer, out.byteOffset, out.byteLength)];
  }
  const out = kind === U8 ? new Uint8Array(n) : kind === U16 ? new Uint16Array(n) : new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = v[i]! - min;
  return [kind, min, new Uint8Array(out.buffer, out.byteOffset, out.byteLength)];
}

// ---- string tables ----------------------------------------------------------------------------

/**
 * A string table: when every string is ASCII, one bin of their bytes back to back and a column
 * of lengths; otherwise a plain MessagePack array. Decoding the bin gives each string its own
 * flat copy: msgpackr's native decoder hands out slices of one large string, which are slower to
 * compare, sort and hash (stateHash ~20%, sorting ids ~2×).
 */
function packStrings(list: string[]): unknown {
  const joined = list.join("");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range \x00-\x7f is "ASCII", control characters included on purpose
  if (/[^\x00-\x7f]/.test(joined)) return list;
  const lengths = new Float64Array(list.length);
  for (let i = 0; i < list.length; i++) lengths[i] = list[i]!.length;
  return { count: list.length, bytes: Buffer.from(joined, "latin1"), lengths: packColumn(lengths, list.length) };
}

function unpackStrings(v: unknown, what: string): string[] {
  if (Array.isArray(v)) {
    for (const x of v) if (typeof x !== "string") throw new SnapshotError(`string table ${what} is malformed`);
    return v as string[];
  }
  const t = v as { count?: unknown; bytes?: unknown; lengths?: unknown } | null;
  if (typeof t !== "object" || t === null || !Number.isSafeInteger(t.count) || !(t.bytes instanceof Uint8Array))
    throw new SnapshotError(`string table ${what} is malformed`);
  const n = t.count as number;
  const lengths = unpackColumn(t.lengths, n, `${what} lengths`);
  const bytes = Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Array<string>(n);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const end = offset + lengths.a[i]! + lengths.b;
    if (end > bytes.length) throw new SnapshotError(`string table ${what} is shorter than its lengths`);
    out[i] = bytes.toString("latin1", offset, end);
    offset = end;
  }
  if (offset !== bytes.length) throw new SnapshotError(`string table ${what} is longer than its lengths`);
  return out;
}

/**
 * The task id table, left as bytes until each id is read (packedIds.ts), in either form
 * packStrings writes: the bytes and a column of lengths, or (not all ASCII) an array of strings.
 */
function unpackIds(v: unknown): PackedIds {
  if (Array.isArray(v)) return PackedIds.of(unpackStrings(v, "strs") as TaskId[]);
  const t = v as { count?: unknown; bytes?: unknown; lengths?: unknown } | null;
  if (typeof t !== "object" || t === null || !Number.isSafeInteger(t.count) || !(t.bytes instanceof Uint8Array))
    throw new SnapshotError("string table strs is malformed");
  const n = t.count as number;
  const lengths = unpackColumn(t.lengths, n, "strs lengths");
  const bytes = Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const ids = PackedIds.fromBytes(bytes, n, (i) => lengths.a[i]! + lengths.b);
  if (ids === null) throw new SnapshotError("string table strs does not add up to its lengths");
  return ids;
}

// ---- the fields the codec knows --------------------------------------------------------------

/** Every TaskRecord field, in the order fold.ts creates them (one hidden class for all tasks). */
export const TASK_FIELDS = [
  "taskId",
  "job",
  "instance",
  "configVersion",
  "ancestorId",
  "service",
  "maxTaskFailures",
  "state",
  "failureCount",
  "everKilling",
  "agentId",
  "host",
  "ports",
  "agentSeq",
  "exitCode",
  "rescheduleWanted",
  "successorId",
  "history",
  "lastReason",
  "throttleMs",
  "throttledUntil",
] as const satisfies readonly (keyof TaskRecord)[];

export const JOB_FIELDS = [
  "key",
  "config",
  "configVersion",
  "configs",
  "createdSeq",
  "createdTs",
  "instances",
  "killedInstances",
] as const satisfies readonly (keyof JobRecord)[];

export const AGENT_FIELDS = [
  "agentId",
  "host",
  "attributes",
  "resources",
  "bootId",
  "isolation",
  "state",
  "registeredSeq",
  "registeredTs",
  "used",
  "usedPorts",
  "tasks",
] as const satisfies readonly (keyof AgentRecord)[];

/** Every ClusterState field (taskConfig is a method). */
export const STATE_FIELDS = [
  "seq",
  "eventCount",
  "leader",
  "jobs",
  "tasks",
  "agents",
  "quotas",
  "reservations",
  "agentsVersion",
  "capacityVersion",
  "pending",
  "anomalies",
  "anomalyCount",
  "requests",
  "updates",
  "cronJobs",
  "hosts",
  "windows",
] as const satisfies readonly (keyof ClusterState)[];

/** The position of `s` in a string table, appended (and indexed) when new. */
function indexIn(table: string[], index: Map<string, number>, s: string): number {
  let k = index.get(s);
  if (k === undefined) {
    k = table.length;
    table.push(s);
    index.set(s, k);
  }
  return k;
}

/** A record with a field this codec does not know would lose it: refuse, loudly. */
function checkFields(what: string, record: object, known: readonly string[]): void {
  const keys = Object.keys(record);
  const unknown = keys.filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new SnapshotError(`${what} has fields the snapshot codec does not know (${unknown.join(", ")}): teach src/replay/snapshot.ts`);
  }
}

const STATE_CODE = new Map<string, number>(TASK_STATES.map((s, i) => [s, i]));

/** Job and agent records, positionally (the codec's own shape; strings by table index). */
type JobRow = [
  keyIdx: number,
  config: unknown,
  configVersion: number,
  configs: unknown,
  createdSeq: number,
  createdTs: number,
  instanceIds: number[],
  instanceTasks: number[],
  killed: number[],
];
type AgentRow = [
  agentIdx: number,
  hostIdx: number,
  attributes: unknown,
  resources: unknown,
  bootId: string,
  state: string,
  registeredSeq: number,
  registeredTs: number,
  used: unknown,
  usedPorts: number[],
  tasks: number[],
  /** Added later: absent in older snapshots, and when the agent did not say. */
  isolation?: { mode: string; detail: string },
];

interface Small {
  jobs: JobRow[];
  agents: AgentRow[];
  leader: ClusterState["leader"];
  quotas: Array<[string, unknown]>;
  reservations: Array<[TaskId, unknown]>;
  anomalies: ClusterState["anomalies"];
  /** Absent in snapshots written before anomalies were counted (then: anomalies.length). */
  anomalyCount?: number;
  /** Keyed requests' outcomes, oldest first (absent before requests were keyed). */
  requests?: Array<[string, unknown]>;
  /** Job updates, oldest first (absent before there were updates). */
  updates?: Array<[string, unknown]>;
  /** Scheduled cron jobs, in the order first scheduled (absent when there are none, and before cron). */
  cronJobs?: Array<[string, unknown]>;
  /** Hosts in (or back from) maintenance, and maintenance windows (absent when there are none). */
  hosts?: Array<[string, unknown]>;
  windows?: Array<[string, unknown]>;
  /** Task field values that fit no column: [task index, field, value] triples, flattened. */
  odd: unknown[];
  seq: number;
  eventCount: number;
  agentsVersion: number;
  capacityVersion: number;
}

// ---- encode ---------------------------------------------------------------------------------

export interface EncodeOptions {
  /** Epoch ms recorded as createdTs: the writer's clock (the codec reads none). Default 0. */
  createdTs?: number;
  /** The log's stream name, recorded in the header (SnapshotHeader.stream). Default: none. */
  stream?: string;
}

/** The state as snapshot bytes. The state is only read. */
export function encodeSnapshot(state: ClusterState, opts: EncodeOptions = {}): Uint8Array {
  return encodeSnapshotWithHeader(state, opts).bytes;
}

/** encodeSnapshot, also returning the header it wrote. */
export function encodeSnapshotWithHeader(state: ClusterState, opts: EncodeOptions = {}): EncodedSnapshot {
  return runSteps(encodeSnapshotSteps(state, opts));
}

export interface EncodedSnapshot {
  bytes: Uint8Array;
  header: SnapshotHeader;
}

/**
 * The encoder as sliced work (see runSteps in hash.ts): it yields every TASKS_PER_STEP tasks, so
 * a caller can run it a few milliseconds at a time. The state must not change until it returns
 * (a standby stops folding meanwhile; see Scheduler.checkpoint). The longest steps are packing
 * the string table and the final pack of the columns (bulk copies, tens of ms at 250k tasks).
 */
export function* encodeSnapshotSteps(state: ClusterState, opts: EncodeOptions = {}): Steps<EncodedSnapshot> {
  checkFields("ClusterState", state, STATE_FIELDS);
  const n = state.tasks.size;

  // The string table: task ids first, so task i is strs[i].
  const strs: string[] = new Array(n);
  const index = new Map<string, number>();
  let i = 0;
  for (const id of state.tasks.keys()) {
    if (i % TASKS_PER_STEP === 0) yield;
    strs[i] = id;
    index.set(id, i);
    i++;
  }
  /** Task ids (and ids of tasks the state no longer holds) index `strs`. */
  const intern = (s: string): number => indexIn(strs, index, s);
  /** Every other string (job keys, agent ids, hosts, reasons, port names) indexes `syms`, a
   *  short table, so those columns pack into u8/u16. */
  const syms: string[] = [];
  const symIndex = new Map<string, number>();
  const sym = (s: string): number => indexIn(syms, symIndex, s);

  const odd: unknown[] = [];
  /** A string-or-null field as an index (-1: null); anything else goes to `odd`. */
  const str = (t: number, field: string, v: unknown, table: (s: string) => number): number => {
    if (typeof v === "string") return table(v);
    if (v !== null) odd.push(t, field, v);
    return -1;
  };
  const num = (t: number, field: string, v: unknown): number => {
    if (typeof v === "number") return v;
    odd.push(t, field, v);
    return 0;
  };

  const col = () => new Float64Array(n);
  const cJob = col(),
    cInstance = col(),
    cConfigVersion = col(),
    cAncestor = col(),
    cMaxFail = col(),
    cState = col();
  const cFailures = col(),
    cAgent = col(),
    cHost = col(),
    cAgentSeq = col(),
    cExit = col(),
    cSuccessor = col();
  const cReason = col(),
    cThrottleMs = col(),
    cThrottledUntil = col(),
    cFlags = col(),
    cPorts = col(),
    cHistLen = col();
  let entries = 0;
  for (const t of state.tasks.values())
    entries += Array.isArray(t.history) && t.history.length % HISTORY_STRIDE === 0 ? t.history.length / HISTORY_STRIDE : 0;
  const hSeq = new Float64Array(entries),
    hIdx = new Float64Array(entries),
    hTs = new Float64Array(entries),
    hState = new Float64Array(entries);
  const portNames: number[] = [];
  const portValues: number[] = [];

  i = 0;
  let h = 0;
  let first = true;
  let cPendingCount = 0;
  for (const t of state.tasks.values()) {
    if (i % TASKS_PER_STEP === 0) yield;
    if (first) {
      checkFields("TaskRecord", t, TASK_FIELDS);
      first = false;
    }
    if (t.taskId !== strs[i]) odd.push(i, "taskId", t.taskId);
    cJob[i] = str(i, "job", t.job, sym);
    cInstance[i] = num(i, "instance", t.instance);
    cConfigVersion[i] = num(i, "configVersion", t.configVersion);
    cAncestor[i] = str(i, "ancestorId", t.ancestorId, intern);
    cMaxFail[i] = num(i, "maxTaskFailures", t.maxTaskFailures);
    if (t.state === "PENDING") cPendingCount++;
    const code = STATE_CODE.get(t.state);
    if (code === undefined) odd.push(i, "state", t.state);
    cState[i] = code ?? 0;
    cFailures[i] = num(i, "failureCount", t.failureCount);
    cAgent[i] = str(i, "agentId", t.agentId, sym);
    cHost[i] = str(i, "host", t.host, sym);
    cAgentSeq[i] = num(i, "agentSeq", t.agentSeq);
    let flags = 0;
    if (t.service === true) flags |= F_SERVICE;
    else if (t.service !== false) odd.push(i, "service", t.service);
    if (t.everKilling === true) flags |= F_EVER_KILLING;
    else if (t.everKilling !== false) odd.push(i, "everKilling", t.everKilling);
    if (t.rescheduleWanted === true) flags |= F_RESCHEDULE;
    else if (t.rescheduleWanted !== false) odd.push(i, "rescheduleWanted", t.rescheduleWanted);
    if (t.exitCode === null) flags |= F_EXIT_NULL;
    else cExit[i] = num(i, "exitCode", t.exitCode);
    const ports = t.ports;
    if (ports === null) flags |= F_PORTS_NULL;
    else if (!isNumberRecord(ports)) odd.push(i, "ports", ports);
    else {
      let k = 0;
      for (const name in ports) {
        portNames.push(sym(name));
        portValues.push(ports[name]!);
        k++;
      }
      cPorts[i] = k;
    }
    cFlags[i] = flags;
    cSuccessor[i] = str(i, "successorId", t.successorId, intern);
    const hist = t.history;
    if (Array.isArray(hist) && hist.length % HISTORY_STRIDE === 0) {
      const len = hist.length / HISTORY_STRIDE;
      let ok = true;
      for (let k = 0; k < hist.length; k++) if (typeof hist[k] !== "number") ok = false;
      if (ok) {
        for (let k = 0; k < hist.length; k += HISTORY_STRIDE, h++) {
          hSeq[h] = hist[k]!;
          hIdx[h] = hist[k + 1]!;
          hTs[h] = hist[k + 2]!;
          hState[h] = hist[k + 3]!;
        }
        cHistLen[i] = len;
      } else {
        // Keep the entry count consistent with the sizing pass above: pad, and carry the array.
        for (let k = 0; k < len; k++, h++) hSeq[h] = hIdx[h] = hTs[h] = hState[h] = 0;
        cHistLen[i] = len;
        odd.push(i, "history", hist);
      }
    } else {
      odd.push(i, "history", hist);
    }
    if (typeof t.lastReason === "string") cReason[i] = sym(t.lastReason);
    else odd.push(i, "lastReason", t.lastReason);
    cThrottleMs[i] = num(i, "throttleMs", t.throttleMs);
    cThrottledUntil[i] = num(i, "throttledUntil", t.throttledUntil);
    i++;
  }

  // The order stateHash digests tasks in (by id), as task positions: the reader skips the sort.
  const ids = yield* sortStringsSteps(strs.length === n ? strs : strs.slice(0, n));
  const order = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    if (k % TASKS_PER_STEP === 0) yield;
    order[k] = index.get(ids[k]!)!;
  }
  // The pending index must be exactly the PENDING tasks (decode checks this too, since the
  // index is not hashed): a state that breaks it is a fold bug, and is not written.
  const pending = new Float64Array(state.pending.size);
  i = 0;
  for (const id of state.pending) {
    if (state.tasks.get(id)?.state !== "PENDING") throw new SnapshotError(`the state's pending index names ${id}, which is not PENDING`);
    pending[i++] = intern(id);
  }
  if (cPendingCount !== state.pending.size)
    throw new SnapshotError(`the state's pending index holds ${state.pending.size} tasks, the state has ${cPendingCount} PENDING`);

  yield;
  const jobs: JobRow[] = [];
  for (const j of state.jobs.values()) {
    if (jobs.length % 256 === 0) yield;
    checkFields("JobRecord", j, JOB_FIELDS);
    const instanceIds: number[] = [];
    const instanceTasks: number[] = [];
    for (const [inst, taskId] of j.instances) {
      instanceIds.push(inst);
      instanceTasks.push(intern(taskId));
    }
    jobs.push([
      sym(j.key),
      j.config,
      j.configVersion,
      j.configs,
      j.createdSeq,
      j.createdTs,
      instanceIds,
      instanceTasks,
      [...j.killedInstances],
    ]);
  }
  const agents: AgentRow[] = [];
  for (const a of state.agents.values()) {
    if (agents.length % 64 === 0) yield;
    checkFields("AgentRecord", a, AGENT_FIELDS);
    const row: AgentRow = [
      sym(a.agentId),
      sym(a.host),
      a.attributes,
      a.resources,
      a.bootId,
      a.state,
      a.registeredSeq,
      a.registeredTs,
      packUsed(a.used),
      [...a.usedPorts],
      [...a.tasks].map(intern),
    ];
    if (a.isolation !== undefined) row.push(a.isolation);
    agents.push(row);
  }
  const small: Small = {
    jobs,
    agents,
    leader: state.leader,
    quotas: [...state.quotas],
    reservations: [...state.reservations],
    anomalies: state.anomalies,
    anomalyCount: state.anomalyCount,
    requests: [...state.requests],
    updates: [...state.updates],
    ...(state.cronJobs.size ? { cronJobs: [...state.cronJobs] } : {}),
    ...(state.hosts.size ? { hosts: [...state.hosts] } : {}),
    ...(state.windows.size ? { windows: [...state.windows] } : {}),
    odd,
    seq: state.seq,
    eventCount: state.eventCount,
    agentsVersion: state.agentsVersion,
    capacityVersion: state.capacityVersion,
  };

  const hash = yield* stateHashSteps(state, { taskOrder: order });
  yield;
  const strsPacked = packStrings(strs);
  yield;
  const smallPacked = smallCodec.pack(small);
  yield;
  // Each column is packed in a step of its own (the history columns hold millions of entries).
  const columns: Array<[name: string, values: Float64Array, length: number]> = [
    ["job", cJob, n],
    ["instance", cInstance, n],
    ["configVersion", cConfigVersion, n],
    ["ancestor", cAncestor, n],
    ["maxTaskFailures", cMaxFail, n],
    ["state", cState, n],
    ["failureCount", cFailures, n],
    ["agent", cAgent, n],
    ["host", cHost, n],
    ["agentSeq", cAgentSeq, n],
    ["exitCode", cExit, n],
    ["successor", cSuccessor, n],
    ["reason", cReason, n],
    ["throttleMs", cThrottleMs, n],
    ["throttledUntil", cThrottledUntil, n],
    ["flags", cFlags, n],
    ["ports", cPorts, n],
    ["histLen", cHistLen, n],
    ["portName", Float64Array.from(portNames), portNames.length],
    ["portValue", Float64Array.from(portValues), portValues.length],
    ["hSeq", hSeq, entries],
    ["hIdx", hIdx, entries],
    ["hTs", hTs, entries],
    ["hState", hState, entries],
  ];
  const t: Record<string, Column> = {};
  for (const [name, values, length] of columns) {
    t[name] = packColumn(values, length);
    yield;
  }
  const orderPacked = packColumn(order, n);
  yield;
  const body = bodyCodec.pack({
    n,
    entries,
    strs: strsPacked,
    syms: packStrings(syms),
    t,
    order: orderPacked,
    np: pending.length,
    pending: packColumn(pending, pending.length),
    small: smallPacked,
  });
  yield;
  // The body's digest, in pieces (hundreds of MB at millions of tasks).
  const digest = createHash("sha256");
  for (let at = 0; at < body.length; at += DIGEST_PIECE) {
    digest.update(body.subarray(at, at + DIGEST_PIECE));
    yield;
  }
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    seq: state.seq,
    eventCount: state.eventCount,
    stateHash: hash,
    createdTs: opts.createdTs ?? 0,
    digest: STATE_DIGEST_VERSION,
    tasks: n,
    jobs: state.jobs.size,
    agents: state.agents.size,
    ...(opts.stream !== undefined ? { stream: opts.stream } : {}),
    codec: SNAPSHOT_CODEC,
    bodySha256: digest.digest("hex"),
  };
  return { bytes: outer.pack([header, body]), header };
}

/** A plain object whose values are all numbers (a task's ports), with no -0 to lose. */
function isNumberRecord(v: unknown): v is Record<string, number> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return false;
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x !== "number" || (x === 0 && 1 / x < 0)) return false;
  }
  return true;
}

/** An agent's `used`: four f64s (bytes), which keep -0 (cpus sums can round to it); else as is. */
function packUsed(used: AgentRecord["used"]): unknown {
  const keys = Object.keys(used);
  const exact =
    keys.length === 4 &&
    keys[0] === "cpus" &&
    keys[1] === "ramMb" &&
    keys[2] === "diskMb" &&
    keys[3] === "gpus" &&
    keys.every((k) => typeof used[k as keyof typeof used] === "number");
  if (!exact) return used;
  return new Uint8Array(new Float64Array([used.cpus, used.ramMb, used.diskMb, used.gpus]).buffer);
}

function unpackUsed(v: unknown): AgentRecord["used"] {
  if (!(v instanceof Uint8Array)) return v as AgentRecord["used"];
  if (v.byteLength !== 32) throw new SnapshotError("agent `used` is malformed");
  const f = new Float64Array(Uint8Array.prototype.slice.call(v).buffer);
  return { cpus: f[0]!, ramMb: f[1]!, diskMb: f[2]!, gpus: f[3]! };
}

// ---- decode ---------------------------------------------------------------------------------

/** The header alone (the body is not decoded). Throws SnapshotError if this is no snapshot of
 *  this format version. */
export function readSnapshotHeader(bytes: Uint8Array): SnapshotHeader {
  return splitSnapshot(bytes).header;
}

/**
 * Whether these bytes are ones a build of this codec checked before it stored them: the header
 * names SNAPSHOT_CODEC and the body's SHA-256 is the one it records. Then decoding them gives the
 * state their header's hash records, without computing it (see SNAPSHOT_CODEC). False for a
 * snapshot of another codec or of a build before codecs were recorded: check its state hash.
 * Throws SnapshotError when the body is not the one its header records (corrupt or altered).
 */
export function checkedByWriter(bytes: Uint8Array): boolean {
  const { header, body } = splitSnapshot(bytes);
  if (header.bodySha256 === undefined) return false;
  const got = createHash("sha256").update(body).digest("hex");
  if (got !== header.bodySha256) throw new SnapshotError(`snapshot body digest mismatch: header ${header.bodySha256}, body ${got}`);
  return header.codec === SNAPSHOT_CODEC;
}

function splitSnapshot(bytes: Uint8Array): { header: SnapshotHeader; body: Uint8Array } {
  let top: unknown;
  try {
    top = outer.unpack(bytes);
  } catch (err) {
    throw new SnapshotError(`not a snapshot: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(top) || top.length !== 2 || typeof top[0] !== "object" || top[0] === null || !(top[1] instanceof Uint8Array)) {
    throw new SnapshotError("not a snapshot: expected [header, body]");
  }
  const header = top[0] as SnapshotHeader;
  if (header.format !== SNAPSHOT_FORMAT)
    throw new SnapshotError(`not a snapshot: format is ${JSON.stringify(header.format)}, not "${SNAPSHOT_FORMAT}"`);
  if (header.version !== SNAPSHOT_VERSION) {
    throw new SnapshotError(
      `snapshot format version ${JSON.stringify(header.version)} is not the version this build reads (${SNAPSHOT_VERSION})`,
    );
  }
  for (const k of ["seq", "eventCount", "createdTs", "digest", "tasks", "jobs", "agents"] as const) {
    if (typeof header[k] !== "number") throw new SnapshotError(`snapshot header has no ${k}`);
  }
  if (typeof header.stateHash !== "string") throw new SnapshotError("snapshot header has no stateHash");
  if (header.stream !== undefined && typeof header.stream !== "string") throw new SnapshotError("snapshot header has a malformed stream");
  if (header.codec !== undefined && typeof header.codec !== "string") throw new SnapshotError("snapshot header has a malformed codec");
  if (header.bodySha256 !== undefined && typeof header.bodySha256 !== "string")
    throw new SnapshotError("snapshot header has a malformed bodySha256");
  return { header, body: top[1] };
}

/** The state a snapshot holds. Throws SnapshotError unless it decodes to the hash in its header. */
export function decodeSnapshot(bytes: Uint8Array): ClusterState {
  return readSnapshot(bytes).state;
}

export interface ReadOptions {
  /**
   * Recompute stateHash and compare it with the header's (default true). With false the state is
   * only decoded (format, version and structure checked, not the hash): the caller must check the
   * same bytes with verifySnapshot before trusting it, as a cold start does in a worker thread
   * (src/storage/verifyWorker.ts) while it folds the tail.
   */
  verify?: boolean;
  /**
   * Have another thread build the task id index while this one decodes the rest: given the id
   * table, returns a function that waits for the tables (null: build them here), or null at once
   * when it cannot (src/storage/indexWorker.ts). The tables must be what IdIndex would build.
   */
  indexTables?: (ids: PackedIds, n: number) => (() => IdTables | null) | null;
}

export interface ReadSnapshot {
  header: SnapshotHeader;
  state: ClusterState;
  /** The decoded state's tasks in stateHash's order, as positions in its task map (the
   *  `taskOrder` of stateHash; valid until the state changes). */
  taskOrder: number[];
}

/** decodeSnapshot, with the header; `{ verify: false }` skips the state hash check. */
export function readSnapshot(bytes: Uint8Array, opts: ReadOptions = {}): ReadSnapshot {
  const { header, body } = splitSnapshot(bytes);
  if (header.digest !== STATE_DIGEST_VERSION) {
    throw new SnapshotError(`snapshot was hashed with state digest v${header.digest}; this build computes v${STATE_DIGEST_VERSION}`);
  }
  let state: ClusterState;
  let order: number[];
  try {
    ({ state, order } = decodeBody(body, opts.indexTables));
  } catch (err) {
    if (err instanceof SnapshotError) throw err;
    throw new SnapshotError(`snapshot body does not decode: ${(err as Error).message}`, { cause: err });
  }
  if (state.seq !== header.seq || state.eventCount !== header.eventCount) {
    throw new SnapshotError(
      `snapshot body is at seq ${state.seq} (${state.eventCount} events), its header says seq ${header.seq} (${header.eventCount} events)`,
    );
  }
  if (opts.verify !== false) {
    const hash = stateHash(state, { taskOrder: order });
    if (hash !== header.stateHash) {
      throw new SnapshotError(`snapshot state hash mismatch: header ${header.stateHash}, decoded state ${hash}`);
    }
  }
  return { header, state, taskOrder: order };
}

/**
 * Check snapshot bytes fully: decode them and compare the state's hash with the header's (what
 * readSnapshot does by default; the state is dropped). Returns the header; throws SnapshotError
 * unless the bytes decode to exactly the state that was written. Decoding is deterministic, so a
 * state another readSnapshot(bytes, { verify: false }) decoded from the same bytes is that state.
 */
export function verifySnapshot(bytes: Uint8Array): SnapshotHeader {
  return readSnapshot(bytes).header;
}

interface Body {
  n: number;
  entries: number;
  strs: unknown;
  syms: unknown;
  t: Record<string, unknown>;
  order: unknown;
  np: number;
  pending: unknown;
  small: Uint8Array;
}

function decodeBody(bytes: Uint8Array, indexTables?: ReadOptions["indexTables"]): { state: ClusterState; order: number[] } {
  const body = bodyCodec.unpack(bytes) as Body;
  if (typeof body !== "object" || body === null || typeof body.t !== "object" || !(body.small instanceof Uint8Array)) {
    throw new SnapshotError("snapshot body is malformed");
  }
  const { n, entries } = body;
  // The task id table: every string in it is a task id (the brand is a type, not a check).
  const strs = unpackIds(body.strs);
  // Started first, waited for last (when the task table is made, after the jobs and agents).
  const tables = Number.isSafeInteger(n) && n > 0 && n <= strs.length ? (indexTables?.(strs, n) ?? null) : null;
  /** Task id k of the table, for the small part's references (a bad index is a bad snapshot). */
  const idAt = (k: unknown, what: string): TaskId => {
    if (typeof k !== "number" || !(k >= 0 && k < strs.length && (k | 0) === k))
      throw new SnapshotError(`snapshot ${what} names task index ${String(k)}, out of range`);
    return strs.at(k);
  };
  const syms = unpackStrings(body.syms, "syms");
  const small = smallCodec.unpack(body.small) as Small;
  // The tasks stay columns; each becomes a record when used (taskColumns.ts, taskMap.ts).
  const columns = new TaskColumns({ n, entries, strs, syms, t: body.t, order: body.order, odd: small.odd, fields: TASK_FIELDS, tables });
  const order = Array.from(columns.order);

  // Jobs share their key string with their tasks (as the fold does).
  const jobs: JobRecord[] = [];
  for (const [keyIdx, config, cv, configs, createdSeq, createdTs, instanceIds, instanceTasks, killed] of small.jobs) {
    const key = syms[keyIdx]! as JobKeyString;
    const instances = new Map<number, TaskId>();
    for (let k = 0; k < instanceIds.length; k++) instances.set(instanceIds[k]!, idAt(instanceTasks[k], "job instances"));
    jobs.push({
      key,
      config: config as JobRecord["config"],
      configVersion: cv,
      configs: configs as JobRecord["configs"],
      createdSeq,
      createdTs,
      instances,
      killedInstances: new Set(killed),
    });
  }
  const agents: AgentRecord[] = [];
  for (const [
    agentIdx,
    hostIdx,
    attributes,
    resources,
    bootId,
    st,
    registeredSeq,
    registeredTs,
    used,
    usedPorts,
    agentTasks,
    isolation,
  ] of small.agents) {
    const agentId = syms[agentIdx]! as AgentId;
    agents.push({
      agentId,
      host: syms[hostIdx]!,
      attributes: attributes as AgentRecord["attributes"],
      resources: resources as AgentRecord["resources"],
      bootId,
      state: st as AgentRecord["state"],
      registeredSeq,
      registeredTs,
      used: unpackUsed(used),
      usedPorts: new Set(usedPorts),
      tasks: new Set(agentTasks.map((k) => idAt(k, "agent tasks"))),
      ...(isolation !== undefined ? { isolation } : {}),
    });
  }
  // The task table now, its id index with it (the other thread's tables, when it built them).
  const state = new ClusterState(TaskMap.fromCold(columns));
  for (const job of jobs) state.jobs.set(job.key, job);
  for (const agent of agents) state.agents.set(agent.agentId, agent);
  state.seq = small.seq;
  state.eventCount = small.eventCount;
  state.leader = small.leader;
  for (const [role, q] of small.quotas) state.quotas.set(role, q as never);
  for (const [taskId, r] of small.reservations) state.reservations.set(taskId, r as never);
  // Anomalies were {seq, type, problem} before they gained an index: such a snapshot describes a
  // state this build would fold differently, so it is refused (the log still has everything).
  for (const a of small.anomalies) {
    if (typeof a?.why !== "string" || !Number.isSafeInteger(a.index))
      throw new SnapshotError("snapshot holds anomalies in the format before index/why; folding the log instead");
  }
  state.anomalies.push(...small.anomalies);
  state.anomalyCount = small.anomalyCount ?? small.anomalies.length;
  for (const [key, r] of small.requests ?? []) state.requests.set(key, r as never);
  for (const [id, u] of small.updates ?? []) state.updates.set(id, u as never);
  for (const [key, c] of small.cronJobs ?? []) state.cronJobs.set(key as JobKeyString, c as never);
  for (const [key, h] of small.hosts ?? []) state.hosts.set(key, h as never);
  for (const [key, w] of small.windows ?? []) state.windows.set(key, w as never);
  state.agentsVersion = small.agentsVersion;
  state.capacityVersion = small.capacityVersion;

  // The derived PENDING index, in its recorded order; it must be exactly the PENDING tasks.
  if (!Number.isSafeInteger(body.np) || body.np < 0) throw new SnapshotError("snapshot body is malformed");
  const pendingCol = unpackColumn(body.pending, body.np, "pending");
  for (let k = 0; k < pendingCol.a.length; k++) {
    const p = pendingCol.a[k]! + pendingCol.b;
    const id = p >= 0 && p < strs.length && (p | 0) === p ? strs.at(p) : undefined;
    if (id === undefined || !(p < n && columns.isPending(p)))
      throw new SnapshotError(`snapshot pending index names ${id}, which is not PENDING`);
    state.restorePending(id);
  }
  const pendingTasks = columns.pendingRows();
  if (pendingTasks !== state.pending.size)
    throw new SnapshotError(`snapshot pending index holds ${state.pending.size} tasks, the state has ${pendingTasks} PENDING`);

  return { state, order };
}
