// Roost web UI: what every page shares. The hash router (every route carries `at`, the moment
// shown), the JSON API client with its "as of" hook, and the small pieces each table uses
// (state badges, pager, search box, times and resources). Plain ESM for the browser, no build step:
// preact and htm come from the server's /ui/vendor/ through the import map in index.html.

import htm from "htm";
import { createContext, h } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";

export const html = htm.bind(h);

// ---------------------------------------------------------------------------------------------
// Routes: "#/path/segments?query". `at` is a query parameter of every route.

/** The current route: {path: "/jobs", segments: ["jobs"], params: URLSearchParams}. */
export function parseHash(hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const segments = path
    .split("/")
    .filter((s) => s !== "")
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { path: `/${segments.map(encodeURIComponent).join("/")}`, segments, params };
}

/** "?a=1&b=x&b=y" from a record of parameters (null, undefined and "" are left out; arrays repeat). */
export function query(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, String(x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** "#/path?query" from a path and a record of parameters. */
export const routeHref = (path, params = {}) => `#${path}${query(params)}`;

/** Go to a route; `replace` keeps the browser history as it is (typing in a search box). */
export function navigate(href, { replace = false } = {}) {
  if (replace) {
    history.replaceState(null, "", href);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = href.slice(1);
  }
}

/** A path segment for a route (job keys keep their slashes: #/jobs/www-data/devel/hello). */
export const seg = (s) => encodeURIComponent(s);
export const jobPath = (job) => `/jobs/${String(job).split("/").map(seg).join("/")}`;
export const taskPath = (taskId) => `/tasks/${seg(taskId)}`;
export const agentPath = (agentId) => `/agents/${seg(agentId)}`;

/** What pages read from the app: the route, the moment asked for, the live tick, the log's
 * bounds (/ui/api/timeline), and a setter for the moment actually shown (the server's `at` in its
 * replies). */
export const AppContext = createContext({
  route: parseHash(""),
  at: null,
  tick: 0,
  timeline: null,
  onShown: () => {},
});

/** A function making hrefs that keep the current `at` (unless `params` names one):
 * link("/jobs", {role: "www-data"}). */
export function useLink() {
  const { at } = useContext(AppContext);
  return (path, params = {}) => routeHref(path, { at, ...params });
}

/** A function making the href of the current page at another moment: atHref(1234). */
export function useAtHref() {
  const { route } = useContext(AppContext);
  return (at) => routeHref(route.path, { ...Object.fromEntries(route.params.entries()), at });
}

/** Change some query parameters of the current route (null removes one). */
export function useSetParams() {
  const { route } = useContext(AppContext);
  return (changes, opts = {}) => {
    const next = Object.fromEntries(route.params.entries());
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") delete next[k];
      else next[k] = String(v);
    }
    navigate(routeHref(route.path, next), opts);
  };
}

// ---------------------------------------------------------------------------------------------
// The API.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? "HTTP";
    this.field = body?.error?.field;
  }
}

export const apiUrl = (name, params = {}) => `/ui/api/${name}${query(params)}`;

