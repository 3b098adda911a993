// A canonical hash of ClusterState: the determinism check. Two states hash equal exactly when
// they hold the same data, whatever the order things were inserted in, in any version. The hash
// is SHA-256 of a canonical text (canonical.ts) of a versioned projection of the state.

import { createHash, type Hash } from "node:crypto";
import type { TaskId } from "../domain/types.js";
import { TASK_STATES } from "../statemachines/taskStates.js";
import { canonical } from "./canonical.js";
import { SnapshotError } from "./snapshotError.js";
import type { AgentRecord, ClusterState, JobRecord, TaskRecord } from "./state.js";
import { runSteps, type Steps, sortStringsSteps, TASKS_PER_STEP } from "./steps.js";
import { F_EVER_KILLING, F_EXIT_NULL, F_RESCHEDULE, TaskColumns } from "./taskColumns.js";

/**
 * The state digest, version 1: exactly these fields, by name. Golden logs pin their hash, so
 * this projection only ever grows by adding a digest version; derived caches and indexes
 * (TaskRecord.service, ClusterState.pending, …) stay out, and internal representation can change
 * freely as long as the projection does not.
 */
export const STATE_DIGEST_VERSION = 1;

/** The task projection of digest v1 (stateHash writes canonical() of it directly, see writeTaskDigest). */
export function digestTask(t: TaskRecord) {
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

export function digestJob(j: JobRecord) {
  return {
    config: j.config,
    configVersion: j.configVersion,
    configs: j.configs,
    createdSeq: j.createdSeq,
    createdTs: j.createdTs,
    instances: j.instances,
    killedInstances: j.killedInstances,
  };
}

export function digestAgent(a: AgentRecord) {
  return {
    host: a.host,
    attributes: a.attributes,
    resources: a.resources,
    bootId: a.bootId,
    // Only when said, so that the hash of every state folded before agents said it is unchanged.
    ...(a.isolation !== undefined ? { isolation: a.isolation } : {}),
    state: a.state,
    registeredSeq: a.registeredSeq,
    registeredTs: a.registeredTs,
    used: a.used,
    usedPorts: a.usedPorts,
    tasks: a.tasks,
  };
}

export interface StateHashOptions {
  /**
   * The order stateHash digests the tasks in (by id, Array#sort's default order: UTF-16 code
   * units), as positions in the map's insertion order, when already known (a snapshot carries
   * it): skips the sort and the per-task map lookups, the costliest steps at millions of tasks.
   * Checked (a permutation, ids strictly ascending); any other order is ignored and the hash
   * computed with a sort.
   */
  taskOrder?: ArrayLike<number>;
}

const FEED_BYTES = 1 << 16;
const HUGE_TEXT = FEED_BYTES >> 3;

/**
 * The hash input as UTF-8 bytes, buffered and fed to SHA-256 in 64 KiB pieces. Writing the
 * canonical text straight into bytes (digits by hand, plain ASCII strings copied) costs a
 * fraction of building it as strings, and one update() per entry costs more than SHA-256
 * itself. The bytes are exactly those of update(canonical text): test/snapshot.test.ts checks
 * stateHash against the string implementation, on odd values too.
 */
class Utf8Feed {
  /** The buffer and the position in it: the column writer writes a row's bytes straight in,
   *  after room(). */
  readonly buf = Buffer.allocUnsafe(FEED_BYTES);
  pos = 0;
  private first = false;
  constructor(private readonly h: Hash) {}

  private flush(): void {
    if (this.pos > 0) {
      this.h.update(this.buf.subarray(0, this.pos));
      this.pos = 0;
    }
  }

  /** Text as UTF-8, as update(text) encodes it (lone surrogates become U+FFFD). */
  text(t: string): void {
    const n = t.length;
    if (n > HUGE_TEXT) {
      this.flush();
      this.h.update(t);
      return;
    }
    if (this.pos + 3 * n > FEED_BYTES) this.flush();
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) {
      const c = t.charCodeAt(i);
      if (c >= 0x80) {
        this.pos += buf.write(t, this.pos, "utf8");
        return;
      }
      buf[pos++] = c;
    }
    this.pos = pos;
  }

  /** At least n (≤ FEED_BYTES) bytes free in buf after pos: flushes when there are fewer. */
  room(n: number): void {
    if (this.pos + n > FEED_BYTES) this.flush();
  }

  /** Bytes as they are (text already encoded). */
  bytes(b: Uint8Array): void {
    const n = b.length;
    if (n > HUGE_TEXT) {
      this.flush();
      this.h.update(b);
      return;
    }
    if (this.pos + n > FEED_BYTES) this.flush();
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos++] = b[i]!;
    this.pos = pos;
  }

  /** An ASCII literal (field names, punctuation). */
  ascii(t: string): void {
    const n = t.length;
    if (this.pos + n > FEED_BYTES) this.flush();
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos++] = t.charCodeAt(i);
    this.pos = pos;
  }

  /** canonical() of a string: JSON.stringify, copied directly when nothing needs escaping. */
  json(t: string): void {
    const n = t.length;
    if (n > HUGE_TEXT) return this.text(JSON.stringify(t));
    if (this.pos + n + 2 > FEED_BYTES) this.flush();
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    buf[pos++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = t.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) {
        this.pos = start;
        return this.text(JSON.stringify(t));
      }
      buf[pos++] = c;
    }
    buf[pos++] = 0x22;
    this.pos = pos;
  }

  /** canonical() of a number: integers digit by digit (as JSON.stringify writes them, -0 as 0). */
  num(x: number): void {
    if (!Number.isSafeInteger(x)) return this.text(Number.isFinite(x) ? JSON.stringify(x) : `"${x}"`);
    if (this.pos + 24 > FEED_BYTES) this.flush();
    const buf = this.buf;
    let pos = this.pos;
    if (x < 0) {
      buf[pos++] = 0x2d;
      x = -x;
    }
    if (x >= 1e9) {
      // Above 31 bits: the digits above the lowest nine, then those nine zero-padded.
      const hi = Math.floor(x / 1e9);
      pos = hi >= 1e9 ? writePadded(buf, writeUint(buf, pos, Math.floor(hi / 1e9)), hi % 1e9) : writeUint(buf, pos, hi);
      pos = writePadded(buf, pos, x - hi * 1e9);
    } else pos = writeUint(buf, pos, x);
    this.pos = pos;
  }

  /** canonical(v), with the common scalars written directly. */
  value(v: unknown): void {
    if (typeof v === "string") this.json(v);
    else if (typeof v === "number") this.num(v);
    else if (v === null) this.ascii("null");
    else if (typeof v === "boolean") this.ascii(v ? "true" : "false");
    else writeCanonical(this, v);
  }

  /** The start of an object written key by key (its `{` comes with the first key). */
  open(): void {
    this.first = true;
  }
  /** A key: `{"name":` for the object's first, `,"name":` after. */
  key(literals: readonly [string, string]): void {
    this.ascii(this.first ? literals[0] : literals[1]);
    this.first = false;
  }
  close(): void {
    this.ascii(this.first ? "{}" : "}");
  }

  digest(): string {
    this.flush();
    return this.h.digest("hex");
  }
}

