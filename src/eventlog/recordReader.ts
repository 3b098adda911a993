// A reader for the records Roost itself writes: the common case of decodeRecord, in one pass.
//
// Why: reading the log is decoding it. msgpackr's generic `unpack` built every value, its native
// string extraction handed each string out as a slice of one long string per record, and then
// decodeRecord walked each payload again to intern its ids (intern.ts says why that was needed):
// in a profile of decode-then-fold the interning alone took as long as msgpackr's whole unpack.
// This reader knows the envelope ([type, v, epoch, ts, corr, reason, data], envelope.ts) and
// reads it straight from the bytes:
// - short ASCII strings (ids, hosts, keys, states: ≤ MAX_CACHED bytes) come from a cache keyed
//   by their bytes, so an id read again is the very string read before: no new string, and a Map
//   lookup with it compares one pointer. A string it has not seen is built once, on its own (not a
//   slice of anything), and cached;
// - other strings (reasons, correlation ids, long values) are built fresh, each on its own, so no
//   decoded string keeps its record's bytes alive (what intern.ts's slices did).
// Nothing is interned. Interning on a cache miss (intern.ts's property store) cost as much as the
// reader saved: decoding and folding bench replay's log ran no faster than msgpackr's path. But
// the cache's size matters for the same reason interning did: with 2^14 slots, bench placement's
// pure placement cost rose ~40% (ids and hosts compared by content once their first string was
// evicted); with 2^17 it is back to msgpackr's path's (tmpprof/pure.mjs, 4 alternating rounds).
// Measured on 2026-12-04, back to back with the build before (2 pairs each, a noisy evening):
// - bench replay: decodeEventsPerSec 900k and 832k against 688k and 627k; foldDecodedEventsPerSec
//   421k and 407k against 369k and 355k; jetstreamReadVsNaive 0.45 and 0.46 against 0.41 and 0.40;
// - bench scale: heapBytes1M 718 MiB against 812 (a replica's state: exact-size strings, and one
//   string per repeated id);
// - the leader's own commits are not read here: with this reader, bench placement placed 10.7k–
//   12.3k tasks/s against 13.2k–14.9k with msgpackr's interning path (5 pairs), so the Appender
//   decodes what it commits with decodeRecordGeneric (appender.ts). Replays, followers, cold
//   starts' tails and the CLI's reads use this reader.
// Its explicit limits: the cache holds at most CACHE_SLOTS strings of at most MAX_CACHED ASCII
// characters (an array of 1 MiB and ≤ ~12 MiB of strings), and values nest at most MAX_DEPTH.
//
// Equal by construction, not by care: it accepts only a narrow, canonical subset and returns null
// for anything else, and decodeRecord then takes msgpackr's path, which is the definition. The
// subset: a non-empty array of envelopes, each an array of exactly 7 with a known type at its
// current version (nothing to upcast), an integer epoch ≥ 0, a finite ts and string corr and
// reason; values are nil, booleans, integers (64-bit ones with msgpackr's own `int64AsType:
// "number"` arithmetic), float64, strings of valid UTF-8, arrays, and maps with string keys other
// than `__proto__` (which msgpackr renames), at most MAX_DEPTH deep, with no byte left over.
// Anything else (bin, ext, float32, invalid UTF-8, a truncated value, an old payload version, a
// malformed envelope) returns null, and the record is read exactly as before, UNREADABLE entries
// and all. test/recordReader.test.ts checks both halves: that every record Roost writes takes this
// path, and that on random and mutated records it either declines or agrees with msgpackr's path
// value for value, key order included.
//
// Not a fold input: the cache decides only which string object a value is, never its value, so
// the same bytes give equal events however warm the cache is. Synchronous and not reentrant: one
// record is read at a time (module state, as msgpackr's own).

import { type AnyEnvelope, EVENT_TYPES, EVENT_VERSIONS, type EventType } from "../domain/events.js";

/** Strings of at most this many bytes are cached (ids, hosts, keys); longer ones are built fresh. */
const MAX_CACHED = 64;
/** Cache slots (a power of two): direct-mapped by a hash of the bytes, the newest string wins. */
const CACHE_SLOTS = 1 << 17;
/** Deeper values are declined (msgpackr then reads them): no payload nests more than a few levels. */
const MAX_DEPTH = 32;

const SLOT_MASK = CACHE_SLOTS - 1;
/** ASCII strings only, so a string's length is its byte count. */
const cached: string[] = new Array<string>(CACHE_SLOTS).fill("");

