// Roost web UI: the pages that list things (overview, jobs by role, a job, tasks, agents, an
// agent, pending work, quotas, the event log). Each asks the JSON API for one page of rows as of
// the moment in the URL (`at`); nothing here ever fetches or draws every task, so the pages stay
// fast at 250,000 tasks. The task page, with its state machine, is in task.js.

import { useContext, useEffect, useState } from "preact/hooks";
import {
  AppContext,
  Bar,
  Facts,
  agentPath,
  duration,
  html,
  iso,
  jobPath,
  Loading,
  navigate,
  num,
  Pager,
  ports,
  routeHref,
  Search,
  State,
  StateCounts,
  taskPath,
  Time,
  useApi,
  useAtHref,
  useLink,
  useSetParams,
  usage,
} from "./lib.js";
import { Machine, Accepts } from "./machine.js";

const LIMIT = 50;

const offsetOf = (params) => Math.max(0, Number.parseInt(params.get("offset") ?? "0", 10) || 0);

// ---------------------------------------------------------------------------------------------

export function Overview() {
  const { timeline } = useContext(AppContext);
  const r = useApi("summary");
  const link = useLink();
  const s = r.data;
  return html`<section data-testid="page-overview">
    <h2>Overview</h2>
    <${Loading} ...${r}>
      ${
        s &&
        html`<div class="cards">
          <a class="card" href=${link("/jobs")} data-testid="card-jobs"><b>${num(s.jobs)}</b><span>jobs</span></a>
          <a class="card" href=${link("/tasks")} data-testid="card-tasks"><b>${num(s.tasks.total)}</b><span>tasks</span></a>
          <a class="card" href=${link("/agents")} data-testid="card-agents"><b>${num(s.agents.total)}</b><span>agents</span></a>
          <a class="card" href=${link("/pending")} data-testid="card-pending"><b>${num(s.pending)}</b><span>pending</span></a>
          <a class="card" href=${link("/quotas")}><b>${num(s.quotas)}</b><span>quotas</span></a>
          <a class="card" href=${link("/log")}><b>${num(s.events)}</b><span>events</span></a>
          <div class=${`card${s.anomalyCount ? " warn" : ""}`}><b>${num(s.anomalyCount)}</b><span>anomalies</span></div>
        </div>
        <h3>Tasks by state</h3>
        <${StateCounts} counts=${s.tasks.byState} href=${(st) => link("/tasks", { state: st })} />
        <h3>Agents by state</h3>
        <${StateCounts} counts=${s.agents.byState} />
        <h3>Leader and source</h3>
        <${Facts}
          testid="leader"
          items=${[
            ["leader", s.leader ? `${s.leader.schedulerId} (epoch ${s.leader.epoch}) on ${s.leader.host}` : "none"],
            ["served by", timeline?.replica ? `${timeline.replica} (${timeline.source})` : ""],
            ["source", timeline?.source ? sourceText(timeline.source) : ""],
            ["log", timeline?.first ? `seq ${num(timeline.first.seq)} (${iso(timeline.first.ts)}) to ${num(timeline.last.seq)}` : ""],
          ]}
        />`
      }
    <//>
  </section>`;
}

function sourceText(source) {
  if (source === "leader") return "leader: the leading scheduler's own state";
  if (source === "standby") return "standby: a scheduler replica following the log";
  if (source === "log") return "log: folded from the log by this process (no scheduler needed)";
  return source;
}

// ---------------------------------------------------------------------------------------------

