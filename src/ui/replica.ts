// What every scheduler replica serves besides the leader's API: the SRE's reads on the bus
// (history/serve.ts, one queue group across the replicas) and, given a listen address, the web UI
// and /metrics. A standby answers from its own fold, so an outage of the leader is not an outage
// of the tools that explain it. `roost ui` serves the same UI from a follower of the log alone.

import type { Registry } from "prom-client";
import type { Bus } from "../bus/bus.js";
import type { LiveHash } from "../history/service.js";
import { HistoryService } from "../history/service.js";
import { serveHistory } from "../history/serve.js";
import type { LogReader } from "../history/timeMachine.js";
import type { ClusterState } from "../replay/state.js";
import type { SnapshotInfo, SnapshotSource } from "../storage/snapshotStore.js";
import type { Logger } from "../util/logger.js";
import { startUiServer, type UiServer } from "./server.js";

/** What a replica (or `roost ui`'s follower) lends the reads. */
export interface ReplicaView {
  readonly state: ClusterState;
  readonly schedulerId?: string;
  readonly leading?: boolean;
  onChange(listener: (seq: number) => void): () => void;
}

export interface ReplicaReadsOptions {
  replica: ReplicaView;
  log: LogReader;
  store?: SnapshotSource & { list(): Promise<SnapshotInfo[]>; getBytes(name: string): Promise<Uint8Array | null> };
  /** Answer the SRE's reads on the bus too (a replica does; `roost ui` need not). */
  bus?: Bus;
  logger: Logger;
  /** Serve the web UI and /metrics here (port 0: any free port). */
  http?: { host: string; port: number };
  registry?: Registry;
  /** Who answers: a replica says leader or standby; a follower of the log says "log". */
  source?: () => "leader" | "standby" | "log";
}

export interface ReplicaReads {
  history: HistoryService;
  ui: UiServer | null;
  stop(): Promise<void>;
}

const LIVE_HASH_WAIT_MS = 3000;

/**
 * A leader folds past states only while they are small. Decoding a snapshot and hashing a state
 * run on its one thread: at 50,000 tasks that is ~0.3 s, at 2.4M tasks ~15 s, far past the lease
 * (a time-travel click must not cause a failover). Above this, standbys and `roost ui` serve them.
 */
const LEADER_PAST_MAX_TASKS = 50_000;

export async function startReplicaReads(o: ReplicaReadsOptions): Promise<ReplicaReads> {
  const r = o.replica;
  const bus = o.bus;
  const liveHash = bus
    ? async (): Promise<LiveHash | null> => {
        const res = await bus
          .request<{ ok: boolean; value?: LiveHash }>("roost.api.v1.cluster.hash", {}, LIVE_HASH_WAIT_MS)
          .catch(() => null);
        return res?.ok ? res.value! : null;
      }
    : undefined;
  const history = new HistoryService({
    log: o.log,
    store: o.store,
    head: () => r.state,
    source: o.source ?? (() => (r.leading ? "leader" : "standby")),
    replica: r.schedulerId ?? "",
    liveHash,
    mayBuild: () =>
      r.leading && r.state.tasks.size > LEADER_PAST_MAX_TASKS
        ? `this replica leads a state of ${r.state.tasks.size} tasks; rule: a leader folds past moments only up to ${LEADER_PAST_MAX_TASKS} tasks (its thread keeps the lease); ask a standby's UI or run roost ui`
        : null,
  });
  const stopBus = bus ? serveHistory(bus, history, o.logger) : () => {};
  let ui: UiServer | null = null;
  if (o.http) {
    try {
      ui = await startUiServer({ history, listen: o.http, registry: o.registry, onHead: (l) => r.onChange((seq) => l(seq)) });
      o.logger.info({ url: ui.url }, "web UI");
    } catch (err) {
      stopBus();
      throw err;
    }
  }
  return {
    history,
    ui,
    stop: async () => {
      stopBus();
      await ui?.close();
    },
  };
}
