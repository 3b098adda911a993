// The durable intake: a JetStream stream (ROOST_INTAKE) where services publish mutating requests
// on roost.intake.v1.<role>.<op> with `Nats-Msg-Id: <role>/<key>`, whether or not a leader is up.
// The leader consumes it (one durable pull consumer, explicit acks) and acknowledges a message
// only once its outcome is committed to the log, so a request published while no leader serves,
// or held by a leader that dies before committing, is decided by the next leader, exactly once:
// the key's outcome on the log (RequestDecided) makes a redelivered copy a no-op.
//
// The stream, as created:
// - work-queue retention (a message goes once acknowledged), file storage, the log's replicas;
// - discard new with limits: a full intake refuses a publish (the publisher hears it) instead of
//   silently dropping the oldest unprocessed requests;
// - JetStream's duplicate window (2 min) drops a quick re-publish of the same msgId before anyone
//   sees it; the log's 24-hour outcomes cover what comes later.
// JetStream's duplicate table is stream-wide, not per subject (nats-server 2.9.10), so a msgId
// must begin with the role of its subject: the consumer refuses, and counts, one that does not
// (a service could otherwise suppress another's request by reusing its id).

import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import { retryWhileUnavailable } from "./jetstreamErrors.js";

export const INTAKE_PREFIX = "roost.intake.v1.";
const DEFAULT_INTAKE_STREAM = "ROOST_INTAKE";
const CONSUMER = "roost-leader";

/** One message of the intake, as the leader's consumer sees it. */
export interface IntakeMessage {
  subject: string;
  /** The Nats-Msg-Id header, or null. */
  msgId: string | null;
  /** Content-Type: application/json (else MessagePack). */
  json: boolean;
  data: Uint8Array;
  /** How many times it was delivered (1 the first time). */
  deliveries: number;
  /** Its sequence in the intake stream. */
  seq: number;
}

/** What the leader does with a message: done with it (its outcome is on the log, or it is refused for good), or later. */
export type IntakeVerdict = "ack" | "retry";

/** The intake as the leader reads it. */
export interface IntakeSource {
  /**
   * Deliver messages to `handle` (up to `inFlight` at once) until `signal` aborts; ack or nak
   * each by its verdict. Resolves when stopped.
   */
  consume(handle: (m: IntakeMessage) => Promise<IntakeVerdict>, signal: AbortSignal, inFlight?: number): Promise<void>;
}

export interface IntakeOptions {
  stream?: string;
  replicas?: 1 | 3;
  /** How long JetStream waits for an ack before it delivers a message again. Default 30 s. */
  ackWaitMs?: number;
  /** JetStream's duplicate window when the stream is created. Default 2 min (tests shorten it). */
  duplicateWindowMs?: number;
  readyTimeoutMs?: number;
}

/** Finds or creates the intake stream and the leader's durable consumer. */
export async function openIntake(nc: NatsConnection, opts: IntakeOptions = {}): Promise<IntakeSource> {
  const stream = opts.stream ?? DEFAULT_INTAKE_STREAM;
  const jsm = await jetstreamManager(nc);
  await retryWhileUnavailable(`cannot open the intake stream ${stream}`, opts.readyTimeoutMs ?? 30_000, async () => {
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      try {
        await jsm.streams.add({
          name: stream,
          subjects: [`${INTAKE_PREFIX}>`],
          storage: StorageType.File,
          num_replicas: opts.replicas ?? 1,
          retention: RetentionPolicy.Workqueue,
          discard: DiscardPolicy.New,
          max_msgs: 1_000_000,
          max_bytes: 1024 * 1024 * 1024,
          max_msg_size: 1024 * 1024,
          duplicate_window: nanos(opts.duplicateWindowMs ?? 2 * 60_000),
        });
      } catch (e) {
        if (!(e instanceof JetStreamApiError && /already in use/i.test(e.message))) throw e;
      }
    }
    try {
      await jsm.consumers.info(stream, CONSUMER);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(stream, {
        durable_name: CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(opts.ackWaitMs ?? 30_000),
        max_ack_pending: 1024,
      });
    }
  });
  const js = jetstream(nc);
  return {
    async consume(handle, signal, inFlight = 64) {
      const consumer = await js.consumers.get(stream, CONSUMER);
      // Short pulls (5 s, heartbeats every 2.5 s): a pull lost under load is noticed and renewed in
      // seconds, not after the client's default 30 s (a late copy waited 20 s unseen in a test).
      const messages: ConsumerMessages = await consumer.consume({ max_messages: inFlight, expires: 5000 });
      const stop = () => void messages.close().catch(() => {});
      signal.addEventListener("abort", stop, { once: true });
      const running = new Set<Promise<void>>();
      try {
        for await (const m of messages) {
          if (signal.aborted) {
            m.nak();
            break;
          }
          const msg: IntakeMessage = {
            subject: m.subject,
            msgId: m.headers?.get("Nats-Msg-Id") || null,
            json: m.headers?.get("Content-Type") === "application/json",
            data: m.data,
            deliveries: m.info.deliveryCount,
            seq: m.seq,
          };
          const p: Promise<void> = handle(msg)
            .then(
              (v) => (v === "ack" ? m.ack() : m.nak(1000)),
              () => m.nak(1000),
            )
            .finally(() => running.delete(p));
          running.add(p);
          while (running.size >= inFlight) await Promise.race(running);
        }
      } finally {
        signal.removeEventListener("abort", stop);
        stop();
        await Promise.allSettled(running);
      }
    },
  };
}
