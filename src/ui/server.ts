// The web UI's server: every scheduler replica runs one (a standby too, read-only, from its own
// fold), and so does `roost ui --nats URL` with only the log reachable. It serves the static app
// (src/ui/static: Preact + htm as browser ES modules, no build step), the vendor modules from
// node_modules, a JSON API over the HistoryService (the same read models as the CLI and the bus,
// at any moment: `?at=SEQ|TIME`), a live feed of the folded head (server-sent events), and the
// replica's Prometheus metrics.
//
// Built on fastify (already the gateway's HTTP framework). It never writes: there is no route
// that changes anything, so serving it from a standby or an SRE's laptop is safe.

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { Registry } from "prom-client";
import { HTTP_STATUS } from "../api/errors.js";
import { historyRefusal } from "../history/serve.js";
import type { HistoryService } from "../history/service.js";
import { AtError, type AtSpec } from "../history/timeMachine.js";
import { mountMetrics } from "../metrics/http.js";

export interface UiServerOptions {
  history: HistoryService;
  listen: { host: string; port: number };
  /** The replica's metrics, served at /metrics. */
  registry?: Registry;
  /** Subscribe to the folded head's advances (a replica's onChange, a follower's). */
  onHead?: (listener: (seq: number) => void) => () => void;
}

export interface UiServer {
  url: string;
  close(): Promise<void>;
}

/** The live feed says at most this often that the head moved. */
const LIVE_EVERY_MS = 250;
/** Comment lines keep idle streams open through proxies. */
const KEEPALIVE_MS = 15_000;

const here = dirname(fileURLToPath(import.meta.url));
/** src/ui/static from src/ui (tsx, tests) or from dist/src/ui (the build). */
const STATIC_DIR =
  [resolve(here, "static"), resolve(here, "../../../src/ui/static")].find((d) => existsSync(join(d, "index.html"))) ??
  resolve(here, "static");

const require = createRequire(import.meta.url);
// Resolved through the packages' exports maps (preact 11 ships dist/preact.mjs and
// hooks/dist/hooks.mjs, and exports no other path; htm exports only its entry points, whose
// ESM build sits next to the CommonJS one that require resolves).
const VENDOR: Record<string, () => string> = {
  "preact.mjs": () => require.resolve("preact"),
  "hooks.mjs": () => require.resolve("preact/hooks"),
  "htm.mjs": () => join(dirname(require.resolve("htm")), "htm.module.js"),
  "elk.js": () => require.resolve("elkjs/lib/elk.bundled.js"),
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
};

