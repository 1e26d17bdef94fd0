// Simulated time. Nothing advances on its own: the scheduler calls `step()`,
// which jumps to the earliest timer and runs it. The same clock drives node
// ticks, network deliveries and disk syncs, so it is also the simulator's
// event loop. Implements the Clock port for whole-node simulation.

import type { Clock, Timer } from "../../src/ports.ts";
import { EventHeap } from "./heap.ts";

/** A fixed wall-clock origin so logs and tokens are reproducible too. */
export const simWallStartMs = 1_700_000_000_000;

interface TimerEntry {
  fn: () => void;
  cancelled: boolean;
  intervalMs?: number;
}

export class SimClock implements Clock {
  private now = 0;
  private readonly timers = new EventHeap<TimerEntry>();

  constructor(private readonly wallStartMs = simWallStartMs) {}

  nowMs(): number {
    return this.now;
  }

  wallMs(): number {
    return this.wallStartMs + this.now;
  }

  setTimer(ms: number, fn: () => void): Timer {
    return this.schedule(ms, { fn, cancelled: false });
  }

  setInterval(ms: number, fn: () => void): Timer {
    if (!(ms > 0)) throw new Error(`interval must be positive, got ${ms}`);
    return this.schedule(ms, { fn, cancelled: false, intervalMs: ms });
  }

  private schedule(ms: number, entry: TimerEntry): Timer {
    this.timers.push(this.now + Math.max(0, ms), entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** When the next live timer fires, or undefined if none is pending. */
  nextTimerMs(): number | undefined {
    return this.timers.peekTime();
  }

  /** Runs the earliest timer (advancing time to it). False if there was none. */
  step(): boolean {
    for (;;) {
      const next = this.timers.pop();
      if (next === undefined) return false;
      const entry = next.value;
      if (entry.cancelled) continue;
      this.now = next.time;
      if (entry.intervalMs !== undefined) this.timers.push(this.now + entry.intervalMs, entry);
      entry.fn();
      return true;
    }
  }

  /** Runs every timer due up to `ms` from now, then sets the time to now + ms. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const nextMs = this.timers.peekTime();
      if (nextMs === undefined || nextMs > until) break;
      this.step();
    }
    this.now = until;
  }
}

export function simClock(wallStartMs = simWallStartMs): SimClock {
  return new SimClock(wallStartMs);
}
