// The V8 flags a scheduler process runs with, in one place: ops/systemd/roost-scheduler.service
// passes the same ones on its ExecStart line, bin/roost.js on its #! line (so every `roost`
// command gets them), `roost dev` to each process it starts (its agents too: an idle process never
// grows its young generation), and the benches to the schedulers they start as processes.
//
// Why a larger young generation (32 MB semi-spaces, against Node 20's 16 MB): a scheduler that
// starts cold folds the log's tail into a state of millions of tasks, and most of what it
// allocates there survives (every task record it builds or creates), so a small young generation
// is scavenged over and over, copying live objects each time: garbage collection was 23% of a cold
// start's profile. Offline, on one 10M-event snapshot and its 0.5M-event tail (3 rounds back to
// back, 2026-12-04): the tail folded in 4.5–5.1 s with 16 MB, 3.8–4.3 s with 32 MB, 3.7–3.9 s
// with 64 MB (128 MB: no better).
//
// Why not 64 MB, which a first version of this file chose: a leader's scavenges grow with the
// young generation, and a task submitted during one waits it out. At 1,000 tasks/s offered (bench
// placement), each scavenge paused the leader ~2 ms at 16 MB, 4.6–6 ms at 32 MB and ~10 ms at
// 64 MB (--trace-gc-nvp), and submitToPlacedP99Ms (goal ≤ 20) was, in back-to-back runs:
// 16 MB 19.3 / 17.1 / 15.2 / 16.9 / 13.9 / 14.1; 32 MB 17.2 / 17.6 / 15.9; 64 MB 21.0 / 21.1 /
// 24.3. 32 MB keeps the p99 under the goal and most of the cold start's gain; the leader also
// placed more (14.7k–14.8k placements/s at 16 MB, 16.9k–17.8k at 32 MB, 3 pairs), though its
// pure placement cost fell about as much, so placementEfficiency barely moves. The cost is up to
// 64 MB more resident memory in a busy process; an idle one never grows its young generation.
//
// Set on the command line, not from inside: v8.setFlagsFromString once the heap is made did not
// reliably take effect (tail 4.5–4.6 s with 64 MB asked for that way, within the default's spread).

export const SCHEDULER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];
