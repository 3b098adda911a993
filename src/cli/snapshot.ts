// `roost snapshot list`, `verify` and `write`: the snapshots in the cluster's object store, whether
// one equals the fold of the log from genesis up to the sequence it covers, and a new one written
// by an operator.
//
//   roost snapshot list [--json]
//   roost snapshot verify [--name snap/000000001234] [--json]     exit 1 unless it matches
//   roost snapshot write [--at SEQ|TIME] [--json]                 the state at that moment (default:
//                                                                 the end of the log), stored
//
// Why `write`: schedulers write snapshots themselves (a standby, or a leader with none), but a
// leader with no standby does not encode a large state (src/actors/snapshotWriter.ts: that pause
// once cost it its lease), so a lone scheduler's cell gets its snapshots from this command, run
// by an operator or a timer. It needs no leader: it folds the log from the newest snapshot at or
// before the moment (checked) as `roost replay --at` does, then stores the bytes only after they
// decode to their own state hash (the writer's check), and keeps the newest 3 as schedulers do.
//
// Both reach the cluster as the other commands do (.roost/cluster.json, or --nats URL) and open
// their own NATS connection for the log and the object store. An embedded `roost dev` keeps no
// snapshots (its log lives in memory).

import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Command } from "commander";
import { resolveCreds } from "../bus/creds.js";
import { type JetStreamLog, openJetStreamLog } from "../eventlog/jetstream.js";
import { foldRecord } from "../replay/fold.js";
import { stateHash } from "../replay/hash.js";
import { encodeSnapshotWithHeader, readSnapshot, SnapshotError } from "../replay/snapshot.js";
import { ClusterState } from "../replay/state.js";
import { DEFAULT_SNAPSHOT_BUCKET, type SnapshotInfo, SnapshotStore } from "../storage/snapshotStore.js";
import { cliConnectOptions, connectClient, loadClusterFile, natsServers } from "../client/transport.js";
import { type AtSpec, TimeMachine } from "../history/timeMachine.js";
import { atArg } from "./atArg.js";

export interface SnapshotOptions {
  json?: boolean;
  nats?: string;
  cluster?: string;
  stream?: string;
  bucket?: string;
  creds?: string;
  /** --timeout, seconds: bounds reaching NATS and opening the log and the store. */
  timeout?: number;
}

interface VerifyReport {
  name: string;
  seq: number;
  eventCount: number;
  /** The hash recorded in the snapshot (and, when it decodes, of the state it decodes to). */
  snapshotHash: string | null;
  /** stateHash of the log folded from genesis through `seq`. */
  logHash: string | null;
  match: boolean;
  /** Why there is no match beyond the hashes: the snapshot does not decode, the log is short. */
  problem?: string;
  /** Time to decode the snapshot and fold the log through its seq, ms. */
  ms: number;
}

/** Connect as the other commands do; snapshots need the NATS mode. */
async function openCluster(
  o: SnapshotOptions,
  storeOptional = false,
): Promise<{ nc: NatsConnection; log: JetStreamLog; store: SnapshotStore }> {
  const opts = cliConnectOptions(o);
  const client = await connectClient(opts);
  const where = client.where;
  await client.close();
  if (/^https?:/i.test(where)) {
    throw new Error(
      `snapshots are not available on an embedded dev cluster (${where}): its log lives in memory; run \`roost dev\` with nats-server`,
    );
  }
  const file = o.nats ? undefined : loadClusterFile(o.cluster);
  const stream = o.stream ?? file?.stream ?? "ROOST";
  const servers = natsServers(where);
  const creds = resolveCreds(o.creds, file?.creds);
  const nc = await connect({
    servers,
    name: "roost-snapshot",
    timeout: opts.timeoutMs,
    maxReconnectAttempts: opts.maxReconnectAttempts,
    ...creds?.connectOptions(),
  });
  try {
    const log = await openJetStreamLog({ servers, nc, stream, create: false, readyTimeoutMs: opts.timeoutMs });
    // The stream, so that a snapshot of another stream in the bucket is never taken for this one's,
    // and one written here names its stream (as a scheduler's does).
    const opened = SnapshotStore.open(nc, { bucket: o.bucket ?? DEFAULT_SNAPSHOT_BUCKET, create: false, stream });
    // A log without a snapshot bucket still folds (from genesis): the history commands go on.
    const store = storeOptional ? await opened.catch(() => undefined) : await opened;
    return { nc, log, store: store as SnapshotStore };
  } catch (err) {
    await nc.close().catch(() => {});
    throw err;
  }
}

