// The data-dir lock, shared by the Node and Bun ports: an OS file lock, so the
// kernel drops it when its holder dies (kill -9 included) and it holds across
// PID namespaces on one host (two containers on one volume). Node has no flock,
// so SQLite takes fcntl locks for us: the lock file is opened as a SQLite
// database in exclusive locking mode and an exclusive transaction is begun and
// never ended while the process holds the lock (issue 25).
//
// fcntl locks belong to the process, and closing any fd of the file drops them
// all: nothing else may open the lock file. SQLite shares one fd per file among
// its connections in a process, so a second connection here is refused, not
// mistaken for the holder.
//
// Who holds it is written to a side file after the lock is taken, for the
// refusal message only: it is read only when the lock is refused, so a stale
// one never blocks anyone.
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import type { SqliteDatabase, SqliteDriver } from "../../src/ports.ts";
import { createPrivateFile, privateFileMode } from "./private-files.ts";

/** The longest holder description read back from the side file (it is ours and tiny; bound it anyway). */
const holderTextBytesMax = 512;

/**
 * Locks held by this process, by path. Holding the connection here also keeps
 * it from being garbage-collected: a driver closes a collected database, and
 * with it the lock.
 */
const held = new Map<string, SqliteDatabase>();

export function holderFileOf(path: string): string {
  return `${path}.holder`;
}

/** Takes the lock at `path` or throws, at once, naming the holder when it can. */
export function takeDataDirLock(sqlite: SqliteDriver, path: string): { release(): Promise<void> } {
  if (held.has(path)) throw new Error(`lock ${path} is held by this process (pid ${process.pid})`);
  createPrivateFile(path);
  let db: SqliteDatabase | undefined;
  try {
    db = sqlite.open(path);
    // busy_timeout 0: a second process is refused at once instead of waiting.
    db.exec("PRAGMA busy_timeout = 0");
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    // The journal stays in memory: nothing is ever written, and no -journal file appears.
    db.exec("PRAGMA journal_mode = MEMORY");
    db.exec("BEGIN EXCLUSIVE");
  } catch (error) {
    db?.close();
    if (isBusy(error)) throw new Error(`lock ${path} is ${describeHolder(path)}; another edgetcd is using this data directory`);
    throw new Error(`lock ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  held.set(path, db);
  writeHolder(path);
  const locked = db;
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      held.delete(path);
      try {
        unlinkSync(holderFileOf(path));
      } catch {
        // Missing or not ours to remove: it is only ever read for a message.
      }
      // Closing ends the transaction and drops the fcntl locks.
      locked.close();
    },
  };
}

function isBusy(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === "SQLITE_BUSY" || (typeof message === "string" && /database is locked/.test(message));
}

/** Writes "pid host since" beside the lock, atomically (a reader never sees half of it). */
function writeHolder(path: string): void {
  const holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const temporary = `${holderFileOf(path)}.tmp`;
  try {
    writeFileSync(temporary, `${JSON.stringify(holder)}\n`, { mode: privateFileMode });
    renameSync(temporary, holderFileOf(path));
  } catch {
    // Only the refusal message of another process depends on it.
  }
}

function describeHolder(path: string): string {
  let text: string;
  try {
    text = readFileSync(holderFileOf(path), "utf8").slice(0, holderTextBytesMax);
  } catch {
    return "held by another process";
  }
  try {
    const { pid, host, since } = JSON.parse(text) as { pid?: unknown; host?: unknown; since?: unknown };
    if (typeof pid === "number" && typeof host === "string" && typeof since === "string") return `held by pid ${pid} on host ${host} since ${since}`;
  } catch {
    // Written by a holder that died mid-write, or not ours: no name to give.
  }
  return "held by another process";
}
