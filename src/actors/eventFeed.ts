// The event stream for subscribers: `events` on roost.api.v1.<role>.events (a role's own jobs'
// events) and roost.api.v1.cluster.events (all of them). It answers from the log itself, from any
// retained sequence or from a time, so a subscriber that went away resumes where it stopped; and
// it waits up to waitMs for the next event, so `roost events --follow` is a long poll, not a loop
// of empty answers.
//
// Not an actor with a mailbox: a page is a read of the log, and a long poll may wait 30 s; in the
// Reads actor's queue either would hold up every job.status behind it. It serves only what the
// leader has folded (state.seq): a record appended but not yet folded is not yet an event anyone
// has acted on, and the task table it is scoped by must already know it.
//
// A role sees only events whose role it can tell is its own (replay/eventScope.ts).

import { ApiError } from "../api/errors.js";
import { MAX_EVENTS_PAGE } from "../api/requests.js";
import { UNREADABLE } from "../domain/events.js";
import type { LogRecord } from "../eventlog/envelope.js";
import { type EventLog, firstSeqWrittenFrom } from "../eventlog/log.js";
import { type EventFilter, type EventItem, eventItem, matches, scopeOf } from "../replay/eventScope.js";
import type { ClusterState } from "../replay/state.js";
import type { Caller } from "./api.js";

/** At most this many records are scanned for one page: a filter that matches little answers in bounded time. */
const MAX_SCAN_RECORDS = 5000;
const DEFAULT_PAGE = 100;

export interface EventsPage {
  events: EventItem[];
  /** The sequence to ask from next. */
  next: number;
  /** The last sequence folded when the page was made. */
  lastSeq: number;
}

interface EventsRequest {
  from?: number | string;
  limit?: number;
  waitMs?: number;
  job?: string;
  role?: string;
  agent?: string;
  type?: string[];
}

export class EventFeed {
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  constructor(
    private readonly state: ClusterState,
    private readonly log: EventLog,
  ) {}

  /** A record was folded: wake the long polls. */
  folded(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Wake every long poll (the term ended): each answers with what it has. */
  stop(): void {
    this.stopped = true;
    this.folded();
  }

  async read(req: unknown, caller: Caller): Promise<EventsPage> {
    const r = (req ?? {}) as EventsRequest;
    if (caller.role !== null && r.role !== undefined && r.role !== caller.role)
      throw new ApiError("PERMISSION_DENIED", `role: a role reads only its own events; the subject is role "${caller.role}"`, "role");
    if (caller.role !== null && r.job !== undefined && r.job.split("/")[0] !== caller.role)
      throw new ApiError("PERMISSION_DENIED", `job: ${r.job} is not role "${caller.role}"'s`, "job");
    const filter: EventFilter = { job: r.job, role: caller.role ?? r.role, agent: r.agent, type: r.type };
    const limit = Math.min(r.limit ?? DEFAULT_PAGE, MAX_EVENTS_PAGE);
    let from = typeof r.from === "string" ? await this.seqAt(Date.parse(r.from)) : (r.from ?? 1);
    const deadline = Date.now() + (r.waitMs ?? 0);
    for (;;) {
      const last = this.state.seq;
      if (from <= last) {
        const page = await this.scan(from, last, limit, filter, caller.role === null);
        if (page.events.length > 0 || Date.now() >= deadline || this.stopped) return page;
        from = page.next;
        continue;
      }
      if (Date.now() >= deadline || this.stopped) return { events: [], next: from, lastSeq: last };
      await this.foldedOrTimeout(deadline - Date.now());
    }
  }

  private async scan(from: number, last: number, limit: number, filter: EventFilter, unreadable: boolean): Promise<EventsPage> {
    const events: EventItem[] = [];
    const end = Math.min(last, from + MAX_SCAN_RECORDS - 1);
    let next = from;
    for await (const rec of this.log.read(from)) {
      if (rec.seq > end) break;
      const items = this.itemsOf(rec, filter, unreadable);
      // A page ends before a record that would take it over the limit (a record is never split).
      if (events.length > 0 && events.length + items.length > limit) break;
      events.push(...items);
      next = rec.seq + 1;
      if (events.length >= limit || rec.seq >= end) break;
    }
    return { events, next, lastSeq: last };
  }

  private itemsOf(rec: LogRecord, filter: EventFilter, unreadable: boolean): EventItem[] {
    const out: EventItem[] = [];
    rec.events.forEach((e, index) => {
      if (e.type === UNREADABLE && !unreadable) return;
      const scope = scopeOf(e, this.state);
      if (!matches(e, scope, filter)) return;
      out.push(eventItem(rec.seq, index, e, scope));
    });
    return out;
  }

  /** The first sequence whose record was written at or after `time` (ms); past the end when none was. */
  private seqAt(time: number): Promise<number> {
    return firstSeqWrittenFrom(this.log, this.state.seq, time);
  }

  private foldedOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(done);
    });
  }
}
