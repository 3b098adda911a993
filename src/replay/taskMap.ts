// The state's tasks: a Map from task id to TaskRecord whose rows may start out cold, as columns a
// snapshot holds, and become objects only when first used.
//
// Why: a state keeps every task it ever had (2.4M at 10M events). Decoding a snapshot into one
// object, one history array and one map entry per task took 15 s of a 19 s cold start, a third of
// it garbage collection, and inserting 2.4M ids into a Map alone takes ~2 s; yet a replica that
// starts touches a few thousand of them before it serves. So a decoded snapshot hands its
// columns over as cold rows (ColdRows, from src/replay/taskColumns.ts): a lookup finds a cold row
// in a hash index of the snapshot's ids (src/replay/idIndex.ts, typed arrays built in the decode)
// and builds its record then, once; `warm()` builds the rest a bounded number at a time, which the
// scheduler does in the background after it is up. The index outlives the columns: positions of
// the snapshot's ids stay in it, and only ids set since go into a Map (a binary search over the
// sorted ids, the first design, made lookups ~30% of folding a cold start's tail; a Map of every
// id costs ~2 s to fill at 2.4M tasks and ~70 MB of heap).
//
// It behaves as a Map in every way a reader can see: insertion order (the snapshot's rows first,
// in the order the writer's state had them, then rows set since), `get` returns the same object
// every time (the fold mutates records in place), and iterating warms every row it passes.
// Readers that scan every task on a leader (obligations at a takeover, metrics) use `matching`
// and `stateCounts`, which read cold rows' state from the columns and build only what matches.

import type { TaskId } from "../domain/types.js";
import { TASK_STATES, type TaskStateName } from "../statemachines/taskStates.js";
import type { TaskRecord } from "./taskRecord.js";

/** Rows a TaskMap starts with, not yet objects. Implementations must not throw (their bytes are
 *  checked when they are made), and must give the same record for a row every time. */
export interface ColdRows {
  /** How many rows: positions 0 … n-1. */
  readonly n: number;
  /** Row p's task id (the map key) is ids.at(p): a table the map keeps once the rows are gone,
   *  each id a string when first read; materializeAll makes the rest. */
  readonly ids: { at(p: number): TaskId; materializeAll(): void };
  /** Row p as a new record. */
  row(p: number): TaskRecord;
  /** Where each of the n ids is: `find(id)` is its position, or -1. */
  readonly index: { find(id: TaskId): number };
  /** Row p's state code (an index of TASK_STATES) and whether it wants rescheduling, read without
   *  building the record; -1 when only the record can tell (a value no column holds). */
  stateCode(p: number): number;
  rescheduleWanted(p: number): boolean;
  /** The positions in task id order (Array#sort's), when the rows know it: the state digest
   *  reads cold rows in it without sorting (src/replay/hash.ts checks that it is). */
  readonly order: ArrayLike<number> | null;
}

export class TaskMap implements Map<TaskId, TaskRecord> {
  /** Keys by position: the first #coldN are #coldIds' (a snapshot's, read when asked for: a
   *  cold start makes no string for an id it does not read, packedIds.ts), then #keys. */
  #coldIds: ColdRows["ids"] | null = null;
  #coldN = 0;
  #keys: TaskId[] = [];
  /** Records by position; a cold row's record is undefined until built. */
  #rows: (TaskRecord | undefined)[] = [];
  /** Positions of the first rows' keys (a snapshot's), when the table started cold. */
  #index: ColdRows["index"] | null = null;
  /** Positions of every other key (set since). */
  #pos = new Map<TaskId, number>();
  #cold: ColdRows | null = null;
  /** Cold rows not yet built, and where warm() goes on from. */
  #coldLeft = 0;
  #warmFrom = 0;

  /** A table whose first rows are `cold` (built when used). */
  static fromCold(cold: ColdRows): TaskMap {
    const m = new TaskMap();
    const n = cold.n;
    m.#rows = new Array<TaskRecord | undefined>(n);
    if (n > 0) {
      m.#coldIds = cold.ids;
      m.#coldN = n;
      m.#index = cold.index;
      m.#cold = cold;
      m.#coldLeft = n;
    }
    return m;
  }

  get size(): number {
    return this.#coldN + this.#keys.length;
  }

