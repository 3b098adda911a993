// Job spec files: parse (YAML or JSON), validate, normalise into a JobConfig.
//
// Validation has two layers:
//   1. the JSON Schema in schema.ts (shipped as src/spec/job.schema.json for editors), checked
//      by ajv with allErrors, its errors translated into plain words;
//   2. semantic checks the schema cannot express: unique process names, {{ports.NAME}} only for
//      declared ports, well-formed constraint strings, the dedicated constraint's role.
// Every problem is collected and reported together in one SpecError.
//
// Normalisation fills every default and builds each object in a fixed key order (constraints
// sorted by attribute name, constraint strings rewritten canonically), so the same spec always
// yields the same JobConfig and the same encoded bytes.

import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from "yaml";
import { roundCpus } from "../domain/resources.js";
import {
  type HealthCheckConfig,
  type JobConfig,
  type LifecycleConfig,
  type ProcessConstraint,
  processDefaults,
  type TaskConfig,
} from "../domain/types.js";
import {
  DEFAULT_ENVIRONMENT_PATTERN,
  MAX_CMDLINE_BYTES,
  MAX_CONSTRAINTS,
  MAX_CPUS,
  MAX_PORTS_PER_TASK,
  MAX_PROCESSES,
  MIN_CPUS,
} from "../domain/limits.js";
import { CONSTRAINT_RULE, constraintProblem, formatConstraint, parseConstraint } from "../domain/constraints.js";
import { DEFAULT_CRON_TIMEZONE } from "../cron/expression.js";
import { cronSpecProblems } from "../cron/triggers.js";
import { normaliseUpdateConfig, type UpdateConfigInput, updateConfigProblems } from "../updater/settings.js";
import { normaliseSlaPolicy, type SlaPolicyInput, slaPolicyProblems } from "../sla/policy.js";
import { CMDLINE_PATTERN, IDENTIFIER_PATTERN, JOB_SCHEMA, PORT_NAME_PATTERN, URL_PATH_PATTERN } from "./schema.js";

// ---------------------------------------------------------------------------------------------
// Public types

/** A job spec as written in a file (defaults may be omitted). */
export interface JobSpec {
  role: string;
  environment: string;
  name: string;
  instances?: number;
  service?: boolean;
  tier?: string;
  priority?: number;
  maxTaskFailures?: number;
  resources: { cpus: number; ramMb: number; diskMb: number; gpus?: number; ports?: string[] };
  /** Placement constraints; a list may also hold {order: [...]} process order constraints. */
  constraints?: Record<string, string> | Array<Record<string, string> | ProcessConstraint>;
  processConstraints?: ProcessConstraint[];
  processes: Array<{
    name: string;
    cmdline: string;
    maxFailures?: number;
    daemon?: boolean;
    ephemeral?: boolean;
    minDuration?: number;
    final?: boolean;
  }>;
  healthCheck?: Partial<Omit<HealthCheckConfig, "http" | "shell">> & {
    http?: Partial<NonNullable<HealthCheckConfig["http"]>>;
    shell?: { command: string };
  };
  lifecycle?: { http: false | Partial<Exclude<LifecycleConfig["http"], false>> };
  finalizationWaitSecs?: number;
  /** Job-level (Aurora's JobConfiguration): how `roost update` rolls this job. */
  updateConfig?: UpdateConfigInput;
  /** Job-level (Aurora's SlaPolicy): how many tasks a host drain may take down at once. */
  slaPolicy?: SlaPolicyInput;
  cronSchedule?: string;
  cronTimezone?: string;
  cronCollisionPolicy?: string;
}

/** Aurora's HealthCheckConfig defaults (base.py). */
export const HEALTH_CHECK_DEFAULTS = {
  initialIntervalSecs: 15,
  intervalSecs: 10,
  timeoutSecs: 1,
  maxConsecutiveFailures: 0,
  minConsecutiveSuccesses: 1,
  http: { endpoint: "/health", expectedResponse: "ok", expectedResponseCode: 0 },
} as const;

/** Aurora's HttpLifecycleConfig defaults, used when a task has a port named health. */
export const HTTP_LIFECYCLE_DEFAULTS = {
  port: "health",
  gracefulShutdownEndpoint: "/quitquitquit",
  shutdownEndpoint: "/abortabortabort",
  gracefulShutdownWaitSecs: 5,
  shutdownWaitSecs: 5,
} as const;

/** Aurora's finalization_wait default (seconds between SIGTERM and SIGKILL). */
const FINALIZATION_WAIT_DEFAULT_SECS = 30;

export interface SpecIssue {
  /** The field, e.g. "resources.ramMb" or "processes[1].name"; "" for the document itself. */
  path: string;
  /** The rule broken, in words, e.g. "must be an integer greater than 0", "required", "unknown field". */
  rule: string;
  /** One line for a human: "path: rule" plus what was found, e.g. "resources.ramMb: must be ... (got -5)". */
  message: string;
  /** 1-based position in the source text, when the spec came from parseJobSpec. */
  line?: number;
  column?: number;
}

export class SpecError extends Error {
  readonly issues: SpecIssue[];
  readonly fileName: string | undefined;

