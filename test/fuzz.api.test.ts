// Fuzz: over 100,000 malformed or hostile requests at every door of a running scheduler, over a
// real nats-server: every op of the API catalog on its subject (its role's, another role's, the
// admin's, the cluster's, and subjects no op has), every agent subject (registered and unknown
// agents, bodies naming another agent), roost.leader, the durable intake, and every HTTP route of
// the gateway. Expected: no crash, the same leader at the same epoch throughout, no event but
// recorded refusals, and every reply that comes back well formed.
//
// What taught it: each hole found so far was found one hostile message at a time, by hand, after
// it had bricked a cell (a status update with state "BOGUS" appended and folded forever; one
// `nats pub roost.events hello`; an oversized `user` answered "internal error"). The schemas now
// stand at every door; this test knocks on all of them with what a buggy or hostile client
// sends: bad MessagePack and JSON, raw bytes, wrong types, missing and unknown fields, `__proto__`
// and `constructor` keys, deep nesting, lone surrogates, NaN, ±Infinity, negative and huge
// numbers, job keys and path parameters with `../` and `%00`, bodies of 1 MB and more.
//
// The inputs come from a seeded PRNG (mulberry32, src/sim/rng.ts; never Math.random), generated in
// a fixed order: a failure names the seed and the case, and the same seed sends the same bytes
// (ROOST_FUZZ_SEED=<n> to try another). Nothing sent is a mutating request that should succeed:
// every write (API, intake, HTTP) is checked here, decoded the way the scheduler decodes it,
// before it is sent, and a generated write that could pass is made again.
//
// What is asserted, and why:
// - Events: a keyed write the scheduler refuses is recorded as its key's outcome (a RequestDecided
//   with outcome "rejected", alone in its record; actors/jobIntake.ts), over the API and the
//   intake alike, so that the client (or a redelivery) asking again hears the same refusal. Those,
//   and only those, may be appended: each for a key this test sent, at most once per key. No job,
//   task, quota, agent or leader event may appear. Every other refusal appends nothing.
// - The leader: the same scheduler leads at the same epoch before and after; the agent is still
//   ACTIVE, still registered at that epoch, and registers again at once when asked (a malformed
//   roost.leader announcement must not send it into a registration loop). Valid-shaped
//   announcements are sent only with an epoch not above the leader's: a well-formed one with a
//   higher epoch does send every agent into that loop, which only the server's permissions
//   prevent (natsServer/auth.ts), so that is not this test's to send.
// - No crash: no actor's handler failed, no reply is "internal error", no intake message was
//   handed back for redelivery, Object.prototype is not polluted, and at the end the scheduler
//   answers cluster.info and a job.status of a running job.
// - Replies: every API reply is {ok: false, error: {code, message, field?}} with a catalog code,
//   or, for a read the schema happens to accept (a job key with "../" is a valid key that names
//   no job), {ok: true, value} with a value its reply schema accepts; a write never succeeds.
//   Agent subjects answer {ok: false, error: <text>}. Over HTTP every answer has that same shape
//   and its code's status, whatever the URL (one the router cannot decode included); UNAVAILABLE,
//   "try again", is a bug here unless the scheduler timed out: with one healthy leader nothing
//   else may say it (a client would retry a request that can never pass).
// - Size: a body of 1 MiB (1,048,576 bytes; the API's limit is 1 MiB - 1) reaches the scheduler
//   and is answered TOO_LARGE; anything bigger is refused by the NATS client (the server's
//   max_payload is 1 MiB), which is counted, not sent. Over HTTP, 1 MiB and more is 413.
// Timeouts under load are counted (not crashes); the counts are printed. Each target is its own
// test, and a failure lists what went wrong by kind, with the first cases of each.

import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import type { TSchema } from "typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../src/agent/agent.js";
import { HeartbeatSchema, LeaderAnnouncementSchema, RegisterRequestSchema, StatusRequestSchema } from "../src/agent/protocol.js";
import { ApiErrorSchema, type ERROR_CODES, HTTP_STATUS, isErrorCode } from "../src/api/errors.js";
import { REQUEST_SCHEMAS } from "../src/api/requests.js";
import { OPS, type OpDef } from "../src/api/v1.js";
import { agentToken } from "../src/bus/bus.js";
import { NatsBus } from "../src/bus/nats.js";
import { checker } from "../src/domain/validate.js";
import { pack, unpack } from "../src/eventlog/envelope.js";
import { openIntake } from "../src/eventlog/intake.js";
import { startHttpGateway } from "../src/gateway/http.js";
import { Rng } from "../src/sim/rng.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { apiRequest } from "./support/api.js";
import { startCluster, type TestCluster, waitFor } from "./support/cluster.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 0x5eed_f022) >>> 0;
const ROLE = "www-data";
const OTHER = "mallory";
/** The one job that exists: a name no generator below can produce. */
const LIVE_NAME = "fuzz-live-q7";
const LIVE_JOB = `${ROLE}/devel/${LIVE_NAME}`;
const MIB = 1024 * 1024;
/** Requests per kind of target; their sum is over 100,000 before the size cases are added. */
const PLAN = { api: 70_000, agents: 15_000, leader: 2_500, intake: 3_000, http: 10_000 };
const NATS_TIMEOUT_MS = 20_000;
const TOKENS = { www: "fuzz-www-token-0123456789", other: "fuzz-mallory-token-012345", admin: "fuzz-admin-token-0123456789" };

const nats = withNats();
let c: TestCluster;
let agent: Agent;
let client: NatsBus;
let clientNc: NatsConnection;
let gwBus: NatsBus;
let gateway: { url: string; close(): Promise<void> };
let liveTaskId = "";

beforeAll(async () => {
  const log = await nats.openLog("ROOST_FUZZ");
  const bus = await NatsBus.connect(nats.url, "fuzz-scheduler");
  const intake = await openIntake(bus.nc, { stream: "ROOST_FUZZ_INTAKE", ackWaitMs: 10_000 });
  c = await startCluster({ agents: 1, bus, log, intake });
  agent = c.agents[0]!;
  // Without async traces: the client would build two Errors (with stacks) for each request up front.
  clientNc = await connect({ servers: nats.url, name: "fuzz-client", noAsyncTraces: true });
  client = NatsBus.over(clientNc);
  gwBus = await NatsBus.connect(nats.url, "fuzz-gateway");
  gateway = await startHttpGateway({
    transport: gwBus,
    host: "127.0.0.1",
    port: 0,
    tokens: [
      { token: TOKENS.www, name: "www", role: ROLE },
      { token: TOKENS.other, name: "mallory", role: OTHER },
      { token: TOKENS.admin, name: "root", admin: true },
    ],
  });
  const created = await apiRequest<{ taskIds: string[] }>(client, "job.create", {
    spec: testSpec(LIVE_NAME, { service: true, processes: [{ name: "main", cmdline: "exec sleep 100000" }] }),
    user: "fuzz",
  });
  if (!created.ok) throw new Error(`cannot create ${LIVE_JOB}: ${created.error.message}`);
  liveTaskId = created.value.taskIds[0]!;
  await waitFor(c.scheduler, (s) => s.tasks.get(liveTaskId as never)?.state === "RUNNING", "the live job's task runs");
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  await gwBus?.close();
  await clientNc?.drain().catch(() => {});
  await c?.stop();
});

// ---- what came back --------------------------------------------------------------------------

