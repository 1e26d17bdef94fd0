// A small Raft cluster for the hostile-message tests: RawNodes over
// MemoryStorage, carried out as RaftLog carries out a Ready (snapshot, hard
// state, entries, messages, committed entries with their conf changes,
// advance), one queue of messages, every choice drawn from one seeded Prng.
// It watches two of the safety invariants as it goes (one leader per term;
// one entry applied at each index) and throws on a violation.
import { Prng } from "../../runtime/sim/prng.ts";
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { decodeConfChange, RawNode } from "../../src/raft/raw-node.ts";
import { EntryType, type Message, type NodeId, type Ready, StateType } from "../../src/raft/types.ts";
import { testRaftConfig } from "./test-node.ts";

export interface HostileNode {
  id: NodeId;
  raft: RawNode;
  storage: MemoryStorage;
  /** Proposals this node applied, by their text. */
  applied: Set<string>;
}

export class HostileCluster {
  readonly nodes = new Map<NodeId, HostileNode>();
  queue: Message[] = [];
  readonly voters: NodeId[];
  readonly learners: NodeId[];
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly appliedAt = new Map<number, string>();
  /** Off where forged messages from members are fed in: Raft does not claim safety against those. */
  private readonly checkSafety: boolean;

  constructor(
    readonly prng: Prng,
    options: { voters: NodeId[]; learners: NodeId[]; preVote: boolean; checkQuorum: boolean; checkSafety: boolean },
  ) {
    this.checkSafety = options.checkSafety;
    this.voters = options.voters;
    this.learners = options.learners;
    for (const id of [...options.voters, ...options.learners]) {
      // As RaftLog starts a member of a new cluster: the configuration in a snapshot slot at index 0,
      // so a leader has no snapshot to send (the state issue 24's forged acknowledgement crashed).
      const storage = new MemoryStorage();
      storage.applySnapshot({ metadata: { index: 0, term: 0, confState: { voters: options.voters, learners: options.learners } }, data: new Uint8Array(0) });
      const raft = new RawNode(
        testRaftConfig(id, storage, {
          preVote: options.preVote,
          checkQuorum: options.checkQuorum,
          maxInflightMsgs: 4,
          maxSizePerMsg: 256,
          randomInt: (bound) => prng.int(bound),
        }),
      );
      this.nodes.set(id, { id, raft, storage, applied: new Set() });
    }
  }

  node(id: NodeId): HostileNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  role(id: NodeId): string {
    const node = this.node(id);
    if (!node.raft.confState().voters.includes(id) && node.raft.confState().learners.includes(id)) return "learner";
    return StateType[node.raft.status().softState.state];
  }

  leader(): HostileNode | undefined {
    return [...this.nodes.values()].find((node) => node.raft.status().softState.state === StateType.Leader);
  }

  /** Carries out every pending Ready of `node`; its messages join the queue. */
  processReady(node: HostileNode, keepMessages = true): void {
    while (node.raft.hasReady()) {
      const ready = node.raft.ready();
      this.carryOut(node, ready);
      if (keepMessages) this.queue.push(...ready.messages, ...ready.messagesAfterPersist);
    }
  }

  private carryOut(node: HostileNode, ready: Ready): void {
    if (ready.snapshot !== undefined) node.storage.applySnapshot(ready.snapshot);
    if (ready.hardState !== undefined) node.storage.setHardState(ready.hardState);
    node.storage.append(ready.entries);
    const status = node.raft.status();
    if (status.softState.state === StateType.Leader) this.observeLeader(status.hardState.term, node.id);
    for (const entry of ready.committedEntries) {
      const fingerprint = `${entry.term}/${entry.type}/${Array.from(entry.data).join(",")}`;
      const earlier = this.appliedAt.get(entry.index);
      if (this.checkSafety && earlier !== undefined && earlier !== fingerprint) {
        throw new Error(`state machine safety: node ${node.id} applied ${fingerprint} at ${entry.index}, another applied ${earlier}`);
      }
      this.appliedAt.set(entry.index, fingerprint);
      if (entry.type === EntryType.ConfChange) node.raft.applyConfChange(decodeConfChange(entry.data));
      else if (entry.data.length > 0) node.applied.add(new TextDecoder().decode(entry.data));
    }
    node.raft.advance(ready);
  }

  private observeLeader(term: number, id: NodeId): void {
    const earlier = this.leaderOfTerm.get(term);
    if (this.checkSafety && earlier !== undefined && earlier !== id) throw new Error(`election safety: ${earlier} and ${id} both led term ${term}`);
    this.leaderOfTerm.set(term, id);
  }

  /** Delivers one queued message (a random one, so the network reorders); may drop or duplicate it. */
  deliverOne(faults: { dropChance: number; duplicateChance: number }): void {
    if (this.queue.length === 0) return;
    const at = this.prng.int(this.queue.length);
    const [message] = this.queue.splice(at, 1) as [Message];
    if (this.prng.chance(faults.dropChance)) return;
    if (this.prng.chance(faults.duplicateChance)) this.queue.push(message);
    const node = this.nodes.get(message.to);
    if (node === undefined) return;
    node.raft.step(message);
    this.processReady(node);
  }

  tick(node: HostileNode): void {
    node.raft.tick();
    this.processReady(node);
  }

  /** Ticks, delivers and proposes at random for `rounds` rounds. */
  run(rounds: number, faults = { dropChance: 0, duplicateChance: 0 }): void {
    const ids = [...this.nodes.keys()];
    for (let round = 0; round < rounds; round++) {
      const choice = this.prng.int(10);
      if (choice < 2) this.tick(this.node(this.prng.pick(ids)));
      else if (choice < 3) this.propose(`p${this.prng.int(1_000_000)}`);
      else this.deliverOne(faults);
    }
  }

  /** Proposes on the leader, if there is one; returns whether it was taken. */
  propose(text: string): boolean {
    const leader = this.leader();
    if (leader === undefined) return false;
    try {
      leader.raft.propose(new TextEncoder().encode(text));
    } catch {
      return false; // dropped (a transfer in progress): fine here
    }
    this.processReady(leader);
    return true;
  }

  /** Everything delivered, ticking until a leader exists; false if none came within `rounds`. */
  settle(rounds = 2000): boolean {
    for (let round = 0; round < rounds; round++) {
      while (this.queue.length > 0) this.deliverOne({ dropChance: 0, duplicateChance: 0 });
      if (this.leader() !== undefined) return true;
      for (const node of this.nodes.values()) this.tick(node);
    }
    return false;
  }
}

export function seedsFromEnvironment(defaultCount: number, base: number): number[] {
  const only = process.env.EDGETCD_FUZZ_SEED;
  if (only !== undefined) return [Number(only)];
  const count = Number(process.env.EDGETCD_FUZZ_ITERATIONS ?? defaultCount);
  return Array.from({ length: count }, (_, i) => base + i);
}

export { Prng };
