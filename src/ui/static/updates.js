// Roost web UI: job updates and rolling restarts, as of the moment in the URL. The list (job,
// update id, status, kind, user, start, progress), filtered by job and status and paged on the
// server; and one update: its settings and plan, its status history, and its instances, a page at
// a time, each with its newest action, a progress bar, its task, and every action with its time
// and reason. The server reads the same read models as `roost update info` (updater/info.ts).

import { useContext, useState } from "preact/hooks";
import { AppContext, Facts, html, iso, jobPath, Loading, num, Pager, State, taskPath, Time, useApi, useLink, useSetParams } from "./lib.js";

const LIMIT = 50;
const INSTANCES_PER_PAGE = 100;

const updatePath = (updateId) => `/updates/${encodeURIComponent(updateId)}`;

/** Update statuses and instance actions, coloured like task states (style.css .st-*). */
const CLASS = {
  ROLLING_FORWARD: "move",
  ROLLING_BACK: "warn",
  ROLL_FORWARD_PAUSED: "wait",
  ROLL_BACK_PAUSED: "wait",
  ROLL_FORWARD_AWAITING_PULSE: "wait",
  ROLL_BACK_AWAITING_PULSE: "wait",
  ROLLED_FORWARD: "ok",
  ROLLED_BACK: "done",
  ABORTED: "gone",
  ERROR: "bad",
  FAILED: "bad",
  INSTANCE_UPDATING: "move",
  INSTANCE_UPDATED: "ok",
  INSTANCE_UPDATE_FAILED: "bad",
  INSTANCE_ROLLING_BACK: "warn",
  INSTANCE_ROLLED_BACK: "done",
  INSTANCE_ROLLBACK_FAILED: "bad",
};

function Status({ status, testid }) {
  if (!status) return html`<span class="muted" data-testid=${testid}>not started</span>`;
  return html`<span class=${`st st-${CLASS[status] ?? "other"}`} data-testid=${testid} data-status=${status}>${status}</span>`;
}

/** An update's progress {total, done, failed, working}: done, failed and at-work shares of one bar. */
function Progress({ p, testid = "update-progress" }) {
  const pct = (n) => (p.total > 0 ? (100 * n) / p.total : 0);
  return html`<span
    class="progress"
    data-testid=${testid}
    data-done=${p.done}
    data-total=${p.total}
    title=${`${p.done} done, ${p.failed} failed, ${p.working} at work, of ${p.total}`}
  >
    <span class="seg done" style=${`width:${pct(p.done)}%`}></span>
    <span class="seg failed" style=${`width:${pct(p.failed)}%`}></span>
    <span class="seg working" style=${`width:${pct(p.working)}%`}></span>
  </span>
  <span class="muted">${num(p.done)}/${num(p.total)}${p.failed ? ` · ${num(p.failed)} failed` : ""}</span>`;
}

/** One instance's progress (0–1): its share of one bar, coloured by its newest action. */
function InstanceBar({ row }) {
  const cls = row.action ? (CLASS[row.action] ?? "other") : "none";
  return html`<span class="progress" data-testid="instance-progress" data-progress=${row.progress} title=${row.phase}>
    <span class=${`seg st-${cls}`} style=${`width:${Math.round(row.progress * 100)}%`}></span>
  </span>`;
}

const STATUS_FILTERS = ["", "active", "ROLLED_FORWARD", "ROLLED_BACK", "ABORTED", "FAILED", "ERROR"];

