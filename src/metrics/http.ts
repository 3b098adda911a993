// GET /metrics over HTTP, for Prometheus (ops/prometheus/prometheus.yml). Two ways:
// mountMetrics adds the route to a fastify app a process already serves (the scheduler replica's
// HTTP port), serveMetrics listens on a port of its own (`roost agent --metrics host:port`).
//
// fastify, as the gateway (src/gateway/http.ts): one HTTP stack in the project. The body and its
// Content-Type come from the registry (text exposition format 0.0.4), so Prometheus parses what
// prom-client wrote. A scrape reads the folded state in collect() callbacks and may ask the log
// for its last sequence: it is async, and an error in it is a 500 with the reason, never a crash.

import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";

/** Add GET /metrics to `app`, answered from `registry`. */
export function mountMetrics(app: FastifyInstance, registry: Registry): void {
  app.get("/metrics", async (_req, reply) => {
    try {
      const body = await registry.metrics();
      return reply.code(200).header("content-type", registry.contentType).send(body);
    } catch (err) {
      return reply
        .code(500)
        .header("content-type", "text/plain; charset=utf-8")
        .send(`collecting metrics failed: ${(err as Error).message}\n`);
    }
  });
}

/** Serve `registry` on GET /metrics at host:port (port 0: any free port); resolves with the URL and a close(). */
export async function serveMetrics(
  listen: { host: string; port: number },
  registry: Registry,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  mountMetrics(app, registry);
  await app.listen({ host: listen.host, port: listen.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : listen.port;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  return { url: `http://${host}:${port}/metrics`, close: () => app.close() };
}
