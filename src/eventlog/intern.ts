// Decoded strings made the engine's own (internalized) before the fold keeps them.
//
// Only on msgpackr's path (decodeRecordGeneric): the records Roost writes are read by
// recordReader.ts, which builds each string on its own and hands an id it read recently back as
// the same string, so it needs none of this. What follows is why msgpackr's path does.
//
// Why: msgpackr's native string extraction (msgpackr-extract) reads every string of a record in
// one call, as one long string, and hands each value out as a slice of it. V8 keeps a slice of 13
// characters or more as a SlicedString: a pointer into that parent. The fold keeps ids, hosts and
// reasons from the events it applies, so the state held on to every record's whole string blob:
// 1M events (240k tasks) folded to a 321 MiB heap, against 156 MiB with the same strings copied
// out. And a Map lookup with a fresh string key compares characters with the stored key (a cache
// miss into the heap per lookup), where two internalized strings compare by pointer: the fold of
// freshly decoded events ran at 2.8–3.2 s per million events, against 1.6–2.0 s with interned
// strings (tmpprof measurement, 2026-12-04, 4 rounds each).
//
// Storing a string as a property key internalizes it: V8 looks it up in its string table (adding
// it when new) and turns the slice into a ThinString pointing at the table's flat copy, which the
// garbage collector then substitutes everywhere. The table holds its strings weakly, so a string
// nobody keeps is collected as before. The property is deleted at once; the sink stays empty.
//
// Explicit limits: only strings of 13–1,024 characters (shorter ones are never slices; longer
// ones are rare, seldom repeated and not worth hashing twice) and only to a depth of 4 (an event's
// payload is shallower; anything deeper is left as decoded). Equal strings stay equal, so nothing
// the fold computes changes: only where the bytes live.
//
// A TaskAssigned's placement decision (hosts looked at, scores, runners-up) is left as decoded:
// the state neither keeps it nor looks anything up by it (a history query reads it from the log),
// and interning its hosts was 3 of the 7 strings interned per placement. Decoding the records of
// 100k committed placements took 400 ms with them interned (200 ms for msgpackr alone) and
// 350 ms without (medians of 5 rounds, 2026-12-04). A fold that starts keeping it must intern it.
//
// Reasons are copied, not interned. Interning them too (long, mostly unique strings, which the
// engine allocates straight into its old generation) doubled the leader's submit-to-placed p99
// (16.5 -> 28 ms median over 4 pairs of bench placement, 2 of 4 runs over the 20 ms goal) and cost
// 14% of its placements/s. A reason is kept as a task's lastReason, so it must not stay a slice
// of the record either (1,300 MiB at 1M tasks with the reasons left as slices); a copy whose
// parent is its own text costs a young allocation: 812 MiB at 1M tasks (706 with reasons interned,
// which also shares equal ones), and the p99 back to 19–20 ms. Correlation ids are left as
// decoded: the state keeps none.

const SINK: Record<string, number> = Object.create(null) as Record<string, number>;
const MIN = 13;
const MAX = 1024;
const MAX_DEPTH = 4;

/** The same string, internalized when it is of the length a slice can be. */
export function intern(s: string): string {
  if (s.length >= MIN && s.length <= MAX) {
    SINK[s] = 0;
    delete SINK[s];
  }
  return s;
}

/**
 * The same text, not a slice of the record: concatenating makes a new string, and slicing that
 * flattens it into a young string of its own, which the result points into (so it keeps one
 * character more than it needs, not the record's every string).
 */
export function ownCopy(s: string): string {
  return s.length < MIN ? s : `${s} `.slice(0, -1);
}

/**
 * Interns the strings of a decoded payload in place (arrays and plain maps, to MAX_DEPTH), except
 * under its top-level field `skip`; returns it.
 */
export function internPayload<T>(x: T, skip: string | undefined): T {
  if (skip === undefined || x === null || typeof x !== "object" || Array.isArray(x)) return internStrings(x);
  const o = x as Record<string, unknown>;
  for (const k in o) if (k !== skip) internStrings(o[k], 1);
  return x;
}

/** Interns the strings of a decoded value in place (arrays and plain maps, to MAX_DEPTH); returns it. */
export function internStrings<T>(x: T, depth = 0): T {
  if (typeof x === "string") return intern(x) as T;
  if (x === null || typeof x !== "object" || depth >= MAX_DEPTH || ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) {
      const v: unknown = x[i];
      if (typeof v === "string") intern(v);
      else if (v !== null && typeof v === "object") internStrings(v, depth + 1);
    }
    return x;
  }
  const o = x as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (typeof v === "string") intern(v);
    else if (v !== null && typeof v === "object") internStrings(v, depth + 1);
  }
  return x;
}
