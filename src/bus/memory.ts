// In-process bus with NATS semantics: subjects with a trailing ">" wildcard, request/reply,
// no-responders errors. Delivery is asynchronous (a microtask later), as over a network.
//
// `inFlight` counts requests not yet answered plus published deliveries whose handler has not
// finished, so a simulator can tell when the bus is quiet. Request timeouts use a real timer;
// a simulation turns them off (`requestTimeouts: false`) so real time cannot change its course.

import { NoResponderError, type Bus, type Handler, type RequestMeta, type ServeOptions } from "./bus.js";

export interface MemoryBusOptions {
  /** Reject a request that is not answered within its timeout (real time). Default true. */
  requestTimeouts?: boolean;
}

/** In process, nothing is encoded: no size, no decoding to fail. */
const IN_PROCESS: RequestMeta = Object.freeze({ json: false, bytes: 0 });

export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<Handler>>();
  /** Patterns with a "*" token or a trailing ">", in registration order, split into tokens. */
  private readonly wildcards: Array<{ pattern: string; tokens: string[] }> = [];
  private readonly requestTimeouts: boolean;
  private closed = false;
  /** Handlers that leave some subjects to others, and which (ServeOptions.ignore). */
  private readonly ignores = new WeakMap<Handler, (subject: string) => boolean>();
  private outstanding = 0;
  private readonly outstandingBySubject = new Map<string, number>();

  constructor(opts: MemoryBusOptions = {}) {
    this.requestTimeouts = opts.requestTimeouts ?? true;
  }

  /** Requests not yet answered, plus published deliveries whose handler has not finished. */
  get inFlight(): number {
    return this.outstanding;
  }

  /** What is in flight, by subject (for diagnostics), sorted by subject. */
  inFlightSubjects(): Array<[string, number]> {
    return [...this.outstandingBySubject].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  private begin(subject: string): void {
    this.outstanding++;
    this.outstandingBySubject.set(subject, (this.outstandingBySubject.get(subject) ?? 0) + 1);
  }

  private end(subject: string): void {
    this.outstanding--;
    const n = (this.outstandingBySubject.get(subject) ?? 1) - 1;
    if (n <= 0) this.outstandingBySubject.delete(subject);
    else this.outstandingBySubject.set(subject, n);
  }

  /** Exact subjects in a map (O(1) per message); only wildcard patterns are scanned. */
  private match(subject: string): Handler[] {
    const out: Handler[] = [];
    const exact = this.handlers.get(subject);
    if (exact) for (const h of exact) out.push(h);
    if (this.wildcards.length === 0) return out;
    const tokens = subject.split(".");
    for (const w of this.wildcards) {
      if (tokensMatch(w.tokens, tokens)) for (const h of this.handlers.get(w.pattern)!) out.push(h);
    }
    return out;
  }

  async request<T>(subject: string, data: unknown, timeoutMs = 5000): Promise<T> {
    if (this.closed) throw new NoResponderError(`bus closed (${subject})`);
    const hs = this.match(subject).filter((h) => !this.ignores.get(h)?.(subject));
    if (hs.length === 0) throw new NoResponderError(`no responders on ${subject}`);
    this.begin(subject);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.resolve();
      const reply = Promise.resolve()
        .then(() => hs[0]!(structuredClone(data), subject, IN_PROCESS))
        .catch((err: Error) => ({ ok: false, error: err.message }));
      if (!this.requestTimeouts) return structuredClone(await reply) as T;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NoResponderError(`request on ${subject} timed out after ${timeoutMs} ms`, true)), timeoutMs);
      });
      return structuredClone(await Promise.race([reply, timeout])) as T;
    } finally {
      clearTimeout(timer);
      this.end(subject);
    }
  }

  publish(subject: string, data: unknown): void {
    if (this.closed) return;
    for (const h of this.match(subject)) {
      this.begin(subject);
      queueMicrotask(() => {
        void Promise.resolve()
          .then(() => h(structuredClone(data), subject, IN_PROCESS))
          .catch(() => {})
          .finally(() => this.end(subject));
      });
    }
  }

  serve(subject: string, handler: Handler, opts: ServeOptions = {}): () => void {
    // A subject the server leaves to others never reaches it (request() skips it: with nobody
    // else, "no responders" at once); a queue group is one member here anyway (request() asks the
    // first handler that matches).
    if (opts.ignore) {
      const ignore = opts.ignore;
      const inner = handler;
      handler = (data, subj, meta) => inner(data, subj, meta);
      this.ignores.set(handler, ignore);
    }
    let hs = this.handlers.get(subject);
    if (!hs) {
      this.handlers.set(subject, (hs = new Set()));
      const tokens = subject.split(".");
      if (tokens.includes("*") || tokens.at(-1) === ">") this.wildcards.push({ pattern: subject, tokens });
    }
    hs.add(handler);
    return () => {
      hs!.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    this.wildcards.length = 0;
  }
}

/** NATS subject matching: "*" is one token, a trailing ">" one or more. */
function tokensMatch(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === ">") return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== "*" && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}
