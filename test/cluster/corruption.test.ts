// Corruption checks (src/server/corruption.ts), on by default: a member whose
// stored data were changed behind its back (a value rewritten in its database
// file while it was down, as a bad disk or a bug would) is refused at start
// ("found data inconsistency with peers"); started without the initial check,
// it is found by the leader's periodic check, which raises CORRUPT for it, and
// the cluster then refuses writes ("corrupt cluster") as etcd's does.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { etcdctlAsync } from "../support/processes.ts";
import { eventually, startCluster, type TestCluster } from "../support/cluster.ts";
import { testRuntime } from "../support/runtime.ts";

describe("corruption checks", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, { extraArgs: ["--experimental-corrupt-check-time", "500ms"] });
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("changed data: refused at start, found by the leader's check, CORRUPT raised, writes refused", { timeout: 120_000 }, async () => {
    const endpoints = cluster.endpoints().join(",");
    for (let i = 0; i < 20; i++) assert.equal((await etcdctlAsync(endpoints, ["put", `key${i}`, `value${i}`])).status, 0);
    const victim = cluster.members[2];
    assert.ok(victim?.server !== undefined);
    const endpoint = victim.server.endpoint;
    // Every member applied the writes before the victim stops.
    await eventually("the victim applied every write", async () => (await etcdctlAsync(endpoint, ["get", "key19", "--consistency=s", "--print-value-only"])).stdout.trim() === "value19");
    await victim.server.stop();
    victim.server = undefined;

    const db = (await testRuntime()).sqlite.open(join(victim.dataDir, "member", "snap", "db"));
    try {
      const changed = db.prepare("UPDATE kv SET value = ? WHERE key = ?").run(new TextEncoder().encode("tampered"), new TextEncoder().encode("key7"));
      assert.equal(changed.changes, 1);
    } finally {
      db.close();
    }

    const refused = await cluster.start(victim).then(
      () => "started",
      (error: unknown) => String(error),
    );
    assert.match(refused, /found data inconsistency with peers/);
    assert.match(refused, /found different hash values from remote peer/);

    victim.extraArgs = ["--experimental-initial-corrupt-check=false"];
    await cluster.start(victim);
    let alarms = "";
    await eventually(
      "the leader raised CORRUPT",
      async () => {
        alarms = (await etcdctlAsync(endpoints, ["alarm", "list"])).stdout;
        return alarms.includes("CORRUPT");
      },
      20_000,
    );
    const victimId = (await etcdctlAsync(endpoint, ["endpoint", "status", "-w", "json"])).stdout.match(/"member_id":(\d+)/)?.[1];
    assert.equal(alarms.trim(), `memberID:${victimId} alarm:CORRUPT`);
    const put = await etcdctlAsync(endpoints, ["put", "after", "x"]);
    assert.notEqual(put.status, 0);
    assert.match(put.stderr, /etcdserver: corrupt cluster/);
  });
});