function vendorPath(name: string): string | null {
  const find = VENDOR[name];
  if (!find) return null;
  try {
    const p = find();
    return existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

/** Query values as the service takes them: `at`, `from`, offsets and limits as numbers where they are digits. */
function num(v: unknown): number | undefined {
  if (typeof v !== "string" || v === "") return undefined;
  if (!/^\d{1,16}$/.test(v)) throw new AtError(`must be a whole number (got "${v.slice(0, 40)}")`);
  return Number(v);
}

function at(v: unknown): AtSpec {
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string") throw new AtError("at: must be a log sequence or a time");
  return /^\d{1,16}$/.test(v) ? Number(v) : v;
}

/** Control characters (C0 and DEL): never in an id, a search or a filter. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what it is for
const CONTROL = /[\u0000-\u001f\u007f]/;

function str(v: unknown, field: string, max = 256): string | undefined {
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string" || v.length > max || CONTROL.test(v)) {
    throw new AtError(`${field}: must be at most ${max} printable characters`);
  }
  return v;
}

function need(v: unknown, field: string): string {
  const s = str(v, field);
  if (s === undefined) throw new AtError(`${field}: is required`);
  return s;
}

type Q = Record<string, unknown>;

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 512 } });
  const h = o.history;

  const api: Record<string, (q: Q) => Promise<unknown>> = {
    timeline: () => h.timeline(),
    summary: (q) => h.summary({ at: at(q.at) }),
    jobs: (q) => h.jobs({ at: at(q.at), role: str(q.role, "role"), q: str(q.q, "q"), offset: num(q.offset), limit: num(q.limit) }),
    job: (q) => h.job({ at: at(q.at), job: need(q.job, "job") }),
    tasks: (q) =>
      h.tasks({
        at: at(q.at),
        job: str(q.job, "job"),
        state: str(q.state, "state"),
        agent: str(q.agent, "agent"),
        q: str(q.q, "q"),
        offset: num(q.offset),
        limit: num(q.limit),
      }),
    task: (q) => h.task({ at: at(q.at), taskId: need(q.taskId, "taskId") }),
    agents: (q) => h.agents({ at: at(q.at), q: str(q.q, "q"), state: str(q.state, "state"), offset: num(q.offset), limit: num(q.limit) }),
    agent: (q) => h.agent({ at: at(q.at), agentId: need(q.agentId, "agentId") }),
    pending: (q) => h.pending({ at: at(q.at), offset: num(q.offset), limit: num(q.limit) }),
    quotas: (q) => h.quotas({ at: at(q.at) }),
    maintenance: (q) => h.maintenance({ at: at(q.at) }),
    updates: (q) =>
      h.updates({
        at: at(q.at),
        job: str(q.job, "job"),
        role: str(q.role, "role"),
        status: str(q.status, "status"),
        offset: num(q.offset),
        limit: num(q.limit),
      }),
    update: (q) => {
      const updateId = str(q.updateId, "updateId");
      const job = str(q.job, "job");
      if (updateId === undefined && job === undefined) throw new AtError("updateId: is required (or job, for its active or newest update)");
      return h.update({ at: at(q.at), updateId, job, offset: num(q.offset), limit: num(q.limit) });
    },
    log: (q) =>
      h.log({
        at: at(q.at),
        from: num(q.from),
        job: str(q.job, "job"),
        agent: str(q.agent, "agent"),
        task: str(q.task, "task"),
        type: q.type === undefined ? undefined : (Array.isArray(q.type) ? q.type : String(q.type).split(",")).filter(Boolean).map(String),
        limit: num(q.limit),
      }),
    history: (q) => h.history({ kind: need(q.kind, "kind") as "task", id: need(q.id, "id"), from: at(q.from), to: at(q.to) }),
    diff: (q) => h.diff({ from: at(q.from) ?? 0, to: at(q.to) }),
  };

  app.get("/", async (_req, reply) => reply.redirect("/ui/"));
  app.get("/ui", async (_req, reply) => reply.redirect("/ui/"));
  app.get("/ui/", async (_req, reply) => sendFile(reply, join(STATIC_DIR, "index.html")));
  app.get("/ui/vendor/:name", async (req: FastifyRequest<{ Params: { name: string } }>, reply) => {
    const p = vendorPath(req.params.name);
    if (!p) return reply.code(404).send({ error: { code: "NOT_FOUND", message: `no vendor module ${req.params.name}` } });
    return sendFile(reply, p);
  });
  app.get("/ui/api/live", (req, reply) => live(req, reply, o.onHead, h));
  app.get("/ui/api/:op", async (req: FastifyRequest<{ Params: { op: string }; Querystring: Q }>, reply) => {
    const fn = api[req.params.op];
    if (!fn) {
      return reply
        .code(404)
        .send({ error: { code: "NOT_FOUND", message: `no UI API ${req.params.op}; known: ${Object.keys(api).join(", ")}` } });
    }
    try {
      return reply.send(await fn(req.query ?? {}));
    } catch (err) {
      const error = historyRefusal(err as Error);
      return reply.code(HTTP_STATUS[error.code]).send({ error });
    }
  });
  app.get("/ui/*", async (req: FastifyRequest<{ Params: { "*": string } }>, reply) => {
    const rel = req.params["*"];
    const p = resolve(STATIC_DIR, rel);
    // Only files inside the static folder: no "..", no absolute paths.
    if (!p.startsWith(`${STATIC_DIR}/`) || !existsSync(p)) {
      return reply.code(404).send({ error: { code: "NOT_FOUND", message: `no file ${rel.slice(0, 100)}` } });
    }
    return sendFile(reply, p);
  });
  if (o.registry) mountMetrics(app, o.registry);

  await app.listen({ host: o.listen.host, port: o.listen.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : o.listen.port;
  const host = o.listen.host.includes(":") ? `[${o.listen.host}]` : o.listen.host;
  return { url: `http://${host}:${port}/ui/`, close: () => app.close() };
}

function sendFile(reply: FastifyReply, path: string): FastifyReply {
  const type = TYPES[extname(path)] ?? "application/octet-stream";
  return reply.header("Content-Type", type).header("Cache-Control", "no-cache").send(readFileSync(path));
}

/** Server-sent events: `head` with {seq, ts} whenever the folded head moves (at most every 250 ms). */
function live(req: FastifyRequest, reply: FastifyReply, onHead: UiServerOptions["onHead"], h: HistoryService): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" });
  let last = -1;
  let timer: NodeJS.Timeout | null = null;
  const send = async () => {
    timer = null;
    const m = await h.tm.resolve(undefined).catch(() => null);
    if (!m || m.seq === last || res.destroyed) return;
    last = m.seq;
    res.write(`event: head\ndata: ${JSON.stringify(m)}\n\n`);
  };
  const moved = () => {
    if (!timer) timer = setTimeout(() => void send(), LIVE_EVERY_MS);
  };
  void send();
  const unsubscribe = onHead?.(moved) ?? (() => {});
  // Without a head to follow, ask the log now and then.
  const poll = onHead ? null : setInterval(moved, 1000);
  const keepalive = setInterval(() => res.write(": keepalive\n\n"), KEEPALIVE_MS);
  req.raw.on("close", () => {
    unsubscribe();
    if (timer) clearTimeout(timer);
    if (poll) clearInterval(poll);
    clearInterval(keepalive);
  });
}
