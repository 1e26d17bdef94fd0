// npm run sim -- --servers [--seeds N] [--seed S] [--phase-ms M] [--verbose]
// Runs N seeds of the whole-node simulation (test/sim/node-sim.ts) from S
// (default 1), each with a fault phase of M simulated ms, prints each failure
// with its replay command, swarm and trace, then a summary. Exits non-zero on
// any failure.

import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { testRuntime } from "../support/runtime.ts";
import { nodeReplayCommand, type NodeSimResult, runNodeSeed, simTemporaryDir } from "./node-sim.ts";

export const defaultFaultPhaseMs = 8000;

function option(argv: string[], name: string, fallback: number): number {
  const index = argv.indexOf(name);
  if (index < 0) return fallback;
  const parsed = Number(argv[index + 1]);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new Error(`${name} needs a non-negative integer, got ${argv[index + 1]}`);
  return parsed;
}

export function describeResult(result: NodeSimResult): string {
  return (
    `${result.writesAcknowledged} writes acknowledged (${result.writesFailed} failed), ${result.readsChecked} reads checked, ` +
    `${result.setKeysChecked} key copies checked, ${result.crashes} crashes, ${result.partitions} partitions, ` +
    `${result.membersRemoved} removed/${result.membersAdded} added/${result.learnersPromoted} promoted, ` +
    `${result.snapshotsSent} snapshots sent/${result.snapshotsInstalled} installed, ${result.connectionsBroken} connections broken, ` +
    `leader ${result.leaderAfterHealMs ?? "-"} ms after heal, revision ${result.finalRevision}, ${result.events} events, ${result.simulatedMs} ms simulated`
  );
}

export async function main(argv: string[]): Promise<void> {
  const seedGiven = argv.includes("--seed");
  const first = option(argv, "--seed", 1);
  const count = option(argv, "--seeds", seedGiven ? 1 : 20);
  const faultPhaseMs = option(argv, "--phase-ms", defaultFaultPhaseMs);
  const verbose = argv.includes("--verbose");
  const runtime = await testRuntime();
  const started = performance.now();
  const failed: number[] = [];
  const totals = { writes: 0, snapshotsSent: 0, snapshotsInstalled: 0, crashes: 0, membershipChanges: 0 };
  for (let seed = first; seed < first + count; seed++) {
    const rootDir = await mkdtemp(join(simTemporaryDir(), `edgetcd-node-sim-${seed}-`));
    try {
      const result = await runNodeSeed({ seed, faultPhaseMs, rootDir, realFs: runtime.fs, sqlite: runtime.sqlite });
      totals.writes += result.writesAcknowledged;
      totals.snapshotsSent += result.snapshotsSent;
      totals.snapshotsInstalled += result.snapshotsInstalled;
      totals.crashes += result.crashes;
      totals.membershipChanges += result.membersRemoved + result.membersAdded;
      if (result.violation !== undefined) {
        failed.push(seed);
        console.log(`\nFAIL seed ${seed}: ${result.violation}`);
        console.log(`  replay: ${nodeReplayCommand(seed)}${faultPhaseMs === defaultFaultPhaseMs ? "" : ` --phase-ms ${faultPhaseMs}`}`);
        console.log(`  swarm: ${result.swarm}`);
        console.log(`  ${describeResult(result)}`);
        console.log("  trace tail:");
        for (const line of result.trace) console.log(`    ${line}`);
      } else if (verbose) {
        console.log(`seed ${seed}: ok; ${result.swarm}\n  ${describeResult(result)}`);
      }
    } finally {
      await rm(rootDir, { recursive: true, force: true });
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `\nsim --servers: ${count} seeds (${first}..${first + count - 1}) x 3 members, ${faultPhaseMs} ms of faults each: ` +
      `${failed.length} failures in ${seconds} s; ${totals.writes} writes acknowledged, ${totals.crashes} crashes, ` +
      `${totals.membershipChanges} membership changes, ${totals.snapshotsSent} snapshots sent, ${totals.snapshotsInstalled} installed`,
  );
  if (failed.length > 0) console.log(`failed seeds: ${failed.join(" ")}`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}
