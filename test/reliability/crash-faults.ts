// Crash points as faults for test:long (L2): the member is restarted with
// EDGETCD_CRASH_POINT=<point>:<n> while traffic runs, kills itself there (or,
// if traffic never gets it that far in time, is killed with SIGKILL), and
// heal restarts it unattended without the variable.
import type { Prng } from "../../runtime/sim/prng.ts";
import type { CrashPointName } from "../../src/storage/crash-points.ts";
import type { ClusterMember } from "../support/cluster.ts";
import { sleep, type Fault, type FaultCluster } from "./faults.ts";

/** Points the default flags reach under L2 traffic (snapshot points need a small --snapshot-count: crash-points-snapshot.test.ts). */
const points: ReadonlyArray<{ point: CrashPointName; hitMax: number }> = [
  { point: "wal-before-save", hitMax: 200 },
  { point: "wal-after-write-before-sync", hitMax: 200 },
  { point: "wal-after-sync", hitMax: 200 },
  { point: "backend-before-commit", hitMax: 20 },
  { point: "backend-after-commit", hitMax: 20 },
  { point: "compaction-after-schedule", hitMax: 2 },
];

export function crashPointFault(point: CrashPointName, hitMax: number, waitMs = 5000): Fault {
  let victim: ClusterMember | undefined;
  return {
    name: `crash-point ${point}`,
    async inject(cluster: FaultCluster, random: Prng) {
      victim = random.pick(cluster.members.filter((member) => cluster.alive(member)));
      const hit = 1 + random.int(hitMax);
      victim.env = { ...victim.env, EDGETCD_CRASH_POINT: `${point}:${hit}` };
      await cluster.kill(victim);
      try {
        await cluster.restart(victim);
      } catch {
        // It reached its point while starting (a commit during recovery): down, as meant.
      }
      const child = victim.server?.process;
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        await Promise.race([exited, sleep(waitMs)]);
      }
      // Dead at its point, or killed here if traffic did not reach it in time.
      await cluster.kill(victim);
    },
    async heal(cluster: FaultCluster) {
      if (victim === undefined) return;
      const { EDGETCD_CRASH_POINT: _, ...rest } = victim.env ?? {};
      victim.env = rest;
      await cluster.restart(victim);
    },
  };
}

export function crashPointFaults(): Fault[] {
  return points.map(({ point, hitMax }) => crashPointFault(point, hitMax));
}
