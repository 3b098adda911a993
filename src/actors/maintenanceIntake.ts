// The API's host maintenance writes (admin: host.maintenance.start, drain, end, schedule and
// cancel; Aurora's aurora_admin host_deactivate, sla_host_drain / host_drain, host_activate, and
// Mesos's maintenance schedule), decided against the folded state. JobIntake runs them one at a
// time, in its mailbox, like every other write; what a drain then does is the Maintenance actor's
// (actors/maintenance.ts), from the log.
//
// Rules kept:
// - The same command twice is harmless: a host already in the mode asked for (a drain: with the
//   same request) is reported and skipped; when every host is skipped nothing is appended.
// - A move the host machine does not allow (statemachines/host.ts: start on a DRAINING host) is
//   refused, naming the host, its mode and the rule; nothing is changed for any host.
// - Hosts no agent has registered on are allowed (Aurora allows maintenance on hosts without
//   agents), and the reply names them.
// - A drain's request is Aurora's: a default SLA (percentage over durationSecs: 95% over 30 min)
//   for jobs without their own slaPolicy, a forced drain after forceDrainTimeoutSecs (7 days),
//   non-production jobs drained unchecked unless slaAwareKillNonProd; `force` is drainHosts:
//   no SLA and no timeout.
// - A window (schedule) takes hosts in service only (NONE: a host is in one window at a time, as
//   in Mesos), and must not be over before it is scheduled.

import type { AnyEnvelope } from "../domain/events.js";
import type { DrainRequest } from "../domain/maintenance.js";
import { isoTime } from "../domain/time.js";
import { drainText, fmtMs } from "../maintenance/drain.js";
import type { ClusterState } from "../replay/state.js";
import { DEFAULT_SLA_POLICY } from "../sla/policy.js";
import { type HostMode, hostStep } from "../statemachines/host.js";
import { RequestError } from "./api.js";
import type { TermContext } from "./context.js";

type Ctx = Pick<TermContext, "state" | "clock" | "ids" | "event">;

export type MaintenanceOp =
  | "host.maintenance.start"
  | "host.maintenance.drain"
  | "host.maintenance.end"
  | "host.maintenance.schedule"
  | "host.maintenance.cancel";

/** Aurora's sla_host_drain --force_drain_timeout default: 7 days. */
const DEFAULT_FORCE_DRAIN_TIMEOUT_SECS = 7 * 86_400;

interface DrainFields {
  percentage?: number;
  durationSecs?: number;
  forceDrainTimeoutSecs?: number;
  slaAwareKillNonProd?: boolean;
  force?: boolean;
}
interface HostsRequest extends DrainFields {
  hosts: string[];
  user?: string;
}
interface ScheduleRequest {
  hosts: string[];
  start: string | number;
  durationSecs: number;
  percentage?: number;
  slaDurationSecs?: number;
  forceDrainTimeoutSecs?: number;
  slaAwareKillNonProd?: boolean;
  force?: boolean;
  user?: string;
}
interface CancelRequest {
  windowId: string;
  user?: string;
}

/** One host's part of a write: where it was, where it goes, and whether this write moves it. */
interface HostOutcome {
  host: string;
  from: HostMode;
  to: HostMode;
  changed: boolean;
  note?: string;
}

/** What a decided write commits, and what it answers once committed (its `seq` is added then; null when nothing was). */
export interface MaintenanceWrite {
  events: AnyEnvelope[];
  value: { hosts: HostOutcome[]; unknownHosts: string[]; windowId?: string; startTs?: number; endTs?: number };
}

export function planMaintenance(c: Ctx, op: MaintenanceOp, req: unknown, corr: string): MaintenanceWrite {
  switch (op) {
    case "host.maintenance.start":
      return planStart(c, req as HostsRequest, corr);
    case "host.maintenance.drain":
      return planDrain(c, req as HostsRequest, corr);
    case "host.maintenance.end":
      return planEnd(c, req as HostsRequest, corr);
    case "host.maintenance.schedule":
      return planSchedule(c, req as ScheduleRequest, corr);
    case "host.maintenance.cancel":
      return planCancel(c, req as CancelRequest, corr);
  }
}

