// Writes a golden log: `npx tsx test/golden/make.ts NAME SEED EVENTS`.
// Golden logs are forever: never regenerate an existing one. A change that alters what an old
// log folds to breaks the fold's determinism (README.md, How it works: "Determinism is tested"),
// not a fixture to refresh.

import { existsSync, writeFileSync } from "node:fs";
import { decodeRecord, encodeRecord, pack } from "../../src/eventlog/envelope.js";
import { foldRecord } from "../../src/replay/fold.js";
import { STATE_DIGEST_VERSION, stateHash } from "../../src/replay/hash.js";
import { ClusterState } from "../../src/replay/state.js";
import { syntheticLog } from "../../src/sim/synthetic.js";

const [name, seedArg, eventsArg] = process.argv.slice(2);
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make.ts NAME SEED EVENTS (and ${name}.log must not exist yet)`);
const records = [...syntheticLog({ seed: Number(seedArg), events: Number(eventsArg), agents: 20 })].map(encodeRecord);
const state = new ClusterState();
for (const [i, r] of records.entries()) foldRecord(state, i + 1, decodeRecord(r));
writeFileSync(`${base}.log`, pack(records));
writeFileSync(
  `${base}.json`,
  `${JSON.stringify({ records: records.length, stateDigest: STATE_DIGEST_VERSION, events: state.eventCount, tasks: state.tasks.size, jobs: state.jobs.size, agents: state.agents.size, stateHash: stateHash(state) }, null, 2)}\n`,
);
