// An Agent in a process of its own, for killing it with a real kill -9 (agent.recovery.test.ts).
// Run with `node --import tsx test/support/agentProcess.ts MODE WORKDIR BOOTID`. It serves, on an
// in-process bus, a fake scheduler that acknowledges everything, and prints one JSON line per
// thing it has to say:
//   launch   launches task t-k9 (two processes), prints {"running": StatusUpdate} once RUNNING is
//            acknowledged and checkpointed, then waits to be killed.
//   recover  starts on the work dir, prints {"registered": RegisterRequest, "recovery": …}, then
//            {"ended": StatusUpdate} when t-k9 ends, and exits after stop().

import { Agent } from "../../src/agent/agent.js";
import type { LaunchRequest, RegisterRequest, StatusRequest } from "../../src/agent/protocol.js";
import { subjects } from "../../src/bus/bus.js";
import { MemoryBus } from "../../src/bus/memory.js";

const [mode, workDir, bootId] = process.argv.slice(2);
const bus = new MemoryBus();
const say = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
let onStatus: (u: StatusRequest["update"]) => void = () => {};
let registered: RegisterRequest | null = null;
bus.serve(subjects.anyAgent.register, (d) => {
  registered = d as RegisterRequest;
  return { ok: true, epoch: 1 };
});
bus.serve(subjects.anyAgent.status, (d) => {
  const u = (d as StatusRequest).update;
  queueMicrotask(() => onStatus(u));
  return { ok: true };
});

const agent = new Agent({
  bus,
  agentId: "agent-k9",
  host: "host-k9",
  attributes: {},
  resources: { cpus: 1, ramMb: 256, diskMb: 256, ports: [] },
  workDir: workDir!,
  bootId,
  heartbeatMs: 60_000,
  graceMs: 1000,
  statusRetryMs: 50,
});

if (mode === "launch") {
  await agent.start();
  onStatus = (u) => {
    if (u.taskId !== "t-k9" || u.state !== "RUNNING") return;
    setImmediate(() => {
      agent.flushCheckpoint();
      say({ running: u });
    });
  };
  const req: LaunchRequest = {
    taskId: "t-k9",
    job: "www-data/devel/k9",
    instance: 0,
    processes: [
      { name: "main", cmdline: "echo $$ > main.pid; while [ ! -f go ]; do sleep 0.02; done; exit 4" },
      { name: "side", cmdline: "echo $$ > side.pid; sleep 1000" },
    ],
    ports: {},
    resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
  };
  await bus.request(subjects.launch("agent-k9"), req);
  setInterval(() => {}, 1 << 30); // until killed
} else {
  onStatus = (u) => {
    if (u.taskId === "t-k9" && ["FINISHED", "FAILED", "KILLED", "LOST"].includes(u.state)) {
      say({ ended: u });
      void agent.stop().then(() => process.exit(0));
    }
  };
  await agent.start();
  say({ registered, recovery: agent.recovery });
}
