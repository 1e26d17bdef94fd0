// Test builds only: the pieces every fault-injecting FileSystem is made of
// (lose-unsynced.ts, the ack-before-fsync mutant, the failing disks of the
// reliability tests). Each changes a few calls of a real FileSystem and passes
// the rest through.
import type { FileHandle, FileSystem } from "../../src/ports.ts";

/**
 * Every call of `inner` as a plain function, so a spread of the result keeps
 * them all even when `inner` is a class instance (SimFileSystem).
 */
export function delegatingFileSystem(inner: FileSystem): FileSystem {
  return {
    open: (path, mode) => inner.open(path, mode),
    readFile: (path) => inner.readFile(path),
    exists: (path) => inner.exists(path),
    mkdirp: (path) => inner.mkdirp(path),
    list: (dir) => inner.list(dir),
    rename: (from, to) => inner.rename(from, to),
    remove: (path) => inner.remove(path),
    removeAll: (path) => inner.removeAll(path),
    size: (path) => inner.size(path),
    permissions: (path) => inner.permissions(path),
    syncDir: (path) => inner.syncDir(path),
    lock: (path) => inner.lock(path),
    join: (...parts) => inner.join(...parts),
  };
}

/** `inner` with the datasync of every file it opens replaced by `datasync(path, file)`. */
export function withFileDatasync(inner: FileSystem, datasync: (path: string, file: FileHandle) => Promise<void>): FileSystem {
  const wrap = (path: string, file: FileHandle): FileHandle => ({
    append: (data) => file.append(data),
    writeAt: (data, position) => file.writeAt(data, position),
    readAt: (position, length) => file.readAt(position, length),
    size: () => file.size(),
    datasync: () => datasync(path, file),
    truncate: (size) => file.truncate(size),
    close: () => file.close(),
  });
  return { ...delegatingFileSystem(inner), open: async (path, mode) => wrap(path, await inner.open(path, mode)) };
}
