// `roost inspect`, the pure part: the machines' graphs are exactly their transitions (the task
// machine's compiled table, the agent machine's steps, and xstate/graph's own reading), the
// renderings are stable and mark the current state, and inspectTask / inspectAgent report what a
// folded state's task or agent is in, what its machine takes now (as the fold would apply it),
// and how it got there.

import { TERMINAL_UPDATE_STATES, UPDATE_STATES, updateMachine, updateStep } from "../src/statemachines/update.js";
import { toDirectedGraph, type DirectedGraphNode } from "xstate/graph";
import { describe, expect, it } from "vitest";
import type { EventPayloads, EventType } from "../src/domain/events.js";
import { asAgentId, asTaskId, type JobConfig, type TaskId } from "../src/domain/types.js";
import { makeEnvelope, type AnyEnvelope } from "../src/eventlog/envelope.js";
import { foldRecord, type Effect } from "../src/replay/fold.js";
import { inspectAgent, inspectTask, type AgentInspection, type InspectLogEntry, type TaskInspection } from "../src/replay/inspect.js";
import { AGENT_EVENTS, AGENT_STATES, agentMachine, agentMachineStep } from "../src/statemachines/agent.js";
import { acceptedTransitions, machineGraph, toDot, toMermaid, type MachineGraph } from "../src/statemachines/graph.js";
import { TASK_ACTIONS, taskMachine, type TaskAction } from "../src/statemachines/task.js";
import { bitsToGuard, taskStep } from "../src/statemachines/taskTable.js";
import { TASK_STATES, type TaskStateName } from "../src/statemachines/taskStates.js";
import { StateBuilder } from "./support/state.js";

const key = (to: string, actions: readonly string[]) => `${to} / ${actions.join(",")}`;
const byAurora = (actions: readonly string[]) =>
  [...actions].sort((a, b) => TASK_ACTIONS.indexOf(a as TaskAction) - TASK_ACTIONS.indexOf(b as TaskAction));

function edgesOf(g: MachineGraph, from: string, event: string) {
  return g.edges.filter((e) => e.from === from && e.event === event);
}

