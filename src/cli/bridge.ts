// The loopback bridge of an embedded `roost dev` (no nats-server): other `roost` commands reach
// the in-process bus and log through it. Loopback only.
//   POST /bus/<subject>   body: MessagePack request → MessagePack reply (503: no responder)
//   GET  /log?from=N      MessagePack [[seq, recordBytes], …], at most 1,000 records;
//                         &wait=1 waits (up to 20 s) for a record when there is none yet

import { createServer, type Server } from "node:http";
import { type Bus, NoResponderError } from "../bus/bus.js";
import { pack, unpack } from "../eventlog/envelope.js";
import type { MemoryLog } from "../eventlog/memory.js";

export async function startBridge(bus: Bus, log: MemoryLog): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const fail = (code: number, msg: string) => {
      res.writeHead(code, { "content-type": "text/plain" });
      res.end(msg);
    };
    if (req.method === "POST" && url.pathname.startsWith("/bus/")) {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let data: unknown;
        try {
          data = chunks.length ? unpack(Buffer.concat(chunks)) : null;
        } catch (err) {
          return fail(400, `request body is not MessagePack: ${(err as Error).message}`);
        }
        const timeout = Number(req.headers["x-timeout-ms"] ?? 10_000);
        bus.request(url.pathname.slice(5), data, timeout).then(
          (reply) => {
            res.writeHead(200, { "content-type": "application/msgpack" });
            res.end(pack(reply));
          },
          (err: Error) => fail(err instanceof NoResponderError ? 503 : 500, err.message),
        );
      });
      return;
    }
    if (req.method === "GET" && url.pathname === "/log") {
      const from = Math.max(1, Number(url.searchParams.get("from") ?? 1) || 1);
      const send = () => {
        const page: Array<[number, Uint8Array]> = [];
        for (let s = from; s <= log.length && page.length < 1000; s++) page.push([s, log.raw(s)!]);
        res.writeHead(200, { "content-type": "application/msgpack" });
        res.end(pack(page));
      };
      if (from <= log.length || url.searchParams.get("wait") !== "1") return send();
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 20_000);
      req.on("close", () => ac.abort());
      void (async () => {
        for await (const _ of log.follow(from, ac.signal)) break;
        clearTimeout(timer);
        if (!res.destroyed) send();
      })();
      return;
    }
    fail(404, `no such endpoint: ${req.method} ${url.pathname}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
