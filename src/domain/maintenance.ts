// Host maintenance in the log: a drain request's shape (Aurora's HostMaintenanceRequest), kept in
// the domain so that the events, the fold and the intake share one definition.

import { Type, type Static } from "../vendor/typebox.js";

/** Aurora's PercentageSlaPolicy as a drain's default: `percentage` of a job's tasks active for `durationSecs`. */
const DrainSlaSchema = Type.Object({ percentage: Type.Number(), durationSecs: Type.Integer() });

/**
 * A drain request (Aurora's HostMaintenanceRequest, one per host, overwriting the one before):
 * the SLA a task without its own policy is judged by (null: a forced drain, Aurora's drainHosts),
 * when the drain is forced whatever the SLAs say (ms after the request's log time; Aurora's
 * --force_drain_timeout, default 7 days), and whether non-production jobs are judged too.
 */
export const DrainRequestSchema = Type.Object({
  sla: Type.Union([DrainSlaSchema, Type.Null()]),
  forceDrainTimeoutMs: Type.Integer({ minimum: 0 }),
  slaAwareKillNonProd: Type.Boolean(),
});
export type DrainRequest = Static<typeof DrainRequestSchema>;

/**
 * A job's own SLA (Aurora's SlaPolicy union, on the job: spec `slaPolicy`), normalised: exactly
 * one of count, percentage or coordinator (its statusKey spelled out, "drain" unless given).
 * Checked by sla/policy.ts slaPolicyProblems when the spec is read.
 */
export const SlaPolicySchema = Type.Union([
  Type.Object({ count: Type.Object({ count: Type.Integer(), durationSecs: Type.Integer() }) }),
  Type.Object({ percentage: Type.Object({ percentage: Type.Number(), durationSecs: Type.Integer() }) }),
  Type.Object({ coordinator: Type.Object({ url: Type.String(), statusKey: Type.String() }) }),
]);
