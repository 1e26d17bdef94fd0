// The clients: they propose unique values at random nodes (a follower
// forwards to its leader), retry a value elsewhere when the proposal is
// dropped or goes unanswered, and issue ReadIndex requests.
//
// Acknowledged: a value is acknowledged the first time any node applies it.
// That is the strongest claim a correct Raft supports (a node applies only
// committed entries, and committed entries are forever), and it includes what
// etcd does (the node that took the request answers once it applied it, and
// the leader that accepted it applies it too).
//
// Reads: a read issued when index i was already applied somewhere must be
// served at an index >= i (ReadIndex linearizability).

import { ProposalDroppedError, type Entry, type ReadState } from "../../src/raft/types.ts";
import type { SafetyChecker } from "./checker.ts";
import { decodeValue, encodeValue } from "./codec.ts";
import type { SimNode } from "./sim-node.ts";
import type { Trace } from "./trace.ts";
import type { Prng } from "../../runtime/sim/prng.ts";
import type { SimClock } from "../../runtime/sim/clock.ts";

interface PendingProposal {
  value: number;
  data: Uint8Array;
  lastAttemptMs: number;
  attempts: number;
}

interface PendingRead {
  node: number;
  boundIndex: number;
  issuedMs: number;
}

/** Most proposals in flight at once: a bounded queue, like a real client pool. */
export const pendingProposalsMax = 64;
const pendingReadsMax = 32;

export class Workload {
  private nextValue = 1;
  private nextReadId = 1;
  readonly pending = new Map<number, PendingProposal>();
  private readonly reads = new Map<number, PendingRead>();
  proposed = 0;
  dropped = 0;

  constructor(
    private readonly nodes: readonly SimNode[],
    private readonly clock: SimClock,
    private readonly random: Prng,
    private readonly checker: SafetyChecker,
    private readonly trace: Trace,
    /** Re-propose a value not acknowledged after this long. */
    private readonly retryMs: number,
  ) {}

  private randomUpNode(): SimNode | undefined {
    const up = this.nodes.filter((node) => node.up);
    return up.length === 0 ? undefined : this.random.pick(up);
  }

  /** A burst of new values at one node (several per Ready: batching). */
  proposeNew(burstMax: number): void {
    const node = this.randomUpNode();
    if (node === undefined) return;
    const count = Math.min(this.random.between(1, burstMax), pendingProposalsMax - this.pending.size);
    for (let i = 0; i < count; i++) {
      const value = this.nextValue++;
      const proposal = { value, data: encodeValue(value), lastAttemptMs: 0, attempts: 0 };
      this.pending.set(value, proposal);
      this.proposed++;
      this.attempt(proposal, node);
    }
  }

  /** Retries every value that has waited too long, each at a random node. */
  retryStale(): void {
    const now = this.clock.nowMs();
    for (const proposal of this.pending.values()) {
      if (now - proposal.lastAttemptMs < this.retryMs) continue;
      const node = this.randomUpNode();
      if (node === undefined) return;
      this.attempt(proposal, node);
    }
  }

  private attempt(proposal: PendingProposal, node: SimNode): void {
    const raft = node.raft;
    if (raft === undefined) return;
    proposal.attempts++;
    proposal.lastAttemptMs = this.clock.nowMs();
    try {
      raft.propose(proposal.data);
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      this.dropped++;
      // Try again soon, elsewhere.
      proposal.lastAttemptMs -= this.retryMs / 2;
    }
  }

  onApplied(node: SimNode, entry: Entry): void {
    const value = decodeValue(entry.data);
    if (value === undefined) return;
    if (!this.pending.delete(value)) return;
    this.checker.acknowledge({ value, index: entry.index, term: entry.term });
    this.trace.add(`n${node.id} applies v${value} at ${entry.index}/${entry.term}: acknowledged`);
  }

  issueRead(): void {
    if (this.reads.size >= pendingReadsMax) this.expireReads();
    if (this.reads.size >= pendingReadsMax) return;
    const node = this.randomUpNode();
    if (node?.raft === undefined) return;
    const id = this.nextReadId++;
    const context = new Uint8Array(5);
    context[0] = 0x72; // "r"
    new DataView(context.buffer).setUint32(1, id);
    this.reads.set(id, { node: node.id, boundIndex: this.checker.maxAppliedIndex, issuedMs: this.clock.nowMs() });
    node.raft.readIndex(context);
  }

  onReadState(node: SimNode, readState: ReadState): void {
    const context = readState.requestCtx;
    if (context.byteLength !== 5 || context[0] !== 0x72) return;
    const id = new DataView(context.buffer, context.byteOffset, context.byteLength).getUint32(1);
    const read = this.reads.get(id);
    if (read === undefined) return; // answered already (duplicate) or expired
    if (read.node !== node.id) throw new Error(`read ${id} issued at n${read.node} answered at n${node.id}`);
    this.checker.checkRead(node.id, read.boundIndex, readState.index);
    this.reads.delete(id);
  }

  /** Reads lost with a dropped message or a crash never answer; forget old ones. */
  private expireReads(): void {
    const now = this.clock.nowMs();
    for (const [id, read] of this.reads) if (now - read.issuedMs > this.retryMs) this.reads.delete(id);
  }
}