const tally = {
  sent: { api: 0, agents: 0, heartbeats: 0, leader: 0, intake: 0, http: 0, big: 0, deep: 0 },
  /** Not sent: over the server's max_payload (the NATS client refuses it), or a header it refuses. */
  clientRefused: 0,
  timeouts: 0,
  /** API replies by code (and "ok" for reads the schema accepted). */
  codes: new Map<string, number>(),
  http: new Map<number, number>(),
  agentRefusals: 0,
  tooLarge: 0,
  http413: 0,
  /** Intake messages JetStream dropped as duplicates of an earlier msgId (never delivered). */
  intakeDuplicates: 0,
  /** Generated writes that could have passed, made again before sending. */
  regenerated: 0,
  /** HTTP requests with a huge body whose connection the server closed before answering. */
  httpReset: 0,
  /** HTTP requests sent again because the kept-alive socket they went out on was being closed. */
  httpRetried: 0,
};
/** What went wrong, by kind: how often, and the first few cases (enough to send them again). */
const problems = new Map<string, { count: number; cases: string[] }>();
function problem(kind: string, where: string, detail = ""): void {
  let p = problems.get(kind);
  if (!p) problems.set(kind, (p = { count: 0, cases: [] }));
  p.count++;
  if (p.cases.length < 3) p.cases.push(`${where}${detail ? `: ${detail}` : ""}`);
}
const count = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);

const checkError = checker(ApiErrorSchema);
const REPLY_CHECKS = new Map((OPS as readonly OpDef[]).map((d) => [d, checker(d.reply)]));
const REQUEST_CHECKS = new Map((OPS as readonly OpDef[]).map((d) => [d, checker(d.request)]));
const INTERNAL_CHECKS = Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([op, s]) => [op, checker(s as TSchema)])) as Record<
  string,
  (v: unknown) => unknown[]
>;
const checkRegister = checker(RegisterRequestSchema);
const checkStatus = checker(StatusRequestSchema);
const checkAnnouncement = checker(LeaderAnnouncementSchema);

/** A case, briefly, for a failure message: enough to send it again by hand. */
function describeCase(i: number, target: string, bytes: Uint8Array | null, json: boolean): string {
  const head = bytes === null ? "" : Buffer.from(bytes.subarray(0, 48)).toString("hex");
  return `seed ${SEED} case ${i}: ${target} ${json ? "JSON" : "MessagePack"} ${bytes?.length ?? 0} bytes [${head}${(bytes?.length ?? 0) > 48 ? "…" : ""}]`;
}

/** An API reply: a refusal with a catalog code, or a read's value its schema accepts. */
function checkApiReply(where: string, def: OpDef | null, r: unknown, big: boolean): void {
  const x = r as { ok?: unknown; value?: unknown; error?: { code?: unknown; message?: unknown } } | null;
  if (x?.ok === true && def !== null && !def.write && !big) {
    count(tally.codes, "ok");
    const bad = REPLY_CHECKS.get(def)!(x.value);
    if (bad.length > 0) problem("a read's value breaks its reply schema", where, JSON.stringify(bad).slice(0, 300));
    return;
  }
  if (x?.ok !== false || checkError(x.error).length > 0 || !isErrorCode(x.error?.code)) {
    problem("API: not a refusal with a catalog code", where, JSON.stringify(r)?.slice(0, 300));
    return;
  }
  const code = x.error!.code as string;
  count(tally.codes, code);
  // UNAVAILABLE says "try again": with one healthy leader, only a bug (an internal error) gives it.
  if (code === "UNAVAILABLE" || /internal error/.test(String(x.error!.message)))
    problem(`API: ${code} (${causeOf(String(x.error!.message))})`, where, String(x.error!.message).slice(0, 300));
  if (big) {
    if (code === "TOO_LARGE") tally.tooLarge++;
    else problem(`API: 1 MiB answered ${code}, not TOO_LARGE`, where);
  }
}

/** An agent subject's reply: {ok: false, error: <text>}. */
function checkAgentReply(where: string, r: unknown): void {
  const x = r as { ok?: unknown; error?: unknown } | null;
  if (x?.ok === false && typeof x.error === "string" && x.error !== "") {
    tally.agentRefusals++;
    if (/internal error/.test(x.error)) problem("agent subject: internal error", where, x.error);
    return;
  }
  problem("agent subject: not {ok: false, error: <text>}", where, JSON.stringify(r)?.slice(0, 300));
}

// ---- sending over NATS -----------------------------------------------------------------------

const te = new TextEncoder();
const jsonHeader = () => {
  const h = natsHeaders();
  h.set("Content-Type", "application/json");
  return h;
};
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A request, raw; the reply decoded as the requester asked (JSON or MessagePack). */
async function natsAsk(subject: string, bytes: Uint8Array, json: boolean, where: string): Promise<{ reply: unknown } | null> {
  const h = natsHeaders();
  if (json) h.set("Content-Type", "application/json");
  let p: Promise<{ data: Uint8Array }>;
  try {
    p = client.nc.request(subject, bytes, { timeout: NATS_TIMEOUT_MS, ...(json ? { headers: h } : {}) });
  } catch (err) {
    if (/max_payload/i.test((err as Error).message)) tally.clientRefused++;
    else problem(`the NATS client could not send it: ${(err as Error).message.slice(0, 60)}`, where);
    return null;
  }
  try {
    const m = await p;
    try {
      return { reply: json ? JSON.parse(strictUtf8.decode(m.data)) : unpack(m.data) };
    } catch (err) {
      problem(`the reply is not ${json ? "JSON" : "MessagePack"}`, where, (err as Error).message);
      return null;
    }
  } catch (err) {
    const e = err as Error;
    if (/max_payload/i.test(e.message)) tally.clientRefused++;
    else if (/timeout/i.test(`${e.name} ${e.message}`)) tally.timeouts++;
    else problem(`NATS: ${e.name}: ${e.message.replace(/'.*'/, "<subject>").slice(0, 60)}`, where, e.message);
    return null;
  }
}

/** Run `n` cases, `width` at a time; each case is generated (in order) before it is sent. */
async function pipeline(n: number, width: number, one: (i: number) => Promise<void> | null): Promise<void> {
  let i = 0;
  while (i < n) {
    const batch: Promise<void>[] = [];
    for (const end = Math.min(n, i + width); i < end; i++) {
      const p = one(i);
      if (p) batch.push(p);
    }
    await Promise.all(batch);
  }
}

// ---- hostile values --------------------------------------------------------------------------

const rng = new Rng(SEED);
const pick = <T>(xs: readonly T[]): T => rng.pick(xs);

const LONE = ["\ud800", "\udfff", "a\ud800b", "\udc00\ud800", `${ROLE}\udbff`];
const STRINGS = [
  "",
  " ",
  "..",
  ".",
  "../",
  "../../etc/passwd",
  "..\\..\\windows",
  "/",
  "%00",
  "\u0000",
  "a\u0000b",
  "%2e%2e%2f",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "NaN",
  "-1",
  "Infinity",
  "null",
  "\r\n",
  "\u202e",
  "\ufeff",
  "🦆",
  "é",
  "\u0024{jndi:ldap://x/a}",
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "roost.>",
  "*",
  "a.b.c",
  "x".repeat(65),
  "x".repeat(129),
  "x".repeat(5000),
  ...LONE,
];
const NUMBERS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -1,
  -0,
  0,
  0.5,
  -0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  2 ** 64,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  1e21,
  3,
];
const JOB_KEYS = [
  `${ROLE}/../etc`,
  "../../etc/passwd",
  `${ROLE}/devel/../../x`,
  `${ROLE}/devel/x/../y`,
  `${ROLE}/../../..`,
  `${OTHER}/devel/x`,
  `${ROLE}/devel/\u0000`,
  `${ROLE}/devel/\ud800`,
  `${ROLE}/devel/%00`,
  `${ROLE}/__proto__/constructor`,
  "__proto__/__proto__/__proto__",
  "constructor/prototype/x",
  `${ROLE}//x`,
  `${ROLE}/devel`,
  `${ROLE}/devel/nope`,
  `${ROLE}/devel/${"x".repeat(65)}`,
  `${ROLE}/devel/a b`,
  "",
  "/",
  "//",
  `${ROLE}/prod/..%2f..%2f`,
];
const KEY_POOL = [...Array.from({ length: 24 }, (_, i) => `fz-${i}`), "__proto__", "constructor", "..", "prototype", "toString"];
const BAD_KEYS = ["../x", "", "a/b", "x".repeat(129), "\u0000", "\ud800", "a b", "%00", 42, null, {}, []];
const TASK_IDS = ["../../etc/passwd", "", "\u0000", "\ud800", "x".repeat(300), "__proto__", "constructor", "nope", "a/../b", "%00"];
const UNKNOWN_FIELDS = ["__proto__", "constructor", "prototype", "extra", "", "\ud800", "a.b", "$where", "x".repeat(1000), "toString"];

