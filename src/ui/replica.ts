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
