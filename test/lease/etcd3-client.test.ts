// The etcd3 npm client (grpc-js, written by others) against a 3-member
// edgetcd cluster, talking to a follower only: its leases (grant, attach
// through lease.put and put().lease, keepaliveOnce, automatic keep-alive past
// the TTL, loss noticed after a revoke elsewhere, revoke deleting the keys,
// time-to-live), its locks (a held lock refuses a second acquire until it is
// released) and its elections (campaign, leader, observe, proclaim, resign
// handing over to the next candidate) behave as they do against etcd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Etcd3, EtcdLockFailedError } from "etcd3";
import { leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { until } from "./cluster-support.ts";

describe("the etcd3 npm client against a follower of a 3-member cluster", () => {
  let cluster: TestCluster;
  let client: Etcd3;
  before(async () => {
    cluster = await startCluster(3, { electionMs: 500 });
    const leader = await leaderOf(cluster);
    const follower = cluster.members.find((member) => member !== leader) as ClusterMember;
    client = new Etcd3({ hosts: `http://127.0.0.1:${follower.clientPort}` });
  }, { timeout: 120_000 });
  after(async () => {
    client?.close();
    await cluster?.stopAll();
  });

  test("lease: grant, attach keys, keepaliveOnce, time to live, revoke", { timeout: 60_000 }, async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    assert.match(id, /^\d+$/, "etcd3 hands lease ids out as decimal strings");
    await lease.put("etcd3/leased-a").value("a");
    await client.put("etcd3/leased-b").value("b").lease(id);
    assert.equal(await client.get("etcd3/leased-a").string(), "a");
    const once = await lease.keepaliveOnce();
    assert.equal(once.ID, id);
    assert.equal(once.TTL, "30");
    const alive = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.equal(alive.grantedTTL, "30");
    assert.ok(Number(alive.TTL) >= 28 && Number(alive.TTL) <= 30, `TTL ${alive.TTL}`);
    assert.deepEqual(alive.keys.map((key) => key.toString()).sort(), ["etcd3/leased-a", "etcd3/leased-b"]);
    const listed = await client.leaseClient.leaseLeases();
    assert.ok(listed.leases.some((status) => status.ID === id));
    await lease.revoke();
    assert.equal(lease.revoked(), true);
    assert.equal(await client.get("etcd3/leased-a").string(), null);
    assert.equal(await client.get("etcd3/leased-b").string(), null);
    const gone = await client.leaseClient.leaseTimeToLive({ ID: id });
    assert.equal(gone.TTL, "-1");
  });

  test("lease: automatic keep-alive holds a short lease past its TTL; a revoke elsewhere is noticed as lost", { timeout: 60_000 }, async () => {
    const ttlSeconds = 2;
    const lease = client.lease(ttlSeconds);
    let renewals = 0;
    lease.on("keepaliveSucceeded", () => renewals++);
    const lost = new Promise<Error>((resolve) => lease.on("lost", resolve));
    const id = await lease.grant();
    await lease.put("etcd3/kept").value("v");
    await sleep(3 * ttlSeconds * 1000);
    assert.ok(renewals >= 2, `${renewals} keep-alives answered`);
    assert.equal(await client.get("etcd3/kept").string(), "v");
    // Revoked behind the Lease object's back: its next keep-alive finds it gone.
    await client.leaseClient.leaseRevoke({ ID: id });
    const error = await Promise.race([lost, sleep(10_000).then(() => undefined)]);
    assert.ok(error instanceof Error, "the lease reported itself lost");
    assert.equal(await client.get("etcd3/kept").string(), null);
  });

  test("lock: a held lock refuses a second acquire until released; do() runs under the lock", { timeout: 60_000 }, async () => {
    const first = await client.lock("etcd3/resource").ttl(5).acquire();
    await assert.rejects(client.lock("etcd3/resource").ttl(5).acquire(), EtcdLockFailedError);
    assert.match((await first.leaseId()) ?? "", /^\d+$/);
    await first.release();
    let holders = 0;
    let maxHolders = 0;
    const order: number[] = [];
    const critical = (n: number) => async () => {
      holders++;
      maxHolders = Math.max(maxHolders, holders);
      await sleep(100);
      order.push(n);
      holders--;
    };
    await client.lock("etcd3/resource").ttl(5).do(critical(1));
    await client.lock("etcd3/resource").ttl(5).do(critical(2));
    assert.deepEqual(order, [1, 2]);
    assert.equal(maxHolders, 1);
    assert.equal(await client.get("etcd3/resource").string(), null, "released locks leave no key");
  });

  test("election: campaign, leader, observe, proclaim, resign hands over to the next candidate", { timeout: 60_000 }, async () => {
    const election = client.election("etcd3/chair", 5);
    const alice = election.campaign("alice");
    await alice.wait();
    assert.equal(await election.leader(), "alice");
    const observer = await election.observe();
    const seen: (string | undefined)[] = [];
    observer.on("change", (value) => seen.push(value));
    assert.equal(observer.leader(), "alice");
    const bob = client.election("etcd3/chair", 5).campaign("bob");
    let bobElected = false;
    bob.on("elected", () => (bobElected = true));
    await sleep(500);
    assert.equal(bobElected, false, "bob waits while alice leads");
    await alice.proclaim("alice again");
    await until(() => seen.includes("alice again"), "the observer to see the proclamation");
    await alice.resign();
    await until(() => bobElected, "bob elected after alice resigned");
    await until(() => seen.includes("bob"), "the observer to see bob");
    assert.equal(await election.leader(), "bob");
    await bob.resign();
    await observer.cancel();
  });
});
