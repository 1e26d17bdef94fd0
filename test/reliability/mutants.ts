// Test power (scorecard R1): runs the part of the suite that should catch each
// mutant build (EDGETCD_MUTANT, see runtime/faults/mutants.ts) and prints a
// detection table. A baseline run without a mutant must pass, or the table
// means nothing (for the probes that run an existing test file, the baseline
// is that file passing in the normal suite).
//   node --import tsx test/reliability/mutants.ts [--runtime node|bun] [--runs N] [--only a,b]
// Exits 1 if the baseline fails or a mutant survives.
import { spawn } from "node:child_process";
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

/** D1/L2-style: kill -9 five times during concurrent writes on a disk that loses unsynced writes, restart, check every acknowledged write. */
function killProbe(mutant: string | undefined): Probe {
  return {
    mutant,
    suite: "kill -9 x5 + restart, lose-unsynced disk (crash-run.ts)",
    async run() {
      const chain = await CrashChain.create({ runtime, envAlways: { EDGETCD_TEST_DISK: "lose-unsynced" }, killAfterMs: 1500 });
      const step: CrashStep = { point: undefined, hit: 0, env: mutant === undefined ? {} : { EDGETCD_MUTANT: mutant } };
      let started = true;
      for (let i = 0; i < 5 && started; i++) started = await chain.step(step);
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

const repoRoot = new URL("../..", import.meta.url).pathname;

/** An existing test file (or test:long) run with the mutant switched on in every server it starts: caught when it fails. */
function commandProbe(mutant: string, suite: string, command: { node: string[]; bun?: string[] }): Probe {
  return {
    mutant,
    suite,
    async run() {
      const args = runtime === "bun" && command.bun !== undefined ? command.bun : command.node;
      const [program, ...rest] = args as [string, ...string[]];
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(program, rest, {
          cwd: repoRoot,
          env: { ...process.env, EDGETCD_MUTANT: mutant, ...(runtime === undefined ? {} : { EDGETCD_RUNTIME: runtime }) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let text = "";
        child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
        child.on("exit", (exitCode) => resolve({ code: exitCode, output: text }));
      });
      const failure = /(not ok .*|✖ .*|\| L1 \|.*|AssertionError.*)/.exec(output)?.[0] ?? output.slice(-200);
      return { caught: code !== 0, detail: code === 0 ? "suite passed" : `exit ${code}: ${failure.replace(/\s+/g, " ").slice(0, 200)}` };
    },
  };
}

const nodeTest = (file: string, pattern?: string) => ["node", "--import", "tsx", "--test", ...(pattern === undefined ? [] : ["--test-name-pattern", pattern]), file];
const bunTest = (file: string, pattern?: string) => ["node_modules/.bin/bun", "test", "--timeout", "300000", ...(pattern === undefined ? [] : ["-t", pattern]), file];

const probes: Probe[] = [
  killProbe(undefined),
  killProbe("ack-before-fsync"),
  killProbe("consistent-index-apart"),
  commandProbe("progress-notify-ahead", "test/watch/guarantees.test.ts (bookmarkable, real process)", {
    node: nodeTest("test/watch/guarantees.test.ts"),
    bun: bunTest("test/watch/guarantees.test.ts"),
  }),
  commandProbe("read-index-reused", "test/reliability/follower-reads.test.ts (3 nodes, read on followers after each acknowledged write)", {
    node: nodeTest("test/reliability/follower-reads.test.ts"),
    bun: bunTest("test/reliability/follower-reads.test.ts"),
  }),
  // The same mutant against the L1 scenario alone (3 real members, random process, network and membership faults).
  commandProbe("read-index-reused", "test:long L1, 3 runs (linearizability checker on real members under faults)", {
    node: ["node", "--import", "tsx", "test/reliability/long.ts", "--runs", "3", "--seed", "500", "--only", "L1"],
    bun: ["node", "--import", "tsx", "test/reliability/long.ts", "--runs", "3", "--seed", "500", "--only", "L1", "--runtime", "bun"],
  }),
  commandProbe("lock-after-lease-expired", "test/reliability/lock-lease.test.ts (unlock just after the waiter's lease expired)", {
    node: nodeTest("test/reliability/lock-lease.test.ts"),
    bun: bunTest("test/reliability/lock-lease.test.ts"),
  }),
];
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
