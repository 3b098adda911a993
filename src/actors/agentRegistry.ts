// AgentRegistry: registrations and heartbeats. A registration is logged only when something
// changed (new agent, new boot, new resources or attributes, or back from UNREACHABLE), so
// agents re-registering after a leader change add nothing to the log. An agent the log holds
// UNREACHABLE whose heartbeats arrive again is asked to register (roost.leader with its
// agentId). On registration the
// agent's running tasks are reconciled with the log (Mesos's task reconciliation):
//  - a task the agent runs that the log does not place there is killed;
//  - a task the log places on the agent as STARTING or RUNNING that the agent does not run is LOST.
// An agent heard again (its registration, or a heartbeat while the log holds it UNREACHABLE) has
// every launch and kill aimed at it sent again at once, their backoff started over
// (Launcher.agentReturned): a stale copy of a task rescheduled elsewhere dies one registration
// round trip after its agent returns at the latest, not when a retry's backoff runs out.
// Registrations and heartbeats are checked against their schemas (agent/protocol.ts) first; a
// registration that breaks one is refused with the field and the rule, and only its known fields
// reach the log.

import { subjects } from "../bus/bus.js";
import { HeartbeatSchema, RegisterRequestSchema, type Heartbeat, type RegisterReply, type RegisterRequest } from "../agent/protocol.js";
import { asAgentId, asTaskId, type AgentId, type AgentResources } from "../domain/types.js";
import { checker, fastChecker, formatProblems } from "../domain/validate.js";
import { canonical } from "../replay/canonical.js";
import { TERMINAL_STATES } from "../statemachines/taskStates.js";
import { Actor, type ActorRef } from "./actor.js";
import type { TermContext } from "./context.js";
import type { LauncherMsg } from "./launcher.js";

const checkRegister = checker(RegisterRequestSchema);
const checkHeartbeat = fastChecker(HeartbeatSchema);

export type AgentRegistryMsg =
  | { type: "register"; data: unknown; reply: (r: RegisterReply) => void; fail: (err: Error) => void }
  | { type: "heartbeat"; data: unknown };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "bus" | "schedulerId" | "epoch" | "leading" | "commit" | "event" | "changed">;

/** When the leader last heard from each agent (AgentHealth reads it; the registry writes it). */
export interface Liveness {
  /** When it was last heard (its term's start if not yet). */
  lastHeard(agentId: AgentId): number;
  /** Its last heartbeat or registration with this leader, or null. */
  lastHeartbeatOf(agentId: AgentId): number | null;
}

/**
 * An actor: a registration holds the mailbox until its events are committed (the next message
 * sees the agent as the log now has it); a heartbeat is a map write.
 */
export class AgentRegistry extends Actor<AgentRegistryMsg> implements Liveness {
  /** agentId → last heartbeat (leader's clock). In memory only: liveness is not history. */
  readonly lastHeartbeat = new Map<AgentId, number>();
  /** When this leader last asked an UNREACHABLE agent it hears again to register (at most once a second). */
  private readonly askedToRegister = new Map<AgentId, number>();
  /** Agents that have registered with this leader since its term began. */
  private readonly registeredThisTerm = new Set<AgentId>();
  private termStart = 0;

  constructor(
    private readonly s: Deps,
    private readonly launcher: ActorRef<LauncherMsg>,
  ) {
    super("agentRegistry", s.log, () => s.clock.now());
    // A new term: every known agent's liveness clock starts now.
    this.termStart = s.clock.now();
  }

  /** Ask: a registration, answered once its events are committed. */
  register(data: unknown): Promise<RegisterReply> {
    return this.ask((reply, fail) => ({ type: "register", data, reply, fail }));
  }

  protected override onStop(dropped: AgentRegistryMsg[]): void {
    for (const m of dropped) if (m.type === "register") m.fail(new Error("this scheduler is no longer the leader"));
  }

  protected async receive(m: AgentRegistryMsg): Promise<void> {
    if (m.type === "heartbeat") return this.heartbeat(m.data);
    try {
      m.reply(await this.doRegister(m.data));
    } catch (err) {
      m.fail(err as Error);
    }
  }

  lastHeartbeatOf(agentId: AgentId): number | null {
    return this.lastHeartbeat.get(agentId) ?? null;
  }

  /** When this leader last heard from the agent (its term start if not yet). */
  lastHeard(agentId: AgentId): number {
    return Math.max(this.lastHeartbeat.get(agentId) ?? 0, this.termStart);
  }

  /** True once every agent the log holds ACTIVE has registered with this leader (the reconciliation window's end). */
  allRegistered(): boolean {
    for (const a of this.s.state.agents.values()) if (a.state === "ACTIVE" && !this.registeredThisTerm.has(a.agentId)) return false;
    return true;
  }