describe("machine graphs", () => {
  it("the task graph's edges are exactly the compiled table's transitions, over every guard input", () => {
    const g = machineGraph("task");
    expect(g.initial).toBe("INIT");
    expect(g.states.map((s) => s.id)).toEqual([...TASK_STATES]);
    expect(g.states.filter((s) => s.terminal).map((s) => s.id)).toEqual(["FINISHED", "FAILED", "KILLED", "LOST", "DELETED"]);
    for (const e of g.edges) expect(TASK_STATES).toContain(e.event);
    let pairs = 0;
    for (const from of TASK_STATES) {
      for (const event of TASK_STATES) {
        const table = new Set<string>();
        for (let bits = 0; bits < 8; bits++) {
          const step = taskStep(from, event, bits);
          if (step.changed || step.actions.length > 0) table.add(key(step.next, step.actions));
        }
        const edges = edgesOf(g, from, event);
        const graph = new Set(edges.map((e) => key(e.to, byAurora(e.actions))));
        expect([...graph].sort(), `${from} on ${event}`).toEqual([...table].sort());
        // The targets alone, as the brief states it.
        expect(new Set(edges.map((e) => e.to)), `${from} on ${event}`).toEqual(new Set([...table].map((k) => k.split(" / ")[0])));
        for (const e of edges) expect(e.targetless === true, `${from} on ${event}`).toBe(e.to === from);
        if (edges.length) pairs++;
      }
    }
    expect(pairs).toBe(new Set(g.edges.map((e) => `${e.from}/${e.event}`)).size);
  });

  it("the agent graph's edges are exactly agentMachineStep's transitions", () => {
    const g = machineGraph("agent");
    expect(g.initial).toBe("NEW");
    expect(g.states).toEqual([{ id: "NEW" }, { id: "ACTIVE" }, { id: "UNREACHABLE" }, { id: "REMOVED", terminal: true }]);
    for (const e of g.edges) expect(AGENT_EVENTS).toContain(e.event);
    for (const from of AGENT_STATES) {
      for (const event of AGENT_EVENTS) {
        const step = agentMachineStep(from, event);
        const table = step.changed || step.actions.length > 0 ? [key(step.next, step.actions)] : [];
        expect(
          edgesOf(g, from, event).map((e) => key(e.to, e.actions)),
          `${from} on ${event}`,
        ).toEqual(table);
      }
    }
    expect(g.edges.filter((e) => e.targetless)).toEqual([
      { from: "REMOVED", to: "REMOVED", event: "REGISTER", actions: ["REFUSE"], targetless: true },
    ]);
  });

  it("the update graph's edges are exactly updateStep's allowed moves (Aurora's JobUpdateStateMachine)", () => {
    const g = machineGraph("update");
    expect(g.initial).toBe("ROLLING_FORWARD");
    expect(g.states.filter((s) => s.terminal).map((s) => s.id)).toEqual([...TERMINAL_UPDATE_STATES]);
    const drawn = g.edges.map((e) => `${e.from} -> ${e.to}`).sort();
    const allowed = UPDATE_STATES.flatMap((from) =>
      UPDATE_STATES.filter((to) => updateStep(from, to).allowed).map((to) => `${from} -> ${to}`),
    );
    expect(drawn).toEqual(allowed.sort());
    expect(toMermaid(g, "ROLL_FORWARD_PAUSED")).toContain("class ROLL_FORWARD_PAUSED current");
  });

  it("agrees with xstate/graph's toDirectedGraph", () => {
    const flat = (n: DirectedGraphNode): string[] => [
      ...n.edges.map((e) => `${e.source.key} -> ${e.target.key} : ${e.label.text}`),
      ...n.children.flatMap(flat),
    ];
    for (const [name, machine] of [
      ["task", taskMachine],
      ["agent", agentMachine],
      ["update", updateMachine],
    ] as const) {
      const ours = machineGraph(name).edges.map((e) => `${e.from} -> ${e.to} : ${e.event}`);
      expect(ours.sort(), name).toEqual(flat(toDirectedGraph(machine)).sort());
    }
  });

  it("is computed once and frozen", () => {
    expect(machineGraph("task")).toBe(machineGraph("task"));
    expect(machineGraph("agent")).toBe(machineGraph("agent"));
    expect(Object.isFrozen(machineGraph("task").edges)).toBe(true);
    expect(Object.isFrozen(machineGraph("task").edges[0])).toBe(true);
  });

  it("accepts now exactly what the table does, for every state and guard input", () => {
    for (const from of TASK_STATES) {
      for (let bits = 0; bits < 8; bits++) {
        const accepted = new Map(acceptedTransitions("task", from, bitsToGuard(bits)).map((e) => [e.event, e]));
        for (const event of TASK_STATES) {
          const step = taskStep(from, event, bits);
          const a = accepted.get(event);
          const what = `${from} on ${event}, bits ${bits}`;
          if (!step.changed && step.actions.length === 0) expect(a, what).toBeUndefined();
          else expect(a && key(a.to, a.actions), what).toBe(key(step.next, step.actions));
        }
      }
    }
  });
});