export async function withCluster<T>(o: SnapshotOptions, fn: (c: { log: JetStreamLog; store: SnapshotStore }) => Promise<T>): Promise<T>;
export async function withCluster<T>(
  o: SnapshotOptions,
  fn: (c: { log: JetStreamLog; store: SnapshotStore | undefined }) => Promise<T>,
  storeOptional: true,
): Promise<T>;
export async function withCluster<T>(
  o: SnapshotOptions,
  fn: (c: { log: JetStreamLog; store: SnapshotStore }) => Promise<T>,
  storeOptional = false,
): Promise<T> {
  const c = await openCluster(o, storeOptional);
  try {
    return await fn(c);
  } finally {
    await c.log.close();
    await c.nc.drain().catch(() => c.nc.close());
  }
}

function formatList(list: SnapshotInfo[]): string {
  if (list.length === 0) return "no snapshots";
  const rows = list.map((s) => [
    s.name,
    String(s.seq),
    s.eventCount === undefined ? "" : String(s.eventCount),
    s.tasks === undefined ? "" : String(s.tasks),
    `${(s.size / 2 ** 20).toFixed(1)} MiB`,
    s.createdTs === undefined ? "" : new Date(s.createdTs).toISOString(),
    s.stateHash?.slice(0, 16) ?? "",
  ]);
  const head = ["NAME", "SEQ", "EVENTS", "TASKS", "SIZE", "CREATED", "STATE HASH"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Fold the log from genesis through `seq` (the log must reach it). */
async function foldThrough(log: JetStreamLog, seq: number): Promise<ClusterState> {
  const state = new ClusterState();
  if (seq <= 0) return state;
  for await (const r of log.read(1)) {
    foldRecord(state, r.seq, r.events);
    if (r.seq >= seq) break;
  }
  return state;
}

async function verifySnapshot(log: JetStreamLog, store: SnapshotStore, name?: string): Promise<VerifyReport> {
  let info: SnapshotInfo | undefined;
  const list = await store.list();
  if (name === undefined) {
    info = list[0];
    if (!info) throw new Error(`no snapshots in bucket ${store.bucket}`);
  } else {
    info = list.find((s) => s.name === name);
    if (!info) throw new Error(`no snapshot named ${name} in bucket ${store.bucket} (roost snapshot list shows them)`);
  }
  const bytes = await store.getBytes(info.name);
  if (bytes === null) throw new Error(`snapshot ${info.name} vanished while being read`);
  const t0 = performance.now();
  let snapshotHash: string | null = info.stateHash ?? null;
  let problem: string | undefined;
  let seq = info.seq;
  let eventCount = info.eventCount ?? 0;
  try {
    const { header } = readSnapshot(bytes); // throws unless it decodes to its recorded hash
    snapshotHash = header.stateHash;
    seq = header.seq;
    eventCount = header.eventCount;
    if (header.seq !== info.seq) problem = `its name says seq ${info.seq}, its header ${header.seq}`;
  } catch (err) {
    if (!(err instanceof SnapshotError)) throw err;
    problem = `the snapshot does not decode: ${err.message}`;
  }
  const last = await log.lastSeq();
  let logHash: string | null = null;
  if (last < seq) {
    problem ??= `the log ends at seq ${last}, before the snapshot's ${seq}`;
  } else {
    const folded = await foldThrough(log, seq);
    logHash = stateHash(folded);
  }
  const match = problem === undefined && snapshotHash !== null && snapshotHash === logHash;
  return {
    name: info.name,
    seq,
    eventCount,
    snapshotHash,
    logHash,
    match,
    ...(problem ? { problem } : {}),
    ms: Math.round(performance.now() - t0),
  };
}

interface WriteReport {
  name: string;
  seq: number;
  eventCount: number;
  tasks: number;
  bytes: number;
  /** Building the state: the newest snapshot at or before the moment, then the log to it, ms. */
  foldMs: number;
  encodeMs: number;
  /** The writer's check (the bytes decode to their header's state hash), ms. */
  checkMs: number;
  writeMs: number;
  /** Older snapshots removed (the newest 3 are kept). */
  pruned: string[];
}

async function writeSnapshot(log: JetStreamLog, store: SnapshotStore, at: AtSpec): Promise<WriteReport> {
  const tm = new TimeMachine({ log, store, progress: (m) => process.stderr.write(`roost: ${m}\n`) });
  const { seq } = await tm.resolve(at);
  if (seq === 0)
    throw new Error(
      at === undefined
        ? "the log is empty: there is no state to snapshot"
        : "at: the moment is before the first record of the log: there is no state to snapshot",
    );
  const t0 = performance.now();
  const state = await tm.stateAt(seq);
  const t1 = performance.now();
  const encoded = encodeSnapshotWithHeader(state, { createdTs: Date.now(), stream: store.stream });
  const encodeMs = performance.now() - t1;
  const put = await store.putEncoded(encoded); // checked before it is stored
  const pruned = await store.prune(3);
  return {
    name: put.name,
    seq,
    eventCount: encoded.header.eventCount,
    tasks: encoded.header.tasks,
    bytes: encoded.bytes.length,
    foldMs: Math.round(t1 - t0),
    encodeMs: Math.round(encodeMs),
    checkMs: Math.round(put.checkMs),
    writeMs: Math.round(put.writeMs),
    pruned,
  };
}

/** Adds `roost snapshot list|verify|write` to the program; `withClusterOptions` adds the options every
 *  cluster command takes (--json, --nats, --cluster). */
export function registerSnapshotCommand(program: Command, withClusterOptions: (c: Command) => Command): void {
  const snapshot = program.command("snapshot").description("state snapshots in the JetStream object store");
  const withOptions = (c: Command) =>
    withClusterOptions(c)
      .option("--stream <name>", "JetStream stream holding the log (default: the cluster file's, or ROOST)")
      .option("--bucket <name>", "object store bucket holding the snapshots", DEFAULT_SNAPSHOT_BUCKET);

  withOptions(snapshot.command("list").description("list snapshots, newest first: the sequence each covers, events, tasks, size")).action(
    async (o: SnapshotOptions) => {
      await withCluster(o, async ({ store }) => {
        const list = await store.list();
        console.log(o.json ? JSON.stringify(list, null, 2) : formatList(list));
      });
    },
  );

  withOptions(
    snapshot
      .command("verify")
      .description("check that a snapshot (default: the newest) equals the fold of the log from genesis to its sequence"),
  )
    .option("--name <name>", "the snapshot to check, e.g. snap/000000001234 (default: the newest)")
    .action(async (o: SnapshotOptions & { name?: string }) => {
      const r = await withCluster(o, ({ log, store }) => verifySnapshot(log, store, o.name));
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.log(
          `${r.match ? "match" : "MISMATCH"}: ${r.name} (seq ${r.seq}, ${r.eventCount} events)\n` +
            `  snapshot state hash  ${r.snapshotHash ?? "(none)"}\n` +
            `  log fold state hash  ${r.logHash ?? "(none)"}` +
            (r.problem ? `\n  ${r.problem}` : ""),
        );
      }
      if (!r.match) process.exitCode = 1;
    });

  withOptions(
    snapshot
      .command("write")
      .description(
        "write a snapshot of the state at a moment (default: the end of the log), folded from the newest snapshot before it; no leader needed",
      ),
  )
    .option("--at <seq|time>", "the moment: a log sequence, or a time (the last record written at or before it)", atArg)
    .action(async (o: SnapshotOptions & { at?: AtSpec }) => {
      const r = await withCluster(o, ({ log, store }) => writeSnapshot(log, store, o.at));
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else
        console.log(
          `wrote ${r.name}: seq ${r.seq}, ${r.eventCount} events, ${r.tasks} tasks, ${(r.bytes / 2 ** 20).toFixed(1)} MiB ` +
            `(state built in ${r.foldMs} ms, encoded in ${r.encodeMs}, checked in ${r.checkMs}, stored in ${r.writeMs})` +
            (r.pruned.length ? `; removed ${r.pruned.join(", ")} (the newest 3 are kept)` : ""),
        );
    });
}
