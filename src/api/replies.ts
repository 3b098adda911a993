// What the API answers, as schemas (TypeBox): the `value` of {ok: true, value} for each op. They
// are shipped as JSON Schema (schemas/api/v1/, generated) and the contract tests validate every
// reply against them, so a field the code adds without adding it here fails a test.
//
// The read models themselves (replay/queries.ts, quota/quota.ts, scheduling/why.ts) stay plain
// TypeScript interfaces; test/api.contract.test.ts checks that what they return matches these.
// Loose on purpose where the state is loose (a task state is a string the client may not know
// yet): a newer scheduler must not break an older client's validation.

import { Type } from "../vendor/typebox.js";

const Str = Type.String();
const Int = Type.Integer();
const Num = Type.Number();
const NullableStr = Type.Union([Str, Type.Null()]);
const NullableInt = Type.Union([Int, Type.Null()]);
const Ports = Type.Record(Str, Int);
const obj = <P extends Parameters<typeof Type.Object>[0]>(props: P, description: string) =>
  Type.Object(props, { additionalProperties: false, description });

const Amounts = obj({ cpus: Num, ramMb: Num, diskMb: Num }, "cpus, ramMb and diskMb");

export const JobCreateReply = obj(
  { job: Str, taskIds: Type.Array(Str), seq: Int },
  "The job's key, its first tasks, and the log sequence that holds them",
);
export const JobKillReply = obj({ job: Str, instances: Type.Array(Int), seq: Int }, "The instances whose kill was committed");
export const JobAddReply = obj(
  { job: Str, instances: Type.Array(Int), taskIds: Type.Array(Str), seq: Int },
  "The new instances and their first tasks",
);

const InstanceStatus = obj(
  {
    instance: Int,
    taskId: Str,
    state: Str,
    host: NullableStr,
    ports: Ports,
    reason: Str,
    failureCount: Int,
    exitCode: NullableInt,
    configVersion: Int,
  },
  "An instance's newest task, and the config version it runs",
);
export const JobStatusReply = obj(
  {
    job: Str,
    instances: Type.Array(InstanceStatus),
    service: Type.Boolean(),
    configuredInstances: Int,
    configVersion: Int,
    update: Type.Union([obj({ updateId: Str, status: Str, restart: Type.Boolean() }, "The job's active update or restart"), Type.Null()]),
    seq: Int,
  },
  "A job's instances, as of log sequence `seq`",
);

const JobSummary = obj(
  { job: Str, service: Type.Boolean(), instances: Int, states: Type.Record(Str, Int), active: Int },
  "A job, counted by task state",
);
const UpdateProgress = obj(
  { total: Int, done: Int, failed: Int, working: Int },
  "Instances the update touches, done, failed and in flight",
);
const updateSummaryProps = {
  updateId: Str,
  job: Str,
  status: Str,
  active: Type.Boolean(),
  restart: Type.Boolean(),
  user: Str,
  fromVersion: Int,
  toVersion: Int,
  createdSeq: Int,
  createdTs: Num,
  lastTs: Num,
  progress: UpdateProgress,
};
export const UpdateListReply = Type.Array(obj(updateSummaryProps, "An update, its status and progress"), {
  description: "Updates, newest first",
});
export const UpdateInfoReply = obj(
  {
    ...updateSummaryProps,
    message: NullableStr,
    instances: Type.Union([Type.Array(Int), Type.Null()]),
    settings: Type.Record(Str, Type.Unknown()),
    plan: Type.Union([
      obj({ added: Type.Array(Int), changed: Type.Array(Int), removed: Type.Array(Int) }, "What it adds, changes and removes"),
      Type.Null(),
    ]),
    statuses: Type.Array(
      obj(
        { status: Str, seq: Int, ts: Num, user: NullableStr, message: NullableStr, reason: Str },
        "A status the update entered, who moved it, and why",
      ),
    ),
    actions: Type.Array(obj({ instance: Int, action: Str, seq: Int, ts: Num, reason: Str }, "One instance's progress, with its reason")),
  },
  "An update: its settings, every status and every instance action, with reasons",
);
export const UpdateWriteReply = Type.Object(
  {
    job: Str,
    updateId: Str,
    status: Str,
    seq: Int,
    fromVersion: Type.Optional(Int),
    toVersion: Type.Optional(Int),
    added: Type.Optional(Type.Array(Int)),
    changed: Type.Optional(Type.Array(Int)),
    removed: Type.Optional(Type.Array(Int)),
    instances: Type.Optional(Type.Array(Int)),
  },
  { additionalProperties: false, description: "The update, its status after the request, and the log sequence that holds it" },
);