describe("renderings", () => {
  const task = machineGraph("task");

  it("mermaid: a state diagram with every state, the initial one entered, the current one marked", () => {
    const m = toMermaid(task, "RUNNING");
    const lines = m.split("\n");
    expect(lines[0]).toBe("stateDiagram-v2");
    for (const s of TASK_STATES) expect(lines).toContain(`  ${s}`);
    expect(lines).toContain("  classDef current fill:#f96,stroke:#333,stroke-width:3px,font-weight:bold");
    expect(lines).toContain("  [*] --> INIT");
    expect(lines).toContain("  PENDING --> ASSIGNED : ASSIGNED / SAVE_STATE, LAUNCH");
    expect(lines).toContain(
      "  PARTITIONED --> LOST : LOST [neverKilling] / SAVE_STATE, RESCHEDULE, KILL<br/>LOST [else] / SAVE_STATE, KILL",
    );
    // The three zombie events of a state merge into one self-loop.
    expect(lines).toContain("  KILLING --> KILLING : ASSIGNED, STARTING, RUNNING / KILL");
    expect(lines).toContain("  class FINISHED,FAILED,KILLED,LOST,DELETED terminal");
    expect(lines.at(-2)).toBe("  class RUNNING current");
    expect(toMermaid(task, "RUNNING")).toBe(m);
    expect(toMermaid(task)).not.toContain("current\n");
    expect(toMermaid(task, "LOST")).toContain("  class FINISHED,FAILED,KILLED,DELETED terminal\n  class LOST current\n");
  });

  it("dot: a digraph with every state and the current one filled and bold", () => {
    const d = toDot(machineGraph("agent"), "UNREACHABLE");
    expect(d).toBe(
      [
        'digraph "agent" {',
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  "__start" [shape=point, label=""];',
        '  "NEW";',
        '  "ACTIVE";',
        '  "UNREACHABLE" [style="rounded,filled,bold", fillcolor="#ff9966", penwidth=3];',
        '  "REMOVED" [style="rounded,filled", fillcolor="#eeeeee", fontcolor="#555555"];',
        '  "__start" -> "NEW";',
        '  "NEW" -> "ACTIVE" [label="REGISTER"];',
        '  "NEW" -> "REMOVED" [label="REMOVE"];',
        '  "ACTIVE" -> "UNREACHABLE" [label="UNREACHABLE / PARTITION_TASKS"];',
        '  "ACTIVE" -> "REMOVED" [label="REMOVE / LOSE_TASKS"];',
        '  "UNREACHABLE" -> "ACTIVE" [label="REGISTER / RECONCILE_TASKS"];',
        '  "UNREACHABLE" -> "REMOVED" [label="REMOVE / LOSE_TASKS"];',
        '  "REMOVED" -> "REMOVED" [label="REGISTER / REFUSE"];',
        "}",
        "",
      ].join("\n"),
    );
    const t = toDot(task, "PARTITIONED");
    for (const s of TASK_STATES) expect(t).toMatch(new RegExp(`^  "${s}"( \\[.*\\])?;$`, "m"));
    expect(t).toContain('  "PARTITIONED" [style="rounded,filled,bold", fillcolor="#ff9966", penwidth=3];');
    expect(t).toContain(
      '  "RUNNING" -> "FINISHED" [label="FINISHED [isService] / SAVE_STATE, RESCHEDULE\\nFINISHED [else] / SAVE_STATE"];',
    );
  });

  it("escapes odd names, and refuses a current state the machine does not have", () => {
    const odd: MachineGraph = {
      machine: "task",
      initial: 'a "b"',
      states: [{ id: 'a "b"' }, { id: "end" }, { id: "__start", final: true }],
      edges: [
        { from: 'a "b"', to: "end", event: "x;y", actions: ["p:q", "<r>"] },
        { from: "end", to: "__start", event: "z\\n", actions: [] },
      ],
    };
    const m = toMermaid(odd, "end");
    expect(m).toContain('  state "a #quot;b#quot;" as s0\n  state "end" as s1\n  state "__start" as s2\n');
    expect(m).toContain("  s0 --> s1 : x#59;y / p#58;q, #60;r#62;\n");
    expect(m).toContain("  s1 --> s2 : z#92;n\n");
    expect(m).toContain("  s2 --> [*]\n");
    expect(m).toContain("  class s1 current\n");
    const d = toDot(odd);
    expect(d).toContain('  "__start_" [shape=point, label=""];\n');
    expect(d).toContain('  "__start_" -> "a \\"b\\"";\n');
    expect(d).toContain('  "a \\"b\\"" -> "end" [label="x;y / p:q, <r>"];');
    expect(d).toContain('  "end" -> "__start" [label="z\\\\n"];');
    expect(d).toContain('  "__start" [peripheries=2];');
    expect(() => toMermaid(task, "BOGUS")).toThrow(/no state "BOGUS"/);
    expect(() => toDot(task, "BOGUS")).toThrow(RangeError);
  });
});

