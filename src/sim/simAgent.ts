// A simulated agent: speaks exactly the agent ↔ scheduler protocol of src/agent/agent.ts over a
// Bus (register, serve launch and kill, report status updates at least once, in order, one in
// flight per task), but runs no processes. What a task does is its TaskBehavior; time is the
// virtual clock's. Faults: crash() (gone, silently), reboot() (new boot id, registers again
// running nothing), exitTask() (a task's process ends now), partition()/heal() (cut off from the
// bus while its tasks run on), and a Network that loses, duplicates or delays its messages.

import { subjects, type Bus } from "../bus/bus.js";
import type { Clock } from "../actors/clock.js";
import type { AgentId, AgentResources } from "../domain/types.js";
import type { Ack, KillRequest, LaunchRequest, RegisterReply, RegisterRequest, StatusRequest } from "../agent/protocol.js";
import type { AgentTaskState, StatusUpdate } from "../agent/statusQueue.js";
import type { Rng } from "./rng.js";

/** What a simulated task does once launched. Every field is optional. */
export interface TaskBehavior {
  /** Launch → STARTING and RUNNING reported, in virtual ms (default 0). */
  startMs?: number;
  /** RUNNING → the task ends, in virtual ms; null or absent: it keeps running (a service). */
  runMs?: number | null;
  /** Exit code when it ends after runMs: 0 is FINISHED, anything else FAILED (default 0). */
  exitCode?: number;
  /**
   * Per launch, the chance (0..1, drawn from the seeded PRNG) that this run fails: it ends after
   * runMs (or at once when runMs is absent) with failExitCode.
   */
  failProbability?: number;
  /** Exit code of a run that failProbability failed (default 1). */
  failExitCode?: number;
  /** Kill → KILLED reported, in virtual ms (default 0). */
  killMs?: number;
}

/** A behaviour with the dice rolled: what this one launch will do. */
interface ResolvedBehavior {
  startMs: number;
  runMs: number | null;
  exitCode: number;
  killMs: number;
}

export type BehaviorResolver = (launch: LaunchRequest) => TaskBehavior;

/** The messages an agent sends (status, heartbeat, register) or is sent (launch, kill, leader). */
export type MessageKind = "status" | "heartbeat" | "register" | "launch" | "kill" | "leader";

/**
 * What the network does to one message: it is lost (the request never arrives, or the reply
 * never comes back), arrives `delayMs` late (after its sender gave up on it), or arrives twice
 * (the second copy `delayMs` late when both are set, after newer messages).
 * A lost or late request to the agent is answered with an error at once, as the sender's timeout
 * would (the simulator's bus has no timeouts of its own).
 */
export interface MessageFate {
  lost?: "request" | "reply";
  duplicate?: boolean;
  delayMs?: number;
}

/** Decides each message's fate (null: delivered normally). Set on SimAgent.network. */
export type Network = (kind: MessageKind, agentId: string) => MessageFate | null;

/**
 * Rolls a behaviour's dice for one launch. Draws from `rng` only when failProbability is set
 * (and between 0 and 1 exclusive), so adding a flaky job does not shift other jobs' draws.
 */
function resolveBehavior(b: TaskBehavior, rng: Rng | undefined): ResolvedBehavior {
  const nonNeg = (v: number | undefined, dflt: number) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : dflt);
  let runMs = b.runMs === null || b.runMs === undefined ? null : nonNeg(b.runMs, 0);
  let exitCode = Number.isInteger(b.exitCode) ? (b.exitCode as number) : 0;
  const p = b.failProbability ?? 0;
  let fails = p >= 1;
  if (p > 0 && p < 1) {
    if (!rng) throw new Error("a behaviour with failProbability needs a seeded Rng");
    fails = rng.chance(p);
  }
  if (fails) {
    exitCode = Number.isInteger(b.failExitCode) && b.failExitCode !== 0 ? (b.failExitCode as number) : 1;
    runMs = runMs ?? 0;
  }
  return { startMs: nonNeg(b.startMs, 0), runMs, exitCode, killMs: nonNeg(b.killMs, 0) };
}

