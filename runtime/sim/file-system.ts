// The FileSystem port for whole-node simulation. Files live in memory, so
// every operation completes as a resolved promise (no real IO to race with
// simulated time), and a crash can choose what survives: a process kill keeps
// everything written (the page cache outlives the process), a power failure
// keeps only what fdatasync made durable. Directory entries (create, rename,
// remove) are durable at once: a weaker adversary than a real disk, stated so
// nobody mistakes it for more.
//
// Paths for which `isReal(path)` holds go to a real FileSystem instead: the
// SQLite backend needs a real file (the driver opens it by name), and the
// snapshot files sit next to it. Calls to it are counted while in flight so
// the simulator can wait for them before it moves time on.

import type { FileHandle, FileSystem, OpenMode } from "../../src/ports.ts";

class MemoryFile {
  data = new Uint8Array(0);
  length = 0;
  durable = new Uint8Array(0);

  bytes(): Uint8Array {
    return this.data.subarray(0, this.length);
  }

  writeAt(chunk: Uint8Array, position: number): void {
    const end = position + chunk.length;
    if (end > this.data.length) {
      const grown = new Uint8Array(Math.max(end, this.data.length * 2, 4096));
      grown.set(this.bytes());
      this.data = grown;
    }
    if (position > this.length) this.data.fill(0, this.length, position);
    this.data.set(chunk, position);
    this.length = Math.max(this.length, end);
  }

  truncate(size: number): void {
    if (size > this.length) this.writeAt(new Uint8Array(size - this.length), this.length);
    this.length = size;
  }
}

export type CrashKind = "kill" | "powerFailure";

/** What every call of a crashed machine's file system fails with. */
export const simulatedCrashMessage = "simulated crash: the process is gone";

export class SimFileSystem implements FileSystem {
  private readonly files = new Map<string, MemoryFile>();
  private readonly dirs = new Set<string>(["/"]);
  private readonly locks = new Set<string>();
  /** Bumped by a crash: handles and locks of an older generation are dead. */
  private generation = 0;
  realInFlight = 0;
  syncCount = 0;
  /** How long an fdatasync takes: set by the simulator for each life of the machine (none: at once). */
  syncLatency: (() => Promise<void>) | undefined;

  /**
   * `serialize` runs real calls one at a time in the order they were made (shared by every
   * simulated machine), so they finish in an order the seed decides, not the thread pool.
   */
  constructor(
    private readonly real: FileSystem,
    private readonly isReal: (path: string) => boolean,
    private readonly serialize: <T>(call: () => Promise<T>) => Promise<T> = (call) => call(),
  ) {}

  /** The machine goes down: open handles die, locks go, and with a power failure unsynced bytes too. */
  crash(kind: CrashKind): void {
    this.generation++;
    this.locks.clear();
    if (kind !== "powerFailure") return;
    for (const file of this.files.values()) {
      file.length = 0;
      file.writeAt(file.durable, 0);
    }
  }

  join(...parts: string[]): string {
    const joined = parts.filter((part) => part !== "").join("/");
    return joined.replace(/\/+/g, "/").replace(/(.)\/$/, "$1");
  }

  private async realCall<T>(call: () => Promise<T>): Promise<T> {
    const generation = this.generation;
    this.realInFlight++;
    try {
      return await this.serialize(call);
    } finally {
      this.realInFlight--;
      // A call that a crash overtook must not look like it succeeded to a dead node.
      if (generation !== this.generation) throw new Error(simulatedCrashMessage);
    }
  }

  private checkAlive(generation: number): void {
    if (generation !== this.generation) throw new Error(simulatedCrashMessage);
  }

  private file(path: string): MemoryFile {
    const file = this.files.get(path);
    if (file === undefined) throw Object.assign(new Error(`ENOENT: no such file, ${path}`), { code: "ENOENT" });
    return file;
  }

  private parent(path: string): string {
    const slash = path.lastIndexOf("/");
    return slash <= 0 ? "/" : path.slice(0, slash);
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    if (this.isReal(path)) return this.countedHandle(await this.realCall(() => this.real.open(path, mode)));
    let file = this.files.get(path);
    if (file === undefined) {
      if (mode === "read") this.file(path);
      if (!this.dirs.has(this.parent(path))) throw new Error(`ENOENT: no directory for ${path}`);
      file = new MemoryFile();
      this.files.set(path, file);
    }
    return this.handle(path, file, mode);
  }

