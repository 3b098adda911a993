// Resource arithmetic shared by the fold, placement, quota and the spec check.
//
// Cpus are counted in thousandths (MIN_CPUS in limits.ts is that grain, and a job spec may not ask
// for less): every sum or difference of cpus is rounded to whole thousandths, so sums carry no
// float dust (0.1 + 0.2 - 0.3 = 0) and the fold, the offers and the quota agree to the digit.
// The other resources are whole numbers.

/** `x` cpus rounded to whole thousandths. */
export function roundCpus(x: number): number {
  return Math.round(x * 1000) / 1000;
}
