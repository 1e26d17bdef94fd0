// Test builds only: mutants bring back a known bug class so the reliability
// suite can show it catches it (scorecard R1). EDGETCD_MUTANT=<name> is read
// by the test composition root (runtime/test/); a production root refuses it.
// Two live entirely in the ports handed to src/:
//
//   ack-before-fsync        the WAL's fdatasync does nothing, so a write is
//                           acknowledged before it is durable. A kill -9 alone
//                           does not lose it (the page cache survives); run it
//                           with EDGETCD_TEST_DISK=lose-unsynced.
//   consistent-index-apart  the consistent index stored with each apply is the
//                           previous entry's, as if it were saved in another
//                           transaction than the data: after a restart the
//                           last applied entry is applied a second time.
//
// progress-notify-ahead, read-index-reused and lock-after-lease-expired live in
// src/ (src/mutants.ts) and are switched on here.
//
// Also EDGETCD_TEST_DISK=lose-unsynced (./lose-unsynced.ts): a kill -9 then
// loses what a power failure would; and fail-datasync-when:<path>
// (./failing-disk.ts): WAL fdatasyncs fail while <path> exists.
import type { FileSystem, Runtime, SqliteDatabase, SqliteDriver, SqliteValue } from "../../src/ports.ts";
import { enableMutant, sourceMutants, type SourceMutant } from "../../src/mutants.ts";
import { failDatasyncWhenPrefix, failingDatasyncFileSystem } from "./failing-disk.ts";
import { loseUnsyncedFileSystem } from "./lose-unsynced.ts";
import { withFileDatasync } from "./wrap-file-system.ts";

const mutantVariable = "EDGETCD_MUTANT";
const testDiskVariable = "EDGETCD_TEST_DISK";

const portMutants = ["ack-before-fsync", "consistent-index-apart"] as const;
type PortMutant = (typeof portMutants)[number];

/** The runtime with the test-only disk and mutant the environment names; the same runtime when it names none. */
export function runtimeWithTestFaults(runtime: Runtime, env: Record<string, string | undefined>): Runtime {
  let result = runtime;
  const disk = env[testDiskVariable];
  if (disk !== undefined && disk !== "") {
    if (disk.startsWith(failDatasyncWhenPrefix)) result = { ...result, fs: failingDatasyncFileSystem(result.fs, disk.slice(failDatasyncWhenPrefix.length)) };
    else if (disk === "lose-unsynced") result = { ...result, fs: loseUnsyncedFileSystem(result.fs) };
    else throw new Error(`${testDiskVariable}: unknown test disk ${JSON.stringify(disk)}; known: lose-unsynced, ${failDatasyncWhenPrefix}<path>`);
  }
  const mutant = env[mutantVariable];
  if (mutant === "ack-before-fsync") result = { ...result, fs: walWithoutSync(result.fs) };
  if (mutant === "consistent-index-apart") result = { ...result, sqlite: consistentIndexApart(result.sqlite) };
  // The others live in src/ behind src/mutants.ts.
  if (sourceMutants.includes(mutant as SourceMutant)) enableMutant(mutant as SourceMutant);
  else if (mutant !== undefined && mutant !== "" && !portMutants.includes(mutant as PortMutant)) {
    throw new Error(`${mutantVariable}: unknown mutant ${JSON.stringify(mutant)}; known: ${[...portMutants, ...sourceMutants].join(", ")}`);
  }
  return result;
}

/** MUTANT ack-before-fsync: datasync of WAL segments is skipped. */
function walWithoutSync(inner: FileSystem): FileSystem {
  return withFileDatasync(inner, (path, file) => (path.endsWith(".wal") ? Promise.resolve() : file.datasync()));
}

const consistentIndexKey = new TextEncoder().encode("consistent_index");

/** MUTANT consistent-index-apart: each stored consistent index is the one before it. */
function consistentIndexApart(inner: SqliteDriver): SqliteDriver {
  return {
    ...inner,
    open(path) {
      const db = inner.open(path);
      let previous: SqliteValue | undefined;
      const wrapped: SqliteDatabase = {
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
        prepare(sql) {
          const statement = db.prepare(sql);
          if (!sql.startsWith("INSERT OR REPLACE INTO bucket")) return statement;
          return {
            get: (...params) => statement.get(...params),
            all: (...params) => statement.all(...params),
            run(...params) {
              const [name, key, value] = params;
              if (name === "meta" && key instanceof Uint8Array && sameBytes(key, consistentIndexKey)) {
                const stored = previous ?? value ?? null;
                previous = value;
                return statement.run(name, key, stored);
              }
              return statement.run(...params);
            },
          };
        },
      };
      return wrapped;
    },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
