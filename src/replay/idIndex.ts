// A hash index of a snapshot's task ids, in typed arrays: where a cold row is (taskMap.ts).
//
// Why: a cold table first found its rows by binary search over the ids in id order. At 2.4M tasks
// that is ~21 string comparisons of ids sharing long prefixes per lookup, and every TaskCreated
// in the tail looks its new id up first (to refuse a duplicate) and misses the whole way down:
// lookups were ~30% of folding a cold start's tail, which made the tail its slowest and most
// variable part (4.6–6.7 s of a 9–12 s start at 10M events). A Map of 2.4M ids costs ~2 s to fill
// and ~70 MB of heap; this costs ~0.25 s and 42 MB outside the heap (an open-addressing table of
// positions, linear probing, at most half full, and each id's hash to skip most string
// comparisons). (0.65-0.7 s at 2.4M ids in a cold start on 2026-12-05, a slow day: hashing ~0.2 s
// of it, the rest inserts into a fresh 32 MB table.) The ids are hashed from the snapshot's bytes
// (packedIds.ts), so building the index makes no string but those of ids whose hashes meet.
//
// Building it also proves the ids are distinct: a snapshot that holds one twice cannot be a Map's
// keys, and is refused (SnapshotError) before anything is built from it.
//
// The hash is FNV-1a over the UTF-16 code units with a final avalanche (murmur3's fmix32), so the
// low bits the table masks with depend on every character. It is not keyed: task ids are made by
// the leader (src/actors/clock.ts), not chosen by clients, so there is nobody to collide them.

import type { TaskId } from "../domain/types.js";
import { type IdTable, idHash } from "./packedIds.js";
import { SnapshotError } from "./snapshotError.js";

/** Explicit limit: positions are stored as int32 (+1), and the table has 2^k ≥ 2n slots. */
const ID_INDEX_MAX_KEYS = 2 ** 28;

/** The index's tables, built here or by the index thread (src/storage/indexWorker.ts), which runs
 *  hashIdsInto and fillIdSlots on the same bytes. */
export interface IdTables {
  /** Slot → position + 1 (0: empty); idSlots(n) of them. */
  slots: Int32Array;
  /** Position → its id's hash. */
  hashes: Int32Array;
}

/** How many slots n ids take: a power of two, at least 2n (at most half full). */
export function idSlots(n: number): number {
  let size = 16;
  while (size < 2 * n) size *= 2;
  return size;
}

/**
 * Put positions 0 … n-1 into `slots` (zeroed, idSlots(n) long) by `hashes`, linear probing.
 * Returns -1, or a position whose id is an earlier one's: `same(p, q)` is asked only when two
 * hashes meet.
 */
export function fillIdSlots(hashes: Int32Array, n: number, slots: Int32Array, same: (p: number, q: number) => boolean): number {
  const mask = slots.length - 1;
  for (let p = 0; p < n; p++) {
    const h = hashes[p]!;
    let k = h & mask;
    for (let q = slots[k]!; q !== 0; q = slots[k]!) {
      if (hashes[q - 1] === h && same(p, q - 1)) return p;
      k = (k + 1) & mask;
    }
    slots[k] = p + 1;
  }
  return -1;
}

export class IdIndex {
  readonly n: number;
  readonly #keys: IdTable;
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #hashes: Int32Array;

  /**
   * Indexes keys 0 … n-1; SnapshotError when one is there twice. Hashes the ids without making
   * them strings (packedIds.ts): only ids whose hashes meet are compared, so made. With `tables`
   * (the index thread's, for these keys), takes them as they are.
   */
  constructor(keys: IdTable, n: number, tables?: IdTables) {
    if (!(Number.isSafeInteger(n) && n >= 0 && n <= keys.length && n <= ID_INDEX_MAX_KEYS))
      throw new SnapshotError(`cannot index ${n} task ids`);
    this.n = n;
    this.#keys = keys;
    const size = idSlots(n);
    if (tables !== undefined && tables.slots.length === size && tables.hashes.length === n) {
      this.#slots = tables.slots;
      this.#hashes = tables.hashes;
    } else {
      this.#slots = new Int32Array(size);
      this.#hashes = new Int32Array(n);
      for (let p = 0; p < n; p++) this.#hashes[p] = keys.hashAt(p);
      const dup = fillIdSlots(this.#hashes, n, this.#slots, (p, q) => keys.at(p) === keys.at(q));
      if (dup >= 0) throw new SnapshotError(`snapshot holds task ${keys.at(dup)} twice`);
    }
    this.#mask = size - 1;
  }

  /** The position of `id`, or -1. */
  find(id: TaskId): number {
    const h = idHash(id);
    const slots = this.#slots;
    const mask = this.#mask;
    for (let k = h & mask, q = slots[k]!; q !== 0; k = (k + 1) & mask, q = slots[k]!) {
      if (this.#hashes[q - 1] === h && this.#keys.at(q - 1) === id) return q - 1;
    }
    return -1;
  }
}
