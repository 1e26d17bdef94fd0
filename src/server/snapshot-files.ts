// The backend snapshots a member sends and receives, as files in the member's
// snap directory next to the backend database (etcd keeps <index>.snap.db
// there for the same reason):
//
//   db.incoming   a snapshot received from the leader, durable before the WAL
//                 records the snapshot; swapped in place of `db` when applied.
//                 Found at start: swapped in if the backend is older than the
//                 WAL's snapshot (a crash came between the two), else dropped.
//   db.outgoing   a consistent copy of `db` being read for a follower.
//   db.export     a consistent copy of `db` being read for a client's
//                 snapshot (Maintenance.Snapshot), one at a time.
//   db.export.N   a client's snapshot file, written from that copy and
//                 streamed from disk as the client reads, then removed; at
//                 most `snapshotExportsMax` at once.
import type { Digest, FileHandle, FileSystem } from "../ports.ts";
import { etcdError } from "../errors.ts";
import type { Backend } from "../storage/backend.ts";
import type { CrashPoints } from "../storage/crash-points.ts";

/**
 * Client snapshots streamed at once. Each holds a file about the size of the
 * data on disk (not in memory) until its client has read it; more wait for
 * none and are refused ("too many requests").
 */
export const snapshotExportsMax = 4;

/** A client's snapshot file: read it once, in order, then close it (which removes it). */
export interface SnapshotExport {
  size: number;
  /** The file in pieces of up to `chunkBytes`, read from disk as they are asked for. */
  chunks(chunkBytes: number): AsyncGenerator<Uint8Array>;
  /** The SHA-256 of what `chunks` gave, once it is done. */
  sha256(): Uint8Array;
  close(): Promise<void>;
}

export class SnapshotFiles {
  readonly incoming: string;
  private readonly outgoing: string;
  private readonly export: string;
  /** The export under way: the next waits for it (they share one file name). */
  private exporting: Promise<unknown> = Promise.resolve();
  private exportsInFlight = 0;
  private exportsMade = 0;

  constructor(
    private readonly fs: FileSystem,
    private readonly snapDir: string,
    private readonly crashPoints?: CrashPoints,
  ) {
    this.incoming = fs.join(snapDir, "db.incoming");
    this.outgoing = fs.join(snapDir, "db.outgoing");
    this.export = fs.join(snapDir, "db.export");
  }

  /**
   * Runs `read` on a consistent copy of the committed backend, opened with
   * `open` as a database of its own (so reading it may take turns with the
   * member's other work while the member goes on writing), then removes the
   * copy.
   */
  async withCopy<T>(backend: Backend, open: (path: string) => Backend, read: (copy: Backend) => Promise<T>): Promise<T> {
    const turn = this.exporting.then(async () => {
      await this.removeCopy(this.export);
      await (await this.fs.open(this.export, "readwrite")).close();
      try {
        backend.copyTo(this.export);
        const copy = open(this.export);
        try {
          return await read(copy);
        } finally {
          copy.close();
        }
      } finally {
        await this.removeCopy(this.export);
      }
    });
    this.exporting = turn.catch(() => undefined);
    return turn;
  }