export const JobListReply = Type.Array(JobSummary, { description: "Jobs, sorted by key" });

export const TaskHistoryReply = obj(
  {
    taskId: Str,
    job: Str,
    instance: Int,
    ancestorId: NullableStr,
    successorId: NullableStr,
    state: Str,
    host: NullableStr,
    ports: Ports,
    failureCount: Int,
    exitCode: NullableInt,
    events: Type.Array(
      obj({ seq: Int, idx: Int, ts: Num, state: Str, reason: NullableStr }, "A state change, the event that caused it, and its reason"),
    ),
  },
  "A task's life, each state change with its reason",
);

const Decision = obj(
  {
    mode: Str,
    evaluated: Num,
    feasible: Num,
    score: Num,
    alternatives: Type.Array(
      obj({ host: Str, score: Type.Optional(Num), veto: Type.Optional(Str) }, "A runner-up: its score, or why it could not"),
    ),
    vetoes: Type.Record(Str, Num),
    reserved: Type.Optional(Type.Boolean()),
  },
  "The placement decision as logged",
);
export const TaskWhyReply = obj(
  {
    taskId: Str,
    state: Str,
    summary: Str,
    vetoes: Type.Optional(
      Type.Array(
        obj(
          { reason: Str, hosts: Int, examples: Type.Array(obj({ host: Str, detail: Str }, "A host and its numbers")) },
          "A reason hosts are ruled out",
        ),
      ),
    ),
    feasible: Type.Optional(Type.Array(obj({ host: Str, score: Num }, "A host that could take the task now"))),
    placement: Type.Optional(
      obj({ host: Str, seq: Int, decision: Type.Union([Decision, Type.Null()]), reason: NullableStr }, "Where and why it was placed"),
    ),
    heldSlot: Type.Optional(obj({ host: Str, victims: Type.Array(Str), expiresTs: Num }, "A slot the preemptor holds for it")),
  },
  "Why a task is where it is, or why it waits",
);

export const TaskStatusReply = obj(
  {
    taskId: Str,
    job: Str,
    instance: Int,
    state: Str,
    host: NullableStr,
    agentId: NullableStr,
    processes: Type.Union([
      Type.Array(
        obj(
          {
            name: Str,
            state: Str,
            runs: Int,
            failures: Int,
            exitCode: Type.Union([Int, Type.Null()]),
            pid: Type.Union([Int, Type.Null()]),
            final: Type.Boolean(),
          },
          "One process of the task (Thermos's states: WAITING, RUNNING, SUCCESS, FAILED, KILLED, LOST)",
        ),
      ),
      Type.Null(),
    ]),
    phase: NullableStr,
    killStep: NullableStr,
    health: Type.Union([
      obj(
        {
          running: Type.Boolean(),
          consecutiveSuccesses: Int,
          consecutiveFailures: Int,
          attempts: Int,
          lastReason: NullableStr,
          snoozed: Type.Boolean(),
        },
        "The task's health checks, as its agent counts them",
      ),
      Type.Null(),
    ]),
    isolation: NullableStr,
    memoryBytes: Type.Union([Num, Type.Null()]),
    agentError: NullableStr,
  },
  "A task and its processes, as its agent runs them now (processes null when no agent was asked or none answered: agentError says why)",
);

