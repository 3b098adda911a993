// `npm run bench -- snapshot`: the snapshot codec on a realistic state, in memory.
//
// The state folded from ROOST_BENCH_EVENTS events (default 1,000,000) of the replay mix
// (src/sim/synthetic.ts: ~240k tasks, 200 agents, ~3,900 jobs), folded through the wire codec
// as a scheduler would hold it. Medians of 5:
//   encodeMs       encodeSnapshot (includes stateHash, which the header carries)
//   decodeMs       decodeSnapshot (includes recomputing stateHash and checking it)
//   stateHashMs    stateHash alone, for the breakdown
//   snapshotBytes  the encoded size
//   slicedEncodeMs, slicedMaxPauseMs   the encoder as a standby runs it (runSliced, 10 ms slices):
//                  wall time, and the longest its event loop went without a turn (the sort of the
//                  task ids and the final pack are single steps)

import { decodeRecord, encodeRecord } from "../src/eventlog/envelope.js";
import { foldRecord } from "../src/replay/fold.js";
import { stateHash } from "../src/replay/hash.js";
import { decodeSnapshot, encodeSnapshot, encodeSnapshotSteps } from "../src/replay/snapshot.js";
import { runSliced } from "../src/actors/snapshotWriter.js";
import { ClusterState } from "../src/replay/state.js";
import { syntheticLog } from "../src/sim/synthetic.js";

const EVENTS = Number(process.env.ROOST_BENCH_EVENTS ?? 1_000_000);
const RUNS = 5;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const note = (msg: string) => process.stderr.write(`snapshot: ${msg}\n`);

export default async function snapshotBench(): Promise<Record<string, number | string>> {
  const state = new ClusterState();
  let seq = 0;
  for (const r of syntheticLog({ seed: 20261121, events: EVENTS, eventsPerRecord: 1000 }))
    foldRecord(state, ++seq, decodeRecord(encodeRecord(r)));
  note(`${state.eventCount} events, ${state.tasks.size} tasks, ${state.jobs.size} jobs, ${state.agents.size} agents`);
  const expected = stateHash(state);
  const enc: number[] = [];
  const dec: number[] = [];
  const hash: number[] = [];
  let bytes: Uint8Array = new Uint8Array(0);
  for (let run = 0; run < RUNS; run++) {
    let t = performance.now();
    stateHash(state);
    hash.push(performance.now() - t);
    t = performance.now();
    bytes = encodeSnapshot(state);
    enc.push(performance.now() - t);
    t = performance.now();
    const decoded = decodeSnapshot(bytes);
    dec.push(performance.now() - t);
    if (stateHash(decoded) !== expected) throw new Error("decoded state differs");
    note(
      `run ${run + 1}: stateHash ${Math.round(hash[run]!)} ms, encode ${Math.round(enc[run]!)} ms, decode ${Math.round(dec[run]!)} ms, ${bytes.length} bytes`,
    );
  }
  const sliced: number[] = [];
  const pauses: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    let last = performance.now();
    let maxPause = 0;
    // Turns of the event loop, timestamped: the gaps between them are the pauses.
    let ticking = true;
    const tick = () => {
      const now = performance.now();
      maxPause = Math.max(maxPause, now - last);
      last = now;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const t = performance.now();
    const encoded = await runSliced(encodeSnapshotSteps(state), { sliceMs: 10 });
    sliced.push(performance.now() - t);
    ticking = false;
    pauses.push(maxPause);
    if (encoded === null || encoded.header.stateHash !== expected) throw new Error("the sliced encoder wrote another state");
    note(`sliced run ${run + 1}: ${Math.round(sliced[run]!)} ms, longest pause ${Math.round(maxPause)} ms`);
  }
  return {
    slicedEncodeMs: Math.round(median(sliced)),
    slicedMaxPauseMs: Math.round(median(pauses)),
    encodeMs: Math.round(median(enc)),
    decodeMs: Math.round(median(dec)),
    stateHashMs: Math.round(median(hash)),
    snapshotBytes: bytes.length,
    tasks: state.tasks.size,
    events: state.eventCount,
    encodeRuns: enc.map(Math.round).join(","),
    decodeRuns: dec.map(Math.round).join(","),
  };
}