  /** A real file's handle whose every call is counted and serialized like the others. */
  private countedHandle(handle: FileHandle): FileHandle {
    return {
      append: (data) => this.realCall(() => handle.append(data)),
      writeAt: (data, position) => this.realCall(() => handle.writeAt(data, position)),
      readAt: (position, length) => this.realCall(() => handle.readAt(position, length)),
      size: () => this.realCall(() => handle.size()),
      datasync: () => this.realCall(() => handle.datasync()),
      truncate: (size) => this.realCall(() => handle.truncate(size)),
      close: () => this.realCall(() => handle.close()),
    };
  }

  private handle(path: string, file: MemoryFile, mode: OpenMode): FileHandle {
    const generation = this.generation;
    let open = true;
    const usable = () => {
      this.checkAlive(generation);
      // A file renamed or removed while open keeps taking writes, like an inode.
      if (!open) throw new Error(`${path}: file handle closed`);
    };
    const writable = () => {
      usable();
      if (mode === "read") throw new Error(`${path}: opened read-only`);
    };
    return {
      append: async (data) => {
        writable();
        file.writeAt(data, file.length);
      },
      writeAt: async (data, position) => {
        writable();
        file.writeAt(data, mode === "append" ? file.length : position);
      },
      readAt: async (position, length) => {
        usable();
        return file.bytes().slice(position, position + length);
      },
      size: async () => {
        usable();
        return file.length;
      },
      datasync: async () => {
        usable();
        await this.syncLatency?.();
        usable();
        this.syncCount++;
        file.durable = file.bytes().slice();
      },
      truncate: async (size) => {
        writable();
        file.truncate(size);
      },
      close: async () => {
        open = false;
      },
    };
  }

  async readFile(path: string): Promise<Uint8Array> {
    if (this.isReal(path)) return this.realCall(() => this.real.readFile(path));
    return this.file(path).bytes().slice();
  }

  async exists(path: string): Promise<boolean> {
    if (this.isReal(path)) return this.realCall(() => this.real.exists(path));
    return this.files.has(path) || this.dirs.has(path);
  }

  async mkdirp(path: string): Promise<void> {
    if (this.isReal(path)) await this.realCall(() => this.real.mkdirp(path));
    let current = path;
    while (current !== "/" && current !== "" && !this.dirs.has(current)) {
      this.dirs.add(current);
      current = this.parent(current);
    }
  }

  async list(dir: string): Promise<string[]> {
    if (this.isReal(dir)) return this.realCall(() => this.real.list(dir));
    const names = new Set<string>();
    const prefix = `${dir}/`;
    for (const path of [...this.files.keys(), ...this.dirs]) {
      if (!path.startsWith(prefix)) continue;
      const name = path.slice(prefix.length).split("/")[0];
      if (name !== undefined && name !== "") names.add(name);
    }
    return [...names].sort();
  }

  async rename(from: string, to: string): Promise<void> {
    if (this.isReal(from) !== this.isReal(to)) throw new Error(`rename across the simulated and the real disk: ${from} → ${to}`);
    if (this.isReal(from)) return this.realCall(() => this.real.rename(from, to));
    const file = this.file(from);
    this.files.delete(from);
    this.files.set(to, file);
  }

  async remove(path: string): Promise<void> {
    if (this.isReal(path)) return this.realCall(() => this.real.remove(path));
    this.file(path);
    this.files.delete(path);
  }

  async removeAll(path: string): Promise<void> {
    if (this.isReal(path)) return this.realCall(() => this.real.removeAll(path));
    const prefix = `${path}/`;
    for (const name of [...this.files.keys()]) if (name === path || name.startsWith(prefix)) this.files.delete(name);
    for (const name of [...this.dirs]) if (name === path || name.startsWith(prefix)) this.dirs.delete(name);
  }

  async size(path: string): Promise<number> {
    if (this.isReal(path)) return this.realCall(() => this.real.size(path));
    return this.file(path).length;
  }

  async permissions(path: string): Promise<number> {
    if (this.isReal(path)) return this.realCall(() => this.real.permissions(path));
    if (this.dirs.has(path)) return 0o700;
    this.file(path); // throws when missing, as stat does
    return 0o600;
  }

  async syncDir(path: string): Promise<void> {
    if (this.isReal(path)) return this.realCall(() => this.real.syncDir(path));
  }

  async lock(path: string): Promise<{ release(): Promise<void> }> {
    if (this.locks.has(path)) throw new Error(`lock ${path} is held by a live process`);
    this.locks.add(path);
    const generation = this.generation;
    return {
      release: async () => {
        if (generation === this.generation) this.locks.delete(path);
      },
    };
  }
}