  private heartbeat(data: unknown): void {
    if (checkHeartbeat(data) !== null) return; // a publish: nobody to answer; not heard
    const agentId = asAgentId((data as Heartbeat).agentId);
    // Only agents the log knows have a liveness clock: garbage ids must not grow this map.
    if (!this.s.state.agents.has(agentId)) return;
    const now = this.s.clock.now();
    this.lastHeartbeat.set(agentId, now);
    // The log holds this agent UNREACHABLE, yet it is heard again (it was paused, or cut off):
    // ask it to register again, so that it is ACTIVE again and what it runs is reconciled
    // (copies of tasks rescheduled elsewhere meanwhile are killed). Nothing else would make
    // it: an agent registers at start and when a new leader announces itself.
    if (this.s.leading() && this.s.state.agents.get(agentId)?.state === "UNREACHABLE") {
      const asked = this.askedToRegister.get(agentId) ?? -Infinity;
      if (now - asked >= 1000) {
        this.askedToRegister.set(agentId, now);
        this.s.bus.publish(subjects.leader, { schedulerId: this.s.schedulerId, epoch: this.s.epoch, agentId });
        // It hears us again: the kills already owed to it (copies of tasks rescheduled while
        // it was away) go out now, without waiting for its registration or for their backoff.
        this.launcher.send({ type: "agentReturned", agentId });
      }
    }
  }

  private async doRegister(data: unknown): Promise<RegisterReply> {
    const s = this.s;
    const problems = checkRegister(data);
    if (problems.length > 0) return { ok: false, error: `invalid registration: ${formatProblems(problems)}` };
    const req = data as RegisterRequest;
    // The registration passed its schema: from here on its agent id is one.
    const agentId = asAgentId(req.agentId);
    const resources: AgentResources = {
      cpus: req.resources.cpus,
      ramMb: req.resources.ramMb,
      diskMb: req.resources.diskMb,
      ...(typeof req.resources.gpus === "number" ? { gpus: req.resources.gpus } : {}),
      ports: req.resources.ports.map(([lo, hi]) => [lo, hi] as [number, number]),
    };
    const bad = resources.ports.find(([lo, hi]) => lo > hi);
    if (bad)
      return {
        ok: false,
        error: `invalid registration: resources.ports: each range [lo, hi] must have lo ≤ hi (got [${bad[0]}, ${bad[1]}])`,
      };
    const attributes: Record<string, string> = {};
    for (const k of Object.keys(req.attributes).sort()) attributes[k] = req.attributes[k]!;
    const known = s.state.agents.get(agentId);
    if (known?.state === "REMOVED") return { ok: false, error: `agent ${agentId} was removed and may not register again` };
    const changed =
      known?.state !== "ACTIVE" ||
      known.host !== req.host ||
      known.bootId !== req.bootId ||
      canonical(known.attributes) !== canonical(attributes) ||
      canonical(known.resources) !== canonical(resources) ||
      canonical(known.isolation ?? null) !== canonical(req.isolation ?? null);
    const events = [];
    if (changed) {
      const why = !known
        ? "new agent"
        : known.bootId !== req.bootId
          ? "the host rebooted"
          : known.state !== "ACTIVE"
            ? `back from ${known.state}`
            : "its resources or attributes changed";
      events.push(
        s.event(
          "AgentRegistered",
          {
            agentId,
            host: req.host,
            attributes,
            resources,
            bootId: req.bootId,
            ...(req.isolation ? { isolation: { mode: req.isolation.mode, detail: req.isolation.detail } } : {}),
          },
          `agent ${agentId} on ${req.host} registered: ${why}`,
        ),
      );
    }
    // Reconcile the tasks the log places on this agent (same boot) with what it runs:
    // gone → LOST (rescheduled); partitioned but still running → RUNNING again.
    const running = new Set(req.running);
    if (known && known.bootId === req.bootId) {
      for (const taskId of [...known.tasks].sort()) {
        const t = s.state.tasks.get(taskId)!;
        const runs = running.has(taskId);
        if ((t.state === "STARTING" || t.state === "RUNNING" || t.state === "PARTITIONED") && !runs) {
          events.push(s.event("TaskStateChanged", { taskId, to: "LOST" }, `agent ${agentId} re-registered without task ${taskId}`));
        } else if (t.state === "PARTITIONED" && runs) {
          events.push(s.event("TaskStateChanged", { taskId, to: "RUNNING" }, `agent ${agentId} is back and still runs ${taskId}`));
        }
      }
    }
    if (events.length) await s.commit(events);
    this.lastHeartbeat.set(agentId, s.clock.now());
    this.registeredThisTerm.add(agentId);
    s.changed();
    // Whatever is owed to this agent is sent now (a retry sleeping in backoff wakes up), and so
    // is the kill of every copy it runs that the log does not place there.
    this.launcher.send({ type: "agentReturned", agentId });
    for (const id of req.running) {
      const taskId = asTaskId(id);
      const t = s.state.tasks.get(taskId);
      if (!t || t.agentId !== agentId || TERMINAL_STATES.has(t.state)) {
        this.launcher.send({
          type: "kill",
          taskId,
          agentId: agentId,
          why: `agent ${agentId} runs ${taskId}, which the log does not place there`,
          now: true,
        });
      }
    }
    return { ok: true, schedulerId: s.schedulerId, epoch: s.epoch };
  }
}
