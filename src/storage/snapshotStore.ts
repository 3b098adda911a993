// Where snapshots live: the JetStream object store (SnapshotStore), or memory (MemorySnapshotStore,
// for the simulator and tests). Both name a snapshot `snap/<seq, 12 digits>`, so names sort by the
// sequence they cover, and both load the newest snapshot that decodes, skipping (and reporting)
// the ones that do not: a snapshot is only a shortcut, the log is the truth.
//
// The object store checks each object's SHA-256 on read (corrupt chunks never reach the decoder);
// the decoder checks the format, the version and the state hash (src/replay/snapshot.ts). Storing
// a snapshot checks first that its bytes decode to the state hash in their header (putEncoded, in
// a worker thread when large): so a cold start ("auto") of the same codec takes that check and
// compares only the body's digest, while a snapshot of another codec, or of a build before codecs
// were recorded, has its state hash checked, in a worker thread while the tail folds (LoadOptions
// verify, src/storage/verifyWorker.ts) or inline: the state then comes with a `verified` promise
// to await. A snapshot whose header names another stream than the log's is skipped.

import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { Objm, StorageType, type ObjectInfo, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  checkedByWriter,
  encodeSnapshotWithHeader,
  readSnapshot,
  readSnapshotHeader,
  verifySnapshot,
  type EncodedSnapshot,
  type SnapshotHeader,
} from "../replay/snapshot.js";
import type { ClusterState } from "../replay/state.js";
import { type Indexer, startIndexer } from "./indexWorker.js";
import { startVerifier, toShared, type Verdict } from "./verifyWorker.js";
import type { JetStreamLog } from "../eventlog/jetstream.js";

export const DEFAULT_SNAPSHOT_BUCKET = "roost_snapshots";
const NAME_PREFIX = "snap/";
const NAME_PATTERN = /^snap\/(\d{12,})$/;

/** The object name of the snapshot covering `seq`. */
export function snapshotName(seq: number): string {
  return `${NAME_PREFIX}${String(seq).padStart(12, "0")}`;
}

/** The sequence a snapshot name covers, or null for names that are not snapshots. */
function snapshotSeqOf(name: string): number | null {
  const m = NAME_PATTERN.exec(name);
  return m ? Number(m[1]) : null;
}

export interface SnapshotInfo {
  name: string;
  /** The log sequence it covers (from its name). */
  seq: number;
  /** Bytes stored. */
  size: number;
  description: string;
  /** What put() recorded beside the bytes (absent for objects written some other way). */
  eventCount?: number;
  stateHash?: string;
  createdTs?: number;
  tasks?: number;
}

/** What put() wrote, and what it cost. */
export interface PutSnapshot extends SnapshotInfo {
  /** Time to encode the state (stateHash included), ms. */
  encodeMs: number;
  /** Time to store the bytes, ms... */
  writeMs: number;
  /** ...after checking that they decode to the state hash in their header (SNAPSHOT_CODEC), ms. */
  checkMs: number;
}

export interface SkippedSnapshot {
  name: string;
  error: string;
}

export interface LoadedSnapshot {
  state: ClusterState;
  seq: number;
  name: string;
  header: SnapshotHeader;
  /** Newer snapshots that could not be used, newest first, with why. */
  skipped: SkippedSnapshot[];
  /** Bytes of the snapshot loaded. */
  bytes: number;
  /** Wall time of fetching and decoding it (and the ones skipped), ms. */
  ms: number;
  /** Of which fetching its bytes, and decoding them (the state hash check included when it ran
   *  inline), ms. */
  fetchMs: number;
  decodeMs: number;
  /**
   * The state hash check. Inline it has passed already (the load throws otherwise); in a worker
   * (LoadOptions.verify) it is still running: the state must not be trusted until this resolves,
   * and when it rejects (with the reason, e.g. a SnapshotError "state hash mismatch") the state,
   * and anything folded onto it, must be dropped.
   */
  verified: Promise<Verdict>;
  /** Stop a check still running (when giving up on this state); `verified` then rejects. */
  cancelVerify(): void;
  /** Time to place the bytes where the worker reads them (a copy into shared memory; 0 when they
   *  were fetched there, or inline), ms. */
  copyMs: number;
  /** Where the task id index was built: "thread" (src/storage/indexWorker.ts) or "here" (also
   *  when the thread could not be used: indexFailure says why). */
  indexBuiltBy: "thread" | "here";
  indexFailure: string | null;
}

