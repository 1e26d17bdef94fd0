// The backend: one SQLite connection holding MVCC's revision-keyed rows, the
// meta marks (consistent index, term, compaction marks) and generic buckets
// (lease, auth, members). Writes go into one open SQLite transaction that the
// owner commits every `batchLimit` writes or every batch interval (etcd's
// batched bolt transaction). The raft WAL, not SQLite, makes a write durable,
// so SQLite runs with synchronous=NORMAL; what SQLite must keep is consistency:
// an apply's rows and its consistent index land in the same transaction, so a
// crash leaves both old or both new and re-applying from the WAL is idempotent.
import { crc32c } from "./crc32c.ts";
import type { SqliteDatabase, SqliteDriver, SqliteStatement, SqliteValue } from "../ports.ts";
import type { CrashPoints } from "./crash-points.ts";

/** etcd's default backend batch limit (writes per commit). */
export const backendBatchLimitDefault = 10_000;
/** etcd's default backend batch interval; the timer belongs to the caller. */
export const backendBatchIntervalMsDefault = 100;

/** One stored revision of a key, as the kv table holds it. */
export interface KvRow {
  main: number;
  sub: number;
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  version: number;
  lease: bigint;
  tombstone: boolean;
}

/** A kv row without its value, for rebuilding the key index. */
export interface KvIndexRow {
  main: number;
  sub: number;
  key: Uint8Array;
  createRevision: number;
  version: number;
  lease: bigint;
  tombstone: boolean;
}

const metaBucket = "meta";
const textEncoder = new TextEncoder();
export const metaKeys = {
  consistentIndex: textEncoder.encode("consistent_index"),
  term: textEncoder.encode("term"),
  scheduledCompactRevision: textEncoder.encode("scheduled_compact_revision"),
  finishedCompactRevision: textEncoder.encode("finished_compact_revision"),
} as const;

const emptyBytes = new Uint8Array(0);
const tombstoneByte = new Uint8Array([1]);
const liveByte = new Uint8Array([0]);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
const safeIntegerMax = BigInt(Number.MAX_SAFE_INTEGER);
const safeIntegerMin = -safeIntegerMax;

// Lease ids are random int64s; both drivers return integers as JS numbers, which
// lose precision past 2^53, so such values come back as decimal text instead.
const leaseColumn = `CASE WHEN lease BETWEEN ${-Number.MAX_SAFE_INTEGER} AND ${Number.MAX_SAFE_INTEGER} THEN lease ELSE CAST(lease AS TEXT) END AS lease`;

const schema = `
CREATE TABLE IF NOT EXISTS kv (
  main INTEGER NOT NULL,
  sub INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  tombstone INTEGER NOT NULL,
  PRIMARY KEY (main, sub)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket (
  name TEXT NOT NULL,
  key BLOB NOT NULL,
  value BLOB,
  PRIMARY KEY (name, key)
) WITHOUT ROWID;
`;

/** The database file is damaged: SQLite's quick_check failed, or SQLite refused the file. */
export class BackendCorruptError extends Error {
  constructor(path: string, detail: string) {
    super(`backend: database file ${path} is corrupt (${detail}); refusing to use it (restore this member from a snapshot or replace it)`);
    this.name = "BackendCorruptError";
  }
}

/**
 * SQLite's quick_check of the file at `path` (b-tree structure, page and
 * record formats; O(N), about half a second for 100 MB here). SQLite keeps
 * no page checksums, so a flipped bit inside a stored value passes: only
 * damage to structure is found. Throws BackendCorruptError.
 */
