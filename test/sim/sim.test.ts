// The deterministic cluster simulation over the real Raft core: many seeds
// with faults must hold every invariant, a seed must replay identically, and
// deliberately broken node loops must be caught (the checkers have power).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { replayCommand, runSeed, type SimResult } from "./cluster.ts";
import { createRawNode } from "./raft-factory.ts";
import type { Mutant } from "./sim-node.ts";

const testSteps = 1000;

function run(seed: number, nodes: number, mutant?: Mutant): SimResult {
  return runSeed({ seed, nodes, steps: testSteps, mutant, createRaft: createRawNode });
}

function explain(result: SimResult): string {
  return [
    `seed ${result.seed}: ${result.violation}`,
    `replay: ${replayCommand({ ...result, steps: testSteps }, -1)}`,
    `swarm: ${result.swarm}`,
    ...result.trace.slice(-25),
  ].join("\n");
}

function runMany(first: number, count: number, nodes: number): { acknowledged: number; elections: number; reads: number } {
  const totals = { acknowledged: 0, elections: 0, reads: 0 };
  for (let seed = first; seed < first + count; seed++) {
    const result = run(seed, nodes);
    assert.equal(result.violation, undefined, explain(result));
    totals.acknowledged += result.acknowledged;
    totals.elections += result.elections;
    totals.reads += result.readsChecked;
  }
  return totals;
}

/** The first seed in [1, limit] on which the mutant is caught. */
function firstCatch(mutant: Mutant, nodes: number, limit: number): SimResult | undefined {
  for (let seed = 1; seed <= limit; seed++) {
    const result = run(seed, nodes, mutant);
    if (result.violation !== undefined) return result;
  }
  return undefined;
}

describe("cluster simulation", () => {
  test("100 seeds of 3 nodes keep every invariant and make progress", () => {
    const totals = runMany(1, 100, 3);
    assert.ok(totals.acknowledged > 1000, `only ${totals.acknowledged} values acknowledged`);
    assert.ok(totals.elections >= 100, `only ${totals.elections} elections`);
    assert.ok(totals.reads > 100, `only ${totals.reads} reads checked`);
  });

  test("50 seeds of 5 nodes keep every invariant and make progress", () => {
    const totals = runMany(1001, 50, 5);
    assert.ok(totals.acknowledged > 500, `only ${totals.acknowledged} values acknowledged`);
  });

  test("a seed replays exactly", () => {
    const first = run(42, 3);
    const second = run(42, 3);
    assert.deepEqual(second, first);
    assert.notDeepEqual(run(43, 3).trace, first.trace);
  });

  test("mutant: messagesAfterPersist sent before fdatasync is caught", () => {
    const caught = firstCatch("sendBeforeSync", 3, 300);
    assert.ok(caught !== undefined, "sending acks before the write is durable went unnoticed for 300 seeds");
  });

  test("mutant: a node that forgets its vote on restart is caught", () => {
    const caught = firstCatch("forgetVote", 3, 300);
    assert.ok(caught !== undefined, "forgetting the vote went unnoticed for 300 seeds");
    assert.match(caught.violation ?? "", /election safety|log matching|state machine|leader completeness|acknowledged|read/);
  });
});
