// GET /v1/events and GET /v1/roles/:role/events: the event stream over HTTP. With
// `Accept: text/event-stream` it is server-sent events, followed for as long as the client stays
// (each event `id: <seq>.<index>`, so a browser's EventSource resumes after a drop with
// Last-Event-ID); otherwise one JSON page, like every other route. The filter is the query:
// ?from=SEQ|TIME&job=&role=&agent=&type=A,B&limit=&waitMs=.
//
// It asks the leader's event feed (actors/eventFeed.ts) a page at a time, each a long poll, so an
// idle stream costs one request per 20 s; a comment line every page keeps proxies from closing it.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, type ApiErrorBody, invalidRequest } from "../api/errors.js";
import { EVENTS_FOLLOW_WAIT_MS } from "../api/requests.js";
import { API_V1_PREFIX, type OpDef } from "../api/v1.js";
import { checker } from "../domain/validate.js";

/** What the event routes need of the gateway (http.ts). */
export interface EventRoutesContext {
  request(subject: string, body: unknown, timeoutMs: number): Promise<unknown>;
  timeoutMs: number;
  /** The subject's scope for this caller: its role's for a role's identity, else as routed. Throws an ApiError. */
  scope(req: FastifyRequest, def: OpDef, role: string | null): string;
  refuse(reply: FastifyReply, e: ApiErrorBody): FastifyReply;
  send(reply: FastifyReply, status: number, body: unknown): FastifyReply;
}

type Page = { events: Array<{ seq: number; index: number; type: string }>; next: number; lastSeq: number };

/** The query as a request: numbers as numbers, `type` as a list. Unknown keys stay (the schema refuses them). */
function requestOfQuery(q: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(q)) {
    if (typeof v !== "string") {
      out[k] = v;
      continue;
    }
    if ((k === "limit" || k === "waitMs" || k === "from") && /^\d{1,16}$/.test(v)) out[k] = Number(v);
    else if (k === "type") out[k] = v.split(",").filter((t) => t !== "");
    else out[k] = v;
  }
  return out;
}

export function registerEventRoutes(app: FastifyInstance, defs: readonly OpDef[], ctx: EventRoutesContext): void {
  for (const def of defs) {
    const check = checker(def.request);
    app.get(def.http.path, async (req: FastifyRequest, reply: FastifyReply) => {
      let subject: string;
      let body: Record<string, unknown>;
      try {
        const params = req.params as Record<string, string>;
        const role = def.scope === "role" ? (params.role ?? null) : null;
        body = requestOfQuery((req.query ?? {}) as Record<string, unknown>);
        const problems = check(body);
        if (problems.length > 0) {
          throw invalidRequest("events", problems);
        }
        subject = `${API_V1_PREFIX}${ctx.scope(req, def, role)}.events`;
      } catch (err) {
        if (err instanceof ApiError) return ctx.refuse(reply, err.body());
        throw err;
      }
      if (!String(req.headers.accept ?? "").includes("text/event-stream")) {
        const r = await ask(ctx, subject, body, (body.waitMs as number | undefined) ?? 0);
        if ("error" in r) return ctx.refuse(reply, r.error);
        return ctx.send(reply, 200, { ok: true, value: r.value });
      }
      return stream(ctx, req, reply, subject, body);
    });
  }
}

async function ask(
  ctx: EventRoutesContext,
  subject: string,
  body: unknown,
  waitMs: number,
): Promise<{ value: Page } | { error: ApiErrorBody }> {
  let r: unknown;
  try {
    r = await ctx.request(subject, body, ctx.timeoutMs + waitMs);
  } catch (err) {
    return { error: { code: "UNAVAILABLE", message: `no scheduler answered ${subject}: ${(err as Error).message}` } };
  }
  const res = r as { ok?: boolean; value?: Page; error?: ApiErrorBody } | null;
  if (res?.ok === true && res.value) return { value: res.value };
  return { error: res?.error ?? { code: "UNAVAILABLE", message: "the scheduler's reply was malformed" } };
}

/** Server-sent events until the client goes away; a refusal or a lost leader ends the stream with an `error` event. */
async function stream(
  ctx: EventRoutesContext,
  req: FastifyRequest,
  reply: FastifyReply,
  subject: string,
  body: Record<string, unknown>,
): Promise<void> {
  // Resume after the last event the client saw: Last-Event-ID is "<seq>.<index>".
  const last = /^(\d{1,16})\.(\d{1,6})$/.exec(String(req.headers["last-event-id"] ?? ""));
  let from: number | string = last ? Number(last[1]) : ((body.from as number | string | undefined) ?? 1);
  const skipThrough = last ? { seq: Number(last[1]), index: Number(last[2]) } : null;
  let gone = false;
  req.raw.on("close", () => {
    gone = true;
  });
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
  out.write(": roost events\n\n");
  while (!gone) {
    const r = await ask(ctx, subject, { ...body, from, waitMs: EVENTS_FOLLOW_WAIT_MS }, EVENTS_FOLLOW_WAIT_MS);
    if (gone) break;
    if ("error" in r) {
      out.write(`event: error\ndata: ${JSON.stringify(r.error)}\n\n`);
      break;
    }
    for (const e of r.value.events) {
      if (skipThrough && (e.seq < skipThrough.seq || (e.seq === skipThrough.seq && e.index <= skipThrough.index))) continue;
      out.write(`id: ${e.seq}.${e.index}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    }
    if (r.value.events.length === 0) out.write(": waiting\n\n");
    from = r.value.next;
  }
  out.end();
}
