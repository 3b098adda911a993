// The leader's actors. Each owns a mailbox and handles one message at a time, in arrival order;
// it talks to its peers only by sending them messages (ActorRef), and sees the world only through
// the narrow, typed dependencies its constructor takes. A leader term creates its actors when it
// begins and stops them all when it ends (term.ts).
//
// Why not plain objects calling each other: the actors used to be classes holding a
// back-reference to a 640-line Scheduler and calling their peers through it, a ten-file import
// cycle in which any actor could reach any state. And when a leader was stuck, nothing could say
// what it was doing; now `roost cluster status` shows each actor's mailbox depth and the message
// it is handling (stats()).
//
// A handler that returns a promise holds the mailbox until it settles (JobIntake's check-then-
// commit must not interleave). One that must not hold it (a status update: hundreds in flight
// share one group commit) starts its commit and replies when it lands, and returns at once.
//
// Plain classes rather than XState's actor system: a status update or a placement kick costs one
// array push and one microtask here; an XState actor's send costs 7–10 µs (measured for the task
// machine), and the lifecycles stay XState machines (statemachines/), folded from the log.

import type { Logger } from "../util/logger.js";

/** What `roost cluster status` shows of an actor. */
export interface ActorStats {
  name: string;
  /** Messages waiting in its mailbox. */
  depth: number;
  /** The type of the message it is handling now, or null when idle. */
  handling: string | null;
  /** How long it has been handling it (ms), or null. */
  handlingMs: number | null;
  handled: number;
  /** Handlers that threw (each logged). */
  failed: number;
}

/** The only way to reach an actor: send it a message. */
export interface ActorRef<M> {
  send(msg: M): void;
}

/** A clock for stats only (how long a message has been handled); the simulator passes its own. */
type Now = () => number;

export abstract class Actor<M extends { type: string }> implements ActorRef<M> {
  #queue: M[] = [];
  #head = 0;
  #draining = false;
  #stopped = false;
  #current: string | null = null;
  #currentSince = 0;
  #handled = 0;
  #failed = 0;
  /** Called with every message as it is taken from the mailbox (tests watch an actor with it). */
  tap: ((msg: M) => void) | null = null;

  constructor(
    readonly name: string,
    protected readonly log: Logger,
    private readonly now: Now,
  ) {}

  send(msg: M): void {
    if (this.#stopped) return;
    this.#queue.push(msg);
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => void this.drain());
  }

  /** Send a message that carries its own reply, and await the reply. */
  protected ask<R>(make: (reply: (r: R) => void, fail: (err: Error) => void) => M): Promise<R> {
    if (this.#stopped) return Promise.reject(new Error(`${this.name} has stopped: this scheduler is not the leader`));
    return new Promise<R>((resolve, reject) => this.send(make(resolve, reject)));
  }

  /** Handle one message. A returned promise holds the mailbox until it settles. */
  protected abstract receive(msg: M): void | Promise<void>;

  /** The term ended: drop what is queued, and release what the actor holds (timers, loops). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const dropped = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.onStop(dropped);
  }

  /** Override to release resources; `dropped` are the messages still queued (to fail their askers). */
  protected onStop(_dropped: M[]): void {}

  get isStopped(): boolean {
    return this.#stopped;
  }

  /** True while messages wait or one is being handled. */
  get busy(): boolean {
    return this.#draining;
  }

  stats(): ActorStats {
    return {
      name: this.name,
      depth: this.#queue.length - this.#head,
      handling: this.#current,
      handlingMs: this.#current === null ? null : this.now() - this.#currentSince,
      handled: this.#handled,
      failed: this.#failed,
    };
  }

  private async drain(): Promise<void> {
    while (!this.#stopped && this.#head < this.#queue.length) {
      const msg = this.#queue[this.#head++]!;
      // A long queue is compacted now and then: shift() on a long array is O(n) in V8.
      if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#current = msg.type;
      this.#currentSince = this.now();
      this.tap?.(msg);
      try {
        const r = this.receive(msg);
        if (r) await r;
      } catch (err) {
        this.#failed++;
        this.log.error({ err, actor: this.name, message: msg.type }, "an actor's handler failed");
      }
      this.#current = null;
      this.#handled++;
    }
    if (this.#head >= this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#draining = false;
  }
}