export function Jobs() {
  const { route } = useContext(AppContext);
  const p = route.params;
  const role = p.get("role") ?? "";
  const q = p.get("q") ?? "";
  const offset = offsetOf(p);
  const r = useApi("jobs", { role, q, offset, limit: LIMIT });
  const link = useLink();
  const setParams = useSetParams();
  const d = r.data;
  return html`<section data-testid="page-jobs" class="with-side">
    <aside class="side" data-testid="roles">
      <h3>Roles</h3>
      <ul>
        <li class=${role ? "" : "sel"}><a href=${link("/jobs", { q })}>all roles</a></li>
        ${(d?.roles ?? []).map(
          (x) =>
            html`<li key=${x.role} class=${x.role === role ? "sel" : ""}>
              <a href=${link("/jobs", { role: x.role, q })} data-testid="role-link" data-role=${x.role}>${x.role}</a>
              <span class="muted">${num(x.jobs)}</span>
            </li>`,
        )}
      </ul>
    </aside>
    <div class="main">
      <div class="toolbar">
        <h2>Jobs${role ? html` of <code>${role}</code>` : ""}</h2>
        <${Search}
          value=${q}
          placeholder="search job keys"
          testid="job-search"
          onSearch=${(v) => setParams({ q: v, offset: null }, { replace: true })}
        />
      </div>
      <${Loading} ...${r}>
        ${
          d &&
          html`<table class="rows" data-testid="jobs-table">
            <thead>
              <tr><th>job</th><th>tier</th><th>prio</th><th>instances</th><th>active</th><th>tasks</th></tr>
            </thead>
            <tbody>
              ${d.items.map(
                (j) =>
                  html`<tr key=${j.job} data-testid="job-row" data-job=${j.job}>
                    <td><a href=${link(jobPath(j.job))} data-testid="job-link">${j.job}</a>${j.service ? "" : html` <span class="tag">batch</span>`}</td>
                    <td>${j.tier}</td>
                    <td>${j.priority}</td>
                    <td>${num(j.instances)}</td>
                    <td>${num(j.active)}</td>
                    <td><${StateCounts} counts=${j.states} /></td>
                  </tr>`,
              )}
              ${d.items.length === 0 ? html`<tr><td colspan="6" class="muted">no job${q ? ` matches “${q}”` : ""}</td></tr>` : null}
            </tbody>
          </table>
          <${Pager} total=${d.total} offset=${d.offset ?? offset} limit=${LIMIT} onOffset=${(o) => setParams({ offset: o || null })} />`
        }
      <//>
    </div>
  </section>`;
}

// ---------------------------------------------------------------------------------------------

const INSTANCES_PER_PAGE = 100;

export function Job({ job }) {
  const r = useApi("job", { job });
  const link = useLink();
  const [offset, setOffset] = useState(0);
  const d = r.data;
  // The job's config: {role, environment, name, instances, task: {service, resources, processes, …}}
  // (the task's fields at the top level are read too).
  const c = { ...(d?.config ?? {}), ...(d?.config?.task ?? {}) };
  const res = c.resources ?? {};
  return html`<section data-testid="page-job">
    <div class="toolbar">
      <h2>Job <code data-testid="job-key">${job}</code></h2>
      <span class="links">
        <a href=${link("/tasks", { job })}>tasks</a>
        <a href=${link("/updates", { job })} data-testid="job-updates">updates</a>
        <a href=${link("/log", { job })}>events</a>
      </span>
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<div class="cols">
          <div>
            <h3>Config</h3>
            <${Facts}
              testid="job-config"
              items=${[
                ["kind", d.job.service ? "service" : "batch"],
                ["tier", d.job.tier],
                ["priority", d.job.priority],
                ["instances", num(d.job.instances)],
                ["config version", d.job.configVersion],
                [
                  "resources",
                  `cpus ${num(res.cpus)} · ramMb ${num(res.ramMb)} · diskMb ${num(res.diskMb)}${res.gpus ? ` · gpus ${res.gpus}` : ""}`,
                ],
                ["ports", (res.ports ?? []).join(", ")],
                ["constraints", c.constraints && Object.keys(c.constraints).length ? JSON.stringify(c.constraints) : ""],
                ["maxTaskFailures", c.maxTaskFailures],
                [
                  "created",
                  d.createdSeq
                    ? html`<a href=${link(jobPath(job), { at: d.createdSeq })} data-testid="job-created">seq ${d.createdSeq}</a> ${iso(d.createdTs)}`
                    : "",
                ],
              ]}
            />
          </div>
          <div>
            <h3>Processes</h3>
            <ul class="procs">
              ${(c.processes ?? []).map((p) => html`<li key=${p.name}><b>${p.name}</b> <code>${p.cmdline}</code></li>`)}
            </ul>
            <h3>Task states</h3>
            <${StateCounts} counts=${d.job.states} href=${(st) => link("/tasks", { job, state: st })} />
          </div>
        </div>
        <h3>Instances</h3>
        <table class="rows" data-testid="instances-table">
          <thead>
            <tr><th>#</th><th>task</th><th>state</th><th>host</th><th>ports</th><th>failures</th><th>exit</th><th>reason</th></tr>
          </thead>
          <tbody>
            ${d.instances.slice(offset, offset + INSTANCES_PER_PAGE).map(
              (i) =>
                html`<tr key=${i.taskId} data-testid="task-row" data-task=${i.taskId} data-state=${i.state} data-instance=${i.instance}>
                  <td>${i.instance}</td>
                  <td><a href=${link(taskPath(i.taskId))} data-testid="task-link">${i.taskId}</a></td>
                  <td><${State} state=${i.state} testid="task-state" /></td>
                  <td>${i.host ?? ""}</td>
                  <td>${ports(i.ports)}</td>
                  <td>${i.failureCount || ""}</td>
                  <td>${i.exitCode ?? ""}</td>
                  <td class="reason">${i.reason}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${
          d.instances.length > INSTANCES_PER_PAGE
            ? html`<${Pager} total=${d.instances.length} offset=${offset} limit=${INSTANCES_PER_PAGE} onOffset=${setOffset} />`
            : null
        }`
      }
    <//>
  </section>`;
}

