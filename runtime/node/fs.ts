// The FileSystem port on Node: node:fs/promises, with fdatasync for durability
// and an OS file lock (data-dir-lock.ts) so two nodes never share one data
// directory. Directories are created 0700 and files 0600, as etcd's fileutil
// PrivateDirMode and PrivateFileMode: the data is the cluster's, no one else's.
import { constants, writeSync } from "node:fs";
import { type FileHandle as NodeFileHandle, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { FileHandle, FileSystem, OpenMode } from "../../src/ports.ts";
import { takeDataDirLock } from "./data-dir-lock.ts";
import { privateDirMode, privateFileMode } from "./private-files.ts";
import { nodeSqlite } from "./sqlite.ts";

/** Node's open flags for each port mode. */
const openFlags: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  append: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
  readwrite: constants.O_RDWR | constants.O_CREAT,
};

/**
 * Writes up to this size are made on the calling thread: a copy into the page
 * cache, microseconds, where a trip through libuv's thread pool and back costs
 * a tenth of a millisecond of a write's latency (the WAL's fdatasync still
 * goes through the pool). Larger ones go through the pool, so the event loop
 * is never held long.
 */
const onCallingThreadBytesMax = 256 * 1024;

export class NodeFile implements FileHandle {
  constructor(private readonly handle: NodeFileHandle) {}

  append(data: Uint8Array): Promise<void> {
    return data.length > onCallingThreadBytesMax ? this.writeInPool(data, null) : this.writeOnCallingThread(data, null);
  }

  writeAt(data: Uint8Array, position: number): Promise<void> {
    return data.length > onCallingThreadBytesMax ? this.writeInPool(data, position) : this.writeOnCallingThread(data, position);
  }

  /** `position` null: at the end (the file is opened with O_APPEND). Loops on short writes. */
  private writeOnCallingThread(data: Uint8Array, position: number | null): Promise<void> {
    try {
      let written = 0;
      while (written < data.length) {
        written += writeSync(this.handle.fd, data, written, data.length - written, position === null ? null : position + written);
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private async writeInPool(data: Uint8Array, position: number | null): Promise<void> {
    let written = 0;
    while (written < data.length) {
      const result = await this.handle.write(data, written, data.length - written, position === null ? null : position + written);
      written += result.bytesWritten;
    }
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    const buffer = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) break; // end of file
      filled += bytesRead;
    }
    return filled === length ? buffer : buffer.subarray(0, filled);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(size: number): Promise<void> {
    return this.handle.truncate(size);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const nodeFileSystem: FileSystem = {
  async open(path, mode) {
    return new NodeFile(await open(path, openFlags[mode], privateFileMode));
  },
  async readFile(path) {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  },
  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  },
  async mkdirp(path) {
    await mkdir(path, { recursive: true, mode: privateDirMode });
  },
  async list(dir) {
    return (await readdir(dir)).sort();
  },
  rename: (from, to) => rename(from, to),
  remove: (path) => unlink(path),
  removeAll: (path) => rm(path, { recursive: true, force: true }),
  async size(path) {
    return (await stat(path)).size;
  },
  async permissions(path) {
    return (await stat(path)).mode & 0o777;
  },
  syncDir: syncDirectory,
  lock: async (path) => takeDataDirLock(nodeSqlite, path),
  join: (...parts) => join(...parts),
};
