// Roost web UI: the application shell. The hash router (#/jobs?at=1234), the header with its
// navigation and the time-travel control (a slider over the log's sequences, a typed time or
// sequence, "now"), and the live feed: /ui/api/live says when the log's head moves; following now
// (no `at`), the page shown is fetched again (debounced); at a past moment only the slider grows.

import { render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { AppContext, getJson, html, iso, navigate, num, parseHash, routeHref, useAtHref } from "./lib.js";
import { Agent, Agents, Job, Jobs, Log, Overview, Pending, Quotas, Tasks } from "./pages.js";
import { Task } from "./task.js";
import { Update, Updates } from "./updates.js";
import { Maintenance } from "./maintenance.js";

const NAV = [
  ["/", "Overview"],
  ["/jobs", "Jobs"],
  ["/tasks", "Tasks"],
  ["/agents", "Agents"],
  ["/pending", "Pending"],
  ["/updates", "Updates"],
  ["/maintenance", "Maintenance"],
  ["/quotas", "Quotas"],
  ["/log", "Log"],
];

/** How long to gather head events before fetching the page again. */
const REFRESH_DEBOUNCE_MS = 200;

/** `at` as typed: a log sequence, or an RFC 3339 time (kept as typed; the server resolves it). */
export function parseAt(text) {
  const s = text.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n >= 1 && Number.isSafeInteger(n) ? { at: String(n) } : { error: "a sequence is an integer from 1" };
  }
  const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;
  if (rfc3339.test(s) && !Number.isNaN(Date.parse(s.replace(" ", "T")))) return { at: s.replace(" ", "T") };
  return { error: "type a log sequence (1234) or an RFC 3339 time (2026-12-02T03:12:00Z)" };
}

function route(r) {
  const [a, b, ...rest] = r.segments;
  switch (a) {
    case undefined:
      return html`<${Overview} />`;
    case "jobs":
      return b === undefined ? html`<${Jobs} />` : html`<${Job} job=${[b, ...rest].join("/")} />`;
    case "tasks":
      return b === undefined ? html`<${Tasks} />` : html`<${Task} taskId=${b} />`;
    case "agents":
      return b === undefined ? html`<${Agents} />` : html`<${Agent} agentId=${b} />`;
    case "pending":
      return html`<${Pending} />`;
    case "updates":
      return b === undefined ? html`<${Updates} />` : html`<${Update} updateId=${b} />`;
    case "quotas":
      return html`<${Quotas} />`;
    case "maintenance":
      return html`<${Maintenance} />`;
    case "log":
      return html`<${Log} />`;
    default:
      return html`<section class="error" data-testid="not-found">No page at <code>${r.path}</code>.</section>`;
  }
}

function TimeTravel({ timeline, at, shown, connected }) {
  const [drag, setDrag] = useState(null);
  const [text, setText] = useState(at ?? "");
  const [problem, setProblem] = useState(null);
  const atHref = useAtHref();
  useEffect(() => {
    setText(at ?? "");
    setProblem(null);
  }, [at]);
  const go = (value) => navigate(atHref(value));
  const first = timeline?.first?.seq ?? 1;
  const last = timeline?.last?.seq ?? shown?.seq ?? 1;
  const asked = at && /^\d+$/.test(at) ? Number(at) : null;
  const value = drag ?? (at ? (shown?.seq ?? asked ?? first) : last);
  const onSubmit = (e) => {
    e.preventDefault();
    if (text.trim() === "") return go(null);
    const r = parseAt(text);
    if (r.error) return setProblem(r.error);
    setProblem(null);
    go(r.at);
  };
  return html`<div class="timetravel" data-testid="time-travel" data-following=${at ? "false" : "true"}>
    <input
      type="range"
      data-testid="time-slider"
      aria-label="log sequence shown"
      min=${first}
      max=${Math.max(first, last)}
      step="1"
      value=${value}
      disabled=${!timeline?.first}
      onInput=${(e) => setDrag(Number(e.currentTarget.value))}
      onChange=${(e) => {
        setDrag(null);
        go(e.currentTarget.value);
      }}
    />
    <form onSubmit=${onSubmit} class="at-form">
      <input
        type="text"
        data-testid="time-input"
        aria-label="moment: a log sequence or an RFC 3339 time"
        placeholder="seq or 2026-12-02T03:12:00Z"
        value=${text}
        onInput=${(e) => setText(e.currentTarget.value)}
      />
      <button type="submit" data-testid="time-go">go</button>
      <button type="button" data-testid="time-now" disabled=${!at} onClick=${() => go(null)} title="follow the log as it grows">now</button>
    </form>
    <span class="shown" data-testid="shown-at" data-seq=${shown?.seq ?? ""} data-ts=${shown?.ts ?? ""}>
      ${drag !== null ? html`<span class="muted">→ seq ${num(drag)}</span>` : shown ? `seq ${num(shown.seq)} · ${iso(shown.ts)}` : "…"}
    </span>
    <span
      class=${`live ${at ? "past" : connected ? "on" : "off"}`}
      data-testid="live-status"
      data-connected=${connected ? "true" : "false"}
      title=${connected ? "connected to the live feed" : "not connected to the live feed"}
    >
      ${at ? "past" : connected ? "live" : "offline"}
    </span>
    ${problem ? html`<span class="error inline" data-testid="time-error">${problem}</span>` : null}
    ${timeline ? html`<span class="muted bounds">log ${num(first)}–${num(last)}</span>` : null}
  </div>`;
}

