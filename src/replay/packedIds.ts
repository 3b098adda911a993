// A snapshot's task ids, left as the bytes they came in until one is asked for.
//
// Why: a 10M-event snapshot holds 2.4M task ids, and a replica that starts reads far fewer of
// them before it serves: the live tasks its jobs and agents list (958k of the 2.39M in the bench's
// snapshot) and the rows the tail touches. Turning every id into a string at decode was ~180 MB of
// heap, made and then copied by scavenges, since every one lives for ever (traced on 2026-12-05:
// scavenges were ~1 s of a ~3.2 s decode, most of them while the id table was unpacked). Left as
// latin1 bytes with an offset per id, an id becomes a string when first read, and is the same
// string every time after: the cache keeps it, so a job's instance, an agent's task and the row
// share one copy, as they did when every id was decoded. Measured at 10M events, 4 pairs back to
// back against the build before: decode 2,841-2,918 ms against 3,093-3,240; heap after the cold
// start 481 MB against ~544.
//
// The bytes are a view into the snapshot's buffer. Once every id has been read (the scheduler's
// background warm-up builds every row, and asks for the rest: materializeAll), they are let go,
// so the snapshot's buffer is not kept alive by its ids.
//
// The hash the id index needs (idIndex.ts's idHash, over UTF-16 code units) is computed here over
// the bytes: a latin1 byte is its own code unit, so both give the same number for the same id.

import type { TaskId } from "../domain/types.js";

/** What the id index and the cold rows read ids through. */
export interface IdTable {
  readonly length: number;
  /** Id i (0 ≤ i < length). The same string every time. */
  at(i: number): TaskId;
  /** idHash(at(i)), without making the string when it is not made yet. */
  hashAt(i: number): number;
}

/** The 32-bit hash of code units [start, end) of `b` (FNV-1a, then fmix32): idHash's. */
function bytesHash(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return fmix32(h);
}

/** murmur3's final avalanche: the low bits the index masks with depend on every unit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** out[i] = the hash of id i of `bytes`/`start` (PackedIds' layout), i < n: what the index thread
 *  runs (src/storage/indexWorker.ts). */
export function hashIdsInto(bytes: Uint8Array, start: Uint32Array, n: number, out: Int32Array): void {
  for (let i = 0; i < n; i++) out[i] = bytesHash(bytes, start[i]!, start[i + 1]!);
}

/** Whether ids p and q of `bytes`/`start` are the same bytes. */
export function sameIdBytes(bytes: Uint8Array, start: Uint32Array, p: number, q: number): boolean {
  const a = start[p]!;
  const len = start[p + 1]! - a;
  const b = start[q]!;
  if (start[q + 1]! - b !== len) return false;
  for (let k = 0; k < len; k++) if (bytes[a + k] !== bytes[b + k]) return false;
  return true;
}

/** The 32-bit hash of a string (FNV-1a, then fmix32). */
export function idHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Explicit limit: offsets are u32. */
const PACKED_IDS_MAX_BYTES = 2 ** 32 - 1;

export class PackedIds implements IdTable {
  readonly length: number;
  /** Made strings by id; "" where not made yet (an id of length 0 is "" either way). */
  readonly #cache: TaskId[];
  #bytes: Buffer | null;
  /** Id i is bytes[start[i], start[i+1]). */
  #start: Uint32Array | null;
  /** Ids not made yet (of non-zero length). */
  #left: number;

  private constructor(length: number, cache: TaskId[], bytes: Buffer | null, start: Uint32Array | null, left: number) {
    this.length = length;
    this.#cache = cache;
    this.#bytes = bytes;
    this.#start = start;
    this.#left = left;
  }

  /** Ids that are strings already (kept, not copied: a table without bytes never writes its cache). */
  static of(ids: readonly TaskId[]): PackedIds {
    return new PackedIds(ids.length, ids as TaskId[], null, null, 0);
  }

  /**
   * n ids, back to back in `bytes` (latin1), id i `lengths(i)` bytes long; null when the lengths
   * do not add up to the bytes exactly (the caller says what is malformed).
   */
  static fromBytes(bytes: Buffer, n: number, lengths: (i: number) => number): PackedIds | null {
    if (!Number.isSafeInteger(n) || n < 0 || bytes.length > PACKED_IDS_MAX_BYTES) return null;
    // In shared memory when the bytes are: the index thread reads both (src/storage/indexWorker.ts).
    const start = new Uint32Array(
      bytes.buffer instanceof SharedArrayBuffer ? new SharedArrayBuffer(4 * (n + 1)) : new ArrayBuffer(4 * (n + 1)),
    );
    let offset = 0;
    let left = 0;
    for (let i = 0; i < n; i++) {
      const len = lengths(i);
      if (!(len >= 0)) return null;
      offset += len;
      if (offset > bytes.length) return null;
      start[i + 1] = offset;
      if (len > 0) left++;
    }
    if (offset !== bytes.length) return null;
    return new PackedIds(n, new Array<TaskId>(n).fill("" as TaskId), left > 0 ? bytes : null, left > 0 ? start : null, left);
  }

  at(i: number): TaskId {
    const s = this.#cache[i]!;
    if (s.length > 0 || this.#bytes === null) return s;
    return this.#make(i);
  }

  hashAt(i: number): number {
    const s = this.#cache[i]!;
    if (s.length > 0 || this.#bytes === null) return idHash(s);
    return bytesHash(this.#bytes, this.#start![i]!, this.#start![i + 1]!);
  }

  /** The bytes and offsets, while they are kept and in shared memory (for the index thread); else
   *  null. */
  shared(): { bytes: Uint8Array; start: Uint32Array } | null {
    const bytes = this.#bytes;
    const start = this.#start;
    if (bytes === null || start === null) return null;
    if (!(bytes.buffer instanceof SharedArrayBuffer && start.buffer instanceof SharedArrayBuffer)) return null;
    return { bytes, start };
  }

  /** Ids not made into strings yet. */
  get unmade(): number {
    return this.#left;
  }

  /** Make every id a string, and let the bytes go. */
  materializeAll(): void {
    for (let i = 0; i < this.length && this.#bytes !== null; i++) this.at(i);
  }

  #make(i: number): TaskId {
    const start = this.#start!;
    const a = start[i]!;
    const b = start[i + 1]!;
    if (a === b) return "" as TaskId;
    const s = this.#bytes!.toString("latin1", a, b) as TaskId;
    this.#cache[i] = s;
    if (--this.#left === 0) {
      this.#bytes = null;
      this.#start = null;
    }
    return s;
  }
}
