// The typed client of API v1: `import { RoostClient } from "roost"`. One method per operation,
// its request and reply typed from the schemas the scheduler and the gateway check (api/requests.ts,
// api/replies.ts), so a field the schema does not know is a compile error here and an
// INVALID_REQUEST there. The CLI is built on it.
//
// Through a leader change: a read is retried while no scheduler answers, up to the deadline
// (timeoutMs). A write goes onto the durable intake with an idempotency key (generated unless
// given) and its outcome is awaited with request.get: it is decided once, by whichever leader
// consumes it, however often it is sent, so a retry after a failover never creates twice
// (transport.ts writeOnce). Refusals reject with an error carrying the API's code.

import { randomUUID } from "node:crypto";
import type { Static } from "../vendor/typebox.js";
import type * as R from "../api/replies.js";
import { EVENTS_FOLLOW_WAIT_MS, MAX_EVENTS_WAIT_MS, type Request } from "../api/requests.js";
import { type DiscoverReply, discoverOnce, type EndpointChange, watchEndpoints } from "./discovery.js";
import { ClientError, type ClusterClient, checkMs, connectClient, longPollOnce, type RequestOptions, writeOnce } from "./transport.js";

export type { DiscoveredEndpoint, DiscoverReply, EndpointChange } from "./discovery.js";

export type JobCreateRequest = Request<"job.create">;
export type JobKillRequest = Request<"job.kill">;
export type JobAddRequest = Request<"job.add">;
export type QuotaSetRequest = Request<"quota.set">;
export type EventsRequest = Request<"events">;
export type JobCreateReply = Static<typeof R.JobCreateReply>;
export type JobKillReply = Static<typeof R.JobKillReply>;
export type JobAddReply = Static<typeof R.JobAddReply>;
export type JobStatusReply = Static<typeof R.JobStatusReply>;
export type JobListReply = Static<typeof R.JobListReply>;
export type TaskHistoryReply = Static<typeof R.TaskHistoryReply>;
export type TaskWhyReply = Static<typeof R.TaskWhyReply>;
export type TaskStatusReply = Static<typeof R.TaskStatusReply>;
export type QuotaReply = Static<typeof R.QuotaReply>;
export type RequestOutcomeReply = Static<typeof R.RequestOutcomeReply>;
export type EventsReply = Static<typeof R.EventsReply>;
export type ClusterInfoReply = Static<typeof R.ClusterInfoReply>;
export type UpdateStartRequest = Request<"update.start">;
export type UpdateControlRequest = Request<"update.pause">;
export type JobRestartRequest = Request<"job.restart">;
export type UpdateWriteReply = Static<typeof R.UpdateWriteReply>;
export type UpdateInfoReply = Static<typeof R.UpdateInfoReply>;
export type UpdateListReply = Static<typeof R.UpdateListReply>;
export type CronScheduleRequest = Request<"cron.schedule">;
export type CronScheduleReply = Static<typeof R.CronScheduleReply>;
export type CronDescheduleReply = Static<typeof R.CronDescheduleReply>;
export type CronStartReply = Static<typeof R.CronStartReply>;
export type CronShowReply = Static<typeof R.CronShowReply>;
export type CronListReply = Static<typeof R.CronListReply>;
export type SlaSafeHostsReply = Static<typeof R.SlaSafeHostsReply>;
export type SlaProbeReply = Static<typeof R.SlaProbeReply>;
export type SlaJobReply = Static<typeof R.SlaJobReply>;
export type RoostEvent = EventsReply["events"][number];
export type HostMaintenanceWriteReply = Static<typeof R.HostMaintenanceWriteReply>;
export type HostMaintenanceStatusReply = Static<typeof R.HostMaintenanceStatusReply>;
export type HostMaintenanceWindowsReply = Static<typeof R.HostMaintenanceWindowsReply>;

export interface RoostClientOptions {
  /** NATS URL(s), comma-separated; without it, the cluster file's (`roost dev` writes .roost/cluster.json). */
  nats?: string;
  /** The cluster file. Default .roost/cluster.json. */
  cluster?: string;
  /** A credentials file {"user", "pass", "tls"?}; else ROOST_CREDS, else the cluster file's. */
  creds?: string;
  /** The deadline of each call, retries through a leader change included. Default 10 s. */
  timeoutMs?: number;
  /** The log's stream. Default: the cluster file's, or ROOST. */
  stream?: string;
}

export interface WriteOptions {
  /** The idempotency key: the same key again returns the first outcome and changes nothing. Default: a new one. */
  key?: string;
}

