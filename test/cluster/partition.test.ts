// Network faults between the members of a real 3-member cluster, injected by
// the peer proxies of test/support/peer-proxy.ts (the client ports are never
// touched): an isolated leader, a partitioned follower, an asymmetric link,
// and slow lossy links. In each, the side with a quorum keeps taking writes,
// and after the heal every member converges: the same revision, the same
// HashKV at it, and every acknowledged write present.
//
// What a member cut off from the quorum answers, as etcd 3.4 does:
// - its leader role ends by check-quorum (raft.go: a leader that has not heard
//   from a quorum for an election timeout becomes a follower), so it has no
//   leader;
// - a write waits for a leader (raft/node.go stops taking proposals while
//   there is none) until the request timeout (5 s + 2 election timeouts), then
//   fails with the context's error: gRPC Unknown "context deadline exceeded";
// - a linearizable read's ReadIndex is dropped with no leader, so it fails at
//   the request timeout with Unavailable "etcdserver: request timed out"
//   (etcdserver/v3_server.go requestCurrentIndex);
// - a serializable read is answered from local state.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { clientsOf, electionMs, heartbeatMs, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import type { Links } from "../support/peer-proxy.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

/** etcd's request timeout for these timings: 5 s plus two election timeouts. */
const requestTimeoutMs = 5000 + 2 * electionMs;

/** The member that a member of `among` reports as leader and that agrees it leads. */
async function leaderAmong(among: readonly ClusterMember[], deadlineMs: number): Promise<ClusterMember> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    for (const member of among) {
      try {
        const status = await clientsOf(member).maintenance.status({}, { timeoutMs: 2000 });
        if (status.leader !== 0n && status.leader === status.header?.memberId) return member;
      } catch {
        // no answer yet
      }
    }
    await sleep(50);
  }
  throw new Error(`no leader among ${among.map((m) => m.name).join(", ")} within ${deadlineMs} ms`);
}

/**
 * The leader once every member has named it, in one term, for `steadyMs` on
 * end: after an earlier fault's heal a catching-up member can still cost an
 * election or two, which a test that needs a steady leader must wait out.
 */
async function steadyLeader(among: readonly ClusterMember[], steadyMs: number, deadlineMs: number): Promise<ClusterMember> {
  const deadline = Date.now() + deadlineMs;
  let since = 0;
  let seen = "";
  while (Date.now() < deadline) {
    const views = await Promise.all(
      among.map(async (member) => {
        try {
          const status = await clientsOf(member).maintenance.status({}, { timeoutMs: 1000 });
          return `${status.leader}@${status.raftTerm}`;
        } catch {
          return "none";
        }
      }),
    );
    const view = views[0] as string;
    const agreed = !view.startsWith("0@") && view !== "none" && views.every((other) => other === view);
    if (!agreed || view !== seen) {
      seen = agreed ? view : "";
      since = Date.now();
    } else if (Date.now() - since >= steadyMs) {
      return await leaderAmong(among, deadlineMs);
    }
    await sleep(50);
  }
  throw new Error(`no steady leader among ${among.map((m) => m.name).join(", ")} within ${deadlineMs} ms`);
}

/** One writer per member, each sticking to its member; records what was acknowledged. */
function startWriters(members: readonly ClusterMember[], prefix: string) {
  const acknowledged = new Map<string, string>();
  let stopped = false;
  const writers = members.map(async (member) => {
    const { kv } = clientsOf(member);
    for (let sequence = 0; !stopped; sequence++) {
      const key = `${prefix}/${member.name}/${sequence}`;
      const value = `${member.name}-${sequence}`;
      try {
        await kv.put({ key: bytes(key), value: bytes(value) }, { timeoutMs: 2000 });
        acknowledged.set(key, value);
      } catch {
        await sleep(50);
      }
    }
  });
  return {
    acknowledged,
    /** Waits until `count` more writes than now were acknowledged; false if not within `deadlineMs`. */
    async progress(count: number, deadlineMs: number): Promise<boolean> {
      const target = acknowledged.size + count;
      const deadline = Date.now() + deadlineMs;
      while (acknowledged.size < target && Date.now() < deadline) await sleep(50);
      return acknowledged.size >= target;
    },
    async stop(): Promise<Map<string, string>> {
      stopped = true;
      await Promise.all(writers);
      return acknowledged;
    },
  };
}

/** A write that must eventually succeed, through any member; its revision. */
async function finalWrite(members: readonly ClusterMember[], key: string, deadlineMs: number): Promise<bigint> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const member = members[attempt % members.length] as ClusterMember;
    try {
      const response = await clientsOf(member).kv.put({ key: bytes(key), value: bytes("final") }, { timeoutMs: 3000 });
      return response.header?.revision ?? 0n;
    } catch (error) {
      lastError = error;
      await sleep(100);
    }
  }
  throw new Error(`no final write within ${deadlineMs} ms: ${String(lastError)}`);
}

/**
 * After a heal: a final write succeeds, every member reaches the same revision
 * at or past it (no writer runs, though a write that failed at the client may
 * still land: etcd allows a failed write to take effect later), the HashKV at
 * that revision is the same on every member, and every acknowledged write is
 * present everywhere.
 */