// ---------------------------------------------------------------------------------------------

/** TaskRow[] as a table (the tasks page, an agent's tasks). */
export function TaskTable({ items, showJob = true, testid = "tasks-table" }) {
  const link = useLink();
  return html`<table class="rows" data-testid=${testid}>
    <thead>
      <tr>
        <th>task</th>
        ${showJob ? html`<th>job</th>` : null}<th>#</th><th>state</th><th>host</th><th>failures</th><th>reason</th>
      </tr>
    </thead>
    <tbody>
      ${items.map(
        (t) =>
          html`<tr key=${t.taskId} data-testid="task-row" data-task=${t.taskId} data-state=${t.state}>
            <td><a href=${link(taskPath(t.taskId))} data-testid="task-link">${t.taskId}</a></td>
            ${showJob ? html`<td><a href=${link(jobPath(t.job))}>${t.job}</a></td>` : null}
            <td>${t.instance}</td>
            <td><${State} state=${t.state} testid="task-state" /></td>
            <td>${t.agentId ? html`<a href=${link(agentPath(t.agentId))}>${t.host ?? t.agentId}</a>` : (t.host ?? "")}</td>
            <td>${t.failureCount || ""}</td>
            <td class="reason">${t.reason}</td>
          </tr>`,
      )}
      ${items.length === 0 ? html`<tr><td colspan="7" class="muted">no task</td></tr>` : null}
    </tbody>
  </table>`;
}

