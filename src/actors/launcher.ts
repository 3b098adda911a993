// Launcher: carries out LAUNCH and KILL effects by asking agents, retrying with backoff while the
// task still needs it (a launch while ASSIGNED; a kill while KILLING, RESTARTING, PREEMPTING or
// DRAINING, as Aurora's KillRetry). An agent acknowledges a request; the outcome arrives later
// as a status update.

import { subjects, type Reply } from "../bus/bus.js";
import type { KillRequest, LaunchRequest } from "../agent/protocol.js";
import type { Scheduler } from "./scheduler.js";

const KILL_STATES = new Set(["KILLING", "RESTARTING", "PREEMPTING", "DRAINING"]);

export class Launcher {
  private readonly launching = new Set<string>();
  private readonly killing = new Set<string>();
  private readonly timers = new Set<unknown>();
  private stopped = false;

  constructor(private readonly s: Scheduler) {}

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) this.s.clock.clearTimeout(t);
    this.timers.clear();
  }

  launch(taskId: string): void {
    if (this.launching.has(taskId)) return;
    this.launching.add(taskId);
    void this.retrying(
      () => this.s.state.tasks.get(taskId)?.state === "ASSIGNED",
      async () => {
        const t = this.s.state.tasks.get(taskId)!;
        const cfg = this.s.state.taskConfig(t);
        const req: LaunchRequest = {
          taskId,
          job: t.job,
          instance: t.instance,
          processes: cfg.processes,
          ports: t.ports ?? {},
          resources: { cpus: cfg.resources.cpus, ramMb: cfg.resources.ramMb, diskMb: cfg.resources.diskMb, gpus: cfg.resources.gpus ?? 0 },
        };
        const r = await this.s.bus.request<Reply<unknown>>(subjects.launch(t.agentId!), req, this.s.agentRequestTimeoutMs);
        if (!r.ok) throw new Error(r.error);
      },
      `launch ${taskId}`,
    ).finally(() => this.launching.delete(taskId));
  }

  /**
   * Kill a task on an agent. While the task is in a killing state the kill is retried until the
   * agent reports it ended; a zombie (a task the log holds dead, or does not know) gets one
   * acknowledged kill.
   */
  kill(taskId: string, agentId: string | null, why: string): void {
    if (agentId === null || this.killing.has(taskId)) return;
    this.killing.add(taskId);
    let sentOnce = false;
    void this.retrying(
      () => {
        const st = this.s.state.tasks.get(taskId)?.state;
        return st !== undefined && KILL_STATES.has(st) ? true : !sentOnce;
      },
      async () => {
        const req: KillRequest = { taskId };
        const r = await this.s.bus.request<Reply<unknown>>(subjects.kill(agentId), req, this.s.agentRequestTimeoutMs);
        if (!r.ok) throw new Error(r.error);
        sentOnce = true;
        this.s.log.info({ taskId, agentId, why }, "kill sent");
        // Acknowledged: wait for the status update; re-send later if the task is still dying.
        if (KILL_STATES.has(this.s.state.tasks.get(taskId)?.state ?? "")) throw new RetryLater();
      },
      `kill ${taskId}`,
      5,
    ).finally(() => this.killing.delete(taskId));
  }

  private async retrying(needed: () => boolean, attempt: () => Promise<void>, what: string, slowFactor = 1): Promise<void> {
    let delay = this.s.retryMs * slowFactor;
    while (!this.stopped && this.s.leading && needed()) {
      try {
        await attempt();
        return;
      } catch (err) {
        if (!(err instanceof RetryLater)) this.s.log.warn({ err: (err as Error).message, what }, "agent request failed; will retry");
      }
      await new Promise<void>((resolve) => {
        const t = this.s.clock.setTimeout(() => {
          this.timers.delete(t);
          resolve();
        }, delay);
        this.timers.add(t);
      });
      delay = Math.min(delay * 2, this.s.retryMs * slowFactor * 8);
    }
  }
}

class RetryLater extends Error {}
