// Disk faults (scorecard D4, D5): damage that is not a torn WAL tail is always
// detected and stops the member with a clear message instead of serving wrong
// data; a failing fdatasync stops the member before it acknowledges anything,
// and it is consistent after a restart. (Torn tails and mid-log bit flips of
// the WAL itself: test/storage/wal.test.ts.)
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotFiles } from "../../src/server/snapshot-files.ts";
import { Backend, BackendCorruptError } from "../../src/storage/backend.ts";
import { testRuntime } from "../support/runtime.ts";
import { startEdgetcd, tempDir } from "../support/processes.ts";
import { backendWithKeys, damagePages, failingSyncRound, flipBytes, pageCount } from "./disk-scenarios.ts";
import { connect } from "./history.ts";

const runtime = await testRuntime();
const root = mkdtempSync(join(tmpdir(), "edgetcd-disk-faults-"));
after(() => runtime.fs.removeAll(root));
let counter = 0;
const freshDir = () => join(root, `d${counter++}`);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Damages the b-tree page headers of pages 2.. of a database file (every third one). */
function damageEveryThirdPage(path: string): void {
  const pages = pageCount(path);
  assert.ok(pages > 4, `the database has ${pages} pages`);
  damagePages(path, Array.from({ length: pages }, (_, page) => page).filter((page) => page >= 2 && (page - 2) % 3 === 0));
}

describe("disk faults", () => {
  test("D4: a backend with damaged pages is refused at open (quick_check), an intact one opens", () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "db");
    backendWithKeys(runtime, path, 200);
    const intact = Backend.open(runtime.sqlite, path, { verify: true });
    assert.equal(intact.consistentIndex(), 200);
    intact.close();
    damageEveryThirdPage(path);
    assert.throws(() => Backend.open(runtime.sqlite, path, { verify: true }), (error: unknown) => {
      assert.ok(error instanceof BackendCorruptError, String(error));
      assert.match(error.message, /database file .* is corrupt .*refusing to use it/);
      return true;
    });
  });

  test("D4: garbage in place of a database is refused", () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "db");
    writeFileSync(path, new Uint8Array(64 * 1024).fill(0x5a));
    assert.throws(() => Backend.open(runtime.sqlite, path, { verify: true }), BackendCorruptError);
  });

  test("a SQLite driver that fails to load is reported as that, never as a corrupt database", () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "db");
    backendWithKeys(runtime, path, 10);
    const unloadable = {
      open(): never {
        throw new Error("Cannot load native addon: this runtime does not support it");
      },
      raisedBySqlite: runtime.sqlite.raisedBySqlite,
    };
    assert.throws(() => Backend.open(unloadable, path, { verify: true }), (error: unknown) => {
      assert.ok(!(error instanceof BackendCorruptError), String(error));
      assert.match(String(error), /Cannot load native addon/);
      return true;
    });
    // The file is intact: the real driver still opens it.
    const intact = Backend.open(runtime.sqlite, path, { verify: true });
    assert.equal(intact.consistentIndex(), 10);
    intact.close();
  });

  test("D4: a damaged received snapshot (db.incoming) is refused before the swap; the backend keeps its data", async () => {
    const dir = freshDir();
    await runtime.fs.mkdirp(dir);
    const backend = Backend.open(runtime.sqlite, join(dir, "db"));
    backend.putKv(2, 0, encoder.encode("mine"), encoder.encode("v"), 2, 1, 0n, false);
    backend.setConsistentIndex(7, 1);
    backend.commit();
    const leaderPath = join(dir, "leader.db");
    backendWithKeys(runtime, leaderPath, 200);
    const files = new SnapshotFiles(runtime.fs, dir);
    await files.persistIncoming(readFileSync(leaderPath));
    damageEveryThirdPage(files.incoming);
    await assert.rejects(files.swapIn(backend), BackendCorruptError);
    assert.equal(backend.consistentIndex(), 7);
    assert.equal(decoder.decode(backend.getKv(2, 0)?.value), "v");
    // At start, recovery refuses it too (the WAL names a snapshot newer than the backend).
    await assert.rejects(files.recover(backend, 300), BackendCorruptError);
    assert.equal(backend.consistentIndex(), 7);
    // An intact one swaps in.
    await files.persistIncoming(readFileSync(leaderPath));
    await files.swapIn(backend);
    assert.equal(backend.consistentIndex(), 200);
    backend.close();
  });

  test("D4: a real node refuses to start on a damaged backend page or a bit flip mid-WAL, exit 1 with a clear message", { timeout: 120_000 }, async () => {
    for (const damage of ["backend", "wal"] as const) {
      const dataDir = join(tempDir("edgetcd-d4"), "data");
      const server = await startEdgetcd({ dataDir, readyTimeoutMs: 60_000 });
      const { kv } = connect(server.endpoint);
      for (let i = 0; i < 300; i++) await kv.put({ key: encoder.encode(`k${i}`), value: new Uint8Array(300).fill(i % 251) });
      await server.stop();
      if (damage === "backend") {
        damageEveryThirdPage(join(dataDir, "member/snap/db"));
      } else {
        const walDir = join(dataDir, "member/wal");
        const segment = readdirSync(walDir).filter((name) => name.endsWith(".wal")).sort()[0] as string;
        const size = statSync(join(walDir, segment)).size;
        flipBytes(join(walDir, segment), Math.floor(size / 2), 1);
      }
      const error = await startEdgetcd({ dataDir, readyTimeoutMs: 60_000 }).then(
        async (restarted) => {
          await restarted.kill();
          return undefined;
        },
        (failure: unknown) => String(failure),
      );
      assert.ok(error !== undefined, `${damage}: the node started on damaged data`);
      assert.match(error, /exited with 1 before ready/, error);
      assert.match(error, damage === "backend" ? /backend: database file .* is corrupt/ : /wal: corrupt record/, error);
    }
  });

  test("D5: a failing fdatasync stops the server before it acknowledges; consistent after restart", async () => {
    const outcome = await failingSyncRound(runtime, freshDir(), 20, 5);
    assert.deepEqual(outcome.broken, []);
    assert.equal(outcome.acknowledged, 20);
  });
});
