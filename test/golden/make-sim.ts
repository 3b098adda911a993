// Writes the golden log of the scheduling rules: `npx tsx test/golden/make-sim.ts NAME`.
// A fixed simulation (seed 20261121) that exercises flap penalties, constraints, quota, added
// instances, preemption with a held slot, and kills. Golden logs are forever: never regenerate
// an existing one (see make.ts).

import { existsSync, writeFileSync } from "node:fs";
import { pack } from "../../src/eventlog/envelope.js";
import type { MemoryLog } from "../../src/eventlog/memory.js";
import { foldRecord } from "../../src/replay/fold.js";
import { STATE_DIGEST_VERSION, stateHash } from "../../src/replay/hash.js";
import { ClusterState } from "../../src/replay/state.js";
import { Sim } from "../../src/sim/sim.js";

const name = process.argv[2];
const base = new URL(`./${name}`, import.meta.url).pathname;
if (!name || existsSync(`${base}.log`)) throw new Error(`usage: make-sim.ts NAME (and ${name}.log must not exist yet)`);

const spec = (n: string, over: Record<string, unknown> = {}) => ({
  role: "www",
  environment: "devel",
  name: n,
  instances: 1,
  resources: { cpus: 1, ramMb: 512, diskMb: 100 },
  processes: [{ name: "main", cmdline: "serve" }],
  ...over,
});
const sim = await Sim.start({
  seed: 20261121,
  agents: [{ count: 3, cpus: 2, ramMb: 4096, diskMb: 10000, attributes: (i) => ({ rack: `r${i % 2}`, zone: `z${i}` }) }],
  policy: { preemptionDelayMs: 60_000 },
});
sim.behave("www/devel/flappy", { runMs: 2_000, exitCode: 1 });
await sim.createJob(spec("flappy", { service: true }));
await sim.createJob(spec("spread", { instances: 3, constraints: { host: "limit:1", zone: "!z9" } }));
await sim.request("job.add", { job: "www/devel/spread", count: 1, user: "golden" });
await sim.request("quota.set", { role: "www", cpus: 4, ramMb: 4096, diskMb: 1000, user: "golden" });
await sim.advance(3 * 60_000);
await sim.createJob(spec("prod", { environment: "production", tier: "preferred", resources: { cpus: 2, ramMb: 512, diskMb: 100 } }));
await sim.advance(10 * 60_000);
await sim.killJob("www/devel/flappy");
await sim.advance(60_000);
const records: Uint8Array[] = [];
const log = sim.log as MemoryLog;
for (let s = 1; s <= log.length; s++) records.push(log.raw(s)!);
const state = new ClusterState();
for await (const r of sim.log.read(1)) foldRecord(state, r.seq, r.events);
const types = new Set<string>();
for await (const r of sim.log.read(1))
  for (const e of r.events) types.add(`${e.type}${e.type === "TaskStateChanged" ? `:${e.data.to}` : ""}`);
await sim.stop();
writeFileSync(`${base}.log`, pack(records));
writeFileSync(
  `${base}.json`,
  `${JSON.stringify({ records: records.length, stateDigest: STATE_DIGEST_VERSION, events: state.eventCount, tasks: state.tasks.size, jobs: state.jobs.size, agents: state.agents.size, stateHash: stateHash(state), covers: [...types].sort() }, null, 2)}\n`,
);
