// What faults a whole-node simulation seed turns on, and how hard: drawn from
// the seed (swarm testing), so some seeds hammer one fault and others mix them.

import type { NetworkFaults } from "../../runtime/sim/network.ts";
import type { Prng } from "../../runtime/sim/prng.ts";

export interface NodeSwarm {
  crash: boolean;
  powerFailure: boolean;
  partition: boolean;
  membership: boolean;
  faultIntervalMs: number;
  downtimeMsMax: number;
  clientIntervalMs: number;
  diskSyncMsMax: number;
  network: NetworkFaults;
}

export function drawNodeSwarm(random: Prng): NodeSwarm {
  const flaky = random.chance(0.5);
  return {
    crash: random.chance(0.7),
    powerFailure: random.chance(0.5),
    partition: random.chance(0.6),
    membership: random.chance(0.5),
    faultIntervalMs: random.between(300, 1500),
    downtimeMsMax: random.between(200, 3000),
    clientIntervalMs: random.between(5, 40),
    diskSyncMsMax: random.pick([0, 2, 10, 30]),
    network: {
      // A lost packet breaks its connection (see runtime/sim/peer-network.ts), so loss stays rare.
      dropRate: flaky ? random.float() * 0.002 : 0,
      duplicateRate: flaky ? random.float() * 0.05 : 0,
      delayMsMin: 1,
      delayMsMax: random.between(1, 20),
      slowRate: flaky ? random.float() * 0.05 : 0,
      slowDelayMsMax: random.between(20, 200),
    },
  };
}

export function describeNodeSwarm(swarm: NodeSwarm): string {
  const faults = (["crash", "powerFailure", "partition", "membership"] as const).filter((kind) => swarm[kind]);
  const n = swarm.network;
  return (
    `faults=[${faults.join(",")}] every ${swarm.faultIntervalMs}ms, down<=${swarm.downtimeMsMax}ms; client every ${swarm.clientIntervalMs}ms; ` +
    `sync<=${swarm.diskSyncMsMax}ms; ` +
    `net drop=${n.dropRate.toFixed(4)} dup=${n.duplicateRate.toFixed(3)} delay=${n.delayMsMin}-${n.delayMsMax}ms slow=${n.slowRate.toFixed(3)}`
  );
}
