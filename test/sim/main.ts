// npm run sim -- [--seeds N] [--seed S] [--nodes 3|5] [--steps K] [--mutant NAME] [--verbose]
// npm run sim -- --servers [--seeds N] [--seed S] [--phase-ms M] [--verbose] (see node-main.ts)
// Runs N seeds of the deterministic cluster simulation (from S, default 1),
// prints each failure with the command that replays it, then a summary.
// Exits non-zero on any violation.

import { replayCommand, runSeed, type SimResult } from "./cluster.ts";
import { createRawNode } from "./raft-factory.ts";
import type { Mutant } from "./sim-node.ts";

export const defaultSteps = 3000;

interface Arguments {
  seeds: number;
  seed: number;
  nodes: number;
  steps: number;
  mutant: Mutant | undefined;
  verbose: boolean;
}

function parseArguments(argv: string[]): Arguments {
  const value = (name: string): string | undefined => {
    const index = argv.indexOf(name);
    return index < 0 ? undefined : argv[index + 1];
  };
  const integer = (name: string, fallback: number): number => {
    const text = value(name);
    if (text === undefined) return fallback;
    const parsed = Number(text);
    if (!Number.isSafeInteger(parsed) || parsed < 0) throw new Error(`${name} needs a non-negative integer, got ${text}`);
    return parsed;
  };
  const seedGiven = value("--seed") !== undefined;
  const nodes = integer("--nodes", 3);
  if (nodes !== 3 && nodes !== 5) throw new Error("--nodes must be 3 or 5");
  const mutant = value("--mutant") as Mutant | undefined;
  if (mutant !== undefined && mutant !== "sendBeforeSync" && mutant !== "forgetVote") throw new Error(`unknown mutant ${mutant}`);
  return {
    seeds: integer("--seeds", seedGiven ? 1 : 100),
    seed: integer("--seed", 1),
    nodes,
    steps: integer("--steps", defaultSteps),
    mutant,
    verbose: argv.includes("--verbose"),
  };
}

function printFailure(result: SimResult, mutant: Mutant | undefined): void {
  console.log(`\nFAIL seed ${result.seed} (${result.nodes} nodes): ${result.violation}`);
  console.log(`  replay: ${replayCommand({ ...result, mutant }, defaultSteps)}`);
  console.log(`  swarm: ${result.swarm}`);
  console.log("  trace tail:");
  for (const line of result.trace) console.log(`    ${line}`);
}

function main(): void {
  const args = parseArguments(process.argv.slice(2));
  const started = performance.now();
  const totals = { failures: 0, acknowledged: 0, proposed: 0, elections: 0, reads: 0, crashes: 0, events: 0 };
  const failedSeeds: number[] = [];
  for (let seed = args.seed; seed < args.seed + args.seeds; seed++) {
    const result = runSeed({ seed, nodes: args.nodes, steps: args.steps, mutant: args.mutant, createRaft: createRawNode });
    totals.acknowledged += result.acknowledged;
    totals.proposed += result.proposed;
    totals.elections += result.elections;
    totals.reads += result.readsChecked;
    totals.crashes += result.crashes;
    totals.events += result.events;
    if (result.violation !== undefined) {
      totals.failures++;
      failedSeeds.push(seed);
      printFailure(result, args.mutant);
    } else if (args.verbose) {
      console.log(`seed ${seed}: ok, ${result.acknowledged}/${result.proposed} acknowledged, ${result.elections} elections, ${result.simulatedMs} ms simulated; ${result.swarm}`);
      for (const line of result.trace) console.log(`    ${line}`);
    }
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  console.log(
    `\nsim: ${args.seeds} seeds (${args.seed}..${args.seed + args.seeds - 1}) x ${args.nodes} nodes, ${args.steps} steps each` +
      `${args.mutant === undefined ? "" : `, mutant ${args.mutant}`}: ${totals.failures} failures in ${elapsedSeconds.toFixed(1)} s; ` +
      `${totals.acknowledged} of ${totals.proposed} proposals acknowledged, ${totals.elections} elections, ` +
      `${totals.reads} reads checked, ${totals.crashes} crashes, ${totals.events} events`,
  );
  if (failedSeeds.length > 0) console.log(`failed seeds: ${failedSeeds.slice(0, 50).join(" ")}${failedSeeds.length > 50 ? " ..." : ""}`);
  process.exitCode = totals.failures === 0 ? 0 : 1;
}

// --servers: the whole-node simulation instead (real servers, not Raft cores).
if (process.argv.includes("--servers")) void import("./node-main.ts").then((servers) => servers.main(process.argv.slice(2)));
else main();