/** Sets an own field, whatever its name ("__proto__" by assignment would set the prototype instead). */
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** An object with an own "__proto__" key. */
function withProtoKey(o: Record<string, unknown>, v: unknown): Record<string, unknown> {
  put(o, "__proto__", v);
  return o;
}

/** How deep a nested value is built (deeper ones are sent as bytes: deepBytes). */
const DEPTHS = [20, 50, 100, 200, 1000];
const INSTANCE_LISTS = [null, [], [-1], [Number.NaN], [0.5], ["0"], [2 ** 53], Array.from({ length: 3000 }, (_, i) => i)];
const MANY_PROCESSES = Array.from({ length: 100 }, () => ({ name: "p", cmdline: "x" }));

function deepValue(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { a: v };
  return v;
}

function scalar(): unknown {
  switch (rng.int(5)) {
    case 0:
    case 1:
      return pick(STRINGS);
    case 2:
      return pick(NUMBERS);
    case 3:
      return pick([true, false, null, undefined]);
    default:
      return new Uint8Array(rng.int(16));
  }
}

function hostile(depth = 0): unknown {
  const k = rng.int(10);
  if (depth > 3 || k < 5) return scalar();
  if (k < 7) return Array.from({ length: rng.int(4) }, () => hostile(depth + 1));
  if (k < 9) {
    const o: Record<string, unknown> = {};
    for (let i = rng.int(4); i > 0; i--) put(o, pick(UNKNOWN_FIELDS), hostile(depth + 1));
    return rng.chance(0.3) ? withProtoKey(o, { polluted: "yes" }) : o;
  }
  return deepValue(pick(DEPTHS));
}

/** A value of another type than the field's. */
function wrongType(v: unknown): unknown {
  if (typeof v === "string") return pick([...NUMBERS, null, true, [v], { v }]);
  if (typeof v === "number") return pick([String(v), "1", null, true, [v], { v }, ...LONE]);
  return pick([...STRINGS.slice(0, 8), ...NUMBERS.slice(0, 6)]);
}

/** A job spec that fails validation: a valid base with one to four things broken. */
function hostileSpec(): unknown {
  if (rng.chance(0.1)) return hostile();
  const spec: Record<string, unknown> = testSpec(pick(["web", "fz", ...STRINGS]), {
    role: rng.chance(0.7) ? ROLE : pick([OTHER, ...STRINGS]),
    environment: pick(["devel", "prod", "..", "%00", ...LONE]),
  });
  const fields = ["role", "environment", "name", "instances", "resources", "processes", "service", "tier", "priority", "constraints"];
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const f = pick(fields);
    switch (rng.int(7)) {
      case 0:
        delete spec[f];
        break;
      case 1:
        spec[f] = wrongType(spec[f]);
        break;
      case 2:
        put(spec, pick(UNKNOWN_FIELDS), hostile());
        break;
      case 3:
        spec.processes = pick([
          [{ name: "..", cmdline: "x" }],
          [{ name: "../../etc", cmdline: "cat /etc/passwd" }],
          [{ name: "main", cmdline: "a\u0000b" }],
          [{ name: "main\ud800", cmdline: "x" }],
          [],
          [withProtoKey({ name: "main", cmdline: "x" }, { polluted: "yes" })],
          MANY_PROCESSES,
        ]);
        break;
      case 4:
        spec.resources = { cpus: pick(NUMBERS), ramMb: pick(NUMBERS), diskMb: pick(NUMBERS), ports: pick([[], ["..", "%00"], 7]) };
        break;
      case 5:
        spec.instances = pick(NUMBERS);
        break;
      default:
        spec[f] = deepValue(pick(DEPTHS));
    }
  }
  return rng.chance(0.1) ? withProtoKey(spec, { role: ROLE }) : spec;
}

/** A plausible value for an API field, often hostile. */
function apiField(name: string): unknown {
  switch (name) {
    case "job":
      return rng.chance(0.8) ? pick(JOB_KEYS) : hostile();
    case "spec":
      return hostileSpec();
    case "count":
      return pick(NUMBERS);
    case "instances":
      return rng.chance(0.2) ? hostile() : pick(INSTANCE_LISTS);
    case "user":
      return pick(["fuzz", ...STRINGS]);
    case "role":
      return pick([ROLE, OTHER, ...STRINGS]);
    case "cpus":
    case "ramMb":
    case "diskMb":
      return pick(NUMBERS);
    case "taskId":
      return rng.chance(0.1) ? liveTaskId : pick(TASK_IDS);
    case "key":
      return rng.chance(0.6) ? pick(KEY_POOL) : pick(BAD_KEYS);
    case "from":
      return pick(["2026-12-02T03:12:00Z", "2026-13-45T99:99:99Z", "1970-01-01T00:00Z", "../../etc", "\ud800", ...NUMBERS]);
    case "limit":
    case "waitMs":
      return pick(NUMBERS);
    case "agent":
      return pick([...AGENT_IDS, ...STRINGS]);
    case "type":
      return pick([
        ["TaskStateChanged"],
        ["__proto__"],
        ["../x"],
        [""],
        ["\ud800"],
        Array.from({ length: 33 }, () => "JobCreated"),
        hostile(),
      ]);
    default:
      return hostile();
  }
}

const propsOf = (schema: TSchema): string[] => Object.keys((schema as { properties?: object }).properties ?? {});

/** A request for a schema's fields, with one to three things wrong (or not an object at all). */
function hostileRequest(schema: TSchema, field: (name: string) => unknown): unknown {
  if (rng.chance(0.06)) return pick([null, undefined, [], "x", 42, true, Number.NaN, [{}], ...LONE]);
  const props = propsOf(schema);
  const req: Record<string, unknown> = {};
  for (const p of props) if (rng.chance(0.85)) req[p] = field(p);
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const p = props.length > 0 ? pick(props) : "x";
    switch (rng.int(5)) {
      case 0:
        put(req, pick(UNKNOWN_FIELDS), hostile());
        break;
      case 1:
        req[p] = wrongType(req[p]);
        break;
      case 2:
        delete req[p];
        break;
      case 3:
        req[p] = deepValue(pick(DEPTHS));
        break;
      default:
        withProtoKey(req, rng.chance(0.5) ? { polluted: "yes" } : { job: LIVE_JOB, count: 1 });
    }
  }
  return req;
}

// ---- encodings -------------------------------------------------------------------------------

function jsonBytes(v: unknown): Uint8Array {
  return te.encode(JSON.stringify(v) ?? "");
}