/** The digits of an integer 0 ≤ x < 1e9 at `pos`; returns the position after them. */
function writeUint(buf: Buffer, pos: number, x: number): number {
  x |= 0;
  const len = x < 10 ? 1 : x < 100 ? 2 : x < 1e3 ? 3 : x < 1e4 ? 4 : x < 1e5 ? 5 : x < 1e6 ? 6 : x < 1e7 ? 7 : x < 1e8 ? 8 : 9;
  let p = pos + len;
  do {
    const q = (x / 10) | 0;
    buf[--p] = 0x30 + x - q * 10;
    x = q;
  } while (x > 0);
  return pos + len;
}

/** The nine digits of an integer 0 ≤ x < 1e9, zero-padded. */
function writePadded(buf: Buffer, pos: number, x: number): number {
  x |= 0;
  for (let p = pos + 9; p > pos; ) {
    const q = (x / 10) | 0;
    buf[--p] = 0x30 + x - q * 10;
    x = q;
  }
  return pos + 9;
}

const byCanonicalKey = (a: readonly [string, number], b: readonly [string, number]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** canonical(v) into the feed, without building the text (the same bytes). */
function writeCanonical(f: Utf8Feed, v: unknown): void {
  if (v === null || v === undefined) return f.ascii("null");
  switch (typeof v) {
    case "number":
      return f.num(v);
    case "string":
      return f.json(v);
    case "boolean":
      return f.ascii(v ? "true" : "false");
    case "object":
      break;
    default:
      throw new Error(`cannot hash a ${typeof v}`);
  }
  if (Array.isArray(v)) {
    // As map() and join(): holes write nothing, undefined writes null.
    f.ascii("[");
    for (let i = 0; i < v.length; i++) {
      if (i > 0) f.ascii(",");
      if (i in v) writeCanonical(f, v[i]);
    }
    return f.ascii("]");
  }
  if (v instanceof Set) {
    const items = [...v].map(canonical).sort();
    f.ascii("[");
    for (let i = 0; i < items.length; i++) {
      if (i > 0) f.ascii(",");
      f.json(items[i]!);
    }
    return f.ascii("]");
  }
  if (v instanceof Map) {
    // Entries by canonical key (a stable sort, as canonical's), values written in place.
    const values = [...v.values()];
    const keys = [...v.keys()].map((k, i) => [canonical(k), i] as const).sort(byCanonicalKey);
    f.ascii("{");
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) f.ascii(",");
      f.text(keys[i]![0]);
      f.ascii(":");
      writeCanonical(f, values[keys[i]![1]]);
    }
    return f.ascii("}");
  }
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  f.ascii("{");
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) f.ascii(",");
    f.json(keys[i]!);
    f.ascii(":");
    writeCanonical(f, obj[keys[i]!]);
  }
  f.ascii("}");
}

