// A whole Raft cluster in one thread: 3 or 5 SimNodes over one simulated
// clock, network and set of disks, clients, and faults, every choice drawn
// from one seed. A run has a safety phase (faults on, invariants checked at
// every event) and a liveness phase (everything healed: a leader must appear
// within 10 election timeouts, every pending proposal must complete and all
// nodes must converge on the same applied state).

import { SimClock } from "../../runtime/sim/clock.ts";
import { reliableNetwork, SimNetwork } from "../../runtime/sim/network.ts";
import { Prng } from "../../runtime/sim/prng.ts";
import type { RaftRecord } from "../../runtime/sim/raft-disk.ts";
import type { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { type Message, MessageType, type NodeId, ProposalDroppedError, type RaftConfig, StateType } from "../../src/raft/types.ts";
import { SafetyChecker, SafetyViolation } from "./checker.ts";
import { encodeMachineState, type MachineState } from "./codec.ts";
import { type Mutant, type RaftNodeApi, SimNode } from "./sim-node.ts";
import { describeSwarm, drawSwarm, type FaultKind, type Swarm } from "./swarm.ts";
import { Trace } from "./trace.ts";
import { Workload } from "./workload.ts";

export const tickMs = 10;
export const electionTick = 10;
export const heartbeatTick = 1;
const electionTimeoutMs = electionTick * tickMs;
const clientIntervalMs = 7;

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Events in the safety phase. */
  steps: number;
  createRaft: (config: RaftConfig) => RaftNodeApi;
  mutant?: Mutant;
  traceLines?: number;
}

export interface SimResult {
  seed: number;
  nodes: number;
  steps: number;
  violation?: string;
  trace: string[];
  swarm: string;
  acknowledged: number;
  proposed: number;
  elections: number;
  readsChecked: number;
  crashes: number;
  events: number;
  simulatedMs: number;
}

interface Envelope {
  message: Message;
  senderIncarnation: number;
}

const leaderMessages = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap, MessageType.TimeoutNow]);

function cloneMessage(message: Message): Message {
  return { ...message, entries: message.entries.slice(), context: message.context.slice() };
}

export function replayCommand(options: Pick<SimOptions, "seed" | "nodes" | "steps" | "mutant">, defaultSteps: number): string {
  let command = `npm run sim -- --seed ${options.seed} --nodes ${options.nodes}`;
  if (options.steps !== defaultSteps) command += ` --steps ${options.steps}`;
  if (options.mutant !== undefined) command += ` --mutant ${options.mutant}`;
  return command;
}

class Cluster {
  readonly clock = new SimClock();
  readonly random: Prng;
  readonly swarm: Swarm;
  readonly trace: Trace;
  readonly checker: SafetyChecker;
  readonly network: SimNetwork<Envelope>;
  readonly nodes: SimNode[] = [];
  readonly workload: Workload;
  private phase: "safety" | "liveness" = "safety";
  events = 0;

  constructor(private readonly options: SimOptions) {
    this.random = new Prng(options.seed);
    this.swarm = drawSwarm(this.random);
    this.trace = new Trace(options.traceLines ?? 40, () => this.clock.nowMs());
    const initial: MachineState = { index: 1, hash: 0 };
    this.checker = new SafetyChecker(initial, 1);
    this.network = new SimNetwork<Envelope>(
      this.clock,
      this.random,
      (from, to, envelope) => this.deliver(from, to, envelope),
      (from, to, envelope, why) => this.lost(from, to, envelope, why),
      this.swarm.network,
    );
    const voters = Array.from({ length: options.nodes }, (_, i) => i + 1);
    const bootstrap: RaftRecord[] = [
      {
        kind: "installSnapshot",
        snapshot: { metadata: { index: 1, term: 1, confState: { voters, learners: [] } }, data: encodeMachineState(initial) },
      },
      { kind: "hardState", hardState: { term: 1, vote: 0, commit: 1 } },
    ];
    const env = {
      clock: this.clock,
      random: this.random,
      checker: this.checker,
      trace: this.trace,
      swarm: this.swarm,
      mutant: options.mutant,
      createRaft: options.createRaft,
      raftConfig: (id: NodeId, storage: MemoryStorage, applied: number) => this.raftConfig(id, storage, applied),
      send: (from: SimNode, message: Message) => this.send(from, message),
      onApplied: (node: SimNode, entry: Parameters<Workload["onApplied"]>[1]) => this.workload.onApplied(node, entry),
      onReadState: (node: SimNode, readState: Parameters<Workload["onReadState"]>[1]) => this.workload.onReadState(node, readState),
    };
    for (const id of voters) this.nodes.push(new SimNode(id, bootstrap, env));
    this.workload = new Workload(this.nodes, this.clock, this.random, this.checker, this.trace, 3 * electionTimeoutMs);
  }