const BAD_JSON = [
  "{job:",
  "{",
  "}",
  "{'job': 1}",
  '{"job": NaN}',
  '{"count": -Infinity}',
  '{"a":1,}',
  "[1,2",
  '"\\ud800"',
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"job":"a","job":"b"}',
  "\ufeff{}",
  "1e999",
  "-0",
  "null",
  "",
  "   ",
  "undefined",
  `{"x":${"1".repeat(400)}}`,
  '{"job":"\\u0000"}',
  "\u0000",
];

/** Nested `depth` deep, as bytes: a MessagePack list or map, or JSON. */
function deepBytes(depth: number, json: boolean, inField: string | null): Uint8Array {
  if (json) {
    const [open, close] = rng.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
    const inner = `${open.repeat(depth)}1${close.repeat(depth)}`;
    return te.encode(inField === null ? inner : `{"${inField}":${inner}}`);
  }
  const unit = rng.chance(0.5) ? [0x91] : [0x81, 0xa1, 0x61];
  const head = inField === null ? [] : [...pack({ [inField]: null }).subarray(0, -1)];
  const out = new Uint8Array(head.length + unit.length * depth + 1);
  out.set(head, 0);
  for (let i = 0; i < depth; i++) out.set(unit, head.length + i * unit.length);
  out[out.length - 1] = 0xc0;
  return out;
}

/** `n` bytes, cheaply: a random head, then one byte repeated (for bodies of megabytes; one per size). */
const BIG = new Map<number, Uint8Array>();
function bigBytes(n: number): Uint8Array {
  let b = BIG.get(n);
  if (!b) {
    BIG.set(n, (b = new Uint8Array(n).fill(rng.int(256))));
    b.set(randomBytes(64), 0);
  }
  return b;
}

/** A JSON job.create whose spec names its role and holds a field nested `depth` deep. */
function deepSpecJson(depth: number): Uint8Array {
  return te.encode(`{"spec":{"role":"${ROLE}","environment":"devel","name":"deep","x":${"[".repeat(depth)}1${"]".repeat(depth)}}}`);
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = rng.int(0x100000000);
    for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = (r >>> (8 * j)) & 0xff;
  }
  return b;
}

/** Valid MessagePack with a few bytes flipped, inserted, dropped, or cut off. */
function mangled(bytes: Uint8Array): Uint8Array {
  const b = [...bytes.subarray(0, 2048)];
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(4)) {
      case 0:
        if (b.length) b[Math.min(at, b.length - 1)] = rng.int(256);
        break;
      case 1:
        b.splice(at, 0, pick([0xc1, 0xd4, 0xd6, 0xc7, 0xcf, 0xd3, 0xdd, 0xdf, 0xc4, 0xff, rng.int(256)]));
        break;
      case 2:
        b.splice(at, 1);
        break;
      default:
        b.length = Math.min(b.length, at);
    }
  }
  return Uint8Array.from(b);
}

interface Body {
  bytes: Uint8Array;
  json: boolean;
}

/** A body for a schema: structured (MessagePack or JSON), mangled, bad JSON, raw bytes, or deep. */
function hostileBody(make: () => unknown, deepField: string | null): Body {
  const k = rng.int(100);
  if (k < 45) return { bytes: pack(make()), json: false };
  if (k < 70) return { bytes: jsonBytes(make()), json: true };
  if (k < 80) return { bytes: mangled(pack(make())), json: false };
  if (k < 86) {
    const text = pick(BAD_JSON);
    return { bytes: te.encode(rng.chance(0.5) ? text : text.slice(0, rng.int(text.length + 1))), json: true };
  }
  if (k < 96) return { bytes: randomBytes(pick([0, 1, 2, 5, 16, 64, 300, 4096])), json: rng.chance(0.3) };
  const json = rng.chance(0.5);
  return { bytes: deepBytes(pick([1_000, 1_000, 1_000, 10_000]), json, rng.chance(0.5) ? deepField : null), json };
}

/** The body the scheduler's bus would hand to a handler (null: it could not decode it). */
function decoded(b: Body): { ok: true; v: unknown } | { ok: false } {
  if (b.bytes.length === 0) return { ok: true, v: null };
  try {
    return { ok: true, v: b.json ? JSON.parse(strictUtf8.decode(b.bytes)) : unpack(b.bytes) };
  } catch {
    return { ok: false };
  }
}

// ---- "nothing sent is a write that could pass" -----------------------------------------------

function specFails(spec: unknown): boolean {
  try {
    validateJobSpec(spec);
    return false;
  } catch {
    return true;
  }
}

/**
 * True when `req` (as the write's handler sees it, after the catalog's checks) can only be refused:
 * it breaks the op's schema, or names a spec that fails validation, or a job that does not exist.
 */
function writeFails(op: string, req: unknown, check: (v: unknown) => unknown[]): boolean {
  if (check(req).length > 0) return true;
  const r = req as Record<string, unknown>;
  if (op === "job.create") return specFails(r.spec);
  if (op === "job.kill" || op === "job.add") return !c.scheduler.state.jobs.has(r.job as never);
  if (op === "cron.schedule") return specFails(r.spec) || (r.spec as { cronSchedule?: unknown } | null)?.cronSchedule === undefined;
  if (op === "cron.deschedule" || op === "cron.start") return !c.scheduler.state.cronJobs.has(r.job as never);
  return false; // quota.set: a valid one would be applied
}

/** Over the API: the catalog's check (with `key`), then the write's. */
function apiWriteFails(def: OpDef, b: Body): boolean {
  const d = decoded(b);
  if (!d.ok) return true;
  return writeFails(def.op, d.v ?? {}, REQUEST_CHECKS.get(def)!);
}

/**
 * The client keys of the writes sent (a body's `key`, an intake msgId's): a refused keyed write may
 * be recorded under its key, and no other key may appear on the log.
 */
const sentKeys = new Set<string>();
function noteKey(d: { ok: true; v: unknown } | { ok: false }): void {
  const key = d.ok && d.v !== null && typeof d.v === "object" ? (d.v as { key?: unknown }).key : undefined;
  if (typeof key === "string") sentKeys.add(key);
}

/** Generate until `fails` holds (a write that could pass is made again). */
function regenerate<T>(make: () => T, fails: (t: T) => boolean): T {
  for (let i = 0; i < 50; i++) {
    const t = make();
    if (fails(t)) return t;
    tally.regenerated++;
  }
  throw new Error(`seed ${SEED}: 50 generated writes in a row could have passed`);
}

// ---- targets ---------------------------------------------------------------------------------

const DEFS = OPS as readonly OpDef[];
const HOSTILE_ROLE_TOKENS = [
  "__proto__",
  "constructor",
  "-x",
  "a~b",
  "%00",
  "~~",
  "%2e%2e",
  "\u00e9t\u00e9",
  "x".repeat(65),
  "\ud800",
  "ADMIN",
];
const UNKNOWN_OPS = [
  "job.explode",
  "job",
  "job.create.x",
  "quota.set",
  "info",
  "cluster.info",
  "__proto__",
  "constructor",
  "~",
  "job.status.%00",
];

interface ApiTarget {
  subject: string;
  def: OpDef | null;
}

function apiTarget(): ApiTarget {
  const k = rng.int(100);
  if (k < 80) {
    const def = pick(DEFS);
    const who = def.scope === "role" ? (rng.chance(0.7) ? ROLE : OTHER) : def.scope;
    return { subject: `roost.api.v1.${who}.${def.op}`, def };
  }
  if (k < 88) {
    const def = pick(DEFS.filter((d) => d.scope === "role"));
    return { subject: `roost.api.v1.${pick(HOSTILE_ROLE_TOKENS)}.${def.op}`, def: null };
  }
  return { subject: `roost.api.v1.${pick([ROLE, OTHER, "admin", "cluster", "admin~x"])}.${pick(UNKNOWN_OPS)}`, def: null };
}

