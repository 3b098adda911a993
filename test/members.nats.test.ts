// The members board on a real nats-server (src/actors/members.ts): a replica follows it with one
// watch and answers list() from memory. What taught it: each replica listed the bucket every 2 s,
// and every listing created an ephemeral consumer, a proposal to the JetStream meta leader and a
// "new consumer leader" line in a server's log (400 in 2 minutes on one server of the failover
// bench). The view must still give what the bucket holds: entries that stop being put age out
// (2.9 sends no watch event when one expires), garbage is left out, and a watch that loses its
// server comes back.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { KvMemberBoard, type MemberStatus, parseMember } from "../src/actors/members.js";
import { type NatsServerHandle, startNatsServer } from "../src/natsServer/server.js";
import { withNats } from "./support/nats.js";
import { pollUntil } from "./support/roost.js";

const nats = withNats();
const open: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

let n = 0;
const member = (id: string, over: Partial<MemberStatus> = {}): MemberStatus => ({
  id,
  pid: 100,
  host: "h",
  role: "standby",
  epoch: 1,
  appliedSeq: 5,
  ts: Date.now(),
  ...over,
});

async function conn(url = nats.url): Promise<NatsConnection> {
  const nc = await connect({ servers: url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  open.push({ close: () => nc.close() });
  return nc;
}

async function board(nc: NatsConnection, opts: Parameters<typeof KvMemberBoard.open>[1] = {}): Promise<KvMemberBoard> {
  const b = await KvMemberBoard.open(nc, { bucket: `members_${++n}`, ...opts });
  open.push(b);
  return b;
}

/** Counts the consumers created on `stream`, as the JetStream API sees the requests. */
function countCreates(nc: NatsConnection, stream: string): { readonly count: number } {
  let count = 0;
  const sub = nc.subscribe("$JS.API.CONSUMER.>", {
    callback: (_err, m) => {
      if (m.subject.includes(`.CREATE.${stream}`)) count++;
    },
  });
  open.push({ close: () => sub.unsubscribe() });
  return {
    get count() {
      return count;
    },
  };
}

const ids = (ms: MemberStatus[]) => ms.map((m) => m.id);

/** Until the board's view is complete (list() answers from it). */
const complete = (b: KvMemberBoard) =>
  pollUntil(
    async () => b.following,
    (f) => f,
    "the view complete",
    10_000,
    20,
  );

/** Until `id`, put by `writer` again and again, is in `b`'s view: from the view only, since a
 *  list() that finds the view stale reads the bucket instead. */
async function inTheView(b: KvMemberBoard, writer: KvMemberBoard, id: string, what: string, ms: number): Promise<void> {
  await pollUntil(
    async () => {
      await writer.put(member(id));
      const xs = ids(await b.list());
      return b.following ? xs : [];
    },
    (xs) => xs.includes(id),
    what,
    ms,
    200,
  );
}

describe("members board", () => {
  it("a followed board lists from its watch: 50 listings create no consumer", async () => {
    const nc = await conn();
    const writer = await board(nc);
    await writer.put(member("b"));
    await writer.put(member("a", { role: "leader" }));
    const bucket = `members_${n}`;
    const follower = await KvMemberBoard.open(nc, { bucket, follow: true });
    open.push(follower);
    // Complete at the first update after the entries the bucket held.
    await writer.put(member("c"));
    await complete(follower);
    const creates = countCreates(nc, `KV_${bucket}`);
    await nc.flush();
    for (let i = 0; i < 50; i++) expect(ids(await follower.list())).toEqual(["a", "b", "c"]);
    await writer.put(member("d"));
    await pollUntil(
      () => follower.list(),
      (ms) => ids(ms).includes("d"),
      "d in the view",
      10_000,
      20,
    );
    await nc.flush();
    expect(creates.count).toBe(0);
    // The same bucket listed without following: a consumer per listing, as before.
    for (let i = 0; i < 3; i++) expect(ids(await writer.list())).toEqual(["a", "b", "c", "d"]);
    await nc.flush();
    expect(creates.count).toBe(3);
  });

  it("an entry no longer put leaves the view as it leaves the bucket; garbage is left out of both", async () => {
    const nc = await conn();
    const b = await board(nc, { follow: true, ttlMs: 1000 });
    const raw = await new Kvm(nc).open(`members_${n}`);
    await raw.put("junk", "not json");
    await raw.put("wrong", JSON.stringify({ id: "w", role: "king" }));
    await b.put(member("gone"));
    await complete(b);
    expect(ids(await b.list())).toEqual(["gone"]);
    // Kept alive by puts: still there after two of its lives.
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      await b.put(member("alive"));
      await new Promise((r) => setTimeout(r, 200));
    }
    const both = [await b.list(), await KvMemberBoard.open(nc, { bucket: `members_${n}`, ttlMs: 1000 }).then((o) => o.list())];
    for (const ms of both) expect(ids(ms)).toEqual(["alive"]);
  });

  it("a view that hears nothing for an entry's life is watched again: a bucket deleted and made again is followed", async () => {
    const nc = await conn();
    const b = await board(nc, { follow: true, ttlMs: 1000 });
    const bucket = `members_${n}`;
    for (let i = 0; i < 20; i++) await b.put(member(`before-${i % 2}`));
    await complete(b);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${bucket}`);
    const again = await KvMemberBoard.open(nc, { bucket, ttlMs: 1000 });
    open.push(again);
    // The new stream's first sequences are below where the old watch stood.
    await inTheView(b, again, "after", "the view back on the new bucket", 20_000);
    expect(ids(await b.list())).toEqual(["after"]);
  });

  it("parseMember takes only a MemberStatus", () => {
    const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
    expect(parseMember(enc(member("m")))).toMatchObject({ id: "m" });
    for (const bad of [
      "",
      "{",
      "null",
      "[]",
      { ...member("m"), role: "king" },
      { ...member("m"), epoch: -1 },
      { ...member("m"), id: "" },
      { ...member("m"), ts: "now" },
    ])
      expect(parseMember(enc(bad))).toBeNull();
  });

  it("follows again after its nats-server is restarted; close() ends the watch, and a second close is harmless", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roost-members-"));
    let server: NatsServerHandle | null = await startNatsServer({ dir: join(dir, "a"), storeDir: join(dir, "js") });
    try {
      const port = server.port;
      const nc = await conn(server.url);
      const b = await board(nc, { follow: true });
      await b.put(member("one"));
      await complete(b);
      await server.stop();
      server = null;
      server = await startNatsServer({ dir: join(dir, "b"), storeDir: join(dir, "js"), port });
      await inTheView(b, b, "two", "the view back after the restart", 30_000);
      expect(ids(await b.list())).toEqual(["one", "two"]);
      await b.close();
      expect(b.following).toBe(false);
      await b.close();
      expect(ids(await b.list())).toEqual(["one", "two"]);
    } finally {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