/** Where the state hash of a snapshot is checked: "inline" before the load returns; "worker" in a
 *  worker thread meanwhile; "auto": not at all for bytes a build of this codec checked before it
 *  stored them (their body digest is compared: checkedByWriter), else the worker for large
 *  snapshots (WORKER_MIN_BYTES / WORKER_MIN_TASKS) on a machine with at least WORKER_MIN_CPUS
 *  cores, else inline. */
export type VerifyWhere = "inline" | "worker" | "auto";

/**
 * From this size on, "auto" checks in a worker. A worker's start-up (its modules, ~60 ms from
 * dist, hidden behind the fetch) is paid back once the check takes longer than that; a 50k-task
 * snapshot (~5 MiB) takes ~0.5 s to decode and check.
 */
const WORKER_MIN_BYTES = 8 * 2 ** 20;
const WORKER_MIN_TASKS = 50_000;
/**
 * The worker decodes the snapshot a second time, so it only pays where the two threads do not
 * share cores with each other and the nats-server: measured on 2 vCPUs at 2M events, the worker
 * path took 3.25 s against 3.0 s inline (medians of 3), and was slower still under load.
 */
const WORKER_MIN_CPUS = 4;
/**
 * The index thread (indexWorker.ts) does work the main thread then skips, so a second core is
 * enough: while the main thread decodes, the nats-server has sent the bytes and is idle.
 */
const INDEX_THREAD_MIN_CPUS = 2;
/** Explicit limit: how long a load waits for the index thread to start (it takes ~60 ms from
 *  dist, ~1 s from source under tsx). */
const INDEX_THREAD_READY_MS = 3000;