/** canonical(digestTask(t)) into the feed: the same text, field by field in sorted key order,
 *  each written only when not undefined (as canonical() does). */
// biome-ignore-start lint/complexity/noCommaOperator: one line per field keeps this hot writer (a third of stateHash's time) a table to read against digestTask
function writeTaskDigest(f: Utf8Feed, t: TaskRecord): void {
  let v: unknown;
  f.open();
  if ((v = t.agentId) !== undefined) f.key(K.agentId), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.agentSeq) !== undefined) f.key(K.agentSeq), typeof v === "number" ? f.num(v) : f.value(v);
  if ((v = t.ancestorId) !== undefined) f.key(K.ancestorId), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.configVersion) !== undefined) f.key(K.configVersion), typeof v === "number" ? f.num(v) : f.value(v);
  if ((v = t.everKilling) !== undefined) f.key(K.everKilling), f.value(v);
  if ((v = t.exitCode) !== undefined) f.key(K.exitCode), typeof v === "number" ? f.num(v) : f.value(v);
  if ((v = t.failureCount) !== undefined) f.key(K.failureCount), typeof v === "number" ? f.num(v) : f.value(v);
  if ((v = t.history) !== undefined) f.key(K.history), writeNumbers(f, v);
  if ((v = t.host) !== undefined) f.key(K.host), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.instance) !== undefined) f.key(K.instance), typeof v === "number" ? f.num(v) : f.value(v);
  if ((v = t.job) !== undefined) f.key(K.job), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.lastReason) !== undefined) f.key(K.lastReason), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.ports) !== undefined) f.key(K.ports), writePorts(f, v);
  if ((v = t.rescheduleWanted) !== undefined) f.key(K.rescheduleWanted), f.value(v);
  if ((v = t.state) !== undefined) f.key(K.state), typeof v === "string" ? f.json(v) : f.value(v);
  if ((v = t.successorId) !== undefined) f.key(K.successorId), typeof v === "string" ? f.json(v) : f.value(v);
  if (t.throttleMs) {
    f.key(K.throttleMs);
    f.value(t.throttleMs);
    if ((v = t.throttledUntil) !== undefined) f.key(K.throttledUntil), f.value(v);
  }
  f.close();
}
// biome-ignore-end lint/complexity/noCommaOperator: end of writeTaskDigest

/**
 * canonical(digestTask(row)) of a snapshot's cold row, written from its columns: exactly the bytes
 * writeTaskDigest(f, columns.row(p)) writes, without building the row (checking a 2.4M-task
 * snapshot built and dropped as many records; test/snapshot.test.ts compares both writers on every
 * row of its states). A row with a value no column holds is left to writeTaskDigest (false).
 */
