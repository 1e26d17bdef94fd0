// MUTANTS: test builds only. Each name brings back a known bug class so the
// reliability suite can show that it catches it (scorecard R1). Nothing is
// enabled unless a composition root calls enableMutant (runtime/faults/
// mutants.ts, from EDGETCD_MUTANT); production never does. Every site that
// asks is marked `MUTANT` and stays one line.
export type SourceMutant =
  // a progress response sent while some watchers of the stream are not synced: it runs ahead of their events
  | "progress-notify-ahead"
  // a linearizable read that reuses the read index of an earlier read instead of asking Raft for a new one
  | "read-index-reused"
  // a lock handed to a waiter whose lease expired while it waited (Jepsen, etcd 3.4.3)
  | "lock-after-lease-expired";

export const sourceMutants: readonly SourceMutant[] = ["progress-notify-ahead", "read-index-reused", "lock-after-lease-expired"];

const enabled = new Set<SourceMutant>();

export function enableMutant(name: SourceMutant): void {
  enabled.add(name);
}

export function mutant(name: SourceMutant): boolean {
  return enabled.size > 0 && enabled.has(name);
}