const JobUsage = obj({ job: Str, instances: Int, cpus: Num, ramMb: Num, diskMb: Num }, "A job's production usage");
export const QuotaReply = obj(
  { role: Str, quotaSet: Type.Boolean(), quota: Amounts, usage: Amounts, headroom: Amounts, jobs: Type.Array(JobUsage), seq: Int },
  "A role's production quota, usage and headroom",
);

export const RequestOutcomeReply = obj(
  {
    key: Str,
    state: Type.Union([Type.Literal("pending"), Type.Literal("done"), Type.Literal("rejected")]),
    op: Type.Optional(Str),
    value: Type.Optional(Type.Unknown()),
    error: Type.Optional(obj({ code: Str, message: Str, field: Type.Optional(Str) }, "Why it was rejected")),
    seq: Type.Optional(Int),
  },
  "A keyed request's outcome: its first one, whatever was sent again",
);

export const EventsReply = obj(
  {
    events: Type.Array(
      obj(
        {
          seq: Int,
          index: Int,
          ts: Num,
          epoch: Num,
          type: Str,
          reason: Str,
          corr: Str,
          data: Type.Unknown(),
          job: NullableStr,
          role: NullableStr,
          agent: NullableStr,
        },
        "One event: where it is in the log (record seq, index in the record), its envelope, and whose it is",
      ),
    ),
    next: Int,
    lastSeq: Int,
  },
  "The events from the asked sequence on that pass the filter, at most limit; ask again from next",
);

const ActorStats = obj(
  {
    name: Str,
    depth: Int,
    handling: NullableStr,
    handlingMs: Type.Union([Num, Type.Null()]),
    handled: Int,
    failed: Int,
  },
  "One of the leader's actors",
);
export const ClusterInfoReply = obj(
  {
    schedulerId: Str,
    epoch: Num,
    seq: Int,
    events: Int,
    agents: Type.Array(
      obj(
        {
          agentId: Str,
          host: Str,
          state: Str,
          attributes: Type.Record(Str, Str),
          tasks: Int,
          lastHeartbeat: Type.Union([Num, Type.Null()]),
          isolation: Type.Optional(
            obj({ mode: Str, detail: Str }, 'How the agent confines its tasks: "cgroups-v2", "cgroups-v1" or "none", and why'),
          ),
        },
        "An agent as the leader sees it",
      ),
    ),
    anomalies: Type.Array(obj({ seq: Int, index: Int, type: Str, why: Str }, "A log entry the fold could not apply")),
    anomalyCount: Int,
    actors: Type.Array(ActorStats),
    intake: Type.Optional(
      obj(
        { decided: Int, refused: Int, retried: Int },
        "The durable intake this term: messages decided, refused without an outcome (bad subject or msgId), handed back",
      ),
    ),
  },
  "The leader, its agents, its anomalies and its actors",
);

// ---- the SRE's reads (history/service.ts): answered by every replica from its own fold ----

const MomentSchema = obj({ seq: Int, ts: Num }, "A moment of the log: the last record folded, and its time (ms since the epoch)");
const Loose = (what: string) => Type.Object({}, { additionalProperties: true, description: what });

export const HistoryReply = obj(
  {
    kind: Str,
    id: Str,
    from: MomentSchema,
    to: MomentSchema,
    items: Type.Array(
      obj(
        {
          seq: Int,
          index: Int,
          ts: Num,
          time: Str,
          epoch: Num,
          actor: Str,
          type: Str,
          change: Type.Union([obj({ of: Str, from: Str, to: Str }, "The state change it caused"), Type.Null()]),
          reason: Str,
        },
        "An event that touched the subject",
      ),
    ),
    truncated: Type.Boolean(),
    next: Type.Union([Int, Type.Null()]),
  },
  "Every event that touched a task, job, agent or host, oldest first",
);
export const ReplayReply = Loose(
  "The cluster at a moment: at, leader, summary, jobs (with their tasks), agents (with free resources), pending (with reasons), quotas",
);
export const DiffReply = Loose(
  "What changed between two moments: jobs created/killed/changed, task state changes grouped, agents, quotas, leader",
);
export const WhyAtReply = Loose("Why a task is where it is at a moment: the judgement, and the events that led there (cause, chain)");
export const InspectReply = Loose("A machine at a moment: state, accepts (events it takes now), history (transitions), graph, rendered");
export const VerifyReply = Loose("A fold from genesis compared with the newest snapshot and the live leader: ok, checks[], stateHash");
export const ExportReply = obj(
  {
    items: Type.Array(Loose("A decoded event: seq, index, ts, epoch, type, reason, corr, data, job, role, agent")),
    next: Type.Union([Int, Type.Null()]),
  },
  "A page of decoded events; ask again from next (null: the end)",
);
export const HashReply = obj(
  { schedulerId: Str, epoch: Num, seq: Int, stateHash: Str, parts: Type.Record(Str, Str) },
  "The leader's state hash at its sequence, and a hash per part of the state",
);