function readyWithin(indexer: Indexer, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([indexer.ready, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

export interface LoadOptions {
  /** Default "inline": the state comes back checked. */
  verify?: VerifyWhere;
  /** The log's stream: a snapshot whose header names another one is skipped (one without the
   *  field loads). Default: the store's (SnapshotStore.forLog sets it); none: no check. */
  stream?: string;
  /** Only snapshots covering sequences below this one: those at or above it were passed over
   *  already (a cold start falling back after a deferred check failed). */
  below?: number;
}

/** What loadNewestReport found: the snapshot loaded (null if none could be), and every newer
 *  one passed over with why, newest first. */
export interface NewestReport {
  loaded: LoadedSnapshot | null;
  skipped: SkippedSnapshot[];
}

/** What a cold start needs from a store. */
export interface SnapshotSource {
  loadNewest(maxSeq?: number): Promise<LoadedSnapshot | null>;
  loadNewestReport(maxSeq?: number, opts?: LoadOptions): Promise<NewestReport>;
}

/** The store logic, over four primitives a backend provides. */
export abstract class BaseSnapshotStore implements SnapshotSource {
  /** @param stream The log's stream: written into snapshots put, checked on load (LoadOptions). */
  constructor(readonly stream?: string) {}

  /** Store bytes under a name (replacing an object of that name). */
  abstract putBytes(name: string, bytes: Uint8Array, info: Omit<SnapshotInfo, "name" | "seq" | "size">): Promise<void>;
  /** The bytes under a name; null when there is no such object. `shared`: preferably in a
   *  SharedArrayBuffer (to hand to a worker thread without a copy). */
  abstract getBytes(name: string, opts?: { shared?: boolean }): Promise<Uint8Array | null>;
  /** Every snapshot object, in any order. */
  protected abstract listAll(): Promise<SnapshotInfo[]>;
  abstract delete(name: string): Promise<void>;

  /** Encode the state and store it under the name of the sequence it covers. */
  async put(state: ClusterState, opts: { createdTs?: number; stream?: string } = {}): Promise<PutSnapshot> {
    const t0 = performance.now();
    const encoded = encodeSnapshotWithHeader(state, { stream: this.stream, createdTs: Date.now(), ...opts });
    const encodeMs = performance.now() - t0;
    return { ...(await this.putEncoded(encoded)), encodeMs };
  }

  /** Store a snapshot already encoded (encodeSnapshotSteps, run a slice at a time). encodeMs is 0. */
  async putEncoded({ bytes, header }: EncodedSnapshot): Promise<PutSnapshot> {
    // The writer's check: only bytes that decode to the hash in their header are stored, so a
    // reader of the same codec need not compute it (SNAPSHOT_CODEC in src/replay/snapshot.ts). A
    // large snapshot is checked in a worker thread, off the thread that keeps the lease.
    const t0 = performance.now();
    if (bytes.length < WORKER_MIN_BYTES) verifySnapshot(bytes);
    else await startVerifier().check(bytes);
    const t1 = performance.now();
    const name = snapshotName(header.seq);
    const meta = {
      description: `seq ${header.seq}, ${header.eventCount} events, ${header.tasks} tasks, ${header.jobs} jobs, ${header.agents} agents, state ${header.stateHash.slice(0, 16)}`,
      eventCount: header.eventCount,
      stateHash: header.stateHash,
      createdTs: header.createdTs,
      tasks: header.tasks,
    };
    await this.putBytes(name, bytes, meta);
    return { name, seq: header.seq, size: bytes.length, ...meta, encodeMs: 0, writeMs: performance.now() - t1, checkMs: t1 - t0 };
  }

  /** Snapshots, newest (highest seq) first. */
  async list(): Promise<SnapshotInfo[]> {
    return (await this.listAll()).sort((a, b) => b.seq - a.seq);
  }

  /**
   * Fetch and decode one snapshot; throws (SnapshotError for bad bytes) when it cannot be used.
   * With `verify: "worker"` the state hash is checked in a worker thread on the same bytes, and the
   * state returned before the verdict: see LoadedSnapshot.verified.
   */
  async load(
    name: string,
    opts: {
      verify?: "inline" | "worker";
      stream?: string;
      /** Take the writer's check for bytes of this codec whose body digest matches (see
       *  checkedByWriter): no state hash computed. */
      trustWriter?: boolean;
      /** Build the task id index in a thread while this one decodes the rest (indexWorker.ts). */
      indexThread?: boolean;
    } = {},
  ): Promise<Omit<LoadedSnapshot, "seq" | "name" | "skipped" | "ms">> {
    const stream = opts.stream ?? this.stream;
    const t0 = performance.now();
    // Started before the fetch: the threads load their modules while the bytes arrive.
    const verifier = opts.verify === "worker" ? startVerifier() : null;
    const indexer = opts.indexThread ? startIndexer() : null;
    const read = (bytes: Uint8Array, verify: boolean) =>
      readSnapshot(bytes, { verify, ...(indexer && { indexTables: (ids, n) => indexer.tablesFor(ids, n) }) });
    try {
      const bytes = await this.getBytes(name, { shared: verifier !== null || indexer !== null });
      if (bytes === null) throw new Error(`snapshot ${name} does not exist`);
      const t1 = performance.now();
      const head = readSnapshotHeader(bytes);
      const seq = snapshotSeqOf(name);
      if (seq !== null && seq !== head.seq) throw new Error(`snapshot ${name} holds the state at seq ${head.seq}, not ${seq}`);
      if (stream !== undefined && head.stream !== undefined && head.stream !== stream) {
        throw new Error(`snapshot ${name} is a state of the stream ${head.stream}, not of ${stream}`);
      }
      // The thread loads its modules while the bytes arrive (~60 ms from dist); when the fetch was
      // quicker, its start is waited for, up to a bound (then the index is built here).
      if (indexer) await readyWithin(indexer, INDEX_THREAD_READY_MS);
      if (opts.trustWriter) {
        const tc = performance.now();
        if (checkedByWriter(bytes)) {
          verifier?.cancel();
          const t2 = performance.now();
          const { state, header } = read(bytes, false);
          const decodeMs = performance.now() - t2;
          return {
            state,
            header,
            bytes: bytes.length,
            fetchMs: t1 - t0,
            decodeMs,
            verified: Promise.resolve({ by: "writer", ms: t2 - tc }),
            cancelVerify: () => {},
            copyMs: 0,
            indexBuiltBy: indexer?.built ? "thread" : "here",
            indexFailure: indexer?.failure ?? null,
          };
        }
      }
      let verified: Promise<Verdict> | null = null;
      let copyMs = 0;
      if (verifier) {
        const tc = performance.now();
        const shared = toShared(bytes); // no copy when fetched into shared memory
        copyMs = performance.now() - tc;
        verified = verifier.check(shared);
        verified.catch(() => {}); // the caller awaits it; meanwhile a rejection is not unhandled
      }
      const t2 = performance.now();
      const { state, header } = read(bytes, verifier === null);
      const decodeMs = performance.now() - t2;
      return {
        state,
        header,
        bytes: bytes.length,
        fetchMs: t1 - t0,
        decodeMs,
        verified: verified ?? Promise.resolve({ by: "inline", ms: decodeMs }),
        cancelVerify: () => verifier?.cancel(),
        copyMs,
        indexBuiltBy: indexer?.built ? "thread" : "here",
        indexFailure: indexer?.failure ?? null,
      };
    } catch (err) {
      verifier?.cancel();
      throw err;
    } finally {
      indexer?.stop();
    }
  }

  /**
   * The newest snapshot that decodes to its recorded hash, at or below `maxSeq` (the log's last
   * sequence: a snapshot beyond it belongs to another log). Snapshots passed over are listed in
   * `skipped` with the reason. Null when none can be used.
   */
  async loadNewest(maxSeq = Number.POSITIVE_INFINITY): Promise<LoadedSnapshot | null> {
    return (await this.loadNewestReport(maxSeq)).loaded;
  }

  /**
   * loadNewest, also reporting the snapshots skipped when none could be used. With
   * `opts.verify` "worker" (or "auto" for a large one) the snapshot returned may still be being
   * checked: await `loaded.verified` before trusting it (src/storage/coldStart.ts).
   */
  async loadNewestReport(maxSeq = Number.POSITIVE_INFINITY, opts: LoadOptions = {}): Promise<NewestReport> {
    const t0 = performance.now();
    const skipped: SkippedSnapshot[] = [];
    const below = opts.below ?? Number.POSITIVE_INFINITY;
    for (const info of await this.list()) {
      if (info.seq >= below) continue;
      if (info.seq > maxSeq) {
        skipped.push({ name: info.name, error: `covers seq ${info.seq}, beyond the log's last sequence ${maxSeq}` });
        continue;
      }
      try {
        const verify = opts.verify ?? "inline";
        const large = info.size >= WORKER_MIN_BYTES || (info.tasks ?? 0) >= WORKER_MIN_TASKS;
        const worker = verify === "worker" || (verify === "auto" && large && availableParallelism() >= WORKER_MIN_CPUS);
        const one = await this.load(info.name, {
          verify: worker ? "worker" : "inline",
          stream: opts.stream,
          trustWriter: verify === "auto",
          indexThread: verify === "auto" && large && availableParallelism() >= INDEX_THREAD_MIN_CPUS,
        });
        return { loaded: { ...one, seq: one.header.seq, name: info.name, skipped, ms: performance.now() - t0 }, skipped };
      } catch (err) {
        skipped.push({ name: info.name, error: (err as Error).message });
      }
    }
    return { loaded: null, skipped };
  }

  /** Delete all but the `keep` newest snapshots; returns the names deleted. */
  async prune(keep = 3): Promise<string[]> {
    const old = (await this.list()).slice(Math.max(0, keep));
    for (const s of old) await this.delete(s.name);
    return old.map((s) => s.name);
  }
}

export interface SnapshotStoreOptions {
  /** Object store bucket. Default "roost_snapshots". */
  bucket?: string;
  /** Replicas when the bucket is created (use the stream's). Default 1. */
  replicas?: number;
  /** Create the bucket when missing. Default true; false opens an existing one or throws. */
  create?: boolean;
  /** Request timeout, ms. Default 10,000 (a put of a large snapshot is many chunks). */
  timeoutMs?: number;
  /** The log's stream (see BaseSnapshotStore.stream). forLog: the log's. */
  stream?: string;
}

/** Snapshots in a JetStream object store (file storage). */
export class SnapshotStore extends BaseSnapshotStore {
  private constructor(
    readonly bucket: string,
    private readonly os: ObjectStore,
    private readonly js: JetStreamClient,
    private readonly chunkBytes: number,
    stream: string | undefined,
  ) {
    super(stream);
  }

  /** Open (by default create) the bucket on a connection; the caller keeps owning `nc`. */
  static async open(nc: NatsConnection, opts: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const bucket = opts.bucket ?? DEFAULT_SNAPSHOT_BUCKET;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const js: JetStreamClient = jetstream(nc, { timeout: timeoutMs });
    let os: ObjectStore;
    try {
      await awaitBucket(nc, bucket, opts.create !== false, opts.replicas ?? 1, timeoutMs);
      os = await new Objm(js).open(bucket, false); // awaitBucket looked it up
    } catch (err) {
      throw new Error(`snapshot bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    }
    // Fewer, larger chunks than the default 128 KiB: a 30 MB snapshot is ~60 publishes.
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    return new SnapshotStore(bucket, os, js, Math.max(64 * 1024, Math.min(CHUNK_BYTES, maxPayload - 1024)), opts.stream);
  }

  /** The store beside a log: its connection, as many replicas as its stream, and its stream's
   *  name (recorded in snapshots, checked on load). */
  static async forLog(log: JetStreamLog, opts: Omit<SnapshotStoreOptions, "replicas"> = {}): Promise<SnapshotStore> {
    const info = await log.info();
    return SnapshotStore.open(log.nc, { stream: log.stream, ...opts, replicas: info.config.num_replicas });
  }

  async putBytes(name: string, bytes: Uint8Array, info: Omit<SnapshotInfo, "name" | "seq" | "size">): Promise<void> {
    const metadata: Record<string, string> = {};
    for (const k of ["eventCount", "stateHash", "createdTs", "tasks"] as const) if (info[k] !== undefined) metadata[k] = String(info[k]);
    await this.os.putBlob({ name, description: info.description, metadata, options: { max_chunk_size: this.chunkBytes } }, bytes);
  }

  /**
   * The object's chunks read with an ordered consumer straight into one buffer, checked against
   * the object's SHA-256 with node:crypto: about 3× faster than getBlob() (a push consumer, a
   * JavaScript SHA-256 and a growing buffer) on a 250 MB snapshot. The layout is the object
   * store's (ADR-20): chunks on `$O.<bucket>.C.<nuid>` in the stream `OBJ_<bucket>`.
   */
  async getBytes(name: string, opts: { shared?: boolean } = {}): Promise<Uint8Array | null> {
    const info = await this.os.info(name);
    if (info === null || info.deleted) return null;
    if (info.options?.link || info.size === 0) return this.os.getBlob(name);
    const out = opts.shared ? Buffer.from(new SharedArrayBuffer(info.size)) : Buffer.allocUnsafe(info.size);
    const sha = createHash("sha256");
    const consumer = await this.js.consumers.get(`OBJ_${this.bucket}`, { filter_subjects: `$O.${this.bucket}.C.${info.nuid}` });
    // A small window: 16 × 512 KiB in flight (much more trips the client's slow-consumer limit).
    const msgs = await consumer.consume({ max_messages: 16 });
    let offset = 0;
    let chunks = 0;
    try {
      for await (const m of msgs) {
        if (offset + m.data.length > out.length) throw new Error(`snapshot ${name}: more bytes than the ${info.size} recorded`);
        out.set(m.data, offset);
        offset += m.data.length;
        sha.update(m.data);
        if (++chunks >= info.chunks) break;
      }
    } finally {
      msgs.stop();
      consumer.delete().catch(() => {});
    }
    if (chunks !== info.chunks || offset !== info.size) {
      throw new Error(`snapshot ${name}: read ${chunks} chunks / ${offset} bytes, the object has ${info.chunks} / ${info.size}`);
    }
    if (!digestMatches(info.digest, sha.digest()))
      throw new Error(`snapshot ${name}: the bytes read do not match the object's SHA-256 (${info.digest})`);
    return out;
  }

  protected async listAll(): Promise<SnapshotInfo[]> {
    // An empty bucket is answered from its stream's info, without os.list(): that first asks the
    // stream for its last metadata message, and while a just-created replicated bucket has no
    // stream leader yet (another replica created it a moment ago) nothing answers: the request
    // waited out the whole timeout (10 s) on the first cold start of a new cluster.
    const jsm = await this.js.jetstreamManager(false);
    if ((await jsm.streams.info(`OBJ_${this.bucket}`)).state.messages === 0) return [];
    const out: SnapshotInfo[] = [];
    for (const o of await this.os.list()) {
      if (o.deleted) continue;
      const seq = snapshotSeqOf(o.name);
      if (seq !== null) out.push(infoOf(o, seq));
    }
    return out;
  }

  async delete(name: string): Promise<void> {
    await this.os.delete(name);
  }
}

/** Object chunk size: fewer publishes than the default 128 KiB, and a read window that stays
 *  well under the client's pending limits. */
const CHUNK_BYTES = 512 * 1024;

/** How long one attempt to create or open the bucket waits for an answer (see awaitBucket). */
const ATTEMPT_MS = 500;

/**
 * Create the bucket unless it exists (when `create`; Objm.create looks it up before it adds it),
 * then look it up until its stream answers. Replicas of a new cluster start at once and race to
 * create it, and on a 3-node nats-server 2.9 a request to a stream that has no leader yet can go
 * unanswered: a create that lost the race waited out the whole 10 s timeout (and open() threw),
 * and the lookup after it (open()'s stream info) ran with the store's own long timeout: the
 * racing replicas' test once timed out at 30 s in CI (2026-12-05, not reproduced; such a lookup
 * of a bucket another replica had just created is the likely wait). So each attempt, create or
 * lookup, waits at most ATTEMPT_MS, until the deadline, and the store opens without a second
 * lookup once one was answered.
 */
async function awaitBucket(nc: NatsConnection, bucket: string, create: boolean, replicas: number, timeoutMs: number): Promise<void> {
  const objm = new Objm(jetstream(nc, { timeout: Math.min(timeoutMs, ATTEMPT_MS) }));
  const deadline = performance.now() + timeoutMs;
  let toCreate = create;
  for (;;) {
    try {
      if (toCreate) {
        await objm.create(bucket, {
          replicas,
          storage: StorageType.File,
          description: "Roost state snapshots (src/storage/snapshotStore.ts)",
        });
        toCreate = false;
      }
      await objm.open(bucket);
      return;
    } catch (err) {
      if ((err as Error).name !== "TimeoutError" || performance.now() >= deadline) throw err;
    }
  }
}

/** The object store's digest ("SHA-256=" + base64url, padded; older writers used hex or std base64). */
function digestMatches(recorded: string, actual: Buffer): boolean {
  if (!recorded.startsWith("SHA-256=")) return false;
  const v = recorded.slice(8);
  const want = /^[0-9a-f]{64}$/i.test(v) ? Buffer.from(v, "hex") : Buffer.from(v.replaceAll("-", "+").replaceAll("_", "/"), "base64");
  return want.length === actual.length && want.equals(actual);
}

function infoOf(o: ObjectInfo, seq: number): SnapshotInfo {
  const md = o.metadata ?? {};
  const n = (k: string) => (md[k] !== undefined && md[k] !== "" && Number.isFinite(Number(md[k])) ? Number(md[k]) : undefined);
  return {
    name: o.name,
    seq,
    size: o.size,
    description: o.description ?? "",
    eventCount: n("eventCount"),
    stateHash: md.stateHash,
    createdTs: n("createdTs"),
    tasks: n("tasks"),
  };
}

/** The same store in memory: for the simulator, tests and the embedded dev cluster. */
export class MemorySnapshotStore extends BaseSnapshotStore {
  private readonly objects = new Map<string, { bytes: Uint8Array; info: SnapshotInfo }>();

  async putBytes(name: string, bytes: Uint8Array, info: Omit<SnapshotInfo, "name" | "seq" | "size">): Promise<void> {
    const seq = snapshotSeqOf(name);
    if (seq === null) throw new Error(`"${name}" is not a snapshot name (snap/<12-digit seq>)`);
    this.objects.set(name, { bytes: bytes.slice(), info: { ...info, name, seq, size: bytes.length } });
  }

  async getBytes(name: string): Promise<Uint8Array | null> {
    return this.objects.get(name)?.bytes.slice() ?? null;
  }

  protected async listAll(): Promise<SnapshotInfo[]> {
    return [...this.objects.values()].map((o) => ({ ...o.info }));
  }

  async delete(name: string): Promise<void> {
    this.objects.delete(name);
  }
}
