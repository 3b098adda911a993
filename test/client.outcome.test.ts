// A keyed write's outcome, polled with request.get (client/transport.ts writeOnce), across a
// leader that takes a poll and dies without answering it: the client asks again and the next
// leader's answer comes back, inside the client's timeout. The CLI's waits poll the same way
// (pollOnce). And a read a leader held until the timeout is not reported with the warning meant
// for an unkeyed write.
//
// What taught it: the poll used to wait out the whole timeout on the one request the dying leader
// held, so `roost host maintenance drain`, sent as its leader was killed -9, failed after 10 s
// though the next leader had the outcome 2 s later (test/maintenance.e2e.test.ts, once in three).
//
// `roost events --follow` (cli/events.ts) follows through the same poll as RoostClient.events.
// A plain read (RoostClient.jobStatus) a leader died holding is sent again beside the first try
// (hedged), and a slow leader's answer to the first try is still taken.
//
// Real nats-server; the "leaders" are plain subscribers on the polled subject (request.get,
// job.status, events), the next one subscribing only once the dying one took its poll, so the
// test decides exactly which one takes which poll.

import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { API_V1_PREFIX, addressFor } from "../src/api/v1.js";
import { stream as streamEvents } from "../src/cli/events.js";
import { RoostClient } from "../src/client/roostClient.js";
import { NatsClient, pollOnce, writeOnce } from "../src/client/transport.js";
import { pack, unpack } from "../src/eventlog/envelope.js";
import { withNats } from "./support/nats.js";
import { testSpec } from "./support/specs.js";

const nats = withNats();
let nc: NatsConnection;
let leaders: NatsConnection;

/** A client whose intake publish is taken (no intake stream here): only the outcome poll is tested. */
class PolledClient extends NatsClient {
  /** Writes published on the intake. */
  published = 0;
  override async publishIntake(): Promise<{ duplicate: boolean }> {
    this.published++;
    return { duplicate: false };
  }
}

const SUBJECT = `${API_V1_PREFIX}www-data.request.get`;

beforeAll(async () => {
  nc = await connect({ servers: nats.url });
  leaders = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await leaders?.close();
});

/** Takes the first poll and never answers it (a leader killed -9 holding it); then is gone. */
async function dyingLeader(): Promise<{ took: Promise<number> }> {
  const sub = leaders.subscribe(SUBJECT, { max: 1 });
  const took = (async () => {
    for await (const _m of sub) return Date.now();
    return 0;
  })();
  await leaders.flush();
  return { took };
}

/** Answers every poll with the write's outcome, from `after` on (the next leader). */
function nextLeader(after: Promise<unknown>, value: unknown): { polls: () => number; stop: () => Promise<void> } {
  let polls = 0;
  let sub: Subscription | null = null;
  void after.then(async () => {
    sub = leaders.subscribe(SUBJECT);
    for await (const m of sub) {
      polls++;
      const req = unpack<{ key: string }>(m.data);
      m.respond(pack({ ok: true, value: { key: req.key, state: "done", op: "job.create", seq: 7, value } }));
    }
  });
  return {
    polls: () => polls,
    // Flushed, so the server has dropped the subscriber before the next test's requests.
    stop: async () => {
      sub?.unsubscribe();
      await leaders.flush();
    },
  };
}

