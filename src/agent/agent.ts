// `roost agent`: one per host. Registers with the leader (and again whenever a new leader
// announces itself), sends heartbeats, runs tasks as real process trees (executor.ts) and
// reports their status at least once, in order per task (statusQueue.ts).
//
// Recovery (after Mesos agent checkpointing and recovery): the agent checkpoints its tasks and
// unacknowledged status updates to <workDir>/checkpoint.json (checkpoint.ts). A restarted agent
// (after kill -9 too) reads it: on the same boot it re-attaches to the tasks (Executor.adopt:
// same pids keep running; tasks that ended meanwhile are reported with their real exit codes, or
// LOST when no exit status was left), and after a host reboot (a new boot id) it reports every
// checkpointed task LOST. Either way the unacknowledged updates are sent again, seqs continuing.
//
// Services (after Aurora's executor and Mesos's isolators):
// - A task with a health check is RUNNING only once its checks pass (health/checker.ts): until
//   then it stays STARTING, and a task that fails its checks is ended FAILED with the checker's
//   reason, through the graceful kill sequence (executor.ts).
// - Each task is confined in its own cgroup (isolation.ts): ramMb is its memory limit, cpus its
//   CPU shares and quota. A task whose process the kernel OOM-killed ends FAILED with "memory
//   limit exceeded (N MiB)". Every few seconds each sandbox's disk use is checked against diskMb.
//   An agent that cannot confine tasks says so at start-up and in its registration (roost cluster
//   status), and runs them unconfined.
// - roost.agent.<id>.inspect answers what a task's processes are doing (roost task status).

import { readFileSync, renameSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { subjects, type Bus } from "../bus/bus.js";
import { MAX_CMDLINE_BYTES, STATUS_MESSAGE_MAX_LENGTH } from "../domain/limits.js";
import type { AgentResources, HealthCheckConfig, ProcessSpec } from "../domain/types.js";
import { checker, fastChecker, formatProblems, show } from "../domain/validate.js";
import { HTTP_LIFECYCLE_DEFAULTS, portEnv, renderCmdline } from "../spec/jobSpec.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { AgentMetrics } from "../metrics/agent.js";
import { checkpointPath, readCheckpoint, writeCheckpoint, CHECKPOINT_VERSION, type Checkpoint } from "./checkpoint.js";
import { diskUsageBytes } from "./diskUsage.js";
import { Executor, LAUNCH_FAILURE_EXIT_CODE, type ExecutorEvent, type HttpLifecycle, type LaunchedTaskInfo } from "./executor.js";
import { HealthChecker } from "./health/checker.js";
import { createIsolator, type Isolator, type TaskCgroup } from "./isolation.js";
import {
  KillRequestSchema,
  LaunchRequestSchema,
  LaunchShapeSchema,
  LeaderAnnouncementSchema,
  type LeaderAnnouncement,
  type Ack,
  InspectRequestSchema,
  type InspectReply,
  type KillRequest,
  type LaunchRequest,
  type RegisterReply,
  type RegisterRequest,
  type StatusRequest,
} from "./protocol.js";
import { taskSandboxDir } from "./sandbox.js";
import { StatusQueue, type StatusUpdate } from "./statusQueue.js";

// Launches and kills are checked before anything is done (protocol.ts): a request of the wrong
// shape is refused with the field and the rule; a launch of the right shape whose task can never
// run is acknowledged and reported FAILED at once, with the reason.
const checkLaunchShape = checker(LaunchShapeSchema);
const checkLaunch = checker(LaunchRequestSchema);
const checkKill = checker(KillRequestSchema);
const checkAnnouncement = fastChecker(LeaderAnnouncementSchema);
const checkInspect = checker(InspectRequestSchema);

/** A launch's processes with their ports filled in, or why its task can never run. */
function prepareLaunch(req: LaunchRequest): { processes: ProcessSpec[] } | { problem: string } {
  const problems = checkLaunch(req);
  if (problems.length > 0) return { problem: formatProblems(problems) };
  const names = new Set<string>();
  const processes: ProcessSpec[] = [];
  for (const [i, p] of req.processes.entries()) {
    if (names.has(p.name))
      return { problem: `processes[${i}].name: must differ from the names of the other processes (got ${show(p.name)})` };
    names.add(p.name);
    let cmdline: string;
    try {
      cmdline = renderCmdline(p.cmdline, req.ports);
    } catch (err) {
      return { problem: `processes[${i}].cmdline: ${(err as Error).message}` };
    }
    // The schema counts characters; exec counts bytes (E2BIG past 128 KiB).
    const bytes = Buffer.byteLength(cmdline, "utf8");
    if (bytes > MAX_CMDLINE_BYTES)
      return { problem: `processes[${i}].cmdline: must be at most ${MAX_CMDLINE_BYTES} bytes in UTF-8, ports filled in (got ${bytes})` };
    processes.push({
      name: p.name,
      cmdline,
      ...(p.maxFailures != null ? { maxFailures: p.maxFailures } : {}),
      ...(p.daemon != null ? { daemon: p.daemon } : {}),
      ...(p.ephemeral != null ? { ephemeral: p.ephemeral } : {}),
      ...(p.minDuration != null ? { minDuration: p.minDuration } : {}),
      ...(p.final != null ? { final: p.final } : {}),
    });
  }
  for (const [i, c] of (req.processConstraints ?? []).entries()) {
    const unknown = c.order.find((n) => !names.has(n));
    if (unknown !== undefined) return { problem: `processConstraints[${i}].order: must name processes of the task (got ${show(unknown)})` };
  }
  if (req.healthCheck?.http != null && req.healthCheck.shell != null) return { problem: "healthCheck: must have http or shell, not both" };
  return { processes };
}

/** The HTTP steps of a kill for a launch: its lifecycle, or Aurora's default on port health; null without the port. */
function httpLifecycle(req: LaunchRequest): HttpLifecycle | null {
  const given = req.lifecycle?.http;
  if (given === false) return null;
  const cfg = given ?? HTTP_LIFECYCLE_DEFAULTS;
  const port = req.ports[cfg.port];
  if (port === undefined) return null;
  return {
    port,
    gracefulShutdownEndpoint: cfg.gracefulShutdownEndpoint,
    shutdownEndpoint: cfg.shutdownEndpoint,
    gracefulShutdownWaitMs: cfg.gracefulShutdownWaitSecs * 1000,
    shutdownWaitMs: cfg.shutdownWaitSecs * 1000,
  };
}

/** What the agent watches of a running task: its limits, health check and cgroup. */
interface Watched {
  info: LaunchedTaskInfo;
  sandboxDir: string;
  env: Record<string, string>;
  cgroup: TaskCgroup | null;
  /** RUNNING was reported for it (its health checks passed, or it has none). */
  healthy: boolean;
}

/** A status message cut to what a status update may carry. */
function clip(message: string): string {
  return message.length <= STATUS_MESSAGE_MAX_LENGTH ? message : `${message.slice(0, STATUS_MESSAGE_MAX_LENGTH - 3)}...`;
}

export interface AgentOptions {
  bus: Bus;
  agentId: string;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  /**
   * Sandboxes go under <workDir>/sandboxes/<taskId> (the task id escaped into a plain file name,
   * sandbox.ts; a valid one is unchanged); the checkpoint is <workDir>/checkpoint.json.
   */
  workDir: string;
  /** The host's boot id (default: /proc/sys/kernel/random/boot_id); a different one means a reboot. */
  bootId?: string;
  /** Checkpoint tasks and status updates, and recover them at start (default true). */
  checkpoint?: boolean;
  heartbeatMs?: number;
  graceMs?: number;
  statusRetryMs?: number;
  logger?: Logger;
  /** Where its Prometheus metrics go; default: a fresh AgentMetrics. */
  metrics?: AgentMetrics;
  /**
   * How tasks are confined (isolation.ts); default none: `roost agent` and `roost dev` pass
   * createIsolator, tests of other things run their tasks unconfined.
   */
  isolator?: Isolator;
  /** How often each sandbox's disk use (and its cgroup's OOM kills) are checked; default 5 s. */
  diskCheckMs?: number;
}

/** What start() recovered from the checkpoint. */
export interface RecoverySummary {
  /** The checkpoint's boot id differed: the host rebooted, and its tasks were reported LOST. */
  rebooted: boolean;
  /** Tasks re-attached (each is then reported as it ends, or was found to have ended). */
  adopted: string[];
  /** Tasks reported LOST because the host rebooted. */
  lost: string[];
  /** Unacknowledged status updates restored (and sent again). */
  restoredUpdates: number;
}

/** How many ended task ids the checkpoint keeps (a duplicated launch of one is refused). */
const ENDED_KEPT = 1000;

function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return randomUUID();
  }
}

