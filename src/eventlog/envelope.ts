// The versioned event envelope and its frozen wire codec.
//
// Wire format (plain MessagePack, readable from any language, forever):
//   record   = array of envelope            one JetStream message = one group commit
//   envelope = [type, v, epoch, ts, corr, reason, data]
//     type   string   event type (events.ts)
//     v      uint     payload version of that type
//     epoch  uint     leader epoch (lease revision) of the writer; 0 before any election
//     ts     uint     wall-clock ms of the decision, read by the writer, never by the fold
//     corr   string   correlation id: ties a request to every event it caused
//     reason string   why the decision was made, in words an SRE can read
//     data   map      the payload (events.ts)
// New envelope fields may only be appended at the end of the array.

import { Packr } from "msgpackr";
import { EVENT_TYPES, EVENT_VERSIONS, type EventPayloads, type EventType } from "./events.js";

export interface Envelope<T extends EventType = EventType> {
  type: T;
  v: number;
  epoch: number;
  ts: number;
  corr: string;
  reason: string;
  data: EventPayloads[T];
}

/** Any envelope, as a discriminated union on `type` so `switch (env.type)` narrows `data`. */
export type AnyEnvelope = { [T in EventType]: Envelope<T> }[EventType];

/** A decoded record: the events of one log entry and the stream sequence that holds them. */
export interface LogRecord {
  seq: number;
  events: AnyEnvelope[];
}

// Frozen: no records/structures, no extensions, undefined as nil. Never change these options.
const codec = new Packr({
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  useToJSON: false,
  mapsAsObjects: true,
  int64AsType: "number",
});

export class DecodeError extends Error {
  override name = "DecodeError";
}

/**
 * Upcasters turn a payload of an older version into the current one, per event type.
 * upcasters[type][v] maps version v to v+1. None exist yet: every type is at version 1.
 */
const upcasters: Partial<Record<EventType, Record<number, (data: any) => any>>> = {};

/**
 * Decoded strings are fresh heap strings; mapping the type to the catalog's own (internalized)
 * string makes every `switch (env.type)` in the fold a pointer compare.
 */
const INTERNED_TYPES = new Map<string, EventType>(EVENT_TYPES.map((t) => [t, t]));

export function makeEnvelope<T extends EventType>(
  type: T,
  data: EventPayloads[T],
  meta: { epoch: number; ts: number; corr: string; reason: string },
): Envelope<T> {
  return { type, v: EVENT_VERSIONS[type], epoch: meta.epoch, ts: meta.ts, corr: meta.corr, reason: meta.reason, data };
}

export function encodeRecord(events: readonly Envelope[]): Uint8Array {
  const arr = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    arr[i] = [e.type, e.v, e.epoch, e.ts, e.corr, e.reason, e.data];
  }
  return codec.pack(arr);
}

export function decodeRecord(bytes: Uint8Array): AnyEnvelope[] {
  let raw: unknown;
  try {
    raw = codec.unpack(bytes);
  } catch (err) {
    throw new DecodeError(`log record is not valid MessagePack: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new DecodeError("log record must be an array of envelopes");
  const out = new Array<AnyEnvelope>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i];
    if (!Array.isArray(a) || a.length < 7 || typeof a[0] !== "string") {
      throw new DecodeError(`envelope ${i} must be [type, v, epoch, ts, corr, reason, data]`);
    }
    const type = INTERNED_TYPES.get(a[0]);
    if (type === undefined) throw new DecodeError(`envelope ${i}: unknown event type "${a[0]}"`);
    const current = EVENT_VERSIONS[type];
    let v = a[1] as number;
    let data = a[6];
    if (v !== current) {
      if (v > current) throw new DecodeError(`envelope ${i}: ${type} v${v} is newer than this build (v${current})`);
      const ups = upcasters[type];
      while (v < current) {
        const up = ups?.[v];
        if (!up) throw new DecodeError(`envelope ${i}: no upcaster for ${type} v${v}`);
        data = up(data);
        v++;
      }
    }
    out[i] = { type, v, epoch: a[2], ts: a[3], corr: a[4], reason: a[5], data } as AnyEnvelope;
  }
  return out;
}

/** Plain MessagePack for anything else that must stay readable (snapshots, bus messages). */
export function pack(value: unknown): Uint8Array {
  return codec.pack(value);
}
export function unpack<T = unknown>(bytes: Uint8Array): T {
  return codec.unpack(bytes) as T;
}
