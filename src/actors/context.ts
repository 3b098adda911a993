// What a leader term offers its actors (term.ts builds it). Each actor takes only the part it
// needs, as a Pick of this type, and its peers as ActorRefs: it cannot reach the Scheduler, the
// term, or another actor's insides.

import type { Bus } from "../bus/bus.js";
import type { AnyEnvelope, EventPayloads, EventType } from "../domain/events.js";
import type { EventLog } from "../eventlog/log.js";
import type { ClusterState } from "../replay/state.js";
import type { Logger } from "../util/logger.js";
import type { SchedulerMetrics } from "../metrics/scheduler.js";
import type { Clock, Ids } from "./clock.js";
import type { SchedulingPolicy } from "./policy.js";

export interface TermContext {
  /** The folded state: read it; only the fold (the term's commits) changes it. */
  readonly state: ClusterState;
  readonly policy: SchedulingPolicy;
  readonly allowedEnvironments: RegExp;
  readonly clock: Clock;
  readonly ids: Ids;
  readonly log: Logger;
  readonly bus: Bus;
  /** The log, for reads (a task's history reasons); writes go through commit(). */
  readonly eventLog: EventLog;
  readonly schedulerId: string;
  readonly epoch: number;
  /** How long an agent request may take before it is retried (ms), and the first retry delay. */
  readonly agentRequestTimeoutMs: number;
  readonly retryMs: number;
  /** The replica's Prometheus metrics: an actor reports what it did (a counter, a histogram). */
  readonly metrics: SchedulerMetrics;
  /** True while this term leads (false once it ended). */
  leading(): boolean;
  /** True between LeaderElected and the end of the reconciliation window. */
  reconciling(): boolean;
  /**
   * Append events atomically; resolves once they are committed and folded. Refuses (throws) what
   * the fold would reject; with `recheck`, drops what a record on the wire overtook.
   */
  commit(events: AnyEnvelope[], opts?: { recheck?: boolean }): Promise<number>;
  /** An envelope stamped with this term's epoch and clock. */
  event<T extends EventType>(type: T, data: EventPayloads[T], reason: string, corr?: string): AnyEnvelope;
  /** A new correlation id for a request that starts here. */
  corr(prefix?: string): string;
  /** In-memory views changed (pending reasons): watchers (tests, the simulator) look again. */
  changed(): void;
}
