// A full collection between a bench's phases, when node runs with --expose-gc (npm run bench
// passes it): each phase starts from the heap it makes, not the garbage of the one before.
//
// Why: bench placement's latency phase ran in a process still holding ~1.2 GB of the throughput
// and pure-cost phases' states. No mark-compact came during its 10 s, and its scavenges, slowed by
// the old generation they scan, paused the leader 10-40 ms (--trace-gc), where a fresh leader's
// take 4.6-6 ms: the p99 measured the bench's leftovers.

/** Collect everything unreachable now (a no-op without --expose-gc). */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