function user(req: { user?: unknown }): string {
  return typeof req.user === "string" && req.user ? req.user : "unknown";
}

const modeOf = (state: ClusterState, host: string): HostMode => state.hosts.get(host)?.mode ?? "NONE";

/** The hosts named, once each, in the order given. */
function hostsOf(req: { hosts: string[] }): string[] {
  return [...new Set(req.hosts)];
}

/** Hosts no agent has registered on (allowed, and said). */
function unknownHosts(state: ClusterState, hosts: readonly string[]): string[] {
  const known = new Set([...state.agents.values()].map((a) => a.host));
  return hosts.filter((h) => !known.has(h));
}

function unknownNote(unknown: readonly string[]): string {
  return unknown.length === 0 ? "" : ` (no agent has registered on ${unknown.join(", ")}: allowed, as in Aurora)`;
}

/** Refuse the whole write when a host cannot move to `to` (nothing changes for any host). */
function refuseDisallowed(state: ClusterState, hosts: readonly string[], to: HostMode, verb: string, hint: string): void {
  for (const host of hosts) {
    const from = modeOf(state, host);
    if (from === to && to !== "DRAINING") continue;
    if (!hostStep(from, to).allowed)
      throw new RequestError(
        `hosts: host ${host} is ${from}; rule: ${verb} moves a host to ${to}, which the host machine does not allow from ${from}${hint}`,
        "CONFLICT",
        "hosts",
      );
  }
}

function hostEvent(
  c: Ctx,
  hosts: string[],
  to: HostMode,
  who: string,
  reason: string,
  corr: string,
  extra: { drain?: DrainRequest; windowId?: string } = {},
): AnyEnvelope {
  return c.event("HostMaintenanceChanged", { hosts, to, user: who, ...extra }, reason, corr);
}

function planStart(c: Ctx, req: HostsRequest, corr: string): MaintenanceWrite {
  refuseDisallowed(c.state, hostsOf(req), "SCHEDULED", "start", " (end its maintenance first)");
  return planMove(
    c,
    req,
    corr,
    "SCHEDULED",
    "already SCHEDULED: skipped",
    (moving, who, unknown) =>
      `maintenance of ${list(moving)} started by ${who}: SCHEDULED, new tasks go elsewhere when another host fits${unknownNote(unknown.filter((h) => moving.includes(h)))}`,
  );
}

/**
 * start and end: every host not in `to` already moves there in one event (a host that is, is
 * reported as skipped; none moving appends nothing).
 */
function planMove(
  c: Ctx,
  req: HostsRequest,
  corr: string,
  to: "SCHEDULED" | "NONE",
  skipped: string,
  reason: (moving: string[], who: string, unknown: string[]) => string,
): MaintenanceWrite {
  const hosts = hostsOf(req);
  const outcomes = hosts.map((host): HostOutcome => {
    const from = modeOf(c.state, host);
    return from === to ? { host, from, to: from, changed: false, note: skipped } : { host, from, to, changed: true };
  });
  const unknown = unknownHosts(c.state, hosts);
  const moving = outcomes.filter((o) => o.changed).map((o) => o.host);
  const who = user(req);
  const events = moving.length === 0 ? [] : [hostEvent(c, moving, to, who, reason(moving, who, unknown), corr)];
  return { events, value: { hosts: outcomes, unknownHosts: unknown } };
}

