// SQLite on Bun: bun:sqlite (synchronous, prepared statements, BLOBs as Uint8Array).
import { Database, SQLiteError, type Statement } from "bun:sqlite";
import { createPrivateFile } from "../node/private-files.ts";
import type { SqliteDatabase, SqliteDriver, SqliteStatement, SqliteValue } from "../../src/ports.ts";

class BunStatement implements SqliteStatement {
  constructor(private readonly statement: Statement) {}
  run(...params: SqliteValue[]) {
    return { changes: this.statement.run(...params).changes };
  }
  get(...params: SqliteValue[]) {
    return (this.statement.get(...params) ?? undefined) as ReturnType<SqliteStatement["get"]>;
  }
  all(...params: SqliteValue[]) {
    return this.statement.all(...params) as ReturnType<SqliteStatement["all"]>;
  }
}

export const bunSqlite: SqliteDriver = {
  open(path: string): SqliteDatabase {
    if (path !== ":memory:") createPrivateFile(path);
    const db = new Database(path, { create: true, strict: false });
    return {
      exec: (sql) => void db.exec(sql),
      prepare: (sql) => new BunStatement(db.prepare(sql)),
      close: () => db.close(),
    };
  },
  raisedBySqlite: (error) => error instanceof SQLiteError,
};