export function verifyDatabaseFile(driver: SqliteDriver, path: string): void {
  let db: SqliteDatabase | undefined;
  let problems: string[];
  try {
    db = driver.open(path);
    problems = db
      .prepare("PRAGMA quick_check(5)")
      .all()
      .map((row) => String(Object.values(row)[0]));
  } catch (error) {
    // Only SQLite's own refusal of the file is damage; a driver that failed to
    // load (a native addon a runtime cannot run, say) is reported as what it is.
    if (!driver.raisedBySqlite(error)) throw error;
    problems = [error instanceof Error ? error.message : String(error)];
  } finally {
    try {
      db?.close();
    } catch {
      // a file SQLite refused may fail to close too; the problem is already recorded
    }
  }
  if (problems.length !== 1 || problems[0] !== "ok") throw new BackendCorruptError(path, problems.join("\n").split("\n").join("; "));
}

export interface BackendOptions {
  /** Writes after which the owner should commit; etcd's default 10000. */
  batchLimit?: number;
  /** Fault injection for tests (backend-before-commit, backend-after-commit). */
  crashPoints?: CrashPoints;
  /** Run verifyDatabaseFile before opening (at start, like etcd's initial corruption check). */
  verify?: boolean;
  /** Each commit took `seconds` (etcd_disk_backend_commit_duration_seconds). */
  observeCommit?: (seconds: number) => void;
}

export class Backend {
  /** Writes in the open transaction, not yet committed. */
  pendingWrites = 0;
  readonly batchLimit: number;
  private inTransaction = false;
  /**
   * The consistent index and term of the last entry applied in the open
   * transaction, written into it just before it commits (two statements per
   * commit instead of two per entry).
   */
  private pendingConsistent: { index: number; term: number } | undefined;
  private closed = false;
  private readonly crashPoints: CrashPoints | undefined;
  private readonly observeCommit: ((seconds: number) => void) | undefined;

  private db: SqliteDatabase;
  private statements: Statements;

  private constructor(
    private readonly driver: SqliteDriver,
    private readonly path: string,
    options: BackendOptions,
  ) {
    this.batchLimit = options.batchLimit ?? backendBatchLimitDefault;
    this.crashPoints = options.crashPoints;
    this.observeCommit = options.observeCommit;
    if (options.verify === true) verifyDatabaseFile(driver, path);
    this.db = driver.open(path);
    this.statements = prepareStatements(this.db);
  }

  /** Opens (creating if missing) the backend database at `path`. */
  static open(driver: SqliteDriver, path: string, options: BackendOptions = {}): Backend {
    return new Backend(driver, path, options);
  }

  // --- transaction ------------------------------------------------------

  private beginWrite(): void {
    if (!this.inTransaction) {
      this.db.exec("BEGIN");
      this.inTransaction = true;
    }
    this.pendingWrites++;
  }

  /** Ends the open batch transaction, if any. */
  commit(): void {
    if (!this.inTransaction) return;
    const consistent = this.pendingConsistent;
    if (consistent !== undefined) {
      this.statements.putBucket.run(metaBucket, metaKeys.consistentIndex, consistent.index);
      this.statements.putBucket.run(metaBucket, metaKeys.term, consistent.term);
      this.pendingConsistent = undefined;
    }
    this.crashPoints?.hit("backend-before-commit");
    const startedMs = performance.now();
    this.db.exec("COMMIT");
    this.observeCommit?.((performance.now() - startedMs) / 1000);
    this.inTransaction = false;
    this.pendingWrites = 0;
    this.crashPoints?.hit("backend-after-commit");
  }

  /** Commits now whatever is pending (etcd's ForceCommit). */
  forceCommit(): void {
    this.commit();
  }

  /** Commits the open batch and closes the connection. */
  close(): void {
    if (this.closed) return;
    this.commit();
    this.closed = true;
    this.db.close();
  }

  /**
   * Makes everything committed so far durable in the database file itself (a
   * full checkpoint of SQLite's write-ahead log, which syncs the file), so
   * that our own WAL may be released up to the consistent index.
   */
  checkpoint(): void {
    this.commit();
    this.statements.checkpoint.get();
  }

