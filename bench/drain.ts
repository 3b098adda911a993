// `npm run bench -- drain [HOSTS] [DRAINED]`: an SLA-aware drain at scale on the deterministic
// simulator (src/sim/sim.ts): the real leader (intake, fold, placement, launcher, rescheduler,
// maintenance) with 10,000 simulated agents on a virtual clock.
//
// 2,500 production services of 100 instances (250,000 tasks), every job under Aurora's default
// SLA, 95% of its tasks active (RUNNING for longer than 30 min); they run for 31 min, then one
// `host.maintenance.drain` request drains 1,000 hosts SLA-aware (default 95% / 30 min, the force
// timeout far away). The leader's poller (every 1 min, Aurora's) moves a task to DRAINING only
// while its job keeps 95% active, so a job gives up at most 5 of its 100 tasks at a time and the
// next only once a replacement has been RUNNING 30 min elsewhere. Tasks start in 500 ms and die
// in 100 ms.
//
//   drainVirtualSeconds  virtual seconds from the drain request's log time to the last host DRAINED
//   slaViolations        records after which some job had fewer active tasks than its SLA needs
//                        (required = min(ceil(95% × live), live − 1)) where a DRAINING of the
//                        drain caused it; checked after every folded record for the jobs whose
//                        tasks the record moved to DRAINING (goal 0)
//   leaderCpuMsPerHost   process CPU (user + system) during the drain / hosts drained: the whole
//                        simulation, simulated agents included, so an upper bound on the leader's
//   wallMs, events       real time of the drain phase, and the events it appended
//
// HOSTS and DRAINED (the first arguments after the bench's name) shrink the world for a quick run:
// `npm run bench -- drain 1000 100` keeps 25 tasks per host.

import { Sim } from "../src/sim/sim.js";
import type { ClusterState } from "../src/replay/state.js";
import { activeOf, liveTasks } from "../src/sla/policy.js";
import type { JobKeyString } from "../src/domain/types.js";

const HOSTS = Number(process.argv[3] ?? 10_000);
const DRAINED = Number(process.argv[4] ?? 1_000);
const INSTANCES = 100;
const JOBS = Math.round((HOSTS * 25) / INSTANCES);
const SLA_PCT = 95;
const SLA_SECS = 30 * 60;
const note = (m: string) => process.stderr.write(`drain: ${m}\n`);

const spec = (i: number) => ({
  role: `team${i % 50}`,
  environment: "prod",
  name: `svc${i}`,
  instances: INSTANCES,
  service: true,
  tier: "preferred",
  resources: { cpus: 0.1, ramMb: 64, diskMb: 16 },
  processes: [{ name: "main", cmdline: "serve" }],
});

function drainedHosts(s: ClusterState, hosts: readonly string[]): number {
  let n = 0;
  for (const h of hosts) if (s.hosts.get(h)?.mode === "DRAINED") n++;
  return n;
}

export default async function drainBench(): Promise<Record<string, number | string>> {
  if (!(HOSTS >= DRAINED && DRAINED >= 1)) throw new Error(`need HOSTS ≥ DRAINED ≥ 1 (got ${HOSTS}, ${DRAINED})`);
  let watching = false;
  let violations = 0;
  let checked = 0;
  const sim = await Sim.start({
    seed: 14,
    agents: [{ count: HOSTS, cpus: 8, ramMb: 32_768, diskMb: 65_536, attributes: (i) => ({ rack: `r${i % 100}` }) }],
    // 10,000 agents beating every second would be most of the run (the simulator settles after
    // each): every 5 min, with the leader's timeout raised to match (neither changes what the
    // drain decides).
    agentHeartbeatMs: 300_000,
    // 250,000 tasks start in the same virtual instant: settling that takes more turns than a test's.
    maxSettleTurns: 20_000_000,
    policy: { minRequiredInstances: 20, agentTimeoutMs: 900_000 },
    onFold: (replica, _seq, events) => {
      if (!watching || replica.role !== "leader") return;
      const jobs = new Set<JobKeyString>();
      for (const e of events) {
        if (e.type !== "TaskStateChanged" || e.data.to !== "DRAINING") continue;
        const t = replica.state.tasks.get(e.data.taskId);
        if (t) jobs.add(t.job);
      }
      const now = events[0]?.ts ?? 0;
      for (const job of jobs) {
        checked++;
        const live = liveTasks(replica.state, job);
        const up = live.filter((t) => t.state !== "DRAINING");
        const active = activeOf(up, SLA_SECS, now).length;
        const required = Math.min(Math.ceil((SLA_PCT * live.length) / 100), live.length - 1);
        if (active < required) violations++;
      }
    },
  });
  try {
    note(`${HOSTS} hosts, ${JOBS} jobs × ${INSTANCES} instances = ${JOBS * INSTANCES} tasks`);
    const t0 = performance.now();
    // Production jobs must fit their role's quota (50 roles share the jobs).
    const perRole = Math.ceil(JOBS / 50) * INSTANCES;
    for (let r = 0; r < Math.min(50, JOBS); r++)
      await sim.request("quota.set", {
        role: `team${r}`,
        cpus: perRole * 0.1 + 1,
        ramMb: perRole * 64,
        diskMb: perRole * 16,
        user: "bench",
      });
    for (let i = 0; i < JOBS; i++) {
      sim.behave(`team${i % 50}/prod/svc${i}`, { startMs: 500, killMs: 100 });
      await sim.request("job.create", { spec: spec(i) });
    }
    await sim.runUntil((s) => s.pending.size === 0, 60 * 60_000, "every task placed");
    note(
      `placed in ${Math.round(performance.now() - t0)} ms wall; running them ${SLA_SECS / 60 + 1} min (virtual) so they count as active`,
    );
    await sim.advance((SLA_SECS + 60) * 1000);
    const hosts = [...sim.state.agents.values()].map((a) => a.host).slice(0, DRAINED);
    const eventsBefore = sim.state.eventCount;
    watching = true;
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    const r = await sim.request<{ seq: number }>("host.maintenance.drain", {
      hosts,
      percentage: SLA_PCT,
      durationSecs: SLA_SECS,
      user: "bench",
    });
    const startTs = sim.state.hosts.get(hosts[0]!)!.drain!.requestedTs;
    let last = 0;
    await sim.runUntil(
      (s) => {
        const n = drainedHosts(s, hosts);
        if (n >= last + DRAINED / 10) {
          last = n;
          note(`${n} of ${DRAINED} hosts DRAINED after ${Math.round((sim.clock.now() - startTs) / 1000)} virtual s`);
        }
        return n === DRAINED;
      },
      24 * 3600_000,
      "every host DRAINED",
    );
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - w0;
    const endTs = Math.max(...hosts.map((h) => sim.state.hosts.get(h)!.sinceTs));
    const events = sim.state.eventCount - eventsBefore;
    note(`drain request at seq ${r.seq}; ${checked} job checks after DRAINING records, ${violations} violations; ${events} events`);
    return {
      hosts: HOSTS,
      drainedHosts: DRAINED,
      tasks: JOBS * INSTANCES,
      slaPercentage: SLA_PCT,
      slaDurationSecs: SLA_SECS,
      drainVirtualSeconds: Math.round((endTs - startTs) / 1000),
      slaViolations: violations,
      leaderCpuMsPerHost: Math.round(((cpu.user + cpu.system) / 1000 / DRAINED) * 10) / 10,
      wallMs: Math.round(wallMs),
      eventsAppended: events,
    };
  } finally {
    await sim.stop();
  }
}
