// The bus over core NATS (transport-node v3).

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pack, unpack } from "../eventlog/envelope.js";
import { NoResponderError, type Bus, type Handler } from "./bus.js";

export class NatsBus implements Bus {
  private constructor(
    readonly nc: NatsConnection,
    private readonly owned: boolean,
  ) {}

  static async connect(servers: string | string[], name: string): Promise<NatsBus> {
    const nc = await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
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
      const e = err as Error;
      if (/no responders|timeout|TIMEOUT|503/i.test(`${e.name} ${e.message}`)) {
        throw new NoResponderError(`${subject}: ${e.message}`);
      }
      throw err;
    }
  }

  publish(subject: string, data: unknown): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(subject, pack(data));
  }

  serve(subject: string, handler: Handler): () => void {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let data: unknown;
        try {
          data = msg.data.length ? unpack(msg.data) : null;
        } catch (e) {
          if (msg.reply) msg.respond(pack({ ok: false, error: `request is not valid MessagePack: ${(e as Error).message}` }));
          return;
        }
        void Promise.resolve()
          .then(() => handler(data, msg.subject))
          .then(
            (reply) => {
              if (msg.reply) msg.respond(pack(reply ?? null));
            },
            (e: Error) => {
              if (msg.reply) msg.respond(pack({ ok: false, error: e.message }));
            },
          );
      },
    });
    return () => sub.unsubscribe();
  }

  async close(): Promise<void> {
    if (this.owned && !this.nc.isClosed()) await this.nc.drain();
  }
}