describe("polls across a leader that dies holding one", () => {
  it("polls again and returns the next leader's answer inside the timeout", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 10_000);
    const dying = await dyingLeader();
    const outcome = { job: "www-data/devel/outcome", taskIds: ["t-1"], seq: 7 };
    const next = nextLeader(dying.took, outcome);
    // Before the fix the one poll waited out the 10 s and this threw "timed out … request.get".
    const got = await writeOnce(client, "job.create", { spec: testSpec("outcome"), user: "svc" }, "k-outcome");
    await next.stop();
    expect(got).toEqual(outcome);
    expect(await dying.took).toBeGreaterThan(0); // the first poll did go to the dying leader
    expect(next.polls()).toBeGreaterThanOrEqual(1);
  });

  it("with no leader until the deadline: says no scheduler leads and the write is queued", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 1500);
    const err = await writeOnce(client, "job.create", { spec: testSpec("nobody"), user: "svc" }, "k-nobody").catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no scheduler is leading: request www-data\/k-nobody \(job\.create\) is queued on the intake/);
  });

  it("a poll the dying leader held, then no leader until the deadline: no leader and the write queued, not a timeout on request.get", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 2500);
    const dying = await dyingLeader();
    const err = await writeOnce(client, "job.create", { spec: testSpec("held"), user: "svc" }, "k-held").catch((e: unknown) => e);
    expect(await dying.took).toBeGreaterThan(0);
    expect((err as Error).message).toMatch(/^no scheduler is leading: request www-data\/k-held \(job\.create\) is queued on the intake/);
    expect((err as Error).message).not.toMatch(/waiting for the scheduler to answer/);
  });

  it("a read a leader held until the timeout: timed out, without the warning meant for unkeyed writes", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 1000);
    const sub = leaders.subscribe(`${API_V1_PREFIX}www-data.job.status`, { max: 1 });
    await leaders.flush();
    const err = await client.request("job.status", { job: "www-data/devel/held" }).catch((e: unknown) => e);
    sub.unsubscribe();
    await leaders.flush();
    expect((err as Error).message).toMatch(
      /^timed out after 1 s waiting for the scheduler to answer roost\.api\.v1\.www-data\.job\.status/,
    );
    expect((err as Error).message).not.toMatch(/a write may still be carried out/);
  });

  it("a read a leader died holding is asked again beside it (hedged), and the next leader's answer comes back", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 10_000);
    const status = `${API_V1_PREFIX}www-data.job.status`;
    const held = leaders.subscribe(status, { max: 1 });
    const took = (async () => {
      for await (const _m of held) return;
    })();
    await leaders.flush();
    let next: Subscription | null = null;
    void took.then(async () => {
      next = leaders.subscribe(status);
      for await (const m of next) m.respond(pack({ ok: true, value: { job: "www-data/devel/hedged" } }));
    });
    // Before: the one try waited out the 10 s and threw "timed out … job.status".
    const got = await client.request("job.status", { job: "www-data/devel/hedged" }).finally(async () => {
      held.unsubscribe();
      (next as Subscription | null)?.unsubscribe();
      await leaders.flush();
    });
    expect(got).toEqual({ job: "www-data/devel/hedged" });
    expect(held.getReceived()).toBe(1);
  });

  it("a leader only slow to answer a read still has its answer taken: the first try stays open beside the hedge", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 10_000);
    const status = `${API_V1_PREFIX}www-data.job.status`;
    const sub = leaders.subscribe(status);
    let asked = 0;
    void (async () => {
      for await (const m of sub) {
        const n = ++asked;
        // The first try is answered after 4 s (past the 3 s hedge), the hedge never.
        if (n === 1) setTimeout(() => m.respond(pack({ ok: true, value: { try: n } })), 4000);
      }
    })();
    await leaders.flush();
    const got = await client.request("job.status", { job: "www-data/devel/slow" }).finally(async () => {
      sub.unsubscribe();
      await leaders.flush();
    });
    expect(got).toEqual({ try: 1 });
    expect(asked).toBe(2); // the hedge was sent, and the first answer taken anyway
  });

  it.each(["update.start", "job.restart", "host.maintenance.drain", "job.add"])(
    "an unkeyed %s told UNAVAILABLE (not committed) is not sent again: a write, as the API's list says",
    async (op) => {
      const client = new PolledClient(nats.url, nc, "ROOST", 3000);
      const data = {
        "update.start": { job: "www-data/devel/w", spec: testSpec("w"), user: "svc" },
        "job.restart": { job: "www-data/devel/w", user: "svc" },
        "host.maintenance.drain": { hosts: ["h1"], user: "svc" },
        "job.add": { job: "www-data/devel/w", count: 1, user: "svc" },
      }[op]!;
      const sub = leaders.subscribe(addressFor(op, data)!);
      let asked = 0;
      void (async () => {
        for await (const m of sub) {
          asked++;
          m.respond(pack({ ok: false, error: { code: "UNAVAILABLE", message: "not committed; try again" } }));
        }
      })();
      await leaders.flush();
      const err = await client.request(op, data).catch((e: unknown) => e);
      sub.unsubscribe();
      await leaders.flush();
      expect((err as { code?: string }).code).toBe("UNAVAILABLE");
      // Before, only 7 writes were listed: update.start was retried like a read until the timeout.
      expect(asked).toBe(1);
    },
  );

  it("a wait's poll (job create --wait, job kill --wait, update wait) the dying leader held is asked again; past the wait's deadline it throws", async () => {
    const client = new PolledClient(nats.url, nc, "ROOST", 10_000);
    const status = `${API_V1_PREFIX}www-data.job.status`;
    const held = leaders.subscribe(status, { max: 1 });
    await leaders.flush();
    const ask = (t: { timeoutMs: number }) => client.request<{ job: string }>("job.status", { job: "www-data/devel/polled" }, t);
    // The wait has 20 s left: the held poll is given 2 s, then handed back as "ask again".
    expect(await pollOnce(ask, Date.now() + 20_000)).toBeNull();
    expect(held.getReceived()).toBe(1); // it did take the poll
    const next = leaders.subscribe(status);
    void (async () => {
      for await (const m of next) m.respond(pack({ ok: true, value: { job: "www-data/devel/polled" } }));
    })();
    await leaders.flush();
    expect(await pollOnce(ask, Date.now() + 20_000)).toEqual({ job: "www-data/devel/polled" });
    next.unsubscribe();
    await leaders.flush(); // the server has dropped it before the next request comes
    // Nobody at all, and the wait's deadline comes within the poll: its error, not null.
    const err = await pollOnce(ask, Date.now() + 500).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no scheduler is leading/);
  });

  it("a request that breaks its op's schema is refused at once with no leader up, naming the field; nothing is published", async () => {
    // Before: the read waited out the timeout and said only that no scheduler leads, and the write
    // was queued on the intake, to be refused by whichever leader came.
    const transport = new PolledClient(nats.url, nc, "ROOST", 2000);
    const roost = new RoostClient(transport);
    const first = async (o: Parameters<RoostClient["events"]>[0]) => {
      for await (const _e of roost.events(o)) break;
    };
    await expect(first({ from: -5 })).rejects.toMatchObject({
      code: "INVALID_REQUEST",
      field: "from",
      message: expect.stringMatching(/^invalid events request \(1 problem\): from: must be a log sequence/),
    });
    await expect(first({ from: new Date(Number.NaN) })).rejects.toMatchObject({ code: "INVALID_REQUEST", field: "from" });
    await expect(first({ pageSize: 0 })).rejects.toMatchObject({ code: "INVALID_REQUEST", field: "limit" });
    await expect(roost.taskStatus({} as never)).rejects.toMatchObject({ code: "INVALID_REQUEST", field: "taskId" });
    await expect(roost.killJob({ job: "www-data/devel/x", instances: ["a"] as never, user: "svc" })).rejects.toMatchObject({
      code: "INVALID_REQUEST",
      field: "instances",
    });
    expect(transport.published).toBe(0);
  });

  it("an events waitMs or a write key out of its rule is refused at once, before anything is sent", async () => {
    // No leader here: before, the NaN hold hung, and the bad key was published and its outcome
    // polled until the timeout ("queued on the intake").
    const roost = new RoostClient(new PolledClient(nats.url, nc, "ROOST", 2000));
    const follow = async () => {
      for await (const _e of roost.events({ follow: true, waitMs: Number.NaN, role: "www-data" })) break;
    };
    await expect(follow()).rejects.toMatchObject({ code: "INVALID_REQUEST", field: "waitMs" });
    await expect(roost.createJob({ spec: testSpec("badkey"), user: "svc" }, { key: "a b" })).rejects.toMatchObject({
      code: "INVALID_REQUEST",
      field: "key",
    });
  });

  it("a wait with no leader says so once, with the wait's time left, not once per poll; again after a leader answered", async () => {
    const notes: string[] = [];
    const client = new PolledClient(nats.url, nc, "ROOST", 10_000, (m) => notes.push(m));
    const status = `${API_V1_PREFIX}www-data.job.status`;
    const ask = (t: { timeoutMs: number }) => client.request<{ job: string }>("job.status", { job: "www-data/devel/quiet" }, t);
    /** Polls as `job create --wait` does until the wait's deadline, which throws. */
    const waitOut = async (ms: number) => {
      const deadline = Date.now() + ms;
      let polls = 0;
      for (;;) {
        polls++;
        const r = await pollOnce(ask, deadline).catch((e: unknown) => e);
        if (r instanceof Error) return { polls, err: r };
        expect(r).toBeNull();
      }
    };
    const first = await waitOut(3000);
    expect(first.polls).toBeGreaterThanOrEqual(2); // 2 s tries: several polls, each its own request
    expect(first.err.message).toMatch(/no scheduler is leading/);
    // Before: one note per poll, each "for up to 2 s".
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^no scheduler answers roost\.api\.v1\.www-data\.job\.status at .* yet; trying again for up to (3|2\.[0-9]) s$/,
    );
    // A leader answers; once it is gone, the next stretch with nobody is said again.
    const sub = leaders.subscribe(status, { max: 1 });
    void (async () => {
      for await (const m of sub) m.respond(pack({ ok: true, value: { job: "www-data/devel/quiet" } }));
    })();
    await leaders.flush();
    expect(await pollOnce(ask, Date.now() + 5000)).toEqual({ job: "www-data/devel/quiet" });
    await leaders.flush();
    await waitOut(1000);
    expect(notes).toHaveLength(2);
  });

  it.each([
    // A 5 s timeout: the held poll is given waitMs + 2 s, well before the stream would give up.
    ["a long poll the dying leader held is asked again of the next leader, from the same place", 5000, 200],
    // A 1 s timeout and a 1.5 s hold: the held try ends at 3.5 s, past the timeout.
    ["a poll held longer than the timeout by a leader that died is still asked again (the patience restarts)", 1000, 1500],
  ] as const)("events({follow}): %s", async (_why, timeoutMs, waitMs) => {
    const transport = new PolledClient(nats.url, nc, "ROOST", timeoutMs);
    const feed = await eventFeedLeaders();
    const stop = new AbortController();
    const seen: number[] = [];
    for await (const e of new RoostClient(transport).events({ from: 5, follow: true, waitMs, role: "www-data", signal: stop.signal })) {
      seen.push(e.seq);
      stop.abort();
    }
    await feed.stop();
    expect(feed.held()).toBe(1); // the first poll went to the dying leader
    expect(seen).toEqual([5]);
    expect(feed.asked[0]).toBe(5); // asked again from the same place
  });

  it("events({follow}) with no leader at all ends after the timeout, not the timeout plus the hold", async () => {
    const transport = new PolledClient(nats.url, nc, "ROOST", 1000);
    const started = Date.now();
    // The longest hold, 30 s: before, nobody answering was retried for the timeout plus the hold, 31 s.
    const err = await (async () => {
      for await (const _e of new RoostClient(transport).events({ from: 1, follow: true, waitMs: 30_000, role: "nobody" })) {
        /* nothing comes */
      }
    })().catch((e: unknown) => e);
    expect((err as Error).name).toBe("NoLeaderError");
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("`roost events --follow` (cli/events.ts): a long poll the dying leader held is asked again of the next leader, from the same place", async () => {
    const transport = new PolledClient(nats.url, nc, "ROOST", 5000);
    const feed = await eventFeedLeaders();
    const stop = new AbortController();
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => {
      printed.push(line);
      stop.abort();
    });
    try {
      await streamEvents(transport, { follow: true, role: "www-data", from: 5, type: [], json: true }, stop.signal, 200);
    } finally {
      log.mockRestore();
      await feed.stop();
    }
    expect(feed.held()).toBe(1);
    expect(printed.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([5]);
    expect(feed.asked[0]).toBe(5);
  });
});