/** A drain's request from its fields (Aurora's sla_host_drain defaults; `force`: drainHosts). */
function drainRequest(req: DrainFields, durationField: "durationSecs" | "slaDurationSecs"): DrainRequest {
  const duration = (req as Record<string, number | undefined>)[durationField];
  if (req.force === true) {
    const bad = (["percentage", durationField, "forceDrainTimeoutSecs"] as const).find(
      (f) => (req as Record<string, unknown>)[f] !== undefined,
    );
    if (bad !== undefined)
      throw new RequestError(
        `${bad}: rule: a forced drain (force: true, Aurora's host_drain) has no SLA and no timeout; leave ${bad} out, or drain without force`,
        "INVALID_REQUEST",
        bad,
      );
    return { sla: null, forceDrainTimeoutMs: 0, slaAwareKillNonProd: req.slaAwareKillNonProd ?? false };
  }
  return {
    sla: {
      percentage: req.percentage ?? DEFAULT_SLA_POLICY.percentage.percentage,
      durationSecs: duration ?? DEFAULT_SLA_POLICY.percentage.durationSecs,
    },
    forceDrainTimeoutMs: (req.forceDrainTimeoutSecs ?? DEFAULT_FORCE_DRAIN_TIMEOUT_SECS) * 1000,
    slaAwareKillNonProd: req.slaAwareKillNonProd ?? false,
  };
}

function sameDrain(a: DrainRequest, b: DrainRequest): boolean {
  return (
    a.forceDrainTimeoutMs === b.forceDrainTimeoutMs &&
    a.slaAwareKillNonProd === b.slaAwareKillNonProd &&
    (a.sla === null ? b.sla === null : b.sla !== null && a.sla.percentage === b.sla.percentage && a.sla.durationSecs === b.sla.durationSecs)
  );
}

function planDrain(c: Ctx, req: HostsRequest, corr: string): MaintenanceWrite {
  const hosts = hostsOf(req);
  const drain = drainRequest(req, "durationSecs");
  refuseDisallowed(c.state, hosts, "DRAINING", "drain", "");
  const outcomes = hosts.map((host): HostOutcome => {
    const h = c.state.hosts.get(host);
    const from = h?.mode ?? "NONE";
    if ((from === "DRAINING" || from === "DRAINED") && h?.drain && sameDrain(h.drain, drain))
      return { host, from, to: from, changed: false, note: `already ${from} with this request: skipped` };
    return {
      host,
      from,
      to: "DRAINING",
      changed: true,
      ...(from === "DRAINING" || from === "DRAINED" ? { note: "its earlier drain request is replaced" } : {}),
    };
  });
  const unknown = unknownHosts(c.state, hosts);
  const moving = outcomes.filter((o) => o.changed).map((o) => o.host);
  const who = user(req);
  const events =
    moving.length === 0
      ? []
      : [
          hostEvent(
            c,
            moving,
            "DRAINING",
            who,
            `drain of ${list(moving)} requested by ${who}: ${drainText(drain)}${unknownNote(unknown.filter((h) => moving.includes(h)))}`,
            corr,
            { drain },
          ),
        ];
  return { events, value: { hosts: outcomes, unknownHosts: unknown } };
}

function planEnd(c: Ctx, req: HostsRequest, corr: string): MaintenanceWrite {
  return planMove(
    c,
    req,
    corr,
    "NONE",
    "not in maintenance: skipped",
    (moving, who) => `maintenance of ${list(moving)} ended by ${who}: back in service, tasks may be placed there again`,
  );
}

/** Aurora caps nothing here; a window longer than 30 days is surely a mistake. */
const MAX_WINDOW_SECS = 30 * 86_400;

