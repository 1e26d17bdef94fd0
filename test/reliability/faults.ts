// Faults on real processes, behind one small interface so scenarios can draw
// any of them. Process faults live here (SIGKILL of a random member or of the
// leader, then restart; SIGSTOP longer than the election timeout, then
// SIGCONT). Network faults (blackhole, delay, drop through a peer proxy per
// member) plug in through the same interface from test/support/peer-proxy.ts
// once it exists: implement Fault and add it to a scenario's list.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Prng } from "../../runtime/sim/prng.ts";
import { Maintenance } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startCluster, type ClusterMember, type ClusterOptions, type TestCluster } from "../support/cluster.ts";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A running cluster plus what faults need: who is alive, who leads, how to stop and restart. */
export class FaultCluster {
  readonly electionMs: number;
  private readonly paused = new Set<ClusterMember>();

  private constructor(readonly cluster: TestCluster, readonly kind: "edgetcd" | "etcd", electionMs: number) {
    this.electionMs = electionMs;
  }

  static async start(size: number, options: ClusterOptions & { kind: "edgetcd" | "etcd"; electionMs: number }): Promise<FaultCluster> {
    return new FaultCluster(await startCluster(size, options), options.kind, options.electionMs);
  }

  get members(): ClusterMember[] {
    return this.cluster.members;
  }

  endpoint(member: ClusterMember): string {
    return `127.0.0.1:${member.clientPort}`;
  }

  endpoints(): string[] {
    return this.cluster.endpoints();
  }

  alive(member: ClusterMember): boolean {
    return member.server !== undefined && !this.paused.has(member);
  }

  async kill(member: ClusterMember): Promise<void> {
    if (this.paused.has(member)) this.resume(member);
    await member.server?.kill();
    member.server = undefined;
  }

  async restart(member: ClusterMember): Promise<void> {
    if (member.server !== undefined) return;
    await this.cluster.start(member);
  }

  pause(member: ClusterMember): void {
    const pid = member.server?.process.pid;
    if (pid === undefined) return;
    process.kill(pid, "SIGSTOP");
    this.paused.add(member);
  }

  resume(member: ClusterMember): void {
    const pid = member.server?.process.pid;
    if (pid !== undefined && this.paused.has(member)) process.kill(pid, "SIGCONT");
    this.paused.delete(member);
  }

  /** The member every live member names as leader, or undefined within the deadline. */
  async leader(deadlineMs = 10 * this.electionMs): Promise<ClusterMember | undefined> {
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      for (const member of this.members.filter((m) => this.alive(m))) {
        try {
          const status = await maintenance(this.endpoint(member)).status({}, { timeoutMs: 1000 });
          if (status.leader === 0n) continue;
          if (status.header?.memberId === status.leader) return member;
        } catch {
          // not answering: try the next one
        }
      }
      await sleep(100);
    }
    return undefined;
  }

  async stopAll(): Promise<void> {
    for (const member of this.paused) this.resume(member);
    await this.cluster.stopAll();
  }
}

export function maintenance(endpoint: string) {
  return createClient(Maintenance, createGrpcTransport({ baseUrl: `http://${endpoint}` }));
}

/**
 * One fault: `inject` breaks something and returns once it is in place;
 * `heal` undoes it (restarts, resumes, reconnects). Both may be awaited while
 * client traffic keeps running.
 */
export interface Fault {
  name: string;
  inject(cluster: FaultCluster, random: Prng): Promise<void>;
  heal(cluster: FaultCluster): Promise<void>;
}

/** SIGKILL one member (any, or the leader), wait, restart it from its data dir. */
export function killFault(which: "random" | "leader", downMs: number): Fault {
  let victim: ClusterMember | undefined;
  return {
    name: which === "leader" ? "kill-leader" : "kill-random",
    async inject(cluster, random) {
      victim = which === "leader" ? await cluster.leader() : random.pick(cluster.members.filter((m) => cluster.alive(m)));
      victim ??= random.pick(cluster.members);
      await cluster.kill(victim);
      await sleep(downMs);
    },
    async heal(cluster) {
      if (victim !== undefined) await cluster.restart(victim);
    },
  };
}

/** SIGSTOP one member (any, or the leader) for longer than an election timeout, then SIGCONT. */
export function pauseFault(which: "random" | "leader", pausedMs: number): Fault {
  let victim: ClusterMember | undefined;
  return {
    name: which === "leader" ? "pause-leader" : "pause-random",
    async inject(cluster, random) {
      victim = which === "leader" ? await cluster.leader() : random.pick(cluster.members.filter((m) => cluster.alive(m)));
      victim ??= random.pick(cluster.members);
      cluster.pause(victim);
      await sleep(pausedMs);
    },
    async heal(cluster) {
      if (victim !== undefined) cluster.resume(victim);
    },
  };
}

/** SIGKILL every member at once, then restart them all (J2). */
export function killAllFault(downMs: number): Fault {
  return {
    name: "kill-all",
    async inject(cluster) {
      await Promise.all(cluster.members.map((member) => cluster.kill(member)));
      await sleep(downMs);
    },
    async heal(cluster) {
      await Promise.all(cluster.members.map((member) => cluster.restart(member)));
    },
  };
}

/** The process faults L1 draws one of per run. */
export function processFaults(electionMs: number): Fault[] {
  return [
    killFault("random", electionMs),
    killFault("leader", electionMs),
    pauseFault("random", 2 * electionMs),
    pauseFault("leader", 2 * electionMs),
  ];
}