/** The catalog's own type strings, so a `switch (env.type)` compares pointers. */
const TYPES = new Map<string, EventType>(EVENT_TYPES.map((t) => [t, t]));

/** Thrown to give up on a record; caught in readRecord, never seen outside. */
const DECLINE = new Error("not a canonical record");

/** What the reader holds between records: nothing of the last one. */
const EMPTY = new Uint8Array(0);
const EMPTY_BUF = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);

let src: Uint8Array = EMPTY;
let buf: Buffer = EMPTY_BUF;
let view: DataView = EMPTY_VIEW;
let pos = 0;
let end = 0;

/**
 * The record's envelopes, or null when the bytes are not a canonical record (decodeRecord then
 * reads them with msgpackr). Never throws.
 */
export function readRecord(bytes: Uint8Array): AnyEnvelope[] | null {
  src = bytes;
  buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  end = bytes.length;
  try {
    const n = arrayLength();
    if (n === 0 || n > end - pos) return null;
    const out = new Array<AnyEnvelope>(n);
    for (let i = 0; i < n; i++) out[i] = envelope();
    return pos === end ? out : null;
  } catch {
    // DECLINE (every read is bounds-checked by need() first), or anything unforeseen: either way
    // msgpackr's path reads the record.
    return null;
  } finally {
    src = EMPTY;
    buf = EMPTY_BUF;
    view = EMPTY_VIEW;
  }
}

function envelope(): AnyEnvelope {
  if (arrayLength() !== 7) throw DECLINE;
  const type = TYPES.get(stringValue());
  if (type === undefined) throw DECLINE;
  const v = value(0);
  if (v !== EVENT_VERSIONS[type]) throw DECLINE;
  const epoch = value(0);
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) throw DECLINE;
  const ts = value(0);
  if (typeof ts !== "number" || !Number.isFinite(ts)) throw DECLINE;
  const corr = freshString();
  const reason = freshString();
  const data = value(0);
  return { type, v, epoch, ts, corr, reason, data } as AnyEnvelope;
}

function need(k: number): void {
  if (end - pos < k) throw DECLINE;
}

function arrayLength(): number {
  need(1);
  const b = src[pos++]!;
  if (b >= 0x90 && b < 0xa0) return b - 0x90;
  if (b === 0xdc) return u16();
  if (b === 0xdd) return u32();
  throw DECLINE;
}

function u16(): number {
  need(2);
  const v = view.getUint16(pos);
  pos += 2;
  return v;
}

function u32(): number {
  need(4);
  const v = view.getUint32(pos);
  pos += 4;
  return v;
}

function i16(): number {
  need(2);
  const v = view.getInt16(pos);
  pos += 2;
  return v;
}

function i32(): number {
  need(4);
  const v = view.getInt32(pos);
  pos += 4;
  return v;
}

/**
 * A 64-bit integer as msgpackr's `int64AsType: "number"` reads it, to the operation (the same
 * rounding): its high word (read signed or unsigned by the caller) × 2^32, plus its low word.
 */
function int64(high: number): number {
  let v = high * 0x100000000;
  v += view.getUint32(pos + 4);
  pos += 8;
  return v;
}

/** A string value's byte length, from its header; declines anything that is not a string. */
function stringLength(): number {
  need(1);
  const b = src[pos++]!;
  if (b >= 0xa0 && b < 0xc0) return b - 0xa0;
  if (b === 0xd9) {
    need(1);
    return src[pos++]!;
  }
  if (b === 0xda) return u16();
  if (b === 0xdb) return u32();
  throw DECLINE;
}

/** A string, cached when short. */
function stringValue(): string {
  return str(stringLength());
}

/** A string built on its own, never cached: reasons and correlation ids, mostly unique. */
function freshString(): string {
  const n = stringLength();
  need(n);
  const s = pos;
  pos += n;
  return text(s, pos);
}