/** A StateBuilder that also keeps the entries it folded, as the caller reads them back from the log. */
class Recorder extends StateBuilder {
  readonly entries: InspectLogEntry[] = [];
  override emit<T extends EventType>(type: T, data: EventPayloads[T], reason = "test"): this {
    super.emit(type, data, reason);
    this.entries.push({ seq: this.state.seq, index: 0, ts: this.ts, type, reason, data });
    return this;
  }
}

function runningTask(spec: Record<string, unknown>): { b: Recorder; job: JobConfig; id: TaskId } {
  const b = new Recorder().agent("h1");
  const job = b.job(spec);
  const id = b.task(job, 0);
  b.place(id, "h1");
  return { b, job, id };
}

/** Fold one TaskStateChanged on top of `b` and say what the fold did to the task. */
function foldRequest(b: StateBuilder, id: TaskId, to: TaskStateName): { states: TaskStateName[]; effects: Effect[] } {
  const before = b.state.tasks.get(id)!.history.length;
  const effects: Effect[] = [];
  const env = makeEnvelope("TaskStateChanged", { taskId: id, to }, { epoch: 1, ts: b.ts + 1000, corr: "t", reason: "probe" });
  foldRecord(b.state, b.state.seq + 1, [env as AnyEnvelope], effects);
  const h = b.state.tasks.get(id)!.history;
  const states: TaskStateName[] = [];
  for (let i = before; i < h.length; i += 4) states.push(TASK_STATES[h[i + 3]!]!);
  return { states, effects };
}

const world = (kinds: readonly string[]) => kinds.filter((k) => k === "RESCHEDULE" || k === "LAUNCH" || k === "KILL");

/** For every request: the fold does what the inspection said the machine would. */
function expectFoldAgrees(setup: () => { b: StateBuilder; id: TaskId }): void {
  const { b, id } = setup();
  const seen = inspectTask(b.state, id)!;
  for (const event of TASK_STATES) {
    const { b: fresh } = setup();
    const { states, effects } = foldRequest(fresh, id, event);
    const a = seen.accepts.find((x) => x.event === event);
    const what = `${seen.state} on ${event}`;
    if (!a) {
      expect(states, what).toEqual([]);
      expect(effects, what).toEqual([]);
    } else if (a.targetless) {
      expect(states, what).toEqual([]);
      expect(
        effects.map((e) => e.kind),
        what,
      ).toEqual(a.actions.filter((x) => x === "KILL"));
    } else {
      expect(states[0], what).toBe(a.target);
      // The world effects it orders; TRANSITION_TO_LOST goes on to LOST, with that step's own.
      if (a.actions.includes("TRANSITION_TO_LOST")) expect(states, what).toEqual([a.target, "LOST"]);
      else expect(world(effects.map((e) => e.kind)), what).toEqual(world(a.actions));
    }
  }
}

