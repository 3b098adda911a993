// The bus over core NATS (transport-node v3).

import { connect, headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { pack, unpack } from "../eventlog/envelope.js";
import { type Bus, type Handler, NoResponderError, type RequestMeta, type ServeOptions } from "./bus.js";
import type { Creds } from "./creds.js";

/** A request with this Content-Type header is JSON, and so is its reply; without it, MessagePack. */
const JSON_TYPE = "application/json";
const textDecoder = new TextDecoder("utf-8", { fatal: true });
const textEncoder = new TextEncoder();

export class NatsBus implements Bus {
  private constructor(
    readonly nc: NatsConnection,
    private readonly owned: boolean,
  ) {}

  static async connect(servers: string | string[], name: string, creds?: Creds): Promise<NatsBus> {
    // No async stack traces: the client would build two Errors per request (a launch, a kill) to
    // point a failure at its caller; request() names the subject instead (see openJetStreamLog).
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        noAsyncTraces: true,
        ...creds?.connectOptions(),
      });
    } catch (err) {
      // The client's own message names no server: `roost scheduler` and `roost agent` said only
      // "roost: connection refused".
      const where = Array.isArray(servers) ? servers.join(",") : servers;
      throw new Error(`cannot reach NATS at ${where}: ${(err as Error).message}`, { cause: err });
    }
    return new NatsBus(nc, true);
  }

  static over(nc: NatsConnection): NatsBus {
    return new NatsBus(nc, false);
  }

  async request<T>(subject: string, data: unknown, timeoutMs = 5000): Promise<T> {
    try {
      const m = await this.nc.request(subject, pack(data), { timeout: timeoutMs });
      return unpack<T>(m.data);
    } catch (err) {
      const e = err as Error & { isNoResponders?: () => boolean };
      if (e.isNoResponders?.() === true || /no responders|503/i.test(`${e.name} ${e.message}`))
        throw new NoResponderError(`${subject}: ${e.message}`, false);
      if (/timeout/i.test(`${e.name} ${e.message}`)) throw new NoResponderError(`${subject}: ${e.message}`, true);
      throw err;
    }
  }

  publish(subject: string, data: unknown): void {
    if (this.nc.isClosed() || this.nc.isDraining()) return;
    try {
      this.nc.publish(subject, pack(data));
    } catch {
      // closed or draining in the meantime: a publish is fire-and-forget
    }
  }

  serve(subject: string, handler: Handler, opts: ServeOptions = {}): () => void {
    const sub = this.nc.subscribe(subject, {
      ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
      callback: (err, msg) => {
        if (err) return;
        if (opts.ignore?.(msg.subject)) return;
        const json = msg.headers?.get("Content-Type") === JSON_TYPE;
        const meta: RequestMeta = { json, bytes: msg.data.length };
        let data: unknown = null;
        if (opts.maxBytes !== undefined && msg.data.length > opts.maxBytes) meta.tooLarge = true;
        else if (msg.data.length) {
          try {
            data = json ? JSON.parse(textDecoder.decode(msg.data)) : unpack(msg.data);
          } catch (e) {
            meta.decodeError = `the request is not valid ${json ? "JSON" : "MessagePack"}: ${(e as Error).message}`;
          }
        }
        void Promise.resolve()
          .then(() => handler(data, msg.subject, meta))
          .then(
            (reply) => respond(msg, reply ?? null, json),
            (e: Error) => respond(msg, { ok: false, error: e.message }, json),
          );
      },
    });
    return () => sub.unsubscribe();
  }

  private readonly reconnectListeners = new Set<() => void>();
  private watchingStatus = false;

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    if (!this.watchingStatus) {
      this.watchingStatus = true;
      void (async () => {
        // "reconnect" comes once the new connection is up and its subscriptions are sent again.
        for await (const s of this.nc.status()) {
          if (s.type !== "reconnect") continue;
          for (const l of [...this.reconnectListeners]) {
            try {
              l();
            } catch {
              // a listener's failure is its own
            }
          }
        }
      })().catch(() => {});
    }
    return () => this.reconnectListeners.delete(listener);
  }

  private closing: Promise<void> | null = null;

  /**
   * Drain (subscriptions finish what they hold, then the connection closes), at most drainMs;
   * a connection that cannot drain (the server is gone, or it is draining already) is closed.
   * Never rejects, and a second call waits for the first.
   */
  close(drainMs = 2000): Promise<void> {
    if (!this.owned || this.nc.isClosed()) return this.closing ?? Promise.resolve();
    this.closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const drained = this.nc.drain();
        drained.catch(() => {}); // it may settle after the race is lost
        await Promise.race([
          drained,
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("drain timed out")), drainMs))),
        ]);
      } catch {
        await this.nc.close().catch(() => {});
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.closing;
  }
}

/** A reply to a request that may outlive the connection (closed or draining while it was handled). */
function respond(
  msg: { reply?: string; respond(data: Uint8Array, opts?: { headers?: MsgHdrs }): boolean },
  value: unknown,
  json: boolean,
): void {
  if (!msg.reply) return;
  try {
    if (json) {
      const h = headers();
      h.set("Content-Type", JSON_TYPE);
      msg.respond(textEncoder.encode(JSON.stringify(value)), { headers: h });
    } else msg.respond(pack(value));
  } catch {
    // the connection closed meanwhile: the requester times out and retries
  }
}