function App() {
  const [r, setRoute] = useState(() => parseHash(location.hash));
  const [timeline, setTimeline] = useState(null);
  const [tick, setTick] = useState(0);
  const [shown, setShown] = useState(null);
  const [connected, setConnected] = useState(false);
  const at = r.params.get("at") || null;
  const atRef = useRef(at);
  atRef.current = at;
  const shownRef = useRef(shown);
  shownRef.current = shown;

  useEffect(() => {
    const onHash = () => setRoute(parseHash(location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    const page = NAV.find(([p]) => p !== "/" && r.path.startsWith(p))?.[1] ?? "Overview";
    document.title = `Roost · ${page}${at ? ` @ ${at}` : ""}`;
  }, [r.path, at]);

  const loadTimeline = useCallback(() => {
    getJson("/ui/api/timeline").then(setTimeline, () => {});
  }, []);

  useEffect(() => {
    loadTimeline();
    let timer = 0;
    let newest = 0;
    const es = new EventSource("/ui/api/live");
    es.addEventListener("open", () => {
      setConnected(true);
      loadTimeline();
    });
    es.addEventListener("error", () => setConnected(false));
    es.addEventListener("head", (e) => {
      let head;
      try {
        head = JSON.parse(e.data);
      } catch {
        return;
      }
      setConnected(true);
      setTimeline((t) => (t ? { ...t, first: t.first ?? head, last: head } : t));
      // Following now: fetch the page again, unless it already shows this head (the feed says
      // where the head is as soon as it connects, usually just as the first page arrives).
      newest = Math.max(newest, head.seq);
      if (atRef.current === null && !timer) {
        timer = setTimeout(() => {
          timer = 0;
          const shownSeq = shownRef.current?.seq ?? 0;
          if (atRef.current === null && newest > shownSeq) setTick((n) => n + 1);
        }, REFRESH_DEBOUNCE_MS);
      }
    });
    return () => {
      clearTimeout(timer);
      es.close();
    };
  }, []);

  // A new moment asked for: nothing is shown as of it until a reply says which record it is.
  useEffect(() => setShown(null), [at]);

  const onShown = useCallback((m) => {
    setShown((s) => (s && s.seq === m.seq && s.ts === m.ts ? s : m));
  }, []);

  const ctx = { route: r, at, tick, timeline, onShown };
  const navHref = (p) => routeHref(p, { at });
  return html`<${AppContext.Provider} value=${ctx}>
    <header>
      <div class="top">
        <a class="brand" href=${navHref("/")}>Roost</a>
        <nav>
          ${NAV.map(
            ([p, label]) =>
              html`<a key=${p} href=${navHref(p)} class=${(p === "/" ? r.path === "/" : r.path.startsWith(p)) ? "sel" : ""} data-testid=${`nav-${label.toLowerCase()}`}
                >${label}</a
              >`,
          )}
        </nav>
        <span class="muted source" data-testid="source">${timeline ? [timeline.source, timeline.replica].filter(Boolean).join(" · ") : ""}</span>
      </div>
      <${TimeTravel} timeline=${timeline} at=${at} shown=${shown} connected=${connected} />
    </header>
    <main data-testid="page" data-path=${r.path} data-at=${at ?? ""}>
      <div key=${r.path}>${route(r)}</div>
    </main>
  <//>`;
}

render(html`<${App} />`, document.getElementById("app"));
