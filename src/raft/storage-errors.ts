// Errors a RaftStorage throws (etcd-io/raft's ErrCompacted, ErrUnavailable,
// ErrSnapOutOfDate). The Raft core catches the first two where the log may
// legitimately have moved on; anything else is a bug in the caller's storage.

/** The requested index is older than the storage's first index (compacted away). */
export class CompactedError extends Error {
  constructor(readonly index: number) {
    super(`requested index ${index} is unavailable due to compaction`);
    this.name = "CompactedError";
  }
}

/** The requested index is beyond the storage's last index. */
export class UnavailableError extends Error {
  constructor(readonly index: number) {
    super(`requested entry at index ${index} is unavailable`);
    this.name = "UnavailableError";
  }
}

/** A snapshot older than the storage's current one was applied or requested. */
export class SnapshotOutOfDateError extends Error {
  constructor(readonly index: number) {
    super(`requested index ${index} is older than the existing snapshot`);
    this.name = "SnapshotOutOfDateError";
  }
}
