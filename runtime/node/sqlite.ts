// SQLite on Node and Deno: node:sqlite, the runtime's own binding (synchronous,
// prepared statements, BLOBs as Uint8Array); no native addon to build or load.
// It reads INTEGERs as numbers and refuses one beyond 2^53 with a RangeError:
// the backend reads int64 columns (lease ids) as text where they are that large.
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { createPrivateFile } from "./private-files.ts";
import type { SqliteDatabase, SqliteDriver, SqliteRow, SqliteStatement, SqliteValue } from "../../src/ports.ts";

class NodeStatement implements SqliteStatement {
  constructor(private readonly statement: StatementSync) {}
  run(...params: SqliteValue[]) {
    return { changes: Number(this.statement.run(...params).changes) };
  }
  get(...params: SqliteValue[]) {
    return this.statement.get(...params) as SqliteRow | undefined;
  }
  all(...params: SqliteValue[]) {
    return this.statement.all(...params) as SqliteRow[];
  }
}

export const nodeSqlite: SqliteDriver = {
  open(path: string): SqliteDatabase {
    if (path !== ":memory:") createPrivateFile(path);
    const db = new DatabaseSync(path);
    return {
      exec: (sql) => void db.exec(sql),
      prepare: (sql) => new NodeStatement(db.prepare(sql)),
      close: () => db.close(),
    };
  },
  raisedBySqlite: (error) => (error as { code?: unknown } | null)?.code === "ERR_SQLITE_ERROR",
};
