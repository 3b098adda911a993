// Sliced work: computations over millions of tasks written as generators that yield between
// bounded steps, so a caller that must keep its event loop turning (a standby writing a snapshot:
// lease polls, heartbeats) can run them a few milliseconds at a time, and everyone else runs them
// at once (runSteps). The state digest (hash.ts) and the snapshot encoder (snapshot.ts) are
// written this way, and both sort task ids with sortStringsSteps.

/** How many tasks a step of the sliced computations (stateHashSteps, the snapshot encoder) covers. */
export const TASKS_PER_STEP = 4096;

/**
 * Work that can be sliced: a generator that yields between steps of bounded size and returns its
 * result. runSteps() runs it at once; a caller that must keep its event loop turning (a standby
 * writing a snapshot: lease polls, heartbeats) runs it a few milliseconds at a time instead.
 */
export type Steps<T> = Generator<void, T, void>;

/** Run sliced work to its end, synchronously. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Strings sorted as Array#sort sorts them (UTF-16 code units). Printable-ASCII lists are sorted as
 * slices of one joined copy: strings decoded by msgpackr are slices of many large strings, and
 * comparing those is about twice as slow (at millions of task ids, seconds). The copies are the
 * same strings, so they keep the list's (branded) type.
 */
export function sortStrings<T extends string>(list: readonly T[]): T[] {
  const joined = list.join("\n");
  if (list.length < 2 || /[^\x20-\x7e\n]/.test(joined) || joined.split("\n").length !== list.length) return [...list].sort();
  return Buffer.from(joined, "latin1").toString("latin1").split("\n").sort() as T[];
}

/**
 * sortStrings as sliced work (see runSteps): runs of 16k sorted one at a time, then merged
 * pairwise, yielding every 64k strings merged. The same order as sortStrings.
 */
export function* sortStringsSteps<T extends string>(list: readonly T[]): Steps<T[]> {
  const RUN = 1 << 14;
  if (list.length <= RUN) return sortStrings(list);
  let runs: T[][] = [];
  for (let i = 0; i < list.length; i += RUN) {
    runs.push(sortStrings(list.slice(i, i + RUN)));
    yield;
  }
  while (runs.length > 1) {
    const next: T[][] = [];
    for (let r = 0; r < runs.length; r += 2) next.push(r + 1 < runs.length ? yield* mergeSorted(runs[r]!, runs[r + 1]!) : runs[r]!);
    runs = next;
  }
  return runs[0]!;
}

function* mergeSorted<T extends string>(a: T[], b: T[]): Steps<T[]> {
  const out = new Array<T>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    out[k++] = b[j]! < a[i]! ? b[j++]! : a[i++]!;
    if ((k & 0xffff) === 0) yield;
  }
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}
