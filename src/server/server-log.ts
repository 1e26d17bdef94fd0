// What the server needs from its log, whichever it is: the single-member
// LocalLog or the Raft-replicated RaftLog.
export interface ServerLog {
  /** Hands one entry's data to the log; throws etcd's error when it cannot be taken. */
  propose(data: Uint8Array): void;
  readonly lastIndex: number;
  readonly term: number;
  /** The current leader's member id, 0 when there is none. */
  readonly leader: number;
  /** Resolves once this member may serve a linearizable read (ReadIndex). */
  readBarrier(): Promise<void>;
  /** The applier finished applying up to `index`. */
  markApplied(index: number): void;
  /** The index of the latest snapshot: the WAL holds nothing older. */
  readonly snapshotIndex: number;
  /**
   * Records a snapshot at the applied index (the caller made the backend
   * durable up to it) and lets the WAL drop what precedes it; a cluster's log
   * keeps `catchUpEntries` entries behind it in memory for slow followers.
   */
  snapshot(catchUpEntries: number): Promise<void>;
  stop(): void;
}
