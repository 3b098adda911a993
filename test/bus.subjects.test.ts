// Agent subjects carry the agent's id as one token (bus/bus.ts), and the in-process bus matches
// "*" and ">" the way nats-server does: the leader serves roost.agent.*.status for every agent.
import { describe, expect, it } from "vitest";
import { agentOfSubject, subjects } from "../src/bus/bus.js";
import { MemoryBus } from "../src/bus/memory.js";

describe("agent subjects", () => {
  it("write a dotted agent id as one token and read it back", () => {
    expect(subjects.status("host1.dc1")).toBe("roost.agent.host1~dc1.status");
    expect(agentOfSubject(subjects.status("host1.dc1"))).toBe("host1.dc1");
    expect(agentOfSubject("roost.agent.a.b.status")).toBeNull();
    expect(agentOfSubject("roost.leader")).toBeNull();
  });

  it("MemoryBus: '*' matches one token, a trailing '>' one or more, and nothing else", async () => {
    const bus = new MemoryBus();
    const seen: string[] = [];
    bus.serve(subjects.anyAgent.status, (_d, subject) => {
      seen.push(`status ${subject}`);
      return { ok: true };
    });
    bus.serve("roost.agent.>", (_d, subject) => {
      seen.push(`any ${subject}`);
    });
    await bus.request(subjects.status("host1.dc1"), {});
    await expect(bus.request("roost.agent.a.b.status", {})).resolves.toBeUndefined();
    await expect(bus.request("roost.agent", {})).rejects.toThrow(/no responders/);
    await expect(bus.request("roost.agent.x.statuses", {})).resolves.toBeUndefined();
    // A request goes to one responder: the first that matches.
    expect(seen).toEqual(["status roost.agent.host1~dc1.status", "any roost.agent.a.b.status", "any roost.agent.x.statuses"]);
    await bus.close();
  });
});

describe("a server that leaves some subjects to others (ServeOptions.ignore)", () => {
  it("MemoryBus: an ignored subject is answered by another server, or has no responders at once", async () => {
    const bus = new MemoryBus({ requestTimeouts: false });
    bus.serve("roost.api.v1.>", async () => "leader", { ignore: (s) => s.endsWith(".replay") });
    expect(await bus.request("roost.api.v1.cluster.info", {})).toBe("leader");
    await expect(bus.request("roost.api.v1.cluster.replay", {})).rejects.toThrow(/no responders/);
    bus.serve("roost.api.v1.cluster.replay", async () => "replica", { queue: "roost-history" });
    expect(await bus.request("roost.api.v1.cluster.replay", {})).toBe("replica");
    await bus.close();
  });
});