/** The def a subject addresses, if it names one (hostile role tokens that pass the rule do). */
function addressed(subject: string): OpDef | null {
  const rest = subject.slice("roost.api.v1.".length);
  const dot = rest.indexOf(".");
  const who = rest.slice(0, dot);
  const op = rest.slice(dot + 1);
  const scope = who === "admin" ? "admin" : who === "cluster" ? "cluster" : "role";
  return DEFS.find((d) => d.scope === scope && d.op === op) ?? null;
}

function apiCase(): ApiTarget & Body {
  const t = apiTarget();
  const def = addressed(t.subject);
  const schema = def?.request ?? REQUEST_SCHEMAS["job.status"];
  const deepField = propsOf(schema)[0] ?? null;
  const make = () => hostileBody(() => hostileRequest(schema, apiField), deepField);
  const b = def?.write ? regenerate(make, (x) => apiWriteFails(def, x)) : make();
  if (def?.write) noteKey(decoded(b));
  return { ...t, def, ...b };
}

// Agents: the registered one, unknown ones, and subject tokens no agent id has.
const AGENT_IDS = ["ghost", "agent-2", "host1.dc1", "__proto__", "constructor", "a:b", "x".repeat(300)];
const AGENT_TOKENS = ["~~", "%2e%2e", "%00", "agent-1~", "~agent-1", "AGENT-1", "\ud800", "__proto__", "x".repeat(300)];

function agentField(subjectAgent: string): (name: string) => unknown {
  return (name) => {
    switch (name) {
      case "agentId":
        return rng.chance(0.6) ? subjectAgent : pick([agent.agentId, ...AGENT_IDS, ...STRINGS]);
      case "host":
        return pick(["host-1", ...STRINGS]);
      case "attributes":
        return pick([{ rack: "r1" }, { "../x": "y" }, { rack: "\u0000" }, withProtoKey({}, { polluted: "yes" }), hostile()]);
      case "resources":
        return {
          cpus: pick(NUMBERS),
          ramMb: pick(NUMBERS),
          diskMb: pick(NUMBERS),
          ports: pick([[[1, 2]], [[2, 1]], [[0, 70000]], [[-1, 5]], [["a", "b"]], hostile()]),
        };
      case "bootId":
        return pick(["boot-1", ...STRINGS]);
      case "running":
        return pick([[], [liveTaskId], ["../../x"], [liveTaskId, "\ud800"], hostile()]);
      case "update":
        return {
          taskId: rng.chance(0.5) ? liveTaskId : pick(TASK_IDS),
          seq: pick(NUMBERS),
          state: pick(["RUNNING", "FAILED", "BOGUS", "PENDING", "__proto__", "", ...LONE]),
          exitCode: pick([0, -256, 256, Number.NaN, "1", null]),
          message: pick(["", "x".repeat(2049), ...STRINGS]),
          ts: pick(NUMBERS),
        };
      case "ts":
        return pick(NUMBERS);
      default:
        return hostile();
    }
  };
}

/**
 * A registration or status update that can only be refused: it breaks its schema, or names
 * another agent than its subject's, or (a status) an agent the log does not know.
 */
function agentBodyFails(verb: "register" | "status", subjectAgent: string | null, b: Body): boolean {
  const d = decoded(b);
  if (!d.ok) return true;
  const v = d.v as { agentId?: unknown } | null;
  if (subjectAgent === null || v === null || typeof v !== "object" || v.agentId !== subjectAgent) return true;
  if (verb === "register") return checkRegister(v).length > 0;
  return checkStatus(v).length > 0 || !c.scheduler.state.agents.has(subjectAgent as never);
}

interface AgentCase extends Body {
  subject: string;
  verb: "register" | "status" | "heartbeat";
}

function agentCase(): AgentCase {
  const verb = pick(["register", "status", "heartbeat", "register", "status"] as const);
  const k = rng.int(10);
  const id = k < 5 ? agent.agentId : k < 8 ? pick(AGENT_IDS) : null;
  const token = id === null ? pick(AGENT_TOKENS) : agentToken(id);
  const subjectAgent = id ?? token.replaceAll("~", ".");
  const subject = `roost.agent.${token}.${verb}`;
  const schema = verb === "register" ? RegisterRequestSchema : verb === "status" ? StatusRequestSchema : HeartbeatSchema;
  const make = () => hostileBody(() => hostileRequest(schema, agentField(subjectAgent)), "agentId");
  if (verb === "heartbeat") return { subject, verb, ...make() };
  return { subject, verb, ...regenerate(make, (b) => agentBodyFails(verb, subjectAgent, b)) };
}

/** roost.leader: malformed announcements, and well-formed ones that claim no newer epoch. */
function leaderCase(): Body {
  const field = (name: string) => {
    switch (name) {
      case "epoch":
        return rng.chance(0.1) ? 1 + rng.int(c.scheduler.epoch) : pick([...NUMBERS, "99", 2 ** 70, -(2 ** 70)]);
      case "schedulerId":
        return pick(["sched-test", "evil", ...STRINGS]);
      case "agentId":
        return pick([agent.agentId, ...AGENT_IDS, ...STRINGS]);
      default:
        return hostile();
    }
  };
  return regenerate(
    () => hostileBody(() => hostileRequest(LeaderAnnouncementSchema, field), "epoch"),
    (b) => {
      const d = decoded(b);
      if (!d.ok || checkAnnouncement(d.v).length > 0) return true;
      return (d.v as { epoch: number }).epoch <= c.scheduler.epoch;
    },
  );
}

// Intake: write subjects and others, msgIds naming the role or not, bodies that fail.
interface IntakeCase extends Body {
  subject: string;
  msgId: string | null;
}

function intakeCase(i: number): IntakeCase {
  const k = rng.int(100);
  let who: string;
  let op: string;
  let def: OpDef | null = null;
  if (k < 75) {
    def = pick(DEFS.filter((d) => d.write));
    who = def.scope === "role" ? (rng.chance(0.8) ? ROLE : OTHER) : def.scope;
    op = def.op;
  } else if (k < 88) {
    const d = pick(DEFS.filter((x) => !x.write));
    who = d.scope === "role" ? ROLE : d.scope;
    op = d.op;
  } else {
    who = pick([ROLE, "cluster", ...HOSTILE_ROLE_TOKENS]);
    op = pick(UNKNOWN_OPS);
  }
  const subject = `roost.intake.v1.${who}.${op}`;
  const owner = def?.scope === "admin" ? "admin" : who;
  // A msgId the leader refuses without an outcome is made unique (JetStream would drop a repeat as a
  // duplicate before the leader saw it); a valid key comes from a small pool (each is recorded once).
  const theirs = pick([OTHER, ROLE, "admin"].filter((w) => w !== owner));
  const msgId = pick([
    `${owner}/i${pick(KEY_POOL)}`,
    `${owner}/i${pick(KEY_POOL)}`,
    `${owner}/i${pick(KEY_POOL)}`,
    `${owner}/${pick(["__proto__", "constructor"])}`,
    `${owner}/${pick(["../x", "\ud800", "%00", "a b", "a/b", "x".repeat(129), "*", ">"])}${i}`,
    `${theirs}/i${pick(KEY_POOL)}`,
    `${theirs}/k${i}`,
    null,
    `${owner}${i}`,
    `${owner}/`,
    `../${owner}/x${i}`,
    `${owner}/../${OTHER}/x${i}`,
    `/${owner}/x${i}`,
  ]);
  const schema = def ? REQUEST_SCHEMAS[def.op as keyof typeof REQUEST_SCHEMAS] : REQUEST_SCHEMAS["job.kill"];
  const make = (): Body => {
    const b = hostileBody(() => hostileRequest(schema, apiField), propsOf(schema)[0] ?? null);
    return b.bytes.length >= MIB - 512 ? { bytes: b.bytes.subarray(0, 1024), json: b.json } : b;
  };
  if (def === null || msgId === null) return { subject, msgId, ...make() };
  const key = msgId.slice(msgId.indexOf("/") + 1);
  sentKeys.add(key);
  const check = INTERNAL_CHECKS[def.op]!;
  const b = regenerate(make, (x) => {
    if (x.bytes.length === 0) return writeFails(def.op, {}, check);
    const d = decoded(x);
    if (!d.ok) return true;
    let body = d.v;
    if (body !== null && typeof body === "object" && !Array.isArray(body) && "key" in body) {
      const { key: own, ...rest } = body as { key: unknown };
      if (own !== key) return true;
      body = rest;
    }
    return writeFails(def.op, body, check);
  });
  return { subject, msgId, ...b };
}

