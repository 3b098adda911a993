// Prometheus metrics of one agent (prom-client), served by `roost agent --metrics host:port`
// (http.ts serveMetrics) and charted by ops/grafana/roost-dashboard.json.
//
// The agent tells it what happened (a heartbeat sent, a launch done, a status update
// acknowledged); what it holds now (its tasks, its unacknowledged updates, its registration) is
// read only when Prometheus scrapes. As in scheduler.ts: a Registry of its own (tests run many
// agents in one process, and prom-client's global registry refuses a second metric of a name),
// Node's process metrics only for a real daemon (defaultMetrics), the roost_agent_ prefix, base
// units, counters ending in _total, and no task id in any label: an agent's tasks come and go,
// and one series per task would grow Prometheus without bound. The agent's id is not a label
// either: Prometheus' own `instance` target label already tells the agents apart.

import { Counter, collectDefaultMetrics, exponentialBuckets, Gauge, Histogram, Registry } from "prom-client";

/** What an agent shows when it is scraped (read only then). */
export interface AgentView {
  /** Its tasks by phase: launches waiting their turn, started, running, being killed. */
  tasks(): { launching: number; starting: number; running: number; killing: number };
  /** Status updates not yet acknowledged by a leader. */
  unacknowledged(): number;
  registered(): boolean;
  /** The epoch of the leader it registered with (0: none yet). */
  leaderEpoch(): number;
}

type LaunchResult = "launched" | "failed" | "refused";

export class AgentMetrics {
  readonly registry = new Registry();
  private view: AgentView | null = null;

  private readonly heartbeats: Counter;
  private readonly registrations: Counter;
  private readonly launches: Counter<"result">;
  private readonly launchSeconds: Histogram;
  private readonly kills: Counter;
  private readonly updates: Counter<"state">;
  private readonly deliverySeconds: Histogram;
  private readonly sendFailures: Counter<"reason">;
  private readonly healthChecks: Counter<"result">;
  private readonly healthCheckSeconds: Histogram;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const view = () => this.view;

    this.heartbeats = new Counter({ name: "roost_agent_heartbeats_total", help: "Heartbeats this agent published", registers });
    this.registrations = new Counter({
      name: "roost_agent_registrations_total",
      help: "Registrations a leader accepted (one per leader change, reconnect or re-registration request)",
      registers,
    });
    this.launches = new Counter({
      name: "roost_agent_launches_total",
      help: "Launch requests, by result: launched, failed (can never run: reported FAILED at once), refused (malformed, or the agent is stopping)",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["launched", "failed", "refused"] as const) this.launches.inc({ result }, 0);
    this.launchSeconds = new Histogram({
      name: "roost_agent_launch_duration_seconds",
      help: "From a launch request's receipt to its acknowledgement (its turn in the launch queue, the spawn and the checkpoint)",
      buckets: exponentialBuckets(0.001, 2, 14),
      registers,
    });
    this.kills = new Counter({ name: "roost_agent_kills_total", help: "Kill requests this agent accepted", registers });
    this.updates = new Counter({
      name: "roost_agent_status_updates_total",
      help: "Status updates a leader acknowledged, by the state they report",
      labelNames: ["state"],
      registers,
    });
    this.deliverySeconds = new Histogram({
      name: "roost_agent_status_update_delivery_seconds",
      help: "From a status update's creation to its acknowledgement by the leader (retries and leader changes included)",
      buckets: exponentialBuckets(0.001, 2, 16),
      registers,
    });
    this.sendFailures = new Counter({
      name: "roost_agent_status_send_failures_total",
      help: 'Status update sends not acknowledged (each is retried), by reason: "refused" by the leader, or "no reply"',
      labelNames: ["reason"],
      registers,
    });
    this.healthChecks = new Counter({
      name: "roost_agent_health_checks_total",
      help: "Health checks this agent ran on its tasks (HTTP or shell), by result: ok or failed",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["ok", "failed"] as const) this.healthChecks.inc({ result }, 0);
    this.healthCheckSeconds = new Histogram({
      name: "roost_agent_health_check_duration_seconds",
      help: "How long one health check took (a request, or a shell command), timeouts included",
      buckets: exponentialBuckets(0.0005, 2, 14),
      registers,
    });

    new Gauge({
      name: "roost_agent_tasks",
      help: "This agent's tasks, by phase: launching (waiting their turn), starting, running, killing",
      labelNames: ["state"],
      registers,
      collect() {
        const v = view();
        if (!v) return;
        for (const [state, n] of Object.entries(v.tasks())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "roost_agent_status_updates_unacknowledged",
      help: "Status updates waiting for a leader's acknowledgement (kept in the checkpoint)",
      registers,
      collect() {
        const v = view();
        if (v) this.set(v.unacknowledged());
      },
    });
    new Gauge({
      name: "roost_agent_registered",
      help: "1 once a leader accepted this agent's registration",
      registers,
      collect() {
        this.set(view()?.registered() ? 1 : 0);
      },
    });
    new Gauge({
      name: "roost_agent_leader_epoch",
      help: "The epoch of the leader this agent registered with",
      registers,
      collect() {
        const v = view();
        if (v) this.set(v.leaderEpoch());
      },
    });
  }

  /** The agent this registry describes at scrape time. */
  watch(view: AgentView): void {
    this.view = view;
  }

  heartbeat(): void {
    this.heartbeats.inc();
  }

  registeredWithLeader(): void {
    this.registrations.inc();
  }

  /** A launch request answered; `seconds` from its receipt, for one that was launched. */
  launch(result: LaunchResult, seconds?: number): void {
    this.launches.inc({ result });
    if (seconds !== undefined) this.launchSeconds.observe(seconds);
  }

  killed(): void {
    this.kills.inc();
  }

  /** A status update acknowledged, `seconds` after it was made. */
  delivered(state: string, seconds: number): void {
    this.updates.inc({ state });
    this.deliverySeconds.observe(Math.max(0, seconds));
  }

  sendFailed(reason: "refused" | "no reply"): void {
    this.sendFailures.inc({ reason });
  }

  /** One health check ran. */
  healthCheck(ok: boolean, seconds: number): void {
    this.healthChecks.inc({ result: ok ? "ok" : "failed" });
    this.healthCheckSeconds.observe(Math.max(0, seconds));
  }
}
