// Scorecard A3, data-dir ownership (issue 25): one process owns a data dir at a
// time, also across PID namespaces on one host (two containers on one volume),
// and a member killed with kill -9 while it was PID 1 (every container) starts
// again unattended with every acknowledged write. The lock is an OS file lock
// the kernel drops when its holder dies. Also: what a run leaves in a data dir
// is owner-only (0700 directories, 0600 files, as etcd's), and an existing
// wider data dir gets etcd 3.4's warning.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { connect } from "./history.ts";
import { startEdgetcd, tempDir, type RunningServer, type StartOptions } from "../support/processes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Its own PID namespace with its own /proc: the server inside is PID 1. */
const ownPidNamespace = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"];
const lockHeld = /lock \S+\/member\/lock\.db is held by pid (\d+) on host \S+ since \d{4}-\d\d-\d\dT[\d:.]+Z; another edgetcd is using this data directory/;
const unshareWorks = spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"]).status === 0;

async function refused(options: StartOptions): Promise<string> {
  return await startEdgetcd({ ...options, readyTimeoutMs: 30_000 }).then(
    async (server) => {
      await server.kill();
      return `it started; output:\n${server.output()}`;
    },
    (failure: unknown) => String(failure),
  );
}

async function putKeys(server: RunningServer, prefix: string, count: number): Promise<string[]> {
  const { kv } = connect(server.endpoint);
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    await kv.put({ key: encoder.encode(`${prefix}${i}`), value: encoder.encode(`value of ${prefix}${i}`) });
    keys.push(`${prefix}${i}`);
  }
  return keys;
}

async function assertKeys(server: RunningServer, keys: string[]): Promise<void> {
  const { kv } = connect(server.endpoint);
  for (const key of keys) {
    const response = await kv.range({ key: encoder.encode(key) });
    assert.equal(decoder.decode(response.kvs[0]?.value), `value of ${key}`, key);
  }
}

/** The host pid of the one child of `pid` (unshare --fork's child: the server, PID 1 inside). */
function onlyChildOf(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).map(Number);
  assert.equal(children.length, 1, `children of ${pid}: ${children.join(",")}`);
  return children[0] as number;
}

async function killMinus9AsPid1(server: RunningServer): Promise<void> {
  const inner = onlyChildOf(server.process.pid as number);
  // NSpid: its pid in each namespace, outermost first.
  const nsPids = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${inner}/status`, "utf8"))?.[1]?.trim().split(/\s+/);
  assert.equal(nsPids?.at(-1), "1", `the server was not PID 1 in its namespace: NSpid ${nsPids?.join(" ")}`);
  process.kill(inner, "SIGKILL");
  await server.kill(); // unshare itself, once its child is gone
}

/** SIGTERM to the server inside (unshare 2.38 does not pass signals on), then wait for unshare to end. */
async function stopInNamespace(server: RunningServer): Promise<void> {
  if (server.process.exitCode !== null || server.process.signalCode !== null) return;
  const exited = new Promise((resolve) => server.process.once("exit", resolve));
  process.kill(onlyChildOf(server.process.pid as number), "SIGTERM");
  await exited;
}

describe("A3: data-dir ownership", () => {
  test("a second process on the same data dir is refused, naming the holder; the first serves on", { timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-a3"), "data");
    const first = await startEdgetcd({ dataDir });
    try {
      const keys = await putKeys(first, "k", 5);
      const error = await refused({ dataDir });
      assert.match(error, /exited with 1 before ready/, error);
      const match = lockHeld.exec(error);
      assert.ok(match !== null, error);
      assert.equal(Number(match[1]), first.process.pid);
      await assertKeys(first, keys);
    } finally {
      await first.stop();
    }
  });

  test("a second process in another PID namespace is refused", { skip: !unshareWorks && "unshare --pid needs root and util-linux", timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-a3"), "data");
    const first = await startEdgetcd({ dataDir });
    try {
      const error = await refused({ dataDir, prefix: ownPidNamespace });
      assert.match(error, /exited with 1 before ready/, error);
      assert.match(error, lockHeld, error);
      await putKeys(first, "still-mine", 3);
    } finally {
      await first.stop();
    }
  });

  test("both in their own PID namespaces, each PID 1: the second is refused", { skip: !unshareWorks && "unshare --pid needs root and util-linux", timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-a3"), "data");
    const first = await startEdgetcd({ dataDir, prefix: ownPidNamespace });
    try {
      const error = await refused({ dataDir, prefix: ownPidNamespace });
      assert.match(error, /exited with 1 before ready/, error);
      // Both are PID 1 in their namespaces: a pid judged alive cannot tell them apart, the lock can.
      assert.equal(lockHeld.exec(error)?.[1], "1", error);
    } finally {
      await first.kill();
    }
  });

  test("kill -9 while PID 1, started again as PID 1: it comes back with every acknowledged write", { skip: !unshareWorks && "unshare --pid needs root and util-linux", timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-a3"), "data");
    const acknowledged: string[] = [];
    for (let life = 0; life < 3; life++) {
      const server = await startEdgetcd({ dataDir, prefix: ownPidNamespace });
      try {
        await assertKeys(server, acknowledged);
        acknowledged.push(...(await putKeys(server, `life${life}-`, 20)));
      } finally {
        await killMinus9AsPid1(server);
      }
    }
    const last = await startEdgetcd({ dataDir, prefix: ownPidNamespace });
    try {
      await assertKeys(last, acknowledged);
      await stopInNamespace(last);
    } finally {
      await last.kill();
    }
  });
});

describe("data-dir permissions", () => {
  test("after a run with writes and snapshots every directory is 0700 and every file 0600", { timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-modes"), "data");
    const server = await startEdgetcd({ dataDir, extraArgs: ["--snapshot-count", "50"] });
    try {
      await putKeys(server, "k", 300);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the backend's batch commit
      assert.match(server.output(), /"msg":"saved snapshot"/);
    } finally {
      await server.stop();
    }
    const wrong: string[] = [];
    const seen: string[] = [];
    const walk = (path: string) => {
      const stat = statSync(path);
      const mode = stat.mode & 0o777;
      seen.push(path);
      if (stat.isDirectory()) {
        if (mode !== 0o700) wrong.push(`${path} ${mode.toString(8)}`);
        for (const name of readdirSync(path)) walk(join(path, name));
      } else if (mode !== 0o600) {
        wrong.push(`${path} ${mode.toString(8)}`);
      }
    };
    walk(dataDir);
    assert.deepEqual(wrong, []);
    for (const expected of ["member/wal", "member/snap/db", "member/lock.db"]) {
      assert.ok(seen.includes(join(dataDir, expected)), `${expected} missing from ${seen.join(", ")}`);
    }
  });

  test("an existing data dir wider than 0700 is warned about in etcd 3.4's words, and used", { timeout: 120_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-modes"), "data");
    mkdirSync(dataDir, { mode: 0o755 });
    statSync(dataDir); // created
    const server = await startEdgetcd({ dataDir });
    try {
      assert.ok(
        server
          .output()
          .includes(
            `check file permission: directory \\"${dataDir}\\" exist, but the permission is \\"drwxr-xr-x\\". The recommended permission is \\"-rwx------\\" to prevent possible unprivileged access to the data.`,
          ),
        server.output(),
      );
      await putKeys(server, "k", 1);
    } finally {
      await server.stop();
    }
    // etcd 3.4 warns; it does not change the operator's directory.
    assert.equal(statSync(dataDir).mode & 0o777, 0o755);
  });
});
