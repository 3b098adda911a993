// The host maintenance lifecycle: Aurora's MaintenanceMode (api.thrift) as an XState machine.
//
//   NONE ──start──▶ SCHEDULED ──drain──▶ DRAINING ──(no active task left)──▶ DRAINED
//     │                 │                   ▲  │                               │
//     └──────drain──────┼───────────────────┘  └──────────end──────┐          │ drain again
//     ◀────────end──────┘                                          ▼          ▼
//   NONE ◀─────────────────────────────────────────────────────── end ◀── DRAINING
//
// A host is named by its host name (an agent's `host`, Aurora's hostname), not by an agent id:
// an operator drains the machine, whatever agent registers on it next. The fold moves a host by
// applying a logged request "go to mode X" (HostMaintenanceChanged: the event type is the target
// mode, as for tasks and updates), and the machine decides whether it is allowed. What Aurora's
// MaintenanceController does with each verb:
//   startMaintenance (roost host maintenance start): NONE → SCHEDULED; new tasks avoid the host
//   slaDrainHosts / drainHosts (drain): NONE, SCHEDULED → DRAINING, and DRAINING, DRAINED →
//     DRAINING again (a new request overwrites the one before, as Aurora stores one per host)
//   the drain poller: DRAINING → DRAINED once no active task is left on the host
//   endMaintenance (end): any mode → NONE
// A request the machine refuses (SCHEDULED from DRAINING, DRAINED from NONE, anything to the mode
// it is in, except a new drain) leaves the mode as it is and says so; nothing here throws.
//
// The fold uses hostStep, a table compiled from the machine on first use (4 × 4 questions);
// test/hostMachine.test.ts checks it against the machine and the machine against Aurora's modes.

import { setup, transition } from "xstate";

export const HOST_MODES = ["NONE", "SCHEDULED", "DRAINING", "DRAINED"] as const;
export type HostMode = (typeof HOST_MODES)[number];

/** Each mode's allowed next modes. */
const ALLOWED: Readonly<Record<HostMode, readonly HostMode[]>> = {
  NONE: ["SCHEDULED", "DRAINING"],
  SCHEDULED: ["DRAINING", "NONE"],
  DRAINING: ["DRAINING", "DRAINED", "NONE"],
  DRAINED: ["DRAINING", "NONE"],
};

export const hostMachine = setup({ types: { events: {} as { type: HostMode } } }).createMachine({
  id: "host",
  initial: "NONE",
  states: Object.fromEntries(
    HOST_MODES.map((s) => [s, { on: Object.fromEntries(ALLOWED[s].map((to) => [to, { target: to, reenter: to === s }])) }]),
  ) as Record<HostMode, { on: Partial<Record<HostMode, { target: HostMode; reenter: boolean }>> }>,
});

export interface HostStep {
  /** The mode after the request (the current one when it is refused). */
  readonly next: HostMode;
  /** The machine accepted the request. A new drain of a DRAINING host is accepted and keeps the mode. */
  readonly allowed: boolean;
}

/** Ask the XState machine (slow, authoritative). */
export function hostMachineStep(from: HostMode, to: HostMode): HostStep {
  const snapshot = hostMachine.resolveState({ value: from, context: undefined });
  const allowed = snapshot.can({ type: to });
  const [next] = transition(hostMachine, snapshot, { type: to });
  return { next: next.value as HostMode, allowed };
}

const N = HOST_MODES.length;
const INDEX: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(HOST_MODES.map((s, i) => [s, i])));
let table: HostStep[] | null = null;

/** The fold's path: the machine's answers, compiled once. Same as hostMachineStep, by test. */
export function hostStep(from: HostMode, to: HostMode): HostStep {
  if (!table) {
    table = [];
    for (const f of HOST_MODES) for (const t of HOST_MODES) table.push(Object.freeze(hostMachineStep(f, t)));
  }
  const f = INDEX[from];
  const e = INDEX[to];
  if (f === undefined || e === undefined) throw new Error(`unknown host mode in transition ${from} → ${to}`);
  return table[f * N + e]!;
}

/** Modes in which a host takes no new task (Aurora vetoes DRAINING and DRAINED: "Host in maintenance"). */
export const VETOED_MODES: ReadonlySet<HostMode> = new Set<HostMode>(["DRAINING", "DRAINED"]);
