// Row A2 of ../shared/reliability.md: hostile peers. An outsider who reaches
// the peer port of a real 3-member cluster (plaintext: no peer TLS) forges
// Raft messages and snapshots, while a well-behaved client writes and reads on
// the leader. Whatever comes from a non-member is refused before any state
// changes; what claims a member's id but is inconsistent with the log (an
// AppResp past the leader's last index) is dropped by the Raft core; no member
// dies; a snapshot header announcing 2 GiB allocates nothing; and afterwards
// every acknowledged write is present and HashKV is equal on every member.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { encodeMessages, encodeSnapshotHeader } from "../../src/peer/codec.ts";
import { peerPaths, peerRequestHeaders } from "../../src/peer/headers.ts";
import { MessageType, type Message } from "../../src/raft/types.ts";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { describeReport, mebibyte, MemoryWatch, rssBytes, WellBehavedClient } from "./observe.ts";

/** How far a member's memory may grow while it is sent a snapshot header announcing 2 GiB. */
const snapshotClaimRssGrowthBytesMax = 64 * mebibyte;

interface Ids {
  clusterId: bigint;
  memberIds: Map<ClusterMember, number>;
}

function forged(fields: Partial<Message> & Pick<Message, "type" | "from" | "to" | "term">): Message {
  return { logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0), ...fields };
}

/** One POST to a peer URL, the body written whole (or `hold` ms of silence after it); answers the HTTP status. */
async function peerPost(peerPort: number, path: string, headers: Record<string, string>, body: Uint8Array, holdMs = 0): Promise<number> {
  const session = http2.connect(`http://127.0.0.1:${peerPort}`);
  session.on("error", () => {});
  try {
    return await new Promise<number>((resolve) => {
      const request = session.request({ ":method": "POST", ":path": path, ...headers });
      request.on("error", () => resolve(-1));
      request.on("response", (head) => resolve(Number(head[":status"])));
      request.write(body);
      if (holdMs === 0) request.end();
      else setTimeout(() => request.close(), holdMs);
      setTimeout(() => resolve(0), 5000 + holdMs);
    });
  } finally {
    session.destroy();
  }
}

function frameOf(payload: Uint8Array): Uint8Array {
  const framed = new Uint8Array(4 + payload.length);
  new DataView(framed.buffer).setUint32(0, payload.length);
  framed.set(payload, 4);
  return framed;
}