export interface EventsOptions {
  /** A log sequence, or a time (Date or RFC 3339): where to start. Default: the first retained record. */
  from?: number | string | Date;
  filter?: Pick<EventsRequest, "job" | "role" | "agent" | "type">;
  /** Keep waiting for new events (until the signal aborts). Default false: end at the log's end. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Ask on this role's subject (all a role's credentials may do); else the cluster's. */
  role?: string;
  /** Events per page. Default 500. */
  pageSize?: number;
  /**
   * With `follow`: how long the leader holds one poll open for new events (0 to 30,000 ms; Nomad's
   * blocking-query wait). Default 20 s. Shorter costs more polls; 0 polls without pause.
   */
  waitMs?: number;
}

export interface DiscoverOptions {
  /** Return the changes (the current endpoints first, then live) instead of the current endpoints. */
  watch?: boolean;
  /** Ends a watch. */
  signal?: AbortSignal;
  /** Told about each key or value in the bucket that is skipped as garbage. Default: the client's note (the CLI: stderr). */
  onWarning?: (msg: string) => void;
}

export class RoostClient {
  constructor(
    /** The connection underneath: requests, the intake, and log reads (for tools beyond the API). */
    readonly transport: ClusterClient,
  ) {}

  static async connect(o: RoostClientOptions = {}): Promise<RoostClient> {
    return new RoostClient(await connectClient({ ...o, maxReconnectAttempts: -1 }));
  }

  get timeoutMs(): number {
    return this.transport.timeoutMs;
  }

  // ---- writes: exactly once, through the intake ------------------------------------------

  createJob(req: JobCreateRequest, o: WriteOptions = {}): Promise<JobCreateReply> {
    return writeOnce(this.transport, "job.create", req, o.key ?? newKey());
  }

  killJob(req: JobKillRequest, o: WriteOptions = {}): Promise<JobKillReply> {
    return writeOnce(this.transport, "job.kill", req, o.key ?? newKey());
  }

  addInstances(req: JobAddRequest, o: WriteOptions = {}): Promise<JobAddReply> {
    return writeOnce(this.transport, "job.add", req, o.key ?? newKey());
  }

  /** Start a rolling update of a job to `spec` (its updateConfig says how). One active update per job. */
  startUpdate(req: UpdateStartRequest, o: WriteOptions = {}): Promise<UpdateWriteReply> {
    return writeOnce(this.transport, "update.start", req, o.key ?? newKey());
  }

  /** Move the job's active update: pause, resume, abort or rollback. */
  controlUpdate(
    verb: "pause" | "resume" | "abort" | "rollback",
    req: UpdateControlRequest,
    o: WriteOptions = {},
  ): Promise<UpdateWriteReply> {
    return writeOnce(this.transport, `update.${verb}`, req, o.key ?? newKey());
  }

  /** A coordinated update's pulse. */
  pulseUpdate(req: Request<"update.pulse">, o: WriteOptions = {}): Promise<UpdateWriteReply> {
    return writeOnce(this.transport, "update.pulse", req, o.key ?? newKey());
  }

  /** A rolling restart: instances in batches through RESTARTING, watched like an update's. */
  restartJob(req: JobRestartRequest, o: WriteOptions = {}): Promise<UpdateWriteReply> {
    return writeOnce(this.transport, "job.restart", req, o.key ?? newKey());
  }

  /** Schedule a cron job from its spec (with cronSchedule), or replace the template of one scheduled. */
  scheduleCron(req: CronScheduleRequest, o: WriteOptions = {}): Promise<CronScheduleReply> {
    return writeOnce(this.transport, "cron.schedule", req, o.key ?? newKey());
  }

  /** Deschedule a cron job: no more triggers (a run under way goes on). */
  descheduleCron(req: Request<"cron.deschedule">, o: WriteOptions = {}): Promise<CronDescheduleReply> {
    return writeOnce(this.transport, "cron.deschedule", req, o.key ?? newKey());
  }

  /** Run a cron job now, under its collision policy. */
  startCron(req: Request<"cron.start">, o: WriteOptions = {}): Promise<CronStartReply> {
    return writeOnce(this.transport, "cron.start", req, o.key ?? newKey());
  }

  /** Admin only. */
  setQuota(req: QuotaSetRequest, o: WriteOptions = {}): Promise<QuotaReply> {
    return writeOnce(this.transport, "quota.set", req, o.key ?? newKey());
  }

  // ---- host maintenance (admin) ---------------------------------------------------------------

