// Membership through etcdctl on a real 3-member cluster: move-leader, member
// add (learner), promote refused while the learner is not in sync, update,
// remove, and the errors etcd gives for bad requests.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync } from "../support/processes.ts";
import { electionMs, startCluster, type TestCluster } from "../support/cluster.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface StatusEntry {
  Endpoint: string;
  Status: { header: { member_id: number }; leader: number };
}

async function statuses(cluster: TestCluster): Promise<StatusEntry[]> {
  const result = await etcdctlAsync(cluster.endpoints().join(","), ["endpoint", "status", "-w", "json"]);
  return JSON.parse(result.stdout) as StatusEntry[];
}

async function waitForLeader(cluster: TestCluster): Promise<StatusEntry> {
  const deadline = Date.now() + 10 * electionMs;
  while (Date.now() < deadline) {
    const all = await statuses(cluster).catch(() => []);
    const leader = all.find((s) => s.Status.leader !== 0 && s.Status.leader === s.Status.header.member_id);
    if (leader !== undefined) return leader;
    await sleep(100);
  }
  throw new Error("no leader");
}

const hex = (id: number | bigint) => BigInt(id).toString(16);

describe("membership with etcdctl", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
    await waitForLeader(cluster);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("move-leader hands leadership to the named member", async () => {
    const leader = await waitForLeader(cluster);
    const target = (await statuses(cluster)).find((s) => s.Status.header.member_id !== leader.Status.header.member_id) as StatusEntry;
    const moved = await etcdctlAsync(leader.Endpoint, ["move-leader", hex(target.Status.header.member_id)]);
    assert.equal(moved.status, 0, moved.stderr);
    assert.match(moved.stdout, new RegExp(`Leadership transferred from ${hex(leader.Status.header.member_id)} to ${hex(target.Status.header.member_id)}`));
    assert.equal((await waitForLeader(cluster)).Status.header.member_id, target.Status.header.member_id);
    // etcdctl itself refuses when the endpoint is not the leader (it reads our status to know).
    const follower = (await statuses(cluster)).find((s) => s.Status.header.member_id !== target.Status.header.member_id) as StatusEntry;
    const refused = await etcdctlAsync(follower.Endpoint, ["move-leader", hex(leader.Status.header.member_id)]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /no leader endpoint given/);
  });

  test("member add --learner, promote refused until in sync, update, remove", async () => {
    const endpoint = cluster.endpoints()[0] as string;
    const added = await etcdctlAsync(endpoint, ["member", "add", "m4", "--learner", "--peer-urls=http://127.0.0.1:1"]);
    assert.equal(added.status, 0, added.stderr);
    const id = /Member\s+([0-9a-f]+) added to cluster/.exec(added.stdout)?.[1] as string;
    assert.ok(id !== undefined, added.stdout);
    assert.match(added.stdout, /ETCD_INITIAL_CLUSTER_STATE="existing"/);

    let list = await etcdctlAsync(endpoint, ["member", "list"]);
    assert.match(list.stdout, new RegExp(`${id}, unstarted, , http://127.0.0.1:1, , true`));

    const duplicate = await etcdctlAsync(endpoint, ["member", "add", "m5", "--peer-urls=http://127.0.0.1:1"]);
    assert.match(duplicate.stderr, /etcdserver: Peer URLs already exists/);

    const leader = await waitForLeader(cluster);
    const promote = await etcdctlAsync(leader.Endpoint, ["member", "promote", id]);
    assert.notEqual(promote.status, 0);
    assert.match(promote.stderr, /can only promote a learner member which is in sync with leader/);

    const updated = await etcdctlAsync(endpoint, ["member", "update", id, "--peer-urls=http://127.0.0.1:2"]);
    assert.equal(updated.status, 0, updated.stderr);
    list = await etcdctlAsync(endpoint, ["member", "list"]);
    assert.match(list.stdout, /http:\/\/127\.0\.0\.1:2, , true/);

    const removed = await etcdctlAsync(endpoint, ["member", "remove", id]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stdout, new RegExp(`Member\\s+${id} removed from cluster`));
    list = await etcdctlAsync(endpoint, ["member", "list"]);
    assert.doesNotMatch(list.stdout, new RegExp(id));
    const missing = await etcdctlAsync(endpoint, ["member", "remove", id]);
    assert.match(missing.stderr, /etcdserver: member not found/);

    // The cluster still serves writes with its three voters.
    assert.equal((await etcdctlAsync(endpoint, ["put", "after-membership", "ok"])).stdout, "OK\n");
  });
});
