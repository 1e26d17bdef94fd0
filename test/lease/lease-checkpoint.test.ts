// --experimental-enable-lease-checkpoint on a real 3-member cluster: the
// leader checkpoints a long lease's remaining TTL through the log, so after the
// leader is killed the new leader continues from the checkpoint instead of
// granting the full TTL again; a renewal clears the checkpoint.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf, leaderOf, sleep, startCluster, type TestCluster } from "../support/cluster.ts";
import { killMember } from "./cluster-support.ts";

const checkpointIntervalMs = 1000;
const electionMs = 500;

describe("lease checkpoints across a leader change", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, {
      electionMs,
      extraArgs: ["--experimental-enable-lease-checkpoint", "--experimental-lease-checkpoint-interval", `${checkpointIntervalMs}ms`],
    });
    await leaderOf(cluster);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("a new leader continues from the checkpointed remaining TTL, not the full TTL", { timeout: 60_000 }, async () => {
    const ttlSeconds = 60;
    const leader = await leaderOf(cluster);
    const { ID } = await clientsOf(leader).lease.leaseGrant({ TTL: BigInt(ttlSeconds) });
    // Several checkpoint intervals pass: the remaining TTL drops well below the full TTL.
    await sleep(5 * checkpointIntervalMs);
    const before = await clientsOf(leader).lease.leaseTimeToLive({ ID });
    assert.ok(before.TTL <= BigInt(ttlSeconds - 4), `remaining before the kill: ${before.TTL}`);
    await killMember(leader);
    const next = await leaderOf(cluster);
    const after = await clientsOf(next).lease.leaseTimeToLive({ ID });
    assert.equal(after.grantedTTL, BigInt(ttlSeconds));
    // The last checkpoint is at most one interval plus one expiry-loop pass old,
    // and the new leader adds one election timeout (etcd's promote).
    const slackSeconds = Math.ceil((checkpointIntervalMs + 500 + electionMs) / 1000);
    assert.ok(after.TTL <= before.TTL + BigInt(slackSeconds), `new leader's TTL ${after.TTL} vs ${before.TTL} before the kill`);
    assert.ok(after.TTL < BigInt(ttlSeconds - 2), `new leader's TTL ${after.TTL} is not reset to the full ${ttlSeconds}`);

    // A renewal on the new leader grants the full TTL again and clears the checkpoint.
    const follower = cluster.members.find((member) => member.server !== undefined && member !== next);
    assert.ok(follower !== undefined);
    const renewed = await keepAliveOnce(clientsOf(follower), ID);
    assert.equal(renewed, BigInt(ttlSeconds));
    const fresh = await clientsOf(follower).lease.leaseTimeToLive({ ID });
    assert.ok(fresh.TTL >= BigInt(ttlSeconds - 2), `TTL after renewal: ${fresh.TTL}`);
  });
});

async function keepAliveOnce(clients: ReturnType<typeof clientsOf>, ID: bigint): Promise<bigint> {
  async function* one() {
    yield { ID };
  }
  for await (const response of clients.lease.leaseKeepAlive(one())) return response.TTL;
  throw new Error("keep-alive stream ended without an answer");
}
