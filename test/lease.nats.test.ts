// KvLease against a real 3-node cluster (an R3 lease bucket, as `roost scheduler` runs it).
//
// The failure that taught it: the failover bench saw two schedulers take the lease within 25 ms
// (epochs 31 and 32) right after a standby evicted a dead leader. nats-server 2.9.10 checks a
// clustered stream's Nats-Expected-Last-Subject-Sequence only before proposing, against what is
// stored, not against proposals in flight (server/jetstream_cluster.go "we have prechecked
// seq > 0"); @nats-io/kv's create() after a delete marker is such an update, so two contenders
// that both saw the marker were both granted. The whole-stream Nats-Expected-Last-Sequence is
// checked when each proposal is applied, in order, so KvLease writes with it.

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvLease } from "../src/actors/lease.js";
import { startNatsCluster, type NatsClusterHandle } from "../src/natsServer/cluster.js";

describe("KvLease on an R3 bucket", () => {
  let cluster: NatsClusterHandle;
  const conns: NatsConnection[] = [];
  beforeAll(async () => {
    cluster = await startNatsCluster();
    for (const url of cluster.urls) conns.push(await connect({ servers: url }));
  }, 60_000);
  afterAll(async () => {
    for (const nc of conns) await nc.close().catch(() => {});
    await cluster?.stop();
  });

  const holder = (id: string) => ({ id, host: "test", pid: 1 });

  it("grants the lease to one contender when several race after an eviction or a release, every time", async () => {
    const leases = await Promise.all(conns.map((nc) => KvLease.open(nc, { bucket: "race", leaseMs: 60_000, replicas: 3 })));
    let first = await leases[0]!.tryAcquire(holder("a"));
    expect(first).not.toBeNull();
    let doubles = 0;
    for (let round = 0; round < 40; round++) {
      // The holder goes: half the rounds evicted by a standby at its revision, half released.
      if (round % 2 === 0) expect(await leases[1]!.evict(first!)).toBe(true);
      else await leases[0]!.release();
      const won = await Promise.all(leases.map((l, i) => l.tryAcquire(holder(`c${i}`))));
      const winners = won.filter((r) => r !== null);
      if (winners.length > 1) doubles++;
      expect(winners.length).toBeGreaterThanOrEqual(1);
      // Whoever won holds it: the others' renewals fail, the winner's succeeds.
      const w = won.findIndex((r) => r !== null);
      const renewals = await Promise.allSettled(
        leases.map((l, i) => (won[i] !== null ? l.renew() : Promise.reject(new Error("not held")))),
      );
      expect(renewals[w]!.status === "fulfilled" || winners.length > 1).toBe(true);
      // Hand the lease to contender 0 for the next round.
      for (let i = 0; i < leases.length; i++) if (won[i] !== null && renewals[i]!.status === "fulfilled") await leases[i]!.release();
      first = await leases[0]!.tryAcquire(holder("a"));
      expect(first).not.toBeNull();
    }
    expect(doubles).toBe(0);
  }, 120_000);

  it("renews only the holder's own revision, and evict() fails once the holder renewed", async () => {
    const [a, b] = await Promise.all(conns.slice(0, 2).map((nc) => KvLease.open(nc, { bucket: "renew", leaseMs: 60_000, replicas: 3 })));
    const rev = await a!.tryAcquire(holder("a"));
    expect(rev).not.toBeNull();
    expect(await b!.tryAcquire(holder("b"))).toBeNull();
    await a!.renew();
    expect(await b!.evict(rev!)).toBe(false); // renewed since: the holder keeps it
    const h = await b!.holder();
    expect(h?.id).toBe("a");
    expect(await b!.evict(h!.revision)).toBe(true);
    await expect(a!.renew()).rejects.toThrow(/lease lost/);
    expect(await b!.tryAcquire(holder("b"))).not.toBeNull();
    expect((await a!.holder())?.id).toBe("b");
  }, 60_000);

  it("is free again once the holder stops renewing for leaseMs", async () => {
    const [a, b] = await Promise.all(conns.slice(0, 2).map((nc) => KvLease.open(nc, { bucket: "expiry", leaseMs: 1000, replicas: 3 })));
    expect(await a!.tryAcquire(holder("a"))).not.toBeNull();
    expect(await b!.tryAcquire(holder("b"))).toBeNull();
    const deadline = Date.now() + 10_000;
    let got: number | null = null;
    while (got === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      got = await b!.tryAcquire(holder("b"));
    }
    expect(got).not.toBeNull();
    await expect(a!.renew()).rejects.toThrow(/lease lost/);
  }, 30_000);
});