function columnWriter(t: TaskColumns): (f: Utf8Feed, k: number) => boolean {
  const { c, ids, syms, hStart } = t;
  const order = t.order;
  // Each column's value is a[p] + b (taskColumns.ts), each read at a load site of its own.
  const {
    agent,
    agentSeq,
    ancestor,
    configVersion,
    exitCode,
    failureCount,
    host,
    instance,
    job,
    reason,
    state,
    successor,
    throttleMs,
    throttledUntil,
    flags: flagsCol,
  } = c;
  const { hSeq, hIdx, hTs, hState } = t;
  /** Each sym as its canonical JSON bytes, once (job keys, agents, hosts, reasons repeat). */
  const symJson = syms.map((x) => Buffer.from(canonical(x), "utf8"));
  const stateJson = TASK_STATES.map((x) => Buffer.from(canonical(x), "utf8"));
  const NULL = Buffer.from("null");
  const L = (text: string) => Buffer.from(text, "latin1");
  const L_AGENT = L('{"agentId":'),
    L_AGENT_SEQ = L(',"agentSeq":'),
    L_ANCESTOR = L(',"ancestorId":'),
    L_CONFIG = L(',"configVersion":'),
    L_KILLING_T = L(',"everKilling":true,"exitCode":'),
    L_KILLING_F = L(',"everKilling":false,"exitCode":'),
    L_FAILURES = L(',"failureCount":'),
    L_HISTORY = L(',"history":['),
    L_HOST = L('],"host":'),
    L_INSTANCE = L(',"instance":'),
    L_JOB = L(',"job":'),
    L_REASON = L(',"lastReason":'),
    L_PORTS = L(',"ports":'),
    L_RESCHEDULE_T = L(',"rescheduleWanted":true'),
    L_RESCHEDULE_F = L(',"rescheduleWanted":false'),
    L_STATE = L(',"state":'),
    L_SUCCESSOR = L(',"successorId":'),
    L_THROTTLE = L(',"throttleMs":'),
    L_THROTTLED_UNTIL = L(',"throttledUntil":');
  /** Room a row's fixed part takes at most: its keys, 10 numbers, the state, punctuation. */
  const FIXED = 512;
  const HISTORY_ENTRY = 4 * 24 + 4;
  const sym = (k: number): Buffer => (k === -1 ? NULL : symJson[k]!);
  return (f, k) => {
    const p = order[k]!;
    if (t.hasOdd(p)) return false;
    const flags = flagsCol.a[p]! + flagsCol.b;
    const h0 = hStart[p]!;
    const h1 = hStart[p + 1]!;
    const agentJ = sym(agent.a[p]! + agent.b),
      hostJ = sym(host.a[p]! + host.b),
      jobJ = sym(job.a[p]! + job.b);
    const room = FIXED + (h1 - h0) * HISTORY_ENTRY + agentJ.length + hostJ.length + jobJ.length;
    if (room > FEED_BYTES) return false; // a row this large: written from its record
    f.room(room);
    const buf = f.buf;
    let pos = f.pos;
    pos = put(buf, pos, L_AGENT);
    pos = put(buf, pos, agentJ);
    pos = put(buf, pos, L_AGENT_SEQ);
    pos = putNum(f, buf, pos, agentSeq.a[p]! + agentSeq.b);
    pos = put(buf, pos, L_ANCESTOR);
    f.pos = pos;
    const anc = ancestor.a[p]! + ancestor.b;
    if (anc === -1) f.bytes(NULL);
    else f.json(ids.at(anc));
    f.room(room);
    pos = put(f.buf, f.pos, L_CONFIG);
    pos = putNum(f, buf, pos, configVersion.a[p]! + configVersion.b);
    pos = put(buf, pos, flags & F_EVER_KILLING ? L_KILLING_T : L_KILLING_F);
    pos = flags & F_EXIT_NULL ? put(buf, pos, NULL) : putNum(f, buf, pos, exitCode.a[p]! + exitCode.b);
    pos = put(buf, pos, L_FAILURES);
    pos = putNum(f, buf, pos, failureCount.a[p]! + failureCount.b);
    pos = put(buf, pos, L_HISTORY);
    for (let h = h0; h < h1; h++) {
      if (h > h0) buf[pos++] = 0x2c;
      pos = putNum(f, buf, pos, hSeq.a[h]! + hSeq.b);
      buf[pos++] = 0x2c;
      pos = putNum(f, buf, pos, hIdx.a[h]! + hIdx.b);
      buf[pos++] = 0x2c;
      pos = putNum(f, buf, pos, hTs.a[h]! + hTs.b);
      buf[pos++] = 0x2c;
      pos = putNum(f, buf, pos, hState.a[h]! + hState.b);
    }
    pos = put(buf, pos, L_HOST);
    pos = put(buf, pos, hostJ);
    pos = put(buf, pos, L_INSTANCE);
    pos = putNum(f, buf, pos, instance.a[p]! + instance.b);
    pos = put(buf, pos, L_JOB);
    pos = put(buf, pos, jobJ);
    f.pos = pos;
    const r = symJson[reason.a[p]! + reason.b];
    if (r !== undefined) {
      f.bytes(L_REASON);
      f.bytes(r);
    }
    f.bytes(L_PORTS);
    writePorts(f, t.ports(p));
    f.bytes(flags & F_RESCHEDULE ? L_RESCHEDULE_T : L_RESCHEDULE_F);
    const st = stateJson[state.a[p]! + state.b];
    if (st !== undefined) {
      f.bytes(L_STATE);
      f.bytes(st);
    }
    f.bytes(L_SUCCESSOR);
    const suc = successor.a[p]! + successor.b;
    if (suc === -1) f.bytes(NULL);
    else f.json(ids.at(suc));
    const throttle = throttleMs.a[p]! + throttleMs.b;
    if (throttle) {
      f.bytes(L_THROTTLE);
      f.num(throttle);
      f.bytes(L_THROTTLED_UNTIL);
      f.num(throttledUntil.a[p]! + throttledUntil.b);
    }
    f.ascii("}");
    return true;
  };
}

