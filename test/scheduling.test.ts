// The placement pipeline's pieces, each on its own: feasibility checks (with Aurora's veto
// texts and scores), rankers, offers and the stack.

import { describe, expect, it } from "vitest";
import { TaskGroup, checkDedicated, vetoes } from "../src/scheduling/feasible.js";
import { OfferBook } from "../src/scheduling/offers.js";
import { binpackScore, spreadScore } from "../src/scheduling/rank.js";
import { PlacementStack } from "../src/scheduling/stack.js";
import { reasonOf, vetoScore, vetoText } from "../src/scheduling/vetoes.js";
import { validateJobSpec } from "../src/spec/jobSpec.js";
import { StateBuilder } from "./support/state.js";
import { asAgentId, asJobKey, asTaskId } from "../src/domain/types.js";

function group(b: StateBuilder, name: string) {
  return new TaskGroup(b.state.jobs.get(asJobKey(`www/devel/${name}`))!, 1);
}
const agent = (b: StateBuilder, id: string) => b.state.agents.get(asAgentId(id))!;

describe("feasibility checks", () => {
  it("dedicated hosts take only their role's jobs, and dedicated jobs only their hosts", () => {
    const b = new StateBuilder().agent("a1", { dedicated: "www/db" }).agent("a2").agent("a3", { dedicated: "*/db" });
    b.job({ name: "plain" });
    b.job({ name: "db", constraints: { dedicated: "www/db" } });
    expect(vetoText(checkDedicated(group(b, "plain"), agent(b, "a1"))!)).toBe("Host is dedicated");
    expect(checkDedicated(group(b, "db"), agent(b, "a1"))).toBeNull();
    expect(vetoText(checkDedicated(group(b, "db"), agent(b, "a2"))!)).toBe("Constraint not satisfied: dedicated");
    expect(checkDedicated(group(b, "db"), agent(b, "a3"))).toBeNull();
  });

  it("value constraints, with negation; a missing attribute fails a positive constraint only", () => {
    const b = new StateBuilder().agent("a1", { zone: "z1", rack: "r1" }).agent("a2", { zone: "z3", rack: "r2" }).agent("a3");
    b.job({ name: "j", constraints: { zone: "!z3", rack: "r1,r2" } });
    const g = group(b, "j");
    const offers = new OfferBook(b.state);
    const reasons = ["a1", "a2", "a3"].map((a) => reasonOf(vetoes(b.state, offers, g, agent(b, a), asTaskId("t"))));
    expect(reasons).toEqual(["", "Constraint not satisfied: zone", "Constraint not satisfied: rack"]);
  });

  it('reads only an agent\'s own attributes: "constructor" or "toString" is a missing attribute, not Object.prototype\'s', () => {
    const b = new StateBuilder().agent("a1", { rack: "r1" }).agent("a2", { constructor: "x" });
    b.job({ name: "j", constraints: { constructor: "x", toString: "!y" } });
    const g = group(b, "j");
    const offers = new OfferBook(b.state);
    const v1 = vetoes(b.state, offers, g, agent(b, "a1"), asTaskId("t"));
    expect(reasonOf(v1)).toBe("Constraint not satisfied: constructor");
    expect(JSON.stringify(v1)).not.toMatch(/function|native code/);
    expect(reasonOf(vetoes(b.state, offers, g, agent(b, "a2"), asTaskId("t")))).toBe("");
    b.job({ name: "k", constraints: { hasOwnProperty: "limit:1" } });
    // A host without the attribute fails a limit on it, as any missing attribute does.
    expect(reasonOf(vetoes(b.state, offers, group(b, "k"), agent(b, "a1"), asTaskId("t")))).toBe("Limit not satisfied: hasOwnProperty");
  });

  it("a malformed constraint in the log (an older build's, or a foreign record's) vetoes every host instead of throwing", () => {
    const b = new StateBuilder().agent("a1", { rack: "r1" });
    const valid = validateJobSpec({
      role: "www",
      environment: "devel",
      name: "j",
      resources: { cpus: 1, ramMb: 64, diskMb: 64 },
      processes: [{ name: "m", cmdline: "x" }],
    });
    b.rawJob({ ...valid, task: { ...valid.task, constraints: { rack: "limit:abc", zone: "" } } });
    const vs = vetoes(b.state, new OfferBook(b.state), group(b, "j"), agent(b, "a1"), asTaskId("t"));
    expect(reasonOf(vs)).toBe("Constraint not satisfied: rack; Constraint not satisfied: zone");
    expect(JSON.stringify(vs)).toMatch(/malformed/);
  });

  it("limit constraints count the job's active tasks per attribute value", () => {
    const b = new StateBuilder().agent("a1", { rack: "r1" }).agent("a2", { rack: "r1" }).agent("a3", { rack: "r2" });
    const job = b.job({ name: "j", instances: 3, constraints: { host: "limit:1", rack: "limit:2" } });
    b.place(b.task(job, 0), "a1");
    const g = group(b, "j");
    const offers = new OfferBook(b.state);
    expect(reasonOf(vetoes(b.state, offers, g, agent(b, "a1"), asTaskId("t")))).toBe("Limit not satisfied: host");
    expect(reasonOf(vetoes(b.state, offers, g, agent(b, "a2"), asTaskId("t")))).toBe("");
    g.placed(b.state, agent(b, "a2")); // a second task of the job lands on rack r1 in this round
    expect(reasonOf(vetoes(b.state, offers, g, agent(b, "a2"), asTaskId("t")))).toBe(
      "Limit not satisfied: host; Limit not satisfied: rack",
    );
    expect(reasonOf(vetoes(b.state, offers, g, agent(b, "a3"), asTaskId("t")))).toBe("");
  });

  it("resources: each shortfall is its own veto, scored by how short it is (≤ 1000)", () => {
    const b = new StateBuilder().agent("a1", {}, { cpus: 1, ramMb: 512, ports: [[31000, 31000]] });
    b.job({ name: "j", resources: { cpus: 2, ramMb: 1024, diskMb: 10, ports: ["http", "admin"] } });
    const vs = vetoes(b.state, new OfferBook(b.state), group(b, "j"), agent(b, "a1"), asTaskId("t"));
    expect(reasonOf(vs)).toBe("Insufficient: cpus, ramMb, ports");
    expect(vs.map(vetoScore)).toEqual([500, 500, 500]);
    expect(vetoScore({ kind: "dedicated", detail: "" })).toBeGreaterThan(vetoScore({ kind: "limit", attribute: "host", detail: "" }));
  });
});

