// Named crash points on the write path, on real processes (scorecard L2/D1):
// for each point a single node under concurrent writers kills itself there
// (EDGETCD_CRASH_POINT) and restarts unattended; after every restart every
// acknowledged write is present and the revision has not gone back, and after
// the last one (no crash point set) a new write succeeds. The points run as
// two chains on one data directory each, one process start per point; this
// file runs the snapshot and compaction chain (two files keep each under the runner's limit).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CrashChain, singleNodeCrashPoints } from "./crash-run.ts";

const chains = [
  singleNodeCrashPoints.filter(({ point }) => point.startsWith("snapshot-") || point.startsWith("compaction-")),
];

describe("crash points on the write path: snapshot and compaction (single node, real processes)", () => {
  for (const points of chains) {
    test(points.map(({ point, hit }) => `${point}:${hit}`).join(", "), { timeout: 240_000 }, async () => {
      const chain = await CrashChain.create();
      for (const point of points) assert.ok(await chain.step(point), chain.describe());
      const finalWrite = await chain.finish();
      const summary = chain.describe();
      for (const step of chain.steps) assert.equal(step.crashed, "point", `${step.label} did not crash at its point: ${summary}`);
      assert.ok(chain.steps.some((step) => step.acknowledged > 0), summary);
      assert.equal(chain.check.restartError, undefined, summary);
      assert.deepEqual(chain.check.lost, [], summary);
      assert.equal(chain.check.wentBack, undefined, summary);
      assert.ok(finalWrite, `the final write failed: ${summary}`);
    });
  }
});
