// Snapshots move from edgetcd to etcd (issue 15): what Maintenance.Snapshot
// streams is etcd's own bbolt layout, so the real etcdctl 3.4 reads it
// (`snapshot status` gives the revision and key count etcd's own snapshot
// gives after the same steps) and restores it, and the real etcd 3.4 started
// on the restored data dir serves the keys, their history, the compaction
// mark, the leases and the users edgetcd had.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { etcdBesideEdgetcd, etcdctlAsync, freePort, startEtcd, tempDir, type RunningServer } from "../support/processes.ts";
import { readBbolt } from "../../src/storage/bbolt.ts";

interface Status {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

async function ctl(endpoint: string, ...args: string[]): Promise<string> {
  const result = await etcdctlAsync(endpoint, args);
  assert.equal(result.status, 0, `etcdctl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** The same steps on either server: puts, an overwrite, a delete, a compaction, a lease and its key, a user and a role. */
async function fill(server: RunningServer): Promise<void> {
  for (const [key, value] of [["a", "1"], ["b", "2"], ["c", "3"], ["a", "4"]]) await ctl(server.endpoint, "put", key as string, value as string);
  await ctl(server.endpoint, "del", "b");
  await ctl(server.endpoint, "compaction", "3");
  await ctl(server.endpoint, "put", "d", "5");
  const lease = /lease ([0-9a-f]+) granted/.exec(await ctl(server.endpoint, "lease", "grant", "600"))?.[1] ?? "";
  await ctl(server.endpoint, "put", "leased", "6", `--lease=${lease}`);
  await ctl(server.endpoint, "user", "add", "alice:secret");
  await ctl(server.endpoint, "role", "add", "reader");
  await ctl(server.endpoint, "role", "grant-permission", "reader", "read", "a");
  await ctl(server.endpoint, "user", "grant-role", "alice", "reader");
}

async function saved(server: RunningServer): Promise<{ path: string; status: Status }> {
  const path = join(tempDir(`snapshot-${server.kind}`), "snapshot.db");
  assert.match(await ctl(server.endpoint, "snapshot", "save", path), /Snapshot saved at/);
  const status = JSON.parse(await ctl(server.endpoint, "-w", "json", "snapshot", "status", path)) as Status;
  return { path, status };
}

/** What a client sees of a server's data: keys with their revisions, history, compaction, leases (TTL), users and roles. */
async function view(endpoint: string): Promise<string[]> {
  const leases = (await ctl(endpoint, "lease", "list"))
    .trim()
    .split("\n")
    .slice(1)
    .map((id) => BigInt(`0x${id}`).toString(16)); // printed with leading zeros (%016x)
  // Lease ids as lease list prints them (hex), from the text: a uint64 is past what a JSON number keeps exactly.
  const json = (await ctl(endpoint, "get", "", "--prefix", "-w", "json")).replace(/"lease":(\d+)/g, (_, id: string) => `"lease":"${BigInt(id).toString(16)}"`);
  const kvs = (JSON.parse(json) as { kvs: Array<Record<string, unknown>> }).kvs;
  const ttl = leases.length === 1 ? /granted with TTL\((\d+)s\)/.exec(await ctl(endpoint, "lease", "timetolive", leases[0] as string))?.[1] : undefined;
  const old = await etcdctlAsync(endpoint, ["get", "a", "--rev=2"]);
  return [
    JSON.stringify(kvs.map(({ lease, ...kv }) => ({ ...kv, leased: lease !== undefined && leases.includes(lease as string) }))),
    `history at 4: ${await ctl(endpoint, "get", "a", "--rev=4", "--print-value-only")}`,
    `compacted: ${old.stderr.trim().split("\n").at(-1)}`,
    `leases ${leases.length}, TTL ${ttl}`,
    await ctl(endpoint, "user", "get", "alice"),
    await ctl(endpoint, "role", "get", "reader"),
  ];
}

describe("edgetcd's snapshot in etcd's layout, read and restored by etcd 3.4", () => {
  const servers = etcdBesideEdgetcd();
  const restored: RunningServer[] = [];
  after(async () => {
    for (const server of restored) await server.kill();
  });

  test("etcdctl snapshot status and restore; etcd started on the restored dir serves what edgetcd served", { timeout: 120_000 }, async () => {
    await Promise.all([fill(servers.etcd), fill(servers.edgetcd)]);
    const [fromEtcd, fromEdgetcd] = await Promise.all([saved(servers.etcd), saved(servers.edgetcd)]);
    assert.equal(fromEdgetcd.status.revision, fromEtcd.status.revision);
    assert.equal(fromEdgetcd.status.totalKey, fromEtcd.status.totalKey);
    assert.ok(fromEdgetcd.status.totalSize > 0);

    // Both files through our reader: the same buckets (etcd's file was written by bbolt itself).
    const bucketsOf = (path: string) => [...readBbolt(new Uint8Array(readFileSync(path)))].map(([name, entries]) => `${name}:${entries.length}`);
    assert.deepEqual(bucketsOf(fromEdgetcd.path), bucketsOf(fromEtcd.path));

    const before = await view(servers.edgetcd.endpoint);
    assert.deepEqual(before, await view(servers.etcd.endpoint), "the two servers hold the same data");

    const peerPort = await freePort();
    const dataDir = join(tempDir("restored-etcd"), "data");
    const restore = await etcdctlAsync("127.0.0.1:1", [
      "snapshot", "restore", fromEdgetcd.path,
      "--data-dir", dataDir,
      "--name", "default",
      "--initial-cluster", `default=http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    ]);
    assert.equal(restore.status, 0, restore.stderr);
    assert.match(restore.stderr, /added member/);
    const etcd = await startEtcd({ dataDir, peerPort });
    restored.push(etcd);
    assert.deepEqual(await view(etcd.endpoint), before);
    assert.equal(await ctl(etcd.endpoint, "put", "after", "7"), "OK\n");
  });
});
