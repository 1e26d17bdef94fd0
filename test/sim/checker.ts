// The Raft safety invariants, checked incrementally as the simulation
// observes each event (so, in effect, after every step):
//  - election safety: at most one leader per term, over the whole run;
//  - log matching: one (index, term) names one entry with one predecessor
//    term, so two logs that agree on an entry agree on the prefix before it
//    (by induction on the index);
//  - leader completeness: the log of the leader of term T holds every entry
//    committed in a term below T. An entry first applied by a node whose term
//    was A was committed in a term <= A (a node learns of a commit only from
//    a leader of its term or lower), so entries with A < T are checked;
//  - state machine safety: every node applies the same entry at an index,
//    and restores snapshots equal to what was applied there;
//  - no acknowledged write lost and linearizable ReadIndex: a read issued after
//    an entry was applied anywhere is served at an index at least as high.
// A violation throws SafetyViolation; the runner prints the seed and trace.

import type { Entry } from "../../src/raft/types.ts";
import { chainHash, entryFingerprint, type MachineState } from "./codec.ts";

export class SafetyViolation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = "SafetyViolation";
  }
}

interface LogSlot {
  fingerprint: string;
  /** Term of the entry before it; -1 when the writer could not see it (compacted). */
  previousTerm: number;
  node: number;
}

export interface Acknowledgement {
  value: number;
  index: number;
  term: number;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, number>();
  private readonly logSlots = new Map<string, LogSlot>();
  /** Per committed index: the entry applied there, its term and the state hash after it. */
  private readonly appliedFingerprint: string[] = [];
  private readonly appliedTerm: number[] = [];
  private readonly appliedHash: number[] = [];
  /** Term of the node that first applied each index: the commit happened in this term or earlier. */
  private readonly appliedInTerm: number[] = [];
  private readonly acknowledged: Acknowledgement[] = [];
  maxAppliedIndex = 0;
  readsChecked = 0;

  /** The state every node starts from (the bootstrap snapshot). */
  constructor(initial: MachineState, initialTerm: number) {
    this.appliedHash[initial.index] = initial.hash;
    this.appliedTerm[initial.index] = initialTerm;
    this.maxAppliedIndex = initial.index;
  }

  get elections(): number {
    return this.leaderOfTerm.size;
  }

  get acknowledgedCount(): number {
    return this.acknowledged.length;
  }

  acknowledgements(): readonly Acknowledgement[] {
    return this.acknowledged;
  }

