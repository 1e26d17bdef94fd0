// The whole-node simulation, CI-sized: a few seeds of three real servers with
// crashes, partitions, lossy links and membership changes must keep every end
// check, between them send and install snapshots and change membership, and a
// seed must replay exactly. Longer runs: npm run sim -- --servers --seeds N.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Runtime } from "../../src/ports.ts";
import { testRuntime } from "../support/runtime.ts";
import { describeResult } from "./node-main.ts";
import { nodeReplayCommand, type NodeSimResult, runNodeSeed, simTemporaryDir } from "./node-sim.ts";

const faultPhaseMs = 6000;
/**
 * Between them these seeds crash (kill and power failure), partition, lose
 * packets, remove and add members (one a learner, promoted) and send snapshots.
 */
const ciSeeds = [10, 11, 17, 27, 35];

let runtime: Runtime;
let rootDir: string;

before(async () => {
  runtime = await testRuntime();
  rootDir = await mkdtemp(join(simTemporaryDir(), "edgetcd-node-sim-test-"));
});

after(async () => {
  await rm(rootDir, { recursive: true, force: true });
});

let runs = 0;
async function run(seed: number, phaseMs = faultPhaseMs): Promise<NodeSimResult> {
  const dir = join(rootDir, `run-${runs++}`);
  try {
    return await runNodeSeed({ seed, faultPhaseMs: phaseMs, rootDir: dir, realFs: runtime.fs, sqlite: runtime.sqlite });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function explain(result: NodeSimResult, phaseMs = faultPhaseMs): string {
  return [
    `seed ${result.seed}: ${result.violation}`,
    `replay: ${nodeReplayCommand(result.seed)} --phase-ms ${phaseMs}`,
    `swarm: ${result.swarm}`,
    describeResult(result),
    ...result.trace.slice(-30),
  ].join("\n");
}

describe("whole-node simulation", () => {
  test(`seeds ${ciSeeds.join(", ")} keep every end check, with crashes, snapshots and membership changes`, async () => {
    const totals = { writes: 0, crashes: 0, snapshotsSent: 0, snapshotsInstalled: 0, removed: 0, added: 0, keyCopies: 0 };
    for (const seed of ciSeeds) {
      const result = await run(seed);
      assert.equal(result.violation, undefined, explain(result));
      assert.ok(result.leaderAfterHealMs !== undefined);
      totals.writes += result.writesAcknowledged;
      totals.crashes += result.crashes;
      totals.snapshotsSent += result.snapshotsSent;
      totals.snapshotsInstalled += result.snapshotsInstalled;
      totals.removed += result.membersRemoved;
      totals.added += result.membersAdded;
      totals.keyCopies += result.setKeysChecked;
    }
    assert.ok(totals.writes > 300, `only ${totals.writes} writes acknowledged`);
    assert.ok(totals.keyCopies > 500, `only ${totals.keyCopies} key copies checked`);
    assert.ok(totals.crashes > 5, `only ${totals.crashes} crashes`);
    assert.ok(totals.snapshotsSent > 0 && totals.snapshotsInstalled > 0, `snapshots: ${totals.snapshotsSent} sent, ${totals.snapshotsInstalled} installed`);
    assert.ok(totals.removed > 0 && totals.added > 0, `membership: ${totals.removed} removed, ${totals.added} added`);
  });

  test("a seed replays exactly", async () => {
    const first = await run(28);
    const second = await run(28);
    assert.deepEqual(second, first);
    assert.notDeepEqual((await run(29)).trace, first.trace);
  });

  test("regression, seed 49: a restarted member's new put is not answered by an entry it proposed before the crash", async () => {
    // Request ids restarted from 0 with each incarnation, so applying an old
    // entry of this member settled a new request's waiter with the old answer:
    // on this seed a put was acknowledged that no member ever applied (and on
    // others a put was answered with an old revision). Fixed in
    // src/server/etcd-server.ts; with the counter back at 0 this seed fails.
    const result = await run(49);
    assert.equal(result.violation, undefined, explain(result));
    assert.ok(result.crashes > 5, `only ${result.crashes} crashes`);
  });

  test("regression, seed 23: a restarted member's linearizable read is not given the index of a read from before its crash", async () => {
    // ReadIndex contexts were '<member>:<n>' with n from 1 in each life; the
    // leader answers a context it already answered in its term with the same
    // index (a resent copy), so a member restarted within that term read at an
    // index from before its crash: a stale linearizable read (seeds 23, 53,
    // 64, 71, 73, 118 of 150; 26 and 28 before). Fixed in
    // src/server/raft-log.ts (a random id per life in the context); with the
    // counter alone this seed fails.
    const result = await run(23);
    assert.equal(result.violation, undefined, explain(result));
    assert.ok(result.crashes > 2, `only ${result.crashes} crashes`);
  });
});