describe("offers", () => {
  it("hand out ports lowest first, skipping used ones and those given out this round", () => {
    const b = new StateBuilder().agent(
      "a1",
      {},
      {
        ports: [
          [31000, 31002],
          [32000, 32001],
        ],
      },
    );
    const job = b.job({ name: "j", resources: { cpus: 1, ramMb: 10, diskMb: 10, ports: ["http"] } });
    b.place(b.task(job, 0), "a1", { http: 31001 });
    const offers = new OfferBook(b.state);
    const a = agent(b, "a1");
    expect(offers.pickPorts(a, 3)).toEqual([31000, 31002, 32000]);
    offers.consume(a, { cpus: 1, ramMb: 10, diskMb: 10 }, [31000, 31002], asTaskId("x"));
    expect(offers.pickPorts(a, 2)).toEqual([32000, 32001]);
    expect(offers.pickPorts(a, 3)).toBeNull();
    expect(offers.free(a, asTaskId("y"))).toMatchObject({ cpus: 2, ramMb: 4076 });
  });

  it("a slot held for one task is not offered to another", () => {
    const b = new StateBuilder().agent("a1", {}, { cpus: 2 });
    const job = b.job({ name: "j", instances: 2 });
    const held = b.task(job, 0);
    const other = b.task(job, 1);
    b.emit("SlotReserved", { taskId: held, agentId: asAgentId("a1"), victims: [], expiresTs: b.ts + 60_000 });
    const offers = new OfferBook(b.state);
    expect(offers.free(agent(b, "a1"), other).cpus).toBe(1);
    expect(offers.free(agent(b, "a1"), held).cpus).toBe(2);
  });
});

