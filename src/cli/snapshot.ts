// `edgetcd snapshot restore <file>`: a data dir for a new member from an etcd
// 3.4 snapshot (what `etcdctl snapshot save` writes, from etcd or from
// edgetcd: both stream etcd's bbolt layout), as `etcdctl snapshot restore`
// makes one for etcd. The snapshot's SHA-256 trailer is checked as etcdctl
// checks it. The data dir gets the backend (keys and history, compaction,
// leases, auth; src/server/etcd-import.ts); the member's name and cluster
// come from the flags it is then started with (--name, --initial-cluster,
// --initial-advertise-peer-urls, --initial-cluster-state new), as for any
// new member, so the restore takes no cluster flags of its own.
import type { Logger, Runtime } from "../ports.ts";
import { Backend } from "../storage/backend.ts";
import { readBbolt } from "../storage/bbolt.ts";
import { importEtcdBuckets } from "../server/etcd-import.ts";
import { takeDataDir } from "../server/data-dir.ts";
import { hexOf as hex } from "../bytes.ts";

export class SnapshotUsageError extends Error {}

export const snapshotUsage = `Restores an etcd snapshot into a new edgetcd data dir

Usage:
  edgetcd snapshot restore <filename> --data-dir <dir> [--skip-hash-check]

Then start the member with the flags of a new cluster (--name,
--initial-cluster, --initial-advertise-peer-urls, --initial-cluster-state new).

Flags:
      --data-dir string     path to the data directory to create (default "default.etcd")
  -h, --help                help for restore
      --skip-hash-check     ignore the snapshot's integrity hash (needed for a copy of a data dir's db file)
`;

const sha256Bytes = 32;

export interface SnapshotRestoreOptions {
  file: string;
  dataDir: string;
  skipHashCheck: boolean;
}

export function parseSnapshotArgs(args: readonly string[]): SnapshotRestoreOptions | "help" {
  const [verb, ...rest] = args;
  if (verb === "-h" || verb === "--help" || verb === undefined) return "help";
  if (verb !== "restore") throw new SnapshotUsageError(`unknown command "${verb}" for "edgetcd snapshot" (only restore; etcdctl snapshot status reads the file)`);
  let file: string | undefined;
  let dataDir = "default.etcd";
  let skipHashCheck = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    const [name, inline] = arg.startsWith("--") ? (arg.slice(2).split(/=(.*)/s) as [string, string | undefined]) : [undefined, undefined];
    if (name === undefined) {
      if (file !== undefined) throw new SnapshotUsageError(`one snapshot file, not "${file}" and "${arg}"`);
      file = arg;
    } else if (name === "help" || arg === "-h") return "help";
    else if (name === "data-dir") {
      const value = inline ?? rest[++i];
      if (value === undefined || value === "") throw new SnapshotUsageError("--data-dir needs a directory");
      dataDir = value;
    } else if (name === "skip-hash-check") skipHashCheck = inline === undefined || inline === "true";
    else throw new SnapshotUsageError(`unknown flag: --${name}`);
  }
  if (file === undefined) throw new SnapshotUsageError("snapshot restore expects one argument: the snapshot file");
  return { file, dataDir, skipHashCheck };
}

/** Restores `options.file` into a new data dir; throws with etcdctl's words when it cannot. */
export async function restoreSnapshot(runtime: Runtime, logger: Logger, options: SnapshotRestoreOptions): Promise<void> {
  const { fs } = runtime;
  if (await fs.exists(options.dataDir)) throw new Error(`data-dir "${options.dataDir}" exists`);
  const file = await fs.readFile(options.file);
  // etcdctl's rule: a snapshot from Maintenance.Snapshot ends with the SHA-256
  // of what comes before it, which leaves its size 32 past a multiple of 512.
  const hasHash = file.length % 512 === sha256Bytes;
  let data = file;
  if (hasHash) {
    data = file.subarray(0, file.length - sha256Bytes);
    if (!options.skipHashCheck) {
      const expected = file.subarray(file.length - sha256Bytes);
      const got = await runtime.digest("SHA-256", data);
      if (hex(got) !== hex(expected)) throw new Error(`expected sha256 ${hex(expected)}, got ${hex(got)}`);
    }
  } else if (!options.skipHashCheck) {
    throw new Error("snapshot missing hash but --skip-hash-check=false");
  }
  const buckets = readBbolt(data);
  logger.info("restoring snapshot", { path: options.file, "data-dir": options.dataDir });
  const memberDir = fs.join(options.dataDir, "member");
  const snapDir = fs.join(memberDir, "snap");
  const lock = await takeDataDir(fs, logger, options.dataDir, memberDir, [snapDir]);
  try {
    const backend = Backend.open(runtime.sqlite, fs.join(snapDir, "db"));
    try {
      const counts = importEtcdBuckets(buckets, backend);
      logger.info("restored snapshot", { path: options.file, "data-dir": options.dataDir, revision: counts.revision, "key-revisions": counts.revisions, leases: counts.leases, users: counts.users, roles: counts.roles });
    } finally {
      backend.close();
    }
  } catch (error) {
    await lock.release();
    await fs.removeAll(options.dataDir);
    throw error;
  }
  await lock.release();
}
