// The SRE's reads on the bus: roost.api.v1.cluster.{history,replay,diff,why,inspect,verify,export},
// answered by EVERY replica from its own fold (a NATS queue group: one member answers each), so
// they work while no leader is up, which is when they are needed. The leader's API leaves these
// subjects alone (actors/api.ts). The gateway's /v1/cluster/<op> routes send them here too.
//
// Every request is checked against the op's schema in the catalog (api/v1.ts) before anything
// is read: the same checker, and the same refusal naming the field and the rule, as the leader's.

import { ApiError, type ErrorCode, invalidRequest } from "../api/errors.js";
import { API_V1_PREFIX, HISTORY_OPS, OPS, type OpDef } from "../api/v1.js";
import type { Bus } from "../bus/bus.js";
import { checker, type Problem } from "../domain/validate.js";
import type { EventItem } from "../replay/eventScope.js";
import type { Logger } from "../util/logger.js";
import { type HistoryService, NotFoundError } from "./service.js";
import { AtError, type AtSpec, BusyError } from "./timeMachine.js";

/** The queue group the replicas answer the SRE's reads in. */
const QUEUE = "roost-history";
/** Events per export page unless the request says. */
const EXPORT_PAGE = 1000;

const MAX_REQUEST_BYTES = 1024 * 1024 - 1;

type Req = Record<string, unknown>;

async function answer(h: HistoryService, op: string, r: Req): Promise<unknown> {
  const at = r.at as AtSpec;
  switch (op) {
    case "history":
      return h.history({ kind: r.kind as "task", id: r.id as string, from: r.from as AtSpec, to: r.to as AtSpec });
    case "replay":
      return h.replay({ at });
    case "diff":
      return h.diff({ from: r.from as AtSpec, to: r.to as AtSpec });
    case "why":
      return h.why({ taskId: r.taskId as string, at });
    case "inspect":
      return h.inspect({ kind: r.kind as "task", id: r.id as string, at, graph: r.graph as "dot" | undefined });
    case "verify":
      return h.verify();
    case "export": {
      const limit = (r.limit as number | undefined) ?? EXPORT_PAGE;
      const items: EventItem[] = [];
      let next: number | null = null;
      for await (const item of h.export({ from: r.from as AtSpec, to: r.to as AtSpec })) {
        // A page ends between records, never inside one.
        if (items.length >= limit && item.seq !== items[items.length - 1]!.seq) {
          next = item.seq;
          break;
        }
        items.push(item);
      }
      return { items, next };
    }
  }
  throw new ApiError("INVALID_REQUEST", `unknown operation "${op}"`);
}

/** What went wrong with a history read, as the API says it (the bus's reply, the UI's JSON error). */
export function historyRefusal(err: Error): { code: ErrorCode; message: string; field?: string } {
  if (err instanceof ApiError) return err.body();
  if (err instanceof NotFoundError) return { code: "NOT_FOUND", message: err.message, field: err.field };
  if (err instanceof BusyError) return { code: "UNAVAILABLE", message: err.message };
  if (err instanceof AtError) {
    const field = /^(\w+):/.exec(err.message)?.[1];
    return { code: "INVALID_REQUEST", message: err.message, ...(field ? { field } : {}) };
  }
  return { code: "UNAVAILABLE", message: `could not read the log: ${err.message}` };
}

/** Serve the SRE's reads on the bus until the returned function is called. */
export function serveHistory(bus: Bus, h: HistoryService, log: Logger): () => void {
  const defs = (OPS as readonly OpDef[]).filter((d) => d.scope === "cluster" && HISTORY_OPS.has(d.op));
  const stops = defs.map((def) => {
    const check = checker(def.request);
    return bus.serve(
      `${API_V1_PREFIX}cluster.${def.op}`,
      async (data, _subject, meta) => {
        try {
          if (meta.tooLarge)
            throw new ApiError("TOO_LARGE", `the request is ${meta.bytes} bytes; rule: at most ${MAX_REQUEST_BYTES} bytes`);
          if (meta.decodeError !== undefined) throw new ApiError("INVALID_REQUEST", meta.decodeError);
          const req = (data ?? {}) as Req;
          const problems: Problem[] = check(req);
          if (problems.length > 0) {
            throw invalidRequest(def.op, problems);
          }
          return { ok: true, value: await answer(h, def.op, req) };
        } catch (err) {
          const error = historyRefusal(err as Error);
          if (error.code === "UNAVAILABLE" && !(err instanceof BusyError))
            log.warn({ op: def.op, err: (err as Error).message }, "history read failed");
          return { ok: false, error };
        }
      },
      { maxBytes: MAX_REQUEST_BYTES, queue: QUEUE },
    );
  });
  return () => {
    for (const s of stops) s();
  };
}
