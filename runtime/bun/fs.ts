// The FileSystem port on Bun. Whole-file reads and writes use Bun's native
// Bun.file/Bun.write; positional IO writes straight to the page cache with the
// synchronous node:fs calls (no thread-pool round trip for a memcpy), while
// fdatasync/fsync stay asynchronous so other callers can queue up behind a sync
// (that queue is what group commit batches).
import { constants, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import type { FileHandle, FileSystem, OpenMode } from "../../src/ports.ts";
import { takeDataDirLock } from "../node/data-dir-lock.ts";
import { privateFileMode } from "../node/private-files.ts";
import { nodeFileSystem } from "../node/fs.ts";
import { bunSqlite } from "./sqlite.ts";

const openFlags: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  append: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
  readwrite: constants.O_RDWR | constants.O_CREAT,
};

type NodePromiseHandle = Awaited<ReturnType<typeof open>>;

class BunFileHandle implements FileHandle {
  constructor(private readonly handle: NodePromiseHandle) {}

  async append(data: Uint8Array): Promise<void> {
    let written = 0;
    while (written < data.length) {
      written += writeSync(this.handle.fd, data, written, data.length - written, null);
    }
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    let written = 0;
    while (written < data.length) {
      written += writeSync(this.handle.fd, data, written, data.length - written, position + written);
    }
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    const buffer = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const bytesRead = readSync(this.handle.fd, buffer, filled, length - filled, position + filled);
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

// Directory operations are node:fs calls Bun implements; file handles and
// whole-file reads use Bun's own APIs, and the lock bun:sqlite.
export const bunFileSystem: FileSystem = {
  ...nodeFileSystem,
  async open(path, mode) {
    return new BunFileHandle(await open(path, openFlags[mode], privateFileMode));
  },
  async readFile(path) {
    return await Bun.file(path).bytes();
  },
  lock: async (path) => takeDataDirLock(bunSqlite, path),
};