export interface SimAgentOptions {
  bus: Bus;
  /** The virtual clock: every delay and retry of this agent runs on it. */
  clock: Clock;
  agentId: AgentId;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  /** Boot id of the first boot (default `<agentId>-boot-1`); reboot() makes `<agentId>-boot-<n>`. */
  bootId?: string;
  /** What a launched task does (default: keeps running). */
  behavior?: BehaviorResolver;
  /** For failProbability. */
  rng?: Rng;
  /** First retry delay of a status update that was not acknowledged (virtual ms, default 500; doubles to 10 s). */
  statusRetryMs?: number;
  /** First retry delay of a registration nobody accepted (virtual ms, default 200; doubles to 5 s). */
  registerRetryMs?: number;
  /** Heartbeat period (virtual ms, default 1000 as the real agent's). A world of 10,000 agents beats less often. */
  heartbeatMs?: number;
  /** Told when the agent becomes busy or idle (the simulator counts busy agents instead of asking each). */
  onBusyChange?: (busy: boolean) => void;
}

type Phase = "starting" | "running" | "killing" | "ended" | "killed-before-launch";

interface SimTask {
  taskId: string;
  job: string;
  instance: number;
  phase: Phase;
  behavior: ResolvedBehavior | null;
  /** The pending start, end or kill timer. */
  timer: unknown;
}

interface Stream {
  taskId: string;
  queue: StatusUpdate[];
  inFlight: boolean;
  failures: number;
  timer: unknown;
}

/** A status update as the scheduler acknowledged it, with the agent's virtual time of the ack. */
export interface DeliveredStatus extends StatusUpdate {
  ackedAt: number;
}

export class SimAgent {
  readonly agentId: AgentId;
  readonly host: string;
  readonly attributes: Record<string, string>;
  readonly resources: AgentResources;
  private readonly bus: Bus;
  private readonly clock: Clock;
  private readonly rng: Rng | undefined;
  private resolver: BehaviorResolver;
  private readonly statusRetryMs: number;
  private readonly registerRetryMs: number;
  private boot = 1;
  private currentBootId: string;
  /** Bumped by crash() and reboot(): callbacks of an earlier incarnation do nothing. */
  private generation = 0;
  private readonly tasks = new Map<string, SimTask>();
  private readonly streams = new Map<string, Stream>();
  private readonly lastSeq = new Map<string, number>();
  private readonly timers = new Set<unknown>();
  private unserve: Array<() => void> = [];
  private registering: Promise<boolean> | null = null;
  private registerOnWire = false;
  /** Wakes whatever waits on this incarnation's timers when it goes down. */
  private onDown: Array<() => void> = [];
  private registered = false;
  private up = false;
  private stopped = false;
  /** Status updates the scheduler acknowledged, in the order it did (this incarnation and earlier ones). */
  readonly delivered: DeliveredStatus[] = [];
  /** Status sends that failed (no responder, refused), for tests of retries. */
  statusFailures = 0;
  /** The network's faults (null: every message arrives once, at once). */
  network: Network | null = null;
  /** Cut off from the bus (partition()): nothing it sends arrives, nothing sent to it reaches it. */
  private cut = false;
  leaderEpoch = 0;
  /** The newest epoch a leader announced itself with (roost.leader). */
  private announcedEpoch = 0;

  private readonly heartbeatMs: number;
  private readonly onBusyChange: ((busy: boolean) => void) | undefined;

  constructor(opts: SimAgentOptions) {
    this.agentId = opts.agentId;
    this.host = opts.host;
    this.attributes = opts.attributes;
    this.resources = opts.resources;
    this.bus = opts.bus;
    this.clock = opts.clock;
    this.rng = opts.rng;
    this.resolver = opts.behavior ?? (() => ({}));
    this.statusRetryMs = Math.max(1, opts.statusRetryMs ?? 500);
    this.registerRetryMs = Math.max(1, opts.registerRetryMs ?? 200);
    this.heartbeatMs = Math.max(1, opts.heartbeatMs ?? 1000);
    this.onBusyChange = opts.onBusyChange;
    this.currentBootId = opts.bootId ?? `${opts.agentId}-boot-1`;
  }