  constructor(issues: SpecIssue[], fileName?: string) {
    const where = fileName ? ` ${fileName}` : "";
    const count = issues.length === 1 ? "1 problem" : `${issues.length} problems`;
    const lines = issues.map(
      (i) => `  ${i.message}${i.line !== undefined && i.path !== "" ? ` [line ${i.line}, column ${i.column}]` : ""}`,
    );
    super([`invalid job spec${where} (${count}):`, ...lines].join("\n"));
    this.name = "SpecError";
    this.issues = issues;
    this.fileName = fileName;
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points

/** Parses a YAML or JSON job spec, validates it and returns the normalised JobConfig. */
export function parseJobSpec(text: string, fileName?: string): JobConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): SpecIssue => {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      const rule = `YAML syntax error: ${firstLine(e.message)}`;
      return { path: "", rule, message: `line ${line}, column ${col}: ${rule}`, line, column: col };
    });
    throw new SpecError(issues, fileName);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const rule = `YAML error: ${firstLine((err as Error).message)}`;
    throw new SpecError([{ path: "", rule, message: rule }], fileName);
  }
  const { issues: raw, data: lifted } = check(data);
  if (raw.length > 0) {
    // In source order, so the list reads top to bottom alongside the file.
    const issues = raw
      .map((r) => toIssue(r, locate(doc, lineCounter, r.segs, r.atKey === true)))
      .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    throw new SpecError(issues, fileName);
  }
  return normalise(lifted as JobSpec);
}

/** What the scheduler allows beyond the spec's own rules (its options). */
export interface SpecPolicy {
  /**
   * Environments the scheduler accepts (Aurora's allowed_job_environments; `roost scheduler
   * --allowed-environments`). Default: DEFAULT_ENVIRONMENT_PATTERN.
   */
  allowedEnvironments?: RegExp;
}

export const DEFAULT_ALLOWED_ENVIRONMENTS = new RegExp(DEFAULT_ENVIRONMENT_PATTERN);

/**
 * Validates an already-parsed spec (e.g. a request from the bus) and returns the normalised
 * JobConfig. Also accepts an already-normalised JobConfig (fields under `task`), so
 * validateJobSpec(parseJobSpec(text)) round-trips; issue paths then point under "task.".
 * The scheduler validates with its policy; the CLI (parseJobSpec) checks the spec's own rules
 * only, since it does not know which environments the scheduler allows.
 */
export function validateJobSpec(obj: unknown, policy: SpecPolicy = {}): JobConfig {
  const asConfig = isConfigShape(obj);
  const checked = check(asConfig ? flattenConfig(obj as Record<string, unknown>) : obj);
  const raw = checked.issues;
  const data = checked.data;
  const allowed = policy.allowedEnvironments ?? DEFAULT_ALLOWED_ENVIRONMENTS;
  if (
    isRecord(data) &&
    typeof data.environment === "string" &&
    !raw.some((r) => r.segs[0] === "environment") &&
    !allowed.test(data.environment)
  ) {
    raw.push({
      segs: ["environment"],
      rule: `must match the environments this scheduler allows, ${allowed.source}`,
      detail: `got ${show(data.environment)}`,
    });
  }
  if (raw.length > 0) {
    throw new SpecError(raw.map((r) => toIssue(asConfig ? { ...r, segs: configSegs(r.segs) } : r)));
  }
  return normalise(data as JobSpec);
}

/** The spec form of a normalised JobConfig (every default spelled out). */
export function jobConfigToSpec(config: JobConfig): JobSpec {
  const t = config.task;
  return {
    role: config.role,
    environment: config.environment,
    name: config.name,
    instances: config.instances,
    service: t.service,
    tier: t.tier,
    priority: t.priority,
    maxTaskFailures: t.maxTaskFailures,
    resources: {
      cpus: t.resources.cpus,
      ramMb: t.resources.ramMb,
      diskMb: t.resources.diskMb,
      gpus: t.resources.gpus ?? 0,
      ports: [...t.resources.ports],
    },
    constraints: { ...t.constraints },
    processes: t.processes.map((p) => ({ ...processDefaults(p) })),
    ...(t.processConstraints !== undefined ? { processConstraints: t.processConstraints.map((c) => ({ order: [...c.order] })) } : {}),
    ...(t.healthCheck !== undefined ? { healthCheck: structuredClone(t.healthCheck) } : {}),
    ...(t.lifecycle !== undefined ? { lifecycle: structuredClone(t.lifecycle) } : {}),
    finalizationWaitSecs: t.finalizationWaitSecs ?? FINALIZATION_WAIT_DEFAULT_SECS,
    ...(config.updateConfig !== undefined ? { updateConfig: structuredClone(config.updateConfig) } : {}),
    ...(config.slaPolicy !== undefined ? { slaPolicy: structuredClone(config.slaPolicy) } : {}),
    ...(config.cronSchedule !== undefined ? { cronSchedule: config.cronSchedule } : {}),
    ...(config.cronTimezone !== undefined ? { cronTimezone: config.cronTimezone } : {}),
    ...(config.cronCollisionPolicy !== undefined ? { cronCollisionPolicy: config.cronCollisionPolicy } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Ports

// {{ports.NAME}}, with optional spaces inside the braces. NAME is captured loosely so that a
// malformed name (e.g. {{ports.HTTP}}) is reported as an undeclared port instead of being left
// in the command line.
const PORT_REF = /\{\{\s*ports\.([^{}\s]+)\s*\}\}/g;
// Aurora's spelling, {{thermos.ports[NAME]}}: reported with a hint.
const AURORA_PORT_REF = /\{\{\s*thermos\.ports\[([^\]{}]*)\]\s*\}\}/g;

/** The port names a command line refers to as {{ports.NAME}}, in order, without repeats. */
function portRefs(cmdline: string): string[] {
  const names: string[] = [];
  for (const m of cmdline.matchAll(PORT_REF)) if (!names.includes(m[1]!)) names.push(m[1]!);
  return names;
}

/** Replaces every {{ports.NAME}} with the assigned port number; an unknown NAME throws. */
export function renderCmdline(cmdline: string, ports: Record<string, number>): string {
  return cmdline.replace(PORT_REF, (_m, name: string) => {
    if (!Object.hasOwn(ports, name)) {
      const known = Object.keys(ports);
      throw new Error(
        `command line uses {{ports.${name}}} but no port named "${name}" is assigned` +
          ` (assigned: ${known.length > 0 ? known.join(", ") : "none"})`,
      );
    }
    return String(ports[name]);
  });
}

/** Environment variables for the assigned ports: ROOST_PORT_<NAME upper-cased> = "<port>". */
export function portEnv(ports: Record<string, number>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, port] of Object.entries(ports)) env[`ROOST_PORT_${name.toUpperCase()}`] = String(port);
  return env;
}