/**
 * The events feed of role www-data: a dying leader takes the first poll and never answers it; only
 * then does the next leader subscribe (two plain subscribers at once would both get every poll),
 * answering with one event at sequence 5 when asked from 5, else an empty page.
 */
async function eventFeedLeaders(): Promise<{ held: () => number; asked: number[]; stop: () => Promise<void> }> {
  const subject = addressFor("events", {}, "www-data")!;
  const held = leaders.subscribe(subject, { max: 1 });
  const took = (async () => {
    for await (const _m of held) return;
  })();
  await leaders.flush();
  const asked: number[] = [];
  let next: Subscription | null = null;
  void took.then(async () => {
    next = leaders.subscribe(subject);
    for await (const m of next) {
      const req = unpack<{ from: number }>(m.data);
      asked.push(req.from);
      const events =
        req.from === 5
          ? [
              {
                seq: 5,
                index: 0,
                ts: 1,
                epoch: 1,
                type: "LeaderElected",
                reason: "r",
                corr: "c",
                data: {},
                job: null,
                role: null,
                agent: null,
              },
            ]
          : [];
      m.respond(pack({ ok: true, value: { events, next: req.from === 5 ? 6 : req.from, lastSeq: 5 } }));
    }
  });
  return {
    held: () => held.getReceived(),
    asked,
    async stop() {
      (next as Subscription | null)?.unsubscribe();
      await leaders.flush();
    },
  };
}
