// Runs the health checks of an agent's tasks (Aurora's HealthChecker, one per task there; one for
// the whole agent here) and says when a task became healthy (RUNNING) or unhealthy (to be failed).
//
// - watch() starts checking a task: the first check one intervalSecs after watch() plus a jitter
//   in [0, intervalSecs) derived from the task id (so that a thousand tasks launched together do
//   not all fire in the same millisecond, and the same task always gets the same phase), then
//   every intervalSecs on that grid. A check still in flight when its next tick comes makes that
//   tick a no-op: at most one check per task is in flight.
// - Each result is folded in by policy.ts (Aurora's attempt arithmetic); its verdict goes to the
//   listener: onRunning once, onUnhealthy once (and the task is checked no more).
// - A file .healthchecksnooze in the sandbox pauses the task's checks: at a tick where it exists
//   the check is not run and the counters do not move (status() says snoozed). Aurora instead
//   counts a snoozed tick as an attempt that passed and resets the run of successes.
// - unwatch() stops a task's checks; a check in flight is ignored when it returns.
// - Cheap at a thousand checks a second (bench/health.ts: 1,000 tasks every second cost 11-21 %
//   of one core): one timer per task (unref'd: it keeps no process alive), its tick and result
//   handlers made once at watch(), HTTP checks on kept-alive connections (probes.ts), and nothing
//   runs between ticks.

import * as fs from "node:fs";
import * as path from "node:path";
import type { HealthCheckConfig } from "../../domain/types.js";
import { type HealthCounters, type HealthPolicy, healthPolicy, initialCounters, recordCheck } from "./policy.js";
import { type HttpCheckSpec, httpProbe, type ProbeResult, shellProbe } from "./probes.js";
import { HEALTH_CHECK_DEFAULTS } from "../../spec/jobSpec.js";

/** In a task's sandbox, pauses its health checks while it exists (Aurora's name). */
export const SNOOZE_FILE = ".healthchecksnooze";

export interface HealthTarget {
  taskId: string;
  config: HealthCheckConfig;
  /** the task's "health" port; required for http checks (without it the first check fails with reason 'no port named "health"') */
  port: number | null;
  sandboxDir: string;
  env: Record<string, string>;
}

export interface HealthListener {
  onRunning(message: string): void;
  onUnhealthy(message: string): void;
  /** every check, for metrics */
  onCheck?(ok: boolean, seconds: number): void;
}

/** A task's counters, with the last check's failure reason (null when it passed) and whether it is snoozed now. */
export type HealthStatus = HealthCounters & { lastReason: string | null; snoozed: boolean };

/** Aurora's HttpHealthChecker defaults, for a config that names neither http nor shell. */
const DEFAULT_HTTP: HttpCheckSpec = HEALTH_CHECK_DEFAULTS.http;
const NO_PORT: ProbeResult = Object.freeze({ ok: false, reason: 'no port named "health"' }) as ProbeResult;

/** FNV-1a of the task id, as a fraction in [0, 1). */
export function jitterOf(taskId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < taskId.length; i++) {
    h ^= taskId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x1_0000_0000;
}

/** One watched task. Its handlers are made once, here, and reused by every check. */
class Watch {
  counters: HealthCounters = initialCounters();
  lastReason: string | null = null;
  snoozed = false;
  stopped = false;
  private inFlight = false;
  private timer: NodeJS.Timeout | null = null;
  private nextAt: number;
  private startedAt = 0;
  private readonly policy: HealthPolicy;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly snoozePath: string;

  constructor(
    readonly target: HealthTarget,
    private readonly listener: HealthListener,
    private readonly now: () => number,
  ) {
    const cfg = target.config;
    this.policy = healthPolicy(cfg);
    // The spec allows neither 0 nor less; a floor keeps a bad config from spinning.
    this.intervalMs = Math.max(10, cfg.intervalSecs * 1000);
    this.timeoutMs = Math.max(1, cfg.timeoutSecs * 1000);
    this.snoozePath = path.join(target.sandboxDir, SNOOZE_FILE);
    const first = this.intervalMs * (1 + jitterOf(target.taskId));
    this.nextAt = now() + first;
    this.arm(first);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(this.tick, delay);
    this.timer.unref();
  }

  private readonly tick = (): void => {
    if (this.stopped) return;
    const now = this.now();
    // The next tick on this task's grid (ticks missed while the loop was busy are skipped).
    this.nextAt += this.intervalMs;
    if (this.nextAt <= now) this.nextAt += Math.ceil((now - this.nextAt + 1) / this.intervalMs) * this.intervalMs;
    this.arm(this.nextAt - now);
    if (this.inFlight) return;
    if (fs.existsSync(this.snoozePath)) {
      this.snoozed = true;
      return;
    }
    this.snoozed = false;
    this.inFlight = true;
    this.startedAt = now;
    this.probe().then(this.onResult, this.onProbeError);
  };

  private probe(): Promise<ProbeResult> {
    const { config, port, sandboxDir, env } = this.target;
    // Aurora: a shell checker when one is named, else HTTP.
    if (config.shell) return shellProbe(config.shell.command, sandboxDir, env, this.timeoutMs);
    if (port === null) return Promise.resolve(NO_PORT);
    return httpProbe(port, config.http ?? DEFAULT_HTTP, this.timeoutMs);
  }

  private readonly onProbeError = (err: unknown): void => {
    this.onResult({ ok: false, reason: `internal health check error: ${err instanceof Error ? err.message : String(err)}` });
  };

  private readonly onResult = (r: ProbeResult): void => {
    if (this.stopped) return; // unwatched while in flight
    this.inFlight = false;
    this.listener.onCheck?.(r.ok, (this.now() - this.startedAt) / 1000);
    this.lastReason = r.ok ? null : (r.reason ?? "health check failed");
    const { counters, verdict } = recordCheck(this.policy, this.counters, r.ok, r.reason);
    this.counters = counters;
    if (verdict.kind === "running") {
      this.listener.onRunning(verdict.message);
    } else if (verdict.kind === "unhealthy") {
      // Final: nothing more to check.
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.listener.onUnhealthy(verdict.message);
    }
  };
}

export class HealthChecker {
  private readonly now: () => number;
  private readonly watches = new Map<string, Watch>();

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Starts checking a task (a task already watched starts over). */
  watch(target: HealthTarget, listener: HealthListener): void {
    this.unwatch(target.taskId);
    this.watches.set(target.taskId, new Watch(target, listener, this.now));
  }

  /** Stops checking a task; a check in flight is ignored when it returns. */
  unwatch(taskId: string): void {
    const w = this.watches.get(taskId);
    if (!w) return;
    w.stop();
    this.watches.delete(taskId);
  }

  stop(): void {
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }

  /** Tasks watched (one found unhealthy stays until unwatched, no longer checked). */
  watching(): number {
    return this.watches.size;
  }

  /** per-task counters for inspection (roost task status) */
  status(taskId: string): HealthStatus | null {
    const w = this.watches.get(taskId);
    if (!w) return null;
    return { ...w.counters, lastReason: w.lastReason, snoozed: w.snoozed };
  }
}