async function assertConverged(cluster: TestCluster, prefix: string, acknowledged: ReadonlyMap<string, string>): Promise<void> {
  const members = cluster.members;
  for (const member of members) assert.equal(member.server?.process.exitCode, null, `${member.name} still runs:\n${member.server?.output().slice(-2000)}`);
  const target = await finalWrite(members, `${prefix}/final`, 60 * electionMs);
  const deadline = Date.now() + 60 * electionMs;
  let revisions: bigint[] = [];
  for (;;) {
    revisions = await Promise.all(
      members.map(async (member) => {
        try {
          const range = await clientsOf(member).kv.range({ key: bytes(`${prefix}/final`), serializable: true }, { timeoutMs: 1000 });
          return range.header?.revision ?? -1n;
        } catch {
          return -1n; // busy catching up
        }
      }),
    );
    const first = revisions[0] ?? -1n;
    if ((first >= target && revisions.every((revision) => revision === first)) || Date.now() > deadline) break;
    await sleep(100);
  }
  const revision = revisions[0] ?? -1n;
  assert.ok(revision >= target, `revision ${revision} reached the final write's ${target}`);
  assert.deepEqual(revisions, members.map(() => revision), `every member at one revision: ${revisions.join(" ")}`);
  const hashes = await Promise.all(members.map(async (member) => await clientsOf(member).maintenance.hashKV({ revision })));
  // HashKV covers history up to `revision` only, so a late failed write cannot change it.
  assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, `equal HashKV at revision ${revision}: ${hashes.map((h) => h.hash).join(", ")}`);
  for (const member of members) {
    const range = await clientsOf(member).kv.range({ key: bytes(`${prefix}/`), rangeEnd: bytes(`${prefix}0`), serializable: true });
    const found = new Map(range.kvs.map((kv) => [text(kv.key), text(kv.value)]));
    for (const [key, value] of acknowledged) assert.equal(found.get(key), value, `${member.name} holds acknowledged ${key}`);
  }
}

/** A put and a linearizable get of it on each of `members`. */
async function assertServing(members: readonly ClusterMember[], key: string): Promise<void> {
  const revision = await finalWrite(members, key, 40 * electionMs);
  for (const member of members) {
    const range = await clientsOf(member).kv.range({ key: bytes(key) }, { timeoutMs: 5000 });
    assert.equal(range.kvs.length, 1, `linearizable get of ${key} on ${member.name}`);
    assert.ok((range.header?.revision ?? 0n) >= revision, `${member.name} read at revision ${range.header?.revision}, the put was at ${revision}`);
  }
}

async function expectError(call: Promise<unknown>, code: Code, message: string, what: string): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ConnectError, `${what}: ${String(error)}`);
    assert.equal(error.code, code, `${what}: code ${Code[error.code]} (${error.rawMessage})`);
    assert.equal(error.rawMessage, message, what);
    return true;
  });
}

