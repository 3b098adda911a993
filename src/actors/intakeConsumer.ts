// The leader's side of the durable intake (eventlog/intake.ts): each message published on
// roost.intake.v1.<role|admin>.<op> with `Nats-Msg-Id: <role|admin>/<key>` becomes a keyed write
// to JobIntake, and is acknowledged once its outcome is on the log. What JobIntake refuses is
// recorded as the key's outcome too (a service waiting on request.get hears why), so only two
// things are acknowledged without an outcome: a subject that is no write, and a msgId that does
// not name the subject's role with a valid key (no key to record it under; counted, and logged).
// "Try again" (no leader could commit) is not acknowledged: JetStream delivers the message again,
// to this leader or the next.
//
// What taught the msgId rule: JetStream's duplicate detection is per stream, not per subject, so
// role B publishing msgId "A/k" on its own subject would make role A's later request with key k
// look like a duplicate to the server. The leader refuses B's message here; A's client, told
// "duplicate" by its PubAck, finds no outcome for its key and sends the request again over the API.

import { ApiError } from "../api/errors.js";
import { API_V1_PREFIX, parseSubject, REQUEST_KEY } from "../api/v1.js";
import { INTAKE_PREFIX, type IntakeMessage, type IntakeSource, type IntakeVerdict } from "../eventlog/intake.js";
import { unpack } from "../eventlog/envelope.js";
import type { Logger } from "../util/logger.js";
import { asApiError, type Caller, type WriteOp } from "./api.js";

/** What the intake has done this term, for cluster.info. */
export interface IntakeStats {
  /** Messages whose outcome is on the log (done or refused), or was already. */
  decided: number;
  /** Messages acknowledged without an outcome: no write on that subject, or a msgId that does not name its role. */
  refused: number;
  /** Messages handed back to JetStream to be delivered again (nothing could be committed). */
  retried: number;
}

export interface IntakeWriter {
  write(op: WriteOp, req: unknown, caller: Caller, key: string | null): Promise<unknown>;
  /** Record a refusal as the key's outcome (when it has none yet). */
  refuse(op: WriteOp, caller: Caller, key: string, err: ApiError): Promise<void>;
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Deliveries after which a message that could never be decided is dropped (logged as an error). */
const MAX_DELIVERIES = 20;

/** Consume the intake until the returned stop() is called. */
export function serveIntake(source: IntakeSource, writer: IntakeWriter, log: Logger): { stop(): void; stats: IntakeStats } {
  const stats: IntakeStats = { decided: 0, refused: 0, retried: 0 };
  const abort = new AbortController();
  const handle = async (m: IntakeMessage): Promise<IntakeVerdict> => {
    const verdict = await decide(m, writer, log, stats);
    if (verdict === "ack") return verdict;
    // "Try again" is retried for as long as it takes (an acknowledged request is never dropped);
    // a message that fails for no reason a refusal names (a bug) must not loop for ever.
    if (verdict === "bug" && m.deliveries >= MAX_DELIVERIES) {
      stats.refused++;
      log.error({ subject: m.subject, msgId: m.msgId, seq: m.seq }, `intake message dropped after ${m.deliveries} deliveries`);
      return "ack";
    }
    stats.retried++;
    return "retry";
  };
  // Consume until the term ends: a consumer that stops (the stream leader moved, the connection
  // was lost for longer than the client rides out) is started again, or requests would wait for
  // the next leader.
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        await source.consume(handle, abort.signal);
      } catch (err) {
        if (abort.signal.aborted) return;
        log.warn({ err }, "the intake consumer stopped; starting it again");
      }
      if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return { stop: () => abort.abort(), stats };
}

async function decide(m: IntakeMessage, writer: IntakeWriter, log: Logger, stats: IntakeStats): Promise<Decided> {
  const dropped = (why: string): Decided => {
    stats.refused++;
    log.warn({ subject: m.subject, msgId: m.msgId, seq: m.seq }, `intake message refused: ${why}`);
    return "ack";
  };
  if (!m.subject.startsWith(INTAKE_PREFIX)) return dropped("not an intake subject");
  const addressed = parseSubject(API_V1_PREFIX + m.subject.slice(INTAKE_PREFIX.length));
  if (typeof addressed === "string") return dropped(addressed);
  const { def, role } = addressed;
  if (!def.write) return dropped(`${def.op} is not a write; reads go to ${API_V1_PREFIX}…`);
  const who = role ?? "admin";
  const msgId = m.msgId ?? "";
  const slash = msgId.indexOf("/");
  if (slash < 0 || msgId.slice(0, slash) !== who) {
    return dropped(`Nats-Msg-Id ${JSON.stringify(msgId)} must be "${who}/<key>", naming the subject's ${role ? "role" : "scope"}`);
  }
  const key = msgId.slice(slash + 1);
  if (!REQUEST_KEY.test(key))
    return dropped(`the key in Nats-Msg-Id ${JSON.stringify(msgId)} must be 1 to 128 letters, digits or "_.:=+-"`);

  const op = def.op as WriteOp;
  const caller: Caller = { role };
  let body: unknown;
  try {
    body = m.data.length === 0 ? {} : m.json ? JSON.parse(textDecoder.decode(m.data)) : unpack(m.data);
  } catch (err) {
    const refusal = new ApiError(
      "INVALID_REQUEST",
      `the request is not valid ${m.json ? "JSON" : "MessagePack"}: ${(err as Error).message}`,
    );
    return settle(writer.refuse(op, caller, key, refusal), stats);
  }
  if (body !== null && typeof body === "object" && !Array.isArray(body) && "key" in body) {
    const { key: own, ...rest } = body as { key: unknown };
    if (own !== key) {
      const refusal = new ApiError(
        "INVALID_REQUEST",
        `key: must be the key of the Nats-Msg-Id, "${key}" (got ${JSON.stringify(own)})`,
        "key",
      );
      return settle(writer.refuse(op, caller, key, refusal), stats);
    }
    body = rest;
  }
  return settle(writer.write(op, body, caller, key), stats);
}

/** What became of a message: its outcome is on the log (ack), nothing was committed (retry), or a bug. */
type Decided = "ack" | "retry" | "bug";

/** Done (its outcome is on the log, done or refused), or back to JetStream when nothing could be committed. */
async function settle(p: Promise<unknown>, stats: IntakeStats): Promise<Decided> {
  try {
    await p;
  } catch (err) {
    const refusal = asApiError(err as Error);
    if (refusal === null) return "bug";
    if (refusal.code === "UNAVAILABLE") return "retry";
  }
  stats.decided++;
  return "ack";
}
