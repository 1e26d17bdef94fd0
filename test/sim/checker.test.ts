// The invariant checkers, fed hand-made histories: each must accept a legal
// history and reject the one illegal step in a broken one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Entry, EntryType } from "../../src/raft/types.ts";
import { encodeValue, type MachineState } from "./codec.ts";
import { SafetyChecker, SafetyViolation } from "./checker.ts";

const initial: MachineState = { index: 1, hash: 0 };

function entry(index: number, term: number, value?: number): Entry {
  return { index, term, type: EntryType.Normal, data: value === undefined ? new Uint8Array() : encodeValue(value) };
}

function violation(invariant: string) {
  return (error: unknown) => error instanceof SafetyViolation && error.invariant === invariant;
}

describe("SafetyChecker", () => {
  test("election safety: one leader per term, over all time", () => {
    const checker = new SafetyChecker(initial, 1);
    checker.observeLeader(2, 1, "became leader");
    checker.observeLeader(2, 1, "App");
    checker.observeLeader(3, 2, "became leader");
    assert.equal(checker.elections, 2);
    assert.throws(() => checker.observeLeader(2, 3, "Heartbeat"), violation("election safety"));
  });

  test("log matching: same index and term means same entry and same predecessor", () => {
    const checker = new SafetyChecker(initial, 1);
    checker.observeAppend(1, [entry(2, 2), entry(3, 2, 10)], 1);
    checker.observeAppend(2, [entry(2, 2), entry(3, 2, 10), entry(4, 2, 11)], 1);
    // A different entry at (3, 3) is fine: another term.
    checker.observeAppend(3, [entry(3, 3, 12)], 2);
    assert.throws(() => checker.observeAppend(3, [entry(4, 2, 99)], 2), violation("log matching"));
    assert.throws(() => checker.observeAppend(3, [entry(2, 2)], 3), violation("log matching"));
  });

  test("log matching: terms never go down along a log, indexes are contiguous", () => {
    const checker = new SafetyChecker(initial, 1);
    assert.throws(() => checker.observeAppend(1, [entry(2, 3), entry(3, 2)], 1), violation("log matching"));
    assert.throws(() => checker.observeAppend(1, [entry(2, 3), entry(4, 3)], 1), violation("log matching"));
  });

  test("state machine safety: same entry at each index, in order", () => {
    const checker = new SafetyChecker(initial, 1);
    let a = checker.observeApply(1, 5, initial, entry(2, 2));
    a = checker.observeApply(1, 5, a, entry(3, 2, 7));
    let b = checker.observeApply(2, 5, initial, entry(2, 2));
    b = checker.observeApply(2, 5, b, entry(3, 2, 7));
    assert.deepEqual(a, b);
    assert.equal(checker.maxAppliedIndex, 3);
    assert.throws(() => checker.observeApply(3, 5, initial, entry(3, 2, 7)), violation("state machine safety"));
    const c = checker.observeApply(3, 5, initial, entry(2, 2));
    assert.throws(() => checker.observeApply(3, 5, c, entry(3, 3, 8)), violation("state machine safety"));
  });

  test("snapshots must equal the applied state at their index", () => {
    const checker = new SafetyChecker(initial, 1);
    const a = checker.observeApply(1, 5, initial, entry(2, 2, 1));
    checker.observeSnapshotRestore(2, a, 2);
    assert.throws(() => checker.observeSnapshotRestore(2, { index: 2, hash: a.hash + 1 }, 2), violation("state machine safety"));
    assert.throws(() => checker.observeSnapshotRestore(2, a, 3), violation("state machine safety"));
    assert.throws(() => checker.observeSnapshotRestore(2, { index: 9, hash: 0 }, 2), violation("state machine safety"));
  });

  test("leader completeness: a leader holds every entry committed in an earlier term", () => {
    const checker = new SafetyChecker(initial, 1);
    let state = checker.observeApply(1, 2, initial, entry(2, 2));
    state = checker.observeApply(1, 2, state, entry(3, 2, 5));
    checker.observeApply(1, 4, state, entry(4, 4, 6));
    const good = [undefined, 1, 2, 2];
    checker.checkLeaderLog(2, 3, (index) => good[index]);
    const short = [undefined, 1, 2];
    assert.throws(() => checker.checkLeaderLog(3, 3, (index) => short[index]), violation("leader completeness"));
    const wrong = [undefined, 1, 2, 3];
    assert.throws(() => checker.checkLeaderLog(3, 3, (index) => wrong[index]), violation("leader completeness"));
    // Index 4 was applied by a node of term 4: maybe committed in term 4, so a term-3 leader may lack it; a term-5 one may not.
    assert.throws(() => checker.checkLeaderLog(3, 5, (index) => good[index]), violation("leader completeness"));
    // Indexes behind the leader's snapshot are covered by the snapshot check.
    checker.checkLeaderLog(3, 5, (index) => (index <= 4 ? null : undefined));
  });

  test("reads: served at or after everything applied before they were issued", () => {
    const checker = new SafetyChecker(initial, 1);
    checker.checkRead(1, 5, 5);
    checker.checkRead(1, 5, 8);
    assert.equal(checker.readsChecked, 2);
    assert.throws(() => checker.checkRead(1, 5, 4), violation("linearizable read"));
  });

  test("acknowledged values must be in every converged node's applied state", () => {
    const checker = new SafetyChecker(initial, 1);
    const state = checker.observeApply(1, 5, initial, entry(2, 2, 42));
    checker.acknowledge({ value: 42, index: 2, term: 2 });
    checker.checkHoldsAcknowledged(1, state);
    assert.throws(() => checker.checkHoldsAcknowledged(2, initial), violation("acknowledged write lost"));
    assert.throws(() => checker.checkHoldsAcknowledged(2, { index: 2, hash: 1 }), violation("acknowledged write lost"));
  });
});
