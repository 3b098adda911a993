import { existsSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Two groups of test files, run one after the other (sequence.groupOrder).
//
// 1. Most files, two at a time. On the 2-core CI machine Vitest's default is one worker (cores − 1),
//    and the suite ran file by file for 14–15 minutes with the CPUs half idle: most e2e files
//    wait on real processes, health checks and timers, not on a core.
// 2. The files that time a failover, stall a leader's event loop or kill a nats-server, one at a
//    time and alone: a false failover under a stalled loop is what they test, so they get the
//    machine to themselves, as they had before.
const SERIAL = [
  "test/ha.faults.test.ts",
  "test/intake.failover.test.ts",
  "test/twocopies.faults.test.ts",
  "test/poison.faults.test.ts",
  "test/lease.nats.test.ts",
  "test/lease.term.test.ts",
  "test/eventlog.follow.test.ts",
  "test/updates.dev.test.ts",
  "test/dev.e2e.test.ts",
  "test/dev.lifecycle.test.ts",
  "test/maintenance.e2e.test.ts",
];
// A renamed or removed file would silently leave this group (a renamed one for the parallel one).
for (const f of SERIAL)
  if (!existsSync(new URL(f, import.meta.url))) throw new Error(`vitest.config.ts: SERIAL names ${f}, which does not exist`);

const shared = {
  environment: "node" as const,
  pool: "forks" as const,
  testTimeout: 30_000,
  hookTimeout: 60_000,
  teardownTimeout: 20_000,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: "parallel",
          include: ["test/**/*.test.ts"],
          exclude: SERIAL,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: "serial",
          include: SERIAL,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
