// `roost events`: the decoded events, filtered, from any retained sequence or a time, and with
// --follow as they come. It asks the leader's event feed (actors/eventFeed.ts), a page at a time,
// resuming from each page's `next`; with --role it asks on that role's subject, which is all a
// role's credentials may do. When no leader answers, the admin's view is made here from the log
// (folded for the task table the filters need): an SRE reads history during an outage too.

import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { EVENTS_FOLLOW_WAIT_MS } from "../api/requests.js";
import { NoResponderError } from "../bus/bus.js";
import { type EventsReply, RoostClient } from "../client/roostClient.js";
import { type CliClusterOptions, type ClusterClient, cliConnectOptions, connectClient } from "../client/transport.js";
import type { LogEntry } from "../domain/events.js";
import { type EventFilter, type EventItem, eventItem, matches, scopeOf } from "../replay/eventScope.js";
import { foldRecord } from "../replay/fold.js";
import { ClusterState } from "../replay/state.js";
import { formatEvent } from "./format.js";

interface EventsOptions extends CliClusterOptions {
  from?: number | string;
  follow?: boolean;
  job?: string;
  role?: string;
  agent?: string;
  type: string[];
}

function fromArg(v: string): number | string {
  if (/^\d+$/.test(v) && Number(v) >= 1 && Number.isSafeInteger(Number(v))) return Number(v);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(v) && Number.isFinite(Date.parse(v))) return v;
  throw new InvalidArgumentError("must be a log sequence (1, 2, …) or a time, e.g. 2026-12-02T03:12:00Z");
}

function print(o: EventsOptions, ev: EventItem | EventsReply["events"][number]): void {
  if (o.json) {
    console.log(JSON.stringify(ev));
    return;
  }
  const e = { type: ev.type, v: 1, epoch: ev.epoch, ts: ev.ts, corr: ev.corr, reason: ev.reason, data: ev.data } as LogEntry;
  console.log(formatEvent(ev.seq, ev.index, e, null));
}

export function registerEventsCommand(program: Command, withClusterOptions: (c: Command) => Command): void {
  withClusterOptions(
    program
      .command("events")
      .description("the decoded events, filtered; resumable from any retained sequence or a time; --follow for new ones"),
  )
    .option("--from <seq|time>", "the first record sequence, or a time (RFC 3339): the first record written at or after it", fromArg)
    .option("--follow", "keep printing new events as they are committed")
    .option("--job <ROLE/ENV/NAME>", "only this job's events")
    .option("--role <role>", "only this role's events (and ask on its subject: what a role's credentials may do)")
    .option("--agent <id>", "only events about this agent (its registrations, and its tasks')")
    .option(
      "--type <type>",
      "only events of this type (repeatable, or comma-separated)",
      (v: string, acc: string[]) => [...acc, ...v.split(",")],
      [],
    )
    .action(async (o: EventsOptions) => {
      const client = await connectClient(cliConnectOptions(o, { follow: o.follow }));
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      try {
        await stream(client, o, stop.signal);
      } finally {
        await client.close();
      }
    });
}

/**
 * Prints the events `o` asks for, page by page, until the last (or, following, until `signal`
 * aborts), through RoostClient.eventPages: following, a long poll a leader was killed -9 holding
 * is asked again of the next leader from the same place. Only when no leader answers (at once
 * without --follow, after the timeout with it) is the log read here, from the next page's place.
 * `waitMs`: how long the leader holds each poll (tests shorten it).
 */
export async function stream(client: ClusterClient, o: EventsOptions, signal: AbortSignal, waitMs = EVENTS_FOLLOW_WAIT_MS): Promise<void> {
  let from: number | string = o.from ?? 1;
  // Only the fields given: MessagePack would send an undefined one as nil, which the schema refuses.
  const filter: EventFilter = {
    ...(o.job !== undefined ? { job: o.job } : {}),
    ...(o.role !== undefined ? { role: o.role } : {}),
    ...(o.agent !== undefined ? { agent: o.agent } : {}),
    ...(o.type.length > 0 ? { type: o.type } : {}),
  };
  const pages = new RoostClient(client).eventPages(
    { from, filter, follow: o.follow === true, waitMs, role: o.role, signal },
    { retry: false },
  );
  try {
    for await (const page of pages) {
      for (const ev of page.events) print(o, ev);
      from = page.next;
    }
  } catch (err) {
    if (!(err instanceof NoResponderError) || o.role !== undefined) throw err;
    console.error("roost: no leader answered; the events are read from the log here");
    return fromLog(client, o, typeof from === "number" ? from : 1, filter, signal, typeof from === "string" ? Date.parse(from) : null);
  }
}

/** No leader: fold the log here (for the task table) and print what passes the filter from `from` on. */
async function fromLog(
  client: ClusterClient,
  o: EventsOptions,
  from: number,
  filter: EventFilter,
  signal: AbortSignal,
  since: number | null,
): Promise<void> {
  const state = new ClusterState();
  const records = o.follow ? client.followLog(1, signal) : client.readLog(1);
  for await (const r of records) {
    foldRecord(state, r.seq, r.events);
    if (r.seq < from) continue;
    if (since !== null && (r.events[0]?.ts ?? 0) < since) continue;
    r.events.forEach((e, index) => {
      const scope = scopeOf(e, state);
      if (!matches(e, scope, filter)) return;
      print(o, eventItem(r.seq, index, e, scope));
    });
  }
}
