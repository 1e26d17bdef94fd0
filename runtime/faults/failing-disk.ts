// Test builds only: EDGETCD_TEST_DISK=fail-datasync-when:<path> makes every
// fdatasync of a WAL segment fail with EIO while a file exists at <path>, as a
// disk that starts failing under a running member (scorecard D5 on a real
// process: it must exit non-zero before acknowledging). The test creates the
// file when it wants the disk to break; nothing fails before that, so startup
// is untouched whatever it syncs.
import { existsSync } from "node:fs";
import type { FileSystem } from "../../src/ports.ts";
import { withFileDatasync } from "./wrap-file-system.ts";

export const failDatasyncWhenPrefix = "fail-datasync-when:";

export function failingDatasyncFileSystem(inner: FileSystem, triggerPath: string): FileSystem {
  return withFileDatasync(inner, (path, file) =>
    path.endsWith(".wal") && existsSync(triggerPath)
      ? Promise.reject(Object.assign(new Error(`EIO: i/o error, fdatasync '${path}' (injected: ${triggerPath} exists)`), { code: "EIO" }))
      : file.datasync(),
  );
}
