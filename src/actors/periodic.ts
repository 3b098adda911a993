// A job the leader runs every so often on its clock (virtual under the simulator): the next run
// is scheduled only after the previous one has finished (when it returns a promise; an actor's
// run only sends itself a message), and stop() cancels what is pending.

import type { Clock } from "./clock.js";

export class Periodic {
  private timer: unknown = null;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly everyMs: () => number,
    private readonly run: () => unknown,
  ) {}

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void Promise.resolve()
        .then(this.run)
        .catch(() => {})
        .finally(() => this.schedule());
    }, this.everyMs());
  }
}