  /** Admin only. Hosts → SCHEDULED (new tasks go elsewhere when they can); hosts already SCHEDULED are skipped. */
  startMaintenance(req: Request<"host.maintenance.start">, o: WriteOptions = {}): Promise<HostMaintenanceWriteReply> {
    return writeOnce(this.transport, "host.maintenance.start", req, o.key ?? newKey());
  }

  /** Admin only. Hosts → DRAINING: their tasks move elsewhere while each job's SLA holds (or at once with `force`). */
  drainHosts(req: Request<"host.maintenance.drain">, o: WriteOptions = {}): Promise<HostMaintenanceWriteReply> {
    return writeOnce(this.transport, "host.maintenance.drain", req, o.key ?? newKey());
  }

  /** Admin only. Hosts → NONE: back in service. */
  endMaintenance(req: Request<"host.maintenance.end">, o: WriteOptions = {}): Promise<HostMaintenanceWriteReply> {
    return writeOnce(this.transport, "host.maintenance.end", req, o.key ?? newKey());
  }

  /** Admin only. A maintenance window: hosts SCHEDULED until `start`, drained from then, back in service after durationSecs. */
  scheduleMaintenance(req: Request<"host.maintenance.schedule">, o: WriteOptions = {}): Promise<HostMaintenanceWriteReply> {
    return writeOnce(this.transport, "host.maintenance.schedule", req, o.key ?? newKey());
  }

  /** Admin only. Cancel a maintenance window: the hosts it holds return to service. */
  cancelMaintenance(req: Request<"host.maintenance.cancel">, o: WriteOptions = {}): Promise<HostMaintenanceWriteReply> {
    return writeOnce(this.transport, "host.maintenance.cancel", req, o.key ?? newKey());
  }

  /** Hosts' maintenance: every known host, or `hosts`. */
  maintenanceStatus(req: Request<"host.maintenance.status"> = {}, o?: RequestOptions): Promise<HostMaintenanceStatusReply> {
    return this.transport.request("host.maintenance.status", req, o);
  }

  /** Maintenance windows, oldest first. */
  maintenanceWindows(o?: RequestOptions): Promise<HostMaintenanceWindowsReply> {
    return this.transport.request("host.maintenance.windows", {}, o);
  }

  // ---- reads --------------------------------------------------------------------------------

  jobStatus(req: Request<"job.status">, o?: RequestOptions): Promise<JobStatusReply> {
    return this.transport.request("job.status", req, o);
  }

  /** Every job (the cluster's view), or one role's with `role`. */
  listJobs(o?: RequestOptions): Promise<JobListReply> {
    return this.transport.request("job.list", {}, o);
  }

  taskHistory(req: Request<"task.history">, o?: RequestOptions): Promise<TaskHistoryReply> {
    return this.transport.request("task.history", req, o);
  }

  taskWhy(req: Request<"task.why">, o?: RequestOptions): Promise<TaskWhyReply | null> {
    return this.transport.request("task.why", req, o);
  }

  /** A task and each of its processes and health checks, as its agent runs them now. */
  taskStatus(req: Request<"task.status">, o?: RequestOptions): Promise<TaskStatusReply> {
    return this.transport.request("task.status", req, o);
  }

  /** An update: the job's active one, else its newest, or `updateId`. */
  updateInfo(req: Request<"update.info">, o?: RequestOptions): Promise<UpdateInfoReply> {
    return this.transport.request("update.info", req, o);
  }

  /** Updates, newest first: a role's with `role` (or a job's), else every role's. */
  listUpdates(req: Request<"update.list"> = {}, o?: RequestOptions): Promise<UpdateListReply> {
    return this.transport.request("update.list", req, o);
  }

  getQuota(req: Request<"quota.get">, o?: RequestOptions): Promise<QuotaReply> {
    return this.transport.request("quota.get", req, o);
  }

  /** A keyed request's outcome; `role` is the role it was for ("admin" for quota.set). */
  getRequest(req: { key: string }, o: RequestOptions & { role: string }): Promise<RequestOutcomeReply> {
    return this.transport.request("request.get", req, o);
  }

  /** A cron job: schedule, next fire times, newest trigger (with its reason), the run waiting after a collision. */
  cronShow(req: Request<"cron.show">, o?: RequestOptions): Promise<CronShowReply> {
    return this.transport.request("cron.show", req, o);
  }

  /** Cron jobs: every role's, or one role's with `role`. */
  listCron(o?: RequestOptions): Promise<CronListReply> {
    return this.transport.request("cron.list", {}, o);
  }

