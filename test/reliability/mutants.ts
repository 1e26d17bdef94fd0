// Test power (scorecard R1): runs the part of the suite that should catch each
// mutant build (EDGETCD_MUTANT, see runtime/faults/mutants.ts) and prints a
// detection table. A baseline run without a mutant must pass, or the table
// means nothing.
//   node --import tsx test/reliability/mutants.ts [--runtime node|bun] [--runs N] [--only a,b]
// Exits 1 if the baseline fails or a mutant survives.
import { parseArgs } from "node:util";
import { CrashChain, type CrashStep } from "./crash-run.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string" },
    runs: { type: "string", default: "1" },
    only: { type: "string" },
  },
});
const runtime = values.runtime === "bun" ? "bun" : values.runtime === "node" ? "node" : undefined;
const runs = Number(values.runs);

interface Probe {
  mutant: string | undefined;
  /** The part of the suite run against it. */
  suite: string;
  run(): Promise<{ caught: boolean; detail: string }>;
}

/** D1/L2-style: kill -9 twice during concurrent writes on a disk that loses unsynced writes, restart, check every acknowledged write. */
function killProbe(mutant: string | undefined): Probe {
  return {
    mutant,
    suite: "kill -9 x2 + restart, lose-unsynced disk (crash-run.ts)",
    async run() {
      const chain = await CrashChain.create({ runtime, envAlways: { EDGETCD_TEST_DISK: "lose-unsynced" }, killAfterMs: 1500 });
      const step: CrashStep = { point: undefined, hit: 0, env: mutant === undefined ? {} : { EDGETCD_MUTANT: mutant } };
      let started = true;
      for (let i = 0; i < 2 && started; i++) started = await chain.step(step);
      const finalWrite = started && (await chain.finish());
      const acknowledged = chain.steps.reduce((sum, s) => sum + s.acknowledged, 0);
      const problems = [
        ...(chain.check.lost.length > 0 ? [`${chain.check.lost.length} acknowledged writes lost (e.g. ${chain.check.lost[0]})`] : []),
        ...(chain.check.wentBack !== undefined ? [chain.check.wentBack] : []),
        ...(chain.check.restartError !== undefined ? [`restart failed: ${chain.check.restartError.split("\n").slice(0, 1).join("")}`] : []),
        ...(finalWrite ? [] : ["final write failed"]),
      ];
      return { caught: problems.length > 0, detail: problems.length > 0 ? problems.join("; ") : `${acknowledged} acknowledged, all present` };
    },
  };
}

const probes: Probe[] = [killProbe(undefined), killProbe("ack-before-fsync"), killProbe("consistent-index-apart")];
const only = values.only?.split(",");
const chosen = probes.filter((probe) => probe.mutant === undefined || only === undefined || only.includes(probe.mutant));

const rows: string[][] = [];
let bad = false;
for (const probe of chosen) {
  let caughtRuns = 0;
  const details: string[] = [];
  for (let run = 0; run < runs; run++) {
    const started = Date.now();
    let result: { caught: boolean; detail: string };
    try {
      result = await probe.run();
    } catch (error) {
      result = { caught: true, detail: `harness error: ${String(error).slice(0, 300)}` };
    }
    if (result.caught) caughtRuns++;
    details.push(result.detail);
    console.log(`${probe.mutant ?? "baseline"} run ${run + 1}: ${result.caught ? "CAUGHT" : "passed"} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${result.detail}`);
  }
  if (probe.mutant === undefined ? caughtRuns > 0 : caughtRuns < runs) bad = true;
  rows.push([probe.mutant ?? "(baseline, no mutant)", probe.suite, `${caughtRuns}/${runs}`, (details[0] ?? "").slice(0, 160)]);
}
const header = ["mutant", "suite part", "caught", "first detail"];
console.log(`\n| ${header.join(" | ")} |\n| ${header.map(() => "---").join(" | ")} |`);
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
process.exit(bad ? 1 : 0);
