// reasonOf keeps the texts it builds (a blocked group is judged against every agent); this pins
// it to the plain definition, the one it replaced, over every combination of a few vetoes.

import { describe, expect, it } from "vitest";
import { reasonOf, vetoText, type Veto } from "../src/scheduling/vetoes.js";

/** The definition: the other vetoes' texts once each, in order, then "Insufficient: a, b". */
function plainReason(vetoes: readonly Veto[]): string {
  const insufficient = vetoes.filter((v) => v.kind === "insufficient") as Array<Extract<Veto, { kind: "insufficient" }>>;
  const parts = [...new Set(vetoes.filter((v) => v.kind !== "insufficient").map(vetoText))];
  if (insufficient.length) parts.push(`Insufficient: ${insufficient.map((v) => v.resource).join(", ")}`);
  return parts.join("; ");
}

const KINDS: Veto[] = [
  { kind: "dedicated", detail: "d" },
  { kind: "maintenance", detail: "m" },
  { kind: "constraint", attribute: "rack", detail: "x" },
  { kind: "constraint", attribute: "zone", detail: "y" },
  { kind: "limit", attribute: "host", detail: "z" },
  { kind: "limit", attribute: "rack", detail: "w" },
  { kind: "insufficient", resource: "cpus", need: 1, free: 0, total: 4 },
  { kind: "insufficient", resource: "ramMb", need: 1, free: 0, total: 4 },
  { kind: "insufficient", resource: "ports", need: 1, free: 0, total: 4 },
];

describe("reasonOf", () => {
  it("equals the plain definition for every sequence of up to three vetoes (repeats included)", () => {
    let checked = 0;
    for (const a of KINDS) {
      expect(reasonOf([a])).toBe(plainReason([a]));
      for (const b of KINDS) {
        expect(reasonOf([a, b])).toBe(plainReason([a, b]));
        for (const c of KINDS) {
          expect(reasonOf([a, b, c])).toBe(plainReason([a, b, c]));
          checked++;
        }
      }
    }
    expect(checked).toBe(KINDS.length ** 3);
    expect(reasonOf([KINDS[2]!, KINDS[6]!, KINDS[7]!])).toBe("Constraint not satisfied: rack; Insufficient: cpus, ramMb");
  });
});