describe("rankers", () => {
  it("spread prefers the emptier host and fewer of the job's tasks; binpack the fuller host", () => {
    const b = new StateBuilder().agent("big").agent("small", {}, { cpus: 1, ramMb: 1024 });
    const need = { cpus: 0.5, ramMb: 256, diskMb: 1 };
    const free = (a: string) => new OfferBook(b.state).free(agent(b, a), asTaskId("t"));
    expect(spreadScore(agent(b, "big"), free("big"), need, 0)).toBeGreaterThan(spreadScore(agent(b, "small"), free("small"), need, 0));
    expect(spreadScore(agent(b, "big"), free("big"), need, 1)).toBeLessThan(spreadScore(agent(b, "big"), free("big"), need, 0));
    expect(binpackScore(agent(b, "small"), free("small"), need)).toBeGreaterThan(binpackScore(agent(b, "big"), free("big"), need));
  });
});

describe("stack", () => {
  it("spreads a job with limit host=1 over distinct hosts, then blocks with the reason", () => {
    const b = new StateBuilder().agent("a1").agent("a2").agent("a3");
    const job = b.job({ name: "j", instances: 4, constraints: { host: "limit:1" } });
    const ids = [0, 1, 2, 3].map((i) => b.task(job, i));
    const stack = new PlacementStack({ placementMode: "spread", candidateLimit: 16 });
    const agents = [...b.state.agents.values()];
    const out = stack.placeGroup(b.state, new OfferBook(b.state), agents, group(b, "j"), ids, 10);
    expect(new Set(out.assignments.map((a) => a.host))).toEqual(new Set(["a1", "a2", "a3"]));
    expect(out.blocked).toBe("Limit not satisfied: host");
    const d = out.assignments[2]!.decision;
    expect(d).toMatchObject({ mode: "spread", evaluated: 3, feasible: 1, vetoes: { "Limit not satisfied: host": 2 } });
    expect(out.assignments[0]!.reason).toMatch(
      /^spread on a\d \(score [\d.]+, best of 3 feasible among 3 hosts looked at\); next: a\d score/,
    );
  });

  it("looks at no more feasible hosts than candidateLimit, and rotates where it starts", () => {
    const b = new StateBuilder();
    for (let i = 0; i < 50; i++) b.agent(`a${String(i).padStart(2, "0")}`);
    const job = b.job({ name: "j", instances: 2 });
    const ids = [b.task(job, 0), b.task(job, 1)];
    const stack = new PlacementStack({ placementMode: "binpack", candidateLimit: 4 });
    const out = stack.placeGroup(b.state, new OfferBook(b.state), [...b.state.agents.values()], group(b, "j"), ids, 10);
    expect(out.assignments.map((a) => a.decision.evaluated)).toEqual([4, 4]);
    expect(out.assignments[0]!.host).not.toBe(out.assignments[1]!.host);
  });

  it("reports the host that came closest: a resource shortfall beats a constraint", () => {
    const b = new StateBuilder().agent("a1", { zone: "z1" }).agent("a2", { zone: "z2" }, { ramMb: 512 });
    const job = b.job({ name: "j", constraints: { zone: "z2" } });
    const out = new PlacementStack({ placementMode: "spread", candidateLimit: 16 }).placeGroup(
      b.state,
      new OfferBook(b.state),
      [...b.state.agents.values()],
      group(b, "j"),
      [b.task(job, 0)],
      10,
    );
    expect(out.blocked).toBe("Insufficient: ramMb");
  });
});
