// Taking a data directory: its directories made owner-only (0700, as etcd's
// fileutil.TouchDirAll), a warning like etcd 3.4's for an existing one that is
// wider, and the lock that makes this process its only user, taken before
// anything inside is read or written (issue 25).
import type { FileSystem, Logger } from "../ports.ts";

/** etcd's fileutil.PrivateDirMode. */
export const privateDirMode = 0o700;

/**
 * The lock file, opened by the runtime as an OS-locked file. Not `member/lock`:
 * that name was the pid file of older versions, whose content is not the new
 * lock's, and which a kill -9 as PID 1 left behind for good.
 */
export const lockFileName = "lock.db";
const legacyPidLockFileName = "lock";

export type DataDirLock = { release(): Promise<void> };

/**
 * Makes (or checks) `dataDir` and `memberDir`, takes the lock in `memberDir`,
 * then makes (or checks) `afterLock`, the directories inside. Throws when the
 * lock is held by another process.
 */
export async function takeDataDir(fs: FileSystem, logger: Logger, dataDir: string, memberDir: string, afterLock: string[]): Promise<DataDirLock> {
  await touchDir(fs, logger, dataDir);
  await touchDir(fs, logger, memberDir);
  const lock = await fs.lock(fs.join(memberDir, lockFileName));
  try {
    // Only an older edgetcd reads the pid file, and this one now owns the directory.
    const legacy = fs.join(memberDir, legacyPidLockFileName);
    if (await fs.exists(legacy)) await fs.remove(legacy);
    for (const dir of afterLock) await touchDir(fs, logger, dir);
  } catch (error) {
    await lock.release();
    throw error;
  }
  return lock;
}

/** etcd's TouchDirAll: a missing directory is created 0700, an existing one wider than that is warned about (etcd 3.4 warns, it does not refuse). */
async function touchDir(fs: FileSystem, logger: Logger, dir: string): Promise<void> {
  if (!(await fs.exists(dir))) {
    await fs.mkdirp(dir);
    return;
  }
  const permissions = await fs.permissions(dir);
  if (permissions === privateDirMode) return;
  // etcd 3.4's text (fileutil.CheckDirPermission), modes as Go prints them.
  logger.warn(
    `check file permission: directory "${dir}" exist, but the permission is "${goFileMode(permissions, true)}". ` +
      `The recommended permission is "${goFileMode(privateDirMode, false)}" to prevent possible unprivileged access to the data.`,
  );
}

/** Go's os.FileMode.String() for permission bits: "drwxr-xr-x", "-rwx------". */
export function goFileMode(permissions: number, isDirectory: boolean): string {
  const letters = "rwxrwxrwx";
  let text = isDirectory ? "d" : "-";
  for (let bit = 0; bit < 9; bit++) text += permissions & (1 << (8 - bit)) ? letters[bit] : "-";
  return text;
}
