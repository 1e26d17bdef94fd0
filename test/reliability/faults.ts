// Faults on real processes, behind one small interface so scenarios can draw
// any of them: process faults (SIGKILL of a random member or of the leader,
// then restart; SIGSTOP longer than the election timeout, then SIGCONT);
// member replace (remove, kill, wipe, re-add, start empty); and network
// faults through the peer proxies of test/support/peer-proxy.ts (isolation,
// one-way loss, a lossy slow network, isolation until a snapshot is needed).
// Network faults need members that dial through the proxies, which only
// edgetcd can (EDGETCD_TEST_PEER_DIAL): the real etcd gets the others.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Prng } from "../../runtime/sim/prng.ts";
import { Cluster, Maintenance } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startCluster, type ClusterMember, type ClusterOptions, type TestCluster } from "../support/cluster.ts";
import type { Links } from "../support/peer-proxy.ts";
import type { RunOptions } from "./scenarios.ts";
import { rmSync } from "node:fs";

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

function clusterService(endpoint: string) {
  return createClient(Cluster, createGrpcTransport({ baseUrl: `http://${endpoint}` }));
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

/** Picks the victim of a one-member fault: the leader, or any live member. */
async function chooseVictim(cluster: FaultCluster, which: "random" | "leader", random: Prng): Promise<ClusterMember> {
  const chosen = which === "leader" ? await cluster.leader() : random.pick(cluster.members.filter((m) => cluster.alive(m)));
  return chosen ?? random.pick(cluster.members);
}

function linksOf(cluster: FaultCluster): Links {
  const links = cluster.cluster.links;
  if (links === undefined) throw new Error("network faults need a cluster started with peer proxies");
  return links;
}

/** A peer network fault: `breakLinks` sets the proxies, `ms` pass, then every link heals. */
function networkFault(
  name: string,
  ms: number,
  breakLinks: (links: Links, cluster: FaultCluster, random: Prng) => Promise<void>,
): Fault {
  return {
    name,
    async inject(cluster, random) {
      await breakLinks(linksOf(cluster), cluster, random);
      await sleep(ms);
    },
    async heal(cluster) {
      linksOf(cluster).heal();
    },
  };
}

/** The member cannot send to or hear from any peer, for `ms`; clients still reach it. */
export function isolateFault(which: "random" | "leader", ms: number): Fault {
  return networkFault(which === "leader" ? "isolate-leader" : "isolate-random", ms, async (links, cluster, random) => {
    links.isolate((await chooseVictim(cluster, which, random)).name);
  });
}

/**
 * Asymmetric: the leader still hears its followers but nothing it sends
 * arrives, so they elect another leader while it keeps receiving their votes
 * and answers (check-quorum must make it step down).
 */
export function leaderMuteFault(ms: number): Fault {
  return networkFault("mute-leader", ms, async (links, cluster, random) => {
    const leader = await chooseVictim(cluster, "leader", random);
    for (const other of cluster.members) if (other !== leader) links.cut(leader.name, other.name);
  });
}

/** Every peer link delays (with jitter) and loses chunks, which breaks connections mid-message. */
export function lossyNetworkFault(ms: number): Fault {
  return networkFault("lossy-network", ms, async (links, _cluster, random) => {
    const delayMs = random.between(10, 60);
    const dropProbability = random.between(2, 10) / 100;
    for (const proxy of links.all()) {
      proxy.delay(delayMs, delayMs);
      proxy.dropRate(dropProbability);
    }
  });
}

/**
 * A follower is cut off while writes go on, long enough that (with the small
 * --snapshot-count the scenarios give edgetcd) the leader compacts its log
 * past the follower's position, so the follower catches up by snapshot.
 */
export function isolateUntilSnapshotFault(ms: number): Fault {
  return networkFault("isolate-until-snapshot", ms, async (links, cluster, random) => {
    const leader = await cluster.leader();
    const followers = cluster.members.filter((m) => m !== leader && cluster.alive(m));
    links.isolate((followers.length > 0 ? random.pick(followers) : random.pick(cluster.members)).name);
  });
}

/**
 * Member replace, as etcd's robustness suite does it: remove a member from
 * the cluster (through another member), kill it, wipe its data dir, add it
 * back under the same name and peer URL (a new member id), and start it
 * empty with --initial-cluster-state existing, so it catches up from the
 * others.
 */
export function memberReplaceFault(downMs: number): Fault {
  let victim: ClusterMember | undefined;
  return {
    name: "member-replace",
    async inject(cluster, random) {
      victim = random.pick(cluster.members.filter((m) => cluster.alive(m)));
      const target = victim;
      const others = cluster.members.filter((m) => m !== target && cluster.alive(m));
      const id = (await maintenance(cluster.endpoint(target)).status({}, { timeoutMs: 3000 })).header?.memberId;
      if (id === undefined) throw new Error("member-replace: no member id");
      await retry(`remove ${target.name}`, 20 * cluster.electionMs, async (attempt) => {
        const through = others[attempt % others.length] as ClusterMember;
        await clusterService(cluster.endpoint(through)).memberRemove({ ID: id }, { timeoutMs: 3000 });
      });
      await cluster.kill(target);
      rmSync(target.dataDir, { recursive: true, force: true });
      await sleep(downMs);
      await retry(`add ${target.name} back`, 20 * cluster.electionMs, async (attempt) => {
        const through = others[attempt % others.length] as ClusterMember;
        const members = await clusterService(cluster.endpoint(through)).memberList({ linearizable: true }, { timeoutMs: 3000 });
        const peerURL = `http://127.0.0.1:${target.peerPort}`;
        // A retried add whose first attempt did commit must not add it twice.
        if (members.members.some((m) => m.peerURLs.includes(peerURL))) return;
        await clusterService(cluster.endpoint(through)).memberAdd({ peerURLs: [peerURL] }, { timeoutMs: 3000 });
      });
      target.extraArgs = ["--initial-cluster-state", "existing"];
    },
    async heal(cluster) {
      if (victim !== undefined) await cluster.restart(victim);
    },
  };
}

async function retry(what: string, deadlineMs: number, body: (attempt: number) => Promise<void>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await body(attempt);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${String(error)}`);
      await sleep(200);
    }
  }
}

/** The peer network faults L1 and J1 draw from on edgetcd clusters with proxies. */
export function networkFaults(electionMs: number): Fault[] {
  return [
    isolateFault("random", 3 * electionMs),
    isolateFault("leader", 3 * electionMs),
    leaderMuteFault(3 * electionMs),
    lossyNetworkFault(6 * electionMs),
    isolateUntilSnapshotFault(6 * electionMs),
  ];
}

// ---------------------------------------------------------------------------
// Clusters and fault lists for the scenarios (scenarios.ts and the W1 and D files).

/** The timing every scenario's cluster runs with (etcd's defaults are 100 ms / 1000 ms). */
export const heartbeatMs = 50;
export const electionMs = 500;

/**
 * edgetcd clusters of several members dial each other through peer proxies
 * (for the network faults) and snapshot often, so a member cut off for a few
 * seconds catches up by snapshot. The real etcd cannot dial through the
 * proxies and 3.4 has no catch-up-entries flag: it runs as configured.
 */
function proxied(size: number, options: RunOptions): boolean {
  return options.kind === "edgetcd" && size > 1;
}

/** Starts a cluster for one run, and stops it (and its proxies) however the run ends. */
export async function withCluster<T>(size: number, options: RunOptions, body: (cluster: FaultCluster) => Promise<T>): Promise<T> {
  const cluster = await FaultCluster.start(size, {
    kind: options.kind,
    runtime: options.runtime,
    heartbeatMs,
    electionMs,
    readyTimeoutMs: 120_000,
    proxies: proxied(size, options),
    extraArgs: [
      ...(proxied(size, options) ? ["--snapshot-count", "200", "--experimental-snapshot-catchup-entries", "50"] : []),
      // Each linearizable-read round in the members' logs (saved with an illegal history).
      ...(options.kind === "edgetcd" && process.env.EDGETCD_RELIABILITY_DEBUG !== undefined ? ["--log-level", "debug"] : []),
    ],
  });
  try {
    return await body(cluster);
  } finally {
    await cluster.stopAll();
  }
}

/** The faults a multi-member scenario draws from: process faults, member replace, and network faults where the cluster has proxies. */
export function clusterFaults(size: number, options: RunOptions): Fault[] {
  return chosenFaults([...processFaults(electionMs), memberReplaceFault(electionMs), ...(proxied(size, options) ? networkFaults(electionMs) : [])], options);
}

export function chosenFaults(all: Fault[], options: RunOptions): Fault[] {
  const faults = all.filter((fault) => !(options.skipFaults ?? []).includes(fault.name));
  if (options.faults === undefined) return faults;
  const chosen = faults.filter((fault) => options.faults?.includes(fault.name));
  if (chosen.length === 0) throw new Error(`--faults ${options.faults.join(",")} matches none of ${faults.map((f) => f.name).join(", ")}`);
  return chosen;
}

