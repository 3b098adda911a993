// Launcher: carries out LAUNCH and KILL effects by asking agents, retrying with backoff while the
// task still needs it (a launch while ASSIGNED; a kill while KILLING, RESTARTING, PREEMPTING or
// DRAINING, as Aurora's KillRetry). An agent acknowledges a request; the outcome arrives later
// as a status update.
//
// Each request has one retry loop (per task and agent). An agent heard again after it was away
// (agentReturned: its registration, or its first heartbeat while the log holds it UNREACHABLE)
// restarts the backoff of every loop aimed at it: a sleeping loop tries again at once, and one
// whose request is still out (sent while the agent could not hear it) gets a second request
// now. What taught this: a stale copy of a rescheduled task ran on for 10 s next to its
// replacement after its agent came back, because the kill's retry slept out its 5/10/20 s
// backoff, and the registration's own kill of it was dropped as a duplicate.

//
// An actor: messages start, wake or widen retry loops and return at once; the loops themselves run
// outside the mailbox (a request may wait seconds for an agent).

import { subjects, type Reply } from "../bus/bus.js";
import type { KillRequest, LaunchRequest } from "../agent/protocol.js";
import type { AgentId, TaskId } from "../domain/types.js";
import { KILL_STATES } from "../statemachines/taskStates.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";

export type LauncherMsg =
  | { type: "launch"; taskId: TaskId }
  /** `now`: a loop already under way starts its backoff over and sends at once. */
  | { type: "kill"; taskId: TaskId; agentId: AgentId | null; why: string; now?: boolean }
  /** The agent is heard again after it was away (a registration, or a heartbeat while UNREACHABLE). */
  | { type: "agentReturned"; agentId: AgentId };

type Deps = Pick<TermContext, "state" | "bus" | "clock" | "log" | "leading" | "retryMs" | "agentRequestTimeoutMs">;

/** One retry loop: a task's launch or kill, on one agent. */
interface Loop {
  agentId: AgentId;
  /** One request (the loop's attempt). */
  attempt: () => Promise<void>;
  /** Ends the backoff sleep now (set while the loop sleeps). */
  wake: (() => void) | null;
  /** An attempt is on the wire. */
  inFlight: boolean;
  /** A second request sent by kick() while the loop's own was on the wire. */
  extra: boolean;
  /** Kicked since the backoff last advanced: it starts over. */
  kicked: boolean;
}

export class Launcher extends Actor<LauncherMsg> {
  /** Retry loops by `${kind} ${taskId} ${agentId}`. */
  private readonly loops = new Map<string, Loop>();

  constructor(private readonly s: Deps) {
    super("launcher", s.log, () => s.clock.now());
  }

  protected receive(m: LauncherMsg): void {
    if (m.type === "launch") this.launch(m.taskId);
    else if (m.type === "kill") this.kill(m.taskId, m.agentId, m.why, { now: m.now });
    else this.agentReturned(m.agentId);
  }

  protected override onStop(): void {
    for (const l of this.loops.values()) l.wake?.();
  }

  private launch(taskId: TaskId): void {
    const agentId = this.s.state.tasks.get(taskId)?.agentId;
    if (!agentId) return;
    const key = `launch ${taskId} ${agentId}`;
    if (this.loops.has(key)) return;
    void this.retrying(
      key,
      agentId,
      () => {
        const t = this.s.state.tasks.get(taskId);
        return t?.state === "ASSIGNED" && t.agentId === agentId;
      },
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
          // What the executor runs the task by (absent in jobs logged before them: the agent's defaults).
          ...(cfg.processConstraints !== undefined ? { processConstraints: cfg.processConstraints } : {}),
          ...(cfg.healthCheck !== undefined ? { healthCheck: cfg.healthCheck } : {}),
          ...(cfg.lifecycle !== undefined ? { lifecycle: cfg.lifecycle } : {}),
          ...(cfg.finalizationWaitSecs !== undefined ? { finalizationWaitSecs: cfg.finalizationWaitSecs } : {}),
        };
        const r = await this.s.bus.request<Reply<unknown>>(subjects.launch(agentId), req, this.s.agentRequestTimeoutMs);
        if (!r.ok) throw new Error(r.error);
      },
      `launch ${taskId}`,
    );
  }

  /**
   * Kill a task on an agent. While the task is in a killing state the kill is retried until the
   * agent reports it ended; a zombie (a task the log holds dead, or does not know) gets one
   * acknowledged kill. A kill already under way for the task on that agent is not doubled; with
   * `now`, its backoff starts over and a request goes out at once (kick).
   */
  private kill(taskId: TaskId, agentId: AgentId | null, why: string, opts: { now?: boolean } = {}): void {
    if (agentId === null) return;
    const key = `kill ${taskId} ${agentId}`;
    const running = this.loops.get(key);
    if (running) {
      if (opts.now) this.kick(running);
      return;
    }
    let sentOnce = false;
    void this.retrying(
      key,
      agentId,
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
        const now = this.s.state.tasks.get(taskId)?.state;
        if (now !== undefined && KILL_STATES.has(now)) throw new RetryLater();
      },
      `kill ${taskId}`,
      5,
    );
  }

  /**
   * The agent is heard again after it was away: every launch and kill aimed at it is tried again
   * at once, its backoff started over.
   */
  private agentReturned(agentId: AgentId): void {
    for (const l of this.loops.values()) if (l.agentId === agentId) this.kick(l);
  }

  /** The retry loops aimed at an agent, and what each is doing (for tests and diagnostics). */
  loopsFor(agentId: AgentId): Array<{ key: string; state: "sending" | "sleeping" }> {
    return [...this.loops.entries()]
      .filter(([, l]) => l.agentId === agentId)
      .map(([key, l]) => ({ key, state: l.wake ? "sleeping" : "sending" }));
  }

  private kick(l: Loop): void {
    if (this.isStopped) return;
    l.kicked = true;
    if (l.wake) {
      l.wake();
    } else if (l.inFlight && !l.extra) {
      // The loop's request may have gone out while the agent could not hear it: it would only
      // time out. Send another now; the loop goes on as it was (the agent takes both alike).
      l.extra = true;
      void l
        .attempt()
        .catch(() => {})
        .finally(() => (l.extra = false));
    }
  }

  private async retrying(
    key: string,
    agentId: AgentId,
    needed: () => boolean,
    attempt: () => Promise<void>,
    what: string,
    slowFactor = 1,
  ): Promise<void> {
    const first = this.s.retryMs * slowFactor;
    const loop: Loop = { agentId, attempt, wake: null, inFlight: false, extra: false, kicked: false };
    this.loops.set(key, loop);
    let delay = first;
    try {
      while (!this.isStopped && this.s.leading() && needed()) {
        loop.kicked = false;
        loop.inFlight = true;
        try {
          await attempt();
          return;
        } catch (err) {
          if (!(err instanceof RetryLater)) this.s.log.warn({ err: (err as Error).message, what }, "agent request failed; will retry");
        } finally {
          loop.inFlight = false;
        }
        if (loop.kicked) {
          // Kicked while the request was out (kick() sent another): the backoff starts over.
          loop.kicked = false;
          delay = first;
        }
        if (this.isStopped) return;
        await new Promise<void>((resolve) => {
          const t = this.s.clock.setTimeout(() => {
            loop.wake = null;
            resolve();
          }, delay);
          loop.wake = () => {
            loop.wake = null;
            this.s.clock.clearTimeout(t);
            resolve();
          };
        });
        delay = loop.kicked ? first : Math.min(delay * 2, first * 8);
      }
    } finally {
      this.loops.delete(key);
    }
  }
}

class RetryLater extends Error {}