export function Tasks() {
  const { route } = useContext(AppContext);
  const p = route.params;
  const filter = { job: p.get("job") ?? "", state: p.get("state") ?? "", agent: p.get("agent") ?? "", q: p.get("q") ?? "" };
  const offset = offsetOf(p);
  const r = useApi("tasks", { ...filter, offset, limit: LIMIT });
  const setParams = useSetParams();
  const d = r.data;
  const chips = Object.entries(filter).filter(([k, v]) => v && k !== "q");
  return html`<section data-testid="page-tasks">
    <div class="toolbar">
      <h2>Tasks</h2>
      ${chips.map(
        ([k, v]) =>
          html`<span class="chip" key=${k}>${k}: ${v} <button type="button" onClick=${() => setParams({ [k]: null, offset: null })}>×</button></span>`,
      )}
      <${Search}
        value=${filter.q}
        placeholder="search task ids"
        testid="task-search"
        onSearch=${(v) => setParams({ q: v, offset: null }, { replace: true })}
      />
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<${TaskTable} items=${d.items} />
        <${Pager} total=${d.total} offset=${d.offset ?? offset} limit=${LIMIT} onOffset=${(o) => setParams({ offset: o || null })} />`
      }
    <//>
  </section>`;
}

// ---------------------------------------------------------------------------------------------

function Resource({ name, a }) {
  const total = a.resources?.[name] ?? 0;
  const used = a.used?.[name] ?? 0;
  return html`<span class="res" title=${`${name}: used ${used}, free ${a.free?.[name] ?? total - used} of ${total}`}>
    <${Bar} used=${used} total=${total} /> ${usage(used, total)}
  </span>`;
}

export function Agents() {
  const { route } = useContext(AppContext);
  const q = route.params.get("q") ?? "";
  const offset = offsetOf(route.params);
  const r = useApi("agents", { q, offset, limit: LIMIT });
  const link = useLink();
  const setParams = useSetParams();
  const d = r.data;
  return html`<section data-testid="page-agents">
    <div class="toolbar">
      <h2>Agents</h2>
      <${Search}
        value=${q}
        placeholder="search agents or hosts"
        testid="agent-search"
        onSearch=${(v) => setParams({ q: v, offset: null }, { replace: true })}
      />
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<table class="rows" data-testid="agents-table">
          <thead>
            <tr><th>agent</th><th>host</th><th>state</th><th>cpus</th><th>ramMb</th><th>diskMb</th><th>gpus</th><th>tasks</th><th>attributes</th></tr>
          </thead>
          <tbody>
            ${d.items.map(
              (a) =>
                html`<tr key=${a.agentId} data-testid="agent-row" data-agent=${a.agentId} data-state=${a.state}>
                  <td><a href=${link(agentPath(a.agentId))} data-testid="agent-link">${a.agentId}</a></td>
                  <td>${a.host}</td>
                  <td><${State} state=${a.state} /></td>
                  <td><${Resource} name="cpus" a=${a} /></td>
                  <td><${Resource} name="ramMb" a=${a} /></td>
                  <td><${Resource} name="diskMb" a=${a} /></td>
                  <td>${a.resources?.gpus ? html`<${Resource} name="gpus" a=${a} />` : ""}</td>
                  <td><a href=${link("/tasks", { agent: a.agentId })}>${num(a.tasks)}</a></td>
                  <td class="attrs">${attrs(a.attributes)}</td>
                </tr>`,
            )}
            ${d.items.length === 0 ? html`<tr><td colspan="9" class="muted">no agent</td></tr>` : null}
          </tbody>
        </table>
        <${Pager} total=${d.total} offset=${d.offset ?? offset} limit=${LIMIT} onOffset=${(o) => setParams({ offset: o || null })} />`
      }
    <//>
  </section>`;
}

