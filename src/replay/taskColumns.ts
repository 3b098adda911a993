// A snapshot's tasks as the columns it stores them in, read in place: the cold rows of a decoded
// state's TaskMap (taskMap.ts), and what the state digest reads when it checks a snapshot.
//
// Why columns and not objects: decoding 2.4M tasks into objects took 15 s of a 19 s cold start
// (see taskMap.ts). Here decoding is checking the columns (typed-array scans) and building the
// string tables (the task ids' stays bytes until each id is read: packedIds.ts); a row becomes a
// record when it is used.
//
// Nothing a row is built from can throw later: every string index is checked against its table
// here, when the columns are made, so `row()` cannot fail inside a fold. Whether the rows are the
// state that was written is the state hash's question (a cold start awaits its verdict before it
// trusts the state).

import type { AgentId, JobKeyString, TaskId } from "../domain/types.js";
import { TASK_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import { IdIndex, type IdTables } from "./idIndex.js";
import type { PackedIds } from "./packedIds.js";
import { SnapshotError } from "./snapshotError.js";
import type { ColdRows } from "./taskMap.js";
import { HISTORY_STRIDE, type TaskRecord } from "./taskRecord.js";

// ---- numeric columns ------------------------------------------------------------------------

export const U8 = 0;
export const U16 = 1;
export const U32 = 2;
export const F64 = 3;
export type Column = [kind: number, base: number, bytes: Uint8Array];
type Numbers = Uint8Array | Uint16Array | Uint32Array | Float64Array;

/**
 * A column's values are `a[i] + b`. For f64 columns b is -0, which adds exactly nothing (x + -0
 * is x for every x, -0 and NaN included), so readers need no branch.
 */
export interface Unpacked {
  a: Numbers;
  b: number;
}

export function unpackColumn(col: unknown, n: number, what: string): Unpacked {
  if (!Array.isArray(col) || col.length !== 3 || !(col[2] instanceof Uint8Array)) throw new SnapshotError(`column ${what} is malformed`);
  const [kind, base, bytes] = col as Column;
  const size = kind === U8 ? 1 : kind === U16 ? 2 : kind === U32 ? 4 : kind === F64 ? 8 : 0;
  if (size === 0) throw new SnapshotError(`column ${what} has unknown kind ${kind}`);
  if (bytes.byteLength !== n * size) throw new SnapshotError(`column ${what} holds ${bytes.byteLength} bytes, expected ${n * size}`);
  if (typeof base !== "number") throw new SnapshotError(`column ${what} has no base`);
  // A typed array view needs an aligned offset; msgpackr hands out views into the input.
  const src = bytes.byteOffset % size === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
  const a =
    kind === U8
      ? src
      : kind === U16
        ? new Uint16Array(src.buffer, src.byteOffset, n)
        : kind === U32
          ? new Uint32Array(src.buffer, src.byteOffset, n)
          : new Float64Array(src.buffer, src.byteOffset, n);
  return { a, b: kind === F64 ? -0 : base };
}

// Task flag bits.
export const F_SERVICE = 1;
export const F_EVER_KILLING = 2;
export const F_RESCHEDULE = 4;
export const F_EXIT_NULL = 8;
export const F_PORTS_NULL = 16;

/** The task columns a snapshot body holds, by name (src/replay/snapshot.ts writes them). */
const TASK_COLUMNS = [
  "job",
  "instance",
  "configVersion",
  "ancestor",
  "maxTaskFailures",
  "state",
  "failureCount",
  "agent",
  "host",
  "agentSeq",
  "exitCode",
  "successor",
  "reason",
  "throttleMs",
  "throttledUntil",
  "flags",
  "ports",
  "histLen",
] as const;
type TaskColumn = (typeof TASK_COLUMNS)[number];

const PENDING_CODE = TASK_STATES.indexOf("PENDING");

export interface TaskColumnsInput {
  /** Rows. */
  n: number;
  /** History entries, all rows' back to back. */
  entries: number;
  /** Task ids: row p is strs.at(p); ancestors and successors index it too. Left as bytes until
   *  read (packedIds.ts). */
  strs: PackedIds;
  /** Every other string (job keys, agent ids, hosts, reasons, port names). */
  syms: readonly string[];
  /** The packed columns, by name (TASK_COLUMNS, portName, portValue, hSeq, hIdx, hTs, hState). */
  t: Record<string, unknown>;
  /** The rows in task id order (packed). */
  order: unknown;
  /** Values no column fits: [row, field, value] triples, flattened. */
  odd: unknown[];
  /** The fields a record has (src/replay/snapshot.ts's TASK_FIELDS): odd values name one. */
  fields: readonly string[];
  /** The id index's tables when another thread builds them: called when the index is first
   *  needed, it waits for them (null: build the index here). */
  tables?: (() => IdTables | null) | null;
}

export class TaskColumns implements ColdRows {
  readonly n: number;
  readonly order: Numbers;
  #index: IdIndex | null = null;
  #tables: (() => IdTables | null) | null;
  // Read by the state digest too (hash.ts writes a cold row's digest from them).
  /** Task ids: row p is ids.at(p). */
  readonly ids: PackedIds;
  readonly syms: readonly string[];
  readonly c: Record<TaskColumn, Unpacked>;
  readonly hSeq: Unpacked;
  readonly hIdx: Unpacked;
  readonly hTs: Unpacked;
  readonly hState: Unpacked;
  private readonly portName: Unpacked;
  private readonly portValue: Unpacked;
  /** Where each row's history entries and ports start (the columns hold them back to back). */
  readonly hStart: Float64Array;
  private readonly pStart: Float64Array;
  /** Odd values by row: [field, value, field, value, …]. */
  private readonly odd: Map<number, unknown[]>;

  /** Checks the columns (SnapshotError when malformed); builds no row. */
  constructor(input: TaskColumnsInput) {
    const { n, entries, strs, syms } = input;
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(entries) || n < 0 || entries < 0 || strs.length < n)
      throw new SnapshotError("snapshot body is malformed");
    this.n = n;
    this.ids = strs;
    this.syms = syms;
    // The columns stay as the snapshot packs them (u8/u16/u32/f64 views into its bytes, each
    // read as a[i] + b). They were widened to f64 once, for monomorphic loads: 680 MB of fresh
    // memory at 2.4M tasks, and on this machine the first touch of fresh memory costs ~3 ms per
    // MB (page faults a VM's host must back), so widening was 1.8 s of a 5.3 s decode and its
    // external memory set off a full GC per ~64 MB. Readers name each column at a load site of
    // its own, so every site still sees one array type.
    const raw = (name: string, len = n) => unpackColumn(input.t[name], len, name);
    this.c = Object.fromEntries(TASK_COLUMNS.map((name) => [name, raw(name)])) as Record<TaskColumn, Unpacked>;
    this.hSeq = raw("hSeq", entries);
    this.hIdx = raw("hIdx", entries);
    this.hTs = raw("hTs", entries);
    this.hState = raw("hState", entries);
    const { histLen, ports } = this.c;
    this.hStart = new Float64Array(n + 1);
    this.pStart = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      this.hStart[i + 1] = this.hStart[i]! + histLen.a[i]! + histLen.b;
      this.pStart[i + 1] = this.pStart[i]! + ports.a[i]! + ports.b;
    }
    if (this.hStart[n] !== entries) throw new SnapshotError("snapshot task columns disagree on their lengths");
    const nPorts = this.pStart[n]!;
    if (!Number.isSafeInteger(nPorts) || nPorts < 0) throw new SnapshotError("snapshot task columns disagree on their lengths");
    this.portName = raw("portName", nPorts);
    this.portValue = raw("portValue", nPorts);
    // Every string a row refers to, checked now: a row is built later, inside a fold, and must not throw there.
    checkIndexes(this.c.job, n, syms.length, "job");
    checkIndexes(this.c.agent, n, syms.length, "agent");
    checkIndexes(this.c.host, n, syms.length, "host");
    checkIndexes(this.c.ancestor, n, strs.length, "ancestor");
    checkIndexes(this.c.successor, n, strs.length, "successor");
    const ord = unpackColumn(input.order, n, "order");
    const order = ord.b === 0 ? ord.a : Float64Array.from(ord.a, (x) => x + ord.b);
    const seen = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const p = order[k]!;
      if (!(p >= 0 && p < n && (p | 0) === p) || seen[p]) throw new SnapshotError("snapshot task order is not a permutation");
      seen[p] = 1;
    }
    this.order = order;
    this.#tables = input.tables ?? null;
    const odd = input.odd;
    if (!Array.isArray(odd) || odd.length % 3 !== 0) throw new SnapshotError("snapshot odd values are malformed");
    this.odd = new Map();
    for (let k = 0; k < odd.length; k += 3) {
      const p = odd[k];
      const field = odd[k + 1];
      if (typeof p !== "number" || !(p >= 0 && p < n && (p | 0) === p) || typeof field !== "string" || !input.fields.includes(field))
        throw new SnapshotError("snapshot odd value is malformed");
      let list = this.odd.get(p);
      if (list === undefined) this.odd.set(p, (list = []));
      list.push(field, odd[k + 2]);
    }
  }

  /** Where each id's row is; it outlives the columns in the TaskMap (taskMap.ts). Built when first
   *  asked for (SnapshotError when an id is there twice), so that a decode can do its other work
   *  while another thread builds the tables. */
  get index(): IdIndex {
    if (this.#index === null) {
      const tables = this.#tables?.() ?? undefined;
      this.#tables = null;
      this.#index = new IdIndex(this.ids, this.n, tables);
    }
    return this.#index;
  }

  /** Whether row p has a value no column holds (its record is the only way to read it). */
  hasOdd(p: number): boolean {
    return this.odd.has(p);
  }

  /** Row p's ports, as its record has them (before odd values). */
  ports(p: number): Record<string, number> | null {
    if ((this.c.flags.a[p]! + this.c.flags.b) & F_PORTS_NULL) return null;
    const ports: Record<string, number> = {};
    const { portName, portValue, syms } = this;
    for (let q = this.pStart[p]!, end = this.pStart[p + 1]!; q < end; q++)
      ports[syms[portName.a[q]! + portName.b]!] = portValue.a[q]! + portValue.b;
    return ports;
  }

  stateCode(p: number): number {
    if (this.odd.has(p)) return -1;
    const code = this.c.state.a[p]! + this.c.state.b;
    return code < TASK_STATES.length ? code : -1;
  }

  rescheduleWanted(p: number): boolean {
    return ((this.c.flags.a[p]! + this.c.flags.b) & F_RESCHEDULE) !== 0;
  }

  /** Rows whose state column says PENDING (rows with odd values built to tell). */
  pendingRows(): number {
    let count = 0;
    const st = this.c.state;
    for (let p = 0; p < this.n; p++) {
      if (this.odd.has(p)) {
        if (this.row(p).state === "PENDING") count++;
      } else if (st.a[p]! + st.b === PENDING_CODE) count++;
    }
    return count;
  }

  /** Whether row p is PENDING (for the pending index's check). */
  isPending(p: number): boolean {
    const code = this.stateCode(p);
    return code >= 0 ? code === PENDING_CODE : this.row(p).state === "PENDING";
  }

  row(p: number): TaskRecord {
    const { c, syms, ids } = this;
    const flags = c.flags.a[p]! + c.flags.b;
    // Exactly sized (push would leave slack in every one of millions of arrays).
    const h0 = this.hStart[p]!;
    const history: number[] = new Array((this.hStart[p + 1]! - h0) * HISTORY_STRIDE);
    const { hSeq, hIdx, hTs, hState } = this;
    for (let h = h0, x = 0; x < history.length; h++) {
      history[x++] = hSeq.a[h]! + hSeq.b;
      history[x++] = hIdx.a[h]! + hIdx.b;
      history[x++] = hTs.a[h]! + hTs.b;
      history[x++] = hState.a[h]! + hState.b;
    }
    // The same literal, field for field, as fold.ts's TaskCreated: one hidden class.
    const task: TaskRecord = {
      taskId: ids.at(p),
      job: str(c.job, p, syms) as JobKeyString,
      instance: c.instance.a[p]! + c.instance.b,
      configVersion: c.configVersion.a[p]! + c.configVersion.b,
      ancestorId: id(c.ancestor, p, ids),
      service: (flags & F_SERVICE) !== 0,
      maxTaskFailures: c.maxTaskFailures.a[p]! + c.maxTaskFailures.b,
      state: TASK_STATES[c.state.a[p]! + c.state.b] as TaskStateName,
      failureCount: c.failureCount.a[p]! + c.failureCount.b,
      everKilling: (flags & F_EVER_KILLING) !== 0,
      agentId: str(c.agent, p, syms) as AgentId | null,
      host: str(c.host, p, syms),
      ports: this.ports(p),
      agentSeq: c.agentSeq.a[p]! + c.agentSeq.b,
      exitCode: flags & F_EXIT_NULL ? null : c.exitCode.a[p]! + c.exitCode.b,
      rescheduleWanted: (flags & F_RESCHEDULE) !== 0,
      successorId: id(c.successor, p, ids),
      history,
      lastReason: syms[c.reason.a[p]! + c.reason.b]!,
      throttleMs: c.throttleMs.a[p]! + c.throttleMs.b,
      throttledUntil: c.throttledUntil.a[p]! + c.throttledUntil.b,
    };
    const odd = this.odd.get(p);
    if (odd !== undefined)
      for (let k = 0; k < odd.length; k += 2) (task as unknown as Record<string, unknown>)[odd[k] as string] = odd[k + 1];
    return task;
  }
}

/** A string column's value at p: -1 is null (indexes are checked when the columns are made). */
function str<T extends string>(u: Unpacked, p: number, table: readonly T[]): T | null {
  const k = u.a[p]! + u.b;
  return k === -1 ? null : table[k]!;
}

/** A task id column's value at p: -1 is null (indexes are checked when the columns are made). */
function id(u: Unpacked, p: number, table: PackedIds): TaskId | null {
  const k = u.a[p]! + u.b;
  return k === -1 ? null : table.at(k);
}

/** Every value of a string column is -1 (null) or an index of its table. */
function checkIndexes(u: Unpacked, n: number, size: number, what: string): void {
  const { a, b } = u;
  for (let p = 0; p < n; p++) {
    const k = a[p]! + b;
    if (!(k === -1 || (k >= 0 && k < size && (k | 0) === k))) throw new SnapshotError(`string index ${k} out of range (${what})`);
  }
}
