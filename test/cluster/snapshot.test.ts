// Snapshots and log compaction (--snapshot-count): a member that was down
// while the others moved past their compacted log catches up by a snapshot
// of the leader's backend, with keys, deletes, compaction and leases carried
// over; restarts from that snapshot; watchers on it see no gap.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { clientsOf, electionMs, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

/** The member's process now (a function, so TypeScript does not keep an earlier narrowing). */
const serverOf = (member: ClusterMember) => member.server;

/** Waits until `member` has applied up to `revision` (serializable reads are local). */
async function caughtUp(member: ClusterMember, revision: bigint, timeoutMs = 15_000): Promise<void> {
  const { kv } = clientsOf(member);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const range = await kv.range({ key: bytes("\0"), serializable: true, countOnly: true }, { timeoutMs: 1000 });
      if ((range.header?.revision ?? 0n) >= revision) return;
    } catch {
      // starting
    }
    if (Date.now() > deadline) throw new Error(`${member.name} did not reach revision ${revision}`);
    await sleep(100);
  }
}

describe("snapshots and log compaction", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, {
      extraArgs: ["--snapshot-count", "40", "--experimental-snapshot-catchup-entries", "10"],
    });
    await leaderOf(cluster, 10 * electionMs);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("a killed leader that fell behind the compacted log catches up by snapshot, restarts from it, and keeps replicating", async () => {
    const lagging = await leaderOf(cluster, 10 * electionMs);
    const early = clientsOf(lagging).kv;
    for (let i = 0; i < 20; i++) await early.put({ key: bytes(`snap/early/${i}`), value: bytes(`e${i}`) });

    await lagging.server?.kill();
    lagging.server = undefined;
    const leader = await leaderOf(cluster, 20 * electionMs);
    const { kv, lease, maintenance } = clientsOf(leader);

    // While it is down: well past --snapshot-count entries, with deletes, a
    // compaction, and a lease with a key attached.
    const granted = await lease.leaseGrant({ TTL: 600n });
    await kv.put({ key: bytes("snap/leased"), value: bytes("l"), lease: granted.ID });
    for (let i = 0; i < 150; i++) await kv.put({ key: bytes(`snap/late/${i % 50}`), value: bytes(`v${i}`) });
    await kv.deleteRange({ key: bytes("snap/early/0"), rangeEnd: bytes("snap/early/5") });
    const beforeCompact = await kv.put({ key: bytes("snap/marker"), value: bytes("m") });
    await kv.compact({ revision: (beforeCompact.header?.revision ?? 0n) - 20n, physical: true });
    for (let i = 0; i < 60; i++) await kv.put({ key: bytes(`snap/after/${i}`), value: bytes(`a${i}`) });
    const status = await maintenance.status({});
    assert.ok(status.raftIndex > 200n, `the log moved on (${status.raftIndex})`);

    await cluster.start(lagging);
    const last = await kv.put({ key: bytes("snap/last"), value: bytes("z") });
    const target = last.header?.revision ?? 0n;
    await caughtUp(lagging, target);
    assert.match(serverOf(lagging)?.output() ?? "", /applied snapshot from the leader/, "it caught up by a snapshot, not by the log");
    assert.match(leader.server?.output() ?? "", /saved snapshot/);

    const check = async (member: ClusterMember) => {
      const client = clientsOf(member);
      const range = await client.kv.range({ key: bytes("snap/"), rangeEnd: bytes("snap0"), serializable: true });
      const found = new Map(range.kvs.map((item) => [text(item.key), item]));
      for (let i = 0; i < 20; i++) {
        const key = `snap/early/${i}`;
        // Deleted: the keys in ["snap/early/0", "snap/early/5") byte-wise (10..19 too).
        assert.equal(found.has(key), !(key >= "snap/early/0" && key < "snap/early/5"), `${key} on ${member.name}`);
      }
      for (let i = 100; i < 150; i++) assert.equal(text(found.get(`snap/late/${i % 50}`)?.value ?? new Uint8Array()), `v${i}`);
      assert.equal(found.get("snap/leased")?.lease, granted.ID, "the key stays attached to its lease");
      // The compaction travelled with the snapshot.
      await assert.rejects(
        client.kv.range({ key: bytes("snap/marker"), revision: 2n, serializable: true }),
        /required revision has been compacted/,
      );
      return range.kvs.length;
    };
    assert.equal(await check(lagging), await check(leader));
    for (const member of cluster.members) await caughtUp(member, target);
    const hashes = await Promise.all(
      cluster.members.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision: target })).hash),
    );
    assert.equal(new Set(hashes).size, 1, `equal HashKV at revision ${target}: ${hashes.join(", ")}`);

    // The lease table came with it: the member knows the lease and its key.
    await leaderOf(cluster, 10 * electionMs);
    const leases = await clientsOf(lagging).lease.leaseLeases({});
    assert.ok(leases.leases.some((item) => item.ID === granted.ID), "the lease is known on the member that took the snapshot");

    // A restart of that member starts from the installed snapshot.
    await serverOf(lagging)?.kill();
    lagging.server = undefined;
    await cluster.start(lagging);
    const again = await kv.put({ key: bytes("snap/again"), value: bytes("y") });
    await caughtUp(lagging, again.header?.revision ?? 0n);
    assert.equal(await check(lagging), await check(leader));
    // No received snapshot is left behind on disk.
    const snapDir = join(lagging.dataDir, "member", "snap");
    assert.ok(existsSync(join(snapDir, "db")));
    assert.deepEqual(readdirSync(snapDir).filter((name) => name.startsWith("db.incoming") || name.startsWith("db.outgoing")), []);
  });

  test("a watcher on the member that installs a snapshot resumes with no gap", async () => {
    const leader = await leaderOf(cluster, 10 * electionMs);
    const lagging = cluster.members.find((member) => member !== leader) as ClusterMember;
    const { kv } = clientsOf(leader);
    const start = await kv.put({ key: bytes("gap/0"), value: bytes("0") });
    await caughtUp(lagging, start.header?.revision ?? 0n);

    await lagging.server?.kill();
    lagging.server = undefined;
    const written: bigint[] = [];
    for (let i = 1; i <= 120; i++) written.push((await kv.put({ key: bytes(`gap/${i % 7}`), value: bytes(`${i}`) })).header?.revision ?? 0n);
    await cluster.start(lagging);
    await caughtUp(lagging, written[written.length - 1] as bigint);

    // Watching from before the snapshot's data replays every revision in order.
    const { watch } = clientsOf(lagging);
    const abort = new AbortController();
    const requests = (async function* () {
      yield {
        requestUnion: {
          case: "createRequest" as const,
          value: { key: bytes("gap/"), rangeEnd: bytes("gap0"), startRevision: (start.header?.revision ?? 0n) + 1n },
        },
      };
      await new Promise((resolve) => abort.signal.addEventListener("abort", resolve));
    })();
    const seen: bigint[] = [];
    try {
      for await (const response of watch.watch(requests, { signal: abort.signal })) {
        for (const event of response.events) seen.push(event.kv?.modRevision ?? 0n);
        if (seen.length >= written.length) break;
      }
    } finally {
      abort.abort();
    }
    assert.deepEqual(seen, written);
  });
});
