// Contract suite of the runtime ports: one body, run against the runtime under
// test (the runner runs this file under Node and under Bun).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { Runtime } from "../../src/ports.ts";
import { runtimeName, testRuntime, typeScriptCommand } from "../support/runtime.ts";

const runtime: Runtime = await testRuntime();
const { fs } = runtime;
const root = mkdtempSync(join(tmpdir(), "edgetcd-ports-"));
after(() => fs.removeAll(root));

const bytes = (...values: number[]) => new Uint8Array(values);
let counter = 0;
const freshDir = async () => {
  const dir = fs.join(root, `case-${counter++}`);
  await fs.mkdirp(dir);
  return dir;
};

describe(`FileSystem port (${runtime.name})`, () => {
  test("runtime name matches the host", () => {
    assert.equal(runtime.name, runtimeName);
  });

  test("append + datasync, then a reopen sees the data", async () => {
    const path = fs.join(await freshDir(), "log");
    const file = await fs.open(path, "append");
    await file.append(bytes(1, 2, 3));
    await file.append(bytes(4, 5));
    await file.datasync();
    assert.equal(await file.size(), 5);
    await file.close();
    const reopened = await fs.open(path, "append");
    await reopened.append(bytes(6));
    await reopened.close();
    assert.deepEqual(await fs.readFile(path), bytes(1, 2, 3, 4, 5, 6));
    const reader = await fs.open(path, "read");
    assert.deepEqual(await reader.readAt(0, 6), bytes(1, 2, 3, 4, 5, 6));
    await reader.close();
  });

  test("writeAt and readAt are positional; readAt is short only at end of file", async () => {
    const path = fs.join(await freshDir(), "data");
    const file = await fs.open(path, "readwrite");
    await file.writeAt(bytes(9, 9, 9, 9), 0);
    await file.writeAt(bytes(7, 7), 1);
    await file.writeAt(bytes(5), 10); // past the end: a hole of zeros
    assert.deepEqual(await file.readAt(0, 4), bytes(9, 7, 7, 9));
    assert.deepEqual(await file.readAt(8, 100), bytes(0, 0, 5));
    assert.deepEqual(await file.readAt(50, 4), bytes());
    assert.equal(await file.size(), 11);
    await file.close();
  });

  test("truncate shrinks a file and size reports it (handle and path)", async () => {
    const path = fs.join(await freshDir(), "t");
    const file = await fs.open(path, "readwrite");
    await file.writeAt(new Uint8Array(1000).fill(3), 0);
    await file.truncate(10);
    await file.datasync();
    assert.equal(await file.size(), 10);
    await file.close();
    assert.equal(await fs.size(path), 10);
    assert.deepEqual(await fs.readFile(path), new Uint8Array(10).fill(3));
  });

  test("exists, rename + syncDir, remove", async () => {
    const dir = await freshDir();
    const from = fs.join(dir, "a.tmp");
    const to = fs.join(dir, "a");
    const file = await fs.open(from, "append");
    await file.append(bytes(1));
    await file.datasync();
    await file.close();
    await fs.rename(from, to);
    await fs.syncDir(dir);
    assert.equal(await fs.exists(from), false);
    assert.equal(await fs.exists(to), true);
    assert.equal(await fs.exists(dir), true);
    assert.deepEqual(await fs.readFile(to), bytes(1));
    await fs.remove(to);
    assert.equal(await fs.exists(to), false);
    await assert.rejects(fs.readFile(to));
  });

  test("list returns sorted names, not paths", async () => {
    const dir = await freshDir();
    for (const name of ["b", "0000000000000002-0000000000000010.wal", "a", "0000000000000001-0000000000000001.wal"]) {
      const file = await fs.open(fs.join(dir, name), "append");
      await file.close();
    }
    await fs.mkdirp(fs.join(dir, "sub", "deeper"));
    assert.deepEqual(await fs.list(dir), [
      "0000000000000001-0000000000000001.wal",
      "0000000000000002-0000000000000010.wal",
      "a",
      "b",
      "sub",
    ]);
  });

  test("removeAll removes a tree and ignores a missing path", async () => {
    const dir = await freshDir();
    const tree = fs.join(dir, "x");
    await fs.mkdirp(fs.join(tree, "y", "z"));
    const file = await fs.open(fs.join(tree, "y", "z", "f"), "append");
    await file.append(bytes(1));
    await file.close();
    await fs.removeAll(tree);
    assert.equal(await fs.exists(tree), false);
    await fs.removeAll(tree);
    assert.deepEqual(await fs.list(dir), []);
  });

  test("lock refuses a second holder in this process and can be retaken after release", async () => {
    const path = fs.join(await freshDir(), "lock");
    const lock = await fs.lock(path);
    await assert.rejects(fs.lock(path), /held/);
    await lock.release();
    const again = await fs.lock(path);
    await again.release();
  });

  test("lock refuses while another process holds it, naming it; a holder killed with SIGKILL leaves nothing behind", async () => {
    const path = fs.join(await freshDir(), "lock.db");
    const script = new URL("./lock-holder.ts", import.meta.url).pathname;
    const [program, args] = typeScriptCommand(script, [path]);
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("locked") && resolve());
        child.on("exit", (code) => reject(new Error(`lock holder exited early with ${code}`)));
      });
      await assert.rejects(fs.lock(path), new RegExp(`held by pid ${child.pid} on host ${hostname()} since \\d{4}-`));
    } finally {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
    }
    // The kernel dropped the dead holder's lock; its holder file is stale and does not block.
    assert.equal(await fs.exists(`${path}.holder`), true);
    const lock = await fs.lock(path);
    await lock.release();
  });

  test("lock files are 0600 and the lock keeps no journal beside it", async () => {
    const dir = await freshDir();
    const lock = await fs.lock(fs.join(dir, "lock.db"));
    try {
      assert.deepEqual(await fs.list(dir), ["lock.db", "lock.db.holder"]);
      for (const name of await fs.list(dir)) assert.equal(await fs.permissions(fs.join(dir, name)), 0o600, name);
    } finally {
      await lock.release();
    }
  });

  test("files are created 0600 and directories 0700", async () => {
    const dir = fs.join(await freshDir(), "a", "b");
    await fs.mkdirp(dir);
    assert.equal(await fs.permissions(dir), 0o700);
    assert.equal(await fs.permissions(fs.join(dir, "..")), 0o700);
    for (const mode of ["append", "readwrite"] as const) {
      const file = await fs.open(fs.join(dir, mode), mode);
      await file.close();
      assert.equal(await fs.permissions(fs.join(dir, mode)), 0o600);
    }
    const db = runtime.sqlite.open(fs.join(dir, "db"));
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("CREATE TABLE t (x)");
    for (const name of ["db", "db-wal", "db-shm"]) assert.equal(await fs.permissions(fs.join(dir, name)), 0o600, name);
    db.close();
  });
});