  /**
   * A client's snapshot: `produce` writes the file from a consistent copy of
   * the backend (opened with `open`); the file is then streamed from disk,
   * its SHA-256 computed on the way, and removed on close.
   */
  async exportFile(
    backend: Backend,
    open: (path: string) => Backend,
    produce: (copy: Backend, out: FileHandle) => Promise<void>,
    digest: Digest,
  ): Promise<SnapshotExport> {
    if (this.exportsInFlight >= snapshotExportsMax) throw etcdError("tooManyRequests");
    this.exportsInFlight++;
    const path = `${this.export}.${++this.exportsMade}`;
    let file: FileHandle | undefined;
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      this.exportsInFlight--;
      await file?.close().catch(() => undefined);
      await this.removeIfPresent(path);
    };
    try {
      const out = await this.fs.open(path, "readwrite");
      file = out;
      await out.truncate(0);
      await this.withCopy(backend, open, (copy) => produce(copy, out));
      const size = await out.size();
      const hash = digest.incremental("SHA-256");
      let sum: Uint8Array | undefined;
      return {
        size,
        async *chunks(chunkBytes: number) {
          for (let offset = 0; offset < size; offset += chunkBytes) {
            const chunk = await out.readAt(offset, Math.min(chunkBytes, size - offset));
            hash.update(chunk);
            yield chunk;
          }
          sum = hash.digest();
        },
        sha256: () => {
          if (sum === undefined) throw new Error("snapshot: sha256 asked for before the file was read");
          return sum;
        },
        close,
      };
    } catch (error) {
      await close();
      throw error;
    }
  }

  /** A copy and the side files SQLite may have left beside it. */
  private async removeCopy(path: string): Promise<void> {
    for (const file of [path, `${path}-wal`, `${path}-shm`]) await this.removeIfPresent(file);
  }

  /** Writes a received snapshot's data durably as `db.incoming`. */
  async persistIncoming(data: Uint8Array): Promise<void> {
    const temporary = `${this.incoming}.tmp`;
    await this.removeIfPresent(temporary);
    const file = await this.fs.open(temporary, "append");
    try {
      await file.append(data);
      await file.datasync();
    } finally {
      await file.close();
    }
    this.crashPoints?.hit("snapshot-incoming-before-rename");
    await this.fs.rename(temporary, this.incoming);
    await this.fs.syncDir(this.snapDir);
  }

  /**
   * Replaces the backend's database file with `db.incoming` and reopens it.
   * A damaged `db.incoming` is refused before anything is replaced.
   */
  async swapIn(backend: Backend): Promise<void> {
    backend.verifyOtherFile(this.incoming);
    // Opening it for the check may leave SQLite's side files; they belong to no database.
    await this.removeIfPresent(`${this.incoming}-wal`);
    await this.removeIfPresent(`${this.incoming}-shm`);
    await backend.reopenAfter(async (path) => {
      // SQLite's own log and index of the old file must not be applied to the new one.
      await this.removeIfPresent(`${path}-wal`);
      await this.removeIfPresent(`${path}-shm`);
      await this.fs.rename(this.incoming, path);
      await this.fs.syncDir(this.snapDir);
    });
  }

  /**
   * At start: a received snapshot the backend does not reflect yet (the WAL
   * names it but the swap did not happen) is swapped in; a stale one dropped.
   * Returns whether it swapped.
   */
  async recover(backend: Backend, walSnapshotIndex: number): Promise<boolean> {
    await this.removeIfPresent(this.outgoing);
    await this.removeCopy(this.export);
    // Client snapshots left by a crash.
    for (const name of await this.fs.list(this.snapDir)) if (/^db\.export\.\d+$/.test(name)) await this.removeIfPresent(this.fs.join(this.snapDir, name));
    if (!(await this.fs.exists(this.incoming))) return false;
    if (backend.consistentIndex() < walSnapshotIndex) {
      await this.swapIn(backend);
      return true;
    }
    await this.fs.remove(this.incoming);
    return false;
  }

  /** A consistent copy of the committed backend, as bytes to send. */
  async readCopy(backend: Backend): Promise<Uint8Array> {
    await this.removeIfPresent(this.outgoing);
    // Created empty through the port first (0600; VACUUM INTO takes an empty
    // file), or SQLite would create the copy of every key readable by all.
    await (await this.fs.open(this.outgoing, "readwrite")).close();
    backend.copyTo(this.outgoing);
    try {
      return await this.fs.readFile(this.outgoing);
    } finally {
      await this.removeIfPresent(this.outgoing);
    }
  }

  private async removeIfPresent(path: string): Promise<void> {
    if (await this.fs.exists(path)) await this.fs.remove(path);
  }
}
