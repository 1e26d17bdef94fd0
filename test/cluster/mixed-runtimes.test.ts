// A cluster whose members run on three runtimes, one Node, one Bun and one
// Deno member (issue 16): they elect, replicate, fail over, catch a member up
// by snapshot, and share leases and watches, whichever runtime leads. The
// order of the runtimes starts with the one running the test, so each pass of
// the suite starts a different runtime first.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf, eventually, leaderOf, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { runtimeName, type RuntimeName } from "../support/runtime.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value);
const all: RuntimeName[] = ["node", "bun", "deno"];
const order = [...all.slice(all.indexOf(runtimeName)), ...all.slice(0, all.indexOf(runtimeName))];

const logOf = (member: ClusterMember) => member.server?.output() ?? "";

/** The member's runtime, as its own first log line says it ("runtime":"bun 1.4.5"). */
function runtimeOf(member: ClusterMember): string {
  return /"runtime":"(\w+) /.exec(logOf(member))?.[1] ?? "unknown";
}

async function valueOn(member: ClusterMember, key: string): Promise<string | undefined> {
  const range = await clientsOf(member).kv.range({ key: bytes(key), serializable: true }, { timeoutMs: 2000 });
  return range.kvs[0] === undefined ? undefined : text(range.kvs[0].value);
}

describe(`a cluster of one Node, one Bun and one Deno member (${order.join(", ")})`, { timeout: 180_000 }, () => {
  let cluster: TestCluster;
  before(async () => {
    // A short log, so a member that was down catches up by the leader's snapshot.
    cluster = await startCluster(3, { runtime: order, extraArgs: ["--snapshot-count", "40", "--experimental-snapshot-catchup-entries", "10"] });
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("each member runs on its runtime, and a put through each is read on every other", async () => {
    assert.deepEqual(cluster.members.map(runtimeOf), order);
    await leaderOf(cluster);
    for (const [i, writer] of cluster.members.entries()) {
      const put = await clientsOf(writer).kv.put({ key: bytes(`from/${i}`), value: bytes(runtimeOf(writer)) }, { timeoutMs: 5000 });
      for (const reader of cluster.members) {
        // Linearizable: through Raft's ReadIndex on each runtime.
        const range = await clientsOf(reader).kv.range({ key: bytes(`from/${i}`) }, { timeoutMs: 5000 });
        assert.equal(text(range.kvs[0]?.value), runtimeOf(writer), `${runtimeOf(reader)} reads what ${runtimeOf(writer)} wrote`);
        assert.ok((range.header?.revision ?? 0n) >= (put.header?.revision ?? 0n));
      }
    }
  });

  test("a lease granted through one runtime is kept and revoked through the others, with its keys", async () => {
    const [first, second, third] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    const { ID } = await clientsOf(first).lease.leaseGrant({ TTL: 60n }, { timeoutMs: 5000 });
    await clientsOf(second).kv.put({ key: bytes("leased"), value: bytes("yes"), lease: ID }, { timeoutMs: 5000 });
    const alive = await clientsOf(third).lease.leaseTimeToLive({ ID, keys: true }, { timeoutMs: 5000 });
    assert.ok(alive.TTL > 0n, `TTL ${alive.TTL}`);
    assert.deepEqual(alive.keys.map(text), ["leased"]);
    await clientsOf(third).lease.leaseRevoke({ ID }, { timeoutMs: 5000 });
    for (const member of cluster.members) await eventually(`${runtimeOf(member)} drops the leased key`, async () => (await valueOn(member, "leased")) === undefined);
  });

  test("a watch on one runtime sees, in order, what the others write", async () => {
    const [watcher, ...writers] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    const start = await clientsOf(watcher).kv.put({ key: bytes("watched/start"), value: bytes("0") }, { timeoutMs: 5000 });
    const abort = new AbortController();
    const requests = (async function* () {
      yield { requestUnion: { case: "createRequest" as const, value: { key: bytes("watched/"), rangeEnd: bytes("watched0"), startRevision: (start.header?.revision ?? 0n) + 1n } } };
      await new Promise((resolve) => abort.signal.addEventListener("abort", resolve));
    })();
    const written: bigint[] = [];
    for (let i = 0; i < 20; i++) {
      const writer = writers[i % writers.length] as ClusterMember;
      written.push((await clientsOf(writer).kv.put({ key: bytes(`watched/${i % 3}`), value: bytes(`${i}`) }, { timeoutMs: 5000 })).header?.revision ?? 0n);
    }
    const seen: bigint[] = [];
    try {
      for await (const response of clientsOf(watcher).watch.watch(requests, { signal: abort.signal, timeoutMs: 20_000 })) {
        for (const event of response.events) seen.push(event.kv?.modRevision ?? 0n);
        if (seen.length >= written.length) break;
      }
    } finally {
      abort.abort();
    }
    assert.deepEqual(seen, written);
  });

  test("the leader stops: another runtime takes over, writes go on, and the old leader catches up by snapshot", async () => {
    const oldLeader = await leaderOf(cluster);
    const oldRuntime = runtimeOf(oldLeader);
    await oldLeader.server?.kill();
    oldLeader.server = undefined;
    const newLeader = await leaderOf(cluster, 20_000);
    assert.notEqual(newLeader, oldLeader);
    assert.notEqual(runtimeOf(newLeader), oldRuntime);
    // Past --snapshot-count while the old leader is down: it needs a snapshot from another runtime.
    let last = 0n;
    for (let i = 0; i < 100; i++) last = (await clientsOf(newLeader).kv.put({ key: bytes(`failover/${i % 5}`), value: bytes(`${i}`) }, { timeoutMs: 5000 })).header?.revision ?? 0n;
    await cluster.start(oldLeader);
    assert.equal(runtimeOf(oldLeader), oldRuntime);
    await eventually(`the restarted ${oldRuntime} member reaches revision ${last}`, async () => {
      const range = await clientsOf(oldLeader).kv.range({ key: bytes("failover/"), rangeEnd: bytes("failover0"), serializable: true }, { timeoutMs: 2000 });
      return (range.header?.revision ?? 0n) >= last;
    }, 30_000);
    for (const member of cluster.members) assert.equal(await valueOn(member, "failover/4"), "99", runtimeOf(member));
    assert.match(logOf(oldLeader), /applied snapshot from the leader/, "the old leader caught up by a snapshot");
  });
});