describe("inspectTask", () => {
  it("reports the current state, what the machine takes now and the history", () => {
    const { b, id } = runningTask({ maxTaskFailures: 1 });
    const reasons = new Map([["3.0", "created for instance 0"]]);
    const r: TaskInspection = inspectTask(b.state, id, { reasons })!;
    expect(r).toMatchObject({ kind: "task", id, machine: "task", seq: 5, state: "RUNNING" });
    expect(r.guardInput).toEqual({ isService: false, belowMaxFailures: false, everKilling: false });
    expect(r.graph).toBe(machineGraph("task"));
    expect(r.history).toEqual([
      { seq: 3, idx: 0, ts: b.entries[2]!.ts, from: "INIT", to: "PENDING", reason: "created for instance 0" },
      { seq: 4, idx: 0, ts: b.entries[3]!.ts, from: "PENDING", to: "ASSIGNED", reason: null },
      // The newest change's reason is the record's own.
      { seq: 5, idx: 0, ts: b.entries[4]!.ts, from: "ASSIGNED", to: "RUNNING", reason: "test" },
    ]);
    // A batch task on its last allowed failure: FAILED is not rescheduled, FINISHED neither.
    expect(r.accepts).toEqual([
      { event: "FINISHED", target: "FINISHED", actions: ["SAVE_STATE"] },
      { event: "FAILED", target: "FAILED", actions: ["INCREMENT_FAILURES", "SAVE_STATE"] },
      { event: "KILLED", target: "KILLED", actions: ["SAVE_STATE", "RESCHEDULE"] },
      { event: "LOST", target: "LOST", actions: ["SAVE_STATE", "RESCHEDULE"] },
      { event: "KILLING", target: "KILLING", actions: ["SAVE_STATE", "KILL"] },
      { event: "RESTARTING", target: "RESTARTING", actions: ["SAVE_STATE", "KILL"] },
      { event: "DRAINING", target: "DRAINING", actions: ["SAVE_STATE", "KILL"] },
      { event: "PREEMPTING", target: "PREEMPTING", actions: ["SAVE_STATE", "KILL"] },
      { event: "PARTITIONED", target: "PARTITIONED", actions: ["SAVE_STATE"] },
    ]);
  });

  it("evaluates the guards on the task's own input", () => {
    const service = inspectTask(runningTask({ service: true }).b.state, "j-0")!;
    expect(service.guardInput).toEqual({ isService: true, belowMaxFailures: false, everKilling: false });
    expect(service.accepts.find((a) => a.event === "FINISHED")).toEqual({
      event: "FINISHED",
      target: "FINISHED",
      guard: "isService",
      actions: ["SAVE_STATE", "RESCHEDULE"],
    });
    const batch = inspectTask(runningTask({ maxTaskFailures: 3 }).b.state, "j-0")!;
    expect(batch.guardInput.belowMaxFailures).toBe(true);
    expect(batch.accepts.find((a) => a.event === "FAILED")).toEqual({
      event: "FAILED",
      target: "FAILED",
      guard: "belowMaxFailuresOrService",
      actions: ["INCREMENT_FAILURES", "SAVE_STATE", "RESCHEDULE"],
    });
  });

  it("in a terminal state accepts only what the machine allows there", () => {
    const { b, id } = runningTask({});
    b.emit("TaskStateChanged", { taskId: id, to: "FINISHED", exitCode: 0, agentSeq: 2 }, "exited 0");
    const r = inspectTask(b.state, id)!;
    expect(r.state).toBe("FINISHED");
    expect(r.history.at(-1)).toMatchObject({ from: "RUNNING", to: "FINISHED", reason: "exited 0" });
    expect(r.accepts).toEqual([
      { event: "DELETED", target: "DELETED", actions: ["DELETE"] },
      { event: "ASSIGNED", target: "FINISHED", actions: ["KILL"], targetless: true },
      { event: "STARTING", target: "FINISHED", actions: ["KILL"], targetless: true },
      { event: "RUNNING", target: "FINISHED", actions: ["KILL"], targetless: true },
    ]);
  });

  it("shares one reason among the changes one event caused", () => {
    // A kill of a partitioned task gives up on it at once: KILLING, then LOST, from one event.
    const { b, id } = runningTask({});
    b.emit("AgentStateChanged", { agentId: asAgentId("h1"), to: "UNREACHABLE" }, "missed heartbeats");
    b.emit("TaskStateChanged", { taskId: id, to: "KILLING" }, "killed by alice");
    const r = inspectTask(b.state, id)!;
    expect(r.history.slice(-3).map(({ from, to, reason }) => ({ from, to, reason }))).toEqual([
      { from: "RUNNING", to: "PARTITIONED", reason: null },
      { from: "PARTITIONED", to: "KILLING", reason: "killed by alice" },
      { from: "KILLING", to: "LOST", reason: "killed by alice" },
    ]);
  });

  it("says what the fold then does, request by request", () => {
    expectFoldAgrees(() => runningTask({ maxTaskFailures: 1 }));
    expectFoldAgrees(() => runningTask({ maxTaskFailures: 3 }));
    expectFoldAgrees(() => runningTask({ service: true }));
    expectFoldAgrees(() => {
      const { b, id } = runningTask({ service: true });
      b.emit("AgentStateChanged", { agentId: asAgentId("h1"), to: "UNREACHABLE" });
      return { b, id };
    });
    expectFoldAgrees(() => {
      const { b, id } = runningTask({});
      b.emit("TaskStateChanged", { taskId: id, to: "FAILED", exitCode: 1, agentSeq: 2 });
      return { b, id };
    });
    expectFoldAgrees(() => {
      const b = new StateBuilder();
      const id = b.task(b.job({}), 0);
      b.emit("TaskStateChanged", { taskId: id, to: "KILLING" });
      return { b, id };
    });
  });

  it("is null for a task the state does not hold", () => {
    expect(inspectTask(runningTask({}).b.state, asTaskId("nope"))).toBeNull();
  });
});

