// Member replace as etcd's robustness suite does it: remove a member, wipe
// it, add it back under the same peer URL, and start it empty with
// --initial-cluster-state existing. Found by test:long (member-replace under
// Bun, most seeds): the re-added member got its old id back (ids came from
// the peer URLs alone), replayed its predecessor's removal from the log as
// its own, and stopped itself as "permanently removed". An added member's id
// now also depends on the time of the add, and a removed id is never reused.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("member replace under the same peer URL", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("the new member gets a new id, replays the log (its predecessor's removal included) and keeps serving", { timeout: 120_000 }, async () => {
    await replaceThird("replace/");
  });

  // When the removed member led, the memberAdd sent to another member right
  // after timed out ("etcdserver: request timed out"), every time on Bun: its
  // TimeoutNow handover was refused by a successor that had already applied
  // the removal (every frame from a removed member was dropped), and a
  // proposal on a member still taking the removed member for leader was
  // forwarded to it and lost. Now the handover arrives, and a proposal waits
  // for a leader that is still a member.
  test("the same when the removed member is the leader: the next memberAdd is answered", { timeout: 120_000 }, async () => {
    const m3 = cluster.members[2] as ClusterMember;
    const id = (await clientsOf(m3).maintenance.status({})).header?.memberId;
    assert.ok(id !== undefined);
    const current = await leaderOf(cluster);
    if (current !== m3) await clientsOf(current).maintenance.moveLeader({ targetID: id });
    assert.equal(await leaderOf(cluster), m3, "m3 leads before its removal");
    await replaceThird("leader/");
  });

  /** Removes m3, wipes it, adds it back under the same peer URL and checks the new member. */
  async function replaceThird(prefix: string): Promise<void> {
    const [m1, m2, m3] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    const { kv } = clientsOf(m1);
    for (let i = 0; i < 20; i++) await kv.put({ key: bytes(`${prefix}${i}`), value: bytes(`v${i}`) });
    const oldId = (await clientsOf(m3).maintenance.status({})).header?.memberId;
    assert.ok(oldId !== undefined);

    await clientsOf(m1).cluster.memberRemove({ ID: oldId });
    await m3.server?.kill();
    rmSync(m3.dataDir, { recursive: true, force: true });
    const peerURL = `http://127.0.0.1:${m3.peerPort}`;
    const added = await clientsOf(m2).cluster.memberAdd({ peerURLs: [peerURL] });
    assert.ok(added.member !== undefined);
    assert.notEqual(added.member.ID, oldId, "a removed member's id is not given out again");

    m3.extraArgs = ["--initial-cluster-state", "existing"];
    await cluster.start(m3);
    const put = await kv.put({ key: bytes(`${prefix}last`), value: bytes("z") });
    const revision = put.header?.revision ?? 0n;
    const replaced = clientsOf(m3);
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const range = await replaced.kv.range({ key: bytes(prefix), rangeEnd: bytes(`${prefix.slice(0, -1)}0`), serializable: true });
        if ((range.header?.revision ?? 0n) >= revision) {
          assert.equal(range.count, 21n);
          break;
        }
      } catch {
        // starting up
      }
      assert.ok(Date.now() < deadline, `the replaced member did not reach revision ${revision}; its log:\n${m3.server?.output()}`);
      await sleep(100);
    }
    // It replayed the log (no snapshot needed), and did not take the removal as its own.
    assert.doesNotMatch(m3.server?.output() ?? "", /applied snapshot from the leader/);
    await sleep(1000);
    assert.doesNotMatch(m3.server?.output() ?? "", /permanently removed/);
    assert.equal((await replaced.maintenance.status({})).header?.memberId, added.member.ID);
    const hashes = await Promise.all(cluster.members.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision })).hash));
    assert.equal(new Set(hashes).size, 1, `equal HashKV: ${hashes.join(", ")}`);
  }
});
