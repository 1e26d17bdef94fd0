// A member removed while it was cut off never hears the log entry that removed
// it; the others refuse its peer streams with 410 "removed member". Like
// etcd's, it then stops by itself (the path it takes when it applies its own
// removal, exit 0), and the cluster goes on without it (issue 24).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("a member removed while partitioned", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, { proxies: true });
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("stops itself with the removed message once a member answers it 410, and the cluster keeps serving", { timeout: 120_000 }, async () => {
    const links = cluster.links;
    assert.ok(links !== undefined);
    const leader = await leaderOf(cluster);
    const removed = cluster.members.find((member) => member !== leader) as ClusterMember;
    const removedId = (await clientsOf(removed).maintenance.status({})).header?.memberId;
    assert.ok(removedId !== undefined);
    const process = removed.server?.process;
    assert.ok(process !== undefined);
    const exited = new Promise<number | null>((resolve) => process.once("exit", (code) => resolve(code)));

    links.isolate(removed.name);
    await clientsOf(leader).cluster.memberRemove({ ID: removedId });
    const { kv } = clientsOf(leader);
    await kv.put({ key: bytes("removed/before-heal"), value: bytes("a") });
    links.heal();

    const deadlineMs = 15_000;
    const code = await Promise.race([exited, sleep(deadlineMs).then(() => "running" as const)]);
    assert.notEqual(code, "running", `still running ${deadlineMs} ms after the heal; its log:\n${removed.server?.output().slice(-6000)}`);
    assert.equal(code, 0);
    assert.match(removed.server?.output() ?? "", /permanently removed from the cluster/);
    removed.server = undefined;

    // Not disrupted: the same leader, writes go on, the two left agree.
    const put = await kv.put({ key: bytes("removed/after"), value: bytes("b") });
    const revision = put.header?.revision ?? 0n;
    assert.equal((await leaderOf(cluster)).name, leader.name);
    const left = cluster.members.filter((member) => member !== removed);
    const list = await clientsOf(leader).cluster.memberList({});
    assert.equal(list.members.length, 2);
    const hashes = await Promise.all(left.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision })).hash));
    assert.equal(new Set(hashes).size, 1, `equal HashKV: ${hashes.join(", ")}`);
  });
});
