// Test builds only (EDGETCD_TEST_DISK=lose-unsynced): a FileSystem that keeps
// every write in this process's memory until the file's datasync, and only
// then hands it to the real file. A kill -9 of the process then loses exactly
// what a power failure would lose from files written through the port (the
// WAL, received snapshots): everything not fdatasynced. Reads inside the
// process see the unsynced writes, as they would through the page cache.
// SQLite does its own IO and is not covered (the WAL, not SQLite, makes a
// write durable: see src/storage/backend.ts).
import type { FileHandle, FileSystem } from "../../src/ports.ts";
import { delegatingFileSystem } from "./wrap-file-system.ts";

type Write =
  | { kind: "append"; data: Uint8Array }
  | { kind: "writeAt"; data: Uint8Array; position: number }
  | { kind: "truncate"; size: number };

export function loseUnsyncedFileSystem(inner: FileSystem): FileSystem {
  /** Unsynced writes per path, in order; kept across close (the page cache outlives the handle). */
  const unsynced = new Map<string, Write[]>();
  const writesOf = (path: string) => {
    let writes = unsynced.get(path);
    if (writes === undefined) unsynced.set(path, (writes = []));
    return writes;
  };
  const sizeAfter = (size: number, writes: readonly Write[]) => {
    for (const write of writes) {
      if (write.kind === "append") size += write.data.length;
      else if (write.kind === "writeAt") size = Math.max(size, write.position + write.data.length);
      else size = write.size;
    }
    return size;
  };
  const contentAfter = (bytes: Uint8Array, writes: readonly Write[]) => {
    let content = bytes;
    for (const write of writes) {
      const size = write.kind === "append" ? content.length + write.data.length : write.kind === "writeAt" ? Math.max(content.length, write.position + write.data.length) : write.size;
      const next = new Uint8Array(size);
      next.set(content.subarray(0, Math.min(size, content.length)));
      if (write.kind === "append") next.set(write.data, content.length);
      if (write.kind === "writeAt") next.set(write.data, write.position);
      content = next;
    }
    return content;
  };
  const wrap = (path: string, file: FileHandle): FileHandle => ({
    async append(data) {
      writesOf(path).push({ kind: "append", data: data.slice() });
    },
    async writeAt(data, position) {
      writesOf(path).push({ kind: "writeAt", data: data.slice(), position });
    },
    async truncate(size) {
      writesOf(path).push({ kind: "truncate", size });
    },
    async size() {
      return sizeAfter(await file.size(), unsynced.get(path) ?? []);
    },
    async readAt(position, length) {
      const writes = unsynced.get(path);
      if (writes === undefined || writes.length === 0) return file.readAt(position, length);
      const content = contentAfter(await file.readAt(0, await file.size()), writes);
      return content.slice(position, position + length);
    },
    async datasync() {
      const writes = unsynced.get(path) ?? [];
      unsynced.delete(path);
      for (const write of writes) {
        if (write.kind === "append") await file.append(write.data);
        else if (write.kind === "writeAt") await file.writeAt(write.data, write.position);
        else await file.truncate(write.size);
      }
      await file.datasync();
    },
    close: () => file.close(),
  });
  return {
    ...delegatingFileSystem(inner),
    open: async (path, mode) => wrap(path, await inner.open(path, mode)),
    async readFile(path) {
      const writes = unsynced.get(path);
      const bytes = (await inner.exists(path)) || writes === undefined ? await inner.readFile(path) : new Uint8Array(0);
      return writes === undefined ? bytes : contentAfter(bytes, writes);
    },
    async rename(from, to) {
      await inner.rename(from, to);
      const writes = unsynced.get(from);
      unsynced.delete(from);
      if (writes !== undefined) unsynced.set(to, writes);
      else unsynced.delete(to);
    },
    async remove(path) {
      await inner.remove(path);
      unsynced.delete(path);
    },
    async removeAll(path) {
      await inner.removeAll(path);
      for (const key of [...unsynced.keys()]) if (key === path || key.startsWith(`${path}/`)) unsynced.delete(key);
    },
    async size(path) {
      return sizeAfter(await inner.size(path), unsynced.get(path) ?? []);
    },
  };
}