  private raftConfig(id: NodeId, storage: MemoryStorage, applied: number): RaftConfig {
    const random = this.random;
    return {
      id,
      electionTick,
      heartbeatTick,
      preVote: this.swarm.preVote,
      checkQuorum: this.swarm.checkQuorum,
      maxSizePerMsg: this.swarm.maxSizePerMsg,
      maxInflightMsgs: this.swarm.maxInflightMsgs,
      readOnlyOption: "safe",
      randomInt: (bound) => random.int(bound),
      storage,
      applied,
    };
  }

  private node(id: NodeId): SimNode | undefined {
    return this.nodes[id - 1];
  }

  private send(from: SimNode, message: Message): void {
    if (leaderMessages.has(message.type)) this.checker.observeLeader(message.term, message.from, MessageType[message.type]);
    // Forwarded proposals and reads keep their origin's id (as in etcd); all else is from the sender.
    const forwarded = message.type === MessageType.Prop || message.type === MessageType.ReadIndex;
    if (message.from !== from.id && !forwarded) throw new Error(`n${from.id} sends a message from ${message.from}`);
    this.network.send(from.id, message.to, { message: cloneMessage(message), senderIncarnation: from.incarnation });
  }

  private deliver(from: NodeId, to: NodeId, envelope: Envelope): void {
    const node = this.node(to);
    const message = envelope.message;
    if (node?.raft === undefined) {
      // A snapshot to a member that is down fails, and the transport says so.
      if (message.type === MessageType.Snap) this.reportSnapshot(from, envelope, false);
      return;
    }
    if (message.type === MessageType.Snap) this.reportSnapshot(from, envelope, true);
    try {
      node.raft.step(cloneMessage(message));
    } catch (error) {
      // A forwarded proposal the leader cannot take: the client will retry.
      if (!(error instanceof ProposalDroppedError)) throw error;
    }
  }

  private lost(from: NodeId, to: NodeId, envelope: Envelope, why: "dropped" | "cut"): void {
    if (envelope.message.type === MessageType.Snap) this.reportSnapshot(from, envelope, false);
    const sender = this.node(from);
    if (why === "cut" && sender?.raft !== undefined && sender.incarnation === envelope.senderIncarnation && this.random.chance(0.2)) {
      sender.raft.reportUnreachable(to);
    }
  }

  /** The transport tells the leader how sending a snapshot went (etcd's ReportSnapshot). */
  private reportSnapshot(from: NodeId, envelope: Envelope, ok: boolean): void {
    const sender = this.node(from);
    if (sender?.raft === undefined || sender.incarnation !== envelope.senderIncarnation) return;
    sender.raft.reportSnapshot(envelope.message.to, ok);
  }

  start(): void {
    for (const node of this.nodes) {
      node.start();
      this.clock.setTimer(this.random.int(tickMs), () => {
        this.clock.setInterval(tickMs, () => node.raft?.tick());
        node.raft?.tick();
      });
    }
    this.clock.setInterval(clientIntervalMs, () => this.clientStep());
    this.clock.setInterval(this.swarm.faultIntervalMs, () => {
      if (this.phase === "safety" && this.random.chance(0.6)) this.injectFault(this.random.pick(this.swarm.faults));
    });
  }

  private clientStep(): void {
    if (this.phase === "safety") {
      if (this.random.chance(0.5)) this.workload.proposeNew(this.swarm.proposalBurstMax);
      if (this.swarm.reads && this.random.chance(0.3)) this.workload.issueRead();
    }
    this.workload.retryStale();
  }

  /** One event, then hand every idle node with work its Ready (after a short random delay). */
  step(): boolean {
    if (!this.clock.step()) return false;
    this.events++;
    for (const node of this.nodes) {
      const raft = node.raft;
      if (raft === undefined || node.busy || node.readyScheduled || !raft.hasReady()) continue;
      node.readyScheduled = true;
      const incarnation = node.incarnation;
      this.clock.setTimer(this.random.int(this.swarm.readyDelayMsMax + 1), () => {
        if (node.incarnation !== incarnation) return;
        node.readyScheduled = false;
        if (!node.busy && node.raft?.hasReady()) node.handleReady();
      });
    }
    return true;
  }

  private leader(): SimNode | undefined {
    const leaders = this.nodes.filter((node) => node.up && node.role === StateType.Leader);
    return leaders.length === 0 ? undefined : leaders.reduce((a, b) => (b.hardState.term > a.hardState.term ? b : a));
  }

  private crash(node: SimNode): void {
    node.crash(this.random.chance(this.swarm.loseAllUnsyncedRate));
    const incarnation = node.incarnation;
    this.clock.setTimer(this.random.between(1, this.swarm.downtimeMsMax), () => {
      if (node.incarnation === incarnation && !node.up && this.phase === "safety") node.start();
    });
  }