describe(`SQLite port (${runtime.name})`, () => {
  test("BLOB keys and values round-trip, changes counts, explicit transactions", async () => {
    const db = runtime.sqlite.open(fs.join(await freshDir(), "db.sqlite"));
    try {
      db.exec("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, revision INTEGER NOT NULL)");
      const insert = db.prepare("INSERT INTO kv (key, value, revision) VALUES (?, ?, ?)");
      const key = bytes(0, 1, 255, 128);
      const value = bytes(0, 0, 7, 200, 13);
      assert.equal(insert.run(key, value, 1).changes, 1);

      const row = db.prepare("SELECT key, value, revision FROM kv WHERE key = ?").get(key);
      assert.ok(row);
      assert.ok(row.key instanceof Uint8Array);
      assert.ok(row.value instanceof Uint8Array);
      assert.deepEqual(new Uint8Array(row.key), key);
      assert.deepEqual(new Uint8Array(row.value), value);
      assert.equal(Number(row.revision), 1);
      assert.equal(db.prepare("SELECT key FROM kv WHERE key = ?").get(bytes(9)), undefined);

      db.exec("BEGIN");
      for (let i = 0; i < 5; i++) insert.run(bytes(1, i), bytes(i), i + 2);
      db.exec("COMMIT");
      assert.equal(db.prepare("UPDATE kv SET revision = revision + 100 WHERE revision > ?").run(3).changes, 3);
      const all = db.prepare("SELECT key FROM kv ORDER BY key").all();
      assert.equal(all.length, 6);

      db.exec("BEGIN");
      insert.run(bytes(2), bytes(2), 99);
      db.exec("ROLLBACK");
      assert.equal(db.prepare("SELECT key FROM kv WHERE key = ?").get(bytes(2)), undefined);
    } finally {
      db.close();
    }
  });

  test("integers up to 2^53-1 round-trip exactly", async () => {
    const db = runtime.sqlite.open(fs.join(await freshDir(), "int.sqlite"));
    try {
      db.exec("CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
      const values = [0, 1, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1];
      for (const value of values) db.prepare("INSERT INTO meta VALUES (?, ?)").run(`v${value}`, value);
      for (const value of values) {
        const row = db.prepare("SELECT value FROM meta WHERE name = ?").get(`v${value}`);
        assert.equal(Number(row?.value), value);
      }
    } finally {
      db.close();
    }
  });
});

describe(`Clock and Random ports (${runtime.name})`, () => {
  test("nowMs is monotonic and timers fire", async () => {
    const { clock } = runtime;
    let previous = clock.nowMs();
    for (let i = 0; i < 1000; i++) {
      const now = clock.nowMs();
      assert.ok(now >= previous);
      previous = now;
    }
    const start = clock.nowMs();
    await new Promise<void>((resolve) => clock.setTimer(5, resolve));
    assert.ok(clock.nowMs() - start >= 4);
    let cancelledFired = false;
    clock.setTimer(1, () => (cancelledFired = true)).cancel();
    await new Promise<void>((resolve) => clock.setTimer(10, resolve));
    assert.equal(cancelledFired, false);
    assert.ok(Math.abs(clock.wallMs() - Date.now()) < 1000);
  });

  test("random.int stays within [0, bound) and bytes has the length asked", () => {
    const { random } = runtime;
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const value = random.int(7);
      assert.ok(Number.isInteger(value) && value >= 0 && value < 7);
      seen.add(value);
    }
    assert.equal(seen.size, 7);
    assert.equal(random.int(1), 0);
    const noise = random.bytes(32);
    assert.ok(noise instanceof Uint8Array);
    assert.equal(noise.length, 32);
  });
});