describe("inspectAgent", () => {
  it("replays the agent's events through its machine", () => {
    const { b } = runningTask({});
    b.agent("h2");
    b.emit("AgentStateChanged", { agentId: asAgentId("h1"), to: "UNREACHABLE" }, "missed 3 heartbeats");
    b.emit("AgentStateChanged", { agentId: asAgentId("h2"), to: "REMOVED" }, "h2 decommissioned");
    // A state change it is already in is no transition.
    b.emit("AgentStateChanged", { agentId: asAgentId("h1"), to: "UNREACHABLE" }, "still missing");
    const mid: AgentInspection = inspectAgent(b.state, "h1", b.entries)!;
    expect(mid).toMatchObject({ kind: "agent", id: "h1", machine: "agent", state: "UNREACHABLE" });
    expect(mid.graph).toBe(machineGraph("agent"));
    expect(mid.accepts).toEqual([
      { event: "REGISTER", target: "ACTIVE", actions: ["RECONCILE_TASKS"] },
      { event: "REMOVE", target: "REMOVED", actions: ["LOSE_TASKS"] },
    ]);
    b.agent("h1");
    b.emit("AgentStateChanged", { agentId: asAgentId("h1"), to: "REMOVED" }, "removed by admin");
    b.agent("h1");
    const r = inspectAgent(b.state, "h1", [
      // A state change before it registered is one the fold rejects; one after the state's position is not there yet.
      { seq: 0, index: 0, ts: 0, type: "AgentStateChanged", reason: "early", data: { agentId: "h1", to: "REMOVED" } },
      ...b.entries,
      { seq: b.state.seq + 1, index: 0, ts: 0, type: "AgentStateChanged", reason: "later", data: { agentId: "h1", to: "REMOVED" } },
    ])!;
    expect(r.state).toBe("REMOVED");
    const at = (i: number) => ({ seq: b.entries[i]!.seq, idx: 0, ts: b.entries[i]!.ts });
    expect(r.history).toEqual([
      { ...at(0), event: "REGISTER", from: "NEW", to: "ACTIVE", actions: [], reason: "test" },
      { ...at(6), event: "UNREACHABLE", from: "ACTIVE", to: "UNREACHABLE", actions: ["PARTITION_TASKS"], reason: "missed 3 heartbeats" },
      { ...at(9), event: "REGISTER", from: "UNREACHABLE", to: "ACTIVE", actions: ["RECONCILE_TASKS"], reason: "test" },
      { ...at(10), event: "REMOVE", from: "ACTIVE", to: "REMOVED", actions: ["LOSE_TASKS"], reason: "removed by admin" },
      { ...at(11), event: "REGISTER", from: "REMOVED", to: "REMOVED", actions: ["REFUSE"], reason: "test" },
    ]);
    expect(r.accepts).toEqual([{ event: "REGISTER", target: "REMOVED", actions: ["REFUSE"], targetless: true }]);
    expect(inspectAgent(b.state, "h2", b.entries)!.history.map((h) => `${h.from}→${h.to}`)).toEqual(["NEW→ACTIVE", "ACTIVE→REMOVED"]);
  });

  it("is null for an agent the state does not hold", () => {
    expect(inspectAgent(new StateBuilder().agent("h1").state, "h9", [])).toBeNull();
  });
});
