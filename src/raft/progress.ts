// The leader's view of one follower (etcd's tracker.Progress).
//
// Probe: the leader does not know where the follower's log matches; it sends
// one App per heartbeat interval and waits for the answer.
// Replicate: the follower is known to match up to `match`; the leader streams
// appends optimistically, bounded by the inflight window.
// Snapshot: the follower needs a snapshot; nothing is sent until it is
// reported applied (or failed).

import { Inflights } from "./inflights.ts";

export enum ProgressState {
  Probe = 0,
  Replicate = 1,
  Snapshot = 2,
}

export const progressStateNames: Record<ProgressState, string> = {
  [ProgressState.Probe]: "StateProbe",
  [ProgressState.Replicate]: "StateReplicate",
  [ProgressState.Snapshot]: "StateSnapshot",
};

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Probe: an App was sent since the last heartbeat response; pause until then. */
  probeSent = false;
  /** In Snapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflightMsgs: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, the follower holds at least the snapshot's index.
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records an acknowledgement up to `index`; false when it is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Optimistically advances `next` after sending entries up to `lastIndex` (Replicate). */
  optimisticUpdate(lastIndex: number): void {
    this.next = lastIndex + 1;
  }

  /**
   * Handles a rejected App for `rejectedIndex`. `matchHint` is where the
   * follower's log may match (already refined by term when the follower sent
   * one). Returns false when the rejection is stale.
   */
  maybeDecrTo(rejectedIndex: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // In Replicate, `match` is certain: anything at or below it is stale.
      if (rejectedIndex <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In Probe, only the answer to the last probe (at next-1) counts.
    if (this.next - 1 !== rejectedIndex) return false;
    this.next = Math.max(Math.min(rejectedIndex, matchHint + 1), 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
