// Named places on the write path where fault-injection tests stop the process
// (etcd's gofail points in raft.go, backend and mvcc). Production passes none;
// a test build's composition root (runtime/faults/crash-points.ts) passes one
// that kills the process the Nth time a chosen point is hit. Hitting a point
// must have no other effect.

export type CrashPointName =
  // WAL (src/storage/wal/wal.ts): a save before it writes, between the write and its fdatasync, after.
  | "wal-before-save"
  | "wal-after-write-before-sync"
  | "wal-after-sync"
  // Backend (src/storage/backend.ts): around the SQLite COMMIT of a batch.
  | "backend-before-commit"
  | "backend-after-commit"
  // Snapshot save (EtcdServer.maybeSnapshot, then the log's snapshot()): before the backend checkpoint, after the WAL records the snapshot, after old segments go.
  | "snapshot-before-save"
  | "snapshot-after-save"
  | "snapshot-after-release"
  // A received snapshot (snapshot-files.ts, EtcdServer.installSnapshot): written but not renamed, before and after the swap.
  | "snapshot-incoming-before-rename"
  | "snapshot-before-apply"
  | "snapshot-after-apply"
  // Compaction (MvccStore): after the scheduled mark is committed, before each batch of deletions commits.
  | "compaction-after-schedule"
  | "compaction-before-batch-commit";

export const crashPointNames: readonly CrashPointName[] = [
  "wal-before-save",
  "wal-after-write-before-sync",
  "wal-after-sync",
  "backend-before-commit",
  "backend-after-commit",
  "snapshot-before-save",
  "snapshot-after-save",
  "snapshot-after-release",
  "snapshot-incoming-before-rename",
  "snapshot-before-apply",
  "snapshot-after-apply",
  "compaction-after-schedule",
  "compaction-before-batch-commit",
];

export interface CrashPoints {
  hit(name: CrashPointName): void;
}