  /** Hosts whose tasks can all be killed now without breaking any job's SLA (aurora_admin's sla_list_safe_domain). */
  slaSafeHosts(req: Request<"sla.safe-hosts">, o?: RequestOptions): Promise<SlaSafeHostsReply> {
    return this.transport.request("sla.safe-hosts", req, o);
  }

  /** Each host's going down, job by job: predicted SLA, safe or not, and when (aurora_admin's sla_probe_hosts). */
  slaProbe(req: Request<"sla.probe">, o?: RequestOptions): Promise<SlaProbeReply> {
    return this.transport.request("sla.probe", req, o);
  }

  /** A job's uptime percentiles and up counts. */
  slaJob(req: Request<"sla.job">, o?: RequestOptions): Promise<SlaJobReply> {
    return this.transport.request("sla.job", req, o);
  }

  clusterInfo(o?: RequestOptions): Promise<ClusterInfoReply> {
    return this.transport.request("cluster.info", {}, o);
  }

  /** One page of events (see events() for all of them). */
  eventsPage(req: EventsRequest, o?: RequestOptions): Promise<EventsReply> {
    return this.transport.request("events", req, o);
  }

  /**
   * The events from `from` on that pass the filter, page by page; with `follow`, new ones as they
   * are committed, until the signal aborts. Resume a stream that ended with `from: last.seq + 1`.
   */
  async *events(o: EventsOptions = {}): AsyncGenerator<RoostEvent> {
    for await (const page of this.eventPages(o)) {
      for (const e of page.events) {
        if (o.signal?.aborted) return;
        yield e;
      }
    }
  }

  /**
   * The pages behind events(), as the leader sends them: each page's `next` is where the following
   * one starts (a record is never split across pages), so a caller can resume elsewhere from it.
   * `retry: false`, without `follow`: no leader fails at once, for a caller that then reads the
   * log itself (`roost events`), instead of after the timeout.
   */
  async *eventPages(o: EventsOptions = {}, how: { retry?: boolean } = {}): AsyncGenerator<EventsReply> {
    if (o.from instanceof Date && !Number.isFinite(o.from.getTime()))
      throw new ClientError(
        "from must be a valid Date, a log sequence (an integer ≥ 1) or an RFC 3339 time (got an invalid Date)",
        "INVALID_REQUEST",
        "from",
      );
    let from: number | string = o.from instanceof Date ? o.from.toISOString() : (o.from ?? 1);
    const filter = Object.fromEntries(Object.entries(o.filter ?? {}).filter(([, v]) => v !== undefined));
    checkMs("waitMs", o.waitMs, 0, MAX_EVENTS_WAIT_MS);
    const waitMs = o.follow ? (o.waitMs ?? EVENTS_FOLLOW_WAIT_MS) : 0;
    // Following, a poll the leader held and never answered (it died) is asked again of the next
    // leader, from the same place; the stream ends only when none has answered for the timeout.
    let patience = Date.now() + this.timeoutMs;
    for (;;) {
      if (o.signal?.aborted) return;
      const req = { from, limit: o.pageSize ?? 500, ...filter, ...(o.follow ? { waitMs } : {}) };
      const page = o.follow
        ? await longPollOnce((t) => this.eventsPage(req, { ...t, role: o.role }), patience, waitMs)
        : await this.eventsPage(req, { role: o.role, timeoutMs: this.timeoutMs, retry: how.retry });
      patience = Date.now() + this.timeoutMs;
      if (page === null) continue;
      yield page;
      from = page.next;
      if (!o.follow && page.events.length === 0 && page.next > page.lastSeq) return;
    }
  }

  // ---- service discovery: read from the bucket itself, no leader needed ---------------------

  /**
   * A job's live endpoints (instances RUNNING with a port), `{job, endpoints}` sorted by instance.
   * With `{watch: true, signal}`: the changes, in order, the current endpoints first (as puts),
   * until the signal aborts. A malformed job key is refused (INVALID_REQUEST, naming the field).
   */
  discover(job: string, o?: DiscoverOptions & { watch?: false }): Promise<DiscoverReply>;
  discover(job: string, o: DiscoverOptions & { watch: true }): AsyncIterable<EndpointChange>;
  discover(job: string, o: DiscoverOptions = {}): Promise<DiscoverReply> | AsyncIterable<EndpointChange> {
    const warn = o.onWarning ?? this.transport.note;
    if (o.watch === true) return watchEndpoints(this.transport, job, o.signal, warn);
    return discoverOnce(this.transport, job, o.watch, warn);
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

const newKey = (): string => `rc-${randomUUID()}`;