export async function getJson(url, signal) {
  const res = await fetch(url, { signal, headers: { accept: "application/json" } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

/**
 * GET /ui/api/<name>?<params>&at=<the route's at>, again on every live tick while following now.
 * While a new answer is on its way the previous one stays on screen (`loading` is true), so
 * moving through time or a live refresh never blanks the page.
 */
export function useApi(name, params = {}) {
  const { at, tick, onShown } = useContext(AppContext);
  const url = apiUrl(name, { ...params, at });
  const [state, setState] = useState({ url: null, data: null, error: null });
  useEffect(() => {
    const ctl = new AbortController();
    getJson(url, ctl.signal).then(
      (data) => {
        if (ctl.signal.aborted) return;
        if (data && typeof data === "object" && data.at) onShown(data.at);
        setState({ url, data, error: null });
      },
      (error) => {
        if (ctl.signal.aborted) return;
        setState((s) => ({ url, data: s.data, error }));
      },
    );
    return () => ctl.abort();
  }, [url, tick]);
  const fresh = state.url === url;
  return { data: state.data, error: fresh ? state.error : null, loading: !fresh };
}

// ---------------------------------------------------------------------------------------------
// Formatting.

export function Time({ ts }) {
  return html`<span class="time">${iso(ts)}</span>`;
}

export const iso = (ts) => (typeof ts === "number" && Number.isFinite(ts) ? new Date(ts).toISOString() : "");

/** "350ms", "2.5s", "3m 12s", "2h 5m", "4d 3h": how long between two times. */
export function duration(ms) {
  if (!(ms >= 0)) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 3 }) : "–");

/** "0.3 / 2" for one resource. */
export function usage(used, total) {
  return `${num(used ?? 0)} / ${num(total ?? 0)}`;
}

/** Task and agent states, coloured by what they mean (style.css .st-*). */
const STATE_CLASS = {
  RUNNING: "ok",
  ACTIVE: "ok",
  FINISHED: "done",
  PENDING: "wait",
  THROTTLED: "wait",
  INIT: "wait",
  NEW: "wait",
  ASSIGNED: "move",
  STARTING: "move",
  KILLING: "stop",
  RESTARTING: "stop",
  PREEMPTING: "stop",
  DRAINING: "stop",
  PARTITIONED: "warn",
  UNREACHABLE: "warn",
  FAILED: "bad",
  LOST: "bad",
  KILLED: "gone",
  DELETED: "gone",
  REMOVED: "gone",
};

export const stateClass = (s) => `st st-${STATE_CLASS[s] ?? "other"}`;

export function State({ state, testid }) {
  return html`<span class=${stateClass(state)} data-testid=${testid} data-state=${state}>${state}</span>`;
}

/** {RUNNING: 3, PENDING: 1} as badges, in the lifecycle's order. */
const ORDER = [
  "PENDING",
  "THROTTLED",
  "ASSIGNED",
  "STARTING",
  "RUNNING",
  "KILLING",
  "RESTARTING",
  "PREEMPTING",
  "DRAINING",
  "PARTITIONED",
  "FINISHED",
  "FAILED",
  "KILLED",
  "LOST",
];

export function StateCounts({ counts, href }) {
  const keys = Object.keys(counts ?? {}).sort((a, b) => rank(a) - rank(b));
  if (keys.length === 0) return html`<span class="muted">none</span>`;
  return html`<span class="counts">
    ${keys.map((k) =>
      href
        ? html`<a class=${stateClass(k)} href=${href(k)} key=${k}>${k} ${num(counts[k])}</a>`
        : html`<span class=${stateClass(k)} key=${k}>${k} ${num(counts[k])}</span>`,
    )}
  </span>`;
}

function rank(s) {
  const i = ORDER.indexOf(s);
  return i < 0 ? ORDER.length : i;
}

// ---------------------------------------------------------------------------------------------
// Small components.

/** Previous/next over a server-side page: {total, offset, limit}. */
export function Pager({ total, offset, limit, onOffset, testid = "pager" }) {
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(total, offset + limit);
  return html`<div class="pager" data-testid=${testid}>
    <button type="button" disabled=${offset <= 0} onClick=${() => onOffset(Math.max(0, offset - limit))}>‹ prev</button>
    <span>${num(from)}–${num(to)} of ${num(total)}</span>
    <button type="button" disabled=${offset + limit >= total} onClick=${() => onOffset(offset + limit)}>next ›</button>
  </div>`;
}

/** A search box that edits one query parameter as you type (debounced; history replaced). */
export function Search({ value, onSearch, placeholder, testid = "search" }) {
  const [text, setText] = useState(value ?? "");
  const timer = useRef(0);
  useEffect(() => setText(value ?? ""), [value]);
  useEffect(() => () => clearTimeout(timer.current), []);
  const onInput = (e) => {
    const v = e.currentTarget.value;
    setText(v);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => onSearch(v), 250);
  };
  const onSubmit = (e) => {
    e.preventDefault();
    clearTimeout(timer.current);
    onSearch(text);
  };
  return html`<form class="search" onSubmit=${onSubmit}>
    <input type="search" data-testid=${testid} placeholder=${placeholder} value=${text} onInput=${onInput} />
  </form>`;
}

/** An API error, said plainly (a 404 at a past moment usually means "did not exist yet"). */
export function ErrorBox({ error, what }) {
  if (!error) return null;
  const past = error.status === 404 ? " (at the moment shown; it may not exist yet, or any more)" : "";
  return html`<div class="error" data-testid="error">
    ${what ? `${what}: ` : ""}${error.code ? `${error.code}: ` : ""}${error.message}${past}
  </div>`;
}

export function Loading({ data, error, loading, children }) {
  if (!data && error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<div class="loading">loading…</div>`;
  return html`<div class=${loading ? "stale" : ""}>
    ${error ? html`<${ErrorBox} error=${error} />` : null} ${children}
  </div>`;
}

/** A definition list from [label, value] pairs (null values are left out). */
export function Facts({ items, testid }) {
  return html`<dl class="facts" data-testid=${testid}>
    ${items
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => html`<div key=${k}><dt>${k}</dt><dd>${v}</dd></div>`)}
  </dl>`;
}

/** A used/total bar (resources, quota). */
export function Bar({ used, total }) {
  const pct = total > 0 ? Math.min(100, Math.round((100 * (used ?? 0)) / total)) : 0;
  return html`<span class="bar" title=${`${pct}%`}><span class="fill" style=${`width:${pct}%`}></span></span>`;
}

export const ports = (p) =>
  p && Object.keys(p).length
    ? Object.entries(p)
        .map(([k, v]) => `${k}:${v}`)
        .join(" ")
    : "";
