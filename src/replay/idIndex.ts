// A hash index of a snapshot's task ids, in typed arrays: where a cold row is (taskMap.ts).
//
// Why: a cold table first found its rows by binary search over the ids in id order. At 2.4M tasks
// that is ~21 string comparisons of ids sharing long prefixes per lookup, and every TaskCreated
// in the tail looks its new id up first (to refuse a duplicate) and misses the whole way down:
// lookups were ~30% of folding a cold start's tail, which made the tail its slowest and most
// variable part (4.6–6.7 s of a 9–12 s start at 10M events). A Map of 2.4M ids costs ~2 s to fill
// and ~70 MB of heap; this costs ~0.25 s and 42 MB outside the heap (an open-addressing table of
// positions, linear probing, at most half full, and each id's hash to skip most string
// comparisons).
//
// Building it also proves the ids are distinct: a snapshot that holds one twice cannot be a Map's
// keys, and is refused (SnapshotError) before anything is built from it.
//
// The hash is FNV-1a over the UTF-16 code units with a final avalanche (murmur3's fmix32), so the
// low bits the table masks with depend on every character. It is not keyed: task ids are made by
// the leader (src/actors/clock.ts), not chosen by clients, so there is nobody to collide them.

import type { TaskId } from "../domain/types.js";
import { SnapshotError } from "./snapshotError.js";

/** The 32-bit hash of a string (FNV-1a, then fmix32). */
export function idHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** Explicit limit: positions are stored as int32 (+1), and the table has 2^k ≥ 2n slots. */
const ID_INDEX_MAX_KEYS = 2 ** 28;

export class IdIndex {
  readonly n: number;
  readonly #keys: readonly TaskId[];
  /** Slot → position + 1 (0: empty). */
  readonly #slots: Int32Array;
  readonly #mask: number;
  /** Position → its key's hash. */
  readonly #hashes: Int32Array;

  /** Indexes keys[0 … n-1]; SnapshotError when one is there twice. */
  constructor(keys: readonly TaskId[], n: number) {
    if (!(Number.isSafeInteger(n) && n >= 0 && n <= keys.length && n <= ID_INDEX_MAX_KEYS))
      throw new SnapshotError(`cannot index ${n} task ids`);
    this.n = n;
    this.#keys = keys;
    let size = 16;
    while (size < 2 * n) size *= 2;
    const slots = new Int32Array(size);
    const mask = size - 1;
    const hashes = new Int32Array(n);
    for (let p = 0; p < n; p++) {
      const key = keys[p]!;
      const h = idHash(key);
      hashes[p] = h;
      let k = h & mask;
      for (let q = slots[k]!; q !== 0; q = slots[k]!) {
        if (hashes[q - 1] === h && keys[q - 1] === key) throw new SnapshotError(`snapshot holds task ${key} twice`);
        k = (k + 1) & mask;
      }
      slots[k] = p + 1;
    }
    this.#slots = slots;
    this.#mask = mask;
    this.#hashes = hashes;
  }

  /** The position of `id`, or -1. */
  find(id: TaskId): number {
    const h = idHash(id);
    const slots = this.#slots;
    const mask = this.#mask;
    for (let k = h & mask, q = slots[k]!; q !== 0; k = (k + 1) & mask, q = slots[k]!) {
      if (this.#hashes[q - 1] === h && this.#keys[q - 1] === id) return q - 1;
    }
    return -1;
  }
}