function planSchedule(c: Ctx, req: ScheduleRequest, corr: string): MaintenanceWrite {
  const hosts = hostsOf(req);
  const startTs = typeof req.start === "number" ? req.start : Date.parse(req.start);
  if (!Number.isFinite(startTs))
    throw new RequestError(
      `start: ${JSON.stringify(req.start)}; rule: must be a time (RFC 3339) or epoch milliseconds`,
      "INVALID_REQUEST",
      "start",
    );
  if (req.durationSecs > MAX_WINDOW_SECS)
    throw new RequestError(
      `durationSecs: ${req.durationSecs}; rule: a window lasts at most ${MAX_WINDOW_SECS} s (30 days)`,
      "INVALID_REQUEST",
      "durationSecs",
    );
  const durationMs = req.durationSecs * 1000;
  const now = c.clock.now();
  if (startTs + durationMs <= now)
    throw new RequestError(
      `start: the window would end at ${isoTime(startTs + durationMs)}, before now; rule: a window is scheduled before it is over`,
      "INVALID_REQUEST",
      "start",
    );
  for (const host of hosts) {
    const h = c.state.hosts.get(host);
    if (h && h.mode !== "NONE")
      throw new RequestError(
        `hosts: host ${host} is ${h.mode}${h.windowId !== null ? ` (window ${h.windowId})` : ""}; rule: a window takes hosts in service (NONE), each in one window at a time — end its maintenance first`,
        "CONFLICT",
        "hosts",
      );
  }
  const drain = drainRequest(req, "slaDurationSecs");
  const windowId = `mw-${c.ids.next()}`;
  const who = user(req);
  const unknown = unknownHosts(c.state, hosts);
  const iso = isoTime;
  const events = [
    c.event(
      "MaintenanceWindowScheduled",
      { windowId, hosts, startTs, durationMs, user: who, drain },
      `maintenance window ${windowId} scheduled by ${who}: ${list(hosts)} from ${iso(startTs)} for ${fmtMs(durationMs)}, then ${drainText(drain)}`,
      corr,
    ),
    hostEvent(
      c,
      hosts,
      "SCHEDULED",
      who,
      `${list(hosts)} SCHEDULED for maintenance window ${windowId} (from ${iso(startTs)}): new tasks go elsewhere when another host fits${unknownNote(unknown)}`,
      corr,
      { windowId },
    ),
  ];
  return {
    events,
    value: {
      hosts: hosts.map((host) => ({ host, from: "NONE", to: "SCHEDULED", changed: true })),
      unknownHosts: unknown,
      windowId,
      startTs,
      endTs: startTs + durationMs,
    },
  };
}

function planCancel(c: Ctx, req: CancelRequest, corr: string): MaintenanceWrite {
  const w = c.state.windows.get(req.windowId);
  if (!w) throw new RequestError(`windowId: there is no maintenance window ${req.windowId}`, "NOT_FOUND", "windowId");
  if (w.ended !== null)
    throw new RequestError(
      `windowId: window ${req.windowId} is over (${w.ended.cancelled ? `cancelled by ${w.ended.user ?? "unknown"}` : "elapsed"}); rule: only a window not yet over is cancelled`,
      "CONFLICT",
      "windowId",
    );
  const held = w.hosts.filter((h) => c.state.hosts.get(h)?.windowId === w.windowId && modeOf(c.state, h) !== "NONE");
  const who = user(req);
  const events: AnyEnvelope[] = [];
  if (held.length > 0)
    events.push(
      hostEvent(c, held, "NONE", who, `maintenance window ${w.windowId} cancelled by ${who}: ${list(held)} back in service`, corr, {
        windowId: w.windowId,
      }),
    );
  events.push(
    c.event(
      "MaintenanceWindowEnded",
      { windowId: w.windowId, cancelled: true, user: who },
      `maintenance window ${w.windowId} cancelled by ${who}`,
      corr,
    ),
  );
  return {
    events,
    value: {
      hosts: w.hosts.map((host) => {
        const from = modeOf(c.state, host);
        return held.includes(host)
          ? { host, from, to: "NONE", changed: true }
          : { host, from, to: from, changed: false, note: "no longer held by the window: left as it is" };
      }),
      unknownHosts: unknownHosts(c.state, w.hosts),
      windowId: w.windowId,
    },
  };
}

function list(hosts: readonly string[]): string {
  return hosts.length === 1 ? `host ${hosts[0]}` : `hosts ${hosts.join(", ")}`;
}