describe("abuse: hostile peers on the peer port", { timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let ids: Ids;
  let leader: ClusterMember;
  let follower: ClusterMember;
  let client: WellBehavedClient;
  const outsider = 0x1234abcd;

  before(async () => {
    cluster = await startCluster(3);
    leader = await leaderOf(cluster);
    follower = cluster.members.find((member) => member !== leader) as ClusterMember;
    const memberIds = new Map<ClusterMember, number>();
    let clusterId = 0n;
    for (const member of cluster.members) {
      const status = await clientsOf(member).maintenance.status({});
      memberIds.set(member, Number(status.header?.memberId));
      clusterId = status.header?.clusterId ?? 0n;
    }
    ids = { clusterId, memberIds };
    client = new WellBehavedClient(leader.clientPort, "abuse-peer");
  });
  after(async () => {
    await client?.stop();
    await cluster?.stopAll();
  });

  const idOf = (member: ClusterMember) => ids.memberIds.get(member) as number;
  const termOf = async (member: ClusterMember) => Number((await clientsOf(member).maintenance.status({})).raftTerm);
  const revisionOf = async (member: ClusterMember) => (await clientsOf(member).kv.range({ key: new TextEncoder().encode("x"), serializable: true })).header?.revision;
  const streamTo = (to: ClusterMember, from: number, messages: Message[]) =>
    peerPost(to.peerPort, peerPaths.stream, peerRequestHeaders(from, idOf(to), ids.clusterId), frameOf(encodeMessages(messages)), 300);

  test("a MsgApp from an id that was never a member is refused and changes nothing", async () => {
    const term = await termOf(follower);
    const entry = { term, index: 1_000_000, type: 0, data: new TextEncoder().encode("forged") };
    const status = await streamTo(follower, outsider, [
      forged({ type: MessageType.App, from: outsider, to: idOf(follower), term, index: 0, logTerm: 0, entries: [entry], commit: 1_000_000 }),
    ]);
    assert.equal(status, 404);
    assert.equal(await termOf(follower), term);
  });

  test("from = 0 and from = the receiver itself are refused", async () => {
    for (const from of [0, idOf(follower)]) {
      const status = await streamTo(follower, from, [forged({ type: MessageType.Heartbeat, from, to: idOf(follower), term: 1 })]);
      assert.equal(status, 404, `from ${from.toString(16)}`);
    }
  });

  test("a heartbeat from a non-member with term + 1000 forces no election", async () => {
    const term = await termOf(leader);
    for (const member of cluster.members) {
      const status = await streamTo(member, outsider, [forged({ type: MessageType.Heartbeat, from: outsider, to: idOf(member), term: term + 1000 })]);
      assert.equal(status, 404);
    }
    await sleep(1000);
    for (const member of cluster.members) assert.ok((await termOf(member)) < term + 1000, `${member.name} took the forged term`);
    assert.equal((await leaderOf(cluster)).name, leader.name, "the leader did not change");
  });

  test("a snapshot from a non-member is refused", async () => {
    const term = await termOf(follower);
    const message = forged({
      type: MessageType.Snap,
      from: outsider,
      to: idOf(follower),
      term,
      snapshot: { metadata: { index: 1_000_000, term, confState: { voters: [outsider], learners: [] } as never }, data: new Uint8Array(1024) },
    });
    const body = new Uint8Array([...frameOf(encodeSnapshotHeader(message)), ...new Uint8Array(1024)]);
    const status = await peerPost(follower.peerPort, peerPaths.snapshot, peerRequestHeaders(outsider, idOf(follower), ids.clusterId), body);
    assert.equal(status, 404);
  });

  test("an AppResp past the leader's last index, in a member's name, is dropped and the leader lives", async () => {
    const term = await termOf(leader);
    // The forger takes over this follower's stream to the leader for a moment: without peer TLS a claimed id is all there is.
    const status = await streamTo(leader, idOf(follower), [
      forged({ type: MessageType.AppResp, from: idOf(follower), to: idOf(leader), term, index: 1_000_000_000 }),
      forged({ type: MessageType.AppResp, from: idOf(follower), to: idOf(leader), term, index: 5, reject: true, rejectHint: 1_000_000_000 }),
    ]);
    assert.equal(status, 200);
    await sleep(1500);
    for (const member of cluster.members) assert.equal(member.server?.process.exitCode, null, `${member.name} died:\n${member.server?.output().slice(-2000)}`);
    assert.equal((await leaderOf(cluster)).name, leader.name);
  });

  test("a snapshot header announcing 2 GiB, in the leader's name, allocates nothing and is dropped", async () => {
    const pid = follower.server?.process.pid as number;
    const before = rssBytes(pid) ?? 0;
    const memory = new MemoryWatch(pid, 20);
    const term = await termOf(follower);
    const message = forged({
      type: MessageType.Snap,
      from: idOf(leader),
      to: idOf(follower),
      term,
      // Only the announced length is read by the encoder: nothing of 2 GiB exists here either.
      snapshot: { metadata: { index: 1_000_000, term, confState: { voters: [...ids.memberIds.values()], learners: [] } as never }, data: { length: 2 * 1024 * mebibyte } as Uint8Array },
    });
    const status = await peerPost(follower.peerPort, peerPaths.snapshot, peerRequestHeaders(idOf(leader), idOf(follower), ids.clusterId), frameOf(encodeSnapshotHeader(message)), 2000);
    const peak = memory.stop();
    assert.ok(peak - before <= snapshotClaimRssGrowthBytesMax, `RSS ${before / mebibyte} → ${peak / mebibyte} MB (answer ${status})`);
    assert.equal(follower.server?.process.exitCode, null);
  });

  test("afterwards: no member died, the client was served, every acknowledged write is there, HashKV is equal", async () => {
    const report = await client.stop();
    assert.equal(report.failures, 0, describeReport(report));
    for (const member of cluster.members) assert.equal(member.server?.process.exitCode, null, `${member.name} died`);
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    for (const [key, value] of report.acknowledged) {
      const answer = await clientsOf(follower).kv.range({ key: encoder.encode(key) });
      assert.equal(decoder.decode(answer.kvs[0]?.value), value, key);
    }
    // Every member at the same revision, then the same hash of it.
    const target = await revisionOf(leader);
    const deadline = Date.now() + 10_000;
    for (const member of cluster.members) {
      while ((await revisionOf(member)) !== target && Date.now() < deadline) await sleep(100);
    }
    const hashes = await Promise.all(cluster.members.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision: target ?? 0n })).hash));
    assert.equal(new Set(hashes).size, 1, `HashKV differs: ${hashes.join(", ")}`);
  });
});
