// The API's documents, generated from the catalog (v1.ts): one JSON Schema per request and reply,
// the OpenAPI 3.1 document of the HTTP gateway, and the README's API table. `npm run api-docs`
// writes them; test/api.docs.test.ts fails when a shipped file differs from what the catalog
// makes now, so the documents never drift from the code.

import { ApiErrorSchema, ERROR_CODES, HTTP_STATUS } from "./errors.js";
import { API_V1_PREFIX, OPS, type OpDef } from "./v1.js";

/** A schema as plain JSON (TypeBox schemas are JSON Schema already; this drops non-JSON keys). */
function plain(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

function subjectPattern(d: OpDef): string {
  return `${API_V1_PREFIX}${d.scope === "role" ? "<role>" : d.scope}.${d.op}`;
}

/** File name stem of an op's schemas: role.job.create, admin.quota.set, cluster.info. */
function schemaStem(d: OpDef): string {
  return `${d.scope}.${d.op}`;
}

/** path → JSON text, for schemas/api/v1/. */
export function jsonSchemaFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of OPS as readonly OpDef[]) {
    for (const [part, schema] of [
      ["request", d.request],
      ["reply", d.reply],
    ] as const) {
      const doc = {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        $id: `roost/api/v1/${schemaStem(d)}.${part}.json`,
        title: `${subjectPattern(d)} ${part}`,
        description: d.summary,
        ...plain(schema),
      };
      out.set(`${schemaStem(d)}.${part}.json`, `${JSON.stringify(doc, null, 2)}\n`);
    }
  }
  const envelope = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "roost/api/v1/reply.json",
    title: "Every reply: {ok: true, value} or {ok: false, error}",
    oneOf: [
      { type: "object", required: ["ok", "value"], properties: { ok: { const: true }, value: {} }, additionalProperties: false },
      {
        type: "object",
        required: ["ok", "error"],
        properties: { ok: { const: false }, error: plain(ApiErrorSchema) },
        additionalProperties: false,
      },
    ],
  };
  out.set("reply.json", `${JSON.stringify(envelope, null, 2)}\n`);
  return out;
}

/** The HTTP gateway's OpenAPI 3.1 document. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const d of OPS as readonly OpDef[]) {
    const path = d.http.path.replace(/:([A-Za-z]+)/g, "{$1}");
    const params = [...d.http.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const hasBody = d.http.method === "POST" || d.http.method === "PUT" || d.http.method === "DELETE";
    const errors: Record<string, unknown> = {};
    for (const code of ERROR_CODES) {
      const status = String(HTTP_STATUS[code]);
      errors[status] ??= { description: "", content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorReply" } } } };
      const e = errors[status] as { description: string };
      e.description = e.description ? `${e.description}, ${code}` : code;
    }
    paths[path] ??= {};
    paths[path][d.http.method.toLowerCase()] = {
      operationId: `${d.scope}.${d.op}`,
      summary: d.summary,
      description: `Over NATS: request on \`${subjectPattern(d)}\`.${d.write ? " Takes an idempotency `key`: the same key returns the first outcome and changes nothing." : ""}`,
      ...(params.length ? { parameters: params } : {}),
      ...(hasBody && d.op !== "job.kill"
        ? { requestBody: { required: true, content: { "application/json": { schema: plain(d.request) } } } }
        : hasBody
          ? { requestBody: { required: false, content: { "application/json": { schema: plain(d.request) } } } }
          : {}),
      responses: {
        [String(d.http.status ?? 200)]: {
          description: "ok",
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["ok", "value"],
                properties: { ok: { const: true }, value: plain(d.reply) },
              },
            },
          },
        },
        ...errors,
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Roost API",
      version,
      description:
        "The HTTP gateway to Roost's API v1. Every operation is also a NATS request on roost.api.v1.…, with the same request and reply.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        ErrorReply: {
          type: "object",
          required: ["ok", "error"],
          properties: { ok: { const: false }, error: plain(ApiErrorSchema) },
        },
      },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/** The README's API table (markdown), between its api-table markers. */
function apiTable(): string {
  const rows = ["| NATS subject | HTTP | writes | what it does |", "|---|---|---|---|"];
  for (const d of OPS as readonly OpDef[]) {
    rows.push(`| \`${subjectPattern(d)}\` | \`${d.http.method} ${d.http.path}\` | ${d.write ? "yes" : ""} | ${d.summary} |`);
  }
  rows.push("");
  rows.push(
    `Errors: ${ERROR_CODES.map((c) => `\`${c}\` (${HTTP_STATUS[c]})`).join(", ")}. Schemas: \`schemas/api/v1/\`; OpenAPI: \`schemas/openapi.json\`.`,
  );
  return rows.join("\n");
}

const API_TABLE_BEGIN = "<!-- api-table: generated by npm run api-docs; do not edit -->";
const API_TABLE_END = "<!-- /api-table -->";

/** README text with its API table replaced by the current one (unchanged when it has no markers). */
export function withApiTable(readme: string): string {
  const a = readme.indexOf(API_TABLE_BEGIN);
  const b = readme.indexOf(API_TABLE_END);
  if (a < 0 || b < a) return readme;
  return `${readme.slice(0, a + API_TABLE_BEGIN.length)}\n${apiTable()}\n${readme.slice(b)}`;
}
