// The versioned event envelope and its frozen wire codec.
//
// Wire format (plain MessagePack, readable from any language, forever):
//   record   = array of envelope            one JetStream message = one group commit
//   envelope = [type, v, epoch, ts, corr, reason, data]
//     type   string   event type (domain/events.ts)
//     v      uint     payload version of that type
//     epoch  uint     leader epoch (lease revision) of the writer; 0 before any election
//     ts     uint     wall-clock ms of the decision, read by the writer, never by the fold
//     corr   string   correlation id: ties a request to every event it caused
//     reason string   why the decision was made, in words an SRE can read
//     data   map      the payload (domain/events.ts)
// New envelope fields may only be appended at the end of the array.
//
// Decoding never throws. What cannot be read (bytes that are not MessagePack, a record that is
// not a list of envelopes, an unknown type, a payload version newer than this build) comes back
// as an UNREADABLE entry in its place, which the fold records as an anomaly and skips, the same
// on every replica. It used to throw: one `nats pub roost.events hello` made every takeover retry
// forever and every CLI read fail, without even naming the sequence.

import { Packr } from "msgpackr";
import {
  EVENT_TYPES,
  EVENT_VERSIONS,
  UNREADABLE,
  type AnyEnvelope,
  type Envelope,
  type EventType,
  type LogEntry,
  type UnreadableEntry,
} from "../domain/events.js";
import { internPayload, ownCopy } from "./intern.js";
import { readRecord } from "./recordReader.js";

export { makeEnvelope, UNREADABLE } from "../domain/events.js";
export type { AnyEnvelope, Envelope, LogEntry, LogRecord } from "../domain/events.js";

// Frozen: no records/structures, no extensions, undefined as nil. Never change these options.
const codec = new Packr({
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  useToJSON: false,
  mapsAsObjects: true,
  int64AsType: "number",
});

/**
 * Upcasters turn a payload of an older version into the current one, per event type.
 * upcasters[type][v] maps version v to v+1. None exist yet: every type is at version 1.
 */
const upcasters: Partial<Record<EventType, Record<number, (data: unknown) => unknown>>> = {};

/**
 * Decoded strings are fresh heap strings; mapping the type to the catalog's own (internalized)
 * string makes every `switch (env.type)` in the fold a pointer compare.
 */
const INTERNED_TYPES = new Map<string, EventType>(EVENT_TYPES.map((t) => [t, t]));

/** A payload field the state neither keeps nor looks up by, per type: not interned (intern.ts). */
const NOT_KEPT: Partial<Record<EventType, string>> = { TaskAssigned: "placement" };

export function encodeRecord(events: readonly Envelope[]): Uint8Array {
  const arr = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    arr[i] = [e.type, e.v, e.epoch, e.ts, e.corr, e.reason, e.data];
  }
  return codec.pack(arr);
}

/**
 * The entries of one record, in order. Never throws: an entry that cannot be read is an
 * UNREADABLE entry in its place (index kept, so (seq, index) still locate every event), and a
 * record that cannot be read at all is one UNREADABLE entry.
 */
export function decodeRecord(bytes: Uint8Array): LogEntry[] {
  // Every record Roost writes takes the fast path (recordReader.ts); what it declines is read by
  // the definition: msgpackr, the envelope checks, the upcasters. The leader decodes its own
  // commits with the definition (appender.ts says why).
  return readRecord(bytes) ?? decodeRecordGeneric(bytes);
}

/**
 * decodeRecord by msgpackr, for every record: the definition the fast path is checked against
 * (test/recordReader.test.ts). Never throws.
 */
export function decodeRecordGeneric(bytes: Uint8Array): LogEntry[] {
  let raw: unknown;
  try {
    raw = codec.unpack(bytes);
  } catch (err) {
    return [unreadable(`the record is not valid MessagePack (${bytes.length} bytes): ${(err as Error).message}`, null)];
  }
  if (!Array.isArray(raw)) return [unreadable(`the record must be a list of envelopes, not ${kind(raw)}`, null)];
  if (raw.length === 0) return [unreadable("the record holds no envelope", null)];
  const out = new Array<LogEntry>(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = decodeEnvelope(raw[i]);
  return out;
}

function decodeEnvelope(a: unknown): LogEntry {
  if (!Array.isArray(a) || a.length < 7) return unreadable("an envelope must be a list [type, v, epoch, ts, corr, reason, data]", null);
  const claimed = a[0];
  if (typeof claimed !== "string") return unreadable(`the envelope's type must be a string, not ${kind(claimed)}`, null);
  const type = INTERNED_TYPES.get(claimed);
  if (type === undefined) return unreadable(`unknown event type ${JSON.stringify(claimed.slice(0, 80))}`, claimed.slice(0, 80));
  const [, v, epoch, ts, corr, reason] = a as unknown[];
  if (!Number.isSafeInteger(v) || (v as number) < 1)
    return unreadable(`${type}: the payload version must be an integer ≥ 1, not ${kind(v)}`, type);
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0)
    return unreadable(`${type}: the epoch must be an integer ≥ 0, not ${kind(epoch)}`, type);
  if (typeof ts !== "number" || !Number.isFinite(ts))
    return unreadable(`${type}: the timestamp must be a finite number, not ${kind(ts)}`, type);
  if (typeof corr !== "string") return unreadable(`${type}: the correlation id must be a string, not ${kind(corr)}`, type);
  if (typeof reason !== "string") return unreadable(`${type}: the reason must be a string, not ${kind(reason)}`, type);
  const current = EVENT_VERSIONS[type];
  let version = v as number;
  let data: unknown = a[6];
  if (version > current) return unreadable(`${type} v${version} is newer than this build reads (v${current})`, type, a);
  if (version < current) {
    const ups = upcasters[type];
    try {
      while (version < current) {
        const up = ups?.[version];
        if (!up) return unreadable(`${type} v${version}: this build has no upcaster from v${version}`, type, a);
        data = up(data);
        version++;
      }
    } catch (err) {
      return unreadable(`${type} v${v as number}: upcasting failed: ${(err as Error).message}`, type, a);
    }
  }
  // The state keeps copies, not slices of the record's strings (intern.ts).
  return {
    type,
    v: version,
    epoch: epoch as number,
    ts,
    corr,
    reason: ownCopy(reason),
    data: internPayload(data, NOT_KEPT[type]),
  } as AnyEnvelope;
}

function unreadable(why: string, claimedType: string | null, a?: unknown[]): UnreadableEntry {
  const epoch = a && Number.isSafeInteger(a[2]) ? (a[2] as number) : 0;
  const ts = a && typeof a[3] === "number" && Number.isFinite(a[3]) ? a[3] : 0;
  const corr = a && typeof a[4] === "string" ? a[4] : "";
  const reason = a && typeof a[5] === "string" ? a[5] : "";
  return { type: UNREADABLE, v: 0, epoch, ts, corr, reason, data: { why, claimedType } };
}

function kind(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (Array.isArray(v)) return "a list";
  if (v instanceof Uint8Array) return "binary";
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Plain MessagePack for anything else that must stay readable (snapshots, bus messages). */
export function pack(value: unknown): Uint8Array {
  return codec.pack(value);
}
export function unpack<T = unknown>(bytes: Uint8Array): T {
  return codec.unpack(bytes) as T;
}
