// Times in the core are numbers the events carry (epoch ms). This turns one into text for people;
// it reads no clock (Date here only formats a given instant).

export function isoTime(ms: number): string {
  // biome-ignore lint/style/noRestrictedGlobals: formats an instant the event carried; reads no clock
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}
