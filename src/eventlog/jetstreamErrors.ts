// What NATS and JetStream errors mean for the EventLog contract (log.ts):
//
// - a wrong last sequence (10071) or wrong last msg id (10070) on an append is FencedError;
// - a full stream (10077, discard: new) is a final error;
// - timeouts, no responders ("jetstream is not enabled", 503), a closed, draining or reconnecting
//   connection and a temporarily unavailable JetStream are LogUnavailableError (retryable; an
//   append that timed out may have landed: retry with the same msgId).

import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { FencedError, LogUnavailableError } from "./log.js";

const WRONG_LAST_SEQ = /wrong last sequence:\s*(\d+)/i;
/** JSStreamStoreFailedF: the store refused the message (stream full, out of resources). */
const STREAM_STORE_FAILED = 10077;
/** JSStreamWrongLastMsgIDErr: "wrong last msg ID: <id>". */
const WRONG_LAST_MSG_ID = 10070;

/** True for errors that mean "JetStream or the connection is not reachable right now". */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  switch (err.name) {
    case "TimeoutError":
    case "JetStreamNotEnabled":
    case "NoRespondersError":
    case "ClosedConnectionError":
    case "DrainingConnectionError":
    case "ConnectionError":
      return true;
    case "RequestError":
      // no responders, or a request cancelled by a disconnect; not a permissions violation
      return !(err.cause instanceof Error && err.cause.name === "PermissionViolationError");
  }
  if (err instanceof JetStreamApiError) {
    // 10008: "JetStream system temporarily unavailable"; 503: no leader / not ready. But 10077
    // (also 503) is a store failure such as "maximum messages exceeded" on a full stream: final.
    if (err.code === STREAM_STORE_FAILED) return false;
    return err.code === 10008 || err.status === 503 || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
  }
  if (err.name === "JetStreamStatusError" && (err as { code?: number }).code === 503) return true;
  return false;
}

/** The EventLog error for an append fenced on `expectedLastSeq` that failed. */
export function toLogError(err: unknown, expectedLastSeq: number): Error {
  if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
    const m = WRONG_LAST_SEQ.exec(err.message);
    return new FencedError(expectedLastSeq, m ? Number(m[1]) : undefined);
  }
  if (err instanceof JetStreamApiError && err.code === WRONG_LAST_MSG_ID) {
    // The stream ends where expected, but not with this writer's previous record.
    return new FencedError(expectedLastSeq, undefined);
  }
  if (isUnavailable(err)) {
    return new LogUnavailableError(`event log unavailable: ${(err as Error).message}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** LogUnavailableError for an error that means "not reachable right now"; any other error as it is. */
export function mapUnavailable(err: unknown): Error {
  if (isUnavailable(err)) return new LogUnavailableError(`event log unavailable: ${(err as Error).message}`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/** Runs `fn` until it does not fail as unavailable, for at most timeoutMs (then LogUnavailableError: `what`). */
export async function retryWhileUnavailable<T>(what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isUnavailable(err) || Date.now() + delay > deadline) {
        if (isUnavailable(err)) throw new LogUnavailableError(`${what}: ${(err as Error).message}`, { cause: err });
        throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
  }
}
