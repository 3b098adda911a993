// Canonical JSON: one text for one value, whatever order its keys, Map entries or Set members
// were inserted in. The state digest (hash.ts) is defined as a hash of it, and anything that must
// compare values across replicas or versions (an agent's attributes) can use it.

/** A canonical JSON text: object keys sorted, Maps as sorted [key, value] pairs, Sets sorted. */
export function canonical(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return Number.isFinite(value) ? JSON.stringify(value) : `"${value}"`;
  if (typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value instanceof Set) return canonical([...value].map(canonical).sort());
  if (value instanceof Map) {
    const entries = [...value.entries()].map(([k, v]) => [canonical(k), canonical(v)] as const);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return `{${entries.map(([k, v]) => `${k}:${v}`).join(",")}}`;
  }
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(",")}}`;
  }
  throw new Error(`cannot hash a ${typeof value}`);
}
