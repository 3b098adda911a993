// How the CLI reaches a cluster: over NATS (requests to the leader, log reads from JetStream),
// or over the HTTP gateway of a `roost dev` that runs embedded (no nats-server). When no leader
// answers, reads fall back to folding the log here, so operators can inspect state in an outage.
//
// Every wait on the cluster is bounded by the client's timeout (the CLI's --timeout, 10 s by
// default) and says what it waited for when it runs out: connecting (nothing listening at the URL
// fails at once, naming it), a request (retried while no scheduler answers, then NoLeaderError:
// "no scheduler is leading"), opening the log's stream, and each record of a log read.

import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type ApiErrorBody, type ErrorCode, invalidRequest, isErrorCode } from "../api/errors.js";
import { API_V1_PREFIX, addressFor, HISTORY_OPS, OPS, parseSubject, requestProblems } from "../api/v1.js";
import { NoResponderError } from "../bus/bus.js";
import { type Creds, resolveCreds } from "../bus/creds.js";
import { decodeRecord, type LogRecord, pack, unpack } from "../eventlog/envelope.js";
import { INTAKE_PREFIX } from "../eventlog/intake.js";
import { type JetStreamLog, openJetStreamLog } from "../eventlog/jetstream.js";
import { foldRecord } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";

export interface ClusterFile {
  mode: "nats" | "embedded";
  nats?: string;
  stream?: string;
  /** The HTTP gateway (API v1 over HTTP), when the cluster runs one. */
  http?: string;
  /** An embedded dev cluster's loopback bridge to its in-process bus and log (cli/bridge.ts). */
  bridge?: string;
  pid?: number;
  startedAt?: string;
  /** A secured cell's credentials file for the CLI (roost dev --secure: the admin's). */
  creds?: string;
  /** The service discovery KV bucket (default: `<stream>_DISCOVERY`, views/discovery.ts). */
  discovery?: string;
  /** The web UI (the leader's replica when written), and that replica's Prometheus metrics. */
  ui?: string;
  metrics?: string;
  /** Every replica's UI and metrics, and every agent's metrics (roost dev), for scrape configs. */
  replicas?: Array<{ id: string; ui: string; metrics: string }>;
  agentMetrics?: Array<{ id: string; metrics: string }>;
}

const DEFAULT_CLUSTER_FILE = ".roost/cluster.json";

/** A refusal, or a problem the caller can fix: the CLI prints its message alone, never a stack. */
export class ClientError extends Error {
  override name = "ClientError";
  constructor(
    message: string,
    /** The API's error code, when the scheduler refused (absent for the client's own failures). */
    readonly code?: ErrorCode,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Nothing answers where the cluster should be (no NATS server at the URL, no dev gateway). */
class UnreachableError extends ClientError {
  override name = "UnreachableError";
}

/** A wait on the cluster ran out of time; the message says what was waited for. */
export class WaitTimeoutError extends ClientError {
  override name = "WaitTimeoutError";
}

/**
 * No scheduler answered a request, retried until the deadline ("no scheduler is leading"). A
 * NoResponderError, so a read can still fall back to folding the log here.
 */
class NoLeaderError extends NoResponderError {
  override name = "NoLeaderError";
}

/** The scheduler took the request but did not answer in time (it may still carry it out). */
class LeaderTimeoutError extends NoResponderError {
  override name = "LeaderTimeoutError";
}

/** How long any one wait on the cluster may last unless the caller says otherwise. */
const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * nats-server refused a publish or a subscription under this connection's permissions
 * (natsServer/auth.ts): PERMISSION_DENIED, naming the user and the subject; else null.
 */
export function permissionDenied(err: unknown, user: string | undefined): ClientError | null {
  const e = err as { name?: string; message?: string };
  if (e?.name !== "PermissionViolationError" && !/permissions violation/i.test(e?.message ?? "")) return null;
  const who = user ? `user ${JSON.stringify(user)}` : "this client";
  const m = /permissions violation for (publish|subscription) to "?([^"\s]+)"?/i.exec(e.message ?? "");
  const what = m ? `${m[1]!.toLowerCase() === "publish" ? "publish" : "subscribe"} to ${m[2]}` : "that";
  return new ClientError(
    `PERMISSION_DENIED: nats-server refused ${who} to ${what}: an identity acts only on its own subjects (a role on roost.api.v1.<role>.> and roost.intake.v1.<role>.>; admin operations need the admin user)`,
    "PERMISSION_DENIED",
  );
}

/** 10000 → "10 s", 2500 → "2.5 s". */
export function seconds(ms: number): string {
  const s = Math.round(ms / 100) / 10;
  return `${s} s`;
}

