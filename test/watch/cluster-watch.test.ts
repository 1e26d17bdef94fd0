// The watch guarantees on a real 3-member cluster with faults (the run itself:
// ./cluster-watch-run.ts). A fixed schedule: the leader and then another
// member are killed with SIGKILL and restarted, so the watchers whose stream
// broke reconnect, to another member at once or to the same member once it
// is back, resuming from their last revision + 1; then a member is paused
// with SIGSTOP while writes go on and resumed: its watchers must get the
// missed events exactly once. The W1 scenario of test:long draws its faults
// (isolation from the peers too) from the seed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../support/cluster.ts";
import { runClusterWatch } from "./cluster-watch-run.ts";

describe("watch guarantees on a 3-member cluster with kill -9 and SIGSTOP", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  const seed = Number(process.env.WATCH_SEED ?? Date.now() % 100_000);
  test(`every watcher, across reconnects, gets exactly the model's events (seed ${seed})`, { timeout: 120_000 }, async () => {
    const result = await runClusterWatch(cluster, seed, ["kill", "kill", "pause"]);
    assert.deepEqual(result.violations, [], `seed ${seed}: ${result.notes.join(", ")}`);
    assert.ok(result.watchers >= 3 * 5 * 7, `${result.watchers} watchers`);
    assert.ok(result.reconnected >= 2 * 5 * 5, `${result.reconnected} watchers reconnected: those of both killed members`);
    assert.ok(result.progressNotifications >= 6, `${result.progressNotifications} progress notifications`);
  });
});
