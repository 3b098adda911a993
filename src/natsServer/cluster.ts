// A JetStream cluster of nats-servers on loopback (3 by default): for `roost dev --ha`, fault
// tests and the failover benchmark. Every server keeps its ports and directory, so a killed one
// can be started again as the same member.

import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, type NatsServerHandle, type NatsServerOptions, startNatsServer } from "./server.js";

export interface NatsClusterHandle {
  /** Client URLs of every member, for connect({ servers }). */
  urls: string[];
  servers: Array<NatsServerHandle | null>;
  /** SIGKILL member i (its data stays). */
  kill(i: number): Promise<void>;
  /** Start member i again, with its ports and data. */
  restart(i: number): Promise<NatsServerHandle>;
  stop(): Promise<void>;
}

/** `name`: the cluster's name (default: derived from its directory, so unique to it). */
export async function startNatsCluster(
  opts: { dir?: string; size?: number; name?: string } & Pick<
    NatsServerOptions,
    "ownProcessGroup" | "dieWithParent" | "pingIntervalMs" | "pingMax" | "extraConf"
  > = {},
): Promise<NatsClusterHandle> {
  const size = opts.size ?? 3;
  const ownDir = opts.dir === undefined;
  const dir = ownDir ? await mkdtemp(join(tmpdir(), "roost-natscluster-")) : resolve(opts.dir!);
  const ports: Array<{ client: number; http: number; route: number }> = [];
  const taken = new Set<number>();
  const fresh = async () => {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  for (let i = 0; i < size; i++) ports.push({ client: await fresh(), http: await fresh(), route: await fresh() });
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`);
  // A name of its own, stable for its directory: the survivors of a killed member keep dialling
  // its route port, and when tests run side by side another cluster's member may be given that
  // port. Under one shared name the two clusters would merge.
  const name = opts.name ?? `roost-${createHash("sha256").update(dir).digest("hex").slice(0, 10)}`;
  const startMember = (i: number) =>
    startNatsServer({
      dir: join(dir, `n${i + 1}`),
      serverName: `n${i + 1}`,
      port: ports[i]!.client,
      httpPort: ports[i]!.http,
      cluster: { name, port: ports[i]!.route, routes },
      startTimeoutMs: 60_000,
      ownProcessGroup: opts.ownProcessGroup,
      dieWithParent: opts.dieWithParent,
      pingIntervalMs: opts.pingIntervalMs,
      pingMax: opts.pingMax,
      extraConf: opts.extraConf,
    });
  // Together: clustered JetStream is healthy only once a quorum is up.
  const started = await Promise.allSettled(ports.map((_, i) => startMember(i)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    // No member left running when the cluster could not start.
    await Promise.all(started.map((r) => (r.status === "fulfilled" ? r.value.stop().catch(() => {}) : undefined)));
    if (ownDir) await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw failed.reason;
  }
  const servers: Array<NatsServerHandle | null> = started.map((r) => (r as PromiseFulfilledResult<NatsServerHandle>).value);
  return {
    urls: ports.map((p) => `nats://127.0.0.1:${p.client}`),
    servers,
    async kill(i) {
      const s = servers[i];
      if (!s) return;
      process.kill(s.pid, "SIGKILL");
      await s.stop().catch(() => {}); // reaps the process; the directory is kept (not ours)
      servers[i] = null;
    },
    async restart(i) {
      const s = await startMember(i);
      servers[i] = s;
      return s;
    },
    async stop() {
      await Promise.all(servers.map((s) => s?.stop().catch(() => {})));
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
