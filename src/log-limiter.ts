// Log lines that anyone on the network can cause (a dropped Raft message, a
// refused peer request) must not let a flood of such input become a flood of
// log lines: at most one line per kind per interval, carrying how many were
// held back since the last one.
import type { Logger } from "./ports.ts";

export interface LogLimits {
  /** At most one line per kind this often. */
  intervalMs: number;
  /** Kinds remembered; past it the oldest is forgotten (and may log again at once). */
  kindsMax: number;
}

export const defaultLogLimits: LogLimits = { intervalMs: 1000, kindsMax: 64 };

export class LogLimiter {
  private readonly limits: LogLimits;
  /** Per kind: when it was last logged and how many lines were held back since. */
  private readonly kinds = new Map<string, { loggedAtMs: number; suppressed: number }>();

  constructor(
    private readonly nowMs: () => number,
    limits: Partial<LogLimits> = {},
  ) {
    this.limits = { ...defaultLogLimits, ...limits };
  }

  /** A warning whose kind is its message. */
  warn(logger: Logger | undefined, message: string, fields: Record<string, unknown>): void {
    const suppressed = this.admit(message);
    if (suppressed !== undefined) logger?.warn(message, { ...fields, "suppressed-since-last-log": suppressed });
  }

  /** Lines of `kind` held back since its last one, or undefined when this one must be held back too. */
  admit(kind: string): number | undefined {
    const nowMs = this.nowMs();
    const seen = this.kinds.get(kind);
    if (seen !== undefined && nowMs - seen.loggedAtMs < this.limits.intervalMs) {
      seen.suppressed++;
      return undefined;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.kinds.delete(kind); // re-inserted last: the map's order is the order of forgetting
    if (this.kinds.size >= this.limits.kindsMax) {
      const oldest = this.kinds.keys().next();
      if (oldest.done !== true) this.kinds.delete(oldest.value);
    }
    this.kinds.set(kind, { loggedAtMs: nowMs, suppressed: 0 });
    return suppressed;
  }
}
