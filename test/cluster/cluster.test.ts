// A real 3-member edgetcd cluster driven by the real etcdctl and by gRPC
// clients: membership listing, reads on every member, status and health of the
// whole cluster, and a SIGKILL of the leader in the middle of writes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync } from "../support/processes.ts";
import { clientsOf, electionMs, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

describe("a 3-member cluster", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
    await leaderOf(cluster, 10 * electionMs);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("etcdctl: member list, put on one member and get from each, status and health of the cluster", async () => {
    const endpoints = cluster.endpoints();
    const list = JSON.parse((await etcdctlAsync(endpoints[0] as string, ["member", "list", "-w", "json"])).stdout) as {
      members: Array<{ name: string; clientURLs?: string[]; peerURLs: string[] }>;
    };
    assert.deepEqual(list.members.map((m) => m.name).sort(), ["m1", "m2", "m3"]);
    // Every member published its client URL through the log.
    const deadline = Date.now() + 5000;
    let published = list.members.every((m) => (m.clientURLs ?? []).length === 1);
    while (!published && Date.now() < deadline) {
      await sleep(100);
      const again = JSON.parse((await etcdctlAsync(endpoints[1] as string, ["member", "list", "-w", "json"])).stdout) as typeof list;
      published = again.members.every((m) => (m.clientURLs ?? []).length === 1);
    }
    assert.ok(published, "all members' client URLs are listed");

    assert.equal((await etcdctlAsync(endpoints[0] as string, ["put", "greeting", "hello"])).stdout, "OK\n");
    for (const endpoint of endpoints) {
      const got = await etcdctlAsync(endpoint, ["get", "greeting", "--print-value-only"]);
      assert.equal(got.stdout, "hello\n", `linearizable get on ${endpoint}`);
    }

    // Every member by its endpoint. (`--cluster` makes etcdctl 3.4 send ":authority: http://host:port",
    // which Node's and Bun's HTTP/2 servers reject as malformed; see the cluster issue's note.)
    const status = JSON.parse((await etcdctlAsync(endpoints.join(","), ["endpoint", "status", "-w", "json"])).stdout) as Array<{
      Status: { header: { member_id: number; raft_term: number }; leader: number; raftIndex: number };
    }>;
    assert.equal(status.length, 3);
    const leaders = new Set(status.map((s) => s.Status.leader));
    assert.equal(leaders.size, 1, "every member names the same leader");
    assert.equal(new Set(status.map((s) => s.Status.header.raft_term)).size, 1, "one term");

    const health = await etcdctlAsync(endpoints[0] as string, ["endpoint", "health", "--cluster"]);
    assert.equal(health.status, 0, health.stderr);
    assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
  });

  test("kill -9 of the leader during writes: a new leader, nothing acknowledged lost, the old leader catches up, equal HashKV", async () => {
    const oldLeader = await leaderOf(cluster, 10 * electionMs);
    const acknowledged = new Map<string, string>();
    let stop = false;
    // One writer per member, each sticking to its member (a dead member's writer stops).
    const writers = cluster.members.map(async (member, writer) => {
      const { kv } = clientsOf(member);
      for (let sequence = 0; !stop; sequence++) {
        const key = `kill/${writer}/${sequence}`;
        const value = `${writer}-${sequence}`;
        try {
          await kv.put({ key: bytes(key), value: bytes(value) }, { timeoutMs: 3000 });
          acknowledged.set(key, value);
        } catch {
          if (member === oldLeader && member.server === undefined) return;
          await sleep(20);
        }
      }
    });
    await sleep(800);
    await oldLeader.server?.kill();
    oldLeader.server = undefined;
    const killedAt = Date.now();
    const newLeader = await leaderOf(cluster, 10 * electionMs);
    const electedAfterMs = Date.now() - killedAt;
    assert.notEqual(newLeader, oldLeader);
    await sleep(800); // writes continue on the new leader
    await cluster.start(oldLeader);
    await sleep(500);
    stop = true;
    await Promise.all(writers);
    assert.ok(acknowledged.size > 20, `writes were acknowledged (${acknowledged.size})`);

    // The restarted member catches up; then every member holds every acknowledged write.
    const leaderClient = clientsOf(newLeader);
    const final = await leaderClient.kv.put({ key: bytes("kill/final"), value: bytes("x") });
    const target = final.header?.revision ?? 0n;
    for (const member of cluster.members) {
      const { kv } = clientsOf(member);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const range = await kv.range({ key: bytes("kill/"), rangeEnd: bytes("kill0"), serializable: true });
        if ((range.header?.revision ?? 0n) >= target || Date.now() > deadline) break;
        await sleep(100);
      }
      const range = await kv.range({ key: bytes("kill/"), rangeEnd: bytes("kill0"), serializable: true });
      const found = new Map(range.kvs.map((kv) => [text(kv.key), text(kv.value)]));
      for (const [key, value] of acknowledged) assert.equal(found.get(key), value, `${member.name} has acknowledged ${key}`);
    }
    const hashes = await Promise.all(
      cluster.members.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision: target })).hash),
    );
    assert.equal(new Set(hashes).size, 1, `equal HashKV at revision ${target}: ${hashes.join(", ")}`);
    assert.ok(electedAfterMs < 10 * electionMs, `new leader after ${electedAfterMs} ms`);
  });

  test("concurrent linearizable reads on a follower (batched into ReadIndex rounds) each see every write acknowledged before they began", async () => {
    const leader = await leaderOf(cluster, 10 * electionMs);
    const follower = cluster.members.find((member) => member !== leader && member.server !== undefined) as ClusterMember;
    const writer = clientsOf(leader).kv;
    const reader = clientsOf(follower).kv;
    let acknowledged = 0n;
    let writing = true;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        const put = await writer.put({ key: bytes("batch/counter"), value: bytes(String(i)) });
        acknowledged = put.header?.revision ?? acknowledged;
      }
    })();
    const reads = Array.from({ length: 200 }, async (_, i) => {
      await sleep(i * 2);
      const floor = acknowledged;
      const range = await reader.range({ key: bytes("batch/counter") });
      assert.ok((range.kvs[0]?.modRevision ?? 0n) >= floor, `read ${i} saw revision ${range.kvs[0]?.modRevision}, a write at ${floor} was acknowledged before it began`);
    });
    await Promise.all(reads);
    writing = false;
    await writes;
  });
});
