import { syntheticLog } from "./src/sim/synthetic.js";
import { foldRecord } from "./src/replay/fold.js";
import { ClusterState } from "./src/replay/state.js";
import { warmTaskTable } from "./src/statemachines/taskTable.js";
warmTaskTable();
const records = [...syntheticLog({ seed: 20261121, events: 1_000_000, eventsPerRecord: 1000 })];
for (let run = 0; run < 3; run++) {
  const st = new ClusterState();
  const t = performance.now();
  for (let i = 0; i < records.length; i++) foldRecord(st, i + 1, records[i]!);
  const ms = performance.now() - t;
  console.log("fold", Math.round(st.eventCount / ms * 1000), "events/s", st.tasks.size);
}
