// Maintenance.Hash, Defragment and Snapshot: etcdctl defrag and snapshot save
// answer as against etcd 3.4; the saved snapshot is etcd's bbolt layout
// holding the data and ends with its SHA-256 (test/compat/snapshot.test.ts
// has etcd read and restore it); Hash is equal on every member of a cluster
// that applied the same writes, and changes when the data changes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { etcdctlAsync, startEdgetcd, startEtcd, tempDir, type RunningServer } from "../support/processes.ts";
import { clientsOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../src/gen/mvccpb/kv_pb.ts";
import { readBbolt } from "../../src/storage/bbolt.ts";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Maintenance } from "../../src/gen/etcdserverpb/rpc_pb.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("Maintenance on one member, beside etcd 3.4", () => {
  let edgetcd: RunningServer;
  let etcd: RunningServer;
  before(async () => {
    [edgetcd, etcd] = await Promise.all([startEdgetcd(), startEtcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([edgetcd?.kill(), etcd?.kill()]);
  });

  test("etcdctl defrag answers as etcd does and the data stays", async () => {
    for (const server of [edgetcd, etcd]) {
      for (let i = 0; i < 15; i++) assert.equal((await etcdctlAsync(server.endpoint, ["put", `defrag/${i % 5}`, "x".repeat(500)])).status, 0);
    }
    const outputs = await Promise.all(
      [edgetcd, etcd].map(async (server) => {
        const result = await etcdctlAsync(server.endpoint, ["defrag"]);
        assert.equal(result.status, 0, result.stderr);
        return result.stdout.replaceAll(server.endpoint, "ENDPOINT");
      }),
    );
    assert.equal(outputs[0], outputs[1]);
    const got = await etcdctlAsync(edgetcd.endpoint, ["get", "defrag/", "--prefix", "--keys-only"]);
    assert.deepEqual(got.stdout.split("\n").filter((line) => line !== ""), ["defrag/0", "defrag/1", "defrag/2", "defrag/3", "defrag/4"]);
  });

  test("etcdctl snapshot save: the file is etcd's bbolt layout with the data, ending with its SHA-256", async () => {
    await etcdctlAsync(edgetcd.endpoint, ["put", "snapshot/key", "snapshot-value"]);
    const path = join(tempDir("edgetcd-snapshot"), "saved.db");
    const saved = await etcdctlAsync(edgetcd.endpoint, ["snapshot", "save", path]);
    assert.equal(saved.status, 0, saved.stderr);
    assert.match(saved.stdout, new RegExp(`Snapshot saved at ${path}`));
    const file = readFileSync(path);
    const body = file.subarray(0, file.length - 32);
    assert.deepEqual(file.subarray(file.length - 32), createHash("sha256").update(body).digest());
    // The "key" bucket holds the put as etcd writes it: its revision, then an mvccpb.KeyValue.
    const keys = readBbolt(new Uint8Array(body)).get("key") ?? [];
    const kvs = keys.map(([, value]) => fromBinary(KeyValueSchema, value));
    const put = kvs.find((kv) => new TextDecoder().decode(kv.key) === "snapshot/key");
    assert.equal(new TextDecoder().decode(put?.value), "snapshot-value");
    const revisionKey = keys[kvs.indexOf(put as (typeof kvs)[number])]?.[0];
    assert.equal(revisionKey?.length, 17);
    assert.equal(new DataView(revisionKey.buffer, revisionKey.byteOffset).getBigInt64(0), put?.modRevision);
  });
});

describe("Maintenance.Snapshot streams from disk, a few at once", () => {
  let edgetcd: RunningServer;
  before(async () => {
    edgetcd = await startEdgetcd();
  }, { timeout: 60_000 });
  after(async () => {
    await edgetcd?.kill();
  });

  const exportFiles = () => readdirSync(join(edgetcd.dataDir, "member", "snap")).filter((name) => name.startsWith("db.export"));

  test("four streams at once; a fifth is refused with etcd's 'too many requests'; their files go when the clients do", async () => {
    // A few MB: far past what HTTP/2 flow control lets a server write ahead of a client that does not read.
    const { kv, maintenance } = clientsOf(edgetcd);
    for (let i = 0; i < 3000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => kv.put({ key: bytes(`snap/${i + j}`), value: new Uint8Array(1000) })));
    // A connection each: streams left unread on one connection would hold its window, and the one read to the end with them.
    const readers = Array.from({ length: 4 }, () => {
      const abort = new AbortController();
      const own = createClient(Maintenance, createGrpcTransport({ baseUrl: `http://${edgetcd.endpoint}` }));
      const stream = own.snapshot({}, { signal: abort.signal })[Symbol.asyncIterator]();
      return { abort, stream };
    });
    // Each has its first piece, and so its file; none has read to the end.
    for (const reader of readers) assert.ok((await reader.stream.next()).value?.blob.length > 0);
    assert.equal(exportFiles().length, 4);
    await assert.rejects(
      (async () => {
        for await (const _ of maintenance.snapshot({})) break;
      })(),
      /etcdserver: too many requests/,
    );
    // One read to its end: its file is removed, and a new stream is taken.
    const [first, ...others] = readers as [(typeof readers)[number], ...typeof readers];
    for (let next = await first.stream.next(); !next.done; next = await first.stream.next());
    for (const reader of others) reader.abort.abort();
    await sleep(500);
    assert.deepEqual(exportFiles(), [], "every file removed once its client finished or left");
    let pieces = 0;
    for await (const _ of maintenance.snapshot({})) pieces++;
    assert.ok(pieces > 1);
    assert.deepEqual(exportFiles(), []);
  });
});

describe("Maintenance.Hash across a cluster", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  async function hashesAt(revision: bigint): Promise<number[]> {
    const hashes: number[] = [];
    for (const member of cluster.members as ClusterMember[]) {
      const { kv, maintenance } = clientsOf(member);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const range = await kv.range({ key: bytes("h"), serializable: true, countOnly: true });
        if ((range.header?.revision ?? 0n) >= revision || Date.now() > deadline) break;
        await sleep(50);
      }
      hashes.push((await maintenance.hash({})).hash);
    }
    return hashes;
  }

  test("equal on every member at the same revision, different after a write", async () => {
    const { kv } = clientsOf(cluster.members[0] as ClusterMember);
    let last = 0n;
    for (let i = 0; i < 30; i++) last = (await kv.put({ key: bytes(`hash/${i}`), value: bytes(`${i}`) })).header?.revision ?? 0n;
    // Settle background commits of leases/members before comparing.
    await sleep(300);
    const first = await hashesAt(last);
    assert.equal(new Set(first).size, 1, `equal Hash: ${first.join(", ")}`);
    const next = (await kv.put({ key: bytes("hash/extra"), value: bytes("x") })).header?.revision ?? 0n;
    const second = await hashesAt(next);
    assert.equal(new Set(second).size, 1, `equal Hash: ${second.join(", ")}`);
    assert.notEqual(second[0], first[0]);
  });
});