/** Bytes at pos (room made by the caller); returns the position after them. */
function put(buf: Buffer, pos: number, b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) buf[pos++] = b[i]!;
  return pos;
}

/** canonical() of a number at pos, as Utf8Feed.num writes it (room for 24 bytes made by the
 *  caller); anything but a safe integer goes through the feed itself. */
function putNum(f: Utf8Feed, buf: Buffer, pos: number, x: number): number {
  if (x >= 0 && x < 1e9 && (x | 0) === x) return writeUint(buf, pos, x);
  f.pos = pos;
  f.num(x);
  return f.pos;
}

/** A task digest's keys as [first-key literal, later-key literal] (`{"k":` is written whole). */
const K = Object.fromEntries(
  [
    "agentId",
    "agentSeq",
    "ancestorId",
    "configVersion",
    "everKilling",
    "exitCode",
    "failureCount",
    "history",
    "host",
    "instance",
    "job",
    "lastReason",
    "ports",
    "rescheduleWanted",
    "state",
    "successorId",
    "throttleMs",
    "throttledUntil",
  ].map((k) => [k, [`{"${k}":`, `,"${k}":`] as const]),
) as Record<keyof ReturnType<typeof digestTask>, readonly [string, string]>;

/**
 * canonical(v) of a task's ports: a plain object of a few numbers, its keys sorted by insertion
 * (no Object.keys().filter().sort() per task), else the general path.
 */
function writePorts(f: Utf8Feed, v: unknown): void {
  if (v === null || typeof v !== "object" || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return writeCanonical(f, v);
  const obj = v as Record<string, unknown>;
  const keys: string[] = [];
  for (const k in obj) {
    const x = obj[k];
    if (x === undefined) continue;
    if (typeof x !== "number" || keys.length >= 8) return writeCanonical(f, v);
    // Insertion sort: a task has a handful of ports.
    let i = keys.length;
    keys.push(k);
    while (i > 0 && keys[i - 1]! > k) {
      keys[i] = keys[i - 1]!;
      i--;
    }
    keys[i] = k;
  }
  f.ascii("{");
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) f.ascii(",");
    f.json(keys[i]!);
    f.ascii(":");
    f.num(obj[keys[i]!] as number);
  }
  f.ascii("}");
}

/** canonical(v) of a task history: an array of finite numbers, else the general path. */
function writeNumbers(f: Utf8Feed, v: unknown): void {
  if (!Array.isArray(v)) return writeCanonical(f, v);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isFinite(x)) return writeCanonical(f, v);
  }
  f.ascii("[");
  for (let i = 0; i < v.length; i++) {
    if (i > 0) f.ascii(",");
    f.num(v[i]);
  }
  f.ascii("]");
}

export function stateHash(state: ClusterState, opts: StateHashOptions = {}): string {
  return runSteps(stateHashSteps(state, opts));
}

