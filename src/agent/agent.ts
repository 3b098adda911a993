// `roost agent`: one per host. Registers with the leader (and again whenever a new leader
// announces itself), sends heartbeats, runs tasks as real process trees (executor.ts) and
// reports their status at least once, in order per task (statusQueue.ts).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { subjects, type Bus } from "../bus/bus.js";
import type { AgentResources } from "../domain/types.js";
import { portEnv, renderCmdline } from "../spec/jobSpec.js";
import { silentLogger, type Logger } from "../util/logger.js";
import { Executor, type ExecutorEvent } from "./executor.js";
import type { Ack, KillRequest, LaunchRequest, RegisterReply, RegisterRequest, StatusRequest } from "./protocol.js";
import { StatusQueue, type StatusUpdate } from "./statusQueue.js";

export interface AgentOptions {
  bus: Bus;
  agentId: string;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  /** Sandboxes go under <workDir>/sandboxes/<taskId>. */
  workDir: string;
  bootId?: string;
  heartbeatMs?: number;
  graceMs?: number;
  statusRetryMs?: number;
  logger?: Logger;
}

export function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return randomUUID();
  }
}

export class Agent {
  readonly agentId: string;
  readonly executor: Executor;
  readonly statuses: StatusQueue;
  private readonly bus: Bus;
  private readonly log: Logger;
  private readonly bootId: string;
  private readonly unserve: Array<() => void> = [];
  private heartbeat: NodeJS.Timeout | null = null;
  /** Tasks this agent has seen (launched or told to kill): a later launch of a killed one is refused. */
  private readonly known = new Map<string, "running" | "ended" | "killed-before-launch">();
  private registered = false;
  private registering: Promise<void> | null = null;
  private stopped = false;
  leaderEpoch = 0;

  constructor(private readonly opts: AgentOptions) {
    this.agentId = opts.agentId;
    this.bus = opts.bus;
    this.log = opts.logger ?? silentLogger;
    this.bootId = opts.bootId ?? readBootId();
    this.executor = new Executor({ onEvent: (e) => this.onExecutorEvent(e), defaultGraceMs: opts.graceMs ?? 5000 });
    this.statuses = new StatusQueue({
      send: (u) => this.sendStatus(u),
      initialRetryMs: opts.statusRetryMs ?? 500,
      maxRetryMs: 10_000,
    });
  }

  async start(): Promise<void> {
    this.unserve.push(
      this.bus.serve(subjects.launch(this.agentId), (d) => this.onLaunch(d as LaunchRequest)),
      this.bus.serve(subjects.kill(this.agentId), (d) => this.onKill(d as KillRequest)),
      this.bus.serve(subjects.leader, () => {
        this.log.info("a new leader announced itself; registering again");
        void this.register();
      }),
    );
    this.heartbeat = setInterval(() => this.bus.publish(subjects.heartbeat, { agentId: this.agentId, ts: Date.now() }), this.opts.heartbeatMs ?? 1000);
    this.heartbeat.unref();
    await this.register();
  }

  /** Register until a leader accepts (retrying with backoff while there is none). */
  register(): Promise<void> {
    if (this.registering) return this.registering;
    this.registering = (async () => {
      let delay = 200;
      while (!this.stopped) {
        const req: RegisterRequest = {
          agentId: this.agentId,
          host: this.opts.host,
          attributes: this.opts.attributes,
          resources: this.opts.resources,
          bootId: this.bootId,
          running: this.executor.runningTasks(),
        };
        try {
          const reply = await this.bus.request<RegisterReply>(subjects.register, req, 5000);
          if (reply.ok) {
            this.registered = true;
            this.leaderEpoch = reply.epoch ?? 0;
            this.statuses.resume();
            this.log.info({ epoch: reply.epoch, leader: reply.schedulerId }, "registered");
            return;
          }
          this.log.error({ error: reply.error }, "registration refused");
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, "no leader to register with yet");
        }
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 5000);
      }
    })().finally(() => {
      this.registering = null;
    });
    return this.registering;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /** Stop serving; by default kill every task (a dev cluster shutting down). */
  async stop(opts: { killTasks?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const u of this.unserve.splice(0)) u();
    if (opts.killTasks ?? true) await this.executor.shutdown(this.opts.graceMs ?? 5000);
    this.statuses.stop();
  }

  private onLaunch(req: LaunchRequest): Ack {
    if (!req || typeof req.taskId !== "string" || !Array.isArray(req.processes)) {
      return { ok: false, error: "launch request must have taskId and processes" };
    }
    const seen = this.known.get(req.taskId);
    if (seen !== undefined) return { ok: true }; // a retried launch: already handled
    this.known.set(req.taskId, "running");
    this.statuses.enqueue(req.taskId, "STARTING");
    let processes;
    try {
      processes = req.processes.map((p) => ({ name: p.name, cmdline: renderCmdline(p.cmdline, req.ports) }));
    } catch (err) {
      this.known.set(req.taskId, "ended");
      this.statuses.enqueue(req.taskId, "FAILED", { exitCode: 127, message: `cannot start: ${(err as Error).message}` });
      return { ok: true };
    }
    const sandboxDir = join(this.opts.workDir, "sandboxes", req.taskId);
    this.executor.launch({
      taskId: req.taskId,
      processes,
      sandboxDir,
      env: {
        ...portEnv(req.ports),
        ROOST_TASK_ID: req.taskId,
        ROOST_JOB: req.job,
        ROOST_INSTANCE: String(req.instance),
        ROOST_HOST: this.opts.host,
        ROOST_SANDBOX: sandboxDir,
      },
    });
    this.log.info({ taskId: req.taskId, sandboxDir }, "launched");
    return { ok: true };
  }

  private onKill(req: KillRequest): Ack {
    if (!req || typeof req.taskId !== "string") return { ok: false, error: "kill request must have taskId" };
    const seen = this.known.get(req.taskId);
    if (this.executor.isRunning(req.taskId)) {
      void this.executor.kill(req.taskId, req.graceMs);
    } else if (seen === undefined) {
      // Killed before its launch arrived: it never ran, and it never will.
      this.known.set(req.taskId, "killed-before-launch");
      this.statuses.enqueue(req.taskId, "KILLED", { message: "killed before it was launched" });
    }
    return { ok: true };
  }

  private onExecutorEvent(e: ExecutorEvent): void {
    if (e.type === "started") {
      this.statuses.enqueue(e.taskId, "RUNNING", { message: `processes started (pids ${Object.values(e.pids).join(", ")})` });
      return;
    }
    this.known.set(e.taskId, "ended");
    if (e.killed) this.statuses.enqueue(e.taskId, "KILLED", { exitCode: e.exitCode, message: e.message });
    else if (e.exitCode === 0) this.statuses.enqueue(e.taskId, "FINISHED", { exitCode: 0, message: e.message });
    else this.statuses.enqueue(e.taskId, "FAILED", { exitCode: e.exitCode, message: e.message });
  }

  private async sendStatus(update: StatusUpdate): Promise<boolean> {
    const req: StatusRequest = { agentId: this.agentId, update };
    const reply = await this.bus.request<{ ok: boolean; error?: string }>(subjects.status, req, 5000);
    if (!reply.ok) this.log.warn({ error: reply.error, update }, "status update refused");
    return reply.ok;
  }
}