  private injectFault(kind: FaultKind): void {
    const up = this.nodes.filter((node) => node.up);
    const ids = this.nodes.map((node) => node.id);
    switch (kind) {
      case "crash":
        if (up.length > 0) this.crash(this.random.pick(up));
        break;
      case "powerFailure": {
        const count = this.random.chance(0.3) ? this.nodes.length : Math.floor(this.nodes.length / 2) + 1;
        this.trace.add(`power failure on ${count} nodes`);
        for (const node of this.random.shuffled(up).slice(0, count)) this.crash(node);
        break;
      }
      case "partition": {
        const shuffled = this.random.shuffled(ids);
        const cut = this.random.between(1, ids.length - 1);
        this.network.healAll();
        this.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
        this.trace.add(`partition [${shuffled.slice(0, cut)}] | [${shuffled.slice(cut)}]`);
        break;
      }
      case "isolateLeader": {
        const leader = this.leader();
        if (leader === undefined) break;
        this.network.partition([[leader.id], ids.filter((id) => id !== leader.id)]);
        this.trace.add(`isolate leader n${leader.id}`);
        break;
      }
      case "asymmetricLink": {
        const [from, to] = this.random.shuffled(ids) as [number, number];
        this.network.cut(from, to);
        this.trace.add(`cut link n${from} -> n${to} (the other way still works)`);
        break;
      }
      case "heal":
        this.network.healAll();
        this.trace.add("heal network");
        break;
      case "transferLeader": {
        const leader = this.leader();
        const target = this.random.pick(ids);
        if (leader?.raft === undefined || target === leader.id) break;
        this.trace.add(`transfer leadership n${leader.id} -> n${target}`);
        leader.raft.transferLeader(target);
        break;
      }
      case "campaign": {
        if (up.length === 0) break;
        const node = this.random.pick(up);
        this.trace.add(`n${node.id} campaigns`);
        node.raft?.campaign();
        break;
      }
    }
  }

  runSafetyPhase(steps: number): void {
    for (let i = 0; i < steps; i++) if (!this.step()) break;
  }

  /** Heals everything, restarts every node, then demands progress. */
  runLivenessPhase(): void {
    this.phase = "liveness";
    this.network.healAll();
    this.network.faults = { ...reliableNetwork };
    for (const node of this.nodes) if (!node.up) node.start();
    this.trace.add("liveness: network healed, all nodes up, faults off");
    const leaderDeadline = this.clock.nowMs() + 10 * electionTimeoutMs;
    while (!this.stableLeader()) {
      if (this.clock.nowMs() > leaderDeadline) throw new SafetyViolation("liveness", "no leader within 10 election timeouts after heal");
      this.step();
    }
    // Catching up a long backlog one entry per round trip (maxSizePerMsg=0, one
    // inflight append) takes longer than 30 election timeouts on some seeds
    // (117, 341, 904 at 3000 events): allow 100, still a bound.
    const doneDeadline = this.clock.nowMs() + 100 * electionTimeoutMs;
    while (!(this.workload.pending.size === 0 && this.converged())) {
      if (this.clock.nowMs() > doneDeadline) {
        const states = this.nodes.map((node) => `n${node.id}:applied=${node.machine.index},commit=${node.hardState.commit},${StateType[node.role]}`);
        throw new SafetyViolation("liveness", `${this.workload.pending.size} proposals pending / nodes not converged after heal: ${states.join(" ")}`);
      }
      this.step();
    }
    for (const node of this.nodes) this.checker.checkHoldsAcknowledged(node.id, node.machine);
  }

  private stableLeader(): SimNode | undefined {
    const leader = this.leader();
    if (leader === undefined) return undefined;
    const followers = this.nodes.filter((node) => node.up && node.lead === leader.id && node.hardState.term === leader.hardState.term);
    return followers.length >= Math.floor(this.nodes.length / 2) + 1 ? leader : undefined;
  }

  private converged(): boolean {
    const leader = this.stableLeader();
    if (leader === undefined) return false;
    const target = leader.hardState.commit;
    return this.nodes.every((node) => node.up && !node.busy && node.machine.index === target && node.hardState.commit === target);
  }
}

export function runSeed(options: SimOptions): SimResult {
  const cluster = new Cluster(options);
  let violation: string | undefined;
  try {
    cluster.start();
    cluster.runSafetyPhase(options.steps);
    cluster.runLivenessPhase();
  } catch (error) {
    violation = error instanceof SafetyViolation ? error.message : `crash: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    cluster.trace.add(`VIOLATION ${violation.split("\n")[0]}`);
  }
  return {
    seed: options.seed,
    nodes: options.nodes,
    steps: options.steps,
    violation,
    trace: cluster.trace.tail(),
    swarm: describeSwarm(cluster.swarm),
    acknowledged: cluster.checker.acknowledgedCount,
    proposed: cluster.workload.proposed,
    elections: cluster.checker.elections,
    readsChecked: cluster.checker.readsChecked,
    crashes: cluster.nodes.reduce((sum, node) => sum + node.crashes, 0),
    events: cluster.events,
    simulatedMs: cluster.clock.nowMs(),
  };
}
