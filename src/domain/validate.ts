// Schema checks for everything that crosses a boundary: API requests, agent messages, and the
// events the fold reads back from the log. Schemas are written with TypeBox (types and JSON Schema
// from one definition) and checked by ajv (compiled validators: a few ns per small object).
//
// Why: before this, each handler checked its input by hand, and the checks had gaps. A status
// update with state "BOGUS" passed ("state must be a string"), was appended, and the fold threw
// on it, on every replica, forever. A check written once per message, from its schema, has no
// such gaps, and its refusal names the field and the rule: `update.state: must be one of …`.
//
// Two strengths: `checker` (every problem, for refusals a person reads) and `fastChecker` (the
// first problem only, for the fold's hot path).

import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { Type, type Static, type TSchema } from "../vendor/typebox.js";

export type { Static, TSchema };

/** One thing wrong with an input: which field, which rule, and what was there. */
export interface Problem {
  /** "update.state", "resources.ports[2]"; "" for the message itself. */
  field: string;
  /** In words: "must be one of STARTING, RUNNING, …", "is required", "is not a known field". */
  rule: string;
  /** What was found, briefly (absent for a missing field). */
  got?: string;
}

/** Schema annotation: the rule in words, used instead of a generated description. */
export const RULE = "x-rule";

function makeAjv(allErrors: boolean): Ajv {
  const ajv = new Ajv({ allErrors, strict: true, useDefaults: false, coerceTypes: false });
  ajv.addKeyword({ keyword: RULE, schemaType: "string" });
  return ajv;
}

const full = makeAjv(true);
const fast = makeAjv(false);
const compiledFull = new WeakMap<object, ValidateFunction>();
const compiledFast = new WeakMap<object, ValidateFunction>();

function compile(ajv: Ajv, cache: WeakMap<object, ValidateFunction>, schema: TSchema): ValidateFunction {
  let v = cache.get(schema);
  if (!v) cache.set(schema, (v = ajv.compile(schema)));
  return v;
}

/** At most this many problems are reported for one input (the first ones, in field order). */
const MAX_PROBLEMS = 10;

/** A checker that reports every problem (up to MAX_PROBLEMS). Compiled on first use. */
export function checker<S extends TSchema>(schema: S): (value: unknown) => Problem[] {
  let v: ValidateFunction | null = null;
  return (value) => {
    v ??= compile(full, compiledFull, schema);
    return v(value) ? [] : problemsOf(schema, v.errors ?? [], value);
  };
}

/** A checker that stops at the first problem: null when the value is valid. */
export function fastChecker<S extends TSchema>(schema: S): (value: unknown) => Problem | null {
  let v: ValidateFunction | null = null;
  return (value) => {
    v ??= compile(fast, compiledFast, schema);
    return v(value) ? null : (problemsOf(schema, v.errors ?? [], value)[0] ?? { field: "", rule: "is malformed" });
  };
}

/** "update.state: must be one of … (got "BOGUS")". */
export function formatProblem(p: Problem, prefix = ""): string {
  const field = prefix && p.field ? `${prefix}.${p.field}` : prefix || p.field || "(message)";
  return `${field}: ${p.rule}${p.got !== undefined ? ` (got ${p.got})` : ""}`;
}

export function formatProblems(problems: readonly Problem[], prefix = ""): string {
  return problems.map((p) => formatProblem(p, prefix)).join("; ");
}

// ---- ajv errors → problems -------------------------------------------------------------------