describe("peer network partitions (3 members, proxied peer links)", () => {
  let cluster: TestCluster;
  let links: Links;
  let members: ClusterMember[];
  before(async () => {
    // A loaded 2-core machine can take long to start three processes; the faults need no haste.
    cluster = await startCluster(3, { proxies: true, heartbeatMs, electionMs, readyTimeoutMs: 90_000 });
    links = cluster.links as Links;
    members = cluster.members;
    await leaderAmong(members, 60 * electionMs);
  }, { timeout: 200_000 });
  after(async () => {
    links?.heal();
    await cluster?.stopAll();
  });

  test("an isolated leader: the majority elects another and serves; the old leader refuses as etcd does; it converges after the heal", { timeout: 120_000 }, async () => {
    const oldLeader = await leaderAmong(members, 60 * electionMs);
    const majority = members.filter((m) => m !== oldLeader);
    await finalWrite(members, "a/before", 40 * electionMs);
    const writers = startWriters(members, "a");
    assert.ok(await writers.progress(5, 30_000), "writes before the fault");

    links.isolate(oldLeader.name);
    const isolatedAt = Date.now();
    const newLeader = await leaderAmong(majority, 60 * electionMs);
    const electedAfterMs = Date.now() - isolatedAt;
    assert.ok(await writers.progress(5, 60 * electionMs), "the majority keeps taking writes");
    await assertServing(majority, "a/majority");

    // The old leader steps down (check-quorum) and then has no leader.
    const { kv, maintenance } = clientsOf(oldLeader);
    const deadline = Date.now() + 60 * electionMs;
    let leaderSeen = -1n;
    while (Date.now() < deadline) {
      leaderSeen = (await maintenance.status({}, { timeoutMs: 5000 })).leader;
      if (leaderSeen === 0n) break;
      await sleep(50);
    }
    assert.equal(leaderSeen, 0n, "the isolated member knows no leader");
    const started = Date.now();
    await Promise.all([
      expectError(kv.put({ key: bytes("a/minority"), value: bytes("lost") }, { timeoutMs: 3 * requestTimeoutMs }), Code.Unknown, "context deadline exceeded", "put on the isolated member"),
      expectError(kv.range({ key: bytes("a/before") }, { timeoutMs: 3 * requestTimeoutMs }), Code.Unavailable, "etcdserver: request timed out", "linearizable get on the isolated member"),
    ]);
    assert.ok(Date.now() - started >= requestTimeoutMs - 500, "refused only at the request timeout, as etcd");
    const local = await kv.range({ key: bytes("a/before"), serializable: true }, { timeoutMs: 2000 });
    assert.equal(local.kvs.map((k) => text(k.value)).join(), "final", "serializable reads are answered locally");

    const acknowledged = await writers.stop();
    links.heal();
    await assertConverged(cluster, "a", acknowledged);
    const minority = await clientsOf(newLeader).kv.range({ key: bytes("a/minority") });
    assert.equal(minority.kvs.length, 0, "the refused write never happened");
    assert.ok(electedAfterMs < 60 * electionMs, `a new leader ${electedAfterMs} ms after the isolation`);
  });

  test("a partitioned follower: writes continue; after the heal it catches up", { timeout: 120_000 }, async () => {
    const leader = await leaderAmong(members, 60 * electionMs);
    const follower = members.find((m) => m !== leader) as ClusterMember;
    const writers = startWriters(members.filter((m) => m !== follower), "b");
    assert.ok(await writers.progress(5, 30_000), "writes before the fault");
    links.partition([follower.name], members.filter((m) => m !== follower).map((m) => m.name));
    // Long enough for the follower to time out its leader and campaign alone.
    await sleep(3 * electionMs);
    assert.ok(await writers.progress(5, 60 * electionMs), "writes continue without the follower");
    await assertServing(members.filter((m) => m !== follower), "b/majority");
    const acknowledged = await writers.stop();
    links.heal();
    await assertConverged(cluster, "b", acknowledged);
  });

  // Found by the reliability runs (L1 seed 12): a ReadIndex lost on its way to
  // the leader stalled every linearizable read on that member until the
  // request timeout. etcd's read loop sends it again every 500 ms.
  test("a ReadIndex request lost on its way to the leader is sent again: the read is answered once the link heals", { timeout: 120_000 }, async () => {
    // The follower must keep its leader through the cut (the previous test's heal may still cost an election).
    const leader = await steadyLeader(members, 3 * electionMs, 60 * electionMs);
    const follower = members.find((m) => m !== leader) as ClusterMember;
    await finalWrite(members, "r/before", 40 * electionMs);
    // The follower still hears the leader (no election), but what it sends is lost.
    links.cut(follower.name, leader.name);
    const read = clientsOf(follower).kv.range({ key: bytes("r/before") }, { timeoutMs: 3 * requestTimeoutMs });
    await sleep(3 * heartbeatMs);
    links.heal();
    // Without a resend this fails with "etcdserver: request timed out" at the request timeout.
    const response = await read;
    assert.equal(response.kvs.map((kv) => text(kv.value)).join(), "final");
  });

  test("asymmetric links: a leader that can send but not receive, then one that can receive but not send", { timeout: 120_000 }, async () => {
    for (const [phase, cutLeader] of [
      ["deaf", (leader: string, other: string) => links.oneWay(leader, other)],
      ["mute", (leader: string, other: string) => links.oneWay(other, leader)],
    ] as const) {
      const leader = await leaderAmong(members, 60 * electionMs);
      const others = members.filter((m) => m !== leader);
      const writers = startWriters(members, `c-${phase}`);
      assert.ok(await writers.progress(5, 30_000), `${phase}: writes before the fault`);
      for (const other of others) cutLeader(leader.name, other.name);
      await sleep(2 * electionMs);
      assert.ok(await writers.progress(5, 60 * electionMs), `${phase}: the cluster makes progress`);
      await assertServing(others, `c-${phase}/majority`);
      const acknowledged = await writers.stop();
      links.heal();
      await assertConverged(cluster, `c-${phase}`, acknowledged);
    }
  });

  test("slow lossy links (20-50 ms, 5 % of chunks lost) and reset connections: progress, then convergence after the heal", { timeout: 120_000 }, async () => {
    const writers = startWriters(members, "d");
    assert.ok(await writers.progress(5, 30_000), "writes before the fault");
    for (const proxy of links.all()) {
      proxy.delay(20, 30);
      proxy.dropRate(0.05);
    }
    const faultAt = Date.now();
    assert.ok(await writers.progress(5, 60 * electionMs), "writes acknowledged over the lossy links");
    // Every peer connection reset at once, still lossy: the transport redials.
    for (const proxy of links.all()) proxy.dropConnections();
    assert.ok(await writers.progress(5, 60 * electionMs), "writes acknowledged after the resets");
    await sleep(Math.max(0, 3000 - (Date.now() - faultAt)));
    const dropped = links.all().reduce((sum, proxy) => sum + proxy.droppedChunks, 0);
    assert.ok(dropped > 0, "the links did lose chunks");
    const acknowledged = await writers.stop();
    links.heal();
    await assertConverged(cluster, "d", acknowledged);
  });
});