// ---- cron ------------------------------------------------------------------------------------

export const CronScheduleReply = obj(
  { job: Str, nextFire: Type.Union([Num, Type.Null()]), seq: Int },
  "The cron job scheduled, its next fire time (ms since the epoch; null: never), and the log sequence that holds it",
);
export const CronDescheduleReply = obj({ job: Str, seq: Int }, "The cron job descheduled (a run under way goes on)");
export const CronStartReply = obj(
  { job: Str, outcome: Str, minuteMs: Num, taskIds: Type.Array(Str), seq: Int },
  "What the manual trigger came to: fired (with its run's tasks), skipped (CANCEL_NEW) or collided (KILL_EXISTING: the run starts once the previous one has ended)",
);
/** One job's fate if hosts went down now (sla/reports.ts). */
const SlaJobPrediction = {
  job: Str,
  total: Int,
  down: Int,
  active: Int,
  required: Int,
  predictedPct: Num,
  safe: Type.Boolean(),
  skipped: Type.Boolean(),
  safeInSecs: NullableInt,
  why: Str,
};
const SlaAskEcho = { now: Num, seq: Int, percentage: Num, durationSecs: Int, minJobInstanceCount: Int };
export const SlaSafeHostsReply = obj(
  {
    ...SlaAskEcho,
    grouping: Str,
    hosts: Type.Array(
      obj(
        {
          host: Str,
          rack: NullableStr,
          group: Str,
          safe: Type.Boolean(),
          tasks: Int,
          jobs: Type.Array(obj(SlaJobPrediction, "A job with tasks on the host, as it would fare with the host's group down")),
          why: NullableStr,
        },
        "A host: safe to drain now or not, and why",
      ),
    ),
  },
  "Every known host, judged at `now` (ms) as of log sequence `seq`",
);
export const SlaProbeReply = obj(
  {
    ...SlaAskEcho,
    hosts: Type.Array(obj({ host: Str, known: Type.Boolean(), tasks: Int }, "A host asked about, and its live tasks")),
    rows: Type.Array(
      obj(
        { host: Str, ...SlaJobPrediction },
        "HOST JOB PREDICTED_SLA SAFE? PREDICTED_SAFE_IN: safeInSecs 0 when safe now, null when never without changes",
      ),
    ),
  },
  "Each host's going down alone, job by job, judged at `now` (ms) as of log sequence `seq`",
);
export const SlaJobReply = obj(
  {
    job: Str,
    now: Num,
    seq: Int,
    live: Int,
    running: Int,
    percentiles: Type.Array(
      obj({ percentile: Int, uptimeSecs: Int }, "At least `percentile`% of the live instances have been RUNNING this long"),
    ),
    windows: Type.Array(obj({ minutes: Int, up: Int, percentage: Num }, "Instances RUNNING throughout the last `minutes`")),
  },
  "A job's uptime percentiles and up counts at `now` (ms), as of log sequence `seq`",
);

