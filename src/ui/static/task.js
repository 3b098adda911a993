// Roost web UI: one task as of the moment in the URL. Its state machine drawn as SVG (the current
// state highlighted, the path it took in bold), next to its timeline (every state change with its
// log sequence, time and reason; each sequence a link to that moment) and why it is where it is:
// the placement decision (host, score, runners-up, vetoes) or, while it waits, the pending reason
// with the vetoes per host.

import { Facts, State, agentPath, duration, html, iso, jobPath, Loading, num, ports, taskPath, useApi, useAtHref, useLink } from "./lib.js";
import { Accepts, Machine } from "./machine.js";

export function Task({ taskId }) {
  const r = useApi("task", { taskId });
  const link = useLink();
  const d = r.data;
  const t = d?.task;
  return html`<section data-testid="page-task">
    <div class="toolbar">
      <h2>Task <code data-testid="task-id">${taskId}</code></h2>
      ${t ? html`<${State} state=${t.state} testid="task-state" />` : null}
      <span class="links"><a href=${link("/log", { task: taskId })}>events</a></span>
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<${Facts}
          testid="task-facts"
          items=${[
            ["job", html`<a href=${link(jobPath(t.job))} data-testid="task-job">${t.job}</a>`],
            ["instance", t.instance],
            ["host", t.agentId ? html`<a href=${link(agentPath(t.agentId))}>${t.host ?? t.agentId}</a>` : (t.host ?? "")],
            ["ports", ports(t.ports)],
            ["failures", t.failureCount || ""],
            ["exit code", t.exitCode ?? ""],
            ["ancestor", t.ancestorId ? html`<a href=${link(taskPath(t.ancestorId))}>${t.ancestorId}</a>` : ""],
            ["successor", t.successorId ? html`<a href=${link(taskPath(t.successorId))}>${t.successorId}</a>` : ""],
            ["reason", t.reason],
          ]}
        />
        <div class="task-cols">
          <div class="machine-box">
            <h3>State machine</h3>
            <${Machine} graph=${d.inspect.graph} current=${d.inspect.state} history=${d.inspect.history} testid="machine" />
            <${Accepts} state=${d.inspect.state} accepts=${d.inspect.accepts} graph=${d.inspect.graph} />
          </div>
          <div>
            <h3>Timeline</h3>
            <${Timeline} history=${d.history} />
            <h3>${d.why?.placement ? "Placement" : "Why"}</h3>
            <${Why} why=${d.why} at=${d.at} />
          </div>
        </div>`
      }
    <//>
  </section>`;
}

/** history: [{seq, idx, ts, state, reason}], oldest first, as the CLI's `task history`. */
function Timeline({ history }) {
  const atHref = useAtHref();
  if (!history?.length) return html`<p class="muted">no state change yet at this moment</p>`;
  return html`<table class="rows" data-testid="timeline">
    <thead>
      <tr><th>seq</th><th>time</th><th>state</th><th>reason</th></tr>
    </thead>
    <tbody>
      ${history.map(
        (h, i) =>
          html`<tr key=${`${h.seq}.${h.idx}`} data-testid="history-row" data-seq=${h.seq} data-state=${h.state}>
            <td><a href=${atHref(h.seq)} title="show the cluster at this moment">${h.seq}</a></td>
            <td class="time">${iso(h.ts)}${i > 0 ? html` <span class="muted">+${duration(h.ts - history[i - 1].ts)}</span>` : null}</td>
            <td><${State} state=${h.state} /></td>
            <td class="reason">${h.reason}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function Why({ why, at }) {
  const atHref = useAtHref();
  if (!why) return html`<p class="muted">nothing to explain</p>`;
  const p = why.placement;
  const dec = p?.decision;
  // The contract's runnersUp; the decision as logged calls them alternatives.
  const runnersUp = dec?.runnersUp ?? dec?.alternatives ?? [];
  return html`<div class="why" data-testid="why">
    ${why.summary ? html`<p class="summary" data-testid="why-summary">${why.summary}</p>` : null}
    ${
      p
        ? html`<${Facts}
          testid="placement"
          items=${[
            ["host", p.host],
            ["decided", p.seq ? html`<a href=${atHref(p.seq)}>seq ${p.seq}</a>` : ""],
            ["reason", p.reason],
            ["mode", dec?.mode],
            ["score", dec ? num(dec.score) : ""],
            ["hosts looked at", dec ? num(dec.hostsConsidered ?? dec.evaluated) : ""],
            ["feasible", dec ? num(dec.feasible) : ""],
          ]}
        />
        ${
          runnersUp.length
            ? html`<h4>Runners-up</h4>
              <table class="rows" data-testid="runners-up">
                <thead><tr><th>host</th><th>score or veto</th></tr></thead>
                <tbody>
                  ${runnersUp.map(
                    (u, i) =>
                      html`<tr key=${i}><td>${u.host}</td><td>${u.score !== undefined ? num(u.score) : (u.veto ?? u.reason ?? "")}</td></tr>`,
                  )}
                </tbody>
              </table>`
            : null
        }
        ${hasVetoes(dec?.vetoes) ? html`<h4>Vetoes</h4><${Vetoes} vetoes=${dec.vetoes} />` : null}`
        : null
    }
    ${
      why.vetoes?.length
        ? html`<h4>Vetoes${at ? ` at seq ${at.seq}` : ""}</h4>
          <table class="rows" data-testid="vetoes">
            <thead><tr><th>reason</th><th>hosts</th><th>examples</th></tr></thead>
            <tbody>
              ${why.vetoes.map(
                (v, i) =>
                  html`<tr key=${i}>
                    <td>${v.reason}</td>
                    <td>${num(v.hosts)}</td>
                    <td>${(v.examples ?? []).map((e, j) => html`<div key=${j}><b>${e.host}</b>: ${e.detail}</div>`)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : null
    }
    ${
      why.feasible?.length
        ? html`<h4>Hosts that could take it</h4>
          <ul>
            ${why.feasible.map((f, i) => html`<li key=${i}>${f.host} <span class="muted">score ${num(f.score)}</span></li>`)}
          </ul>`
        : null
    }
  </div>`;
}

const hasVetoes = (v) => (Array.isArray(v) ? v.length > 0 : v && typeof v === "object" ? Object.keys(v).length > 0 : Boolean(v));

/** A decision's vetoes, whatever their shape: {reason: hosts}, or [{reason, hosts}], or text. */
function Vetoes({ vetoes }) {
  if (Array.isArray(vetoes)) {
    if (vetoes.length === 0) return html`<p class="muted">none</p>`;
    return html`<ul>
      ${vetoes.map((v, i) => html`<li key=${i}>${typeof v === "object" ? `${v.reason ?? JSON.stringify(v)}${v.hosts !== undefined ? `: ${v.hosts} hosts` : ""}` : String(v)}</li>`)}
    </ul>`;
  }
  if (vetoes && typeof vetoes === "object") {
    const entries = Object.entries(vetoes);
    if (entries.length === 0) return html`<p class="muted">none</p>`;
    return html`<ul>
      ${entries.map(([k, v]) => html`<li key=${k}>${k}: ${typeof v === "object" ? JSON.stringify(v) : `${v} hosts`}</li>`)}
    </ul>`;
  }
  return html`<p>${String(vetoes)}</p>`;
}
