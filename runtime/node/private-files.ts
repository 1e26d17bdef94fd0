// Modes of everything edgetcd creates in a data directory: owner only, as
// etcd's fileutil.PrivateDirMode (0700) and PrivateFileMode (0600). Keys and
// values are the cluster's data, not every local user's (issue 25).
import { closeSync, constants, openSync } from "node:fs";

export const privateDirMode = 0o700;
export const privateFileMode = 0o600;

/**
 * Creates `path` empty with mode 0600 if it is missing, for files another
 * library creates with the umask's mode (SQLite: 0644). SQLite gives its -wal,
 * -shm and -journal files the mode of their database, so they follow.
 *
 * Only a missing file is opened here: closing an fd of a file this process
 * already has open would drop the fcntl locks SQLite holds on it.
 */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, privateFileMode));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}
