// Placement actor: rounds over the PENDING tasks, one at a time; each round's decisions are
// committed together and folded before the next round starts, so resources are never
// double-booked.
//
// Tasks are grouped by identical configuration (job + config version), and groups take turns
// in batches, so a large job cannot starve a small one. A group whose next task fits nowhere
// stops for the round, records why (shown by `roost job status`), and backs off (1 s → 1 min,
// doubling); a capacity change brings the retry forward (CAPACITY_RETRY_MS after it was judged).
// Pending reasons are kept in memory, as in Aurora: they describe the present, not history.
//
// An actor: a "kick" (a commit left tasks PENDING, capacity changed, a backoff ended) runs one
// round; kicks that arrive meanwhile make one more round. Its pending reasons and its view of the
// active agents are a read model others read (PlacementView), never change.

import type { JobKeyString, TaskId } from "../domain/types.js";
import { TaskGroup } from "../scheduling/feasible.js";
import { activeAgents, OfferBook } from "../scheduling/offers.js";
import { PlacementStack } from "../scheduling/stack.js";
import type { AgentRecord } from "../replay/state.js";
import type { PlacementAttempts } from "../metrics/scheduler.js";
import { Actor } from "./actor.js";
import type { TermContext } from "./context.js";

export type PlacementMsg = { type: "kick" };

type Deps = Pick<TermContext, "state" | "clock" | "log" | "policy" | "reconciling" | "commit" | "event" | "changed" | "metrics">;

/** What Placement knows that others read: why tasks wait, and the agents it places on. */
export interface PlacementView {
  /** Why a PENDING task waits, if placement has looked at it. */
  reasonFor(taskId: TaskId): string | undefined;
  /** Why the PENDING tasks of a job's config version wait, if placement has looked at them. */
  reasonForGroup(job: JobKeyString, configVersion: number): string | undefined;
  /** The active agents in a stable order. */
  activeAgents(): readonly AgentRecord[];
}

/** Tasks of one group placed before the next group's turn. */
export const GROUP_BATCH = 50;
/** At most this many placements per round (bounds the latency of a round). */
export const ROUND_MAX = 2000;

interface Backoff {
  delayMs: number;
  untilTs: number;
  /** When the group was last judged blocked. */
  judgedTs: number;
}

/**
 * After capacity changes, a blocked group is judged again at most this long after it was last
 * judged blocked (sooner if its backoff ends first). Judging a blocked group looks at every agent;
 * retrying every blocked group at once on every change made 5,000 agents joining a 30,000-task
 * backlog take 41 s to register (each registration a commit, each commit a round judging every
 * blocked group against every agent so far: 84% of the leader's time).
 */
const CAPACITY_RETRY_MS = 250;

/** The pending reason while no agent is active (the placement stack's own words). */
const NO_AGENTS = "No active agents";

export class Placement extends Actor<PlacementMsg> implements PlacementView {
  private readonly groupReasons = new Map<string, string>();
  /** The last round found no active agent (every pending task's reason is NO_AGENTS). */
  private noAgents = false;
  private readonly backoffs = new Map<string, Backoff>();
  private readonly stack: PlacementStack;
  private agents: AgentRecord[] = [];
  private agentsVersion = -1;
  private capacitySeen = -1;
  private groupTurn = 0;
  /** A kick is on its way to the mailbox (kicks in one tick make one round). */
  private kickQueued = false;
  private wakeTimer: unknown = null;
  private wakeAt = Infinity;
  /** Placements made since start (for metrics and benchmarks). */
  placed = 0;
  /** Attempts per task for roost_scheduling_attempts_total (counted once the round's commit settles). */
  private readonly attempts: PlacementAttempts;

  constructor(private readonly s: Deps) {
    super("placement", s.log, () => s.clock.now());
    this.stack = new PlacementStack({ placementMode: s.policy.placementMode, candidateLimit: s.policy.candidateLimit });
    this.attempts = s.metrics.placementAttempts();
  }

  override get busy(): boolean {
    return super.busy || this.kickQueued;
  }

  /** Why a PENDING task waits, if placement has looked at it. */
  reasonFor(taskId: TaskId): string | undefined {
    const t = this.s.state.tasks.get(taskId);
    if (t?.state !== "PENDING") return undefined;
    return this.reasonForGroup(t.job, t.configVersion);
  }

  /** Why the pending tasks of a job's config version wait, if placement has looked at them. */
  reasonForGroup(job: JobKeyString, configVersion: number): string | undefined {
    return this.noAgents ? NO_AGENTS : this.groupReasons.get(`${job}#${configVersion}`);
  }

  /** The view `roost job status` reads pending reasons through. */
  readonly pendingReasons = { get: (taskId: TaskId) => this.reasonFor(taskId) };

  /** Ask for a round, on the next turn of the event loop (the commits of this one are folded first). */
  kick(): void {
    if (this.isStopped || this.s.reconciling() || this.kickQueued) return; // the term kicks after reconciling
    this.kickQueued = true;
    setImmediate(() => {
      this.kickQueued = false;
      this.send({ type: "kick" });
    });
  }

  protected override onStop(): void {
    if (this.wakeTimer !== null) this.s.clock.clearTimeout(this.wakeTimer);
  }

  protected receive(): Promise<void> {
    return this.round();
  }

  /** The active agents in a stable order (rebuilt only when agents change). */
  activeAgents(): readonly AgentRecord[] {
    const st = this.s.state;
    if (this.agentsVersion !== st.agentsVersion) {
      this.agents = activeAgents(st);
      this.agentsVersion = st.agentsVersion;
    }
    return this.agents;
  }