// HTTP: the catalog's routes with hostile path parameters, methods, content types, tokens, bodies.
const PARAMS = [
  ROLE,
  OTHER,
  "devel",
  "..",
  ".",
  "%2e%2e",
  "..%2f..%2fetc",
  "%2e%2e%2f%2e%2e%2f",
  "%00",
  "a%00b",
  "%ED%A0%80",
  "%ED%B0%80",
  "%F0%9F%A6%86",
  "%C0%AF",
  "__proto__",
  "constructor",
  "prototype",
  "%25",
  "%",
  "%zz",
  "a%2Fb",
  "x".repeat(600),
  "x".repeat(70),
  "nope",
  "%0d%0a",
  "%20",
  "*",
  ">",
  "cluster",
  "admin",
];
const CONTENT_TYPES = [
  "application/json",
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=utf-16",
  "APPLICATION/JSON",
  "application/msgpack",
  "application/json\t; x=y",
  null,
];
const AUTH = [
  `Bearer ${TOKENS.www}`,
  `Bearer ${TOKENS.www}`,
  `Bearer ${TOKENS.admin}`,
  `Bearer ${TOKENS.admin}`,
  `Bearer ${TOKENS.other}`,
  null,
  "Bearer",
  "Bearer ",
  "Basic YWRtaW46YWRtaW4=",
  `Bearer ${"x".repeat(600)}`,
  "Bearer ../../etc/passwd",
  `bearer ${TOKENS.admin}`,
];
const QUERIES = [
  "",
  "",
  "",
  "?__proto__[polluted]=yes",
  "?constructor=1&prototype=2",
  "?key=..%2f&x=%00",
  "?job=..%2F..%2F",
  "?%ED%A0%80=1",
  "?a=1&a=2&a=3",
];

interface HttpCase {
  method: string;
  path: string;
  contentType: string | null;
  auth: string | null;
  body: Uint8Array | null;
  chunked: boolean;
  /** The route's op when the path was made from one (with the method it has). */
  def: OpDef | null;
  big: boolean;
}

const CREATE = DEFS.find((d) => d.op === "job.create")!;
const QUOTA_SET = DEFS.find((d) => d.op === "quota.set")!;

function httpBodyFails(b: Uint8Array | null): boolean {
  let v: unknown;
  try {
    v = b === null || b.length === 0 ? {} : JSON.parse(strictUtf8.decode(b));
  } catch {
    return true;
  }
  if (v === null) v = {};
  if (typeof v !== "object" || Array.isArray(v)) return true;
  const asCreate = writeFails("job.create", { ...(v as object) }, REQUEST_CHECKS.get(CREATE)!);
  const asQuota = REQUEST_CHECKS.get(QUOTA_SET)!({ ...(v as object), role: "r" }).length > 0;
  return asCreate && asQuota;
}

function httpCase(): HttpCase {
  const def = pick(DEFS);
  let path = def.http.path.replace(/:(\w+)/g, (_m, name: string) =>
    name === "role" && rng.chance(0.5) ? pick([ROLE, OTHER]) : name === "name" && rng.chance(0.3) ? "fz" : pick(PARAMS),
  );
  if (rng.chance(0.1)) path = path.replace(/\/[^/]*$/, pick(["/../../v1/cluster", "/..", "/./x", "//", "/%2e%2e/%2e%2e/v1/jobs"]));
  if (rng.chance(0.05)) path = pick(["/v1", "/v2/jobs", "/v1/jobs/", "/v1//jobs", "/", "/v1/openapi.json/..", "/%00", "/v1/%ED%A0%80"]);
  path += pick(QUERIES);
  const method = rng.chance(0.85) ? def.http.method : pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
  const contentType = pick(CONTENT_TYPES);
  const auth = pick(AUTH);
  const sendsBody = method !== "GET" || rng.chance(0.1);
  // The body without the fields the path gives (the gateway sets those from the path).
  const fromPath = new Set(["job", "taskId", "key", "role"]);
  const schema = def.request;
  const makeBody = (): Uint8Array | null => {
    if (!sendsBody) return null;
    const k = rng.int(100);
    if (k < 65) {
      const req = hostileRequest(schema, apiField);
      if (req !== null && typeof req === "object" && !Array.isArray(req) && rng.chance(0.7)) {
        for (const f of fromPath) if (f !== "key" || def.http.path.includes(":key")) delete (req as Record<string, unknown>)[f];
      }
      return jsonBytes(req);
    }
    if (k < 80) return te.encode(pick(BAD_JSON));
    if (k < 92) return randomBytes(pick([0, 1, 16, 300]));
    return deepBytes(pick([1_000, 1_000, 1_000, 10_000]), true, rng.chance(0.5) ? (propsOf(schema)[0] ?? "spec") : null);
  };
  // No body may be a write that passes, whatever route the path ends up matching: as a create,
  // its spec fails; as a quota.set (with a valid role from the path), its fields fail; a kill or
  // an add names a job that does not exist (no generated name is the live job's).
  const body = method === "GET" ? makeBody() : regenerate(makeBody, httpBodyFails);
  if (body !== null && method !== "GET") noteKey(decoded({ bytes: body, json: true }));
  return { method, path, contentType, auth, body, chunked: body !== null && rng.chance(0.1), def, big: false };
}

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 48 });

type HttpReply = { status: number; body: unknown; text: string } | null;

/**
 * One HTTP request; the status and the body parsed as JSON (null when the connection was reset).
 * A reset on a kept-alive socket the server was closing meanwhile is the client's race, not an
 * answer: that request is sent again once, on a new connection.
 */
async function httpSend(h: HttpCase, agentFor = keepAlive): Promise<HttpReply> {
  const first = await httpOnce(h, agentFor);
  if (first !== "retry") return first;
  tally.httpRetried++;
  const again = await httpOnce(h, fresh);
  return again === "retry" ? null : again;
}

const fresh = new HttpAgent({ keepAlive: false });

function httpOnce(h: HttpCase, agentFor: HttpAgent): Promise<HttpReply | "retry"> {
  const url = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const hdrs: Record<string, string> = {};
    if (h.contentType !== null && h.body !== null) hdrs["content-type"] = h.contentType;
    if (h.auth !== null) hdrs.authorization = h.auth;
    // Chunked said explicitly: Node frames a GET's, DELETE's or OPTIONS' body only when asked to.
    if (h.body !== null) hdrs[h.chunked ? "transfer-encoding" : "content-length"] = h.chunked ? "chunked" : String(h.body.length);
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: h.method, path: h.path, headers: hdrs, agent: agentFor, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, text });
        });
        res.on("error", () => resolve(null));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") resolve(req.reusedSocket ? "retry" : null);
      else if (err.message === "timeout") resolve({ status: -1, body: null, text: "" });
      else reject(err);
    });
    if (h.body === null) req.end();
    else if (!h.chunked) req.end(h.body);
    else {
      const step = Math.max(1, Math.ceil(h.body.length / 4));
      for (let i = 0; i < h.body.length; i += step) req.write(h.body.subarray(i, i + step));
      req.end();
    }
  });
}

