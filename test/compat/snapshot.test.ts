// Snapshots move both ways between edgetcd and etcd 3.4 (issue 15):
// - edgetcd to etcd: what Maintenance.Snapshot streams is etcd's own bbolt
//   layout, so the real etcdctl 3.4 reads it (`snapshot status` gives the
//   revision and key count etcd's own snapshot gives after the same steps)
//   and restores it, and the real etcd started on the restored data dir
//   serves the keys, their history, the compaction mark, the leases and the
//   users edgetcd had;
// - etcd to edgetcd: `edgetcd snapshot restore` of etcd's snapshot, and
//   edgetcd started on an etcd data dir (one `etcdctl snapshot restore`
//   made, or a stopped etcd's), serve what etcd served, and a member that
//   joins afterwards gets that data too. An etcd dir whose WAL commits more
//   than its backend holds is refused, unchanged.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { etcdBesideEdgetcd, etcdctlAsync, freePort, repoRoot, startEdgetcd, startEtcd, tempDir, type RunningServer } from "../support/processes.ts";
import { readBbolt } from "../../src/storage/bbolt.ts";
import { etcdWalPending } from "../../src/storage/etcd-wal.ts";
import { testRuntime } from "../support/runtime.ts";
import { eventually } from "../support/cluster.ts";

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

/** `edgetcd snapshot restore …` on the runtime under test; its status and output. */
function edgetcdRestore(...args: string[]): { status: number; output: string } {
  const result = spawnSync(join(repoRoot, "bin/edgetcd"), ["snapshot", "restore", ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: result.status ?? -1, output: `${result.stdout}${result.stderr}` };
}

/** A member that joins `first`'s cluster (member add, then --initial-cluster-state existing). */
async function joined(first: RunningServer, started: RunningServer[]): Promise<RunningServer> {
  const peerPort = await freePort();
  const added = await etcdctlAsync(first.endpoint, ["member", "add", "second", `--peer-urls=http://127.0.0.1:${peerPort}`]);
  assert.equal(added.status, 0, added.stderr);
  const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added.stdout)?.[1] ?? "";
  const server = await startEdgetcd({
    dataDir: join(tempDir("joined"), "data"),
    peerPort,
    extraArgs: ["--name", "second", "--initial-cluster", initialCluster, "--initial-cluster-state", "existing"],
  });
  started.push(server);
  return server;
}

