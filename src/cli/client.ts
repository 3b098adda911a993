// How the CLI reaches a cluster: over NATS (requests to the leader, log reads from JetStream),
// or over the HTTP gateway of a `roost dev` that runs embedded (no nats-server). When no leader
// answers, reads fall back to folding the log here, so operators can inspect state in an outage.

import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { NoResponderError, subjects, type Reply } from "../bus/bus.js";
import { NatsBus } from "../bus/nats.js";
import { decodeRecord, pack, unpack, type LogRecord } from "../eventlog/envelope.js";
import { openJetStreamLog, type JetStreamLog } from "../eventlog/jetstream.js";
import { foldRecord } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";

export interface ClusterFile {
  mode: "nats" | "embedded";
  nats?: string;
  stream?: string;
  http?: string;
  pid?: number;
  startedAt?: string;
}

export const DEFAULT_CLUSTER_FILE = ".roost/cluster.json";

export class ClientError extends Error {
  override name = "ClientError";
}

export interface ClusterClient {
  readonly where: string;
  /** A request to the leader; rejects with NoResponderError when no leader answers. */
  request<T>(op: string, data: unknown, timeoutMs?: number): Promise<T>;
  /** One record by sequence (null when the log no longer holds it). */
  get(seq: number): Promise<LogRecord | null>;
  /** Log records from `from` to the current end. */
  readLog(from: number): AsyncIterable<LogRecord>;
  followLog(from: number, signal: AbortSignal): AsyncIterable<LogRecord>;
  close(): Promise<void>;
}

/** A NATS URL, or several separated by commas (a cluster's members). */
export function natsServers(url: string): string[] {
  return url.split(",").map((u) => u.trim()).filter((u) => u.length > 0);
}

export function loadClusterFile(path = DEFAULT_CLUSTER_FILE): ClusterFile {
  const p = resolve(path);
  if (!existsSync(p)) {
    throw new ClientError(`no cluster file at ${p}: start one with \`roost dev\`, or pass --nats URL`);
  }
  return JSON.parse(readFileSync(p, "utf8")) as ClusterFile;
}

export async function connectClient(opts: { nats?: string; cluster?: string; stream?: string }): Promise<ClusterClient> {
  const file: ClusterFile = opts.nats ? { mode: "nats", nats: opts.nats } : loadClusterFile(opts.cluster);
  if (file.mode === "embedded") return new HttpClient(file.http!);
  const bus = await NatsBus.connect(natsServers(file.nats!), "roost-cli");
  return new NatsClient(file.nats!, bus, opts.stream ?? file.stream ?? "ROOST");
}

function unwrap<T>(r: Reply<T>): T {
  if (!r || typeof r !== "object" || !("ok" in r)) throw new ClientError("malformed reply from the scheduler");
  if (!r.ok) throw new ClientError(r.error);
  return r.value;
}

export class NatsClient implements ClusterClient {
  private log: JetStreamLog | null = null;
  constructor(
    readonly where: string,
    private readonly bus: NatsBus,
    private readonly stream: string,
  ) {}

  async request<T>(op: string, data: unknown, timeoutMs = 10_000): Promise<T> {
    return unwrap(await this.bus.request<Reply<T>>(subjects.api(op), data, timeoutMs));
  }

  private async openLog(): Promise<JetStreamLog> {
    this.log ??= await openJetStreamLog({ servers: this.where, nc: this.bus.nc, stream: this.stream, create: false });
    return this.log;
  }

  async get(seq: number): Promise<LogRecord | null> {
    return (await this.openLog()).get(seq);
  }

  async *readLog(from: number): AsyncIterable<LogRecord> {
    yield* (await this.openLog()).read(from);
  }

  async *followLog(from: number, signal: AbortSignal): AsyncIterable<LogRecord> {
    yield* (await this.openLog()).follow(from, signal);
  }

  /** The client's NATS connection (for KV and stream reads). */
  get nc() {
    return this.bus.nc;
  }

  async close(): Promise<void> {
    await this.log?.close();
    await this.bus.close();
  }
}

/** Talks to the gateway in cli/gateway.ts. */
class HttpClient implements ClusterClient {
  constructor(readonly where: string) {}

  async request<T>(op: string, data: unknown, timeoutMs = 10_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.where}/bus/${subjects.api(op)}`, {
        method: "POST",
        body: pack(data),
        headers: { "content-type": "application/msgpack", "x-timeout-ms": String(timeoutMs) },
        signal: AbortSignal.timeout(timeoutMs + 1000),
      });
    } catch (err) {
      throw new NoResponderError(`cannot reach the dev cluster at ${this.where}: ${(err as Error).message}`);
    }
    if (res.status === 503) throw new NoResponderError(await res.text());
    if (!res.ok) throw new ClientError(await res.text());
    return unwrap(unpack<Reply<T>>(new Uint8Array(await res.arrayBuffer())));
  }

  private async page(from: number, wait: boolean, signal?: AbortSignal): Promise<Array<[number, Uint8Array]>> {
    const res = await fetch(`${this.where}/log?from=${from}${wait ? "&wait=1" : ""}`, { signal });
    if (!res.ok) throw new ClientError(await res.text());
    return unpack<Array<[number, Uint8Array]>>(new Uint8Array(await res.arrayBuffer()));
  }

  async get(seq: number): Promise<LogRecord | null> {
    const page = await this.page(seq, false);
    return page.length && page[0][0] === seq ? { seq, events: decodeRecord(page[0][1]) } : null;
  }

  async *readLog(from: number): AsyncIterable<LogRecord> {
    for (;;) {
      const page = await this.page(from, false);
      if (page.length === 0) return;
      for (const [seq, data] of page) yield { seq, events: decodeRecord(data) };
      from = page[page.length - 1][0] + 1;
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
      if (page.length) from = page[page.length - 1][0] + 1;
    }
  }

  async close(): Promise<void> {}
}

/** Fold the whole log here: the read path that needs no leader. */
export async function foldLocally(client: ClusterClient): Promise<ClusterState> {
  const state = new ClusterState();
  for await (const r of client.readLog(1)) foldRecord(state, r.seq, r.events);
  return state;
}
