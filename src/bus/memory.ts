// In-process bus with NATS semantics: subjects with a trailing ">" wildcard, request/reply,
// no-responders errors. Delivery is asynchronous (a microtask later), as over a network.

import { NoResponderError, type Bus, type Handler } from "./bus.js";

export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<Handler>>();
  private closed = false;

  private match(subject: string): Handler[] {
    const out: Handler[] = [];
    for (const [pattern, hs] of this.handlers) {
      const ok = pattern.endsWith(">") ? subject.startsWith(pattern.slice(0, -1)) : pattern === subject;
      if (ok) for (const h of hs) out.push(h);
    }
    return out;
  }

  async request<T>(subject: string, data: unknown, timeoutMs = 5000): Promise<T> {
    if (this.closed) throw new NoResponderError(`bus closed (${subject})`);
    const hs = this.match(subject);
    if (hs.length === 0) throw new NoResponderError(`no responders on ${subject}`);
    await Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoResponderError(`request on ${subject} timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const reply = Promise.resolve()
        .then(() => hs[0](structuredClone(data), subject))
        .catch((err: Error) => ({ ok: false, error: err.message }));
      return structuredClone(await Promise.race([reply, timeout])) as T;
    } finally {
      clearTimeout(timer);
    }
  }

  publish(subject: string, data: unknown): void {
    if (this.closed) return;
    for (const h of this.match(subject)) {
      queueMicrotask(() => {
        void Promise.resolve()
          .then(() => h(structuredClone(data), subject))
          .catch(() => {});
      });
    }
  }

  serve(subject: string, handler: Handler): () => void {
    let hs = this.handlers.get(subject);
    if (!hs) this.handlers.set(subject, (hs = new Set()));
    hs.add(handler);
    return () => {
      hs!.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}
