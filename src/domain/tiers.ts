// Aurora's tiers (tiers.json): "production" means not preemptible.

export interface Tier {
  preemptible: boolean;
  revocable: boolean;
}

export const TIERS: Readonly<Record<string, Tier>> = {
  preferred: { preemptible: false, revocable: false },
  preemptible: { preemptible: true, revocable: false },
  revocable: { preemptible: true, revocable: true },
};

export function isPreemptible(tier: string): boolean {
  return Object.hasOwn(TIERS, tier) ? TIERS[tier]!.preemptible : true;
}

export function isProductionTier(tier: string): boolean {
  return !isPreemptible(tier);
}