  private async round(): Promise<void> {
    const s = this.s;
    const st = s.state;
    if (st.capacityVersion !== this.capacitySeen) {
      // Something was freed or added: every group may fit now, once CAPACITY_RETRY_MS has passed
      // since it was judged blocked.
      this.capacitySeen = st.capacityVersion;
      for (const b of this.backoffs.values()) b.untilTs = Math.min(b.untilTs, b.judgedTs + CAPACITY_RETRY_MS);
    }
    if (st.pending.size === 0) {
      this.groupReasons.clear();
      this.backoffs.clear();
      this.noAgents = false;
      return;
    }
    // No active agent: nothing can be placed, and grouping every pending task to say so costs
    // O(pending) a round, with a round after every commit (the API bench: 5,000 creates with no
    // agents fell to 85/s). Say it once; the next round with an agent judges every group.
    this.noAgents = this.activeAgents().length === 0;
    if (this.noAgents) return;
    const now = s.clock.now();
    // The state keeps the pending tasks grouped (ClusterState.pendingGroups): a round costs the
    // groups and the tasks it places, not every pending task. A key string per group.
    const groups = new Map<string, { job: JobKeyString; version: number; ids: ReadonlySet<TaskId> }>();
    for (const [job, versions] of st.pendingGroups()) {
      for (const [version, ids] of versions) groups.set(`${job}#${version}`, { job, version, ids });
    }
    // Reasons and backoffs of groups no longer pending go: a stale backoff would re-arm a 0 ms
    // wake-up for nothing, for ever (the swarm found it: a busy loop until capacity changed).
    for (const key of this.groupReasons.keys()) if (!groups.has(key)) this.groupReasons.delete(key);
    for (const key of this.backoffs.keys()) if (!groups.has(key)) this.backoffs.delete(key);
    const ready = [...groups.keys()].filter((k) => (this.backoffs.get(k)?.untilTs ?? 0) <= now);
    if (ready.length === 0) return this.wakeAtEarliestBackoff();

    const offers = new OfferBook(st);
    const agents = this.activeAgents();
    const events = [];
    // group → its tasks not yet handled this round, in order (the state does not change until
    // the round's commit, so the iterator stays valid)
    const cursor = new Map<string, Iterator<TaskId>>();
    const blocked = new Set<string>();
    const done = new Set<string>();
    const turn = this.groupTurn++ % ready.length;
    const order = [...ready.slice(turn), ...ready.slice(0, turn)];
    let progress = true;
    while (progress && events.length < ROUND_MAX) {
      progress = false;
      for (const key of order) {
        if (blocked.has(key) || done.has(key) || events.length >= ROUND_MAX) continue;
        const group = groups.get(key)!;
        let it = cursor.get(key);
        if (it === undefined) cursor.set(key, (it = group.ids.values()));
        const batch = nextBatch(it, GROUP_BATCH);
        if (batch.length === 0) {
          done.add(key);
          continue;
        }
        const g = new TaskGroup(st.jobs.get(group.job)!, group.version);
        // Timed with the real clock (a virtual one stands still while placement computes).
        const t0 = performance.now();
        const out = this.stack.placeGroup(st, offers, agents, g, batch, GROUP_BATCH);
        this.attempts.decided(out.assignments.length, out.blocked !== null, (performance.now() - t0) / 1000);
        for (const a of out.assignments) {
          events.push(
            s.event(
              "TaskAssigned",
              { taskId: a.taskId, agentId: a.agentId, host: a.host, ports: a.ports, placement: a.decision },
              a.reason,
            ),
          );
        }
        if (out.assignments.length > 0) {
          progress = true;
          this.backoffs.delete(key);
        }
        if (out.blocked !== null) {
          blocked.add(key);
          this.groupReasons.set(key, out.blocked);
          const prev = this.backoffs.get(key)?.delayMs ?? 0;
          const delayMs = prev === 0 ? s.policy.groupBackoffInitialMs : Math.min(prev * 2, s.policy.groupBackoffMaxMs);
          this.backoffs.set(key, { delayMs, untilTs: now + delayMs, judgedTs: now });
        } else if (out.assignments.length > 0) {
          this.groupReasons.delete(key);
        }
      }
    }
    if (blocked.size > 0) s.changed();
    if (events.length > 0) {
      try {
        // Checked again once the records ahead of it are folded: a kill on the wire may have
        // overtaken a task this round placed (the overtaken assignments are dropped).
        await s.commit(events, { recheck: true });
        this.placed += events.length;
        this.attempts.settled(true);
      } catch (err) {
        this.attempts.settled(false);
        s.log.error({ err }, "placement commit failed");
      }
      // The commit's fold kicks placement again (a kick queued behind this round), so the groups that
      // are not blocked continue in the next round.
    }
    this.wakeAtEarliestBackoff();
  }

  /** Retry when the earliest backed-off group may run again. */
  private wakeAtEarliestBackoff(): void {
    let earliest = Infinity;
    for (const b of this.backoffs.values()) earliest = Math.min(earliest, b.untilTs);
    if (earliest === Infinity || earliest >= this.wakeAt || this.isStopped) return;
    if (this.wakeTimer !== null) this.s.clock.clearTimeout(this.wakeTimer);
    this.wakeAt = earliest;
    this.wakeTimer = this.s.clock.setTimeout(
      () => {
        this.wakeTimer = null;
        this.wakeAt = Infinity;
        this.kick();
      },
      Math.max(0, earliest - this.s.clock.now()),
    );
  }
}

/** The next up to `n` ids from `it`. */
function nextBatch(it: Iterator<TaskId>, n: number): TaskId[] {
  const out: TaskId[] = [];
  while (out.length < n) {
    const r = it.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}
