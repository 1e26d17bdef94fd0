// The whole-node simulation: three members running the real EtcdServer
// (WAL, SQLite backend, MVCC, lessor, RaftLog, PeerTransport) over one
// simulated clock and network, with clients and faults drawn from one seed.
//
// A run has a fault phase (crashes and restarts, partitions, lossy and slow
// links, a member removed and a new one joined), then a liveness phase:
// everything healed and restarted, a leader must appear within
// `leaderWithinElectionTimeouts` election timeouts, one more write must
// succeed, and every member must converge. Then the end checks: every
// acknowledged put is on every member, all members stand at the same revision
// with the same HashKV, and no answer's revision ever went back.
//
// Determinism: the WAL and the peer network are simulated, so their timing is
// a function of the seed. The SQLite backend and its snapshot files are real
// files in a temporary directory (the driver opens them by name); the
// simulator waits for every real file call before it moves time on, so the
// seed reproduces the fault schedule and workload, and almost always the run.

import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { SimClock } from "../../runtime/sim/clock.ts";
import { reliableNetwork, SimNetwork } from "../../runtime/sim/network.ts";
import { simulatedCrashMessage } from "../../runtime/sim/file-system.ts";
import { type PeerPacket, SimPeerHub } from "../../runtime/sim/peer-network.ts";
import { Prng } from "../../runtime/sim/prng.ts";
import { peerPaths } from "../../src/peer/headers.ts";
import type { FileSystem, SqliteDriver, Timer } from "../../src/ports.ts";
import { electionTimeoutMs, type MemberCounters, SimMember } from "./node-member.ts";
import { describeNodeSwarm, drawNodeSwarm, type NodeSwarm } from "./node-swarm.ts";
import { NodeWorkload, readSetKeys } from "./node-workload.ts";
import { Trace } from "./trace.ts";

export const leaderWithinElectionTimeouts = 10;
const initialMembers = 3;
/** Longer than the server's own request timeout (5 s + 2 election timeouts). */
const membershipAnswerMs = 8000;

export interface NodeSimOptions {
  seed: number;
  /** Simulated milliseconds of the fault phase. */
  faultPhaseMs: number;
  /** A fresh directory for the members' SQLite files. */
  rootDir: string;
  realFs: FileSystem;
  sqlite: SqliteDriver;
  traceLines?: number;
}

export interface NodeSimResult {
  seed: number;
  violation?: string;
  trace: string[];
  swarm: string;
  writesAcknowledged: number;
  writesFailed: number;
  readsChecked: number;
  compactions: number;
  setKeysChecked: number;
  crashes: number;
  partitions: number;
  membersRemoved: number;
  membersAdded: number;
  learnersPromoted: number;
  /** Snapshot requests that reached the receiving member. */
  snapshotsSent: number;
  snapshotsInstalled: number;
  connectionsBroken: number;
  /** Unhandled rejections of crashed incarnations' leftover promises (not a bug: the process is gone). */
  rejectionsAfterCrash: number;
  leaderAfterHealMs: number | undefined;
  finalRevision: number;
  events: number;
  simulatedMs: number;
}

/**
 * Where the members' SQLite files go: a RAM disk when there is one (the
 * simulator waits for every real file call, so slow fsyncs only cost wall time).
 */
export function simTemporaryDir(): string {
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}

export function nodeReplayCommand(seed: number): string {
  return `npm run sim -- --servers --seed ${seed}`;
}

class NodeCluster {
  readonly clock = new SimClock();
  readonly trace: Trace;
  readonly swarm: NodeSwarm;
  readonly network: SimNetwork<PeerPacket>;
  readonly hub: SimPeerHub;
  readonly members: SimMember[] = [];
  readonly workload: NodeWorkload;
  readonly counters: MemberCounters = { snapshotsInstalled: 0, leaderChanges: 0 };
  private readonly faultRandom: Prng;
  private readonly memberRandom: Prng;
  private readonly timers: Timer[] = [];
  private readonly configs = new Map<SimMember, ReturnType<SimMember["config"]>>();
  private realCallChain: Promise<unknown> = Promise.resolve();
  violation: string | undefined;
  events = 0;
  crashes = 0;
  partitions = 0;
  membersRemoved = 0;
  membersAdded = 0;
  learnersPromoted = 0;
  private membershipBusy = false;
  private membershipChangesLeft = 2;

