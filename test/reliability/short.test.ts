// The CI tier of the reliability scorecard: every real-process scenario of
// test:long once, with short traffic and a small operation budget. A run must
// be valid: linearizable (decided, not undecided), nothing acknowledged lost,
// end checks passed. The long tier is `npm run test:long -- --runs N --seed S`.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { scenarios } from "./scenarios.ts";

// A fixed seed by default, so CI runs the same schedules every time; set EDGETCD_RELIABILITY_SEED to explore.
const seed = Number(process.env.EDGETCD_RELIABILITY_SEED ?? 72942);
// EDGETCD_TEST_SERVER_RUNTIME=node,bun,deno runs it on mixed clusters (test/support/processes.ts).

describe(`reliability short tier (seed ${seed}; replay: npm run test:long -- --runs 1 --seed ${seed} --scale 0.3 --operations-max 300)`, () => {
  for (const scenario of scenarios) {
    test(`${scenario.id}: ${scenario.title}`, { timeout: 240_000 }, async () => {
      const logs: string[] = [];
      const result = await scenario.run(seed, {
        kind: "edgetcd",
        scale: 0.3,
        operationsMax: 300,
        checkTimeoutMs: 20_000,
        log: (line) => logs.push(line),
      });
      const summary = `${scenario.id} seed ${seed}: ${result.verdict}, ${result.operations} ops, lost ${result.lost} [${result.notes.join("; ")}]\n${logs.join("\n")}`;
      assert.equal(result.lost, 0, summary);
      assert.notEqual(result.verdict, "illegal", summary);
      assert.notEqual(result.verdict, "undecided", summary);
      assert.equal(result.verdict, "valid", summary);
    });
  }
});