// ---------------------------------------------------------------------------------------------
// Constraints: their grammar lives in domain/constraints.ts (placement reads it too).

export { formatConstraint, parseConstraint } from "../domain/constraints.js";

// ---------------------------------------------------------------------------------------------
// Validation

type Seg = string | number;

/** An issue before it is located and formatted. */
interface RawIssue {
  segs: Seg[];
  rule: string;
  /** What was found, appended in parentheses. */
  detail?: string;
  /** Locate the key rather than the value (unknown fields). */
  atKey?: boolean;
}

type SchemaNode = {
  type?: string;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  maxLength?: number;
  minLength?: number;
  minItems?: number;
  maxItems?: number;
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
};

let compiled: ValidateFunction | undefined;
function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv({ allErrors: true, useDefaults: false, strict: true });
    compiled = ajv.compile(JOB_SCHEMA);
  }
  return compiled;
}

/**
 * Every problem with a parsed spec (empty if it is valid), and the spec as checked: a constraints
 * list lifted into the placement mapping and processConstraints (liftConstraintList).
 */
function check(input: unknown): { issues: RawIssue[]; data: unknown } {
  const { data, issues: liftIssues, remap } = liftConstraintList(input);
  const validate = validator();
  const issues: RawIssue[] = [...liftIssues];
  if (!validate(data)) {
    for (const e of validate.errors ?? []) {
      // A value that matches no branch of an anyOf is reported once, by the anyOf itself.
      if (e.schemaPath.includes("/anyOf/")) continue;
      issues.push(...translate(e, data));
    }
  }
  issues.push(...semanticIssues(data));
  // allErrors reports e.g. both "type" and "exclusiveMinimum" for -1.5; they translate alike.
  const seen = new Set<string>();
  const out = issues
    .map((i) => ({ ...i, segs: remap(i.segs) }))
    .filter((i) => {
      const key = `${formatPath(i.segs)}\u0000${i.rule}\u0000${i.detail ?? ""}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  return { issues: out, data };
}

const LIST_ITEM_RULE = "must be {order: [process names]} or a mapping of attribute to constraint";

/**
 * Aurora writes placement and process order constraints in one `constraints`; Roost's log keeps
 * them apart (placement reads one, the executor the other). A constraints list is lifted into the
 * mapping and processConstraints before anything is checked, and `remap` turns a problem's path
 * in the lifted spec back into the path the author wrote (constraints[2].order[1]).
 */
function liftConstraintList(data: unknown): { data: unknown; issues: RawIssue[]; remap: (segs: Seg[]) => Seg[] } {
  if (!isRecord(data) || !Array.isArray(data.constraints)) return { data, issues: [], remap: (segs) => segs };
  const placement: Record<string, unknown> = {};
  const attrAt = new Map<string, number>();
  const orders: unknown[] = [];
  const orderAt: number[] = [];
  const issues: RawIssue[] = [];
  data.constraints.forEach((item: unknown, i: number) => {
    if (isRecord(item) && Object.hasOwn(item, "order") && Object.keys(item).length === 1) {
      orderAt.push(i);
      orders.push(item);
    } else if (isRecord(item) && !Object.hasOwn(item, "order") && Object.keys(item).length > 0) {
      for (const [k, v] of Object.entries(item)) {
        const j = attrAt.get(k);
        if (j !== undefined) {
          issues.push({
            segs: ["constraints", i, k],
            rule: "must not repeat an attribute",
            detail: `also in constraints[${j}]`,
            atKey: true,
          });
        } else {
          attrAt.set(k, i);
          placement[k] = v;
        }
      }
    } else {
      issues.push({ segs: ["constraints", i], rule: LIST_ITEM_RULE, detail: `got ${show(item)}` });
    }
  });
  const direct = data.processConstraints;
  const offset = Array.isArray(direct) ? direct.length : 0;
  const lifted: Record<string, unknown> = { ...data, constraints: placement };
  if (orders.length > 0)
    lifted.processConstraints = Array.isArray(direct) || direct === undefined ? [...(direct ?? []), ...orders] : direct;
  const remap = (segs: Seg[]): Seg[] => {
    const [head, second, ...rest] = segs;
    if (head === "processConstraints" && typeof second === "number" && second >= offset && orderAt[second - offset] !== undefined) {
      return ["constraints", orderAt[second - offset]!, ...rest];
    }
    if (head === "constraints" && typeof second === "string" && attrAt.has(second))
      return ["constraints", attrAt.get(second)!, second, ...rest];
    return segs;
  };
  return { data: lifted, issues, remap };
}

/** Turns one ajv error into plain words; never ajv's own message unless the keyword is unknown. */
function translate(e: ErrorObject, data: unknown): RawIssue[] {
  const segs = pointerSegs(e.instancePath, data);
  const node = schemaNodeAt(e.schemaPath);
  const value = valueAt(data, segs);
  switch (e.keyword) {
    case "required":
      return [{ segs: [...segs, (e.params as { missingProperty: string }).missingProperty], rule: "required" }];
    case "additionalProperties": {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys(node?.properties ?? {});
      const guess = closest(field, allowed);
      return [
        {
          segs: [...segs, field],
          rule: "unknown field",
          detail: guess !== undefined ? `did you mean "${guess}"?` : `allowed here: ${allowed.join(", ")}`,
          atKey: true,
        },
      ];
    }
    case "propertyNames":
      // Reported by the nested error that carries propertyName (below).
      return [];
    case "uniqueItems": {
      const out: RawIssue[] = [];
      if (Array.isArray(value)) {
        const first = new Map<string, number>();
        value.forEach((item, i) => {
          const k = JSON.stringify(item);
          const j = first.get(k);
          if (j === undefined) first.set(k, i);
          else
            out.push({
              segs: [...segs, i],
              rule: "must not repeat an earlier entry",
              detail: `${show(item)} is also ${formatPath([...segs, j])}`,
            });
        });
      }
      return out;
    }
    default:
      break;
  }
  if (e.propertyName !== undefined) {
    // A constraint attribute name that breaks propertyNames.
    return [{ segs: [...segs, e.propertyName], rule: ATTRIBUTE_RULE, detail: `got ${show(e.propertyName)}`, atKey: true }];
  }
  if (node !== undefined && DESCRIBED_KEYWORDS.has(e.keyword)) {
    const empty = segs.length === 0 && (value === null || value === undefined);
    return [{ segs, rule: describe(node, e.schemaPath), detail: empty ? "the document is empty" : `got ${show(value)}` }];
  }
  return [{ segs, rule: e.message ?? `breaks the "${e.keyword}" rule`, detail: `got ${show(value)}` }];
}

const DESCRIBED_KEYWORDS = new Set([
  "anyOf",
  "type",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "pattern",
  "minLength",
  "maxLength",
  "enum",
  "const",
  "minItems",
  "maxItems",
  "maxProperties",
  "format",
]);

const IDENT_WORDS = 'letters, digits, "_", "." or "-", not starting with "." or "-"';
const ATTRIBUTE_RULE = `attribute names must be ${IDENT_WORDS}`;

/** Rules for nodes whose generic description would be vague, by schema location. */
const NODE_RULES: Record<string, string> = {
  "": "must be a mapping of job fields (role, environment, name, resources, processes, ...)",
  "/properties/resources": "must be a mapping with cpus, ramMb, diskMb (and optionally gpus, ports)",
  "/properties/resources/properties/ports": `must be a list of at most ${MAX_PORTS_PER_TASK} port names`,
  "/properties/constraints": `must be a mapping from attribute name to constraint string, at most ${MAX_CONSTRAINTS} of them`,
  "/properties/constraints/additionalProperties": CONSTRAINT_RULE,
  "/properties/processes": `must be a list of 1 to ${MAX_PROCESSES} processes (each with name and cmdline)`,
  "/properties/processes/items": "must be a mapping with name and cmdline",
  "/properties/lifecycle/properties/http":
    "must be false, or a mapping of port, gracefulShutdownEndpoint, shutdownEndpoint, gracefulShutdownWaitSecs, shutdownWaitSecs",
  "/properties/processConstraints/items": "must be a mapping {order: [process names]}",
};

const PATTERN_RULES: Record<string, string> = {
  [PORT_NAME_PATTERN]: 'must be a port name: a lowercase letter, then lowercase letters, digits or "_"',
  [CMDLINE_PATTERN]: "must be a non-empty command line without NUL bytes",
  [IDENTIFIER_PATTERN]: `must be ${IDENT_WORDS}`,
  [URL_PATH_PATTERN]: 'must be a URL path: "/" then no white space',
};

/** The whole rule of a schema node, in words: "must be an integer from 1 to 4000". */
function describe(node: SchemaNode, schemaPath: string): string {
  const location = schemaPath.replace(/^#/, "").replace(/\/[^/]+$/, "");
  const keyword = schemaPath.slice(schemaPath.lastIndexOf("/") + 1);
  if (keyword === "maxLength" && node.pattern === CMDLINE_PATTERN) return `must be a command line of at most ${MAX_CMDLINE_BYTES} bytes`;
  if (keyword === "maxLength" && node.pattern !== IDENTIFIER_PATTERN) return `must be at most ${node.maxLength} characters`;
  const fixed = NODE_RULES[location];
  if (fixed !== undefined) return fixed;
  if (keyword === "maxItems") return `must be a list of at most ${node.maxItems}`;
  if (node.enum !== undefined) return `must be one of ${node.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  switch (node.type) {
    case "integer":
    case "number": {
      const what = node.type === "integer" ? "an integer" : "a number";
      if (node.minimum === -1 && node.maximum !== undefined) return `must be ${what} from 0 to ${node.maximum}, or -1 for unlimited`;
      if (node.minimum !== undefined && node.maximum !== undefined) return `must be ${what} from ${node.minimum} to ${node.maximum}`;
      if (node.exclusiveMinimum !== undefined) return `must be ${what} greater than ${node.exclusiveMinimum}`;
      if (node.minimum === -1) return `must be ${what} of at least 0, or -1 for unlimited`;
      if (node.minimum !== undefined) return `must be ${what} of at least ${node.minimum}`;
      return `must be ${what}`;
    }
    case "boolean":
      return "must be true or false";
    case "string": {
      if (node.pattern === IDENTIFIER_PATTERN && node.maxLength !== undefined) {
        return `must be 1 to ${node.maxLength} characters: ${IDENT_WORDS}`;
      }
      if (node.pattern !== undefined) return PATTERN_RULES[node.pattern] ?? `must match ${node.pattern}`;
      return node.minLength ? "must be a non-empty string" : "must be a string";
    }
    case "array":
      if (node.minItems && node.maxItems) return `must be a list of ${node.minItems} to ${node.maxItems}`;
      return node.minItems ? `must be a list of at least ${node.minItems}` : "must be a list";
    case "object":
      return "must be a mapping";
    default:
      return "has the wrong form";
  }
}

/** The checks a schema cannot express. Defensive: runs on whatever the input is. */
function semanticIssues(data: unknown): RawIssue[] {
  const issues: RawIssue[] = [];
  if (!isRecord(data)) return issues;

  // Ports a command line may use: resources.ports when it is a list (invalid names are
  // reported by the schema); none when it is absent; unknown, and the check skipped, when
  // resources or its ports are missing or malformed (the schema reports that instead).
  let declared: string[] | undefined;
  if (isRecord(data.resources)) {
    const p = data.resources.ports;
    if (p === undefined) declared = [];
    else if (Array.isArray(p)) declared = [...new Set(p.filter((x): x is string => typeof x === "string"))];
  }

  if (isRecord(data.resources)) {
    const cpus = data.resources.cpus;
    // cpus are counted in thousandths (roundCpus): a finer value would leave dust in every sum.
    if (typeof cpus === "number" && cpus >= MIN_CPUS && cpus <= MAX_CPUS && roundCpus(cpus) !== cpus) {
      issues.push({
        segs: ["resources", "cpus"],
        rule: "must have at most 3 decimal places (cpus are counted in thousandths)",
        detail: `got ${show(cpus)}`,
      });
    }
  }

  if (Array.isArray(data.processes)) {
    const firstIndex = new Map<string, number>();
    data.processes.forEach((proc, i) => {
      if (!isRecord(proc)) return;
      if (typeof proc.cmdline === "string" && proc.cmdline.length <= MAX_CMDLINE_BYTES) {
        const bytes = Buffer.byteLength(proc.cmdline, "utf8");
        if (bytes > MAX_CMDLINE_BYTES) {
          issues.push({
            segs: ["processes", i, "cmdline"],
            rule: `must be a command line of at most ${MAX_CMDLINE_BYTES} bytes`,
            detail: `it is ${bytes} bytes in UTF-8`,
          });
        }
      }
      if (typeof proc.name === "string") {
        const j = firstIndex.get(proc.name);
        if (j === undefined) firstIndex.set(proc.name, i);
        else {
          issues.push({
            segs: ["processes", i, "name"],
            rule: "must be unique among processes",
            detail: `"${proc.name}" is also processes[${j}].name`,
          });
        }
      }
      if (typeof proc.cmdline === "string") {
        for (const m of proc.cmdline.matchAll(AURORA_PORT_REF)) {
          issues.push({
            segs: ["processes", i, "cmdline"],
            rule: "must refer to ports as {{ports.NAME}}",
            detail: `found Aurora's ${m[0]}; write {{ports.${m[1]!.trim().replace(/^['"]|['"]$/g, "")}}}`,
          });
        }
        if (declared !== undefined) {
          for (const name of portRefs(proc.cmdline)) {
            if (declared.includes(name)) continue;
            issues.push({
              segs: ["processes", i, "cmdline"],
              rule: "may only use ports declared in resources.ports",
              detail: `{{ports.${name}}} is not declared; declared: ${declared.length > 0 ? declared.join(", ") : "none"}`,
            });
          }
        }
      }
    });
  }

  issues.push(...serviceIssues(data, declared));
  issues.push(...jobLevelIssues(data));

  if (isRecord(data.constraints)) {
    for (const [attr, value] of Object.entries(data.constraints)) {
      if (typeof value !== "string" || value === "") continue; // the schema reports it
      const problem = constraintProblem(value);
      if (problem !== undefined) {
        issues.push({ segs: ["constraints", attr], rule: CONSTRAINT_RULE, detail: `got ${show(value)}: ${problem}` });
        continue;
      }
      if (attr === "dedicated") issues.push(...dedicatedIssues(value, data.role));
    }
  }
  return issues;
}

/**
 * What the schema cannot say about processes, their order, health checks and the kill sequence:
 * an order names only this task's processes, once each, in no cycle, and never puts a final
 * process before a regular one (finals run after every regular process, Thermos's rule); an HTTP
 * check or lifecycle step needs the port it goes to; a task needs a process that is not final.
 */
function serviceIssues(data: Record<string, unknown>, declared: string[] | undefined): RawIssue[] {
  const issues: RawIssue[] = [];
  const procs = Array.isArray(data.processes) ? data.processes.filter(isRecord) : [];
  const names = new Map<string, boolean>(); // name → final
  for (const p of procs) if (typeof p.name === "string") names.set(p.name, p.final === true);
  if (procs.length > 0 && procs.length === (data.processes as unknown[]).length && [...names.values()].every((f) => f)) {
    issues.push({
      segs: ["processes"],
      rule: "must have a process that is not final",
      detail: "final processes only run once the others ended",
    });
  }
  const edges = new Map<string, Set<string>>();
  if (Array.isArray(data.processConstraints)) {
    data.processConstraints.forEach((c: unknown, i: number) => {
      if (!isRecord(c) || !Array.isArray(c.order)) return; // the schema reports it
      const order: unknown[] = c.order;
      const seen = new Set<string>();
      order.forEach((n: unknown, j: number) => {
        if (typeof n !== "string") return;
        if (!names.has(n)) {
          issues.push({
            segs: ["processConstraints", i, "order", j],
            rule: "must name a process of this task",
            detail: `got ${show(n)}; processes: ${[...names.keys()].join(", ")}`,
          });
        } else if (seen.has(n)) {
          issues.push({
            segs: ["processConstraints", i, "order", j],
            rule: "must not repeat a process in one order",
            detail: `got ${show(n)}`,
          });
        }
        seen.add(n);
        const prev = j > 0 ? order[j - 1] : undefined;
        if (typeof prev === "string" && names.has(prev) && names.has(n) && prev !== n) {
          if (names.get(prev) === true && names.get(n) === false) {
            issues.push({
              segs: ["processConstraints", i, "order", j],
              rule: "must not put a final process before a regular one",
              detail: `"${prev}" is final and runs after every regular process, "${n}" included`,
            });
          }
          let out = edges.get(prev);
          if (!out) edges.set(prev, (out = new Set()));
          out.add(n);
        }
      });
    });
    const cycle = findCycle(edges);
    if (cycle !== null) {
      issues.push({
        segs: ["processConstraints"],
        rule: "must not order processes in a cycle",
        detail: `${cycle.join(" → ")}: none of them would ever start`,
      });
    }
  }
  const hc = data.healthCheck;
  if (isRecord(hc)) {
    if (hc.http !== undefined && hc.shell !== undefined) {
      issues.push({ segs: ["healthCheck"], rule: "must have http or shell, not both", detail: "one checker per task" });
    } else if (hc.shell === undefined && declared !== undefined && !declared.includes("health")) {
      issues.push({
        segs: hc.http !== undefined ? ["healthCheck", "http"] : ["healthCheck"],
        rule: 'needs a port named "health" in resources.ports (HTTP health checks go to it)',
        detail: `declared: ${declared.length > 0 ? declared.join(", ") : "none"}; or use a shell check`,
      });
    }
  }
  const lc = data.lifecycle;
  if (isRecord(lc) && isRecord(lc.http) && declared !== undefined) {
    const port = typeof lc.http.port === "string" ? lc.http.port : HTTP_LIFECYCLE_DEFAULTS.port;
    if (!declared.includes(port)) {
      issues.push({
        segs: ["lifecycle", "http", ...(lc.http.port !== undefined ? ["port"] : [])],
        rule: "must name a port declared in resources.ports",
        detail: `"${port}" is not declared; declared: ${declared.length > 0 ? declared.join(", ") : "none"}`,
      });
    }
  }
  return issues;
}

/**
 * The job-level settings, by their own rules: updateConfig by Aurora's client and scheduler rules
 * (updater/settings.ts), the cron fields by Aurora's crontab subset (cron/). Their problems come
 * with dotted paths ("updateConfig.strategy.variableBatch.batchSizes[1]"), made segments here.
 */
function jobLevelIssues(data: Record<string, unknown>): RawIssue[] {
  const issues: RawIssue[] = [];
  const instances = typeof data.instances === "number" && Number.isInteger(data.instances) && data.instances > 0 ? data.instances : 1;
  if (data.updateConfig !== undefined && isRecord(data.updateConfig)) {
    for (const p of updateConfigProblems(data.updateConfig, instances)) issues.push({ segs: pathSegs(p.path), rule: p.rule });
  }
  if (data.slaPolicy !== undefined && isRecord(data.slaPolicy)) {
    for (const p of slaPolicyProblems(data.slaPolicy)) issues.push({ segs: pathSegs(p.path), rule: p.rule });
  }
  const cron = { cronSchedule: data.cronSchedule, cronTimezone: data.cronTimezone, cronCollisionPolicy: data.cronCollisionPolicy };
  if (Object.values(cron).some((v) => v !== undefined)) {
    // The schema reports a value of the wrong type; only strings are judged here.
    const service = data.service === true;
    const strings = Object.fromEntries(Object.entries(cron).filter(([, v]) => typeof v === "string"));
    for (const p of cronSpecProblems({ service, ...strings })) {
      if (cron[p.path as keyof typeof cron] !== undefined && typeof cron[p.path as keyof typeof cron] !== "string") continue;
      issues.push({ segs: pathSegs(p.path), rule: p.rule });
    }
  }
  return issues;
}

/** "a.b[2].c" → ["a", "b", 2, "c"]. */
function pathSegs(path: string): Seg[] {
  const segs: Seg[] = [];
  for (const part of path.split(".")) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) {
      segs.push(part);
      continue;
    }
    if (m[1] !== "") segs.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) segs.push(Number(idx[1]));
  }
  return segs;
}