  /** `node` acted as leader of `term` (became leader, or sent App/Heartbeat/Snap). */
  observeLeader(term: number, node: number, evidence: string): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, node);
    else if (known !== node) {
      throw new SafetyViolation("election safety", `term ${term} has leaders ${known} and ${node} (${evidence})`);
    }
  }

  /**
   * `node` wrote `entries` (contiguous) to its log, after an entry of term
   * `previousTerm` (-1 if unknown).
   */
  observeAppend(node: number, entries: readonly Entry[], previousTerm: number): void {
    let before = previousTerm;
    let expectedIndex = entries[0]?.index ?? 0;
    for (const entry of entries) {
      if (entry.index !== expectedIndex) {
        throw new SafetyViolation("log matching", `node ${node} wrote non-contiguous entries (${expectedIndex} expected, got ${entry.index})`);
      }
      if (before > entry.term) {
        throw new SafetyViolation("log matching", `node ${node}: entry ${entry.index} has term ${entry.term} after term ${before}`);
      }
      this.observeSlot(node, entry, before);
      before = entry.term;
      expectedIndex++;
    }
  }

  private observeSlot(node: number, entry: Entry, previousTerm: number): void {
    const key = `${entry.index}:${entry.term}`;
    const fingerprint = entryFingerprint(entry);
    const slot = this.logSlots.get(key);
    if (slot === undefined) {
      this.logSlots.set(key, { fingerprint, previousTerm, node });
      return;
    }
    if (slot.fingerprint !== fingerprint) {
      throw new SafetyViolation(
        "log matching",
        `index ${entry.index} term ${entry.term}: node ${slot.node} has ${slot.fingerprint}, node ${node} has ${fingerprint}`,
      );
    }
    if (slot.previousTerm >= 0 && previousTerm >= 0 && slot.previousTerm !== previousTerm) {
      throw new SafetyViolation(
        "log matching",
        `index ${entry.index} term ${entry.term} follows term ${slot.previousTerm} on node ${slot.node} but ${previousTerm} on node ${node}`,
      );
    }
    if (slot.previousTerm < 0) slot.previousTerm = previousTerm;
  }

  /**
   * `node`, whose state was `state` and whose term is `nodeTerm`, applies
   * `entry`; returns the new state. Every node must apply the same entry at
   * each index, in index order.
   */
  observeApply(node: number, nodeTerm: number, state: MachineState, entry: Entry): MachineState {
    if (entry.index !== state.index + 1) {
      throw new SafetyViolation("state machine safety", `node ${node} at ${state.index} applies index ${entry.index}`);
    }
    const fingerprint = entryFingerprint(entry);
    const hash = chainHash(state.hash, fingerprint);
    const known = this.appliedFingerprint[entry.index];
    if (known === undefined) {
      this.appliedFingerprint[entry.index] = fingerprint;
      this.appliedTerm[entry.index] = entry.term;
      this.appliedHash[entry.index] = hash;
      this.appliedInTerm[entry.index] = nodeTerm;
      if (entry.index > this.maxAppliedIndex) this.maxAppliedIndex = entry.index;
    } else if (known !== fingerprint) {
      throw new SafetyViolation("state machine safety", `index ${entry.index}: applied ${known} before, node ${node} applies ${fingerprint}`);
    } else if (this.appliedHash[entry.index] !== hash) {
      throw new SafetyViolation("state machine safety", `node ${node} reaches index ${entry.index} with a different applied history`);
    }
    return { index: entry.index, hash };
  }

  /** `node` replaces its state by a snapshot's: it must equal what was applied at that index. */
  observeSnapshotRestore(node: number, state: MachineState, term: number): void {
    const known = this.appliedHash[state.index];
    if (known === undefined) {
      throw new SafetyViolation("state machine safety", `node ${node} restores a snapshot at ${state.index}, which nobody applied`);
    }
    if (known !== state.hash || this.appliedTerm[state.index] !== term) {
      throw new SafetyViolation("state machine safety", `node ${node} restores a snapshot at ${state.index} that differs from the applied state`);
    }
  }

  /** The term of the entry known committed at `index`, if any node applied it. */
  committedTerm(index: number): number | undefined {
    return this.appliedTerm[index];
  }

  /**
   * Leader completeness: the log of the leader of `term` (read through
   * `termAt`: undefined past its end, null for compacted indexes) holds every
   * applied entry that was committed in a term below `term`.
   */
  checkLeaderLog(node: number, term: number, termAt: (index: number) => number | undefined | null): void {
    for (let index = this.maxAppliedIndex; index >= 1; index--) {
      const expected = this.appliedTerm[index];
      const appliedInTerm = this.appliedInTerm[index];
      if (expected === undefined || appliedInTerm === undefined || appliedInTerm >= term) continue;
      const actual = termAt(index);
      if (actual === null) return; // covered by its snapshot, checked when restored
      if (actual !== expected) {
        throw new SafetyViolation(
          "leader completeness",
          `leader ${node} of term ${term} has ${actual === undefined ? "no entry" : `term ${actual}`} at committed index ${index} (term ${expected}, applied in term ${appliedInTerm})`,
        );
      }
    }
  }

  /** A client's value was applied for the first time: acknowledged to the client. */
  acknowledge(acknowledgement: Acknowledgement): void {
    this.acknowledged.push(acknowledgement);
  }

  /** A ReadIndex issued when `boundIndex` was applied somewhere is served at `readIndex`. */
  checkRead(node: number, boundIndex: number, readIndex: number): void {
    this.readsChecked++;
    if (readIndex < boundIndex) {
      throw new SafetyViolation("linearizable read", `node ${node} serves a read at index ${readIndex}, but ${boundIndex} was applied before it was issued`);
    }
  }

  /**
   * Final check for one node: its applied state includes every acknowledged
   * value (same entry at the same index, by the chained hash).
   */
  checkHoldsAcknowledged(node: number, state: MachineState): void {
    for (const ack of this.acknowledged) {
      if (ack.index > state.index) {
        throw new SafetyViolation("acknowledged write lost", `node ${node} applied only to ${state.index}, value ${ack.value} is at ${ack.index}`);
      }
      if (this.appliedTerm[ack.index] !== ack.term) {
        throw new SafetyViolation("acknowledged write lost", `value ${ack.value} was acknowledged at ${ack.index} term ${ack.term}`);
      }
    }
    if (this.appliedHash[state.index] !== state.hash) {
      throw new SafetyViolation("acknowledged write lost", `node ${node} applied history differs at ${state.index}`);
    }
  }
}
