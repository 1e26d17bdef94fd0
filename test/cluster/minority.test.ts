// A member cut off from the quorum (the other two killed) refuses writes the
// way etcd 3.4 does (checked side by side: after the request timeout, gRPC
// Unknown "context deadline exceeded"), still serves serializable reads, and
// once the others return the cluster converges and takes writes again.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync } from "../support/processes.ts";
import { electionMs, startCluster, type TestCluster } from "../support/cluster.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a member without a quorum", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("refuses writes with etcd's error, serves serializable reads, recovers when the others return", async () => {
    const [survivor, second, third] = cluster.members as [(typeof cluster.members)[0], (typeof cluster.members)[0], (typeof cluster.members)[0]];
    const endpoint = `127.0.0.1:${survivor.clientPort}`;
    // A committed value, seen by every member.
    let put = await etcdctlAsync(cluster.endpoints().join(","), ["put", "before", "quorum"]);
    for (let attempt = 0; put.status !== 0 && attempt < 20; attempt++) {
      await sleep(200);
      put = await etcdctlAsync(cluster.endpoints().join(","), ["put", "before", "quorum"]);
    }
    assert.equal(put.status, 0, put.stderr);
    await sleep(300);

    await Promise.all([second.server?.kill(), third.server?.kill()]);
    second.server = undefined;
    third.server = undefined;
    await sleep(3 * electionMs);

    const refused = await etcdctlAsync(endpoint, ["put", "during", "minority", "--command-timeout=20s"]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /Error: rpc error: code = Unknown desc = context deadline exceeded/);

    const local = await etcdctlAsync(endpoint, ["get", "before", "--consistency=s", "--print-value-only"]);
    assert.equal(local.stdout, "quorum\n", "serializable reads are served locally");

    await Promise.all([cluster.start(second), cluster.start(third)]);
    let after = await etcdctlAsync(endpoint, ["put", "after", "healed"]);
    for (let attempt = 0; after.status !== 0 && attempt < 30; attempt++) {
      await sleep(200);
      after = await etcdctlAsync(endpoint, ["put", "after", "healed"]);
    }
    assert.equal(after.status, 0, after.stderr);
    const during = await etcdctlAsync(endpoint, ["get", "during"]);
    assert.equal(during.stdout, "", "the refused write never happened");
    for (const member of cluster.members) {
      const got = await etcdctlAsync(`127.0.0.1:${member.clientPort}`, ["get", "after", "--print-value-only"]);
      assert.equal(got.stdout, "healed\n");
    }
  });
});
