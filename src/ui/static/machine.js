// Roost web UI: a state machine (a task's or an agent's) drawn as SVG. The API hands over the
// machine's graph (`inspect.graph`: states and transitions); elkjs (the global ELK from
// /ui/vendor/elk.js) lays it out, and this file draws the nodes and edges itself, marking the
// current state, the states and transitions the history went through, and the ways out of the
// current state. A layout depends only on the graph, so it is computed once per machine and reused
// as the page moves through time.

import { useEffect, useState } from "preact/hooks";
import { html, stateClass } from "./lib.js";

const NODE_H = 28;
const CHAR_W = 7.3; // 12px monospace
const LABEL_H = 12;

let elk = null;
const layouts = new Map();

/** The transitions to draw: one edge per (from, to), its events merged; targetless and
 * self-transitions (they change nothing) are left to the "accepts" list. */
function edgesOf(graph) {
  const byPair = new Map();
  for (const e of graph.edges ?? []) {
    if (e.targetless || e.from === e.to) continue;
    const key = `${e.from}\u0000${e.to}`;
    let m = byPair.get(key);
    if (!m) byPair.set(key, (m = { from: e.from, to: e.to, events: new Set(), guards: new Set(), actions: new Set() }));
    m.events.add(e.event);
    if (e.guard) m.guards.add(e.guard);
    for (const a of e.actions ?? []) m.actions.add(a);
  }
  return [...byPair.values()].map((m, i) => {
    // The task machine's events are named after their target: say the event only when it differs.
    const named = [...m.events].filter((ev) => ev !== m.to);
    return { ...m, id: `edge${i}`, label: named.join(", ") };
  });
}

function layoutOf(graph) {
  const key = JSON.stringify(graph);
  let p = layouts.get(key);
  if (p) return p;
  const ELK = globalThis.ELK;
  if (typeof ELK !== "function") return Promise.reject(new Error("elkjs did not load (/ui/vendor/elk.js)"));
  elk ??= new ELK();
  const edges = edgesOf(graph);
  const spec = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": graph.states.length > 6 ? "DOWN" : "RIGHT",
      "elk.edgeRouting": "SPLINES",
      "elk.layered.spacing.nodeNodeBetweenLayers": "40",
      "elk.spacing.nodeNode": "22",
      "elk.spacing.edgeNode": "10",
      "elk.spacing.edgeEdge": "6",
      "elk.edgeLabels.placement": "CENTER",
      "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
    },
    children: graph.states.map((s) => ({ id: s.id, width: Math.ceil(s.id.length * CHAR_W) + 24, height: NODE_H })),
    edges: edges.map((e) => ({
      id: e.id,
      sources: [e.from],
      targets: [e.to],
      labels: e.label ? [{ text: e.label, width: Math.ceil(e.label.length * 6) + 4, height: LABEL_H }] : [],
    })),
  };
  // A layout costs ELK about half a second on the task machine: keep it across page loads too.
  const stored = `roost.elk.${LAYOUT_VERSION}.${hash(JSON.stringify(spec))}`;
  const saved = readStored(stored);
  const laidOut = saved
    ? Promise.resolve(saved)
    : elk.layout(spec).then((out) => {
        writeStored(stored, out);
        return out;
      });
  p = laidOut.then((out) => ({ out, edges: new Map(edges.map((e) => [e.id, e])) }));
  layouts.set(key, p);
  p.catch(() => layouts.delete(key));
  return p;
}

/** Bump when the layout options or the drawing's reading of ELK's output change. */
const LAYOUT_VERSION = 1;

