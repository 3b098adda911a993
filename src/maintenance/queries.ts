// Host maintenance, read: `roost host maintenance status` and `windows` (the Reads actor adds the
// reasons from the log). Pure: the folded state in, plain rows out.

import { isoTime } from "../domain/time.js";
import type { ClusterState } from "../replay/state.js";
import type { HostMode } from "../statemachines/host.js";
import { tasksOnHost } from "./drain.js";

export interface HostStatusRow {
  host: string;
  mode: HostMode;
  /** Active tasks on the host now. */
  tasks: number;
  /** When it entered its mode (RFC 3339), or null: never in maintenance. */
  since: string | null;
  /** The record that put it there (its event's reason is read from the log), or null. */
  sinceSeq: number | null;
  user: string | null;
  windowId: string | null;
  /** An agent has registered on it. */
  known: boolean;
  drain: {
    sla: { percentage: number; durationSecs: number } | null;
    forceDrainTimeoutMs: number;
    slaAwareKillNonProd: boolean;
    requestedTs: number;
    forcedAt: number;
  } | null;
  denials: Array<{ taskId: string; seq: number; ts: number; reason: string }>;
}

/** Every host an agent registered on or maintenance named (or only `hosts`), sorted by name. */
export function hostStatus(state: ClusterState, hosts?: readonly string[]): HostStatusRow[] {
  const known = new Set([...state.agents.values()].map((a) => a.host));
  const names = hosts ? [...new Set(hosts)] : [...new Set([...known, ...state.hosts.keys()])];
  return names.sort().map((host) => {
    const h = state.hosts.get(host);
    const d = h?.drain ?? null;
    return {
      host,
      mode: h?.mode ?? "NONE",
      tasks: tasksOnHost(state, host).length,
      since: h ? isoTime(h.sinceTs) : null,
      sinceSeq: h ? h.sinceSeq : null,
      user: h?.user ?? null,
      windowId: h?.windowId ?? null,
      known: known.has(host),
      drain:
        d === null
          ? null
          : {
              sla: d.sla === null ? null : { ...d.sla },
              forceDrainTimeoutMs: d.forceDrainTimeoutMs,
              slaAwareKillNonProd: d.slaAwareKillNonProd,
              requestedTs: d.requestedTs,
              forcedAt: d.requestedTs + d.forceDrainTimeoutMs,
            },
      denials: Object.entries(h?.denials ?? {})
        .map(([taskId, x]) => ({ taskId, seq: x.seq, ts: x.ts, reason: x.reason }))
        .sort((a, b) => a.seq - b.seq),
    };
  });
}

export interface WindowRow {
  windowId: string;
  hosts: string[];
  startTs: number;
  endTs: number;
  start: string;
  end: string;
  state: "scheduled" | "open" | "ended" | "cancelled";
  user: string;
  drain: { sla: { percentage: number; durationSecs: number } | null; forceDrainTimeoutMs: number; slaAwareKillNonProd: boolean };
  endedBy: string | null;
}

/** Maintenance windows, oldest first. */
export function windowList(state: ClusterState): WindowRow[] {
  return [...state.windows.values()].map((w) => ({
    windowId: w.windowId,
    hosts: [...w.hosts],
    startTs: w.startTs,
    endTs: w.startTs + w.durationMs,
    start: isoTime(w.startTs),
    end: isoTime(w.startTs + w.durationMs),
    state: w.ended !== null ? (w.ended.cancelled ? "cancelled" : "ended") : w.openedSeq !== null ? "open" : "scheduled",
    user: w.user,
    drain: {
      sla: w.drain.sla === null ? null : { ...w.drain.sla },
      forceDrainTimeoutMs: w.drain.forceDrainTimeoutMs,
      slaAwareKillNonProd: w.drain.slaAwareKillNonProd,
    },
    endedBy: w.ended?.user ?? null,
  }));
}
