// AgentHealth: an agent not heard from (heartbeats, registrations) for agentTimeoutMs is marked
// UNREACHABLE, which moves its STARTING and RUNNING tasks to PARTITIONED (the agent machine's
// PARTITION_TASKS); the partition policy's delay then ends them LOST (timers.ts), and they are
// rescheduled. Heartbeats are not history, so they stay in memory; a new leader starts every
// agent's clock at its takeover, so a leader change alone never marks an agent unreachable.

import { Periodic } from "./periodic.js";
import type { Scheduler } from "./scheduler.js";
import { fmtMs } from "./timers.js";

export class AgentHealth {
  private checking = false;
  private readonly periodic: Periodic;

  constructor(private readonly s: Scheduler) {
    this.periodic = new Periodic(
      s.clock,
      () => Math.max(100, Math.min(1000, s.policy.agentTimeoutMs / 4)),
      () => this.check(),
    );
  }

  start(): void {
    this.periodic.start();
  }

  stop(): void {
    this.periodic.stop();
  }

  /** One pass; returns the agents marked unreachable. Exposed for tests. */
  async check(): Promise<string[]> {
    const s = this.s;
    if (this.checking || !s.leading || s.reconciling) return [];
    this.checking = true;
    try {
      const now = s.clock.now();
      const events = [];
      const marked: string[] = [];
      for (const a of s.state.agents.values()) {
        if (a.state !== "ACTIVE") continue;
        const last = s.agents.lastHeard(a.agentId);
        if (now - last <= s.policy.agentTimeoutMs) continue;
        marked.push(a.agentId);
        events.push(
          s.event(
            "AgentStateChanged",
            { agentId: a.agentId, to: "UNREACHABLE" },
            `no heartbeat from agent ${a.agentId} on ${a.host} for ${fmtMs(now - last)} (timeout ${fmtMs(s.policy.agentTimeoutMs)}): its tasks are partitioned`,
          ),
        );
      }
      if (events.length) await s.commit(events);
      return marked;
    } catch (err) {
      s.log.error({ err }, "agent health check failed");
      return [];
    } finally {
      this.checking = false;
    }
  }
}
