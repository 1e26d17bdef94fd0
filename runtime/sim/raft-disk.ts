// What a Raft node keeps on its simulated disk, as WAL-like records, and how
// a restart rebuilds its storage from the records that survived a crash.

import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import type { Entry, HardState, Snapshot } from "../../src/raft/types.ts";

export type RaftRecord =
  | { kind: "hardState"; hardState: HardState }
  /** Entries from the leader: they replace any conflicting suffix of the log. */
  | { kind: "entries"; entries: Entry[] }
  /**
   * A snapshot received from the leader: it replaces the whole log. Written
   * with the Ready's hard state in the same record: apart, a crash between the
   * two leaves a commit index below the snapshot, which Raft refuses to load.
   */
  | { kind: "installSnapshot"; snapshot: Snapshot; hardState?: HardState }
  /** A snapshot of the node's own applied state: entries up to `compactIndex` go. */
  | { kind: "localSnapshot"; snapshot: Snapshot; compactIndex: number };

export interface RaftDiskState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
}

/** Replays records in order, the way a WAL is read back on start. */
export function replayRaftRecords(records: readonly RaftRecord[]): RaftDiskState {
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snapshot: Snapshot | undefined;
  let entries: Entry[] = [];
  for (const record of records) {
    switch (record.kind) {
      case "hardState":
        hardState = record.hardState;
        break;
      case "entries": {
        const first = record.entries[0];
        if (first === undefined) break;
        const start = entries[0]?.index;
        if (start === undefined || first.index <= start) {
          entries = [...record.entries];
        } else {
          const keep = first.index - start;
          if (keep > entries.length) throw new Error(`gap in log: have ${start + entries.length - 1}, got ${first.index}`);
          entries.length = keep;
          for (const entry of record.entries) entries.push(entry);
        }
        break;
      }
      case "installSnapshot":
        snapshot = record.snapshot;
        if (record.hardState !== undefined) hardState = record.hardState;
        entries = [];
        break;
      case "localSnapshot": {
        snapshot = record.snapshot;
        const compactIndex = record.compactIndex;
        entries = entries.filter((entry) => entry.index > compactIndex);
        break;
      }
    }
  }
  return { hardState, snapshot, entries };
}

/**
 * A MemoryStorage holding `state`. A local snapshot may keep entries at or
 * below its index (compaction lags the snapshot); the storage then starts at
 * the first kept entry's predecessor.
 */
export function storageFromDisk(state: RaftDiskState): MemoryStorage {
  const storage = new MemoryStorage();
  if (state.snapshot !== undefined) storage.applySnapshot(state.snapshot);
  if (state.entries.length > 0) storage.append(state.entries);
  storage.setHardState(state.hardState);
  return storage;
}
