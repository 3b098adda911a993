// The V8 flags a scheduler process runs with, in one place: ops/systemd/roost-scheduler.service
// passes the same ones on its ExecStart line, bin/roost.js on its #! line, and `roost dev` and the
// benches when they start a scheduler as a process of its own.
//
// Why a larger young generation (64 MB semi-spaces, against Node 20's 16 MB): a scheduler that
// starts cold folds the log's tail into a state of millions of tasks, and most of what it
// allocates there survives (every task record it builds or creates), so a small young generation
// is scavenged over and over, copying live objects each time: garbage collection was 23% of a cold
// start's profile. Offline, on one 10M-event snapshot and its 0.5M-event tail (3 rounds back to
// back, 2026-12-04): the tail folded in 4.5–5.1 s with the default, 3.8–4.3 s with 32 MB and
// 3.7–3.9 s with 64 MB (128 MB: no better). The leader gains too (bench placement, 3 pairs:
// 13.7k–14.4k placements/s → 15.5k–16.9k), though its pure placement cost falls about as much, so
// placementEfficiency does not move. The cost is up to 128 MB more resident memory in a busy
// process; an idle one never grows its young generation.
//
// Set on the command line, not from inside: v8.setFlagsFromString after the heap is made gave
// about a third of the gain (tail 4.5–4.6 s).

export const SCHEDULER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=64"];
