// A virtual clock for the deterministic simulator. Time moves only when the simulator moves it:
// timers fire in (due time, registration order) order, and now() is set to each timer's due time
// just before it fires. Nothing here touches real time.

import type { Clock } from "../actors/clock.js";

/** Midnight, 1 January 2026 (UTC): the simulator's default epoch. */
export const DEFAULT_SIM_EPOCH = Date.UTC(2026, 0, 1);

interface Timer {
  due: number;
  /** Registration order: breaks ties between timers due at the same time. */
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** The handle setTimeout returns; pass it to clearTimeout. */
export type VirtualTimerHandle = { readonly due: number };

export class VirtualClock implements Clock {
  private t: number;
  private order = 0;
  /** Binary min-heap on (due, order); cancelled timers are dropped lazily. */
  private heap: Timer[] = [];
  private live = 0;

  constructor(epochMs: number = DEFAULT_SIM_EPOCH) {
    this.t = epochMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): VirtualTimerHandle {
    const delay = Number.isFinite(ms) ? Math.max(0, ms) : 0;
    const timer: Timer = { due: this.t + delay, order: this.order++, fn, cancelled: false };
    this.push(timer);
    this.live++;
    return timer;
  }

  clearTimeout(handle: unknown): void {
    const timer = handle as Timer | null | undefined;
    if (!timer || typeof timer !== "object" || timer.cancelled || typeof timer.fn !== "function") return;
    timer.cancelled = true;
    this.live--;
  }

  /** Timers registered and neither fired nor cancelled. */
  get pendingTimers(): number {
    return this.live;
  }

  /** When the next timer is due (ms since the epoch), or null when none is pending. */
  nextDue(): number | null {
    this.dropCancelled();
    return this.heap.length > 0 ? this.heap[0]!.due : null;
  }

  /** True if a timer is due now (or overdue). */
  hasDueNow(): boolean {
    const next = this.nextDue();
    return next !== null && next <= this.t;
  }

  /**
   * Fires the earliest timer only, if it is due at or before `limit` (default: whenever it is):
   * now() becomes its due time (never earlier than now), then it runs. Returns false if none did.
   */
  fireNext(limit: number = Infinity): boolean {
    this.dropCancelled();
    const head = this.heap[0];
    if (!head || head.due > limit) return false;
    this.pop();
    head.cancelled = true; // fired: clearTimeout on its handle is now a no-op
    this.live--;
    if (head.due > this.t) this.t = head.due;
    head.fn();
    return true;
  }

  /**
   * Fires every timer due at or before `t`, in (due, registration) order, including timers those
   * timers register, setting now() to each one's due time before it fires; then now() = t.
   * Never goes backwards: a `t` before now() only fires what is already due.
   */
  advanceTo(t: number): void {
    const target = Math.max(t, this.t);
    while (this.fireNext(target)) {
      /* keep firing */
    }
    this.t = target;
  }

  /** advanceTo(now() + ms). */
  advanceBy(ms: number): void {
    this.advanceTo(this.t + Math.max(0, ms));
  }

  // ---- the heap ------------------------------------------------------------------------------

  private static before(a: Timer, b: Timer): boolean {
    return a.due < b.due || (a.due === b.due && a.order < b.order);
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private push(x: Timer): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!VirtualClock.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Timer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && VirtualClock.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && VirtualClock.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
