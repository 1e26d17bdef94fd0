// A proposal forwarded by a follower can reach a member that has just lost its
// leader (check-quorum stepped it down, or it is campaigning). Found by
// test/cluster/partition.test.ts (asymmetric links, Bun): the member threw
// "raft proposal dropped: no-leader" out of the peer transport and stopped.
// etcd's node discards Step's error for messages from the network; so does
// RawNode.step, while a local propose still throws.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bootstrapStorage } from "../../src/raft/memory-storage.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { EntryType, type Message, MessageType, ProposalDroppedError, StateType } from "../../src/raft/types.ts";
import { testRaftConfig } from "./test-node.ts";

function member(id: number): RawNode {
  const storage = bootstrapStorage({ voters: [1, 2, 3], learners: [] });
  return new RawNode(testRaftConfig(id, storage, { checkQuorum: true }));
}

function forwardedProposal(from: number, to: number): Message {
  const data = new TextEncoder().encode("put k v");
  return {
    type: MessageType.Prop,
    to,
    from,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [{ term: 0, index: 0, type: EntryType.Normal, data }],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

describe("a forwarded proposal at a member without a leader", () => {
  test("a follower with no leader drops it, and a local proposal still throws", () => {
    const node = member(2);
    while (node.hasReady()) node.advance(node.ready());
    assert.equal(node.status().softState.lead, 0);
    node.step(forwardedProposal(3, 2));
    const entries = node.hasReady() ? node.ready().entries : [];
    assert.deepEqual(entries, [], "nothing appended");
    assert.throws(() => node.propose(new Uint8Array([1])), ProposalDroppedError);
  });

  test("a candidate drops it", () => {
    const node = member(2);
    node.campaign();
    assert.equal(node.status().softState.state, StateType.Candidate);
    node.step(forwardedProposal(3, 2));
    assert.equal(node.status().softState.state, StateType.Candidate);
  });
});