describe("etcd 3.4's snapshot and data dir, taken by edgetcd", () => {
  const servers = etcdBesideEdgetcd();
  const started: RunningServer[] = [];
  after(async () => {
    for (const server of started) await server.kill();
  });

  test("edgetcd snapshot restore of etcd's snapshot: the same data, and a member that joins gets it", { timeout: 120_000 }, async () => {
    await fill(servers.etcd);
    const { path } = await saved(servers.etcd);
    const want = await view(servers.etcd.endpoint);

    const dataDir = join(tempDir("edgetcd-restored"), "data");
    const restored = edgetcdRestore(path, "--data-dir", dataDir);
    assert.equal(restored.status, 0, restored.output);
    assert.match(restored.output, /"revision":8,.*"msg":"restored snapshot"/);
    assert.equal(edgetcdRestore(path, "--data-dir", dataDir).output.trim(), `Error: data-dir "${dataDir}" exists`);

    const edgetcd = await startEdgetcd({ dataDir });
    started.push(edgetcd);
    assert.deepEqual(await view(edgetcd.endpoint), want);
    // The next write takes the next revision after etcd's.
    assert.match(await ctl(edgetcd.endpoint, "put", "after", "7", "-w", "json"), /"revision":9/);

    const second = await joined(edgetcd, started);
    const afterPut = await view(edgetcd.endpoint);
    assert.deepEqual(await view(second.endpoint), afterPut, "the joined member has the restored data");
  });

  test("a snapshot whose SHA-256 does not match, or without one, is refused", () => {
    const file = join(tempDir("damaged-snapshot"), "snapshot.db");
    // A data dir's own database file has no trailer (etcdctl's rule: its size is a multiple of 512).
    const noTrailer = edgetcdRestore(join(servers.edgetcd.dataDir, "member", "snap", "db"), "--data-dir", `${file}.dir`);
    assert.match(noTrailer.output, /^Error: snapshot missing hash but --skip-hash-check=false$/m);
    const snapshot = spawnSync("etcdctl", [`--endpoints=${servers.etcd.endpoint}`, "snapshot", "save", file], { env: { ...process.env, ETCDCTL_API: "3" } });
    assert.equal(snapshot.status, 0);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff;
    writeFileSync(file, bytes);
    const refused = edgetcdRestore(file, "--data-dir", `${file}.dir`);
    assert.equal(refused.status, 1);
    assert.match(refused.output, /^Error: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}$/m);
    assert.equal(existsSync(`${file}.dir`), false);
  });

  test("edgetcd on an etcd data dir: refused while etcd's WAL is ahead of its backend, adopted once it is not", { timeout: 120_000 }, async () => {
    // An etcd whose backend commits only at stop: killed, its WAL holds puts its bbolt file does not.
    const peerPort = await freePort();
    const dataDir = join(tempDir("etcd-dir"), "data");
    const batching = ["--backend-batch-interval", "1h", "--backend-batch-limit", "100000"];
    const etcd = await startEtcd({ dataDir, peerPort, extraArgs: batching });
    await fill(etcd);
    const want = await view(etcd.endpoint);
    await etcd.kill();

    const refused = await startEdgetcd({ dataDir, peerPort }).then(
      (server) => (started.push(server), "started"),
      (error: unknown) => String(error),
    );
    assert.match(refused, /etcd data dir: its WAL commits \d+ change\(s\) \(entries [\d, ]+\) its backend \(at \d+\) does not hold yet/);
    assert.equal(existsSync(join(dataDir, "member", "wal.etcd")), false, "nothing was changed");

    // etcd applies them at its next start; with its default batching it
    // commits them to its backend within 100 ms. Stopped once the backend
    // holds every committed change (what the adoption itself checks).
    const again = await startEtcd({ dataDir, peerPort });
    const { fs } = await testRuntime();
    await eventually("etcd's backend holds what its WAL commits", async () => {
      try {
        const meta = readBbolt(new Uint8Array(readFileSync(join(dataDir, "member", "snap", "db")))).get("meta") ?? [];
        const index = meta.find(([key]) => new TextDecoder().decode(key) === "consistent_index")?.[1];
        const consistentIndex = index === undefined ? 0 : Number(new DataView(index.buffer, index.byteOffset, 8).getBigUint64(0));
        // Auth changes never move etcd 3.4's consistent index (the adoption takes them as applied): MVCC changes do.
        const { changing } = await etcdWalPending(fs, join(dataDir, "member", "wal"), consistentIndex);
        return changing.every(({ effect }) => effect.kind !== "recorded");
      } catch {
        return false; // caught between two of etcd's writes
      }
    });
    await again.stop();
    const edgetcd = await startEdgetcd({ dataDir, peerPort });
    started.push(edgetcd);
    assert.match(edgetcd.output(), /adopting an etcd data dir/);
    assert.deepEqual(await view(edgetcd.endpoint), want);
    assert.ok(existsSync(join(dataDir, "member", "wal.etcd")) && existsSync(join(dataDir, "member", "snap", "db.etcd")), "etcd's files are kept");
    await edgetcd.stop();
    // Once adopted, the dir is edgetcd's: a restart recovers it as any other.
    const restarted = await startEdgetcd({ dataDir, peerPort });
    started.push(restarted);
    assert.doesNotMatch(restarted.output(), /adopting/);
    assert.deepEqual(await view(restarted.endpoint), want);
  });
});