const attrs = (a) =>
  Object.entries(a ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");

export function Agent({ agentId }) {
  const r = useApi("agent", { agentId });
  const link = useLink();
  const [offset, setOffset] = useState(0);
  const d = r.data;
  const a = d?.agent;
  return html`<section data-testid="page-agent">
    <div class="toolbar">
      <h2>Agent <code>${agentId}</code></h2>
      <span class="links"><a href=${link("/log", { agent: agentId })}>events</a></span>
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<div class="cols">
          <div>
            <${Facts}
              testid="agent-facts"
              items=${[
                ["host", a.host],
                ["state", html`<${State} state=${a.state} testid="agent-state" />`],
                ["cpus", html`<${Resource} name="cpus" a=${a} />`],
                ["ramMb", html`<${Resource} name="ramMb" a=${a} />`],
                ["diskMb", html`<${Resource} name="diskMb" a=${a} />`],
                ["gpus", a.resources?.gpus ? html`<${Resource} name="gpus" a=${a} />` : ""],
                ["tasks", num(a.tasks)],
                ["attributes", attrs(a.attributes)],
              ]}
            />
            <${Accepts} state=${d.inspect.state} accepts=${d.inspect.accepts} graph=${d.inspect.graph} />
          </div>
          <div class="machine-box small">
            <${Machine} graph=${d.inspect.graph} current=${d.inspect.state} history=${d.inspect.history} testid="agent-machine" />
          </div>
        </div>
        <h3>History</h3>
        <${Transitions} history=${d.inspect.history} />
        <h3>Tasks</h3>
        <${TaskTable} items=${d.tasks.slice(offset, offset + LIMIT)} testid="agent-tasks" />
        ${d.tasks.length > LIMIT ? html`<${Pager} total=${d.tasks.length} offset=${offset} limit=${LIMIT} onOffset=${setOffset} />` : null}`
      }
    <//>
  </section>`;
}

/** inspect.history: [{seq, idx, ts, from, to, reason}], each seq a link to that moment. */
export function Transitions({ history, testid = "transitions" }) {
  const atHref = useAtHref();
  if (!history?.length) return html`<p class="muted">no transition yet</p>`;
  return html`<table class="rows" data-testid=${testid}>
    <thead>
      <tr><th>seq</th><th>time</th><th>from</th><th>to</th><th>reason</th></tr>
    </thead>
    <tbody>
      ${[...history].reverse().map(
        (t) =>
          html`<tr key=${`${t.seq}.${t.idx}`}>
            <td><a href=${atHref(t.seq)} title="show the cluster at this moment">${t.seq}</a></td>
            <td><${Time} ts=${t.ts} /></td>
            <td><${State} state=${t.from} /></td>
            <td><${State} state=${t.to} /></td>
            <td class="reason">${t.reason}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

// ---------------------------------------------------------------------------------------------

export function Pending() {
  const { route } = useContext(AppContext);
  const offset = offsetOf(route.params);
  const r = useApi("pending", { offset, limit: LIMIT });
  const link = useLink();
  const setParams = useSetParams();
  const d = r.data;
  const now = d?.at?.ts;
  return html`<section data-testid="page-pending">
    <h2>Pending</h2>
    <${Loading} ...${r}>
      ${
        d &&
        html`<table class="rows" data-testid="pending-table">
          <thead>
            <tr><th>task</th><th>job</th><th>#</th><th>since</th><th>waiting</th><th>reason</th></tr>
          </thead>
          <tbody>
            ${d.items.map(
              (t) =>
                html`<tr key=${t.taskId} data-testid="pending-row" data-task=${t.taskId}>
                  <td><a href=${link(taskPath(t.taskId))} data-testid="task-link">${t.taskId}</a></td>
                  <td><a href=${link(jobPath(t.job))}>${t.job}</a></td>
                  <td>${t.instance}</td>
                  <td>${t.since ? html`<a href=${link("/pending", { at: t.since.seq })}>seq ${t.since.seq}</a> ${iso(t.since.ts)}` : ""}</td>
                  <td>${t.since && now ? duration(now - t.since.ts) : ""}</td>
                  <td class="reason">${t.reason}</td>
                </tr>`,
            )}
            ${d.items.length === 0 ? html`<tr><td colspan="6" class="muted">nothing is pending</td></tr>` : null}
          </tbody>
        </table>
        <${Pager} total=${d.total} offset=${d.offset ?? offset} limit=${LIMIT} onOffset=${(o) => setParams({ offset: o || null })} />`
      }
    <//>
  </section>`;
}

// ---------------------------------------------------------------------------------------------

export function Quotas() {
  const r = useApi("quotas");
  const link = useLink();
  const d = r.data;
  const cell = (q, name) =>
    html`<td><${Bar} used=${q.used?.[name] ?? 0} total=${q.quota?.[name] ?? 0} /> ${usage(q.used?.[name], q.quota?.[name])}</td>`;
  return html`<section data-testid="page-quotas">
    <h2>Production quotas</h2>
    <${Loading} ...${r}>
      ${
        d &&
        html`<table class="rows" data-testid="quotas-table">
        <thead>
          <tr><th>role</th><th>cpus</th><th>ramMb</th><th>diskMb</th><th>production jobs</th></tr>
        </thead>
        <tbody>
          ${d.items.map(
            (q) =>
              html`<tr key=${q.role} data-testid="quota-row" data-role=${q.role}>
                <td><a href=${link("/jobs", { role: q.role })}>${q.role}</a></td>
                ${cell(q, "cpus")} ${cell(q, "ramMb")} ${cell(q, "diskMb")}
                <td>${num(q.jobs)}</td>
              </tr>`,
          )}
          ${d.items.length === 0 ? html`<tr><td colspan="5" class="muted">no role has a quota</td></tr>` : null}
        </tbody>
      </table>`
      }
    <//>
  </section>`;
}

// ---------------------------------------------------------------------------------------------

const LOG_LIMIT = 100;

export function Log() {
  const { route, onShown } = useContext(AppContext);
  const p = route.params;
  const filter = { job: p.get("job") ?? "", agent: p.get("agent") ?? "", task: p.get("task") ?? "", type: p.getAll("type") };
  const from = p.get("from") ?? "";
  const r = useApi("log", { ...filter, from, limit: LOG_LIMIT });
  const link = useLink();
  const setParams = useSetParams();
  const d = r.data;
  // A log reply without `at` (the contract does not promise one): unfiltered and from the top, its
  // newest item is the moment shown.
  const top = d && !d.at && !from && !filter.job && !filter.agent && !filter.task && !filter.type.length ? d.items[0] : null;
  useEffect(() => {
    if (top) onShown({ seq: top.seq, ts: top.ts });
  }, [top?.seq]);
  const onFilter = (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const types = String(f.get("type") ?? "")
      .split(/[\s,]+/)
      .filter(Boolean);
    navigate(routeHref(route.path, { job: f.get("job"), agent: f.get("agent"), task: f.get("task"), type: types, at: p.get("at") }));
  };
  return html`<section data-testid="page-log">
    <div class="toolbar">
      <h2>Event log</h2>
      <form class="filters" onSubmit=${onFilter} data-testid="log-filter">
        <input name="job" placeholder="job role/env/name" value=${filter.job} />
        <input name="agent" placeholder="agent" value=${filter.agent} />
        <input name="task" placeholder="task id" value=${filter.task} />
        <input name="type" placeholder="types, e.g. TaskStateChanged" value=${filter.type.join(",")} />
        <button type="submit">filter</button>
      </form>
    </div>
    <${Loading} ...${r}>
      ${
        d &&
        html`<div class="pager">
          <button type="button" disabled=${d.prev === null || d.prev === undefined} onClick=${() => setParams({ from: d.prev })}>‹ newer</button>
          <button type="button" disabled=${!from} onClick=${() => setParams({ from: null })}>newest</button>
          <button type="button" disabled=${d.next === null || d.next === undefined} onClick=${() => setParams({ from: d.next })}>older ›</button>
        </div>
        <table class="rows log" data-testid="log-table">
          <thead>
            <tr><th>seq</th><th>time</th><th>epoch</th><th>type</th><th>job / agent</th><th>reason</th></tr>
          </thead>
          <tbody>
            ${d.items.map(
              (e) =>
                html`<tr key=${`${e.seq}.${e.index}`} data-testid="log-row" data-seq=${e.seq} data-type=${e.type}>
                  <td><a href=${link(route.path, { ...filter, at: e.seq })} title="show the cluster at this moment">${e.seq}.${e.index}</a></td>
                  <td><${Time} ts=${e.ts} /></td>
                  <td>${e.epoch}</td>
                  <td><a href=${link(route.path, { ...filter, type: [e.type] })}>${e.type}</a></td>
                  <td>
                    ${e.job ? html`<a href=${link(jobPath(e.job))}>${e.job}</a> ` : null}
                    ${e.agent ? html`<a href=${link(agentPath(e.agent))}>${e.agent}</a> ` : null}
                    ${e.data?.taskId ? html`<a href=${link(taskPath(e.data.taskId))}>${e.data.taskId}</a>` : null}
                  </td>
                  <td class="reason">
                    ${e.reason}
                    <details>
                      <summary>data</summary>
                      <pre>${JSON.stringify(e.data, null, 1)}</pre>
                      ${e.corr ? html`<div class="muted">corr ${e.corr}</div>` : null}
                    </details>
                  </td>
                </tr>`,
            )}
            ${d.items.length === 0 ? html`<tr><td colspan="6" class="muted">no event matches</td></tr>` : null}
          </tbody>
        </table>`
      }
    <//>
  </section>`;
}