/** What an answer's text blames, briefly, to group answers by their cause. */
function causeOf(text: string): string {
  const known = /FST_ERR_[A-Z_]+|no responders|illegal subject|Maximum call stack size exceeded|internal error|timeout/i.exec(text);
  return known ? known[0] : text.replace(/"[^"]*"/g, "…").slice(0, 50);
}

function checkHttpReply(where: string, h: HttpCase, r: HttpReply): void {
  if (r === null) {
    if (h.big) tally.httpReset++;
    else problem("HTTP: the connection was reset", where);
    return;
  }
  if (r.status === -1) {
    tally.timeouts++;
    return;
  }
  count(tally.http, r.status);
  const x = r.body as { ok?: unknown; value?: unknown; error?: { code?: unknown } } | undefined;
  if (x?.ok === true) {
    // Only a read answers ok (a GET whose path and token were right; the query is not read).
    if (h.method !== "GET" || h.big) problem(`HTTP: ${h.method} succeeded`, where, `${r.status} ${r.text.slice(0, 200)}`);
    return;
  }
  if (x?.ok !== false || checkError(x.error).length > 0 || !isErrorCode(x.error?.code)) {
    problem(`HTTP: ${r.status} is not a refusal with a catalog code (${causeOf(r.text)})`, where, r.text.slice(0, 200));
    return;
  }
  const code = x.error!.code as (typeof ERROR_CODES)[number];
  if (HTTP_STATUS[code] !== r.status) problem(`HTTP: ${code} came with status ${r.status}`, where);
  // UNAVAILABLE says "try again": only a scheduler that did not answer in time may give it here.
  if (code === "UNAVAILABLE" && /timeout/i.test(r.text)) tally.timeouts++;
  else if (code === "UNAVAILABLE" || /internal error/.test(r.text))
    problem(`HTTP: ${r.status} ${code} (${causeOf(r.text)})`, where, r.text.slice(0, 300));
  if (h.big) {
    if (r.status === 413) tally.http413++;
    else problem(`HTTP: 1 MiB answered ${r.status}, not 413`, where);
  }
}

function httpWhere(i: number, h: HttpCase): string {
  const b = h.body === null ? "no body" : `${h.body.length} bytes [${Buffer.from(h.body.subarray(0, 48)).toString("hex")}]`;
  return `seed ${SEED} http case ${i}: ${h.method} ${h.path.slice(0, 200)} content-type ${h.contentType} auth ${h.auth?.slice(0, 30)} ${h.chunked ? "chunked " : ""}${b}`;
}

// ---- the log ---------------------------------------------------------------------------------

/** Events appended after `from`: type, and the key and outcome of a RequestDecided. */
async function eventsSince(from: number): Promise<Array<{ seq: number; type: string; key?: string; outcome?: string; op?: string }>> {
  const out: Array<{ seq: number; type: string; key?: string; outcome?: string; op?: string }> = [];
  const last = await c.log.lastSeq();
  if (last <= from) return out;
  for await (const r of c.log.read(from + 1)) {
    for (const e of r.events) {
      const d = (e as { data?: { key?: string; outcome?: string; op?: string } }).data;
      out.push({ seq: r.seq, type: e.type, key: d?.key, outcome: d?.outcome, op: d?.op });
    }
    if (r.seq >= last) break;
  }
  return out;
}

// ---- the test --------------------------------------------------------------------------------