  #key(p: number): TaskId {
    return p < this.#coldN ? this.#coldIds!.at(p) : this.#keys[p - this.#coldN]!;
  }

  get [Symbol.toStringTag](): string {
    return "TaskMap";
  }

  /** Rows not yet built (0: the table is a plain map). */
  get coldRows(): number {
    return this.#coldLeft;
  }

  /** The cold rows, while every row is one of them, untouched: the digest may read them as they
   *  are (src/replay/hash.ts). null once a row was built or set, or a key added. */
  untouchedCold(): ColdRows | null {
    const c = this.#cold;
    return c !== null && this.#coldLeft === c.n && this.#keys.length === 0 ? c : null;
  }

  /** Row p's record when built, else a record for reading only, not kept (a digest of a cold
   *  table builds each row once and drops it). */
  peek(p: number): TaskRecord {
    return this.#rows[p] ?? this.#cold!.row(p);
  }

  #find(id: TaskId): number {
    const p = this.#pos.get(id);
    if (p !== undefined) return p;
    return this.#index === null ? -1 : this.#index.find(id);
  }

  #at(p: number): TaskRecord {
    let r = this.#rows[p];
    if (r === undefined) {
      r = this.#cold!.row(p);
      this.#built(p, r);
    }
    return r;
  }

  #built(p: number, r: TaskRecord): void {
    this.#rows[p] = r;
    if (--this.#coldLeft === 0) {
      this.#cold = null;
      // Every row holds its id now; the ids no row holds (a task's ancestor the state no longer
      // has) are made too, so the table lets the snapshot's bytes go.
      this.#coldIds!.materializeAll();
    }
  }

  /**
   * Build up to `rows` cold rows, in order; returns how many are left. The scheduler calls it a
   * slice at a time after a cold start, so that a full scan later finds objects.
   */
  warm(rows: number): number {
    const cold = this.#cold;
    if (cold === null) return 0;
    let p = this.#warmFrom;
    for (let k = 0; k < rows && p < cold.n; p++) {
      if (this.#rows[p] === undefined) {
        this.#built(p, cold.row(p));
        k++;
      }
    }
    this.#warmFrom = p;
    return this.#coldLeft;
  }

  get(id: TaskId): TaskRecord | undefined {
    const p = this.#find(id);
    return p < 0 ? undefined : this.#at(p);
  }

  has(id: TaskId): boolean {
    return this.#find(id) >= 0;
  }

  set(id: TaskId, t: TaskRecord): this {
    const p = this.#find(id);
    if (p < 0) {
      this.#pos.set(id, this.size);
      this.#keys.push(id);
      this.#rows.push(t);
    } else if (this.#rows[p] === undefined) this.#built(p, t);
    else this.#rows[p] = t;
    return this;
  }

  /** Not on any path the scheduler takes (tasks are kept): warms the table and reindexes, O(n). */
  delete(id: TaskId): boolean {
    const p = this.#find(id);
    if (p < 0) return false;
    this.warm(Number.POSITIVE_INFINITY);
    const keys = Array.from({ length: this.size }, (_, q) => this.#key(q));
    keys.splice(p, 1);
    this.#keys = keys;
    this.#coldIds = null;
    this.#coldN = 0;
    this.#rows.splice(p, 1);
    this.#index = null;
    this.#pos.clear();
    for (let q = 0; q < keys.length; q++) this.#pos.set(keys[q]!, q);
    return true;
  }

  clear(): void {
    this.#coldIds = null;
    this.#coldN = 0;
    this.#keys = [];
    this.#rows = [];
    this.#pos.clear();
    this.#index = null;
    this.#cold = null;
    this.#coldLeft = 0;
    this.#warmFrom = 0;
  }

  *entries(): MapIterator<[TaskId, TaskRecord]> {
    // The length is read each turn: rows set while iterating are visited, as a Map does.
    for (let p = 0; p < this.size; p++) yield [this.#key(p), this.#at(p)];
  }

  *keys(): MapIterator<TaskId> {
    for (let p = 0; p < this.size; p++) yield this.#key(p);
  }

  *values(): MapIterator<TaskRecord> {
    for (let p = 0; p < this.size; p++) yield this.#at(p);
  }

  [Symbol.iterator](): MapIterator<[TaskId, TaskRecord]> {
    return this.entries();
  }

  forEach(fn: (value: TaskRecord, key: TaskId, map: Map<TaskId, TaskRecord>) => void, thisArg?: unknown): void {
    for (let p = 0; p < this.size; p++) fn.call(thisArg, this.#at(p), this.#key(p), this);
  }

  /**
   * The tasks whose state and reschedule flag pass `test`, in the table's order: cold rows are
   * tested on their columns and built only when they pass. A full scan that builds nothing it
   * does not return (a takeover's obligations).
   */
  *matching(test: (state: TaskStateName, rescheduleWanted: boolean) => boolean): Generator<TaskRecord> {
    for (let p = 0; p < this.size; p++) {
      const r = this.#rows[p];
      if (r !== undefined) {
        if (test(r.state, r.rescheduleWanted)) yield r;
        continue;
      }
      const cold = this.#cold!;
      const code = cold.stateCode(p);
      if (code < 0 || test(TASK_STATES[code]!, cold.rescheduleWanted(p))) {
        const t = this.#at(p);
        if (code >= 0 || test(t.state, t.rescheduleWanted)) yield t;
      }
    }
  }

  /** How many tasks are in each state, cold rows counted from their columns. */
  stateCounts(): Map<TaskStateName, number> {
    const counts = new Map<TaskStateName, number>(TASK_STATES.map((s) => [s, 0]));
    for (let p = 0; p < this.size; p++) {
      const r = this.#rows[p];
      const code = r === undefined ? this.#cold!.stateCode(p) : -1;
      const s = code >= 0 ? TASK_STATES[code]! : this.#at(p).state;
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    return counts;
  }
}