  constructor(private readonly options: NodeSimOptions) {
    const random = new Prng(options.seed);
    this.swarm = drawNodeSwarm(random.fork());
    this.faultRandom = random.fork();
    this.memberRandom = random.fork();
    this.trace = new Trace(options.traceLines ?? 60, () => this.clock.nowMs());
    this.network = new SimNetwork<PeerPacket>(
      this.clock,
      random.fork(),
      (_from, _to, packet) => this.hub.deliver(packet),
      (_from, _to, packet) => this.hub.lost(packet),
      reliableNetwork,
    );
    this.hub = new SimPeerHub(this.network);
    this.workload = new NodeWorkload(options.seed, random.fork(), this.trace);
    for (let endpoint = 1; endpoint <= initialMembers; endpoint++) this.addMember();
  }

  private addMember(): SimMember {
    const endpoint = this.members.length + 1;
    const member = new SimMember(`m${endpoint}`, endpoint, {
      clock: this.clock,
      hub: this.hub,
      random: this.memberRandom,
      trace: this.trace,
      realFs: this.options.realFs,
      sqlite: this.options.sqlite,
      rootDir: this.options.rootDir,
      diskSyncMsMax: this.swarm.diskSyncMsMax,
      counters: this.counters,
      serialize: (call) => this.serialize(call),
      onCrashBug: (who, error) => this.fail(`${who.name}: a timer threw ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`),
    });
    this.members.push(member);
    return member;
  }

  /** Runs a real asynchronous call once every earlier one has finished, so they finish in the order made. */
  serialize<T>(call: () => Promise<T>): Promise<T> {
    const result = this.realCallChain.then(call);
    this.realCallChain = result.catch(() => {});
    return result;
  }

  fail(message: string): void {
    this.trace.add(`VIOLATION ${message}`);
    this.violation ??= message;
  }

  private live(): SimMember[] {
    return this.members.filter((member) => member.state === "up" && member.server !== undefined);
  }

  private leader(): SimMember | undefined {
    return this.live().find((member) => member.server?.isLeader === true);
  }

  private startMember(member: SimMember, config: ReturnType<SimMember["config"]>): void {
    this.configs.set(member, config);
    void member.start(config);
  }

