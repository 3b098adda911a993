// The log's stream: found and checked, or created. openJetStreamLog (jetstream.ts) opens it before
// it makes the log.
//
// - An existing stream is used only if it cannot lose or hide events (checkCompatible): its
//   subjects capture the log's subject, retention is limits, no limit discards old records, no
//   max_age, not sealed. The rest (replicas, storage) is left as the operator set it.
// - A created stream is file-backed, retention limits, discard new (a full stream refuses appends
//   instead of deleting history), deny_delete (no holes), a 2-minute duplicate window for the
//   appender's idempotent retries (Nats-Msg-Id), direct gets allowed.
// - While JetStream is not ready yet (a server starting, a cluster electing), lookups and creation
//   are retried for readyTimeoutMs; losing a creation race to another process is fine if the
//   winner's stream fits.

import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { retryWhileUnavailable } from "./jetstreamErrors.js";

/** How the log's stream is to be (when created) and may be (when found). */
export interface LogStreamSpec {
  stream: string;
  subject: string;
  /** Stream replicas when the stream is created. Default 1. */
  replicas?: 1 | 3;
  /** Create the stream when it does not exist. Default true. */
  create?: boolean;
  /** Stream limits when the stream is created (JetStreamLogOptions.maxMsgs, maxBytes). */
  maxMsgs?: number;
  maxBytes?: number;
}

const DEFAULT_MAX_MSGS = 1_000_000_000;
const DEFAULT_MAX_BYTES = -1;

/** Does NATS subject pattern `pattern` (with * and >) match the literal subject `subject`? */
function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Refuse an existing stream whose configuration would lose or hide events. Loose on the rest. */
function checkCompatible(cfg: StreamConfig, subject: string): void {
  const problems: string[] = [];
  if (!(cfg.subjects ?? []).some((p) => subjectMatches(p, subject))) {
    problems.push(`its subjects ${JSON.stringify(cfg.subjects ?? [])} do not capture "${subject}"`);
  }
  if (cfg.retention !== RetentionPolicy.Limits) problems.push(`retention is "${cfg.retention}", not "limits"`);
  if (cfg.discard === DiscardPolicy.Old && (cfg.max_msgs > 0 || cfg.max_bytes > 0)) {
    problems.push('discard is "old" with limits set: the oldest events would be deleted silently');
  }
  if (cfg.max_age && cfg.max_age > 0) problems.push("max_age is set: events would expire");
  if (cfg.sealed) problems.push("the stream is sealed");
  if (problems.length > 0) {
    throw new Error(`stream ${cfg.name} exists but cannot hold the event log: ${problems.join("; ")}`);
  }
}

/**
 * Finds the stream and checks it can hold the log, or creates it; retried while JetStream is not
 * ready, for at most readyTimeoutMs.
 */
export async function openLogStream(jsm: JetStreamManager, spec: LogStreamSpec, readyTimeoutMs: number): Promise<void> {
  const { stream, subject } = spec;
  await retryWhileUnavailable(`cannot open stream ${stream}`, readyTimeoutMs, async () => {
    let info: StreamInfo | null = null;
    try {
      info = await jsm.streams.info(stream);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    }
    if (info) {
      checkCompatible(info.config, subject);
      return;
    }
    if (spec.create === false) throw new Error(`stream ${stream} does not exist (and create is false)`);
    const config: Partial<StreamConfig> & { name: string } = {
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      num_replicas: spec.replicas ?? 1,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      max_msgs: spec.maxMsgs ?? DEFAULT_MAX_MSGS,
      max_bytes: spec.maxBytes ?? DEFAULT_MAX_BYTES,
      max_age: 0,
      duplicate_window: nanos(2 * 60_000),
      allow_direct: true,
      deny_delete: true,
      deny_purge: false,
    };
    try {
      await jsm.streams.add(config);
    } catch (err) {
      // Lost a creation race to another process: use its stream if it fits.
      if (err instanceof JetStreamApiError && /already in use/i.test(err.message)) {
        checkCompatible((await jsm.streams.info(stream)).config, subject);
        return;
      }
      throw err;
    }
  });
}
