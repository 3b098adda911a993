// The invariants the fold keeps and relies on, asserted in one place. The fold (fold.ts) leans
// on them everywhere with a "!" or a silent skip: release() frees what acquire() took only if
// the task is in its agent's set, placement offers `resources - used`, the pending index feeds
// placement, `job.instances` is the instance's newest task, and so on. A fold that breaks one
// does not throw; it drifts (an agent that can never be filled again, an instance with two
// copies), so they are checked from outside: by the simulator's swarm after every record each
// replica folds (src/sim/swarm.ts), and by test/invariants.test.ts on the golden logs.
//
// checkInvariants(state) returns one line per violation (empty when all hold), each naming the
// invariant and the task, job or agent. Pure: it reads the state and nothing else.

import type { AgentId, TaskId } from "../domain/types.js";
import { HISTORY_STRIDE, type ClusterState, type TaskRecord } from "./state.js";
import { ON_AGENT_STATES, TASK_STATES, TERMINAL_STATES } from "../statemachines/taskStates.js";

/** The names of the invariants, as they start each violation line. */
export const INVARIANTS = [
  "agent-used-non-negative",
  "agent-used-is-sum-of-tasks",
  "agent-ports",
  "agent-tasks-exact",
  "task-agent-known",
  "task-on-removed-agent",
  "task-job-known",
  "task-placement-fields",
  "task-history",
  "one-live-task-per-instance",
  "instances-newest-task",
  "pending-index",
  "task-state-counts",
  "reschedule-obligation",
  "successor-link",
  "failure-budget",
  "reservation",
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** Cpus in whole thousandths: the unit fold.ts rounds every sum to. */
const milli = (cpus: number): number => Math.round(cpus * 1000);

/** Where the task was created: its first history entry, (seq, idx) packed for comparison. */
function createdAt(t: TaskRecord): number {
  return t.history.length >= HISTORY_STRIDE ? t.history[0]! * 1_000_000 + t.history[1]! : -1;
}

/**
 * Every violation of the fold's invariants in `state`, one line each ("<invariant>: <what>"),
 * at most `limit` of them (default 50; the last line then says how many more there were).
 */
export function checkInvariants(state: ClusterState, opts: { limit?: number } = {}): string[] {
  const limit = opts.limit ?? 50;
  const out: string[] = [];
  let more = 0;
  const bad = (name: InvariantName, what: string): void => {
    if (out.length < limit) out.push(`${name}: ${what}`);
    else more++;
  };

  // ---- tasks: one pass, building what the agent and job checks compare against ------------------
  /** agentId → its tasks in an on-agent state, by the tasks' own account. */
  const onAgent = new Map<AgentId, TaskRecord[]>();
  /** `${job}#${instance}` → the live (non-terminal, non-INIT) tasks of the job's current incarnation. */
  const live = new Map<string, TaskId[]>();
  /** `${job}#${instance}` → the newest task of the job's current incarnation. */
  const newest = new Map<string, TaskRecord>();
  for (const t of state.tasks.values()) {
    const job = state.jobs.get(t.job);
    if (!job) {
      bad("task-job-known", `task ${t.taskId} belongs to job ${t.job}, which the state does not hold`);
      continue;
    }
    const cfg = job.configs[t.configVersion];
    if (!cfg) bad("task-job-known", `task ${t.taskId} runs config version ${t.configVersion} of ${t.job}, which the job lacks`);
    else if (cfg.service !== t.service || cfg.maxTaskFailures !== t.maxTaskFailures)
      bad(
        "task-job-known",
        `task ${t.taskId} keeps service/maxTaskFailures ${t.service}/${t.maxTaskFailures}, its config says ${cfg.service}/${cfg.maxTaskFailures}`,
      );

    // History: the newest entry is the state the task is in (timers read when it entered it).
    const h = t.history;
    if (h.length < HISTORY_STRIDE || h.length % HISTORY_STRIDE !== 0) {
      bad("task-history", `task ${t.taskId} (${t.state}) has a history of ${h.length} numbers, not whole entries of ${HISTORY_STRIDE}`);
    } else {
      const last = TASK_STATES[h[h.length - HISTORY_STRIDE + 3]!];
      if (last !== t.state) bad("task-history", `task ${t.taskId} is ${t.state}, but its newest history entry says ${last}`);
      for (let i = HISTORY_STRIDE; i < h.length; i += HISTORY_STRIDE) {
        if (h[i]! < h[i - HISTORY_STRIDE]! || (h[i] === h[i - HISTORY_STRIDE] && h[i + 1]! < h[i + 1 - HISTORY_STRIDE]!)) {
          bad("task-history", `task ${t.taskId}: history entry ${i / HISTORY_STRIDE} is older in the log than the one before it`);
          break;
        }
      }
    }

    // Where it is: on an agent exactly in the on-agent states, and only on an agent the state holds.
    const on = ON_AGENT_STATES.has(t.state);
    if (on) {
      if (t.agentId === null) bad("task-placement-fields", `task ${t.taskId} is ${t.state} but names no agent`);
      else if (!state.agents.has(t.agentId))
        bad("task-agent-known", `task ${t.taskId} is ${t.state} on agent ${t.agentId}, which the state does not hold`);
      else {
        let list = onAgent.get(t.agentId);
        if (!list) onAgent.set(t.agentId, (list = []));
        list.push(t);
        if (state.agents.get(t.agentId)!.state === "REMOVED")
          bad("task-on-removed-agent", `task ${t.taskId} is ${t.state} on agent ${t.agentId}, which the log holds REMOVED`);
      }
    }
    if ((t.state === "INIT" || t.state === "PENDING" || t.state === "THROTTLED") && t.agentId !== null)
      bad("task-placement-fields", `task ${t.taskId} is ${t.state} yet names agent ${t.agentId}`);
    if ((t.agentId === null) !== (t.ports === null))
      bad("task-placement-fields", `task ${t.taskId}: agent ${t.agentId ?? "none"} but ports ${t.ports === null ? "none" : "set"}`);

    // The reschedule obligation: only a terminal task without a successor, of an instance not killed.
    const terminal = TERMINAL_STATES.has(t.state);
    if (t.rescheduleWanted) {
      if (!terminal) bad("reschedule-obligation", `task ${t.taskId} wants rescheduling but is ${t.state}`);
      if (t.successorId !== null) bad("reschedule-obligation", `task ${t.taskId} wants rescheduling but has successor ${t.successorId}`);
      if (job.killedInstances.has(t.instance) && createdAt(t) >= job.createdSeq * 1_000_000)
        bad("reschedule-obligation", `task ${t.taskId} wants rescheduling but instance ${t.instance} of ${t.job} was killed`);
    }
    if (t.successorId !== null) {
      const s = state.tasks.get(t.successorId);
      if (!s) bad("successor-link", `task ${t.taskId} names successor ${t.successorId}, which the state does not hold`);
      else if (s.ancestorId !== t.taskId || s.job !== t.job || s.instance !== t.instance)
        bad("successor-link", `task ${t.taskId} names successor ${s.taskId}, whose ancestor is ${s.ancestorId} (${s.job}#${s.instance})`);
      if (!terminal) bad("successor-link", `task ${t.taskId} has successor ${t.successorId} but is ${t.state}`);
    }
    if (t.ancestorId !== null) {
      const a = state.tasks.get(t.ancestorId);
      if (a && a.successorId !== t.taskId)
        bad("successor-link", `task ${t.taskId} names ancestor ${a.taskId}, whose successor is ${a.successorId ?? "none"}`);
    }

    // A batch task is not run again once its failures reach maxTaskFailures.
    if (!t.service && t.maxTaskFailures >= 1 && t.failureCount > t.maxTaskFailures)
      bad("failure-budget", `batch task ${t.taskId} has failed ${t.failureCount} times, over its maxTaskFailures ${t.maxTaskFailures}`);

    // Instances: only tasks of the job's current incarnation (created by or after its JobCreated).
    const key = `${t.job}#${t.instance}`;
    if (createdAt(t) < job.createdSeq * 1_000_000) {
      // A job created again ends its earlier incarnation: nothing of it may run or come back.
      if (!terminal) bad("one-live-task-per-instance", `task ${t.taskId} of an earlier incarnation of ${t.job} is still ${t.state}`);
      if (t.rescheduleWanted)
        bad("reschedule-obligation", `task ${t.taskId} of an earlier incarnation of ${t.job} still wants rescheduling`);
      continue;
    }
    if (!terminal && t.state !== "INIT") {
      const l = live.get(key);
      if (l) l.push(t.taskId);
      else live.set(key, [t.taskId]);
    }
    const n = newest.get(key);
    if (!n || createdAt(t) > createdAt(n)) newest.set(key, t);
  }

  for (const [key, ids] of live) {
    if (ids.length > 1) bad("one-live-task-per-instance", `instance ${key} has ${ids.length} live tasks: ${ids.join(", ")}`);
  }

  // ---- jobs: instances map each instance to its newest task -------------------------------------
  for (const job of state.jobs.values()) {
    if (!job.configs[job.configVersion]) bad("task-job-known", `job ${job.key} has no config for its version ${job.configVersion}`);
    for (const [i, taskId] of job.instances) {
      const t = state.tasks.get(taskId);
      if (!t) bad("instances-newest-task", `${job.key} instance ${i} maps to task ${taskId}, which the state does not hold`);
      else if (t.job !== job.key || t.instance !== i)
        bad("instances-newest-task", `${job.key} instance ${i} maps to task ${taskId} of ${t.job}#${t.instance}`);
      else if (newest.get(`${job.key}#${i}`) !== t)
        bad("instances-newest-task", `${job.key} instance ${i} maps to ${taskId}, but ${newest.get(`${job.key}#${i}`)?.taskId} is newer`);
      // An update adds instances before it makes its config the job's, and leaves the ones it
      // removed behind, ended: only a live task outside both counts is wrong.
      const count = Math.max(job.config.instances, state.activeUpdate(job.key)?.config.instances ?? 0);
      if (i < 0 || (i >= count && t !== undefined && !TERMINAL_STATES.has(t.state)))
        bad("instances-newest-task", `${job.key} has instance ${i} (${t?.state}), outside its ${job.config.instances} instances`);
    }
  }
  for (const [key, t] of newest) {
    if (state.jobs.get(t.job)?.instances.get(t.instance) !== t.taskId)
      bad("instances-newest-task", `instance ${key}'s newest task ${t.taskId} is not what the job maps the instance to`);
  }

  // ---- the pending index ---------------------------------------------------------------------------
  let pendingTasks = 0;
  for (const t of state.tasks.values()) {
    if (t.state !== "PENDING") continue;
    pendingTasks++;
    if (!state.pending.has(t.taskId)) bad("pending-index", `task ${t.taskId} is PENDING but not in the pending index`);
  }
  if (state.pending.size !== pendingTasks) {
    for (const id of state.pending) {
      const s = state.tasks.get(id)?.state;
      if (s !== "PENDING") bad("pending-index", `the pending index holds ${id}, which is ${s ?? "not in the state"}`);
    }
  }

  // Placement's groups, once a leader built them, hold exactly the pending tasks, each under its
  // own job and config version.
  const groups = state.builtPendingGroups();
  if (groups !== null) {
    let grouped = 0;
    for (const [job, versions] of groups) {
      for (const [version, ids] of versions) {
        if (ids.size === 0) bad("pending-index", `the pending group ${job}#${version} is empty but kept`);
        for (const id of ids) {
          grouped++;
          const t = state.tasks.get(id);
          if (!state.pending.has(id) || t?.job !== job || t.configVersion !== version)
            bad(
              "pending-index",
              `the pending group ${job}#${version} holds ${id}, which is ${t ? `${t.state} in ${t.job}#${t.configVersion}` : "not in the state"}`,
            );
        }
      }
    }
    if (grouped !== state.pending.size)
      bad("pending-index", `the pending groups hold ${grouped} tasks, the pending index ${state.pending.size}`);
  }

  // The counts by state, once something asked for them, are the tasks' own.
  const kept = state.builtTaskStateCounts();
  if (kept !== null) {
    const counted = new Map<string, number>();
    for (const t of state.tasks.values()) counted.set(t.state, (counted.get(t.state) ?? 0) + 1);
    for (const [s, n] of kept) {
      if ((counted.get(s) ?? 0) !== n) bad("task-state-counts", `${n} tasks counted ${s}, but ${counted.get(s) ?? 0} are`);
    }
  }

  // ---- agents: their task sets, resources and ports are exactly their tasks' ----------------------
  for (const agent of state.agents.values()) {
    const u = agent.used;
    for (const r of ["cpus", "ramMb", "diskMb", "gpus"] as const) {
      if (!(u[r] >= 0)) bad("agent-used-non-negative", `agent ${agent.agentId} uses ${u[r]} ${r}`);
    }
    const mine = onAgent.get(agent.agentId) ?? [];
    const ids = new Set(mine.map((t) => t.taskId));
    for (const id of agent.tasks) {
      if (!ids.has(id)) {
        const t = state.tasks.get(id);
        bad(
          "agent-tasks-exact",
          `agent ${agent.agentId} holds task ${id}, which is ${t ? `${t.state} on ${t.agentId ?? "no agent"}` : "not in the state"}`,
        );
      }
    }
    for (const t of mine)
      if (!agent.tasks.has(t.taskId))
        bad("agent-tasks-exact", `task ${t.taskId} is ${t.state} on ${agent.agentId}, which does not hold it`);

    let cpus = 0;
    let ramMb = 0;
    let diskMb = 0;
    let gpus = 0;
    const ports = new Map<number, string>();
    for (const id of agent.tasks) {
      const t = state.tasks.get(id);
      const cfg = t ? state.jobs.get(t.job)?.configs[t.configVersion] : undefined;
      if (!t || !cfg) continue; // reported above
      cpus += milli(cfg.resources.cpus);
      ramMb += cfg.resources.ramMb;
      diskMb += cfg.resources.diskMb;
      gpus += cfg.resources.gpus ?? 0;
      if (t.ports) {
        for (const name in t.ports) {
          const p = t.ports[name]!;
          const other = ports.get(p);
          if (other !== undefined) bad("agent-ports", `port ${p} on agent ${agent.agentId} is used by both ${other} and ${t.taskId}`);
          else ports.set(p, t.taskId);
        }
      }
    }
    if (milli(u.cpus) !== cpus || u.ramMb !== ramMb || u.diskMb !== diskMb || u.gpus !== gpus) {
      bad(
        "agent-used-is-sum-of-tasks",
        `agent ${agent.agentId} uses cpus ${u.cpus}, ramMb ${u.ramMb}, diskMb ${u.diskMb}, gpus ${u.gpus}; ` +
          `its ${agent.tasks.size} tasks need cpus ${cpus / 1000}, ramMb ${ramMb}, diskMb ${diskMb}, gpus ${gpus}`,
      );
    }
    if (agent.usedPorts.size !== ports.size || [...ports.keys()].some((p) => !agent.usedPorts.has(p))) {
      const extra = [...agent.usedPorts].filter((p) => !ports.has(p));
      const missing = [...ports.keys()].filter((p) => !agent.usedPorts.has(p));
      bad(
        "agent-ports",
        `agent ${agent.agentId} marks ports in use that its tasks do not hold (${extra.join(", ") || "none"}) or misses ones they do (${missing.join(", ") || "none"})`,
      );
    }
  }

  // ---- reservations: a held slot is for a pending task the state holds, on an agent it holds ------
  for (const [taskId, r] of state.reservations) {
    const t = state.tasks.get(r.taskId);
    if (r.taskId !== taskId) bad("reservation", `the reservation filed under ${taskId} is for ${r.taskId}`);
    if (!t) bad("reservation", `a slot is held for task ${r.taskId}, which the state does not hold`);
    else if (t.state !== "PENDING")
      bad("reservation", `a slot on ${r.agentId} is held for task ${r.taskId}, which is ${t.state}, not PENDING`);
    if (!state.agents.has(r.agentId))
      bad("reservation", `a slot for ${r.taskId} is held on agent ${r.agentId}, which the state does not hold`);
  }

  if (more > 0) out.push(`… and ${more} more`);
  return out;
}
