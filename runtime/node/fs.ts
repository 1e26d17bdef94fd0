// The FileSystem port on Node: node:fs/promises, with fdatasync for durability
// and a pid lock file so two nodes never share one data directory.
import { constants } from "node:fs";
import { type FileHandle as NodeFileHandle, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FileHandle, FileSystem, OpenMode } from "../../src/ports.ts";

/** Node's open flags for each port mode. */
const openFlags: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  append: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
  readwrite: constants.O_RDWR | constants.O_CREAT,
};

export class NodeFile implements FileHandle {
  constructor(private readonly handle: NodeFileHandle) {}

  async append(data: Uint8Array): Promise<void> {
    // With O_APPEND the kernel puts every write at the end; position null keeps
    // it that way and loops on short writes.
    let written = 0;
    while (written < data.length) {
      const result = await this.handle.write(data, written, data.length - written, null);
      written += result.bytesWritten;
    }
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    let written = 0;
    while (written < data.length) {
      const result = await this.handle.write(data, written, data.length - written, position + written);
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

/** True if a process with this pid exists (EPERM means it exists but is not ours). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the lock file at `path`: created exclusively, holding our pid. A lock
 * left by a dead process is stale and taken over. Shared by the Node and Bun ports.
 */
async function takeLock(path: string): Promise<{ release(): Promise<void> }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: "wx" });
      const file = await open(path, "r");
      await file.sync().finally(() => file.close());
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt((await readFile(path, "utf8").catch(() => "")).trim(), 10);
    if (holder === process.pid || processAlive(holder)) {
      throw new Error(`lock ${path} is held by live process ${holder}`);
    }
    // Stale: its holder died without releasing. Remove and retry the exclusive create,
    // so two processes racing for a stale lock still end with one winner.
    await unlink(path).catch(() => undefined);
  }
  throw new Error(`lock ${path}: could not take over a stale lock`);
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
    return new NodeFile(await open(path, openFlags[mode]));
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
    await mkdir(path, { recursive: true });
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
  syncDir: syncDirectory,
  lock: takeLock,
  join: (...parts) => join(...parts),
};
