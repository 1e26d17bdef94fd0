// Swarm testing: each seed turns a random subset of fault kinds on, at random
// rates, so some seeds hammer one fault and others mix everything. All drawn
// from the seed's PRNG.

import type { Prng } from "../../runtime/sim/prng.ts";
import type { NetworkFaults } from "../../runtime/sim/network.ts";

export type FaultKind =
  | "crash" // one node loses power
  | "powerFailure" // a majority (or all) at once
  | "partition" // random symmetric split
  | "isolateLeader"
  | "asymmetricLink" // one direction of one link
  | "heal"
  | "transferLeader"
  | "campaign"; // a node starts an election out of turn

export interface Swarm {
  faults: FaultKind[];
  faultIntervalMs: number;
  /** Probability that a crash loses every unsynced write (else a random prefix survives). */
  loseAllUnsyncedRate: number;
  downtimeMsMax: number;
  network: NetworkFaults;
  /** fdatasync latency, a random value in [1, diskSyncMsMax] per sync. */
  diskSyncMsMax: number;
  /** Delay before a node handles a pending Ready, in [0, readyDelayMsMax]. */
  readyDelayMsMax: number;
  compaction: boolean;
  snapshotEveryEntries: number;
  /** Entries kept behind a local snapshot (compaction lag). */
  keepEntriesMax: number;
  reads: boolean;
  proposalBurstMax: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
}

const allFaults: FaultKind[] = ["crash", "powerFailure", "partition", "isolateLeader", "asymmetricLink", "heal", "transferLeader", "campaign"];

export function drawSwarm(random: Prng): Swarm {
  const faults = allFaults.filter(() => random.chance(0.55));
  if (faults.length === 0) faults.push(random.pick(allFaults));
  if (faults.some((kind) => kind !== "heal" && kind !== "transferLeader" && kind !== "campaign")) faults.push("heal");
  const flaky = random.chance(0.5);
  return {
    faults,
    faultIntervalMs: random.between(20, 250),
    loseAllUnsyncedRate: random.float(),
    downtimeMsMax: random.between(20, 600),
    network: {
      dropRate: flaky ? random.float() * 0.15 : 0,
      duplicateRate: flaky ? random.float() * 0.1 : 0,
      delayMsMin: 1,
      delayMsMax: random.between(1, 12),
      slowRate: flaky ? random.float() * 0.1 : 0,
      slowDelayMsMax: random.between(20, 150),
    },
    diskSyncMsMax: random.between(1, 12),
    readyDelayMsMax: random.between(0, 3),
    compaction: random.chance(0.5),
    snapshotEveryEntries: random.between(2, 40),
    keepEntriesMax: random.between(0, 6),
    reads: random.chance(0.7),
    proposalBurstMax: random.pick([1, 1, 4, 16]),
    preVote: random.chance(0.5),
    checkQuorum: random.chance(0.5),
    maxSizePerMsg: random.pick([0, 100, 1024 * 1024]),
    maxInflightMsgs: random.pick([1, 4, 256]),
  };
}

export function describeSwarm(swarm: Swarm): string {
  const n = swarm.network;
  return (
    `faults=[${swarm.faults.join(",")}] every ${swarm.faultIntervalMs}ms; net drop=${n.dropRate.toFixed(3)} dup=${n.duplicateRate.toFixed(3)} ` +
    `delay=${n.delayMsMin}-${n.delayMsMax}ms slow=${n.slowRate.toFixed(3)}; sync<=${swarm.diskSyncMsMax}ms; ` +
    `compaction=${swarm.compaction ? `every ${swarm.snapshotEveryEntries} keep<=${swarm.keepEntriesMax}` : "off"}; reads=${swarm.reads}; ` +
    `preVote=${swarm.preVote} checkQuorum=${swarm.checkQuorum} maxSizePerMsg=${swarm.maxSizePerMsg} inflight=${swarm.maxInflightMsgs}`
  );
}
