// Writes a golden snapshot: `npx tsx test/golden/make-snapshot.ts NAME` encodes the state the golden
// log NAME.log folds to as NAME.snapshot. Like the logs, never regenerate an existing one: it pins
// what this build's decoder makes of bytes an earlier build wrote (test/snapshot.test.ts). A
// decoder that reads it differently has changed what bytes mean: bump SNAPSHOT_CODEC
// (src/replay/snapshot.ts), since snapshots of the old codec may not be taken on their writer's check.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { decodeRecord, unpack } from "../../src/eventlog/envelope.js";
import { foldRecord } from "../../src/replay/fold.js";
import { encodeSnapshot } from "../../src/replay/snapshot.js";
import { ClusterState } from "../../src/replay/state.js";

const [name] = process.argv.slice(2);
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || !existsSync(`${base}.log`) || existsSync(`${base}.snapshot`))
  throw new Error(`usage: make-snapshot.ts NAME (${name}.log must exist, ${name}.snapshot must not)`);
const state = new ClusterState();
for (const [i, r] of unpack<Uint8Array[]>(readFileSync(`${base}.log`)).entries()) foldRecord(state, i + 1, decodeRecord(r));
writeFileSync(`${base}.snapshot`, encodeSnapshot(state, { createdTs: 0 }));
