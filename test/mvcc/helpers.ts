// Shared helpers of the MVCC tests: a backend and store in a fresh temp dir.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MvccStore, type MvccStoreOptions } from "../../src/mvcc/store.ts";
import type { SqliteDriver } from "../../src/ports.ts";
import { Backend, type BackendOptions } from "../../src/storage/backend.ts";
import { testRuntime } from "../support/runtime.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const bytes = (text: string): Uint8Array => encoder.encode(text);
export const text = (value: Uint8Array): string => decoder.decode(value);

export interface TestDir {
  path: string;
  dbPath: string;
  sqlite: SqliteDriver;
  remove(): void;
}

export async function tempDir(): Promise<TestDir> {
  const runtime = await testRuntime();
  const path = mkdtempSync(join(tmpdir(), "edgetcd-mvcc-"));
  return {
    path,
    dbPath: join(path, "db"),
    sqlite: runtime.sqlite,
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

export function openStore(
  dir: TestDir,
  storeOptions: MvccStoreOptions = {},
  backendOptions: BackendOptions = {},
): { backend: Backend; store: MvccStore } {
  const backend = Backend.open(dir.sqlite, dir.dbPath, backendOptions);
  const store = new MvccStore(backend, storeOptions);
  return { backend, store };
}

/** Puts in one write txn; returns the txn's revision. */
export function put(store: MvccStore, key: string, value: string, lease = 0n): number {
  const txn = store.write();
  txn.put(bytes(key), bytes(value), lease);
  return txn.end();
}

/** Deletes [key, end) in one write txn; returns how many. */
export function del(store: MvccStore, key: string, end?: string): number {
  const txn = store.write();
  const deleted = txn.deleteRange(bytes(key), end === undefined ? undefined : bytes(end));
  txn.end();
  return deleted;
}

/** Key, value, create, mod, version of every kv, for compact assertions. */
export function summary(kvs: { key: Uint8Array; value: Uint8Array; createRevision: bigint; modRevision: bigint; version: bigint }[]) {
  return kvs.map((kv) => `${text(kv.key)}=${text(kv.value)}@c${kv.createRevision}m${kv.modRevision}v${kv.version}`);
}
