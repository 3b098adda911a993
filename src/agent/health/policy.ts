// Aurora's health check arithmetic (executor/common/health_checker.py, ThreadedHealthChecker), as a
// pure state machine: no I/O, no clock. The checker (checker.ts) folds every check's result in
// with recordCheck and acts on the verdict.
//
// - The first `forgivingAttempts` = ceil(initialIntervalSecs / intervalSecs) checks are the grace
//   period: a failure there is not counted while the task is not RUNNING yet.
// - The task is RUNNING once minConsecutiveSuccesses checks in a row pass; a failure resets the run.
// - It must get there within maxAttemptsToRunning = forgiving + maxConsecutiveFailures +
//   minConsecutiveSuccesses attempts. A counted failure that leaves fewer attempts than successes
//   still needed fails at once ("failing fast"); running out of attempts is the deadline.
// - Before or after RUNNING, more than maxConsecutiveFailures counted failures in a row make it
//   unhealthy. Unhealthy is final: later checks change nothing.
//
// Where this differs from Aurora's last release (deliberately, as specified for Roost):
// - Aurora forgives a failure in the grace attempts even after the task is RUNNING; here a task
//   that is RUNNING has no grace left.
// - Aurora fails fast only while more than 1 attempt remains, and enforces the deadline at the
//   check after the last attempt (without running it). Here failing fast also applies with 1 or 0
//   attempts left, and the deadline is decided on the last attempt itself, so an unhealthy verdict
//   never waits for one more interval. Failing fast then catches every way to the deadline but
//   one: minConsecutiveSuccesses 0, which the spec refuses. The deadline stays as the safety net.

import type { HealthCheckConfig } from "../../domain/types.js";

export interface HealthCounters {
  /** Checks folded in (snoozed ticks are not checks). */
  attempts: number;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** Reached minConsecutiveSuccesses once (the executor reported RUNNING). */
  running: boolean;
  /** Final: the task is to be failed. */
  unhealthy: boolean;
}

export interface HealthPolicy {
  forgivingAttempts: number;
  maxAttemptsToRunning: number;
  minConsecutiveSuccesses: number;
  maxConsecutiveFailures: number;
}

export type Verdict = { kind: "none" } | { kind: "running"; message: string } | { kind: "unhealthy"; message: string };

const NONE: Verdict = Object.freeze({ kind: "none" }) as Verdict;

/**
 * ceil(initial / interval), as Aurora computes it, but immune to binary fractions: 0.9 / 0.3 is
 * 3.0000000000000004 in floating point, which is 3 attempts, not 4.
 */
function forgivingAttempts(initialIntervalSecs: number, intervalSecs: number): number {
  if (!(intervalSecs > 0) || !(initialIntervalSecs > 0)) return 0;
  const q = initialIntervalSecs / intervalSecs;
  const r = Math.round(q);
  return Math.abs(q - r) < 1e-9 ? r : Math.ceil(q);
}

export function healthPolicy(cfg: HealthCheckConfig): HealthPolicy {
  const forgiving = forgivingAttempts(cfg.initialIntervalSecs, cfg.intervalSecs);
  const maxConsecutiveFailures = Math.max(0, Math.floor(cfg.maxConsecutiveFailures));
  const minConsecutiveSuccesses = Math.max(0, Math.floor(cfg.minConsecutiveSuccesses));
  return {
    forgivingAttempts: forgiving,
    maxAttemptsToRunning: forgiving + maxConsecutiveFailures + minConsecutiveSuccesses,
    minConsecutiveSuccesses,
    maxConsecutiveFailures,
  };
}

export function initialCounters(): HealthCounters {
  return { attempts: 0, consecutiveFailures: 0, consecutiveSuccesses: 0, running: false, unhealthy: false };
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function lastCheck(ok: boolean, reason: string | null): string {
  if (ok) return "last check passed";
  return `last check: ${reason ?? "health check failed"}`;
}

/** One check's result folded in (attempts++ first). */
export function recordCheck(
  policy: HealthPolicy,
  c: HealthCounters,
  ok: boolean,
  reason: string | null,
): { counters: HealthCounters; verdict: Verdict } {
  if (c.unhealthy) return { counters: c, verdict: NONE };
  const n: HealthCounters = { ...c, attempts: c.attempts + 1 };
  if (ok) {
    n.consecutiveSuccesses++;
    n.consecutiveFailures = 0;
    if (!n.running && n.consecutiveSuccesses >= policy.minConsecutiveSuccesses) {
      n.running = true;
      const message = `healthy after ${plural(n.consecutiveSuccesses, "consecutive successful health check", "consecutive successful health checks")}`;
      return { counters: n, verdict: { kind: "running", message } };
    }
  } else {
    n.consecutiveSuccesses = 0;
    // The grace period: not counted.
    if (!n.running && n.attempts <= policy.forgivingAttempts) return deadline(policy, n, ok, reason);
    n.consecutiveFailures++;
    if (!n.running) {
      const needed = policy.minConsecutiveSuccesses - n.consecutiveSuccesses;
      const left = Math.max(0, policy.maxAttemptsToRunning - n.attempts);
      if (needed > left) {
        n.unhealthy = true;
        const message =
          `unhealthy: failing fast: ${plural(needed, "success", "successes")} needed, ` +
          `${plural(left, "attempt", "attempts")} left; ${lastCheck(ok, reason)}`;
        return { counters: n, verdict: { kind: "unhealthy", message } };
      }
    }
    if (n.consecutiveFailures > policy.maxConsecutiveFailures) {
      n.unhealthy = true;
      return { counters: n, verdict: { kind: "unhealthy", message: `unhealthy: ${reason ?? "health check failed"}` } };
    }
  }
  return deadline(policy, n, ok, reason);
}

/** Not RUNNING after maxAttemptsToRunning attempts: unhealthy. */
function deadline(
  policy: HealthPolicy,
  n: HealthCounters,
  ok: boolean,
  reason: string | null,
): { counters: HealthCounters; verdict: Verdict } {
  if (n.running || n.attempts < policy.maxAttemptsToRunning) return { counters: n, verdict: NONE };
  n.unhealthy = true;
  const message =
    `unhealthy: deadline: ${plural(policy.maxAttemptsToRunning, "attempt", "attempts")} used up without ` +
    `${plural(policy.minConsecutiveSuccesses, "successful health check", "consecutive successful health checks")}; ${lastCheck(ok, reason)}`;
  return { counters: n, verdict: { kind: "unhealthy", message } };
}