  /** Lets every pending promise chain and real file call finish before time moves. */
  private async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (let spins = 0; this.members.some((member) => member.fs.realInFlight > 0); spins++) {
      if (spins > 1_000_000) throw new Error("real file calls never finished");
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Runs simulated time until `untilMs` or until `done()` holds. True if `done()` held. */
  async runUntil(untilMs: number, done: () => boolean = () => false): Promise<boolean> {
    for (;;) {
      await this.settle();
      if (this.violation !== undefined) return false;
      if (done()) return true;
      const next = this.clock.nextTimerMs();
      if (next === undefined || next > untilMs) {
        this.clock.advance(Math.max(0, untilMs - this.clock.nowMs()));
        return done();
      }
      this.clock.step();
      this.events++;
    }
  }

  // --- phases --------------------------------------------------------------

  async faultPhase(): Promise<void> {
    const initialCluster = this.members.map((member) => `${member.name}=${member.peerUrl}`).join(",");
    for (const member of this.members) this.startMember(member, member.config(initialCluster, "new"));
    this.network.faults = { ...this.swarm.network };
    this.timers.push(
      this.clock.setInterval(this.swarm.clientIntervalMs, () => {
        const live = this.live();
        if (live.length === 0) return;
        const member = this.faultRandom.pick(live);
        if (member.server !== undefined) this.workload.issue({ name: member.name, incarnation: member.incarnation, server: member.server });
        if (this.workload.violation !== undefined) this.fail(this.workload.violation);
      }),
    );
    this.timers.push(this.clock.setInterval(this.swarm.faultIntervalMs, () => this.injectFault()));
    await this.runUntil(this.clock.nowMs() + this.options.faultPhaseMs);
    for (const timer of this.timers.splice(0)) timer.cancel();
  }

  private injectFault(): void {
    const kinds: string[] = ["heal"];
    if (this.swarm.crash) kinds.push("crash", "crash");
    if (this.swarm.partition) kinds.push("partition", "isolateLeader");
    if (this.swarm.membership && !this.membershipBusy && this.membershipChangesLeft > 0) kinds.push("membership");
    const kind = this.faultRandom.pick(kinds);
    if (kind === "heal") {
      if (this.network.cutLinkCount() > 0) this.trace.add("heal");
      this.network.healAll();
    } else if (kind === "crash") {
      this.crashOne();
    } else if (kind === "partition" || kind === "isolateLeader") {
      const target = kind === "isolateLeader" ? (this.leader() ?? this.faultRandom.pick(this.members)) : this.faultRandom.pick(this.members);
      const others = this.members.filter((member) => member !== target).map((member) => member.endpoint);
      this.network.partition([[target.endpoint], others]);
      this.partitions++;
      this.trace.add(`partition: ${target.name} alone`);
    } else {
      void this.changeMembership();
    }
  }

  private crashOne(): void {
    const candidates = this.members.filter((member) => member.state === "up" || member.state === "starting");
    if (candidates.length === 0) return;
    const member = this.faultRandom.pick(candidates);
    const kind = this.swarm.powerFailure && this.faultRandom.chance(0.5) ? "powerFailure" : "kill";
    this.crash(member, kind);
    const downtimeMs = this.faultRandom.between(50, this.swarm.downtimeMsMax);
    this.clock.setTimer(downtimeMs, () => {
      const config = this.configs.get(member);
      if (member.state === "down" && config !== undefined) this.startMember(member, config);
    });
  }

  private crash(member: SimMember, kind: "kill" | "powerFailure"): void {
    this.workload.abandon(member.name, member.incarnation);
    member.crash(kind);
    this.crashes++;
    this.trace.add(`crash ${member.name} (${kind})`);
  }

  /** Removes a member (maybe the leader), then adds a new one, as a voter or as a learner promoted later. */
  private async changeMembership(): Promise<void> {
    const live = this.live();
    const voters = this.members.filter((member) => member.state !== "removed");
    if (live.length < voters.length) return;
    this.membershipBusy = true;
    this.membershipChangesLeft--;
    try {
      const victim = this.faultRandom.pick(live);
      const asker = this.faultRandom.pick(live.filter((member) => member !== victim));
      const victimId = asker.server?.members().find((member) => member.peerURLs.includes(victim.peerUrl))?.ID;
      if (victimId === undefined || asker.server === undefined) return;
      this.trace.add(`member remove ${victim.name} through ${asker.name}`);
      await this.within(asker.server.memberRemove(Number(victimId)), "member remove");
      this.membersRemoved++;
      this.trace.add(`member ${victim.name} removed`);
      if (victim.state !== "removed") {
        this.crash(victim, "kill");
        victim.state = "removed";
      }
      const learner = this.faultRandom.chance(0.5);
      const adder = this.faultRandom.pick(this.live().length > 0 ? this.live() : [asker]);
      if (adder.server === undefined) return;
      // The next member's name and URL; it exists only once the cluster has accepted it.
      const name = `m${this.members.length + 1}`;
      this.trace.add(`member add ${name}${learner ? " as learner" : ""} through ${adder.name}`);
      await this.within(adder.server.memberAdd([`http://${name}:2380`], learner), "member add");
      const newcomer = this.addMember();
      this.membersAdded++;
      const cluster = this.members
        .filter((member) => member.state !== "removed")
        .map((member) => `${member.name}=${member.peerUrl}`)
        .join(",");
      this.startMember(newcomer, newcomer.config(cluster, "existing"));
      if (learner) await this.promote(newcomer);
    } catch (error) {
      this.trace.add(`membership change failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.membershipBusy = false;
    }
  }

  /**
   * A request to a member that then crashed never answers; after
   * `membershipAnswerMs` its outcome counts as unknown, so later changes can go on.
   */
  private within<T>(request: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimer(membershipAnswerMs, () => reject(new Error(`${what}: no answer within ${membershipAnswerMs} ms`)));
      request.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }

  private async promote(learner: SimMember): Promise<void> {
    for (let attempt = 0; attempt < 40; attempt++) {
      await new Promise<void>((resolve) => this.clock.setTimer(250, resolve));
      const leader = this.leader();
      const id = leader?.server?.members().find((member) => member.peerURLs.includes(learner.peerUrl))?.ID;
      if (leader?.server === undefined || id === undefined) continue;
      try {
        await this.within(leader.server.memberPromote(Number(id)), "member promote");
        this.learnersPromoted++;
        this.trace.add(`learner ${learner.name} promoted`);
        return;
      } catch (error) {
        if (attempt % 10 === 9) this.trace.add(`promote ${learner.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  /** Heals everything and restarts every member; returns how long a leader took (undefined: none in time). */
  async livenessPhase(): Promise<number | undefined> {
    this.network.healAll();
    this.network.faults = { ...reliableNetwork };
    const healedMs = this.clock.nowMs();
    this.trace.add("heal all, restart every member");
    for (const member of this.members) {
      const config = this.configs.get(member);
      if (member.state === "down" && config !== undefined) this.startMember(member, config);
    }
    const deadlineMs = healedMs + leaderWithinElectionTimeouts * electionTimeoutMs;
    const agreed = await this.runUntil(deadlineMs, () => this.leaderAgreed());
    if (!agreed) {
      this.fail(`no leader that every member follows within ${leaderWithinElectionTimeouts} election timeouts after heal (${this.describeMembers()})`);
      return undefined;
    }
    const leaderAfterHealMs = this.clock.nowMs() - healedMs;
    this.trace.add(`leader ${this.leader()?.name} agreed ${leaderAfterHealMs} ms after heal`);
    await this.finalWrite();
    return leaderAfterHealMs;
  }

  /**
   * The members the leader's member list holds (all not removed while there is
   * no leader). A removal whose answer was lost may still have been applied;
   * a member it removed that never heard of it is no longer part of the cluster.
   */
  private clusterMembers(): SimMember[] {
    const listed = this.leader()?.server?.members();
    if (listed === undefined) return this.members.filter((member) => member.state !== "removed");
    const urls = new Set(listed.flatMap((member) => member.peerURLs));
    return this.members.filter((member) => member.state !== "removed" && urls.has(member.peerUrl));
  }

  private leaderAgreed(): boolean {
    const members = this.clusterMembers();
    if (members.some((member) => member.state !== "up")) return false;
    const leader = this.leader();
    if (leader?.server === undefined) return false;
    const leaderId = leader.server.status().leader;
    return members.every((member) => member.server?.status().leader === leaderId);
  }

  private describeMembers(): string {
    return this.members
      .map((member) => {
        const status = member.server?.status();
        return `${member.name}:${member.state}${status === undefined ? "" : ` leader=${status.leader.toString(16)} term=${status.raftTerm} applied=${status.raftAppliedIndex}`}`;
      })
      .join(" ");
  }

  private async finalWrite(): Promise<void> {
    let done = false;
    let failures = 0;
    const attempt = () => {
      const leader = this.leader();
      if (leader === undefined) return void this.clock.setTimer(electionTimeoutMs, attempt);
      this.workload.finalPut({ name: leader.name, incarnation: leader.incarnation, server: leader.server! }).then(
        () => {
          done = true;
        },
        () => {
          failures++;
          this.clock.setTimer(electionTimeoutMs, attempt);
        },
      );
    };
    attempt();
    const deadlineMs = this.clock.nowMs() + 30_000;
    if (!(await this.runUntil(deadlineMs, () => done))) this.fail(`the final write did not succeed within 30 s after heal (${failures} failures)`);
  }

  /** Waits for every member to apply the same index, then compares their data. */
  async convergeAndCheck(): Promise<{ revision: number; setKeysChecked: number }> {
    const members = () => this.clusterMembers().filter((member) => member.state === "up" && member.server !== undefined);
    const converged = await this.runUntil(this.clock.nowMs() + 30_000, () => {
      const statuses = members().map((member) => member.server!.status());
      const applied = statuses.map((status) => status.raftAppliedIndex);
      return statuses.length > 0 && applied.every((index) => index === applied[0]) && statuses.length === this.clusterMembers().length;
    });
    if (!converged) {
      this.fail(`members did not converge within 30 s (${this.describeMembers()})`);
      return { revision: 0, setKeysChecked: 0 };
    }
    let revision: number | undefined;
    let hash: string | undefined;
    let setKeysChecked = 0;
    for (const member of members()) {
      const server = member.server!;
      const read = await readSetKeys(server);
      if (revision === undefined) revision = read.revision;
      else if (read.revision !== revision) this.fail(`${member.name} stands at revision ${read.revision}, another member at ${revision}`);
      if (read.revision < this.workload.highestRevision) {
        this.fail(`${member.name} stands at revision ${read.revision}, below revision ${this.workload.highestRevision} already answered`);
      }
      for (const [key, value] of this.workload.acknowledged) {
        setKeysChecked++;
        const found = read.values.get(key);
        if (found !== value) this.fail(`${member.name} lost acknowledged ${key}=${value} (found ${found ?? "nothing"})`);
      }
      const memberHash = JSON.stringify(server.hashKV(read.revision));
      if (hash === undefined) hash = memberHash;
      else if (memberHash !== hash) this.fail(`${member.name} HashKV at ${read.revision} is ${memberHash}, another member's ${hash}`);
    }
    this.trace.add(`converged at revision ${revision}, hashKV ${hash}; requests by path ${JSON.stringify([...this.hub.requestsByPath])}`);
    return { revision: revision ?? 0, setKeysChecked };
  }

  async stopAll(): Promise<void> {
    for (const member of this.members) {
      if (member.server !== undefined) member.crash("kill");
    }
    await this.settle();
  }
}

export async function runNodeSeed(options: NodeSimOptions): Promise<NodeSimResult> {
  const cluster = new NodeCluster(options);
  // An unhandled rejection would stop a real member's process (Node's default),
  // so one from a living member is a bug. A crashed incarnation's leftover
  // promise chains fail with the simulated crash error: those are counted only.
  let rejectionsAfterCrash = 0;
  const onRejection = (reason: unknown) => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message).split("\n").slice(0, 6).join(" | ") : String(reason);
    if (text.includes(simulatedCrashMessage)) {
      rejectionsAfterCrash++;
      return;
    }
    cluster.fail(`unhandled promise rejection (it would stop the process): ${text}`);
  };
  process.on("unhandledRejection", onRejection);
  let leaderAfterHealMs: number | undefined;
  let final = { revision: 0, setKeysChecked: 0 };
  try {
    await cluster.faultPhase();
    if (cluster.violation === undefined) leaderAfterHealMs = await cluster.livenessPhase();
    if (cluster.violation === undefined) final = await cluster.convergeAndCheck();
  } catch (error) {
    cluster.fail(`the simulator itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    await cluster.stopAll();
    process.off("unhandledRejection", onRejection);
  }
  const workload = cluster.workload;
  return {
    seed: options.seed,
    ...(cluster.violation === undefined ? {} : { violation: cluster.violation }),
    trace: cluster.trace.tail(),
    swarm: describeNodeSwarm(cluster.swarm),
    writesAcknowledged: workload.writesAcknowledged,
    writesFailed: workload.writesFailed,
    readsChecked: workload.readsChecked,
    compactions: workload.compactions,
    setKeysChecked: final.setKeysChecked,
    crashes: cluster.crashes,
    partitions: cluster.partitions,
    membersRemoved: cluster.membersRemoved,
    membersAdded: cluster.membersAdded,
    learnersPromoted: cluster.learnersPromoted,
    snapshotsSent: cluster.hub.requestsByPath.get(peerPaths.snapshot) ?? 0,
    snapshotsInstalled: cluster.counters.snapshotsInstalled,
    connectionsBroken: cluster.hub.brokenCount,
    rejectionsAfterCrash,
    leaderAfterHealMs,
    finalRevision: final.revision,
    events: cluster.events,
    simulatedMs: cluster.clock.nowMs(),
  };
}
