// Roost web UI: host maintenance, as of the moment in the URL. Hosts by mode (DRAINING, DRAINED,
// SCHEDULED, and those back to NONE in the last day), each with since when and who asked, its
// drain request (the SLA jobs without their own are judged by, and when the drain is forced), its
// drain progress (tasks still active on it, being drained, drained), and every SLA denial with
// its reason; then the maintenance windows. The server reads views/maintenance.ts.

import { html, Loading, num, taskPath, Time, useApi, useLink } from "./lib.js";

const MODES = [
  ["DRAINING", "Draining", "warn"],
  ["DRAINED", "Drained", "done"],
  ["SCHEDULED", "Scheduled", "wait"],
  ["NONE", "Back in service (last day)", "ok"],
];
const MODE_CLASS = Object.fromEntries(MODES.map(([m, , c]) => [m, c]));
const WINDOW_CLASS = { scheduled: "wait", open: "warn", ended: "done", cancelled: "gone" };

/** Seconds as aurora_admin writes a duration: 30m, 1h30m, 7d. */
function dur(secs) {
  let left = Math.max(0, Math.round(secs));
  if (left === 0) return "0s";
  let out = "";
  for (const [u, n] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ]) {
    const q = Math.floor(left / n);
    if (q > 0) out += `${q}${u}`;
    left -= q * n;
  }
  return out;
}

function Mode({ mode }) {
  return html`<span class=${`st st-${MODE_CLASS[mode] ?? "other"}`} data-testid="host-mode" data-mode=${mode}>${mode}</span>`;
}

/** "95% over 30m, forced at …", or "forced (no SLA)". */
function Drain({ drain }) {
  if (!drain) return html`<span class="muted">–</span>`;
  const sla = drain.sla ? `${num(drain.sla.percentage)}% active over ${dur(drain.sla.durationSecs)}` : "forced: no SLA check";
  return html`<span data-testid="drain-request">
    ${sla}${drain.slaAwareKillNonProd ? " (non-production too)" : ""}
    ${drain.sla ? html`<br /><span class="muted">forced at <${Time} ts=${drain.forceAtTs} /></span>` : null}
  </span>`;
}

/** Tasks still active on the host, being drained, and drained since the request: one bar. */
function Progress({ p }) {
  const total = p.active + p.draining + p.drained;
  const pct = (n) => (total > 0 ? (100 * n) / total : 0);
  return html`<span class="progress" data-testid="drain-progress" data-active=${p.active} data-draining=${p.draining} data-drained=${p.drained}
      title=${`${p.active} active, ${p.draining} draining, ${p.drained} drained`}>
      <span class="seg done" style=${`width:${pct(p.drained)}%`}></span>
      <span class="seg working" style=${`width:${pct(p.draining)}%`}></span>
    </span>
    <span class="muted">${num(p.active)} active · ${num(p.draining)} draining · ${num(p.drained)} drained</span>`;
}

function HostRow({ h, link }) {
  return html`<tr data-testid="maint-host-row" data-host=${h.host} data-mode=${h.mode}>
      <td><a href=${link("/agents", { q: h.host })}>${h.host}</a>${h.rack ? html` <span class="muted">rack ${h.rack}</span>` : null}</td>
      <td><${Mode} mode=${h.mode} /></td>
      <td><a href=${link("/log", { from: h.sinceSeq })}><${Time} ts=${h.sinceTs} /></a> <span class="muted">seq ${num(h.sinceSeq)}</span></td>
      <td>${h.user ?? html`<span class="muted">leader</span>`}${h.windowId ? html` <span class="muted">window ${h.windowId}</span>` : null}</td>
      <td><${Drain} drain=${h.drain} /></td>
      <td><${Progress} p=${h.progress} /></td>
    </tr>
    ${
      h.denials.length > 0
        ? html`<tr class="sub" data-testid="maint-denials" data-host=${h.host}>
            <td colspan="6">
              <table class="rows inner">
                <thead><tr><th>denied task</th><th>job</th><th>state</th><th>when</th><th>reason</th></tr></thead>
                <tbody>
                  ${h.denials.map(
                    (d) => html`<tr key=${d.taskId} data-testid="denial-row" data-task=${d.taskId}>
                      <td><a href=${link(taskPath(d.taskId))}>${d.taskId}</a></td>
                      <td>${d.job}${d.instance >= 0 ? `/${d.instance}` : ""}</td>
                      <td>${d.state}</td>
                      <td><${Time} ts=${d.ts} /> <span class="muted">seq ${num(d.seq)}</span></td>
                      <td data-testid="denial-reason">${d.reason}</td>
                    </tr>`,
                  )}
                </tbody>
              </table>
            </td>
          </tr>`
        : null
    }`;
}

export function Maintenance() {
  const r = useApi("maintenance");
  const link = useLink();
  const d = r.data;
  return html`<section data-testid="page-maintenance">
    <h2>Host maintenance</h2>
    <${Loading} ...${r}>
      ${
        d &&
        html`<div>
          ${MODES.map(([mode, title]) => {
            const hosts = d.hosts.filter((h) => h.mode === mode);
            if (hosts.length === 0) return null;
            return html`<div key=${mode} data-testid="maint-mode" data-mode=${mode}>
              <h3>${title} <span class="muted">(${num(hosts.length)})</span></h3>
              <table class="rows" data-testid="maint-hosts">
                <thead>
                  <tr><th>host</th><th>mode</th><th>since</th><th>asked by</th><th>drain request</th><th>drain progress</th></tr>
                </thead>
                <tbody>${hosts.map((h) => html`<${HostRow} key=${h.host} h=${h} link=${link} />`)}</tbody>
              </table>
            </div>`;
          })}
          ${d.hosts.length === 0 ? html`<p class="muted" data-testid="maint-empty">no host is in maintenance</p>` : null}
          <h3>Maintenance windows</h3>
          <table class="rows" data-testid="maint-windows">
            <thead>
              <tr><th>window</th><th>hosts</th><th>from</th><th>to</th><th>status</th><th>by</th><th>drain SLA</th></tr>
            </thead>
            <tbody>
              ${d.windows.map(
                (w) => html`<tr key=${w.windowId} data-testid="window-row" data-window=${w.windowId} data-status=${w.status}>
                  <td>${w.windowId}</td>
                  <td>${w.hosts.join(", ")}</td>
                  <td><${Time} ts=${w.startTs} /></td>
                  <td><${Time} ts=${w.endTs} /></td>
                  <td><span class=${`st st-${WINDOW_CLASS[w.status] ?? "other"}`}>${w.status}</span></td>
                  <td>${w.user}${w.ended?.user ? html` <span class="muted">(ended by ${w.ended.user})</span>` : null}</td>
                  <td>${w.sla ? `${num(w.sla.percentage)}% over ${dur(w.sla.durationSecs)}` : "forced"}</td>
                </tr>`,
              )}
              ${d.windows.length === 0 ? html`<tr><td colspan="7" class="muted">no maintenance windows</td></tr>` : null}
            </tbody>
          </table>
        </div>`
      }
    <//>
  </section>`;
}
