// Starting on an etcd 3.4 data dir (one `etcdctl snapshot restore` made, or
// a stopped etcd member's): its bbolt backend becomes edgetcd's, and the
// member starts as a new one from its flags (--name, --initial-cluster), as a
// restored etcd member does. Taken only when nothing is lost: etcd's WAL must
// commit no change past its backend's consistent index that the backend does
// not hold. Entries that leave the backend as it is (a new leader's empty
// entry, a member's published attributes) may follow that index; so may
// changes etcd 3.4 applies without moving it: a lease grant is checked in the
// lease bucket, auth changes are taken as applied (they are once etcd
// stopped; a warning says so), alarms and checkpoints are not carried over. (The backend's member
// list cannot say whose dir it is: etcd 3.4's restore leaves the old
// cluster's members there and keeps the new ones in its v2 store.)
//
// The steps are ordered so a crash at any point leaves either the etcd dir
// (redone at the next start) or a finished edgetcd one:
//   1. etcd's WAL directory is renamed `<wal>.etcd` (kept, not read again);
//   2. the bbolt file is kept as `snap/db.etcd`;
//   3. the backend is imported into `snap/db.adopting`, checkpointed;
//   4. `snap/db.adopting` is renamed over `snap/db`: from here on it is
//      edgetcd's, and the member's own WAL is created by the start.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { FileSystem, Logger, Runtime } from "../ports.ts";
import { Backend } from "../storage/backend.ts";
import { readBbolt, startsBbolt } from "../storage/bbolt.ts";
import { etcdWalPending } from "../storage/etcd-wal.ts";
import { importEtcdBuckets } from "./etcd-import.ts";
import { hexOf } from "../bytes.ts";

const decoder = new TextDecoder();
/** InternalRaftRequest's lease_grant field, and where its auth requests start. */
const leaseGrantField = 8;
const authFieldsFrom = 1000;

/** The lease bucket key (8-byte big-endian id) a LeaseGrantRequest {TTL 1, ID 2} names. */
function grantedLeaseKey(request: Uint8Array): string {
  const reader = new BinaryReader(request);
  let id = 0n;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === 0) id = BigInt(reader.int64());
    else reader.skip(wireType);
  }
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigInt64(0, id);
  return hexOf(key);
}

function parentOf(path: string): string {
  const at = path.replace(/\/+$/, "").lastIndexOf("/");
  return at <= 0 ? (at === 0 ? "/" : ".") : path.slice(0, at);
}

async function isBbolt(fs: FileSystem, path: string): Promise<boolean> {
  if (!(await fs.exists(path))) return false;
  const file = await fs.open(path, "read");
  try {
    return startsBbolt(await file.readAt(0, 32));
  } finally {
    await file.close();
  }
}

/**
 * Adopts the etcd data dir whose backend is `snapDir/db` and whose WAL is
 * `walDir`, if it is one; returns whether it was. Throws, changing nothing,
 * when it is etcd's but cannot be taken safely.
 */
export async function adoptEtcdDataDir(runtime: Runtime, logger: Logger, paths: { walDir: string; snapDir: string }): Promise<boolean> {
  const { fs } = runtime;
  const db = fs.join(paths.snapDir, "db");
  if (!(await isBbolt(fs, db))) return false;
  const file = await fs.readFile(db);
  const buckets = readBbolt(file);

  const consistent = buckets.get("meta")?.find(([key]) => decoder.decode(key) === "consistent_index")?.[1];
  const consistentIndex = consistent?.length === 8 ? Number(new DataView(consistent.buffer, consistent.byteOffset, 8).getBigUint64(0)) : 0;
  const keptWal = `${paths.walDir}.etcd`;
  const [walHere, walKept] = [await fs.exists(paths.walDir), await fs.exists(keptWal)];
  if (walHere && walKept) throw new Error(`etcd data dir: both ${paths.walDir} and ${keptWal} exist; keep the one etcd wrote and move the other away`);
  const { commit, changing } = walHere || walKept ? await etcdWalPending(fs, walHere ? paths.walDir : keptWal, consistentIndex) : { commit: 0, changing: [] };
  const leaseKeys = new Set((buckets.get("lease") ?? []).map(([key]) => hexOf(key)));
  const missing = changing.filter(({ effect }) => effect.kind === "recorded" || (effect.kind === "unrecorded" && effect.field === leaseGrantField && !leaseKeys.has(grantedLeaseKey(effect.body))));
  if (missing.length > 0) {
    throw new Error(
      `etcd data dir: its WAL commits ${missing.length} change(s) (entries ${missing.map(({ index }) => index).join(", ")}) its backend (at ${consistentIndex}) does not hold yet; ` +
        "start etcd on it once more and stop it so it applies them, or move it with `etcdctl snapshot save` and `edgetcd snapshot restore`",
    );
  }
  const unknown = changing.filter(({ effect }) => effect.kind === "unrecorded" && effect.field >= authFieldsFrom).map(({ index }) => index);
  if (unknown.length > 0) {
    // etcd 3.4 applies auth changes without recording their index: its own
    // restart applies them again. Stopped (not killed), etcd has them in its backend.
    logger.warn("etcd's WAL holds auth changes after its backend's consistent index; taken as applied (true when etcd was stopped, not killed)", { entries: unknown });
  }
  logger.warn("adopting an etcd data dir: its backend becomes this member's, which starts as a new member of --initial-cluster", {
    "consistent-index": consistentIndex,
    "etcd-wal-commit": commit,
    "kept-etcd-wal": keptWal,
    "kept-etcd-db": `${db}.etcd`,
  });
  if (walHere) {
    await fs.rename(paths.walDir, keptWal);
    await fs.syncDir(parentOf(paths.walDir));
  }
  const kept = await fs.open(`${db}.etcd`, "append");
  try {
    await kept.truncate(0);
    await kept.append(file);
    await kept.datasync();
  } finally {
    await kept.close();
  }
  const adopting = `${db}.adopting`;
  for (const path of [adopting, `${adopting}-wal`, `${adopting}-shm`]) if (await fs.exists(path)) await fs.remove(path);
  const backend = Backend.open(runtime.sqlite, adopting);
  try {
    const counts = importEtcdBuckets(buckets, backend);
    backend.checkpoint();
    logger.info("imported etcd's backend", { revision: counts.revision, "key-revisions": counts.revisions, leases: counts.leases, users: counts.users, roles: counts.roles });
  } finally {
    backend.close();
  }
  // Checkpointed by its only connection, the file holds everything; a side
  // file left (bun:sqlite closes lazily) must not follow it under another name.
  for (const path of [`${adopting}-wal`, `${adopting}-shm`]) if (await fs.exists(path)) await fs.remove(path);
  await fs.rename(adopting, db);
  await fs.syncDir(paths.snapDir);
  return true;
}
