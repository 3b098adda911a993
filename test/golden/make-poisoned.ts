// Writes the golden poisoned log: `npx tsx test/golden/make-poisoned.ts NAME`.
// The records of v1-rules (a real scheduler's log) with foreign records slipped in between, the
// kind a stray publisher or a bad agent put on the log subject before validation existed:
// garbage bytes, a MessagePack string, an empty record, an unknown event type, a payload version
// from the future, a status update to a state that does not exist, a payload of the wrong shape,
// an event naming a task nobody created, and a record mixing good and bad entries. It pins that
// each one folds to the same anomaly, and the rest to the same state, in every later build.
// Golden logs are forever: never regenerate an existing one (see make.ts).

import { existsSync, readFileSync } from "node:fs";
import { decodeRecord, pack, unpack } from "../../src/eventlog/envelope.js";
import { foldRecord } from "../../src/replay/fold.js";
import { ClusterState } from "../../src/replay/state.js";
import { writeGolden } from "../support/golden.js";

const name = process.argv[2];
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make-poisoned.ts NAME (and ${name}.log must not exist yet)`);

const good = unpack<Uint8Array[]>(readFileSync(new URL("./v1-rules.log", import.meta.url)));
// A task the real log created and ran (the first TaskAssigned's task).
let someTask = "";
for (const r of good) {
  for (const e of decodeRecord(r)) if (e.type === "TaskAssigned" && !someTask) someTask = e.data.taskId;
}
const env = (type: unknown, v: unknown, data: unknown) => [type, v, 1, 1_800_000_000_000, "poison", "a foreign record", data];
const foreign: Uint8Array[] = [
  new TextEncoder().encode("hello"), // `nats pub roost.events hello`
  pack("a string, not a record"),
  pack([]),
  pack([env("TaskExploded", 1, { taskId: someTask })]),
  pack([env("TaskStateChanged", 99, { taskId: someTask, to: "RUNNING" })]),
  pack([env("TaskStateChanged", 1, { taskId: someTask, to: "BOGUS", agentSeq: 1_000_000 })]),
  pack([env("TaskStateChanged", 1, null)]),
  pack([env("TaskAssigned", 1, { taskId: someTask, agentId: 7, host: [], ports: "all" })]),
  pack([env("TaskStateChanged", 1, { taskId: "no-such-task", to: "RUNNING" })]),
  pack([env("JobCreated", 1, { job: { role: "x" }, configVersion: 1 })]),
  pack([[1, 2, 3]]),
  pack([
    env("QuotaSet", 1, { role: "mixed", cpus: 1, ramMb: 1, diskMb: 1, user: "ok" }),
    "not an envelope",
    env("QuotaSet", 1, { role: "mixed", cpus: "one" }),
  ]),
];
const records: Uint8Array[] = [];
good.forEach((r, i) => {
  records.push(r);
  const f = foreign[i];
  if (f) records.push(f);
});
const state = new ClusterState();
for (const [i, r] of records.entries()) foldRecord(state, i + 1, decodeRecord(r));
writeGolden(base, records, state, { anomalies: state.anomalies.map((a) => ({ seq: a.seq, index: a.index, type: a.type })) });