export function Updates() {
  const { route } = useContext(AppContext);
  const p = route.params;
  const job = p.get("job") ?? "";
  const status = p.get("status") ?? "";
  const offset = Math.max(0, Number.parseInt(p.get("offset") ?? "0", 10) || 0);
  const r = useApi("updates", { job, status, offset, limit: LIMIT });
  const link = useLink();
  const setParams = useSetParams();
  const d = r.data;
  const onFilter = (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setParams({ job: String(f.get("job") ?? "").trim(), status: f.get("status"), offset: null });
  };
  return html`<section data-testid="page-updates">
    <div class="toolbar">
      <h2>Updates${job ? html` of <code>${job}</code>` : ""}</h2>
      <form class="filters" onSubmit=${onFilter} data-testid="updates-filter">
        <input name="job" placeholder="job role/env/name" value=${job} />
        <select name="status" value=${status} onChange=${(e) => setParams({ status: e.currentTarget.value, offset: null })}>
          ${STATUS_FILTERS.map((s) => html`<option key=${s} value=${s}>${s === "" ? "any status" : s}</option>`)}
        </select>
        <button type="submit">filter</button>
      </form>
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<table class="rows" data-testid="updates-table">
          <thead>
            <tr><th>job</th><th>update</th><th>status</th><th>kind</th><th>user</th><th>started</th><th>progress</th></tr>
          </thead>
          <tbody>
            ${d.items.map(
              (u) =>
                html`<tr key=${u.updateId} data-testid="update-row" data-update=${u.updateId} data-job=${u.job} data-status=${u.status}>
                  <td><a href=${link(jobPath(u.job))}>${u.job}</a></td>
                  <td><a href=${link(updatePath(u.updateId))} data-testid="update-link"><code>${u.updateId}</code></a></td>
                  <td><${Status} status=${u.status} /></td>
                  <td>${u.restart ? "restart" : "update"}</td>
                  <td>${u.user}</td>
                  <td><a href=${link(updatePath(u.updateId), { at: u.createdSeq })} title="the update as it started">seq ${u.createdSeq}</a> <${Time} ts=${u.createdTs} /></td>
                  <td class="nowrap"><${Progress} p=${u.progress} /></td>
                </tr>`,
            )}
            ${d.items.length === 0 ? html`<tr><td colspan="7" class="muted">no update${job || status ? " matches" : ""}</td></tr>` : null}
          </tbody>
        </table>
        <${Pager} total=${d.total} offset=${d.offset ?? offset} limit=${LIMIT} onOffset=${(o) => setParams({ offset: o || null })} />`
      }
    <//>
  </section>`;
}

function strategy(s) {
  const st = s?.strategy ?? {};
  if (st.queue) return `queue (batchSize ${st.queue.batchSize})`;
  if (st.batch) return `batch (batchSize ${st.batch.batchSize}${st.batch.autopauseAfterBatch ? ", autopause" : ""})`;
  if (st.variableBatch)
    return `variable batch (${st.variableBatch.batchSizes.join(", ")}${st.variableBatch.autopauseAfterBatch ? ", autopause" : ""})`;
  return "";
}

export function Update({ updateId }) {
  const [offset, setOffset] = useState(0);
  const r = useApi("update", { updateId, offset, limit: INSTANCES_PER_PAGE });
  const link = useLink();
  const d = r.data;
  const u = d?.update;
  const s = u?.settings;
  return html`<section data-testid="page-update">
    <div class="toolbar">
      <h2>${u?.restart ? "Restart" : "Update"} <code data-testid="update-id">${updateId}</code></h2>
      ${u ? html`<${Status} status=${u.status} testid="update-status" />` : null}
      ${u ? html`<span class="links"><a href=${link("/updates", { job: u.job })}>the job's updates</a><a href=${link("/log", { job: u.job })}>events</a></span>` : null}
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<div class="cols">
          <div>
            <${Facts}
              testid="update-facts"
              items=${[
                ["job", html`<a href=${link(jobPath(u.job))} data-testid="update-job">${u.job}</a>`],
                ["kind", u.restart ? "rolling restart" : "update"],
                ["user", u.user],
                ["config version", u.restart ? `${u.fromVersion} (restarted)` : `${u.fromVersion} → ${u.toVersion}`],
                ["started", html`<a href=${link(updatePath(updateId), { at: u.createdSeq })}>seq ${u.createdSeq}</a> ${iso(u.createdTs)}`],
                ["last change", iso(u.lastTs)],
                ["message", u.message ?? ""],
                ["instances", u.instances ? u.instances.join(", ") : "all"],
                ["plan", u.plan ? `add ${u.plan.added.length} · change ${u.plan.changed.length} · remove ${u.plan.removed.length}` : ""],
              ]}
            />
          </div>
          <div>
            <${Facts}
              testid="update-settings"
              items=${[
                ["progress", html`<${Progress} p=${u.progress} />`],
                ["strategy", strategy(s)],
                ["watchSecs", s?.watchSecs],
                ["maxPerInstanceFailures", s?.maxPerInstanceFailures],
                ["maxTotalFailures", s?.maxTotalFailures],
                ["rollbackOnFailure", s ? String(s.rollbackOnFailure) : ""],
                ["pulseIntervalSecs", s?.pulseIntervalSecs],
                ["actions", num(u.actionCount)],
              ]}
            />
          </div>
        </div>
        <h3>Status history</h3>
        <table class="rows" data-testid="update-statuses">
          <thead>
            <tr><th>seq</th><th>time</th><th>status</th><th>by</th><th>message</th></tr>
          </thead>
          <tbody>
            ${[...u.statuses].reverse().map(
              (x) =>
                html`<tr key=${x.seq} data-testid="status-row" data-status=${x.status}>
                  <td><a href=${link(updatePath(updateId), { at: x.seq })} title="the update at this moment">${x.seq}</a></td>
                  <td><${Time} ts=${x.ts} /></td>
                  <td><${Status} status=${x.status} /></td>
                  <td>${x.user ?? "the leader"}</td>
                  <td class="reason">${x.message ?? x.reason}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        <h3>Instances</h3>
        <table class="rows" data-testid="update-instances">
          <thead>
            <tr><th>#</th><th>newest action</th><th>progress</th><th>task</th><th>actions</th></tr>
          </thead>
          <tbody>
            ${d.instances.items.map(
              (i) =>
                html`<tr key=${i.instance} data-testid="instance-row" data-instance=${i.instance} data-action=${i.action ?? ""}>
                  <td>${i.instance}</td>
                  <td><${Status} status=${i.action} testid="instance-action" />${i.ts ? html` <${Time} ts=${i.ts} />` : null}</td>
                  <td class="nowrap"><${InstanceBar} row=${i} /> <span class="muted">${i.phase}</span></td>
                  <td>
                    ${
                      i.task
                        ? html`<a href=${link(taskPath(i.task.taskId))}>${i.task.taskId}</a> <${State} state=${i.task.state} />
                            <span class="muted">v${i.task.configVersion}</span>`
                        : html`<span class="muted">none</span>`
                    }
                  </td>
                  <td>
                    <details data-testid="instance-actions">
                      <summary>${i.actions.length} action${i.actions.length === 1 ? "" : "s"}</summary>
                      <table class="rows inner">
                        <tbody>
                          ${i.actions.map(
                            (a) =>
                              html`<tr key=${`${a.seq}.${a.action}`} data-testid="action-row" data-action=${a.action}>
                                <td><a href=${link(updatePath(updateId), { at: a.seq })}>${a.seq}</a></td>
                                <td><${Time} ts=${a.ts} /></td>
                                <td><${Status} status=${a.action} /></td>
                                <td class="reason">${a.reason}</td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>
                    </details>
                  </td>
                </tr>`,
            )}
            ${d.instances.items.length === 0 ? html`<tr><td colspan="5" class="muted">no instance</td></tr>` : null}
          </tbody>
        </table>
        ${
          d.instances.total > INSTANCES_PER_PAGE
            ? html`<${Pager} total=${d.instances.total} offset=${d.instances.offset} limit=${INSTANCES_PER_PAGE} onOffset=${setOffset} />`
            : null
        }`
      }
    <//>
  </section>`;
}