function problemsOf(root: TSchema, errors: readonly ErrorObject[], value: unknown): Problem[] {
  // A union's branch errors say little ("must be string", "must be null"): report the union,
  // unless the value is of the type of exactly one branch (a mapping where a mapping or null is
  // allowed): then that branch's own problems name the field inside it (healthCheck.intervalSecs).
  const unions: string[] = [];
  const chosen = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== "anyOf" && e.keyword !== "oneOf") continue;
    const node = nodeAt(root, e.schemaPath);
    // A union with its own rule in words says it best.
    const branches = (node?.[RULE] === undefined ? (node?.[e.keyword] ?? []) : []) as Array<Record<string, unknown>>;
    const kind = jsonType(valueAt(value, pointerSegs(e.instancePath)));
    const same = branches.flatMap((b, i) => (b.type === kind || (kind === "integer" && b.type === "number") ? [i] : []));
    const branch = same.length === 1 ? `${e.schemaPath}/${same[0]}/` : null;
    if (branch !== null && errors.some((x) => x.schemaPath.startsWith(branch))) {
      chosen.add(e.schemaPath);
      unions.push(...branches.map((_, i) => `${e.schemaPath}/${i}/`).filter((b) => b !== branch));
    } else unions.push(`${e.schemaPath}/`);
  }
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (chosen.has(e.schemaPath) && (e.keyword === "anyOf" || e.keyword === "oneOf")) continue;
    if (unions.some((u) => e.schemaPath.startsWith(u))) continue;
    if (e.keyword === "if") continue;
    const p = toProblem(root, e, value);
    if (p === null) continue;
    const key = `${p.field}\u0000${p.rule}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
    if (out.length >= MAX_PROBLEMS) break;
  }
  return out;
}

function toProblem(root: TSchema, e: ErrorObject, value: unknown): Problem | null {
  const segs = pointerSegs(e.instancePath);
  const node = nodeAt(root, e.schemaPath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return { field: formatPath([...segs, String(params.missingProperty)]), rule: "is required" };
    case "additionalProperties": {
      const name = String(params.additionalProperty);
      const known = Object.keys((node?.properties as object | undefined) ?? {});
      const rule =
        known.length > 0 && node?.additionalProperties === false
          ? `is not a known field (known: ${known.join(", ")})`
          : "is not a known field";
      return { field: formatPath([...segs, name]), rule };
    }
    case "propertyNames": {
      const name = String(params.propertyName);
      const names = node?.propertyNames as Record<string, unknown> | undefined;
      return { field: formatPath([...segs, name]), rule: `is not an allowed name here: ${describe(names ?? {})}`, got: show(name) };
    }
    default: {
      if (e.propertyName !== undefined) return null; // reported by its propertyNames error
      const got = valueAt(value, segs);
      return { field: formatPath(segs), rule: node ? describe(node, e.keyword) : (e.message ?? `breaks "${e.keyword}"`), got: show(got) };
    }
  }
}

/** The schema node that holds the failing keyword ("#/properties/a/type" → the node of a). */
/** A value's JSON Schema type. */
function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function nodeAt(root: TSchema, schemaPath: string): Record<string, unknown> | undefined {
  const parts = schemaPath
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p !== "");
  parts.pop();
  let node: unknown = root;
  for (const raw of parts) {
    const p = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[p];
  }
  return node !== null && typeof node === "object" ? (node as Record<string, unknown>) : undefined;
}

/** A schema node's rule, in words. */
function describe(node: Record<string, unknown>, keyword?: string): string {
  const fixed = node[RULE];
  if (typeof fixed === "string") return fixed;
  if (Array.isArray(node.enum)) return `must be one of ${node.enum.map((v) => String(v)).join(", ")}`;
  if (node.anyOf || node.oneOf) {
    const branches = ((node.anyOf ?? node.oneOf) as Array<Record<string, unknown>>).map((b) => describe(b).replace(/^must be /, ""));
    return `must be ${branches.join(", or ")}`;
  }
  if ("const" in node) return `must be ${JSON.stringify(node.const)}`;
  switch (node.type) {
    case "integer":
    case "number": {
      const what = node.type === "integer" ? "an integer" : "a number";
      const lo = node.minimum ?? node.exclusiveMinimum;
      const hi = node.maximum ?? node.exclusiveMaximum;
      const loWord = node.exclusiveMinimum !== undefined ? `greater than ${lo}` : `${lo}`;
      if (lo !== undefined && hi !== undefined) {
        return node.exclusiveMinimum !== undefined
          ? `must be ${what} greater than ${lo} and at most ${hi}`
          : `must be ${what} from ${loWord} to ${hi}`;
      }
      if (lo !== undefined) return node.exclusiveMinimum !== undefined ? `must be ${what} ${loWord}` : `must be ${what} of at least ${lo}`;
      if (hi !== undefined) return `must be ${what} of at most ${hi}`;
      return `must be ${what}`;
    }
    case "string": {
      const parts: string[] = [];
      if (node.pattern !== undefined) parts.push(`match ${String(node.pattern)}`);
      if (node.minLength !== undefined && node.maxLength !== undefined) parts.push(`${node.minLength} to ${node.maxLength} characters`);
      else if (node.maxLength !== undefined) parts.push(`at most ${node.maxLength} characters`);
      else if (node.minLength !== undefined) parts.push(`at least ${node.minLength} character(s)`);
      return parts.length ? `must be a string: ${parts.join(", ")}` : "must be a string";
    }
    case "boolean":
      return "must be true or false";
    case "null":
      return "must be null";
    case "array": {
      if (keyword === "maxItems") return `must be a list of at most ${node.maxItems} items`;
      if (keyword === "minItems") return `must be a list of at least ${node.minItems} items`;
      if (keyword === "uniqueItems") return "must not repeat an item";
      return "must be a list";
    }
    case "object":
      if (keyword === "maxProperties") return `must have at most ${node.maxProperties} entries`;
      return "must be a mapping";
    default:
      return "has the wrong form";
  }
}

function pointerSegs(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function formatPath(segs: readonly string[]): string {
  let out = "";
  for (const s of segs) {
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

function valueAt(value: unknown, segs: readonly string[]): unknown {
  let cur = value;
  for (const s of segs) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.hasOwn(cur, s)) return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

/** A value, briefly: strings quoted and cut at 60 characters, containers by kind. */
export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === "object") return Object.keys(v).length === 0 ? "an empty mapping" : "a mapping";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

// ---- building blocks -------------------------------------------------------------------------

/** A string-keyed map whose values all match `value` (any key, including ones with newlines). */
export function Dict<V extends TSchema>(value: V, opts: { keys?: TSchema; maxEntries?: number; rule?: string } = {}) {
  return Type.Unsafe<Record<string, Static<V>>>({
    type: "object",
    additionalProperties: value,
    ...(opts.keys ? { propertyNames: opts.keys } : {}),
    ...(opts.maxEntries !== undefined ? { maxProperties: opts.maxEntries } : {}),
    ...(opts.rule ? { [RULE]: opts.rule } : {}),
  });
}

/** One of a fixed list of strings (JSON Schema enum), typed as their union. */
export function OneOf<const T extends readonly string[]>(values: T, opts: { rule?: string } = {}) {
  return Type.Unsafe<T[number]>({ enum: [...values], ...(opts.rule ? { [RULE]: opts.rule } : {}) });
}