/** FNV-1a, enough to name a layout in localStorage. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

function readStored(key) {
  try {
    const v = globalThis.localStorage?.getItem(key);
    return v ? JSON.parse(v) : null;
  } catch {
    return null;
  }
}

function writeStored(key, value) {
  try {
    globalThis.localStorage?.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or unavailable: the layout is kept for this page only
  }
}

/** An SVG path through an ELK edge section (splines: cubic Béziers through the bend points). */
function pathOf(section, spline) {
  const pts = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
  const f = (p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`;
  if (spline && (pts.length - 1) % 3 === 0 && pts.length > 2) {
    let d = `M${f(pts[0])}`;
    for (let i = 1; i < pts.length; i += 3) d += ` C${f(pts[i])} ${f(pts[i + 1])} ${f(pts[i + 2])}`;
    return d;
  }
  return `M${pts.map(f).join(" L")}`;
}

let counter = 0;

/**
 * The machine with `current` highlighted. `history`: [{from, to}] (the transitions taken, drawn
 * bold); `testid` names the <svg> for tests ("machine").
 */
export function Machine({ graph, current, history = [], testid = "machine" }) {
  const [layout, setLayout] = useState(null);
  const [error, setError] = useState(null);
  const [uid] = useState(() => `m${++counter}`);
  useEffect(() => {
    let live = true;
    setError(null);
    layoutOf(graph).then(
      (l) => live && setLayout(l),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [JSON.stringify(graph)]);
  if (error) return html`<div class="error">cannot lay out the ${graph.machine} machine: ${error.message}</div>`;
  if (!layout) return html`<div class="loading">laying out the ${graph.machine} machine…</div>`;

  const taken = new Set(history.map((t) => `${t.from}\u0000${t.to}`));
  const visited = new Set(history.flatMap((t) => [t.from, t.to]));
  // "terminal": the lifecycle is over (the task machine's FINISHED…DELETED, the agent's REMOVED).
  const finals = new Set(graph.states.filter((s) => s.final || s.terminal).map((s) => s.id));
  const { out } = layout;
  const w = Math.ceil(out.width ?? 0) + 8;
  const hgt = Math.ceil(out.height ?? 0) + 8;
  const spline = true;

  const edges = (out.edges ?? []).map((le) => {
    const e = layout.edges.get(le.id);
    const isTaken = taken.has(`${e.from}\u0000${e.to}`);
    const isNext = e.from === current;
    const cls = `edge${isTaken ? " taken" : ""}${isNext ? " next" : ""}`;
    const marker = isTaken ? `${uid}-hi` : isNext ? `${uid}-next` : `${uid}-a`;
    const title = `${e.from} → ${e.to}: ${[...e.events].join(", ")}${e.guards.size ? ` [${[...e.guards].join(", ")}]` : ""}${
      e.actions.size ? ` / ${[...e.actions].join(", ")}` : ""
    }`;
    return html`<g class=${cls} key=${le.id} data-from=${e.from} data-to=${e.to}>
      <title>${title}</title>
      ${(le.sections ?? []).map((s) => html`<path d=${pathOf(s, spline)} marker-end=${`url(#${marker})`} />`)}
      ${(le.labels ?? []).map(
        (l) => html`<text class="edge-label" x=${l.x + l.width / 2} y=${l.y + l.height - 2} text-anchor="middle">${l.text}</text>`,
      )}
    </g>`;
  });

  const nodes = (out.children ?? []).map((n) => {
    const isCurrent = n.id === current;
    const cls = `node ${stateClass(n.id)}${isCurrent ? " current" : ""}${visited.has(n.id) ? " visited" : ""}${
      finals.has(n.id) ? " final" : ""
    }${n.id === graph.initial ? " initial" : ""}`;
    return html`<g
      class=${cls}
      key=${n.id}
      transform=${`translate(${n.x},${n.y})`}
      data-testid="machine-node"
      data-state=${n.id}
      data-current=${isCurrent ? "true" : "false"}
    >
      <title>${n.id}${isCurrent ? " (current)" : ""}${finals.has(n.id) ? " (final)" : ""}</title>
      <rect width=${n.width} height=${n.height} rx="6" />
      ${finals.has(n.id) ? html`<rect class="inner" x="3" y="3" width=${n.width - 6} height=${n.height - 6} rx="4" />` : null}
      <text x=${n.width / 2} y=${n.height / 2 + 4} text-anchor="middle">${n.id}</text>
    </g>`;
  });

  const arrow = (id) =>
    html`<marker id=${id} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" />
    </marker>`;

  return html`<svg
    class="machine"
    data-testid=${testid}
    data-machine=${graph.machine}
    data-current-state=${current ?? ""}
    viewBox=${`-4 -4 ${w} ${hgt}`}
    width=${w}
    height=${hgt}
    role="img"
    aria-label=${`${graph.machine} state machine, current state ${current}`}
  >
    <defs>
      <g class="m-a">${arrow(`${uid}-a`)}</g>
      <g class="m-hi">${arrow(`${uid}-hi`)}</g>
      <g class="m-next">${arrow(`${uid}-next`)}</g>
    </defs>
    <g class="edges">${edges}</g>
    <g class="nodes">${nodes}</g>
  </svg>`;
}

/** What the current state accepts: [{event, target, guard?, actions}] as a short list. */
export function Accepts({ state, accepts, graph }) {
  const final = graph?.states?.some((s) => s.id === state && (s.final || s.terminal));
  if (!accepts?.length) return html`<p class="muted">${state} accepts no event${final ? " (a final state)" : ""}.</p>`;
  return html`<div class="accepts">
    <h4>From ${state} it accepts</h4>
    <ul>
      ${accepts.map(
        (a, i) =>
          html`<li key=${i}>
            <code>${a.event}</code> → <span class=${stateClass(a.target ?? state)}>${a.targetless || !a.target ? `${state} (stays)` : a.target}</span>
            ${a.guard ? html` <span class="muted">if ${a.guard}</span>` : null}
            ${a.actions?.length ? html` <span class="muted">/ ${a.actions.join(", ")}</span>` : null}
          </li>`,
      )}
    </ul>
  </div>`;
}
