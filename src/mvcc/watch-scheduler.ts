// Drives the watchable store's background steps on a clock the runtime hands
// in (etcd runs them as goroutines): catch up unsynced watchers, retry
// victims, and tick periodic progress notifications. Steps run one bounded
// batch at a time and yield to the event loop between batches, so a large
// catch-up never starves client requests or live watch delivery.
import type { Clock, Timer } from "../ports.ts";
import type { WatchableStore } from "./watchable-store.ts";

/** etcd's default --experimental-watch-progress-notify-interval. */
export const progressNotifyIntervalMsDefault = 10 * 60 * 1000;
/** etcd raises a shorter progress interval to this. */
export const progressNotifyIntervalMsMin = 100;
/** How soon to retry when a step made no progress (etcd: 10 ms for victims, 100 ms for unsynced). */
export const victimRetryMs = 10;
export const unsyncedRetryMs = 100;

export interface WatchSchedulerOptions {
  /** 0 disables periodic progress notifications. */
  progressNotifyIntervalMs?: number;
}

export class WatchScheduler {
  private stepTimer: Timer | undefined;
  private progressTimer: Timer | undefined;
  private stopped = false;
  readonly progressNotifyIntervalMs: number;

  constructor(
    private readonly hub: WatchableStore,
    private readonly clock: Clock,
    options: WatchSchedulerOptions = {},
  ) {
    const interval = options.progressNotifyIntervalMs ?? progressNotifyIntervalMsDefault;
    this.progressNotifyIntervalMs = interval > 0 ? Math.max(interval, progressNotifyIntervalMsMin) : 0;
    hub.onWork = () => this.schedule(0);
    this.scheduleProgressTick();
    if (hub.hasWork) this.schedule(0);
  }

  /** The periodic progress tick, re-armed after each run (one timer, on the injected clock). */
  private scheduleProgressTick(): void {
    if (this.stopped || this.progressNotifyIntervalMs === 0) return;
    this.progressTimer = this.clock.setTimer(this.progressNotifyIntervalMs, () => {
      this.hub.tickProgress();
      this.scheduleProgressTick();
    });
  }

  stop(): void {
    this.stopped = true;
    this.hub.onWork = undefined;
    this.stepTimer?.cancel();
    this.stepTimer = undefined;
    this.progressTimer?.cancel();
    this.progressTimer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.stepTimer !== undefined) return;
    this.stepTimer = this.clock.setTimer(delayMs, () => {
      this.stepTimer = undefined;
      this.step();
    });
  }

  private step(): void {
    const moved = this.hub.moveVictims();
    const advanced = this.hub.syncWatchers();
    if (!this.hub.hasWork) return;
    // Catch-up keeps going batch after batch (yielding between); a stream too
    // slow for its victims is retried on a short timer or when it drains.
    if (moved + advanced > 0) this.schedule(0);
    else this.schedule(this.hub.victimCount > 0 ? victimRetryMs : unsyncedRetryMs);
  }
}