/** `p`, or a WaitTimeoutError naming `what` once `ms` have passed (p is left to settle unheard). */
export function within<T>(ms: number, what: string | (() => string), p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new WaitTimeoutError(`timed out after ${seconds(ms)} waiting for ${typeof what === "function" ? what() : what}`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The records of `it`, each within `ms` of asking for it, or a WaitTimeoutError naming `what`. */
async function* stallBounded<T>(it: AsyncIterable<T>, ms: number, what: () => string): AsyncGenerator<T> {
  const iter = it[Symbol.asyncIterator]();
  let stuck = false;
  try {
    for (;;) {
      let r: IteratorResult<T>;
      try {
        r = await within(ms, what, iter.next());
      } catch (err) {
        stuck = err instanceof WaitTimeoutError;
        throw err;
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    // A generator still inside next() would queue return() behind it: do not wait for that one.
    if (stuck) void iter.return?.()?.catch(() => {});
    else await iter.return?.();
  }
}

export interface RequestOptions {
  /** The longest the request may take, retries included. Default: the client's timeout. */
  timeoutMs?: number;
  /** Retry while no scheduler answers (default); false: the first "no responders" rejects. */
  retry?: boolean;
  /** The role to send a role's op on, when the request does not name it (task ops; job.list of one role). */
  role?: string;
  /**
   * The end (ms since the epoch) of the wait this request is one poll of (pollOnce, events'
   * follow): nobody answering is not retried past it, even where this try's timeout runs longer
   * (a long poll's hold), and the client's note gives the time left to it, not to this one try.
   */
  until?: number;
}

export interface ClusterClient {
  readonly where: string;
  /** How long any one wait on the cluster may last (the CLI's --timeout). */
  readonly timeoutMs: number;
  /** Where the client says what it is waiting for when that takes a while (stderr in the CLI). */
  readonly note: (msg: string) => void;
  /**
   * A request to the leader, retried while no scheduler answers until the timeout (a number is
   * the timeout); then NoLeaderError. A refusal rejects with ClientError, its message the leader's.
   */
  request<T>(op: string, data: unknown, opts?: number | RequestOptions): Promise<T>;
  /**
   * Publish a write on the durable intake (JetStream), with its msgId; null when this cluster has
   * no intake to publish to (an embedded dev cluster, or no stream on those subjects).
   */
  publishIntake?(subject: string, msgId: string, data: unknown): Promise<{ duplicate: boolean } | null>;
  /** One record by sequence (null when the log no longer holds it). */
  get(seq: number): Promise<LogRecord | null>;
  /** The log's last sequence, or null when this client cannot tell. */
  lastSeq(): Promise<number | null>;
  /** Log records from `from` to the current end; each must come within the timeout. */
  readLog(from: number): AsyncIterable<LogRecord>;
  followLog(from: number, signal: AbortSignal): AsyncIterable<LogRecord>;
  close(): Promise<void>;
}

/**
 * The NATS servers of a URL list (`--nats`, a cluster file's `nats`, RoostClient's `nats`): one
 * URL, or several separated by commas (a cluster's members), each checked. What taught it:
 * - the NATS client's own failure for a bad one is a bare "Invalid URL", which the CLI printed as
 *   "cannot reach NATS at not a url: Invalid URL; is nats-server running there?" and the daemons
 *   as "roost: Invalid URL", naming neither the value nor the rule;
 * - an empty list (`--nats "$NATS_URL"` with the variable unset) made the NATS client fall back to
 *   its default, 127.0.0.1:4222: a daemon would join whatever server listens there.
 */
export function natsServers(url: string): string[] {
  if (typeof url !== "string") throw new ClientError(`nats must be a string of NATS URLs (got ${typeof url})`, "INVALID_REQUEST", "nats");
  const servers = url
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  if (servers.length === 0) throw new ClientError(`no NATS URL given (nats ${JSON.stringify(url)})`, "INVALID_REQUEST", "nats");
  for (const u of servers) {
    const parsed = parseNatsUrl(u);
    if (parsed !== null && (parsed.username !== "" || parsed.password !== "")) {
      // Never echoed: the message would put the password in a terminal's scrollback and in logs.
      parsed.username = parsed.username ? "***" : "";
      parsed.password = parsed.password ? "***" : "";
      throw new ClientError(
        `nats URL ${JSON.stringify(parsed.href)}: carries credentials; give them with --creds FILE or ROOST_CREDS (a credentials file), not in the URL`,
        "INVALID_REQUEST",
        "nats",
      );
    }
    const ok =
      parsed !== null &&
      (parsed.protocol === "nats:" || parsed.protocol === "tls:") &&
      parsed.hostname !== "" &&
      parsed.pathname.replace(/^\/$/, "") === "";
    if (!ok) {
      // Masked up to the last "@", scheme or not: "user:p/w@host" is no URL, but its password is one.
      const shown = u.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/i, "$1***@");
      throw new ClientError(
        `nats URL ${JSON.stringify(shown)}: must be nats://HOST:PORT, tls://HOST:PORT or HOST:PORT (port 1 to 65535), several separated by commas`,
        "INVALID_REQUEST",
        "nats",
      );
    }
  }
  return servers;
}

/** A URL as the NATS client reads one (HOST:PORT means nats://HOST:PORT), or null. */
function parseNatsUrl(u: string): URL | null {
  try {
    return new URL(u.includes("://") ? u : `nats://${u}`);
  } catch {
    return null;
  }
}

export function loadClusterFile(path = DEFAULT_CLUSTER_FILE): ClusterFile {
  const p = resolve(path);
  if (!existsSync(p)) {
    throw new ClientError(`no cluster file at ${p}: start one with \`roost dev\`, or pass --nats URL`);
  }
  let file: ClusterFile;
  try {
    file = JSON.parse(readFileSync(p, "utf8")) as ClusterFile;
  } catch (err) {
    throw new ClientError(
      `cluster file ${p} is not valid JSON (${(err as Error).message}): start the cluster again with \`roost dev\`, or pass --nats URL`,
    );
  }
  const ok =
    file &&
    typeof file === "object" &&
    (file.mode === "embedded" ? typeof (file.bridge ?? file.http) === "string" : typeof file.nats === "string");
  if (!ok)
    throw new ClientError(`cluster file ${p} names no cluster (it needs "nats", or "mode": "embedded" and "bridge"): pass --nats URL`);
  return file;
}

export interface ConnectOptions {
  nats?: string;
  cluster?: string;
  stream?: string;
  /** Bound on every wait: connecting, a leader to answer, the log's stream. Default 10 s. */
  timeoutMs?: number;
  /** Told what the client waits for when that takes a while. Default: nothing is said. */
  note?: (msg: string) => void;
  /**
   * Reconnects after a lost NATS connection. Default: without end (long-lived users such as
   * `roost dev`); the CLI bounds it so a lost server ends a command.
   */
  maxReconnectAttempts?: number;
  /** --creds: a credentials file (bus/creds.ts). Without it ROOST_CREDS, then the cluster file's. */
  creds?: string;
}

/** The options every CLI command that talks to a cluster takes (withClusterOptions in main.ts). */
export interface CliClusterOptions {
  json?: boolean;
  nats?: string;
  cluster?: string;
  /** --timeout, seconds. */
  timeout?: number;
  stream?: string;
  creds?: string;
}

/**
 * ConnectOptions as the CLI uses them: --timeout (seconds) bounds every wait, what is waited for
 * is said on stderr, and a lost NATS connection is given up on after about the timeout (a
 * follower, `log tail --follow`, keeps reconnecting).
 */
export function cliConnectOptions(o: CliClusterOptions, defaults: { follow?: boolean } = {}): ConnectOptions {
  const timeoutMs = o.timeout !== undefined ? o.timeout * 1000 : DEFAULT_TIMEOUT_MS;
  return {
    nats: o.nats,
    cluster: o.cluster,
    stream: o.stream,
    creds: o.creds,
    timeoutMs,
    note: (msg) => console.error(`roost: ${msg}`),
    maxReconnectAttempts: defaults.follow ? -1 : Math.max(1, Math.ceil(timeoutMs / 250)),
  };
}

/** The longest a Node timer runs (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Refuses a caller's time option that no timer can honour, naming the field and the rule. What
 * taught it: a library call given `timeoutMs: NaN` never timed out (it hung with no leader up),
 * and Infinity or the string "3000" became a 1 ms timer (a Node timer's overflow), so the call
 * "timed out after 0 s".
 */
export function checkMs(field: string, v: unknown, min = 1, max = MAX_TIMER_MS): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    const got = typeof v === "number" ? String(v) : (JSON.stringify(v) ?? typeof v);
    throw new ClientError(`${field} must be a number of milliseconds from ${min} to ${max} (got ${got})`, "INVALID_REQUEST", field);
  }
}

export async function connectClient(opts: ConnectOptions): Promise<ClusterClient> {
  checkMs("timeoutMs", opts.timeoutMs);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const note = opts.note ?? (() => {});
  // An empty nats is given, not absent: `--nats "$NATS_URL"` with the variable unset is refused
  // (natsServers), not quietly replaced by whatever cluster file the directory holds.
  const given = opts.nats !== undefined;
  const file: ClusterFile = given ? { mode: "nats", nats: opts.nats } : loadClusterFile(opts.cluster);
  const origin = given ? "" : ` (named by ${resolve(opts.cluster ?? DEFAULT_CLUSTER_FILE)})`;
  if (file.mode === "embedded") return new HttpClient((file.bridge ?? file.http)!, timeoutMs, note, origin);
  const url = file.nats!;
  let servers: string[];
  try {
    servers = natsServers(url);
  } catch (err) {
    // A cluster file's bad `nats` says which file named it.
    throw err instanceof ClientError && origin ? new ClientError(`${err.message}${origin}`, err.code, err.field) : err;
  }
  let creds: Creds | undefined;
  try {
    creds = resolveCreds(opts.creds, given ? undefined : file.creds);
  } catch (err) {
    throw new ClientError((err as Error).message);
  }
  let nc: NatsConnection;
  try {
    nc = await within(
      timeoutMs + 1000,
      `NATS at ${url}${origin}`,
      connect({
        servers,
        name: "roost-cli",
        timeout: timeoutMs,
        maxReconnectAttempts: opts.maxReconnectAttempts ?? -1,
        reconnectTimeWait: 250,
        ...creds?.connectOptions(),
      }),
    );
  } catch (err) {
    const e = err as Error;
    if (err instanceof WaitTimeoutError) throw new UnreachableError(`cannot reach NATS at ${url}${origin}: ${e.message}`);
    if (/authorization|authentication/i.test(e.message))
      throw new ClientError(
        `NATS at ${url}${origin} refused ${creds ? `user ${JSON.stringify(creds.user)}` : "a client without credentials"}: ${e.message}; ${creds ? "check the --creds file" : "give --creds FILE or ROOST_CREDS"}`,
      );
    const why = /refused/i.test(e.message)
      ? "connection refused (nothing listens there)"
      : e.name === "TimeoutError" || /^timeout$/i.test(e.message)
        ? `no NATS handshake within ${seconds(timeoutMs)}`
        : e.message;
    const hint = given ? "is nats-server running there?" : "is `roost dev` still running?";
    throw new UnreachableError(`cannot reach NATS at ${url}${origin}: ${why}; ${hint}`);
  }
  return new NatsClient(url, nc, opts.stream ?? file.stream ?? "ROOST", timeoutMs, note, creds?.user, file.discovery);
}

/** An API v1 reply. */
type Reply<T> = { ok: true; value: T } | { ok: false; error: ApiErrorBody };

function unwrap<T>(r: Reply<T>): T {
  if (!r || typeof r !== "object" || !("ok" in r)) throw new ClientError("malformed reply from the scheduler");
  if (r.ok) return r.value;
  const e = r.error as Partial<ApiErrorBody> | undefined;
  if (!e || typeof e.message !== "string") throw new ClientError("the scheduler refused the request without saying why");
  throw new ClientError(e.message, isErrorCode(e.code) ? e.code : undefined, typeof e.field === "string" ? e.field : undefined);
}

/**
 * "Not committed, try again" (no leader could commit it): a read is retried like no answer at all.
 * A write is not unless it carries an idempotency key: a commit that timed out may have landed, and
 * job.add sent twice would add twice. The writes are the API's own list (api/v1.ts OPS), not one
 * kept here: a hand-kept list had fallen behind by twelve (job.restart, the update and maintenance
 * writes), so an unkeyed update.start was retried like a read.
 */
const WRITES: ReadonlySet<string> = new Set(OPS.filter((o) => o.write).map((o) => o.op));
function unavailable(r: Reply<unknown>): boolean {
  return !!r && typeof r === "object" && r.ok === false && (r.error as Partial<ApiErrorBody> | undefined)?.code === "UNAVAILABLE";
}

/** A keyed write may be sent again: its key makes the leader answer a copy with the first outcome. */
function hasKey(data: unknown): boolean {
  return data !== null && typeof data === "object" && typeof (data as { key?: unknown }).key === "string";
}

/**
 * How long a leader may take over a read before the client asks again beside it (a hedge), or
 * undefined for a request never hedged. A leader answers a read from its own state in
 * milliseconds; one silent for seconds most likely died holding the request (killed -9 in a
 * failover), and the hedge reaches the next leader. The first try stays open, so a leader that is
 * only slow still has its answer taken. task.status asks the task's agent (up to 3 s) and task.why
 * reads the log, so they get longer. Not hedged: writes (sent once unless keyed, and keyed ones
 * go through the intake), the events long poll (longPollOnce), and the history ops, which every
 * replica answers.
 *
 * What taught it: a library read such as RoostClient.jobStatus, taken by a leader killed -9,
 * waited out its whole timeout (10 s) and failed, though the next leader led within about 2 s.
 */
function hedgeAfterMs(op: string): number | undefined {
  if (WRITES.has(op) || op === "events" || HISTORY_OPS.has(op)) return undefined;
  return op === "task.status" || op === "task.why" ? SLOW_READ_HEDGE_MS : READ_HEDGE_MS;
}
const READ_HEDGE_MS = 3000;
const SLOW_READ_HEDGE_MS = 6000;

/** Where a request goes and how it is retried: a read or a keyed write may be asked again. */
function plan(
  op: string,
  data: unknown,
  opts: number | RequestOptions | undefined,
  defaultTimeoutMs: number,
): { subject: string; retry: RequestOptions & { timeoutMs: number; read: boolean; hedgeMs?: number } } {
  const o = typeof opts === "number" ? { timeoutMs: opts } : (opts ?? {});
  checkMs("timeoutMs", o.timeoutMs);
  checkMs("until", o.until, 0, Number.MAX_SAFE_INTEGER);
  const subject = subjectFor(op, data, o.role);
  checkRequest(subject, data);
  const hedgeMs = hedgeAfterMs(op);
  return {
    subject,
    retry: {
      ...o,
      timeoutMs: o.timeoutMs ?? defaultTimeoutMs,
      read: !WRITES.has(op) || hasKey(data),
      ...(hedgeMs !== undefined ? { hedgeMs } : {}),
    },
  };
}

/**
 * The request checked against its op's own schema, as the scheduler checks it: a bad one is
 * refused here, naming the field and the rule, whether a leader is up or not. What taught it:
 * with no leader, `events({from: -5})` waited out the timeout and said only that no scheduler
 * leads, and a write with a bad field was queued on the intake to be refused later.
 */
function checkRequest(subject: string, data: unknown): void {
  const addressed = parseSubject(subject);
  if (typeof addressed === "string") return; // no op there: the scheduler says so
  const problems = requestProblems(addressed.def, data ?? {});
  if (problems.length === 0) return;
  const e = invalidRequest(addressed.def.op, problems);
  throw new ClientError(e.message, "INVALID_REQUEST", e.field);
}

/** The v1 subject of a request, or a ClientError saying which role is missing. */
function subjectFor(op: string, data: unknown, role?: string): string {
  const subject = addressFor(op, data, role);
  if (subject === null) {
    throw new ClientError(
      `cannot tell which role's subject to send ${op} on: the request names no valid role (roles are 1 to 64 letters, digits, "_" or "-"); pass --role`,
      "INVALID_REQUEST",
    );
  }
  return subject;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The least time one try of a request is given (so a request may end up to this much past its timeout). */
const MIN_ATTEMPT_MS = 1000;

/**
 * Where a client says that nobody answers, and whether it already has: once per stretch with no
 * scheduler, not once per request. What taught it: a wait is many polls, each its own request, so
 * `roost events --follow` said "no scheduler answers … yet; trying again for up to 22 s" and then
 * "… up to 1 s" within one 23 s wait, and `job create --wait` said it once per 2 s poll.
 */
interface Leaderless {
  note: (msg: string) => void;
  /** Said since the last answer. */
  said: boolean;
}

/** One try of a request: the reply, nobody listening, or no answer in time. */
type Attempt<T> = { reply: Reply<T> } | "none" | "timeout";

/**
 * Sends a try, and another every `hedgeMs` while none has answered (see hedgeAfterMs): the first
 * reply wins, whichever try it answers. Each try is given until `deadline`. When every try sent
 * has ended without a reply, the last one's outcome ("none": nobody listened; "timeout").
 */
function hedged<T>(send: (leftMs: number) => Promise<Attempt<T>>, deadline: number, hedgeMs: number): Promise<Attempt<T>> {
  return new Promise<Attempt<T>>((resolve, reject) => {
    let open = 0;
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const fire = () => {
      open++;
      send(Math.max(MIN_ATTEMPT_MS, deadline - Date.now())).then(
        (r) => {
          open--;
          if (r !== "none" && r !== "timeout") end(() => resolve(r));
          else if (open === 0) end(() => resolve(r));
        },
        (err: unknown) => end(() => reject(err)),
      );
      if (deadline - Date.now() > hedgeMs) timer = setTimeout(fire, hedgeMs);
    };
    fire();
  });
}

/**
 * Request/reply with the CLI's rules: while nobody answers (no leader, e.g. during a failover)
 * try again, backing off to 1 s, until `timeoutMs`; then NoLeaderError saying so, what was asked
 * and for how long. A request taken but not answered in time is not repeated (a write may have
 * landed; a read or keyed write is told so without that warning): LeaderTimeoutError. "Not
 * committed, try again" (UNAVAILABLE) is retried like no answer for a read or a keyed write (the
 * key makes a copy harmless), and returned for an unkeyed write. A read is hedged (hedgeAfterMs).
 */
async function requestWithRetry<T>(
  subject: string,
  where: string,
  opts: RequestOptions & { timeoutMs: number; read: boolean; hedgeMs?: number },
  notes: Leaderless,
  attempt: (leftMs: number) => Promise<Attempt<T>>,
): Promise<T> {
  const start = Date.now();
  const deadline = start + opts.timeoutMs;
  // Nobody answering is retried until the timeout, or the end of the wait this is one poll of.
  const giveUp = Math.min(deadline, opts.until ?? deadline);
  const retry = opts.retry ?? true;
  let attempts = 0;
  let delay = 100;
  for (;;) {
    attempts++;
    // Never less than a second: a last try with a sliver of time left would time out, not hear "no responders".
    const r =
      opts.hedgeMs !== undefined
        ? await hedged(attempt, deadline, opts.hedgeMs)
        : await attempt(Math.max(MIN_ATTEMPT_MS, deadline - Date.now()));
    if (r === "timeout") {
      throw new LeaderTimeoutError(
        `timed out after ${seconds(Date.now() - start)} waiting for the scheduler to answer ${subject} at ${where}${opts.read ? "" : " (a write may still be carried out: look before repeating it)"}`,
      );
    }
    if (r !== "none") notes.said = false; // somebody answered: a later stretch with nobody is news again
    if (r !== "none" && !(retry && opts.read && unavailable(r.reply) && giveUp - Date.now() > 0)) return unwrap(r.reply);
    const left = giveUp - Date.now();
    if (!retry || left <= 0) {
      throw new NoLeaderError(
        retry
          ? `no scheduler is leading: nothing answered ${subject} at ${where} for ${seconds(Date.now() - start)} (${attempts} attempt${attempts === 1 ? "" : "s"}); start one with \`roost dev\` or \`roost scheduler --nats URL\`, or wait longer with --timeout`
          : `no scheduler is leading: nothing answers ${subject} at ${where}`,
      );
    }
    if (attempts === 1 && !notes.said) {
      notes.said = true;
      const wait = opts.until !== undefined ? opts.until - Date.now() : opts.timeoutMs;
      notes.note(`no scheduler answers ${subject} at ${where} yet; trying again for up to ${seconds(Math.max(0, wait))}`);
    }
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, 1000);
  }
}

export class NatsClient implements ClusterClient {
  private log: Promise<JetStreamLog> | null = null;
  private readonly leaderless: Leaderless = { note: (msg) => this.note(msg), said: false };
  constructor(
    readonly where: string,
    /** The client's NATS connection (for KV and stream reads). */
    readonly nc: NatsConnection,
    /** The log's stream. */
    readonly stream: string,
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
    readonly note: (msg: string) => void = () => {},
    /** The NATS user it connected as, for errors (none on an open cluster). */
    readonly user?: string,
    /** The discovery bucket the cluster file names, if it names one (else the stream's). */
    readonly discovery?: string,
  ) {}

  async request<T>(op: string, data: unknown, opts?: number | RequestOptions): Promise<T> {
    const { subject, retry } = plan(op, data, opts, this.timeoutMs);
    const payload = pack(data);
    return requestWithRetry<T>(subject, this.where, retry, this.leaderless, async (left) => {
      try {
        const m = await this.nc.request(subject, payload, { timeout: left });
        return { reply: unpack<Reply<T>>(m.data) };
      } catch (err) {
        const e = err as Error;
        const denied = permissionDenied(err, this.user);
        if (denied) throw denied;
        if (/no responders/i.test(`${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`)) return "none";
        if (e.name === "TimeoutError" || /timeout/i.test(e.message)) return "timeout";
        if (/closed|draining|disconnect/i.test(`${e.name} ${e.message}`))
          throw new UnreachableError(`lost the connection to NATS at ${this.where}: ${e.message}`);
        throw err;
      }
    });
  }

  async publishIntake(subject: string, msgId: string, data: unknown): Promise<{ duplicate: boolean } | null> {
    try {
      const ack = await jetstream(this.nc).publish(subject, pack(data), { msgID: msgId, timeout: this.timeoutMs });
      return { duplicate: ack.duplicate };
    } catch (err) {
      const e = err as Error;
      const denied = permissionDenied(err, this.user);
      if (denied) throw denied;
      // No stream takes these subjects (an older scheduler, or none ever started here).
      if (/no responders|503|no stream/i.test(`${e.name} ${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`)) return null;
      throw err;
    }
  }

  /** What a wait on the log is waiting for. */
  private logName(): string {
    return `the log's stream ${this.stream} at ${this.where}`;
  }

  private openLog(): Promise<JetStreamLog> {
    this.log ??= within(
      this.timeoutMs,
      () => this.logName(),
      openJetStreamLog({
        servers: this.where,
        nc: this.nc,
        stream: this.stream,
        create: false,
        timeoutMs: Math.min(5000, this.timeoutMs),
        readyTimeoutMs: this.timeoutMs,
      }),
    ).catch((err: Error) => {
      this.log = null;
      if (/does not exist/i.test(err.message)) {
        throw new ClientError(
          `${this.logName()} does not exist: no scheduler has written a log there (start a cluster with \`roost dev\`, or name the stream)`,
        );
      }
      if (/jetstream (is )?not enabled/i.test(err.message))
        throw new ClientError(`JetStream is not enabled on the NATS server at ${this.where} (run nats-server with -js)`);
      throw err;
    });
    return this.log;
  }

  async get(seq: number): Promise<LogRecord | null> {
    const log = await this.openLog();
    return within(this.timeoutMs, () => `record ${seq} of ${this.logName()}`, log.get(seq));
  }

  async lastSeq(): Promise<number | null> {
    const log = await this.openLog();
    return within(this.timeoutMs, () => `the last sequence of ${this.logName()}`, log.lastSeq());
  }

  async *readLog(from: number): AsyncIterable<LogRecord> {
    const log = await this.openLog();
    let next = from;
    for await (const r of stallBounded(log.read(from), this.timeoutMs, () => `record ${next} of ${this.logName()}`)) {
      next = r.seq + 1;
      yield r;
    }
  }

  async *followLog(from: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    yield* (await this.openLog()).follow(from, signal);
  }

  async close(): Promise<void> {
    const log = this.log;
    this.log = null;
    if (log)
      await within(
        2000,
        "the log to close",
        log.then((l) => l.close()),
      ).catch(() => {});
    if (this.nc.isClosed()) return;
    try {
      await within(2000, "the NATS connection to drain", this.nc.drain());
    } catch {
      await this.nc.close().catch(() => {});
    }
  }
}

/** Talks to the embedded dev cluster through its bridge (cli/bridge.ts). */
class HttpClient implements ClusterClient {
  private readonly leaderless: Leaderless = { note: (msg) => this.note(msg), said: false };
  constructor(
    readonly where: string,
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
    readonly note: (msg: string) => void = () => {},
    private readonly origin = "",
  ) {}

  private unreachable(err: unknown): UnreachableError {
    const e = err as Error & { cause?: Error };
    const why = /refused/i.test(`${e.message} ${e.cause?.message ?? ""}`)
      ? "connection refused (nothing listens there)"
      : (e.cause?.message ?? e.message);
    return new UnreachableError(
      `cannot reach the embedded dev cluster's gateway at ${this.where}${this.origin}: ${why}; is \`roost dev\` still running?`,
    );
  }

  async request<T>(op: string, data: unknown, opts?: number | RequestOptions): Promise<T> {
    const { subject, retry } = plan(op, data, opts, this.timeoutMs);
    const body = pack(data);
    return requestWithRetry<T>(subject, this.where, retry, this.leaderless, async (left) => {
      let res: Response;
      try {
        res = await fetch(`${this.where}/bus/${subject}`, {
          method: "POST",
          body,
          headers: { "content-type": "application/msgpack", "x-timeout-ms": String(left) },
          signal: AbortSignal.timeout(left + 1000),
        });
      } catch (err) {
        if ((err as Error).name === "TimeoutError") return "timeout";
        throw this.unreachable(err);
      }
      if (res.status === 503) return "none";
      if (!res.ok) throw new ClientError(await res.text());
      return { reply: unpack<Reply<T>>(new Uint8Array(await res.arrayBuffer())) };
    });
  }

  private async page(from: number, wait: boolean, signal?: AbortSignal): Promise<Array<[number, Uint8Array]>> {
    let res: Response;
    try {
      // A waiting page is answered within 20 s by the gateway, with or without records.
      res = await fetch(`${this.where}/log?from=${from}${wait ? "&wait=1" : ""}`, {
        signal: signal ?? AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      if ((err as Error).name === "TimeoutError")
        throw new WaitTimeoutError(`timed out after ${seconds(this.timeoutMs)} waiting for record ${from} of the log at ${this.where}`);
      throw this.unreachable(err);
    }
    if (!res.ok) throw new ClientError(await res.text());
    return unpack<Array<[number, Uint8Array]>>(new Uint8Array(await res.arrayBuffer()));
  }

  async get(seq: number): Promise<LogRecord | null> {
    const first = (await this.page(seq, false))[0];
    return first !== undefined && first[0] === seq ? { seq, events: decodeRecord(first[1]) } : null;
  }

  async lastSeq(): Promise<number | null> {
    return null;
  }

  async *readLog(from: number): AsyncIterable<LogRecord> {
    for (;;) {
      const page = await this.page(from, false);
      if (page.length === 0) return;
      for (const [seq, data] of page) yield { seq, events: decodeRecord(data) };
      from = page[page.length - 1]![0] + 1;
    }
  }

  async *followLog(from: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    while (!signal.aborted) {
      let page: Array<[number, Uint8Array]>;
      try {
        page = await this.page(from, true, signal);
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      for (const [seq, data] of page) yield { seq, events: decodeRecord(data) };
      if (page.length) from = page[page.length - 1]![0] + 1;
    }
  }

  async close(): Promise<void> {}
}

/**
 * Fold the whole log here: the read path that needs no leader. Each record must come within the
 * client's timeout; when the fold takes a while it says how far it is (client.note) every 2 s.
 */
export async function foldLocally(client: ClusterClient): Promise<ClusterState> {
  const state = new ClusterState();
  const started = Date.now();
  let said = started;
  let target: number | null | undefined;
  for await (const r of client.readLog(1)) {
    foldRecord(state, r.seq, r.events);
    const now = Date.now();
    if (now - said >= 2000) {
      said = now;
      if (target === undefined) target = await client.lastSeq().catch(() => null);
      client.note(`folding the log here: at sequence ${r.seq}${target ? ` of ${target}` : ""} after ${seconds(now - started)}`);
    }
  }
  return state;
}

/**
 * The longest one poll (a write's outcome with request.get, or a wait's `job status` or `update
 * info`) waits for its answer before it is asked again. A leader answers a poll at once; one
 * unanswered this long went to a leader that died holding it, and the next leader answers the
 * next. What taught it: a poll used to wait out the whole timeout, so a `roost host maintenance
 * drain` sent as its leader was killed -9 failed after 10 s ("timed out waiting for the scheduler
 * to answer … request.get") though the next leader had its outcome about 2 s later.
 */
const POLL_TRY_MS = 2000;

/** A poll nobody answered: no scheduler leads, or the one that took it died holding it. */
function unanswered(err: unknown): boolean {
  return err instanceof NoLeaderError || err instanceof LeaderTimeoutError;
}

/**
 * One poll of a wait that gives up at `deadline` (ms since the epoch): `ask`'s answer, given at
 * most POLL_TRY_MS to come; or null when nobody answered it and the wait has time left, so the
 * caller polls again (a long poll the leader holds is longPollOnce's). Past the
 * deadline, the last poll's error is thrown. `ask` is handed the try's RequestOptions: its
 * timeout, and the wait's end, which the client's "no scheduler answers" note gives.
 */
export async function pollOnce<T>(ask: (o: { timeoutMs: number; until: number }) => Promise<T>, deadline: number): Promise<T | null> {
  try {
    return await ask({ timeoutMs: Math.max(MIN_ATTEMPT_MS, Math.min(POLL_TRY_MS, deadline - Date.now())), until: deadline });
  } catch (err) {
    if (unanswered(err) && Date.now() < deadline) return null;
    throw err;
  }
}

/**
 * One long poll of a feed whose leader holds each poll up to `holdMs` before answering (`events
 * --follow`): the answer; or null when a leader took the poll and died holding it, so the caller
 * asks the next leader from the same place, with its patience restarted (somebody led until just
 * now). While nobody answers at all it is retried until `until`, then NoLeaderError. What taught
 * it: the follow gave up at its timeout plus the hold, so with no scheduler up `roost events
 * --follow --timeout 6` waited 26 s before reading the log here.
 */
export async function longPollOnce<T>(
  ask: (o: { timeoutMs: number; until: number }) => Promise<T>,
  until: number,
  holdMs: number,
): Promise<T | null> {
  try {
    return await ask({ timeoutMs: holdMs + POLL_TRY_MS, until });
  } catch (err) {
    if (err instanceof LeaderTimeoutError) return null;
    throw err;
  }
}

/**
 * A write, exactly once: published on the durable intake with key `key` (a generated one unless
 * given), then its outcome awaited with request.get, so it survives a leader change and is decided
 * once however often it is sent. Where the cluster has no intake (an embedded dev cluster), or
 * JetStream called the publish a duplicate and the leader knows no outcome for the key (another
 * client reused the msgId; see actors/intakeConsumer.ts), it is sent as a keyed request instead,
 * retried until the timeout, which the key makes safe too.
 */
export async function writeOnce<T>(c: ClusterClient, op: string, data: Record<string, unknown>, key: string): Promise<T> {
  const subject = subjectFor(op, data);
  // Before anything is published: the intake would drop a bad key, or the leader refuse a bad
  // field, and the caller would learn it only from the outcome poll, or with no leader not at all.
  checkRequest(subject, { ...data, key });
  const who = subject.slice(API_V1_PREFIX.length).split(".")[0]!;
  const deadline = Date.now() + c.timeoutMs;
  const pub = c.publishIntake ? await c.publishIntake(INTAKE_PREFIX + subject.slice(API_V1_PREFIX.length), `${who}/${key}`, data) : null;
  if (pub !== null) {
    let missingSince: number | null = null;
    let delay = 20;
    let said = false;
    for (;;) {
      let r: { state: string; value?: T; error?: ApiErrorBody } | null = null;
      let notFound = false;
      try {
        // A poll nobody answered (no leader yet, or one died holding it) is null: poll again.
        r = await pollOnce(
          (t) => c.request<{ state: string; value?: T; error?: ApiErrorBody }>("request.get", { key }, { ...t, role: who, retry: false }),
          deadline,
        );
      } catch (err) {
        // Past the deadline with nobody answering: say the write is queued for the next leader.
        if (err instanceof NoLeaderError) {
          throw new NoLeaderError(
            `no scheduler is leading: request ${who}/${key} (${op}) is queued on the intake and will be decided, once, when one leads; see it with \`roost request get ${key} --role ${who}\`, or wait for it by repeating the command with --key ${key} (${err.message})`,
          );
        }
        // Not known yet, or a leader not ready to answer (UNAVAILABLE): poll again.
        notFound = err instanceof ClientError && err.code === "NOT_FOUND";
        if (!(notFound || err instanceof LeaderTimeoutError || (err instanceof ClientError && err.code === "UNAVAILABLE"))) throw err;
      }
      if (r?.state === "done") return r.value as T;
      if (r?.state === "rejected") {
        const e = r.error ?? { code: "INVALID_REQUEST", message: "rejected" };
        throw new ClientError(e.message, isErrorCode(e.code) ? e.code : undefined, e.field);
      }
      if (notFound && pub.duplicate) {
        missingSince ??= Date.now();
        if (Date.now() - missingSince > 2000) break; // a duplicate of nothing the leader knows: send it directly
      }
      // The poll that crosses the deadline is still made (pollOnce): nobody there says "no leader" above.
      if (Date.now() >= deadline) {
        throw new WaitTimeoutError(
          `timed out after ${seconds(c.timeoutMs)} waiting for the outcome of request ${who}/${key} (${op}); it stays queued: \`roost request get ${key} --role ${who}\` later, or send it again with --key ${key}`,
        );
      }
      if (!said && Date.now() - (deadline - c.timeoutMs) > 1000) {
        said = true;
        c.note(`request ${who}/${key} (${op}) is queued on the intake; waiting for a leader to decide it`);
      }
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      delay = Math.min(delay * 2, 250);
    }
  }
  return c.request<T>(op, { ...data, key }, { timeoutMs: Math.max(1000, deadline - Date.now()) });
}