function value(depth: number): unknown {
  need(1);
  const b = src[pos++]!;
  if (b < 0x80) return b;
  if (b < 0x90) return map(b - 0x80, depth);
  if (b < 0xa0) return array(b - 0x90, depth);
  if (b < 0xc0) return str(b - 0xa0);
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcb: {
      need(8);
      const v = view.getFloat64(pos);
      pos += 8;
      return v;
    }
    case 0xcc:
      need(1);
      return src[pos++]!;
    case 0xcd:
      return u16();
    case 0xce:
      return u32();
    case 0xcf:
      need(8);
      return int64(view.getUint32(pos));
    case 0xd0:
      need(1);
      return view.getInt8(pos++);
    case 0xd1:
      return i16();
    case 0xd2:
      return i32();
    case 0xd3:
      need(8);
      return int64(view.getInt32(pos));
    case 0xd9:
      need(1);
      return str(src[pos++]!);
    case 0xda:
      return str(u16());
    case 0xdb:
      return str(u32());
    case 0xdc:
      return array(u16(), depth);
    case 0xdd:
      return array(u32(), depth);
    case 0xde:
      return map(u16(), depth);
    case 0xdf:
      return map(u32(), depth);
    default:
      throw DECLINE; // bin, ext, float32, 0xc1
  }
}

function array(n: number, depth: number): unknown[] {
  if (depth >= MAX_DEPTH || n > end - pos) throw DECLINE;
  const a = new Array<unknown>(n);
  for (let i = 0; i < n; i++) a[i] = value(depth + 1);
  return a;
}

function map(n: number, depth: number): Record<string, unknown> {
  if (depth >= MAX_DEPTH || n > (end - pos) / 2) throw DECLINE;
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = stringValue(); // a key that is not a string: declined (msgpackr converts it)
    if (k === "__proto__") throw DECLINE; // msgpackr renames it
    o[k] = value(depth + 1);
  }
  return o;
}

/** n bytes at pos as a string: from the cache when short and ASCII. */
function str(n: number): string {
  need(n);
  const s = pos;
  const e = pos + n;
  pos = e;
  if (n === 0) return "";
  if (n > MAX_CACHED) return text(s, e);
  let h = 0x811c9dc5 ^ n;
  let high = 0;
  for (let i = s; i < e; i++) {
    const c = src[i]!;
    high |= c;
    h = Math.imul(h ^ c, 0x01000193);
  }
  if (high >= 0x80) return utf8(s, e);
  const slot = (h ^ (h >>> 15)) & SLOT_MASK;
  const c = cached[slot]!;
  if (c.length === n) {
    let i = 0;
    while (i < n && c.charCodeAt(i) === src[s + i]) i++;
    if (i === n) return c;
  }
  const v = n <= 8 ? shortAscii(s, n) : buf.toString("latin1", s, e);
  cached[slot] = v;
  return v;
}

/** Bytes s…e as a new string of its own: ASCII as Latin-1 (the same), else strict UTF-8. */
function text(s: number, e: number): string {
  for (let i = s; i < e; i++) if (src[i]! >= 0x80) return utf8(s, e);
  return s === e ? "" : buf.toString("latin1", s, e);
}

const fromCharCode = String.fromCharCode;
function shortAscii(s: number, n: number): string {
  const b = src;
  switch (n) {
    case 1:
      return fromCharCode(b[s]!);
    case 2:
      return fromCharCode(b[s]!, b[s + 1]!);
    case 3:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!);
    case 4:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!);
    case 5:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!);
    case 6:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!);
    case 7:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!);
    default:
      return fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!);
  }
}

/**
 * Bytes s…e decoded as UTF-8, after checking that they are valid UTF-8 (no overlong form, no
 * surrogate, nothing above U+10FFFF, nothing cut short). Every correct decoder reads valid UTF-8
 * alike; invalid bytes are where decoders differ (how many U+FFFD), so those are declined, and so
 * is a leading byte order mark.
 */
function utf8(s: number, e: number): string {
  // A leading byte order mark: msgpackr's TextDecoder drops it, its native reader keeps it.
  if (e - s >= 3 && src[s] === 0xef && src[s + 1] === 0xbb && src[s + 2] === 0xbf) throw DECLINE;
  let i = s;
  while (i < e) {
    const c = src[i]!;
    if (c < 0x80) {
      i++;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (e - i < 2 || (src[i + 1]! & 0xc0) !== 0x80) throw DECLINE;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (e - i < 3) throw DECLINE;
      const c1 = src[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (src[i + 2]! & 0xc0) !== 0x80) throw DECLINE;
      if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0)) throw DECLINE;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (e - i < 4) throw DECLINE;
      const c1 = src[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (src[i + 2]! & 0xc0) !== 0x80 || (src[i + 3]! & 0xc0) !== 0x80) throw DECLINE;
      if ((c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) throw DECLINE;
      i += 4;
    } else {
      throw DECLINE;
    }
  }
  return buf.toString("utf8", s, e);
}
