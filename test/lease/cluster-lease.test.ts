// Leases, locks and elections on a real 3-member edgetcd cluster, with the
// client talking to a follower: etcdctl lease/lock/elect work there (renewals
// and time-to-live are forwarded to the leader over the peer port); a
// keep-alive sent to a follower keeps a lease past its TTL; and N clients
// incrementing a counter under the Lock service, fenced by the lock key's
// create revision, lose no update across a leader kill. (1,000 leases kept
// alive across a leader kill: cluster-lease-failover.test.ts.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync, etcdctlProcess } from "../support/processes.ts";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { bytes, killMember, text, until } from "./cluster-support.ts";

const electionMs = 500;

const endpointOf = (member: ClusterMember) => `127.0.0.1:${member.clientPort}`;

async function followerOf(cluster: TestCluster): Promise<ClusterMember> {
  const leader = await leaderOf(cluster);
  const follower = cluster.members.find((member) => member.server !== undefined && member !== leader);
  assert.ok(follower !== undefined, "a running follower");
  return follower;
}

async function ctl(member: ClusterMember, args: string[]): Promise<string> {
  const result = await etcdctlAsync(endpointOf(member), args);
  assert.equal(result.status, 0, `etcdctl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

describe("leases, locks and elections on a 3-member cluster, through a follower", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, { electionMs });
    await leaderOf(cluster);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("etcdctl lease grant, put --lease, keep-alive, timetolive, list and revoke on a follower", { timeout: 60_000 }, async () => {
    const follower = await followerOf(cluster);
    const granted = await ctl(follower, ["lease", "grant", "30"]);
    const match = /^lease ([0-9a-f]+) granted with TTL\(30s\)\n$/.exec(granted);
    assert.ok(match, granted);
    const id = match[1] as string;
    assert.equal(await ctl(follower, ["put", "--lease", id, "leased-key", "v"]), "OK\n");
    assert.equal(await ctl(follower, ["lease", "keep-alive", "--once", id]), `lease ${id} keepalived with TTL(30)\n`);
    const alive = await ctl(follower, ["lease", "timetolive", "--keys", id]);
    assert.match(alive, new RegExp(`^lease ${id} granted with TTL\\(30s\\), remaining\\((2[0-9]|30)s\\), attached keys\\(\\[leased-key\\]\\)\\n$`));
    assert.ok((await ctl(follower, ["lease", "list"])).includes(`${id}\n`));
    assert.equal(await ctl(follower, ["lease", "revoke", id]), `lease ${id} revoked\n`);
    assert.equal(await ctl(follower, ["get", "leased-key"]), "");
    assert.equal(await ctl(follower, ["lease", "timetolive", id]), `lease ${id} already expired\n`);
    const missing = await etcdctlAsync(endpointOf(follower), ["lease", "keep-alive", "--once", id]);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /etcdserver: requested lease not found/);
  });

  test("a keep-alive sent to a follower keeps a lease past its TTL; once it stops, the lease expires", { timeout: 60_000 }, async () => {
    const follower = await followerOf(cluster);
    const ttlSeconds = 2;
    const id = /^lease ([0-9a-f]+) granted/.exec(await ctl(follower, ["lease", "grant", String(ttlSeconds)]))?.[1] as string;
    await ctl(follower, ["put", "--lease", id, "kept", "v"]);
    const keeper = etcdctlProcess(endpointOf(follower), ["lease", "keep-alive", id]);
    await sleep(3 * ttlSeconds * 1000);
    assert.match(keeper.output(), new RegExp(`lease ${id} keepalived with TTL\\(${ttlSeconds}\\)`));
    assert.match(await ctl(follower, ["get", "kept", "--print-value-only"]), /^v\n$/);
    keeper.child.kill("SIGKILL");
    await keeper.exited;
    const stoppedAt = Date.now();
    await until(async () => (await ctl(follower, ["get", "kept"])) === "", "the lease to expire", (ttlSeconds + 5) * 1000);
    const expiredAfterMs = Date.now() - stoppedAt;
    assert.ok(expiredAfterMs <= ttlSeconds * 1000 + electionMs + 2000, `expired ${expiredAfterMs} ms after the keep-alive stopped`);
  });

  test("etcdctl lock and elect on followers", { timeout: 60_000 }, async () => {
    const follower = await followerOf(cluster);
    const other = cluster.members.find((member) => member.server !== undefined && member !== follower) as ClusterMember;
    const first = etcdctlProcess(endpointOf(follower), ["lock", "queue", "--", "sh", "-c", "echo first; sleep 1; echo first-done"]);
    await until(() => first.output().includes("first"), "the first lock");
    const second = etcdctlProcess(endpointOf(other), ["lock", "queue", "echo", "second"]);
    await Promise.all([first.exited, second.exited]);
    assert.equal(first.output(), "first\nfirst-done\n");
    assert.equal(second.output(), "second\n", "the second lock ran after the first finished");

    const observer = etcdctlProcess(endpointOf(other), ["elect", "-l", "chair"]);
    const alice = etcdctlProcess(endpointOf(follower), ["elect", "chair", "alice"]);
    await until(() => alice.output().includes("alice"), "alice elected");
    const bob = etcdctlProcess(endpointOf(other), ["elect", "chair", "bob"]);
    await sleep(500);
    assert.equal(bob.output(), "", "bob waits while alice leads");
    await until(() => observer.output().includes("alice"), "the observer sees alice");
    alice.child.kill("SIGINT");
    await alice.exited;
    await until(() => bob.output().includes("bob"), "bob elected after alice resigned");
    await until(() => observer.output().includes("bob"), "the observer sees bob");
    bob.child.kill("SIGINT");
    observer.child.kill("SIGINT");
    await Promise.all([bob.exited, observer.exited]);
  });

  test("N clients increment a counter under the Lock service, fenced by the lock key's create revision, across a leader kill: no lost update", { timeout: 90_000 }, async () => {
    const workers = 4;
    const rounds = 8;
    await clientsOf(await leaderOf(cluster)).kv.put({ key: bytes("fenced/counter"), value: bytes("0") });
    let done = 0;
    const worker = async (index: number) => {
      let memberIndex = index;
      let clients = clientsOf(cluster.members[memberIndex % 3] as ClusterMember);
      const next = async () => {
        await sleep(100);
        for (;;) {
          const member = cluster.members[++memberIndex % 3] as ClusterMember;
          if (member.server !== undefined) return void (clients = clientsOf(member));
        }
      };
      const retry = async <T>(step: () => Promise<T>): Promise<T> => {
        for (;;) {
          try {
            return await step();
          } catch {
            await next();
          }
        }
      };
      const { ID } = await retry(() => clients.lease.leaseGrant({ TTL: 30n }, { timeoutMs: 8000 }));
      for (let round = 0; round < rounds; round++) {
        const marker = bytes(`fenced/done/${index}/${round}`);
        for (let written = false; !written; ) {
          const held = await retry(() => clients.lock.lock({ name: bytes("fenced/lock"), lease: ID }, { timeoutMs: 8000 }));
          try {
            const token = (await clients.kv.range({ key: held.key }, { timeoutMs: 8000 })).kvs[0]?.createRevision;
            assert.ok(token !== undefined, "the lock key stands while its lease does");
            const current = Number(text((await clients.kv.range({ key: bytes("fenced/counter") }, { timeoutMs: 8000 })).kvs[0]?.value));
            await sleep(5); // widen the window a broken lock would lose an update in
            const result = await clients.kv.txn(
              {
                compare: [{ key: held.key, target: 1, result: 0, targetUnion: { case: "createRevision", value: token } }],
                success: [
                  { request: { case: "requestPut", value: { key: bytes("fenced/counter"), value: bytes(String(current + 1)) } } },
                  { request: { case: "requestPut", value: { key: marker, value: bytes("1") } } },
                ],
              },
              { timeoutMs: 8000 },
            );
            written = result.succeeded;
          } catch {
            // An unknown outcome: the marker says whether the write landed.
            await next();
            written = await retry(async () => (await clients.kv.range({ key: marker }, { timeoutMs: 8000 })).count === 1n);
          }
          await retry(() => clients.lock.unlock({ key: held.key }, { timeoutMs: 8000 }));
        }
        done++;
      }
    };
    const running = Promise.all(Array.from({ length: workers }, (_, index) => worker(index)));
    await until(() => done >= 6, "some increments before the kill", 30_000);
    await killMember(await leaderOf(cluster));
    await running;
    const clients = clientsOf(await leaderOf(cluster));
    const counter = text((await clients.kv.range({ key: bytes("fenced/counter") })).kvs[0]?.value);
    const markers = (await clients.kv.range({ key: bytes("fenced/done/"), rangeEnd: bytes("fenced/done0"), countOnly: true })).count;
    assert.equal(markers, BigInt(workers * rounds));
    assert.equal(counter, String(workers * rounds), "every increment counted once");
  });
});