/**
 * Kills the tasks that `workDir`'s checkpoint describes, with no bus and no Agent, and returns
 * their ids: for `roost agent --kill-tasks-on-exit` told to stop before an Agent took the
 * checkpoint over (still connecting to NATS). What taught it: `roost dev` restarts an agent that
 * died, and the new one connects first; when roost dev was killed -9 in that window, the
 * agent's stop found no Agent, killed nothing, and the tasks of the agent before it ran on,
 * orphans of a cluster that was gone. The checkpoint is left as it is: the next agent on this
 * work dir re-attaches to it, finds the processes gone and reports their ends (LOST where the
 * kill left no exit status), as after any agent that died with its tasks. A checkpoint that
 * cannot be read, or is another agent's, kills nothing, and says so; one of another boot kills
 * nothing either (its processes died with the host).
 */
export async function killCheckpointedTasks(opts: {
  workDir: string;
  agentId: string;
  reason: string;
  /** SIGTERM → SIGKILL; default each task's own grace. */
  graceMs?: number;
  bootId?: string;
  logger?: Logger;
  /** Given, once the kills begin, a function that hastens them (SIGKILL now), as a second stop does. */
  onKilling?: (hasten: () => void) => void;
}): Promise<string[]> {
  const log = opts.logger ?? silentLogger;
  let cp: Checkpoint | null;
  try {
    cp = readCheckpoint(checkpointPath(opts.workDir));
  } catch (err) {
    log.warn({ err: (err as Error).message }, "cannot read the checkpoint: its tasks, if any, are left running");
    return [];
  }
  if (!cp || cp.tasks.length === 0) return [];
  if (cp.agentId !== opts.agentId) {
    log.warn({ checkpointOf: cp.agentId }, "the checkpoint is another agent's: its tasks are left running");
    return [];
  }
  if (cp.bootId !== (opts.bootId ?? readBootId())) return []; // its processes died with the host
  const executor = new Executor({ onEvent: () => {} });
  for (const t of cp.tasks) executor.adopt(t);
  await new Promise<void>((r) => setImmediate(r)); // adopt() settles what ended meanwhile in a microtask
  const ids = executor.runningTasks();
  log.info({ tasks: ids, reason: opts.reason }, "killing the checkpoint's tasks before connecting");
  const killed = executor.shutdown(opts.graceMs, opts.reason);
  opts.onKilling?.(() => void executor.shutdown(0, opts.reason));
  await killed;
  executor.detach();
  return ids;
}