describe(`fuzz (seed ${SEED}): hostile requests at every subject and route`, () => {
  // Taken once the live job runs, before the first hostile request.
  let seq0 = 0;
  let epoch0 = 0;
  let leader0: string | undefined;
  let protoKeys: string[] = [];
  let t0 = 0;
  let intakeStored = 0;
  const ms: Record<string, number> = {};

  beforeAll(async () => {
    seq0 = await c.log.lastSeq();
    epoch0 = c.scheduler.epoch;
    leader0 = c.scheduler.state.leader?.schedulerId;
    protoKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    expect(c.scheduler.leading).toBe(true);
    t0 = Date.now();
  });

  /** Each test below answers for its own target: what it found, by kind. */
  const found = () => Object.fromEntries(problems);
  const timed = async (name: string, f: () => Promise<void>) => {
    problems.clear();
    const t = Date.now();
    await f();
    ms[name] = Date.now() - t;
  };

  it("the API over NATS: each op on its role's, another role's, the admin's and the cluster's subject, and on subjects no op has", async () => {
    await timed("api", async () => {
      await pipeline(PLAN.api, 1000, (i) => {
        const k = apiCase();
        tally.sent.api++;
        const where = describeCase(i, k.subject, k.bytes, k.json);
        return natsAsk(k.subject, k.bytes, k.json, where).then((r) => {
          if (r) checkApiReply(where, k.def, r.reply, false);
        });
      });
      // 1 MiB and more on every op's subject: 1 MiB exactly reaches the scheduler (TOO_LARGE);
      // bigger, or 1 MiB with a header, is over the server's max_payload and refused by the client.
      for (const def of DEFS) {
        const who = def.scope === "role" ? ROLE : def.scope;
        const subject = `roost.api.v1.${who}.${def.op}`;
        await Promise.all(
          [MIB, MIB + 1, 2 * MIB, 8 * MIB].flatMap((n) =>
            [false, true].map(async (json) => {
              const bytes = n === MIB && !json ? pack("x".repeat(n - 5)) : bigBytes(n);
              tally.sent.big++;
              const where = describeCase(-1, subject, bytes, json);
              const r = await natsAsk(subject, bytes, json, where);
              if (r) checkApiReply(where, def, r.reply, bytes.length >= MIB);
            }),
          ),
        );
        // Nested 100,000 deep, as MessagePack and as JSON (the JSON parser does not overflow the
        // stack; what reads the value next must not either).
        await Promise.all(
          [false, true].map(async (json) => {
            const field = propsOf(def.request)[0] ?? null;
            const make = (): Body => ({ bytes: deepBytes(100_000, json, rng.chance(0.7) ? field : null), json });
            const b = def.write ? regenerate(make, (x) => apiWriteFails(def, x)) : make();
            tally.sent.deep++;
            const where = describeCase(-1, subject, b.bytes, json);
            const r = await natsAsk(subject, b.bytes, json, where);
            if (r) checkApiReply(where, def, r.reply, false);
          }),
        );
      }
      for (const depth of [1_000, 5_000, 100_000]) {
        const subject = `roost.api.v1.${ROLE}.job.create`;
        const bytes = deepSpecJson(depth);
        tally.sent.deep++;
        const where = describeCase(-1, subject, bytes, true);
        const r = await natsAsk(subject, bytes, true, where);
        if (r) checkApiReply(where, CREATE, r.reply, false);
      }
    });
    expect(found(), `seed ${SEED}: bad replies, by kind`).toEqual({});
    expect(tally.tooLarge, "each op's subject answered a 1 MiB body TOO_LARGE").toBe(DEFS.length);
  }, 180_000);

  it("agent subjects (registered and unknown agents, bodies naming another) and roost.leader", async () => {
    await timed("agents", async () => {
      await pipeline(PLAN.agents, 1000, (i) => {
        const k = agentCase();
        const where = describeCase(i, k.subject, k.bytes, k.json);
        if (k.verb === "heartbeat") {
          tally.sent.heartbeats++;
          client.nc.publish(k.subject, k.bytes, k.json ? { headers: jsonHeader() } : undefined);
          return null;
        }
        tally.sent.agents++;
        return natsAsk(k.subject, k.bytes, k.json, where).then((r) => {
          if (r) checkAgentReply(where, r.reply);
        });
      });
      for (let i = 0; i < PLAN.leader; i++) {
        const b = leaderCase();
        tally.sent.leader++;
        client.nc.publish("roost.leader", b.bytes, b.json ? { headers: jsonHeader() } : undefined);
      }
      await client.nc.flush();
      // The agent shares the scheduler's connection: once a request sent after the announcements
      // is answered, the agent has been handed every one of them.
      await apiRequest(client, "cluster.info", {});
    });
    expect(found(), `seed ${SEED}: bad replies, by kind`).toEqual({});
    // Still registered with this leader: it registers again at once when asked, at this epoch.
    expect(c.scheduler.state.agents.get(agent.agentId as never)?.state).toBe("ACTIVE");
    await Promise.race([
      agent.register({ again: true }),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`seed ${SEED}: the agent did not register again within 10 s`)), 10_000)),
    ]);
    expect(agent.leaderEpoch).toBe(epoch0);
  }, 180_000);

  it("the durable intake: write subjects and others, msgIds naming the role or not, bodies that fail", async () => {
    await timed("intake", async () => {
      const js = jetstream(client.nc);
      await pipeline(PLAN.intake, 500, (i) => {
        const k = intakeCase(i);
        tally.sent.intake++;
        const h = natsHeaders();
        if (k.json) h.set("Content-Type", "application/json");
        let p: Promise<{ duplicate: boolean }>;
        try {
          p = js.publish(k.subject, k.bytes, { headers: h, ...(k.msgId !== null ? { msgID: k.msgId } : {}), timeout: NATS_TIMEOUT_MS });
        } catch {
          tally.clientRefused++; // a msgId the client will not put in a header
          return null;
        }
        return p.then(
          (ack) => {
            if (ack.duplicate) tally.intakeDuplicates++;
            else intakeStored++;
          },
          (err: Error) => {
            if (/timeout/i.test(`${err.name} ${err.message}`)) tally.timeouts++;
            else
              problem(
                `intake publish: ${err.message.slice(0, 60)}`,
                `${describeCase(i, k.subject, k.bytes, k.json)} msgId ${JSON.stringify(k.msgId)}`,
              );
          },
        );
      });
      // Drained: polled, since a refusal without an outcome commits nothing to wait on.
      const stats = c.scheduler.term!.intakeStats!;
      const deadline = Date.now() + 30_000;
      while (stats.decided + stats.refused < intakeStored && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    });
    expect(found(), `seed ${SEED}: bad publishes, by kind`).toEqual({});
    const stats = c.scheduler.term!.intakeStats!;
    // Every stored message decided (its outcome recorded) or refused; none handed back for
    // redelivery (a message that fails for no reason a refusal names is a bug, retried 20 times).
    expect({ handled: stats.decided + stats.refused, retried: stats.retried }).toEqual({ handled: intakeStored, retried: 0 });
  }, 180_000);

  it("the HTTP gateway: every route, with hostile paths, methods, content types, tokens and bodies", async () => {
    await timed("http", async () => {
      await pipeline(PLAN.http, 256, (i) => {
        const h = httpCase();
        tally.sent.http++;
        return httpSend(h).then((r) => checkHttpReply(httpWhere(i, h), h, r));
      });
      // 1 MiB and more on every route that takes a body, with a length and chunked.
      const bigAgent = new HttpAgent({ keepAlive: false });
      for (const def of DEFS.filter((d) => d.http.method !== "GET")) {
        const path = def.http.path.replace(/:(\w+)/g, (_m, name: string) => (name === "role" ? ROLE : "fz"));
        for (const n of [MIB, MIB + 1, 2 * MIB]) {
          for (const chunked of [false, true]) {
            const body = te.encode(`"${"x".repeat(n - 2)}"`);
            const h: HttpCase = {
              method: def.http.method,
              path,
              contentType: "application/json",
              auth: `Bearer ${TOKENS.admin}`,
              body,
              chunked,
              def,
              big: true,
            };
            tally.sent.big++;
            checkHttpReply(httpWhere(-1, h), h, await httpSend(h, bigAgent));
          }
        }
      }
      bigAgent.destroy();
      // A spec that names its role and nests a field deep: the gateway's checks pass it on.
      for (const depth of [1_000, 5_000, 100_000]) {
        const h: HttpCase = {
          method: "POST",
          path: "/v1/jobs",
          contentType: "application/json",
          auth: `Bearer ${TOKENS.www}`,
          body: deepSpecJson(depth),
          chunked: false,
          def: CREATE,
          big: false,
        };
        tally.sent.deep++;
        checkHttpReply(httpWhere(-1, h), h, await httpSend(h));
      }
    });
    expect(found(), `seed ${SEED}: bad answers, by kind`).toEqual({});
    expect(tally.http413, "every body of 1 MiB or more was 413").toBeGreaterThan(0);
  }, 180_000);

  it("afterwards: over 100,000 requests, no event but recorded refusals, the same leader at the same epoch, nothing failed", async () => {
    const info = await apiRequest<{ epoch: number; schedulerId: string; actors: Array<{ name: string; failed: number }> }>(
      client,
      "cluster.info",
      {},
    );
    const status = await apiRequest<{ instances: Array<{ state: string }> }>(client, "job.status", { job: LIVE_JOB });
    const events = await eventsSince(seq0);
    const total = Object.values(tally.sent).reduce((a, b) => a + b, 0);
    const report = {
      seed: SEED,
      total,
      ms: { ...ms, all: Date.now() - t0 },
      ...tally,
      codes: Object.fromEntries(tally.codes),
      http: Object.fromEntries(tally.http),
      intake: { stored: intakeStored, ...c.scheduler.term?.intakeStats },
      recordedRefusals: events.length,
    };
    console.log(`fuzz: ${JSON.stringify(report)}`);
    // Sent: what reached the server (the client refuses a body over max_payload before sending it).
    expect(total - tally.clientRefused).toBeGreaterThanOrEqual(100_000);

    // Nothing appended but the refusals of keyed writes, once per key this test sent.
    const others = events.filter((e) => !(e.type === "RequestDecided" && e.outcome === "rejected"));
    expect(others, `seed ${SEED}: events other than recorded refusals`).toEqual([]);
    const keys = events.map((e) => e.key!);
    expect(keys.length - new Set(keys).size, "refusals recorded twice for one key").toBe(0);
    expect(
      keys.filter((k) => !sentKeys.has(k.slice(k.indexOf("/") + 1))),
      "refusals recorded for keys never sent",
    ).toEqual([]);

    // The same leader at the same epoch, answering; no actor's handler failed; the job still runs.
    expect(c.scheduler.leading).toBe(true);
    expect(c.scheduler.epoch).toBe(epoch0);
    expect(c.scheduler.state.leader?.schedulerId).toBe(leader0);
    expect(info.ok && { epoch: info.value.epoch, failed: info.value.actors.filter((a) => a.failed > 0) }).toEqual({
      epoch: epoch0,
      failed: [],
    });
    expect(c.scheduler.state.agents.get(agent.agentId as never)?.state).toBe("ACTIVE");
    expect(status.ok && status.value.instances.map((x) => x.state)).toEqual(["RUNNING"]);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 60_000);
});