/** A cycle in a directed graph, as its nodes (first repeated at the end), or null. */
function findCycle(edges: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, "open");
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === "open") return [...stack.slice(stack.indexOf(m)), m];
      if (state.get(m) === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, "done");
    return null;
  };
  for (const n of [...edges.keys()].sort()) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

const DEDICATED_RULE = 'must be "ROLE/NAME" or "*/NAME", where ROLE is this job\'s role';

/** Aurora: dedicated hosts are claimed by the value ROLE/NAME, ROLE being the job's role or "*". */
function dedicatedIssues(value: string, role: unknown): RawIssue[] {
  const c = parseConstraint(value);
  const segs = ["constraints", "dedicated"];
  if (c.kind === "limit" || c.negated) {
    return [{ segs, rule: DEDICATED_RULE, detail: `got ${show(value)}: dedicated takes a value, not a limit or a negation` }];
  }
  const issues: RawIssue[] = [];
  for (const v of c.values) {
    const slash = v.indexOf("/");
    if (slash <= 0 || slash === v.length - 1) {
      issues.push({ segs, rule: DEDICATED_RULE, detail: `got ${show(v)}` });
    } else if (typeof role === "string") {
      const owner = v.slice(0, slash);
      if (owner !== "*" && owner !== role) {
        issues.push({ segs, rule: DEDICATED_RULE, detail: `got ${show(v)}: only role "${owner}" may use these hosts` });
      }
    }
  }
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** Normalises a checked spec: its constraints a mapping (liftConstraintList ran). */
function normalise(s: JobSpec): JobConfig {
  const r = s.resources;
  const constraints: Record<string, string> = {};
  const given = (s.constraints ?? {}) as Record<string, string>;
  for (const attr of Object.keys(given).sort()) {
    constraints[attr] = formatConstraint(parseConstraint(given[attr]!));
  }
  const task: TaskConfig = {
    service: s.service ?? false,
    tier: s.tier ?? "preemptible",
    priority: num(s.priority ?? 0),
    maxTaskFailures: num(s.maxTaskFailures ?? 1),
    resources: {
      cpus: num(r.cpus),
      ramMb: num(r.ramMb),
      diskMb: num(r.diskMb),
      gpus: num(r.gpus ?? 0),
      ports: [...(r.ports ?? [])],
    },
    constraints,
    processes: s.processes.map((p) =>
      processDefaults({ ...p, ...(p.minDuration !== undefined ? { minDuration: num(p.minDuration) } : {}) }),
    ),
  };
  // The optional parts are left out when absent (their absence has a meaning: no health check,
  // the default kill sequence), in a fixed key order when present.
  const orders = (s.processConstraints ?? []).map((c) => ({ order: [...c.order] }));
  if (orders.length > 0) task.processConstraints = orders;
  if (s.healthCheck !== undefined) task.healthCheck = normaliseHealthCheck(s.healthCheck);
  if (s.lifecycle !== undefined) task.lifecycle = normaliseLifecycle(s.lifecycle);
  task.finalizationWaitSecs = num(s.finalizationWaitSecs ?? FINALIZATION_WAIT_DEFAULT_SECS);
  const instances = num(s.instances ?? 1);
  const job: JobConfig = { role: s.role, environment: s.environment, name: s.name, instances, task };
  // Job-level settings, in a fixed order when present; absent means the defaults (updateConfig) or
  // not a cron job.
  if (s.updateConfig !== undefined) job.updateConfig = normaliseUpdateConfig(s.updateConfig, instances);
  if (s.slaPolicy !== undefined) job.slaPolicy = normaliseSlaPolicy(s.slaPolicy);
  if (s.cronSchedule !== undefined) {
    job.cronSchedule = s.cronSchedule.trim();
    job.cronTimezone = s.cronTimezone ?? DEFAULT_CRON_TIMEZONE;
    job.cronCollisionPolicy = s.cronCollisionPolicy ?? "KILL_EXISTING";
  }
  return job;
}

function normaliseHealthCheck(h: NonNullable<JobSpec["healthCheck"]>): HealthCheckConfig {
  const d = HEALTH_CHECK_DEFAULTS;
  const out: HealthCheckConfig = {
    initialIntervalSecs: num(h.initialIntervalSecs ?? d.initialIntervalSecs),
    intervalSecs: num(h.intervalSecs ?? d.intervalSecs),
    timeoutSecs: num(h.timeoutSecs ?? d.timeoutSecs),
    maxConsecutiveFailures: num(h.maxConsecutiveFailures ?? d.maxConsecutiveFailures),
    minConsecutiveSuccesses: num(h.minConsecutiveSuccesses ?? d.minConsecutiveSuccesses),
  };
  if (h.shell !== undefined) out.shell = { command: h.shell.command };
  else {
    out.http = {
      endpoint: h.http?.endpoint ?? d.http.endpoint,
      expectedResponse: h.http?.expectedResponse ?? d.http.expectedResponse,
      expectedResponseCode: num(h.http?.expectedResponseCode ?? d.http.expectedResponseCode),
    };
  }
  return out;
}

function normaliseLifecycle(l: NonNullable<JobSpec["lifecycle"]>): LifecycleConfig {
  if (l.http === false) return { http: false };
  const d = HTTP_LIFECYCLE_DEFAULTS;
  return {
    http: {
      port: l.http.port ?? d.port,
      gracefulShutdownEndpoint: l.http.gracefulShutdownEndpoint ?? d.gracefulShutdownEndpoint,
      shutdownEndpoint: l.http.shutdownEndpoint ?? d.shutdownEndpoint,
      gracefulShutdownWaitSecs: num(l.http.gracefulShutdownWaitSecs ?? d.gracefulShutdownWaitSecs),
      shutdownWaitSecs: num(l.http.shutdownWaitSecs ?? d.shutdownWaitSecs),
    },
  };
}

/** -0 → 0, so encoders never see a negative zero. */
function num(n: number): number {
  return n + 0;
}

// JobConfig form accepted by validateJobSpec: { role, environment, name, instances, task, and the
// job-level settings }.
const JOB_FIELDS = [
  "role",
  "environment",
  "name",
  "instances",
  "updateConfig",
  "slaPolicy",
  "cronSchedule",
  "cronTimezone",
  "cronCollisionPolicy",
];
const TASK_FIELDS = new Set(Object.keys(JOB_SCHEMA.properties).filter((k) => !JOB_FIELDS.includes(k)));

function isConfigShape(obj: unknown): boolean {
  return isRecord(obj) && isRecord(obj.task) && !("processes" in obj) && !("resources" in obj);
}

function flattenConfig(obj: Record<string, unknown>): Record<string, unknown> {
  const { task, ...rest } = obj;
  return { ...rest, ...(task as Record<string, unknown>) };
}

function configSegs(segs: Seg[]): Seg[] {
  return segs.length > 0 && typeof segs[0] === "string" && TASK_FIELDS.has(segs[0]) ? ["task", ...segs] : segs;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}

/** "resources.ramMb", "processes[1].name", 'constraints["rack id"]'. */
function formatPath(segs: Seg[]): string {
  let out = "";
  for (const seg of segs) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function toIssue(r: RawIssue, pos?: { line: number; col: number }): SpecIssue {
  const path = formatPath(r.segs);
  const message = `${path === "" ? "(spec)" : path}: ${r.rule}${r.detail !== undefined ? ` (${r.detail})` : ""}`;
  const issue: SpecIssue = { path, rule: r.rule, message };
  if (pos !== undefined) {
    issue.line = pos.line;
    issue.column = pos.col;
  }
  return issue;
}

/** A value, briefly, for "(got ...)". */
function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "an empty value";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (typeof v === "object") return Object.keys(v).length === 0 ? "an empty mapping" : "a mapping";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

/** JSON-pointer segments → path segments (array indices as numbers). */
function pointerSegs(pointer: string, data: unknown): Seg[] {
  if (pointer === "") return [];
  const segs: Seg[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) {
      const i = Number(key);
      segs.push(i);
      cur = cur[i];
    } else {
      segs.push(key);
      cur = isRecord(cur) ? cur[key] : undefined;
    }
  }
  return segs;
}

function valueAt(data: unknown, segs: Seg[]): unknown {
  let cur = data;
  for (const s of segs) {
    if (Array.isArray(cur) && typeof s === "number") cur = cur[s];
    else if (isRecord(cur) && typeof s === "string") cur = cur[s];
    else return undefined;
  }
  return cur;
}

/** The schema node holding the keyword at an ajv schemaPath ("#/properties/x/type"). */
function schemaNodeAt(schemaPath: string): SchemaNode | undefined {
  const parts = schemaPath
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p !== "");
  parts.pop(); // the keyword itself
  let node: unknown = JOB_SCHEMA;
  for (const p of parts) {
    if (!isRecord(node)) return undefined;
    node = node[p.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return isRecord(node) ? (node as SchemaNode) : undefined;
}

/** The allowed field closest to a misspelt one, if it is close enough to be a likely typo. */
function closest(field: string, allowed: string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  let best: string | undefined;
  let bestDist = Infinity;
  for (const a of allowed) {
    const d = norm(a) === norm(field) ? 0 : editDistance(field.toLowerCase(), a.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = a;
    }
  }
  return bestDist <= Math.max(1, Math.floor(field.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Where a path points in the YAML source: the value, or the key for unknown fields; for a
 * missing nested field, the mapping that lacks it.
 */
function locate(doc: Document, lc: LineCounter, segs: Seg[], atKey: boolean): { line: number; col: number } | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (let k = 0; k < segs.length; k++) {
    const seg = segs[k];
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (pair === undefined) {
        if (k === 0) return undefined; // a missing top-level field: "line 1" would say nothing
        break;
      }
      const last = k === segs.length - 1;
      if ((last && atKey) || pair.value === null || pair.value === undefined) {
        offset = rangeStart(pair.key) ?? offset;
        if (last && atKey) break;
      }
      node = pair.value;
      offset = rangeStart(node) ?? offset;
      if (node === null || node === undefined) break;
    } else if (isSeq(node) && typeof seg === "number") {
      const item: unknown = node.items[seg];
      if (item === undefined) break;
      node = item;
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lc.linePos(offset);
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range ? range[0] : undefined;
}