  /**
   * Writes a consistent copy of the committed database to `path` (a new file),
   * for a snapshot sent to a member that fell behind.
   */
  copyTo(path: string): void {
    this.commit();
    this.db.exec(`VACUUM INTO '${path.replaceAll("'", "''")}'`);
  }

  /** Rebuilds the database file without free pages (etcd's defragment). */
  defragment(): void {
    this.commit();
    this.db.exec("VACUUM");
  }

  /**
   * A CRC-32C of the whole logical content: every bucket entry (but the
   * member-local consistent index and term) and every key revision, in key
   * order. Members that applied the same entries agree on it (etcd's
   * Maintenance.Hash, which ignores the same meta keys).
   */
  hashContents(): number {
    let hash = 0;
    const number = new Uint8Array(8);
    const numberView = new DataView(number.buffer);
    for (const row of this.statements.listAllBuckets.all()) {
      const name = String(row.name);
      const key = row.key as Uint8Array;
      if (name === metaBucket && (sameBytes(key, metaKeys.consistentIndex) || sameBytes(key, metaKeys.term))) continue;
      hash = crc32c(hash, textEncoder.encode(name));
      hash = crc32c(hash, key);
      const value = row.value;
      hash = crc32c(hash, value instanceof Uint8Array ? value : textEncoder.encode(String(value)));
    }
    for (const rows of this.rowPages(Number.MAX_SAFE_INTEGER)) {
      for (const row of rows) {
        for (const value of [row.main, row.sub, row.createRevision, row.version]) {
          numberView.setFloat64(0, value);
          hash = crc32c(hash, number);
        }
        numberView.setBigInt64(0, row.lease);
        hash = crc32c(hash, number);
        hash = crc32c(hash, row.tombstone ? tombstoneByte : liveByte);
        hash = crc32c(hash, row.key);
        hash = crc32c(hash, row.value);
      }
    }
    return hash;
  }

  /** Every row with main <= maxMain, oldest first, `pageRows` at a time (each page one query). */
  *rowPages(maxMain: number, pageRows = 1000): Generator<KvRow[]> {
    for (let after = { main: 0, sub: 0 }; ; ) {
      const rows = this.scanRows(after.main, after.sub, maxMain, pageRows);
      if (rows.length > 0) yield rows;
      if (rows.length < pageRows) return;
      const last = rows[rows.length - 1] as KvRow;
      after = { main: last.main, sub: last.sub };
    }
  }

  /**
   * Closes the connection, lets `replace` put another database file in place
   * of ours (the snapshot a follower received), and opens it. The open batch
   * is committed first.
   */
  /** Checks another database file (a received snapshot) with this backend's driver; throws BackendCorruptError. */
  verifyOtherFile(path: string): void {
    verifyDatabaseFile(this.driver, path);
  }

  async reopenAfter(replace: (path: string) => Promise<void>): Promise<void> {
    this.commit();
    this.db.close();
    try {
      await replace(this.path);
    } finally {
      this.db = this.driver.open(this.path);
      this.statements = prepareStatements(this.db);
    }
  }

