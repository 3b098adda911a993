// `npm run api-docs`: writes the API's JSON Schemas (schemas/api/v1/), its OpenAPI document
// (schemas/openapi.json) and the README's API table from the catalog in src/api/v1.ts.
// test/api.docs.test.ts fails when what is shipped differs from what this would write.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { jsonSchemaFiles, openApiDocument, withApiTable } from "../src/api/docs.js";

const root = join(import.meta.dirname, "..");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
const dir = join(root, "schemas", "api", "v1");
mkdirSync(dir, { recursive: true });
const files = jsonSchemaFiles();
for (const f of readdirSync(dir)) if (!files.has(f)) rmSync(join(dir, f));
for (const [name, text] of files) writeFileSync(join(dir, name), text);
writeFileSync(join(root, "schemas", "openapi.json"), `${JSON.stringify(openApiDocument(version), null, 2)}\n`);
const readmePath = join(root, "README.md");
writeFileSync(readmePath, withApiTable(readFileSync(readmePath, "utf8")));
console.log(`wrote ${files.size} schemas to schemas/api/v1/, schemas/openapi.json and the README's API table`);
