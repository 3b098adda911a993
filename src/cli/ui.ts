// `roost ui --nats URL [--listen HOST:PORT]`: the web UI with only the log reachable. No scheduler
// needs to run: it loads the newest snapshot, folds the tail, follows the log as it grows (live
// updates) and serves the same UI every replica serves, from its own fold. What an operator opens
// on a laptop when every scheduler is down.

import { connect } from "@nats-io/transport-node";
import { type Command, Option } from "commander";
import { resolveCreds } from "../bus/creds.js";
import { type CliClusterOptions, cliConnectOptions, connectClient, loadClusterFile, natsServers } from "../client/transport.js";
import { openJetStreamLog } from "../eventlog/jetstream.js";
import { foldRecord } from "../replay/fold.js";
import type { ClusterState } from "../replay/state.js";
import { coldStart } from "../storage/coldStart.js";
import { SnapshotStore } from "../storage/snapshotStore.js";
import type { ReplicaView } from "../ui/replica.js";
import { makeLogger } from "../util/logger.js";
import { onStopSignals } from "./control.js";

/** A fold of the log that follows it: what `roost ui` shows as "now". */
class Follower implements ReplicaView {
  private readonly listeners = new Set<(seq: number) => void>();
  constructor(public state: ClusterState) {}
  onChange(listener: (seq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  folded(): void {
    for (const l of this.listeners) l(this.state.seq);
  }
}

interface UiOptions extends CliClusterOptions {
  listen: { host: string; port: number };
  stream?: string;
}

export function registerUiCommand(
  program: Command,
  withClusterOptions: (c: Command) => Command,
  listenArg: (v: string) => { host: string; port: number },
): void {
  withClusterOptions(
    program
      .command("ui")
      .description("serve the web UI from the log alone (no scheduler needed): jobs, agents, pending, quotas, the log, time travel")
      .addOption(
        new Option("--listen <host:port>", "where to listen (port 0: any free port)")
          .argParser(listenArg)
          .default({ host: "127.0.0.1", port: 0 }, "127.0.0.1:0"),
      )
      .option("--stream <name>", "the log's JetStream stream (default: the cluster file's, else ROOST)"),
  ).action(async (o: UiOptions) => {
    const logger = makeLogger("ui");
    const opts = cliConnectOptions(o);
    const probe = await connectClient(opts);
    const where = probe.where;
    await probe.close();
    if (/^https?:/i.test(where))
      throw new Error(`roost ui needs the NATS log; ${where} is an embedded dev cluster, whose schedulers serve the UI themselves`);
    const file = o.nats ? undefined : loadClusterFile(o.cluster);
    const servers = natsServers(where);
    const nc = await connect({
      servers,
      name: "roost-ui",
      timeout: opts.timeoutMs,
      ...resolveCreds(o.creds, file?.creds)?.connectOptions(),
    });
    const log = await openJetStreamLog({
      servers,
      nc,
      stream: o.stream ?? file?.stream ?? "ROOST",
      create: false,
      readyTimeoutMs: opts.timeoutMs,
    });
    const store = await SnapshotStore.forLog(log).catch(() => undefined);
    const started = await coldStart(log, store);
    const follower = new Follower(started.state);
    const stop = new AbortController();
    // Loaded here, not at the top: the HTTP server and the UI are this command's alone.
    const { startReplicaReads } = await import("../ui/replica.js");
    const reads = await startReplicaReads({ replica: follower, log, store, logger, http: o.listen, source: () => "log" });
    console.log(`roost ui: ${reads.ui!.url} (the log at sequence ${follower.state.seq}; following it)`);
    onStopSignals(async () => {
      stop.abort();
      await reads.stop();
      await log.close().catch(() => {});
      await nc.close().catch(() => {});
      process.exit(0);
    });
    for await (const r of log.follow(follower.state.seq + 1, stop.signal)) {
      foldRecord(follower.state, r.seq, r.events);
      follower.folded();
    }
  });
}
