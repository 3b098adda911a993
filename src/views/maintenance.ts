// The web UI's maintenance page, as a read model of the fold at a moment: hosts by maintenance
// mode (and those that left it recently) with since when and who asked, the drain request (its
// SLA and when it is forced), each host's drain progress (tasks still active on it, being
// drained, drained), each SLA denial with its reason, and the maintenance windows. Pure: `now`
// is the moment's log time.

import type { ClusterState, MaintenanceWindowRecord, TaskRecord } from "../replay/state.js";
import { HISTORY_STRIDE } from "../replay/state.js";
import { ACTIVE_STATES, TASK_STATES } from "../statemachines/taskStates.js";

/** A host back to NONE within this long of the moment is still shown. */
const RECENT_MS = 24 * 3600_000;
/** The most tasks listed per host (the counts are whole). */
const TASKS_PER_HOST = 200;
const DRAINING = TASK_STATES.indexOf("DRAINING");
const MODE_ORDER = { DRAINING: 0, DRAINED: 1, SCHEDULED: 2, NONE: 3 } as const;

interface TaskRow {
  taskId: string;
  job: string;
  instance: number;
  state: string;
}

interface MaintenanceHostView {
  host: string;
  mode: "NONE" | "SCHEDULED" | "DRAINING" | "DRAINED";
  sinceSeq: number;
  sinceTs: number;
  user: string | null;
  windowId: string | null;
  rack: string | null;
  drain: {
    sla: { percentage: number; durationSecs: number } | null;
    forceDrainTimeoutMs: number;
    /** When the drain is forced whatever the SLAs say (log time). */
    forceAtTs: number;
    slaAwareKillNonProd: boolean;
    requestedSeq: number;
    requestedTs: number;
  } | null;
  /** Live tasks still on the host (not being drained), being drained (DRAINING), and drained since the request (ended after DRAINING). */
  progress: { active: number; draining: number; drained: number };
  /** The live tasks on it, each with its newest denial's reason when it has one. */
  tasks: Array<TaskRow & { denied: string | null }>;
  denials: Array<TaskRow & { seq: number; ts: number; reason: string }>;
}

export interface MaintenanceView {
  now: number;
  hosts: MaintenanceHostView[];
  windows: Array<{
    windowId: string;
    hosts: string[];
    startTs: number;
    endTs: number;
    user: string;
    sla: { percentage: number; durationSecs: number } | null;
    forceDrainTimeoutMs: number;
    status: "scheduled" | "open" | "ended" | "cancelled";
    createdSeq: number;
    openedSeq: number | null;
    ended: { seq: number; ts: number; user: string | null } | null;
  }>;
}

function drainedSince(t: TaskRecord, seq: number): boolean {
  const h = t.history;
  for (let i = h.length - HISTORY_STRIDE; i >= 0; i -= HISTORY_STRIDE) {
    if (h[i]! < seq) return false;
    if (h[i + 3] === DRAINING) return true;
  }
  return false;
}

const row = (t: TaskRecord): TaskRow => ({ taskId: t.taskId, job: t.job, instance: t.instance, state: t.state });

function windowStatus(w: MaintenanceWindowRecord): MaintenanceView["windows"][number]["status"] {
  if (w.ended) return w.ended.cancelled ? "cancelled" : "ended";
  return w.openedSeq === null ? "scheduled" : "open";
}

/** Hosts in maintenance (and back from it within a day), DRAINING first, then the windows, newest first. */
export function maintenanceView(state: ClusterState, now: number): MaintenanceView {
  const shown = [...state.hosts.values()].filter((h) => h.mode !== "NONE" || h.sinceTs >= now - RECENT_MS);
  const onHost = new Map<string, TaskRecord[]>(shown.map((h) => [h.host, []]));
  for (const t of state.tasks.values()) if (t.host !== null) onHost.get(t.host)?.push(t);
  const racks = new Map<string, string>();
  for (const a of state.agents.values()) if (a.attributes.rack !== undefined) racks.set(a.host, a.attributes.rack);
  const hosts = shown.map((h): MaintenanceHostView => {
    const tasks = onHost.get(h.host)!;
    const live = tasks
      .filter((t) => ACTIVE_STATES.has(t.state))
      .sort((a, b) => (a.job < b.job ? -1 : a.job > b.job ? 1 : a.instance - b.instance));
    const draining = live.filter((t) => t.state === "DRAINING").length;
    const drained =
      h.drain === null ? 0 : tasks.filter((t) => !ACTIVE_STATES.has(t.state) && drainedSince(t, h.drain!.requestedSeq)).length;
    const byId = new Map(tasks.map((t) => [t.taskId as string, t]));
    return {
      host: h.host,
      mode: h.mode,
      sinceSeq: h.sinceSeq,
      sinceTs: h.sinceTs,
      user: h.user,
      windowId: h.windowId,
      rack: racks.get(h.host) ?? null,
      drain:
        h.drain === null
          ? null
          : {
              sla: h.drain.sla,
              forceDrainTimeoutMs: h.drain.forceDrainTimeoutMs,
              forceAtTs: h.drain.requestedTs + h.drain.forceDrainTimeoutMs,
              slaAwareKillNonProd: h.drain.slaAwareKillNonProd,
              requestedSeq: h.drain.requestedSeq,
              requestedTs: h.drain.requestedTs,
            },
      progress: { active: live.length - draining, draining, drained },
      tasks: live.slice(0, TASKS_PER_HOST).map((t) => ({ ...row(t), denied: h.denials[t.taskId]?.reason ?? null })),
      denials: Object.entries(h.denials)
        .map(([id, d]) => {
          const t = byId.get(id) ?? state.tasks.get(id as never);
          return { taskId: id, job: t?.job ?? "", instance: t?.instance ?? -1, state: t?.state ?? "", ...d };
        })
        .sort((a, b) => b.seq - a.seq),
    };
  });
  hosts.sort((a, b) => MODE_ORDER[a.mode] - MODE_ORDER[b.mode] || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  const windows = [...state.windows.values()].reverse().map((w) => ({
    windowId: w.windowId,
    hosts: w.hosts,
    startTs: w.startTs,
    endTs: w.startTs + w.durationMs,
    user: w.user,
    sla: w.drain.sla,
    forceDrainTimeoutMs: w.drain.forceDrainTimeoutMs,
    status: windowStatus(w),
    createdSeq: w.createdSeq,
    openedSeq: w.openedSeq,
    ended: w.ended === null ? null : { seq: w.ended.seq, ts: w.ended.ts, user: w.ended.user },
  }));
  return { now, hosts, windows };
}
