// The naive anchor the replay figures are divided by (issue 15): what anyone would write to read
// a JetStream stream of msgpack records, in the same run, over the same stream, on the same
// machine at the same moment, so the ratio holds on a fast day and a slow one.
//
// The library's ordered consumer from the first sequence (`consume()`, its defaults), msgpackr's
// `unpack` of each record, and a minimal apply: a count per event type and, per task, the newest
// state it was moved to. No envelope checks, no upcasting, no fold: Roost's read does all of them,
// so a ratio ≥ 1 means its reading pipeline more than pays for them.
//
// Why an anchor at all: the shared 2-core machine's speed moves by 2× from day to day, and an
// absolute events/s goal passed one day and failed the next with the same code.

import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { unpack } from "msgpackr";

export interface NaiveRead {
  events: number;
  records: number;
  ms: number;
  eventsPerSec: number;
}

/** Reads `stream` from sequence 1 to `lastSeq` the naive way; `servers` as for connect(). */
export async function naiveRead(servers: string | string[], stream: string, lastSeq: number): Promise<NaiveRead> {
  const nc = await connect({ servers });
  try {
    const js = jetstream(nc);
    const t0 = performance.now();
    const consumer = await js.consumers.get(stream); // ordered, from the first message
    const messages = await consumer.consume();
    const counts = new Map<string, number>();
    const tasks = new Map<string, string>();
    let events = 0;
    let records = 0;
    for await (const m of messages) {
      const record = unpack(m.data) as unknown[][];
      for (const e of record) {
        const type = e[0] as string;
        counts.set(type, (counts.get(type) ?? 0) + 1);
        const data = e[6] as { taskId?: string; to?: string } | undefined;
        if (data?.taskId !== undefined) tasks.set(data.taskId, data.to ?? type);
      }
      events += record.length;
      records++;
      if (m.seq >= lastSeq) break;
    }
    const ms = performance.now() - t0;
    if (tasks.size === 0) throw new Error("naive read: no task event seen (not a Roost log?)");
    return { events, records, ms, eventsPerSec: (events / ms) * 1000 };
  } finally {
    await nc.close();
  }
}