/**
 * How long an agent believes a leader announcement that no leader confirms (a registration reply
 * at that epoch) while a lower-epoch leader keeps answering. Well past a lease (3 s), the time a
 * deposed leader may still answer before it steps down.
 */
const UNCONFIRMED_ANNOUNCE_MS = 10_000;

export class Agent {
  readonly agentId: string;
  readonly executor: Executor;
  readonly statuses: StatusQueue;
  /** Its Prometheus metrics: serve `metrics.registry` (metrics/http.ts; `roost agent --metrics`). */
  readonly metrics: AgentMetrics;
  private readonly bus: Bus;
  private readonly log: Logger;
  private readonly bootId: string;
  private readonly unserve: Array<() => void> = [];
  private heartbeat: NodeJS.Timeout | null = null;
  /** Tasks this agent has seen (launched or told to kill): a later launch of a killed one is refused. */
  private readonly known = new Map<string, "running" | "ended" | "killed-before-launch">();
  /** Ended task ids, oldest first, at most ENDED_KEPT (checkpointed). */
  private readonly recentEnded = new Set<string>();
  /** Launches waiting their turn (see onLaunch), and the end of the last one queued. */
  private readonly queuedLaunches = new Map<string, { killed: boolean; done: Promise<Ack> }>();
  private launchTurn: Promise<void> = Promise.resolve();
  private registered = false;
  private registering: Promise<void> | null = null;
  /** Cuts short the wait of the registration under way (register({again: true})). */
  private registerNow: (() => void) | null = null;
  private stopped = false;
  /** stop() calls waiting for acknowledgements: abandon() ends their wait. */
  private readonly abandonWaiters = new Set<() => void>();
  private abandoned = false;
  private readonly checkpointFile: string;
  private readonly checkpointing: boolean;
  /** Checkpoint writes are allowed: after recovery at start, until stop() or abandon(). */
  private checkpointOpen = false;
  private checkpointDirty = false;
  private checkpointFlush: NodeJS.Immediate | null = null;
  /** What start() recovered from the checkpoint (null: there was none, or checkpointing is off). */
  recovery: RecoverySummary | null = null;
  leaderEpoch = 0;
  /** The newest epoch a leader announced itself with (roost.leader). */
  private announcedEpoch = 0;
  readonly isolator: Isolator;
  readonly health = new HealthChecker();
  /** Running tasks' limits, health and cgroups. */
  private readonly watched = new Map<string, Watched>();
  private limitTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: AgentOptions) {
    this.agentId = opts.agentId;
    this.bus = opts.bus;
    this.log = opts.logger ?? silentLogger;
    this.bootId = opts.bootId ?? readBootId();
    this.checkpointing = opts.checkpoint ?? true;
    this.checkpointFile = checkpointPath(opts.workDir);
    this.isolator = opts.isolator ?? createIsolator({ agent: opts.agentId, disabled: true });
    this.executor = new Executor({
      onEvent: (e) => this.onExecutorEvent(e),
      defaultGraceMs: opts.graceMs ?? 5000,
      checkEnded: (taskId) => this.memoryExceeded(taskId),
    });
    this.statuses = new StatusQueue({
      send: (u) => this.sendStatus(u),
      initialRetryMs: opts.statusRetryMs ?? 500,
      maxRetryMs: 10_000,
      onChange: () => this.markDirty(),
    });
    this.metrics = opts.metrics ?? new AgentMetrics();
    this.metrics.watch({
      tasks: () => {
        const counts = { launching: this.queuedLaunches.size, starting: 0, running: 0, killing: 0 };
        for (const t of this.executor.records()) {
          if (t.killed) counts.killing++;
          else if (t.started) counts.running++;
          else counts.starting++;
        }
        return counts;
      },
      unacknowledged: () => this.statuses.pending().length,
      registered: () => this.registered,
      leaderEpoch: () => this.leaderEpoch,
    });
  }

  async start(): Promise<void> {
    const iso = this.isolator.info;
    if (iso.mode === "none") this.log.warn({ isolation: iso }, `tasks run UNCONFINED (no memory or cpu limits): ${iso.detail}`);
    else this.log.info({ isolation: iso }, `tasks are confined with ${iso.mode}`);
    if (this.checkpointing) {
      this.recover();
      this.checkpointOpen = true;
      this.markDirty();
    }
    // Cgroups of tasks that ended while no agent watched (killed -9, never restarted until now).
    const swept = this.isolator.sweep(new Set(this.executor.runningTasks()));
    if (swept.length > 0) this.log.info({ cgroups: swept }, "removed the cgroups of tasks that ended while no agent watched");
    this.unserve.push(
      this.bus.serve(subjects.launch(this.agentId), (d) => this.onLaunch(d)),
      this.bus.serve(subjects.kill(this.agentId), (d) => this.onKill(d)),
      this.bus.serve(subjects.inspect(this.agentId), (d) => this.onInspect(d)),
      this.bus.serve(subjects.leader, (d) => {
        const bad = checkAnnouncement(d);
        if (bad !== null) {
          this.log.warn({ problem: formatProblems([bad]) }, "ignored a malformed leader announcement");
          return;
        }
        const m = d as LeaderAnnouncement;
        const epoch = m.epoch;
        const newLeader = epoch > this.announcedEpoch;
        if (newLeader) this.announcedEpoch = epoch;
        // With agentId, the leader asks one agent to register again (it holds that agent
        // UNREACHABLE but hears its heartbeats again); the others have nothing to do.
        if (typeof m?.agentId === "string") {
          if (m.agentId !== this.agentId) return;
          this.log.info({ epoch }, "the leader asks this agent to register again");
          // It has not seen a registration of ours: one still awaiting its reply was lost.
          void this.register({ again: true });
          return;
        }
        this.log.info({ epoch }, "a new leader announced itself; registering again");
        // A registration under way waits on the leader before: for the reply to a request the
        // dead leader will never answer (5 s), or in its backoff (up to 5 s). A new leader cuts
        // that wait short: it holds placement until every agent has registered with it, and an
        // agent that had reconnected after losing its nats-server made it wait 4 s (the failover
        // bench's nats-loss runs). Only a higher epoch does, so repeating an announcement cannot
        // make the agent send a registration for each one.
        void this.register({ again: newLeader });
      }),
    );
    // The connection to NATS was lost and is back (the agent was stopped, or cut off, long
    // enough for the server to drop it): whatever went out meanwhile is gone, and the leader may
    // hold this agent UNREACHABLE and have rescheduled its tasks. Say so at once (a heartbeat,
    // and a registration: the leader then kills the copies of tasks it placed elsewhere meanwhile)
    // rather than at the next heartbeat and the leader's request to register.
    const offReconnect = this.bus.onReconnect?.(() => {
      if (this.stopped) return;
      this.log.info({}, "the connection to NATS is back; registering again");
      this.beat();
      void this.register({ again: true });
    });
    if (offReconnect) this.unserve.push(offReconnect);
    this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs ?? 1000);
    this.heartbeat.unref();
    this.limitTimer = setInterval(() => this.checkLimits(), this.opts.diskCheckMs ?? 5000);
    this.limitTimer.unref();
    await this.register();
  }

  private beat(): void {
    this.bus.publish(subjects.heartbeat(this.agentId), { agentId: this.agentId, ts: Date.now() });
    this.metrics.heartbeat();
  }

  /**
   * Register until a leader accepts (retrying with backoff while there is none). With `again`, a
   * registration under way stops waiting (for its reply, or its backoff) and sends a new
   * request now: the one it waits on may have been lost with a connection.
   */
  register(opts: { again?: boolean } = {}): Promise<void> {
    if (this.registering) {
      if (opts.again) this.registerNow?.();
      return this.registering;
    }
    this.registering = (async () => {
      let delay = 200;
      let deposedSince: number | null = null;
      // Resolves "again" when register({again}) cuts the current wait short.
      const cut = () => new Promise<"again">((resolve) => (this.registerNow = () => resolve("again")));
      while (!this.stopped) {
        const req: RegisterRequest = {
          agentId: this.agentId,
          host: this.opts.host,
          attributes: this.opts.attributes,
          resources: this.opts.resources,
          bootId: this.bootId,
          running: this.reportedTasks(),
          isolation: { mode: this.isolator.info.mode, detail: this.isolator.info.detail },
        };
        try {
          const sent = this.bus.request<RegisterReply>(subjects.register(this.agentId), req, 5000);
          sent.catch(() => {}); // it may be abandoned below
          const reply = await Promise.race([sent, cut()]).finally(() => (this.registerNow = null));
          if (reply === "again") continue;
          // A deposed leader may still answer for a moment: only the announced leader counts.
          // But an announcement is only a claim (on a bus without permissions anyone can make
          // one, and one with a huge epoch kept every agent re-registering forever): when no
          // leader at the announced epoch has answered for UNCONFIRMED_ANNOUNCE_MS while one
          // at a lower epoch keeps answering, the claim is dropped and that leader taken.
          const stale = reply.ok && (reply.epoch ?? 0) < this.announcedEpoch;
          if (stale) deposedSince ??= Date.now();
          if (stale && Date.now() - deposedSince! >= UNCONFIRMED_ANNOUNCE_MS) {
            this.log.warn(
              { epoch: reply.epoch, announced: this.announcedEpoch, leader: reply.schedulerId },
              `no leader at the announced epoch answered for ${UNCONFIRMED_ANNOUNCE_MS} ms; registering with the one that does`,
            );
            this.announcedEpoch = reply.epoch ?? 0;
          }
          if (reply.ok && (reply.epoch ?? 0) < this.announcedEpoch) {
            this.log.info(
              { epoch: reply.epoch, announced: this.announcedEpoch },
              "a deposed leader answered the registration; trying again",
            );
          } else if (reply.ok) {
            this.registered = true;
            this.leaderEpoch = reply.epoch ?? 0;
            this.metrics.registeredWithLeader();
            this.statuses.resume();
            this.log.info({ epoch: reply.epoch, leader: reply.schedulerId }, "registered");
            return;
          } else {
            this.log.error({ error: reply.error }, "registration refused");
          }
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, "no leader to register with yet");
        }
        const slept = await Promise.race([new Promise<"slept">((r) => setTimeout(() => r("slept"), delay).unref()), cut()]).finally(
          () => (this.registerNow = null),
        );
        delay = slept === "again" ? 200 : Math.min(delay * 2, 5000);
      }
    })().finally(() => {
      this.registering = null;
      this.registerNow = null;
    });
    return this.registering;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /** The highest leader epoch announced and not dropped as unconfirmed: the leader it registers with. */
  get announced(): number {
    return this.announcedEpoch;
  }

  /**
   * Stop; by default kill every task (a dev cluster shutting down). With killTasks false the
   * tasks keep running and the checkpoint stays, for the next agent on this work dir to
   * re-attach to them.
   *
   * `reason` becomes the message of the tasks' KILLED updates (default "killed by scheduler").
   * With statusWaitMs > 0 the agent keeps heartbeating, serving and sending status updates until
   * every update is acknowledged (the leader has recorded the KILLEDs) or that long has passed;
   * what is left unacknowledged stays in the checkpoint for the next agent on this work dir.
   * Launches are refused from the start. Calling it again while it runs (e.g. with graceMs 0)
   * hastens the kills.
   */
  async stop(opts: { killTasks?: boolean; reason?: string; graceMs?: number; statusWaitMs?: number } = {}): Promise<void> {
    const again = this.stopped;
    this.stopped = true;
    if (!again) this.log.info({ reason: opts.reason, killTasks: opts.killTasks ?? true }, "stopping");
    if (!(opts.statusWaitMs! > 0)) {
      if (this.heartbeat) clearInterval(this.heartbeat);
      for (const u of this.unserve.splice(0)) u();
    }
    if (opts.killTasks ?? true) {
      await this.executor.shutdown(opts.graceMs ?? this.opts.graceMs ?? 5000, opts.reason);
      this.flushCheckpoint();
    } else {
      const left = this.executor.runningTasks();
      if (left.length > 0) this.log.info({ tasks: left }, "stopping with tasks left running; a restarted agent re-attaches to them");
    }
    if (opts.statusWaitMs! > 0 && !this.abandoned && this.statuses.pending().length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const acked = await Promise.race([
        this.statuses.onIdle().then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), opts.statusWaitMs))),
        new Promise<boolean>((r) => this.abandonWaiters.add(() => r(false))), // a faster stop() ended it
      ]);
      clearTimeout(timer);
      if (!acked)
        this.log.warn(
          { pending: this.statuses.pending().length },
          "stopping with status updates unacknowledged; they stay in the checkpoint",
        );
    }
    this.abandon();
  }

  /**
   * Lets go at once, as kill -9 would (after the last checkpoint write): no more serving,
   * heartbeats, status sends, polling or checkpoint writes; processes and checkpoint are left as
   * they are. For tests of recovery, and the end of stop().
   */
  abandon(): void {
    this.stopped = true;
    this.abandoned = true;
    for (const w of this.abandonWaiters) w();
    this.abandonWaiters.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.limitTimer) clearInterval(this.limitTimer);
    this.limitTimer = null;
    this.health.stop();
    for (const u of this.unserve.splice(0)) u();
    this.flushCheckpoint();
    this.checkpointOpen = false;
    this.executor.detach();
    this.statuses.stop();
    // Empty once every task is gone (stop() killed them): nothing of this agent is left behind.
    if (this.executor.runningTasks().length === 0) this.isolator.close();
  }

  /** Tasks to report as running at registration: those running, and those not fully reported yet. */
  private reportedTasks(): string[] {
    const ids = new Set(this.executor.runningTasks());
    // A task whose last updates are still on their way is not gone: were it left out, the leader
    // would call it LOST before its real end (e.g. FAILED with an exit code) reaches it.
    for (const u of this.statuses.pending()) ids.add(u.taskId);
    return [...ids];
  }

  // ---- checkpoint --------------------------------------------------------------------------------

  /** Reads the checkpoint and takes over what it describes (start(), before serving anything). */
  private recover(): void {
    let cp: Checkpoint | null;
    try {
      cp = readCheckpoint(this.checkpointFile);
    } catch (err) {
      const aside = `${this.checkpointFile}.unreadable-${Date.now()}`;
      try {
        renameSync(this.checkpointFile, aside);
      } catch {
        // leave it
      }
      this.log.error(
        { err: (err as Error).message, movedTo: aside },
        "cannot read the checkpoint; starting without it (its tasks are not re-attached)",
      );
      return;
    }
    if (!cp) return;
    if (cp.agentId !== this.agentId) {
      throw new Error(
        `${this.checkpointFile} is the checkpoint of agent ${cp.agentId}, not ${this.agentId}: start the agent with --id ${cp.agentId}, or give it another --work-dir`,
      );
    }
    this.statuses.restore(cp.statusUpdates.pending, cp.statusUpdates.lastSeqs);
    for (const taskId of cp.ended) this.noteEnded(taskId, "ended");
    const rebooted = cp.bootId !== this.bootId;
    const summary: RecoverySummary = { rebooted, adopted: [], lost: [], restoredUpdates: cp.statusUpdates.pending.length };
    for (const t of cp.tasks) {
      if (rebooted) {
        // A reboot killed every process of the host: nothing to re-attach to, nothing to kill.
        this.noteEnded(t.taskId, "ended");
        this.statuses.enqueue(t.taskId, "LOST", { message: "the host rebooted" });
        summary.lost.push(t.taskId);
      } else {
        this.known.set(t.taskId, "running");
        const info = t.spec.agent;
        if (info) {
          let cgroup: TaskCgroup | null = null;
          try {
            cgroup = this.isolator.open(t.taskId);
          } catch {
            // unconfined now, as it was then
          }
          const w: Watched = { info, sandboxDir: t.sandboxDir, env: t.spec.env, cgroup, healthy: (cp.healthy ?? []).includes(t.taskId) };
          this.watched.set(t.taskId, w);
          // Started before: its checks go on (a task not yet healthy may still become RUNNING).
          if (t.started) this.watchHealth(t.taskId, w);
        }
        this.executor.adopt(t);
        summary.adopted.push(t.taskId);
      }
    }
    this.recovery = summary;
    this.log.info(
      { rebooted, adopted: summary.adopted, lost: summary.lost, restoredUpdates: summary.restoredUpdates },
      rebooted ? "recovered the checkpoint: the host rebooted, its tasks are LOST" : "recovered the checkpoint: re-attached to its tasks",
    );
  }

  private noteEnded(taskId: string, how: "ended" | "killed-before-launch"): void {
    this.known.set(taskId, how);
    this.recentEnded.delete(taskId);
    this.recentEnded.add(taskId);
    while (this.recentEnded.size > ENDED_KEPT) {
      const oldest = this.recentEnded.values().next().value as string;
      this.recentEnded.delete(oldest);
      this.statuses.forget(oldest);
    }
  }

  /** Something the checkpoint holds changed: write it soon (changes in one turn make one write). */
  private markDirty(): void {
    if (!this.checkpointOpen) return;
    this.checkpointDirty = true;
    if (this.checkpointFlush) return;
    this.checkpointFlush = setImmediate(() => {
      this.checkpointFlush = null;
      this.flushCheckpoint();
    });
  }

  /** Writes the checkpoint now if it changed. */
  flushCheckpoint(): void {
    if (this.checkpointFlush) clearImmediate(this.checkpointFlush);
    this.checkpointFlush = null;
    if (!this.checkpointOpen || !this.checkpointDirty) return;
    this.checkpointDirty = false;
    try {
      writeCheckpoint(this.checkpointFile, this.checkpointData());
    } catch (err) {
      this.checkpointDirty = true;
      this.log.error({ err: (err as Error).message, file: this.checkpointFile }, "cannot write the checkpoint");
    }
  }

  private checkpointData(): Checkpoint {
    const tasks = this.executor.records();
    const ended = [...this.recentEnded];
    return {
      version: CHECKPOINT_VERSION,
      agentId: this.agentId,
      bootId: this.bootId,
      writtenAt: Date.now(),
      tasks,
      statusUpdates: this.statuses.snapshot([...tasks.map((t) => t.taskId), ...ended]),
      ended,
      healthy: [...this.watched].filter(([, w]) => w.healthy).map(([id]) => id),
    };
  }

  /**
   * Launches run one per event-loop turn, in arrival order. A spawn costs ~5 ms, so a burst of
   * hundreds (a large job placed at once) done in one go held the loop for seconds: heartbeats
   * went out late enough for the leader to call the agent unreachable, and launch replies timed
   * out. Each launch is still acknowledged only once it is done and checkpointed.
   */
  private onLaunch(data: unknown): Ack | Promise<Ack> {
    const at = performance.now();
    const shape = checkLaunchShape(data);
    if (shape.length > 0) {
      this.metrics.launch("refused");
      return { ok: false, error: `invalid launch request: ${formatProblems(shape)}` };
    }
    const req = data as LaunchRequest;
    const queued = this.queuedLaunches.get(req.taskId);
    if (queued) return queued.done; // a retried launch still waiting its turn: the same answer
    if (this.known.get(req.taskId) !== undefined) return { ok: true }; // a retried launch: already handled
    if (this.stopped) {
      this.metrics.launch("refused");
      return { ok: false, error: `agent ${this.agentId} is stopping` };
    }
    const prepared = prepareLaunch(req);
    if ("problem" in prepared) {
      this.metrics.launch("failed");
      // It can never run: say so now, once, rather than refuse it to a leader that retries.
      this.noteEnded(req.taskId, "ended");
      this.statuses.enqueue(req.taskId, "FAILED", {
        exitCode: LAUNCH_FAILURE_EXIT_CODE,
        message: clip(`cannot start: ${prepared.problem}`),
      });
      this.flushCheckpoint();
      this.log.warn({ taskId: req.taskId, problem: prepared.problem }, "refused to start a task that can never run; reported it FAILED");
      return { ok: true };
    }
    const entry = { killed: false, done: null as unknown as Promise<Ack> };
    entry.done = this.launchTurn
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => {
        this.queuedLaunches.delete(req.taskId);
        if (this.stopped) return { ok: false, error: `agent ${this.agentId} is stopping` };
        if (entry.killed || this.known.get(req.taskId) !== undefined) return { ok: true }; // killed while waiting (reported KILLED)
        const ack = this.launchNow(req, prepared.processes);
        this.metrics.launch(ack.launched ? "launched" : "failed", (performance.now() - at) / 1000);
        return ack.reply;
      });
    this.launchTurn = entry.done.then(
      () => {},
      () => {},
    );
    this.queuedLaunches.set(req.taskId, entry);
    return entry.done;
  }

  /** Launch a task; `launched` false: it could not start (reported FAILED). */
  private launchNow(req: LaunchRequest, processes: ProcessSpec[]): { reply: Ack; launched: boolean } {
    this.known.set(req.taskId, "running");
    this.statuses.enqueue(req.taskId, "STARTING");
    let sandboxDir: string;
    try {
      sandboxDir = taskSandboxDir(this.opts.workDir, req.taskId);
    } catch (err) {
      this.noteEnded(req.taskId, "ended");
      this.statuses.enqueue(req.taskId, "FAILED", {
        exitCode: LAUNCH_FAILURE_EXIT_CODE,
        message: clip(`cannot start: ${(err as Error).message}`),
      });
      this.flushCheckpoint();
      return { reply: { ok: true }, launched: false };
    }
    let cgroup: TaskCgroup | null;
    try {
      cgroup = this.isolator.prepare(req.taskId, { cpus: req.resources.cpus, ramMb: req.resources.ramMb });
    } catch (err) {
      this.noteEnded(req.taskId, "ended");
      this.statuses.enqueue(req.taskId, "FAILED", {
        exitCode: LAUNCH_FAILURE_EXIT_CODE,
        message: clip(`cannot start: cannot confine the task: ${(err as Error).message}`),
      });
      this.flushCheckpoint();
      return { reply: { ok: true }, launched: false };
    }
    const info: LaunchedTaskInfo = {
      resources: { cpus: req.resources.cpus, ramMb: req.resources.ramMb, diskMb: req.resources.diskMb },
      ports: { ...req.ports },
      ...(req.healthCheck != null ? { healthCheck: healthCheckOf(req.healthCheck) } : {}),
    };
    const env = {
      ...portEnv(req.ports),
      ROOST_TASK_ID: req.taskId,
      ROOST_JOB: req.job,
      ROOST_INSTANCE: String(req.instance),
      ROOST_HOST: this.opts.host,
      ROOST_SANDBOX: sandboxDir,
    };
    this.watched.set(req.taskId, { info, sandboxDir, env, cgroup, healthy: false });
    this.executor.launch({
      taskId: req.taskId,
      processes,
      sandboxDir,
      env,
      ...(req.processConstraints != null ? { processConstraints: req.processConstraints } : {}),
      ...(req.finalizationWaitSecs != null ? { finalizationWaitMs: req.finalizationWaitSecs * 1000 } : {}),
      lifecycle: httpLifecycle(req),
      ...(cgroup ? { cgroupProcs: cgroup.procsFiles } : {}),
      agent: info,
    });
    // Checkpointed before the launch is acknowledged: a restarted agent knows every task it ran.
    this.flushCheckpoint();
    this.log.info({ taskId: req.taskId, sandboxDir }, "launched");
    return { reply: { ok: true }, launched: true };
  }

  private onKill(data: unknown): Ack {
    const problems = checkKill(data);
    if (problems.length > 0) return { ok: false, error: `invalid kill request: ${formatProblems(problems)}` };
    const req = data as KillRequest;
    this.metrics.killed();
    const seen = this.known.get(req.taskId);
    const queued = this.queuedLaunches.get(req.taskId);
    if (queued && seen === undefined) {
      // Its launch is still waiting its turn: it never runs.
      queued.killed = true;
      this.noteEnded(req.taskId, "killed-before-launch");
      this.statuses.enqueue(req.taskId, "KILLED", { message: "killed before it was launched" });
    } else if (this.executor.isRunning(req.taskId)) {
      // A task being killed is judged no more: a check passing now must not report it RUNNING.
      this.health.unwatch(req.taskId);
      // At once: the kill sequence starts in this turn (its HTTP steps, else SIGTERM).
      void this.executor.kill(req.taskId, req.graceMs ?? undefined);
      this.markDirty(); // the task is now being killed
    } else if (seen === undefined) {
      // Killed before its launch arrived: it never ran, and it never will.
      this.noteEnded(req.taskId, "killed-before-launch");
      this.statuses.enqueue(req.taskId, "KILLED", { message: "killed before it was launched" });
    }
    return { ok: true };
  }

  private onExecutorEvent(e: ExecutorEvent): void {
    const w = this.watched.get(e.taskId);
    if (e.type === "started") {
      if (w?.info.healthCheck) {
        this.watchHealth(e.taskId, w);
        return;
      }
      if (w) w.healthy = true;
      this.statuses.enqueue(e.taskId, "RUNNING", { message: `processes started (pids ${Object.values(e.pids).join(", ")})` });
      return;
    }
    this.health.unwatch(e.taskId);
    this.watched.delete(e.taskId);
    w?.cgroup?.destroy();
    this.noteEnded(e.taskId, "ended");
    if (e.type === "lost") this.statuses.enqueue(e.taskId, "LOST", { message: e.message });
    else if (e.killed) this.statuses.enqueue(e.taskId, "KILLED", { exitCode: e.exitCode, message: e.message });
    else if (e.exitCode === 0) this.statuses.enqueue(e.taskId, "FINISHED", { exitCode: 0, message: e.message });
    else this.statuses.enqueue(e.taskId, "FAILED", { exitCode: e.exitCode, message: e.message });
  }

  /**
   * Starts a task's health checks: RUNNING once they pass (with the checker's words), and the
   * task ended FAILED, through the kill sequence, once they fail.
   */
  private watchHealth(taskId: string, w: Watched): void {
    const hc = w.info.healthCheck;
    if (!hc) return;
    this.health.watch(
      { taskId, config: hc, port: w.info.ports.health ?? null, sandboxDir: w.sandboxDir, env: w.env },
      {
        onRunning: (message) => {
          if (w.healthy || this.watched.get(taskId) !== w) return;
          w.healthy = true;
          this.statuses.enqueue(taskId, "RUNNING", { message: clip(message) });
          this.log.info({ taskId, message }, "healthy: RUNNING");
        },
        onUnhealthy: (message) => {
          this.log.warn({ taskId, message }, "unhealthy: ending the task FAILED");
          // The checker checks it no more, and keeps its counters for roost task status.
          this.executor.terminate(taskId, clip(message));
          this.markDirty();
        },
        onCheck: (ok, seconds) => this.metrics.healthCheck(ok, seconds),
      },
    );
  }

  /** Ends a task FAILED with `reason`, through the kill sequence; its health is judged no more. */
  private terminate(taskId: string, reason: string): void {
    this.health.unwatch(taskId);
    this.executor.terminate(taskId, clip(reason));
    this.markDirty();
  }

  /** The OOM reason when the kernel killed a process of the task for its memory limit, else null. */
  private memoryExceeded(taskId: string): string | null {
    const w = this.watched.get(taskId);
    if (!w?.cgroup) return null;
    return w.cgroup.oomKills() > 0 ? `memory limit exceeded (${w.info.resources.ramMb} MiB)` : null;
  }

  /**
   * Every diskCheckMs: a sandbox over its diskMb, or a cgroup whose OOM killer struck a process
   * the task survived, ends the task FAILED with the reason. One walk per sandbox, cut short past
   * the limit.
   */
  private checkLimits(): void {
    for (const [taskId, w] of this.watched) {
      if (!this.executor.isRunning(taskId)) continue;
      const memory = this.memoryExceeded(taskId);
      if (memory !== null) {
        this.terminate(taskId, memory);
        continue;
      }
      const limit = w.info.resources.diskMb * 1024 * 1024;
      if (!(limit > 0)) continue;
      const used = diskUsageBytes(w.sandboxDir, limit + 1);
      if (used > limit) {
        const mib = Math.ceil(used / (1024 * 1024));
        this.log.warn({ taskId, usedMiB: mib, diskMb: w.info.resources.diskMb }, "sandbox over its disk limit: ending the task FAILED");
        this.terminate(
          taskId,
          `disk limit exceeded: the sandbox uses more than ${mib - 1} MiB, over its diskMb of ${w.info.resources.diskMb} MiB`,
        );
      }
    }
  }

  /** roost.agent.<id>.inspect: a task's processes and health checks, as the executor sees them now. */
  private onInspect(data: unknown): InspectReply {
    const problems = checkInspect(data);
    if (problems.length > 0) return { ok: false, error: `invalid inspect request: ${formatProblems(problems)}` };
    const { taskId } = data as { taskId: string };
    const status = this.executor.status(taskId);
    if (!status) return { ok: false, error: `agent ${this.agentId} does not run task ${taskId}` };
    const w = this.watched.get(taskId);
    const h = this.health.status(taskId);
    return {
      ok: true,
      agentId: this.agentId,
      taskId,
      phase: status.phase,
      killStep: status.killStep,
      processes: status.processes,
      health: h
        ? {
            running: h.running,
            consecutiveSuccesses: h.consecutiveSuccesses,
            consecutiveFailures: h.consecutiveFailures,
            attempts: h.attempts,
            lastReason: h.lastReason,
            snoozed: h.snoozed,
          }
        : null,
      isolation: this.isolator.info.mode,
      memoryBytes: w?.cgroup?.memoryBytes() ?? null,
    };
  }

  private async sendStatus(update: StatusUpdate): Promise<boolean> {
    const req: StatusRequest = { agentId: this.agentId, update };
    let reply: { ok: boolean; error?: string };
    try {
      reply = await this.bus.request<{ ok: boolean; error?: string }>(subjects.status(this.agentId), req, 5000);
    } catch (err) {
      this.metrics.sendFailed("no reply");
      throw err;
    }
    if (reply.ok) this.metrics.delivered(update.state, (Date.now() - update.ts) / 1000);
    else {
      this.metrics.sendFailed("refused");
      this.log.warn({ error: reply.error, update }, "status update refused");
    }
    return reply.ok;
  }
}

/** A launch's health check as the executor's type (the schema allows nil for absent fields). */
function healthCheckOf(h: NonNullable<LaunchRequest["healthCheck"]>): HealthCheckConfig {
  // Neither http nor shell: the checker's default HTTP check (Aurora's).
  return {
    initialIntervalSecs: h.initialIntervalSecs,
    intervalSecs: h.intervalSecs,
    timeoutSecs: h.timeoutSecs,
    maxConsecutiveFailures: h.maxConsecutiveFailures,
    minConsecutiveSuccesses: h.minConsecutiveSuccesses,
    ...(h.shell != null ? { shell: { command: h.shell.command } } : {}),
    ...(h.http != null ? { http: { ...h.http } } : {}),
  };
}
