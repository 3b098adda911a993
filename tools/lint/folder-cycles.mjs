// No folder imports in a circle (issue 9). dependency-cruiser (.dependency-cruiser.cjs) builds the
// module graph and checks file cycles and the core's boundary; this collapses its graph to the
// folders under src/ and fails when any of them reach each other both ways (a strongly connected
// component of more than one folder), printing one import that closes each circle.

import { cruise } from "dependency-cruiser";

const result = await cruise(["src"], {
  tsPreCompilationDeps: true,
  tsConfig: { fileName: "tsconfig.json" },
  doNotFollow: { path: "node_modules" },
  exclude: { path: "node_modules" },
});
const folderOf = (p) => /^src\/([^/]+)\//.exec(p)?.[1] ?? null;
const edges = new Map(); // folder -> Map(folder -> "a.ts → b.ts")
for (const m of result.output.modules) {
  const from = folderOf(m.source);
  if (!from) continue;
  if (!edges.has(from)) edges.set(from, new Map());
  for (const d of m.dependencies) {
    const to = folderOf(d.resolved);
    if (!to || to === from) continue;
    if (!edges.get(from).has(to)) edges.get(from).set(to, `${m.source} → ${d.resolved}`);
  }
}
// Tarjan's strongly connected components.
let index = 0;
const idx = new Map(),
  low = new Map(),
  stack = [],
  on = new Set(),
  sccs = [];
const strong = (v) => {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  on.add(v);
  for (const w of (edges.get(v) ?? new Map()).keys()) {
    if (!idx.has(w)) {
      strong(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const c = [];
    let w;
    do {
      w = stack.pop();
      on.delete(w);
      c.push(w);
    } while (w !== v);
    if (c.length > 1) sccs.push(c.sort());
  }
};
for (const v of [...edges.keys()].sort()) if (!idx.has(v)) strong(v);
if (sccs.length === 0) {
  console.log(`folder cycles: none among ${edges.size} folders under src/`);
} else {
  for (const c of sccs) {
    console.error(`folders in a circle: ${c.join(", ")}`);
    for (const a of c) for (const [b, via] of edges.get(a) ?? []) if (c.includes(b)) console.error(`  ${a} → ${b}: ${via}`);
  }
  process.exit(1);
}
