// Golden logs (test/golden) for tests: read one from disk, or load it into a real JetStream stream.
//
// A golden log is `<name>.log`, msgpack pack() of the raw record bytes in sequence order, and
// `<name>.json`, its meta (see test/golden/make.ts). Loading one into a stream lets a test run the
// real read paths (cold start, `roost log tail`, a scheduler's replay) over a log some earlier
// build or a real cluster wrote, instead of one made up in the test.
//
//   const { records, meta } = readGolden("v1-devrun");
//   const last = await loadGoldenIntoStream(nats.url, "v1-devrun");   // stream ROOST, replicas 1

import { readFileSync, writeFileSync } from "node:fs";
import { pack, unpack } from "../../src/eventlog/envelope.js";
import { openJetStreamLog } from "../../src/eventlog/jetstream.js";
import { STATE_DIGEST_VERSION, stateHash } from "../../src/replay/hash.js";
import type { ClusterState } from "../../src/replay/state.js";

/** A golden log's meta (`<name>.json`); fields after stateHash are there for some logs only. */
export interface GoldenMeta {
  records: number;
  stateDigest: number;
  events: number;
  tasks: number;
  jobs: number;
  agents: number;
  stateHash: string;
  /** Event types seen, and TaskStateChanged:STATE (TaskCreated:STATE for v1-devrun). */
  covers?: string[];
  /** The epochs of the LeaderElected events, in log order (v1-devrun). */
  epochs?: number[];
  /** Sequences of interest, with the time of their record and what the log shows there (v1-devrun). */
  points?: Array<{ seq: number; ts: number; what: string }>;
  /** The anomalies the fold records (v1-poisoned). */
  anomalies?: Array<{ seq: number; index: number; type: string }>;
  /** The isolation the agents had when it was recorded (v1-services). */
  isolation?: string;
}

/**
 * Writes `<base>.log` (the records) and `<base>.json` (the meta of `state`, their fold, with
 * `extra`): what every make-*.ts script ends with. Golden logs are forever: never over an old one.
 */
export function writeGolden(base: string, records: Uint8Array[], state: ClusterState, extra: Partial<GoldenMeta> = {}): void {
  const meta: GoldenMeta = {
    records: records.length,
    stateDigest: STATE_DIGEST_VERSION,
    events: state.eventCount,
    tasks: state.tasks.size,
    jobs: state.jobs.size,
    agents: state.agents.size,
    stateHash: stateHash(state),
    ...extra,
  };
  writeFileSync(`${base}.log`, pack(records));
  writeFileSync(`${base}.json`, `${JSON.stringify(meta, null, 2)}\n`);
}

const GOLDEN = new URL("../golden/", import.meta.url);

/** The records (raw bytes, record i at sequence i + 1) and meta of test/golden/<name>. */
export function readGolden(name: string): { records: Uint8Array[]; meta: GoldenMeta } {
  const records = unpack<Uint8Array[]>(readFileSync(new URL(`${name}.log`, GOLDEN)));
  const meta = JSON.parse(readFileSync(new URL(`${name}.json`, GOLDEN), "utf8")) as GoldenMeta;
  if (records.length !== meta.records) throw new Error(`golden log ${name}: ${records.length} records, its meta says ${meta.records}`);
  return { records, meta };
}

/**
 * Create the log's stream at `natsUrl` as Roost creates it (openJetStreamLog: file storage, limits
 * retention, discard new, deny delete; replicas 1) and append every record of the golden log, in
 * order, each fenced on the sequence before it, so the stream holds it at the same sequences.
 * The stream must be new or empty. Returns the last sequence.
 */
export async function loadGoldenIntoStream(natsUrl: string, name: string, opts: { stream?: string } = {}): Promise<number> {
  const { records } = readGolden(name);
  const log = await openJetStreamLog({ servers: natsUrl, stream: opts.stream ?? "ROOST", replicas: 1, name: "roost-test-golden" });
  try {
    let last = await log.lastSeq();
    if (last !== 0) throw new Error(`stream ${log.stream} at ${natsUrl} already holds ${last} records`);
    for (const [i, record] of records.entries()) {
      const ack = await log.append(record, i, `golden:${name}:${i + 1}`);
      if (ack.seq !== i + 1 || ack.duplicate) throw new Error(`golden log ${name}: record ${i + 1} landed at ${ack.seq}`);
      last = ack.seq;
    }
    return last;
  } finally {
    await log.close();
  }
}
