// SQLite on Node: better-sqlite3 (synchronous, prepared statements, BLOBs as Buffer).
import Database from "better-sqlite3";
import { createPrivateFile } from "./private-files.ts";
import type { SqliteDatabase, SqliteDriver, SqliteStatement, SqliteValue } from "../../src/ports.ts";

class NodeStatement implements SqliteStatement {
  constructor(private readonly statement: Database.Statement) {}
  run(...params: SqliteValue[]) {
    return { changes: this.statement.run(...params).changes };
  }
  get(...params: SqliteValue[]) {
    return this.statement.get(...params) as ReturnType<SqliteStatement["get"]>;
  }
  all(...params: SqliteValue[]) {
    return this.statement.all(...params) as ReturnType<SqliteStatement["all"]>;
  }
}

export const nodeSqlite: SqliteDriver = {
  open(path: string): SqliteDatabase {
    if (path !== ":memory:") createPrivateFile(path);
    const db = new Database(path);
    return {
      exec: (sql) => void db.exec(sql),
      prepare: (sql) => new NodeStatement(db.prepare(sql)),
      close: () => db.close(),
    };
  },
};
