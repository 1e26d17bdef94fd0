// Graceful stop, as etcd's (EtcdServer.Stop → TransferLeadership, then stop):
// SIGTERM to the leader of a cluster under write load hands leadership to a
// follower by TimeoutNow, so the cluster has a new leader at term + 1 well
// within one election timeout (a long one here, so the difference is plain),
// and every acknowledged write is still there. Before, the leader simply
// stopped and the followers waited out the election timeout.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

/** Long enough that a handover and an election after a timeout cannot be confused. */
const electionTimeoutMs = 3000;
const heartbeatIntervalMs = 100;
/** How long the writers run before the SIGTERM, and after it. */
const loadBeforeSignalMs = 1000;
const loadAfterSignalMs = 1500;
/** Past the server's window for one signal delivered twice (500 ms), well before the handover gives up. */
const secondSignalAfterMs = 1000;
/** "At once", with room for a busy machine. */
const secondSignalExitMaxMs = 1000;

describe("SIGTERM to the leader of a cluster under load", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, { electionMs: electionTimeoutMs, heartbeatMs: heartbeatIntervalMs });
    await leaderOf(cluster, 10 * electionTimeoutMs);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("a new leader by handover (term + 1, under one election timeout), the old leader exits 0, no acknowledged write lost", { timeout: 120_000 }, async (t) => {
    const leader = await leaderOf(cluster);
    const followers = cluster.members.filter((member) => member !== leader);
    const before = await clientsOf(leader).maintenance.status({});
    const oldLeaderId = before.header?.memberId;
    assert.ok(oldLeaderId !== undefined);

    // Writers on every member, the stopping leader included: whatever any of
    // them acknowledged must be readable afterwards.
    const acknowledged = new Map<string, string>();
    let writing = true;
    const writers = cluster.members.map(async (member) => {
      const { kv } = clientsOf(member);
      for (let i = 0; writing; i++) {
        const key = `load/${member.name}/${i}`;
        try {
          await kv.put({ key: bytes(key), value: bytes(`v${i}`) }, { timeoutMs: 5000 });
          acknowledged.set(key, `v${i}`);
        } catch {
          if (member === leader) return; // it is stopping: no more from this writer
          await sleep(20);
        }
      }
    });
    await sleep(loadBeforeSignalMs);
    const ackedBeforeSignal = acknowledged.size;
    assert.ok(ackedBeforeSignal > 10, `the load is running (${ackedBeforeSignal} acknowledged)`);

    const signalledMs = Date.now();
    const leaderProcess = leader.server?.process;
    assert.ok(leaderProcess !== undefined);
    const exited = new Promise<number | null>((resolve) => leaderProcess.once("exit", (code) => resolve(code)));
    leaderProcess.kill("SIGTERM");

    // The first follower that reports another leader, and when.
    let newLeader: { id: bigint; term: bigint; afterMs: number } | undefined;
    while (newLeader === undefined && Date.now() - signalledMs < 3 * electionTimeoutMs) {
      for (const follower of followers) {
        try {
          const status = await clientsOf(follower).maintenance.status({}, { timeoutMs: 200 });
          if (status.leader !== 0n && status.leader !== oldLeaderId) {
            newLeader = { id: status.leader, term: status.raftTerm, afterMs: Date.now() - signalledMs };
            break;
          }
        } catch {
          // busy: ask again
        }
      }
      if (newLeader === undefined) await sleep(10);
    }
    assert.ok(newLeader !== undefined, "a new leader");
    t.diagnostic(`new leader ${newLeader.afterMs} ms after SIGTERM at term ${newLeader.term} (was ${before.raftTerm})`);
    assert.ok(newLeader.afterMs < electionTimeoutMs, `new leader after ${newLeader.afterMs} ms, under the ${electionTimeoutMs} ms election timeout`);
    assert.equal(newLeader.term, before.raftTerm + 1n, "elected by TimeoutNow at the next term, no election rounds in between");

    const exitCode = await exited;
    const exitedAfterMs = Date.now() - signalledMs;
    leader.server = undefined;
    t.diagnostic(`old leader exited ${exitedAfterMs} ms after SIGTERM`);
    assert.equal(exitCode, 0, "the old leader exits 0");
    assert.ok(exitedAfterMs < electionTimeoutMs, `the old leader exited after ${exitedAfterMs} ms`);

    await sleep(loadAfterSignalMs);
    writing = false;
    await Promise.all(writers);
    assert.ok(acknowledged.size > ackedBeforeSignal, "writes go on after the handover");

    // Every acknowledged write, read (linearizably) from each remaining member.
    for (const follower of followers as ClusterMember[]) {
      const { kv } = clientsOf(follower);
      const range = await kv.range({ key: bytes("load/"), rangeEnd: bytes("load0") });
      const stored = new Map(range.kvs.map((kv) => [text(kv.key), text(kv.value)]));
      for (const [key, value] of acknowledged) assert.equal(stored.get(key), value, `${key} acknowledged, read at ${follower.name}`);
    }
  });

  // Runs on what the first test left: two members. The follower is frozen, so
  // the leader's handover waits for Raft to give it up (an election timeout);
  // an operator's second signal does not wait for that.
  test("a second SIGTERM while the handover waits exits at once (143)", { timeout: 60_000 }, async (t) => {
    const leader = await leaderOf(cluster);
    const follower = cluster.members.find((member) => member !== leader && member.server !== undefined);
    const leaderProcess = leader.server?.process;
    const followerProcess = follower?.server?.process;
    assert.ok(leaderProcess !== undefined && followerProcess !== undefined);
    followerProcess.kill("SIGSTOP");
    try {
      const exited = new Promise<number | null>((resolve) => leaderProcess.once("exit", (code) => resolve(code)));
      leaderProcess.kill("SIGTERM");
      await sleep(secondSignalAfterMs);
      assert.equal(leaderProcess.exitCode, null, "still handing over when the second signal comes");
      const secondMs = Date.now();
      leaderProcess.kill("SIGTERM");
      assert.equal(await exited, 143);
      const tookMs = Date.now() - secondMs;
      t.diagnostic(`exited ${tookMs} ms after the second SIGTERM`);
      assert.ok(tookMs < secondSignalExitMaxMs, `exited ${tookMs} ms after the second signal`);
      leader.server = undefined;
    } finally {
      followerProcess.kill("SIGCONT");
    }
  });
});