  /**
   * Closes the connection WITHOUT committing the open batch, as a process crash
   * would: the batch is rolled back. For crash tests, the simulator, and a
   * member stopped by a bug in apply. Rolled back explicitly: bun:sqlite's
   * close leaves a connection with live statements open, and with it the
   * batch and its write lock.
   */
  crash(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.inTransaction) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // A connection that cannot roll back is closed all the same: SQLite rolls back at the next open.
      }
    }
    this.inTransaction = false;
    this.pendingWrites = 0;
    this.pendingConsistent = undefined;
    this.db.close();
  }

  // --- kv rows ----------------------------------------------------------

  putKv(
    main: number,
    sub: number,
    key: Uint8Array,
    value: Uint8Array,
    createRevision: number,
    version: number,
    lease: bigint,
    tombstone: boolean,
  ): void {
    this.beginWrite();
    this.statements.insertKv.run(main, sub, key, value, createRevision, version, bindInt64(lease), tombstone ? 1 : 0);
  }

  /** The row stored at revision (main, sub), or undefined. */
  getKv(main: number, sub: number): KvRow | undefined {
    const row = this.statements.selectKv.get(main, sub);
    if (row === undefined) return undefined;
    return {
      main,
      sub,
      key: row.key as Uint8Array,
      value: (row.value as Uint8Array | null) ?? emptyBytes,
      createRevision: row.create_revision as number,
      version: row.version as number,
      lease: readInt64(row.lease ?? 0),
      tombstone: row.tombstone === 1,
    };
  }

  deleteKvRevision(main: number, sub: number): void {
    this.beginWrite();
    this.statements.deleteKv.run(main, sub);
  }

  /** Up to `limit` rows after (afterMain, afterSub) in revision order, values left out. */
  scanIndexRows(afterMain: number, afterSub: number, limit: number): KvIndexRow[] {
    const rows = this.statements.scanKvIndex.all(afterMain, afterSub, limit);
    return rows.map((row) => ({
      main: row.main as number,
      sub: row.sub as number,
      key: row.key as Uint8Array,
      createRevision: row.create_revision as number,
      version: row.version as number,
      lease: readInt64(row.lease ?? 0),
      tombstone: row.tombstone === 1,
    }));
  }

  /** Up to `limit` whole rows after (afterMain, afterSub) with main <= maxMain. */
  scanRows(afterMain: number, afterSub: number, maxMain: number, limit: number): KvRow[] {
    const rows = this.statements.scanKvFull.all(afterMain, afterSub, maxMain, limit);
    return rows.map((row) => ({
      main: row.main as number,
      sub: row.sub as number,
      key: row.key as Uint8Array,
      value: (row.value as Uint8Array | null) ?? emptyBytes,
      createRevision: row.create_revision as number,
      version: row.version as number,
      lease: readInt64(row.lease ?? 0),
      tombstone: row.tombstone === 1,
    }));
  }

  /** Up to `limit` revisions after (afterMain, afterSub) with main <= maxMain. */
  scanRevisions(afterMain: number, afterSub: number, maxMain: number, limit: number): { main: number; sub: number }[] {
    return this.statements.scanKvRevisions.all(afterMain, afterSub, maxMain, limit) as unknown as { main: number; sub: number }[];
  }

  // --- buckets ----------------------------------------------------------

  bucketPut(name: string, key: Uint8Array, value: Uint8Array | number): void {
    this.beginWrite();
    this.statements.putBucket.run(name, key, value);
  }

  bucketGet(name: string, key: Uint8Array): Uint8Array | undefined {
    const row = this.statements.getBucket.get(name, key);
    return row === undefined ? undefined : (row.value as Uint8Array);
  }

  bucketDelete(name: string, key: Uint8Array): void {
    this.beginWrite();
    this.statements.deleteBucket.run(name, key);
  }

  /** Every entry of a bucket in key order. */
  bucketEntries(name: string): [Uint8Array, Uint8Array][] {
    return this.statements.listBucket.all(name).map((row) => [row.key as Uint8Array, row.value as Uint8Array]);
  }

  // --- meta -------------------------------------------------------------

  /** A number kept in the meta bucket, `absent` when there is none. */
  metaNumber(key: Uint8Array, absent = 0): number {
    const row = this.statements.getBucket.get(metaBucket, key);
    if (row === undefined || row.value === null || row.value === undefined) return absent;
    return Number(row.value);
  }

  setMetaNumber(key: Uint8Array, value: number): void {
    this.beginWrite();
    this.statements.putBucket.run(metaBucket, key, value);
  }

  /**
   * Records the raft index and term of the entry being applied. They go into
   * the SAME transaction as that entry's data (written when it commits, so a
   * batch writes them once): that pairing is what makes re-applying after a
   * crash idempotent.
   */
  setConsistentIndex(index: number, term: number): void {
    if (this.pendingConsistent === undefined) {
      this.beginWrite();
      this.pendingConsistent = { index, term };
      return;
    }
    this.pendingConsistent.index = index;
    this.pendingConsistent.term = term;
  }

  consistentIndex(): number {
    return this.pendingConsistent?.index ?? this.metaNumber(metaKeys.consistentIndex);
  }

  /** Term of the entry at the consistent index. */
  consistentTerm(): number {
    return this.pendingConsistent?.term ?? this.metaNumber(metaKeys.term);
  }

  // --- size -------------------------------------------------------------

  /** Size of the database file in bytes (page_count × page_size). */
  sizeBytes(): number {
    return this.pragmaNumber(this.statements.pageCount) * this.pragmaNumber(this.statements.pageSize);
  }

  /** Bytes in use: the file size less its free pages. */
  sizeInUseBytes(): number {
    const pages = this.pragmaNumber(this.statements.pageCount) - this.pragmaNumber(this.statements.freelistCount);
    return pages * this.pragmaNumber(this.statements.pageSize);
  }

  private pragmaNumber(statement: SqliteStatement): number {
    const row = statement.get();
    if (row === undefined) return 0;
    const value = Object.values(row)[0];
    return Number(value ?? 0);
  }
}