/** stateHash as sliced work: yields every TASKS_PER_STEP tasks. */
export function* stateHashSteps(state: ClusterState, opts: StateHashOptions = {}): Steps<string> {
  const n = state.tasks.size;
  // A decoded snapshot's untouched tasks: read from its columns in their id order, each row built
  // for its digest and dropped (nothing kept: checking a snapshot builds no table).
  const cold = state.tasks.untouchedCold();
  if (cold?.order && cold.order.length === n) {
    const rows = cold.order;
    for (let k = 0; k < n; k++) {
      if (k % (TASKS_PER_STEP * 4) === 0) yield;
      // (rows is a permutation: checked when the columns were made.) Lookups in the table search
      // this order, so rows out of it are a broken snapshot, not just another order to sort.
      if (k > 0 && !(cold.ids.at(rows[k - 1]!) < cold.ids.at(rows[k]!)))
        throw new SnapshotError(`snapshot task order is not by id at position ${k}: the table's lookups would miss`);
    }
    return yield* digestState(
      state,
      n,
      (k) => cold.ids.at(rows[k]!),
      (k) => state.tasks.peek(rows[k]!),
      cold instanceof TaskColumns ? columnWriter(cold) : undefined,
    );
  }
  const order = opts.taskOrder;
  if (order && order.length === n) {
    // The map's entries by insertion position, read in one sequential pass.
    const ids = new Array<TaskId>(n);
    const tasks = new Array<TaskRecord>(n);
    let i = 0;
    for (const [id, t] of state.tasks) {
      if (i % TASKS_PER_STEP === 0) yield;
      ids[i] = id;
      tasks[i] = t;
      i++;
    }
    // A permutation with ids strictly ascending is exactly the sorted order.
    const seen = new Uint8Array(n);
    let ok = true;
    for (let k = 0; k < n && ok; k++) {
      if (k % (TASKS_PER_STEP * 4) === 0) yield;
      const p = order[k]!;
      if (!(p >= 0 && p < n) || seen[p] || (k > 0 && !(ids[order[k - 1]!]! < ids[p]!))) ok = false;
      else seen[p] = 1;
    }
    if (ok)
      return yield* digestState(
        state,
        n,
        (k) => ids[order[k]!]!,
        (k) => tasks[order[k]!]!,
      );
  }
  const ids = yield* sortStringsSteps([...state.tasks.keys()]);
  return yield* digestState(
    state,
    n,
    (k) => ids[k]!,
    (k) => state.tasks.get(ids[k]!)!,
  );
}

/** The digest, with the k-th task (in id order) and its id given by position. */
function* digestState(
  state: ClusterState,
  n: number,
  idAt: (k: number) => string,
  taskAt: (k: number) => TaskRecord,
  /** Writes the k-th task's digest itself, or says it cannot (false): taskAt's is written then. */
  writeAt?: (f: Utf8Feed, k: number) => boolean,
): Steps<string> {
  const f = new Utf8Feed(createHash("sha256"));
  // An anomaly counts by where it is and what it claimed to be; its `why` is words for people,
  // which a later build may put better without changing what the log folds to.
  const anomalies = state.anomalies.map((a) => [a.seq, a.index, a.type]);
  writeCanonical(f, { digest: STATE_DIGEST_VERSION, seq: state.seq, eventCount: state.eventCount, leader: state.leader, anomalies });
  // Sections added after v1 was pinned hash nothing when empty, so older logs hash as before.
  // Their order is part of the digest: append new ones at the end.
  const sections = [
    ["quotas", state.quotas],
    ["reservations", state.reservations],
    ["requests", state.requests],
    ["updates", state.updates],
    ["cronJobs", state.cronJobs],
    ["hosts", state.hosts],
    ["windows", state.windows],
  ] as const;
  for (const [name, section] of sections) {
    if (section.size === 0) continue;
    f.ascii(`${name}=`);
    writeCanonical(f, section);
    f.ascii("\n");
  }
  if (state.anomalyCount > state.anomalies.length) {
    f.ascii("anomalyCount=");
    writeCanonical(f, state.anomalyCount);
    f.ascii("\n");
  }
  // Entries are `name:key=canonical\n`, keys in code-unit order.
  let j = 0;
  for (const key of [...state.jobs.keys()].sort()) {
    if (j++ % 256 === 0) yield;
    f.ascii("job:");
    f.text(key);
    f.ascii("=");
    writeCanonical(f, digestJob(state.jobs.get(key)!));
    f.ascii("\n");
  }
  for (let k = 0; k < n; k++) {
    if (k % TASKS_PER_STEP === 0) yield;
    f.ascii("task:");
    f.text(idAt(k));
    f.ascii("=");
    if (!writeAt?.(f, k)) writeTaskDigest(f, taskAt(k));
    f.ascii("\n");
  }
  let a = 0;
  for (const key of [...state.agents.keys()].sort()) {
    if (a++ % 64 === 0) yield;
    f.ascii("agent:");
    f.text(key);
    f.ascii("=");
    writeCanonical(f, digestAgent(state.agents.get(key)!));
    f.ascii("\n");
  }
  return f.digest();
}
