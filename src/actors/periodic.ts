// A job the leader runs every so often on its clock (virtual under the simulator): the next run
// is scheduled only after the previous one has finished, and stop() cancels what is pending.

import type { Clock } from "./ports.js";

export class Periodic {
  private timer: unknown = null;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly everyMs: () => number,
    private readonly run: () => Promise<unknown>,
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
      void this.run().finally(() => this.schedule());
    }, this.everyMs());
  }
}
