// AgentHealth: an agent not heard from (heartbeats, registrations) for agentTimeoutMs is marked
// UNREACHABLE, which moves its STARTING and RUNNING tasks to PARTITIONED (the agent machine's
// PARTITION_TASKS); the partition policy's delay then ends them LOST (timers.ts), and they are
// rescheduled. Heartbeats are not history, so they stay in memory (AgentRegistry's Liveness); a
// new leader starts every agent's clock at its takeover, so a leader change alone never marks an
// agent unreachable.
//
// An actor: a periodic "check" message, every agentTimeoutMs/4 (between 0.1 s and 1 s).

import { Actor } from "./actor.js";
import type { Liveness } from "./agentRegistry.js";
import type { TermContext } from "./context.js";
import { Periodic } from "./periodic.js";
import { fmtMs } from "./timers.js";

export type AgentHealthMsg = { type: "check" };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "leading" | "reconciling" | "commit" | "event">;

export class AgentHealth extends Actor<AgentHealthMsg> {
  private readonly periodic: Periodic;

  constructor(
    private readonly s: Deps,
    private readonly liveness: Liveness,
  ) {
    super("agentHealth", s.log, () => s.clock.now());
    this.periodic = new Periodic(
      s.clock,
      () => Math.max(100, Math.min(1000, s.policy.agentTimeoutMs / 4)),
      () => this.send({ type: "check" }),
    );
  }

  /** Start checking (after the reconciliation window). */
  start(): void {
    this.periodic.start();
  }

  protected override onStop(): void {
    this.periodic.stop();
  }

  protected async receive(): Promise<void> {
    const s = this.s;
    if (!s.leading() || s.reconciling()) return;
    const now = s.clock.now();
    const events = [];
    for (const a of s.state.agents.values()) {
      if (a.state !== "ACTIVE") continue;
      const last = this.liveness.lastHeard(a.agentId);
      if (now - last <= s.policy.agentTimeoutMs) continue;
      events.push(
        s.event(
          "AgentStateChanged",
          { agentId: a.agentId, to: "UNREACHABLE" },
          `no heartbeat from agent ${a.agentId} on ${a.host} for ${fmtMs(now - last)} (timeout ${fmtMs(s.policy.agentTimeoutMs)}): its tasks are partitioned`,
        ),
      );
    }
    if (events.length) await s.commit(events).catch((err: Error) => s.log.error({ err }, "agent health check failed"));
  }
}
