// The host maintenance machine against Aurora's modes and verbs (MaintenanceController), written
// here independently as the oracle, for every (from, to) pair; the fold's compiled table against
// the XState machine; and the fold of HostMaintenanceChanged, SlaDrainDenied and windows,
// refusals recorded as anomalies (never thrown), with placement's veto and ranking.

import { describe, expect, it } from "vitest";
import { type AnyEnvelope, type EventPayloads, type EventType, makeEnvelope } from "../src/domain/events.js";
import { asAgentId, asTaskId } from "../src/domain/types.js";
import { foldRecord } from "../src/replay/fold.js";
import { ClusterState } from "../src/replay/state.js";
import { checkMaintenance, scheduledForMaintenance } from "../src/scheduling/feasible.js";
import { HOST_MODES, hostMachineStep, hostStep } from "../src/statemachines/host.js";
import { machineGraph } from "../src/statemachines/graph.js";

/** Aurora's verbs as the modes they may move a host between; every other pair is refused. */
const ALLOWED: Record<string, string[]> = {
  NONE: ["SCHEDULED", "DRAINING"], // startMaintenance; drainHosts / slaDrainHosts
  SCHEDULED: ["DRAINING", "NONE"], // drain; endMaintenance
  DRAINING: ["DRAINING", "DRAINED", "NONE"], // a new request overwrites; no active task left; end
  DRAINED: ["DRAINING", "NONE"], // drained again; end
};

describe("the host machine", () => {
  it("allows exactly Aurora's moves, and the table equals the machine", () => {
    for (const from of HOST_MODES)
      for (const to of HOST_MODES) {
        const want = ALLOWED[from]!.includes(to);
        expect(hostMachineStep(from, to), `${from} → ${to}`).toEqual({ next: want ? to : from, allowed: want });
        expect(hostStep(from, to)).toEqual(hostMachineStep(from, to));
      }
  });

  it("is drawn with its four modes", () => {
    const g = machineGraph("host");
    expect(g.initial).toBe("NONE");
    expect(g.states.map((s) => s.id ?? s)).toHaveLength(4);
  });
});

let seq = 0;
const ev = <T extends EventType>(type: T, data: EventPayloads[T], reason = "test"): AnyEnvelope =>
  makeEnvelope(type, data, { epoch: 1, ts: 1_000 * (seq + 1), corr: "c", reason }) as AnyEnvelope;
function fold(s: ClusterState, ...events: AnyEnvelope[]): void {
  foldRecord(s, ++seq, events);
}
const DRAIN = { sla: { percentage: 95, durationSecs: 1800 }, forceDrainTimeoutMs: 7 * 86_400_000, slaAwareKillNonProd: false };

describe("folding maintenance", () => {
  it("moves hosts, keeps the drain request and denials, and records refusals as anomalies", () => {
    seq = 0;
    const s = new ClusterState();
    const agent = (id: string) =>
      ev("AgentRegistered", {
        agentId: asAgentId(id),
        host: id,
        attributes: {},
        resources: { cpus: 4, ramMb: 4096, diskMb: 4096, ports: [[31000, 31010]] },
        bootId: "b",
      });
    fold(s, agent("h1"), agent("h2"));
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1"], to: "SCHEDULED", user: "ops" }));
    expect(s.hosts.get("h1")).toMatchObject({ mode: "SCHEDULED", user: "ops", drain: null });
    expect(scheduledForMaintenance(s, s.agents.get(asAgentId("h1"))!)).toBe(true);
    expect(checkMaintenance(s, s.agents.get(asAgentId("h1"))!)).toBeNull();
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1", "h2"], to: "DRAINING", user: "ops", drain: DRAIN }));
    expect(s.hosts.get("h2")).toMatchObject({ mode: "DRAINING", drain: { ...DRAIN, requestedSeq: 3 } });
    expect(checkMaintenance(s, s.agents.get(asAgentId("h2"))!)).toMatchObject({ kind: "maintenance" });
    // Refused: a drain without its request, DRAINED from NONE, a denial on a host not draining.
    const before = s.anomalyCount;
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h3"], to: "DRAINING" }));
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h3"], to: "DRAINED" }));
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1", "h1"], to: "NONE" }));
    fold(s, ev("SlaDrainDenied", { taskId: asTaskId("nope"), host: "h1" }));
    expect(s.anomalyCount - before).toBe(4);
    expect(s.hosts.has("h3")).toBe(false);
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1"], to: "DRAINED" }, "no active task left"));
    expect(s.hosts.get("h1")).toMatchObject({ mode: "DRAINED", user: "ops", drain: { requestedSeq: 3 } });
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1", "h2"], to: "NONE", user: "ops" }));
    expect([...s.hosts.values()].map((h) => [h.host, h.mode, h.drain])).toEqual([
      ["h1", "NONE", null],
      ["h2", "NONE", null],
    ]);
  });

  it("windows: scheduled, opened by a drain that names them, ended once", () => {
    seq = 0;
    const s = new ClusterState();
    fold(
      s,
      ev("MaintenanceWindowScheduled", { windowId: "w1", hosts: ["h1"], startTs: 60_000, durationMs: 60_000, user: "ops", drain: DRAIN }),
      ev("HostMaintenanceChanged", { hosts: ["h1"], to: "SCHEDULED", user: "ops", windowId: "w1" }),
    );
    expect(s.windows.get("w1")).toMatchObject({ openedSeq: null, ended: null });
    fold(s, ev("HostMaintenanceChanged", { hosts: ["h1"], to: "DRAINING", drain: DRAIN, windowId: "w1" }));
    expect(s.windows.get("w1")!.openedSeq).toBe(2);
    expect(s.hosts.get("h1")!.windowId).toBe("w1");
    fold(s, ev("MaintenanceWindowEnded", { windowId: "w1", cancelled: false }));
    fold(s, ev("MaintenanceWindowEnded", { windowId: "w1", cancelled: true }));
    expect(s.anomalyCount).toBe(1);
    expect(s.windows.get("w1")!.ended).toMatchObject({ seq: 3, cancelled: false });
  });
});