const CronTrigger = obj(
  { minuteMs: Num, outcome: Str, missed: Int, user: NullableStr, seq: Int, ts: Num, reason: Str },
  "A cron job's newest trigger: the minute, what it came to, the triggers it did not replay, who started it by hand, and why",
);
export const CronShowReply = obj(
  {
    job: Str,
    schedule: Str,
    timezone: Str,
    collisionPolicy: Str,
    instances: Int,
    user: Str,
    scheduledSeq: Int,
    scheduledTs: Num,
    nextFires: Type.Array(Num),
    lastFiredMinuteMs: Type.Union([Num, Type.Null()]),
    lastTrigger: Type.Union([CronTrigger, Type.Null()]),
    pendingRun: Type.Union([
      obj({ minuteMs: Num, user: NullableStr, seq: Int, ts: Num }, "KILL_EXISTING: the run waiting for the previous one to end"),
      Type.Null(),
    ]),
    activeTasks: Int,
    seq: Int,
  },
  "A cron job: its schedule, next fire times, newest trigger and the run waiting after a collision, as of log sequence `seq`",
);
export const CronListReply = Type.Array(
  obj(
    {
      job: Str,
      schedule: Str,
      timezone: Str,
      collisionPolicy: Str,
      nextFire: Type.Union([Num, Type.Null()]),
      lastTrigger: Type.Union([obj({ minuteMs: Num, outcome: Str, ts: Num }, "The newest trigger"), Type.Null()]),
      activeTasks: Int,
    },
    "A cron job, briefly",
  ),
  { description: "Cron jobs, sorted by key" },
);

const HostMode = Type.Union(["NONE", "SCHEDULED", "DRAINING", "DRAINED"].map((m) => Type.Literal(m)));
const DrainRequestReply = obj(
  {
    sla: Type.Union([obj({ percentage: Num, durationSecs: Int }, "The default SLA of jobs without their own slaPolicy"), Type.Null()]),
    forceDrainTimeoutMs: Int,
    slaAwareKillNonProd: Type.Boolean(),
  },
  "A drain request (sla null: a forced drain)",
);
const HostOutcome = obj(
  { host: Str, from: HostMode, to: HostMode, changed: Type.Boolean(), note: Type.Optional(Str) },
  "A host the write named: its mode before and after, and whether this write moved it (skipped hosts say why)",
);
export const HostMaintenanceWriteReply = obj(
  {
    hosts: Type.Array(HostOutcome),
    unknownHosts: Type.Array(Str, { description: "Hosts no agent has registered on (allowed, as in Aurora)" }),
    windowId: Type.Optional(Str),
    startTs: Type.Optional(Num),
    endTs: Type.Optional(Num),
    seq: NullableInt,
  },
  "What a maintenance write did to each host; seq null when every host was skipped (nothing appended)",
);
export const HostMaintenanceStatusReply = Type.Array(
  obj(
    {
      host: Str,
      mode: HostMode,
      tasks: Int,
      since: NullableStr,
      reason: Str,
      user: NullableStr,
      windowId: NullableStr,
      known: Type.Boolean(),
      drain: Type.Union([
        obj(
          {
            sla: DrainRequestReply.properties.sla,
            forceDrainTimeoutMs: Int,
            slaAwareKillNonProd: Type.Boolean(),
            requestedTs: Num,
            forcedAt: Num,
          },
          "The drain request in force, and when it forces the drain",
        ),
        Type.Null(),
      ]),
      denials: Type.Array(obj({ taskId: Str, seq: Int, ts: Num, reason: Str }, "A task the drain waits for, and the newest reason")),
    },
    "A host's maintenance: mode, active tasks on it, since when, and why (the reason of the event that put it there)",
  ),
  { description: "Hosts, sorted by name" },
);
export const HostMaintenanceWindowsReply = Type.Array(
  obj(
    {
      windowId: Str,
      hosts: Type.Array(Str),
      startTs: Num,
      endTs: Num,
      start: Str,
      end: Str,
      state: Type.Union(["scheduled", "open", "ended", "cancelled"].map((s) => Type.Literal(s))),
      user: Str,
      drain: DrainRequestReply,
      endedBy: NullableStr,
    },
    "A maintenance window: its hosts, when it opens and ends, and where it is",
  ),
  { description: "Maintenance windows, oldest first" },
);