  get bootId(): string {
    return this.currentBootId;
  }

  /** Serving and not crashed. */
  get isUp(): boolean {
    return this.up;
  }

  /** Cut off from the bus by partition() and not healed yet. */
  get isPartitioned(): boolean {
    return this.cut;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /** Replace how launched tasks behave (tasks already launched keep theirs). */
  setBehavior(resolver: BehaviorResolver): void {
    this.resolver = resolver;
  }

  /** Starts serving and registering. The promise resolves once a leader accepted it (settle the sim meanwhile). */
  start(): Promise<boolean> {
    if (this.stopped) throw new Error(`sim agent ${this.agentId} was stopped`);
    if (!this.up) this.serve();
    return this.register();
  }

  /** Stops for good: serves nothing, sends nothing, its timers are cancelled. */
  stop(): void {
    this.stopped = true;
    this.down();
  }

  /** The agent dies: it stops answering, its tasks are gone and nothing is reported. */
  crash(): void {
    this.down();
  }

  /**
   * The host restarts: tasks and unacknowledged updates are gone, the boot id is new, and it
   * registers again running nothing (the leader then finds its tasks LOST). Works on a crashed agent.
   */
  reboot(): Promise<boolean> {
    if (this.stopped) throw new Error(`sim agent ${this.agentId} was stopped`);
    this.down();
    this.boot++;
    this.currentBootId = `${this.agentId}-boot-${this.boot}`;
    this.serve();
    return this.register();
  }

  /** The task's process ends now with `exitCode` (FINISHED for 0, FAILED otherwise). */
  exitTask(taskId: string, exitCode: number): void {
    const t = this.tasks.get(taskId);
    if (!this.up || !t || (t.phase !== "starting" && t.phase !== "running")) {
      throw new Error(`agent ${this.agentId} does not run task ${taskId}${t ? ` (it is ${t.phase})` : ""}`);
    }
    this.cancelTaskTimer(t);
    if (t.phase === "starting") this.enqueue(taskId, "STARTING");
    this.end(t, exitCode, `the process exited with code ${exitCode} (injected)`);
  }

  /**
   * A network partition (or SIGSTOP): the agent is cut off from the bus. Requests to it find no
   * responder, its heartbeats, registrations and status updates are lost (updates are retried
   * with backoff, as ever), and its tasks run on and end as they would.
   */
  partition(): void {
    if (!this.up || this.cut) return;
    this.cut = true;
    for (const u of this.unserve.splice(0)) u();
  }

  /**
   * The partition ends. With `reconnect` the agent noticed (a NATS reconnect): it heartbeats and
   * registers at once, resending every unacknowledged update. Without, it just carries on (a
   * SIGCONT): heartbeats resume at their next tick, updates at their next retry, and the leader
   * asks it to register if it had marked it UNREACHABLE.
   */
  heal(opts: { reconnect?: boolean } = {}): void {
    if (!this.cut) return;
    this.cut = false;
    this.listen();
    if (opts.reconnect) {
      this.beat();
      this.registered = false;
      void this.register();
    }
  }

  /** Tasks this agent runs now (launched, not ended), sorted. */
  running(): string[] {
    const out: string[] = [];
    for (const t of this.tasks.values()) if (t.phase === "starting" || t.phase === "running" || t.phase === "killing") out.push(t.taskId);
    return out.sort();
  }

  /** The phase of a task this incarnation knows, or undefined. */
  taskPhase(taskId: string): Phase | undefined {
    return this.tasks.get(taskId)?.phase;
  }

  /** Updates not yet acknowledged, per task in seq order. */
  pendingStatuses(): StatusUpdate[] {
    const out: StatusUpdate[] = [];
    for (const s of this.streams.values()) out.push(...s.queue);
    return out;
  }

  /** True while a status update or registration of this agent is on the wire. */
  /**
   * A registration or status update on the wire. Kept as a count (busyUnits), not found by a walk
   * of the streams: the simulator asks every agent after every turn, and a walk per agent per turn
   * made a 10,000-agent world quadratic.
   */
  get busy(): boolean {
    return this.busyUnits > 0;
  }

  private busyUnits = 0;

  private setRegisterOnWire(v: boolean): void {
    if (this.registerOnWire !== v) this.addBusy(v ? 1 : -1);
    this.registerOnWire = v;
  }

  private setInFlight(s: Stream, v: boolean): void {
    if (s.inFlight !== v) this.addBusy(v ? 1 : -1);
    s.inFlight = v;
  }

  private addBusy(d: number): void {
    const was = this.busyUnits > 0;
    this.busyUnits += d;
    if (was !== this.busyUnits > 0) this.onBusyChange?.(!was);
  }

  // ---- serving -------------------------------------------------------------------------------

  private serve(): void {
    this.up = true;
    this.listen();
    this.heartbeat();
  }

  /** Answer what is sent to this agent, each message through the network's fate. */
  private listen(): void {
    this.unserve.push(
      this.bus.serve(subjects.launch(this.agentId), (d) => this.receive("launch", () => this.onLaunch(d as LaunchRequest))),
      this.bus.serve(subjects.kill(this.agentId), (d) => this.receive("kill", () => this.onKill(d as KillRequest))),
      this.bus.serve(subjects.leader, (d) =>
        this.receive("leader", () => {
          const epoch = (d as { epoch?: number } | null)?.epoch ?? 0;
          if (epoch > this.announcedEpoch) this.announcedEpoch = epoch;
          this.registered = false;
          void this.register();
          return { ok: true };
        }),
      ),
    );
  }

  /** One message to this agent, as the network delivers it: lost, late, twice, or once. */
  private receive(kind: MessageKind, handle: () => Ack): Ack {
    const fate = this.network?.(kind, this.agentId) ?? null;
    if (!fate) return handle();
    if (fate.lost === "request") return { ok: false, error: `the ${kind} request was lost on the way to ${this.agentId} (simulated)` };
    if (fate.delayMs && !fate.duplicate) {
      this.after(fate.delayMs, () => {
        if (!this.cut) handle();
      });
      return { ok: false, error: `the ${kind} request to ${this.agentId} timed out (simulated: it arrives ${fate.delayMs} ms late)` };
    }
    const ack = handle();
    if (fate.duplicate) this.twice(fate, handle);
    if (fate.lost === "reply") return { ok: false, error: `the reply of ${this.agentId} to a ${kind} request was lost (simulated)` };
    return ack;
  }

  /** Heartbeats on the virtual clock, every second (heartbeatMs), as the real agent sends them. */
  private heartbeat(): void {
    this.after(this.heartbeatMs, () => {
      this.beat();
      this.heartbeat();
    });
  }

  /** One heartbeat, through the network. */
  private beat(): void {
    if (this.cut) return;
    const fate = this.network?.("heartbeat", this.agentId) ?? null;
    const send = () => this.bus.publish(subjects.heartbeat(this.agentId), { agentId: this.agentId, ts: this.clock.now() });
    if (fate?.lost) return;
    if (fate?.delayMs && !fate.duplicate) {
      this.after(fate.delayMs, () => {
        if (!this.cut) send();
      });
      return;
    }
    send();
    if (fate?.duplicate) this.twice(fate, send);
  }

  private down(): void {
    this.generation++;
    this.up = false;
    this.cut = false;
    this.registered = false;
    this.registering = null;
    this.setRegisterOnWire(false);
    for (const u of this.unserve.splice(0)) u();
    for (const wake of this.onDown.splice(0)) wake();
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    this.tasks.clear();
    for (const st of this.streams.values()) this.setInFlight(st, false);
    this.streams.clear();
    this.lastSeq.clear();
  }

  private after(ms: number, fn: () => void): unknown {
    const gen = this.generation;
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      if (gen === this.generation) fn();
    }, ms);
    this.timers.add(h);
    return h;
  }

  private cancel(h: unknown): void {
    if (h === null || h === undefined) return;
    this.clock.clearTimeout(h);
    this.timers.delete(h);
  }

  private cancelTaskTimer(t: SimTask): void {
    this.cancel(t.timer);
    t.timer = null;
  }

  /**
   * Register until a leader accepts, retrying with backoff on the virtual clock. Resolves true
   * once accepted, false if the agent crashed, rebooted or stopped first.
   */
  register(): Promise<boolean> {
    if (!this.up) return Promise.resolve(false);
    if (this.registering) return this.registering;
    const gen = this.generation;
    const p = (async () => {
      let delay = this.registerRetryMs;
      while (gen === this.generation) {
        const req: RegisterRequest = {
          agentId: this.agentId,
          host: this.host,
          attributes: this.attributes,
          resources: this.resources,
          bootId: this.currentBootId,
          running: this.running(),
        };
        this.setRegisterOnWire(true);
        let reply: RegisterReply | null = null;
        const fate: MessageFate | null = this.cut ? { lost: "request" } : (this.network?.("register", this.agentId) ?? null);
        try {
          if (fate?.lost !== "request") {
            if (fate?.duplicate) void this.bus.request(subjects.register(this.agentId), req).catch(() => {});
            reply = await this.bus.request<RegisterReply>(subjects.register(this.agentId), req);
            if (fate?.lost === "reply") reply = null;
          }
        } catch {
          // no leader yet
        } finally {
          if (gen === this.generation) this.setRegisterOnWire(false);
        }
        if (gen !== this.generation) return false;
        // A deposed leader may still answer for a moment: only the announced leader counts.
        if (reply?.ok && (reply.epoch ?? 0) >= this.announcedEpoch) {
          this.registered = true;
          this.leaderEpoch = reply.epoch ?? 0;
          // Resend every unacknowledged head now, with its backoff reset (the real agent's resume()).
          for (const s of this.streams.values()) {
            this.cancel(s.timer);
            s.timer = null;
            s.failures = 0;
            this.pump(s);
          }
          return true;
        }
        const wait = delay;
        delay = Math.min(delay * 2, 5000);
        // A crash or reboot cancels this timer (down()), and a new incarnation registers anew.
        const alive = await new Promise<boolean>((resolve) => {
          const wake = () => resolve(false);
          this.onDown.push(wake);
          this.after(wait, () => {
            this.onDown = this.onDown.filter((w) => w !== wake);
            resolve(true);
          });
        });
        if (!alive) return false;
      }
      return false;
    })().finally(() => {
      if (this.registering === p) this.registering = null;
    });
    this.registering = p;
    return p;
  }

  private onLaunch(req: LaunchRequest): Ack {
    if (!req || typeof req.taskId !== "string" || !Array.isArray(req.processes)) {
      return { ok: false, error: "launch request must have taskId and processes" };
    }
    if (this.tasks.has(req.taskId)) return { ok: true }; // a retried launch: already handled
    const behavior = resolveBehavior(this.resolver(req), this.rng);
    const t: SimTask = { taskId: req.taskId, job: req.job, instance: req.instance, phase: "starting", behavior, timer: null };
    this.tasks.set(req.taskId, t);
    t.timer = this.after(behavior.startMs, () => {
      t.timer = null;
      if (t.phase !== "starting") return;
      t.phase = "running";
      this.enqueue(t.taskId, "STARTING");
      this.enqueue(t.taskId, "RUNNING", { message: "simulated processes started" });
      if (behavior.runMs !== null) {
        t.timer = this.after(behavior.runMs, () => {
          t.timer = null;
          if (t.phase !== "running") return;
          this.end(t, behavior.exitCode, `the simulated process exited with code ${behavior.exitCode} after ${behavior.runMs} ms`);
        });
      }
    });
    return { ok: true };
  }

  private onKill(req: KillRequest): Ack {
    if (!req || typeof req.taskId !== "string") return { ok: false, error: "kill request must have taskId" };
    const t = this.tasks.get(req.taskId);
    if (!t) {
      // Killed before its launch arrived: it never ran, and it never will.
      this.tasks.set(req.taskId, { taskId: req.taskId, job: "", instance: -1, phase: "killed-before-launch", behavior: null, timer: null });
      this.enqueue(req.taskId, "KILLED", { message: "killed before it was launched" });
      return { ok: true };
    }
    if (t.phase === "starting" || t.phase === "running") {
      const wasRunning = t.phase === "running";
      this.cancelTaskTimer(t);
      t.phase = "killing";
      t.timer = this.after(t.behavior?.killMs ?? 0, () => {
        t.timer = null;
        t.phase = "ended";
        this.enqueue(t.taskId, "KILLED", { message: wasRunning ? "killed (simulated)" : "killed before it started (simulated)" });
      });
    }
    return { ok: true };
  }

  private end(t: SimTask, exitCode: number, message: string): void {
    t.phase = "ended";
    if (exitCode === 0) this.enqueue(t.taskId, "FINISHED", { exitCode: 0, message });
    else this.enqueue(t.taskId, "FAILED", { exitCode, message });
  }

  // ---- status updates: at least once, in order, one in flight per task ----------------------

  private enqueue(taskId: string, state: AgentTaskState, extra: { exitCode?: number; message?: string } = {}): void {
    const seq = (this.lastSeq.get(taskId) ?? 0) + 1;
    this.lastSeq.set(taskId, seq);
    const update: StatusUpdate = { taskId, seq, state, ts: this.clock.now() };
    if (extra.exitCode !== undefined) update.exitCode = extra.exitCode;
    if (extra.message !== undefined) update.message = extra.message;
    let s = this.streams.get(taskId);
    if (!s) this.streams.set(taskId, (s = { taskId, queue: [], inFlight: false, failures: 0, timer: null }));
    s.queue.push(update);
    this.pump(s);
  }

  /** Send the stream's head, unless one is in flight or waits out a backoff; `given` overrides the network's say. */
  private pump(s: Stream, given?: MessageFate | null): void {
    if (!this.up || s.inFlight || s.timer || s.queue.length === 0) return;
    const head = s.queue[0]!;
    const gen = this.generation;
    const fate = this.cut ? { lost: "request" as const } : given !== undefined ? given : (this.network?.("status", this.agentId) ?? null);
    if (fate?.delayMs && !fate.duplicate) {
      // On the wire for a while: then it arrives (unless the agent is cut off by then).
      s.timer = this.after(fate.delayMs, () => {
        s.timer = null;
        this.pump(s, { ...fate, delayMs: 0 });
      });
      return;
    }
    this.setInFlight(s, true);
    if (fate?.lost === "request") {
      this.settled(s, head, gen, false);
      return;
    }
    const req: StatusRequest = { agentId: this.agentId, update: head };
    const send = () => this.bus.request<{ ok: boolean; error?: string }>(subjects.status(this.agentId), req);
    send().then(
      (reply) => this.settled(s, head, gen, reply?.ok === true && fate?.lost !== "reply"),
      () => this.settled(s, head, gen, false),
    );
    if (fate?.duplicate) this.twice(fate, () => void send().catch(() => {}));
  }

  /** The second copy of a duplicated message: at once, or `delayMs` late (after newer ones). */
  private twice(fate: MessageFate, deliver: () => void): void {
    if (!fate.delayMs) return deliver();
    this.after(fate.delayMs, () => {
      if (!this.cut) deliver();
    });
  }

  private settled(s: Stream, head: StatusUpdate, gen: number, acked: boolean): void {
    if (gen !== this.generation) return; // crashed or rebooted meanwhile: that update is gone
    this.setInFlight(s, false);
    if (acked) {
      if (s.queue[0] === head) s.queue.shift();
      s.failures = 0;
      this.delivered.push({ ...head, ackedAt: this.clock.now() });
      if (s.queue.length === 0) {
        if (this.streams.get(s.taskId) === s) this.streams.delete(s.taskId);
        return;
      }
      this.pump(s);
      return;
    }
    this.statusFailures++;
    s.failures++;
    const delay = Math.min(10_000, this.statusRetryMs * 2 ** Math.min(s.failures - 1, 30));
    s.timer = this.after(delay, () => {
      s.timer = null;
      this.pump(s);
    });
  }
}