/** Binds an int64 as a number when exact, as a bigint otherwise. */
function bindInt64(value: bigint): SqliteValue {
  if (value >= safeIntegerMin && value <= safeIntegerMax) return Number(value);
  return value;
}

function readInt64(value: SqliteValue): bigint {
  if (value === 0) return 0n;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") return BigInt(value);
  return 0n;
}

type Statements = ReturnType<typeof prepareStatements>;

function prepareStatements(db: SqliteDatabase) {
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=NORMAL");
  db.exec(schema);
  return {
    insertKv: db.prepare(
      "INSERT OR REPLACE INTO kv (main, sub, key, value, create_revision, version, lease, tombstone) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    selectKv: db.prepare(
      `SELECT key, value, create_revision, version, ${leaseColumn}, tombstone FROM kv WHERE main = ? AND sub = ?`,
    ),
    deleteKv: db.prepare("DELETE FROM kv WHERE main = ? AND sub = ?"),
    scanKvIndex: db.prepare(
      `SELECT main, sub, key, create_revision, version, ${leaseColumn}, tombstone FROM kv WHERE (main, sub) > (?, ?) ORDER BY main, sub LIMIT ?`,
    ),
    scanKvFull: db.prepare(
      `SELECT main, sub, key, value, create_revision, version, ${leaseColumn}, tombstone FROM kv WHERE (main, sub) > (?, ?) AND main <= ? ORDER BY main, sub LIMIT ?`,
    ),
    scanKvRevisions: db.prepare(
      "SELECT main, sub FROM kv WHERE (main, sub) > (?, ?) AND main <= ? ORDER BY main, sub LIMIT ?",
    ),
    putBucket: db.prepare("INSERT OR REPLACE INTO bucket (name, key, value) VALUES (?, ?, ?)"),
    getBucket: db.prepare("SELECT value FROM bucket WHERE name = ? AND key = ?"),
    deleteBucket: db.prepare("DELETE FROM bucket WHERE name = ? AND key = ?"),
    listBucket: db.prepare("SELECT key, value FROM bucket WHERE name = ? ORDER BY key"),
    pageCount: db.prepare("PRAGMA page_count"),
    pageSize: db.prepare("PRAGMA page_size"),
    freelistCount: db.prepare("PRAGMA freelist_count"),
    checkpoint: db.prepare("PRAGMA wal_checkpoint(FULL)"),
    listAllBuckets: db.prepare("SELECT name, key, value FROM bucket ORDER BY name, key"),
  };
}
