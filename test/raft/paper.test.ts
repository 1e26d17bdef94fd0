// Tests named after sentences of the Raft paper (Ongaro & Ousterhout, §5),
// each driving the core directly through RawNode.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootstrapStorage, MemoryStorage } from "../../src/raft/memory-storage.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { testRaftConfig } from "./test-node.ts";
import { MessageType, NONE, StateType, type Message, type NodeId } from "../../src/raft/types.ts";

interface TestNode {
  raft: RawNode;
  storage: MemoryStorage;
}

function cluster(size: number, options: { preVote?: boolean; checkQuorum?: boolean } = {}) {
  const voters = Array.from({ length: size }, (_, i) => i + 1);
  const nodes = new Map<NodeId, TestNode>();
  for (const id of voters) {
    const storage = bootstrapStorage({ voters, learners: [] });
    const raft = new RawNode(testRaftConfig(id, storage, options));
    nodes.set(id, { raft, storage });
  }
  const outbox: Message[] = [];
  /** Carries out every node's Ready (persist, queue messages, advance). */
  const flush = () => {
    for (const node of nodes.values()) {
      while (node.raft.hasReady()) {
        const ready = node.raft.ready();
        node.storage.append(ready.entries);
        if (ready.hardState !== undefined) node.storage.setHardState(ready.hardState);
        outbox.push(...ready.messages, ...ready.messagesAfterPersist);
        node.raft.advance(ready);
      }
    }
  };
  /** Delivers messages until quiet; `allow` filters which may pass. */
  const settle = (allow: (m: Message) => boolean = () => true) => {
    for (let round = 0; round < 100; round++) {
      flush();
      if (outbox.length === 0) return;
      for (const m of outbox.splice(0)) if (allow(m)) nodes.get(m.to)?.raft.step(m);
    }
  };
  const node = (id: NodeId) => nodes.get(id) as TestNode;
  return { nodes, node, settle, flush, outbox };
}

const state = (node: TestNode) => node.raft.status().softState.state;
const term = (node: TestNode) => node.raft.status().hardState.term;
const commit = (node: TestNode) => node.raft.status().hardState.commit;

describe("Raft paper §5", () => {
  test("§5.2: a candidate that receives votes from a majority becomes leader", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    assert.equal(state(c.node(1)), StateType.Leader);
    assert.equal(c.node(2).raft.status().softState.lead, 1);
  });

  test("§5.2: a candidate without a majority does not become leader", () => {
    const c = cluster(5);
    c.node(1).raft.campaign();
    c.settle((m) => m.to === 1 || m.to === 2); // only 2 hears it
    assert.notEqual(state(c.node(1)), StateType.Leader);
  });

  test("§5.2: each server votes for at most one candidate in a term", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.flush();
    const votesFor1 = c.outbox.splice(0).filter((m) => m.type === MessageType.Vote && m.to === 3);
    c.node(2).raft.campaign();
    c.flush();
    const votesFor2 = c.outbox.splice(0).filter((m) => m.type === MessageType.Vote && m.to === 3);
    // Both candidates are in term 2; 3 hears 1 first.
    for (const m of [...votesFor1, ...votesFor2]) c.node(3).raft.step(m);
    c.flush();
    const answers = c.outbox.filter((m) => m.from === 3 && m.type === MessageType.VoteResp);
    assert.deepEqual(
      answers.map((m) => [m.to, m.reject]),
      [
        [1, false],
        [2, true],
      ],
    );
  });

  test("§5.1: a server that sees a larger term reverts to follower", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    c.node(1).raft.step({ type: MessageType.App, to: 1, from: 2, term: 9, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array() });
    assert.equal(state(c.node(1)), StateType.Follower);
    assert.equal(term(c.node(1)), 9);
  });

  test("§5.3: an entry is committed once the leader has replicated it on a majority", () => {
    const c = cluster(5);
    c.node(1).raft.campaign();
    c.settle();
    const before = commit(c.node(1));
    c.node(1).raft.propose(new TextEncoder().encode("x"));
    c.settle((m) => ![4, 5].includes(m.to)); // 1, 2, 3: a majority of 5
    assert.equal(commit(c.node(1)), before + 1);
  });

  test("§5.3: a follower rejects AppendEntries whose previous entry does not match", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    c.node(2).raft.step({ type: MessageType.App, to: 2, from: 1, term: 2, logTerm: 7, index: 2, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array() });
    c.flush();
    const response = c.outbox.find((m) => m.from === 2 && m.type === MessageType.AppResp);
    assert.equal(response?.reject, true);
  });

  test("§5.4.1: a voter denies its vote to a candidate whose log is less up to date", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    c.node(1).raft.propose(new TextEncoder().encode("x"));
    c.settle((m) => m.to !== 3); // 3 misses the entry
    c.node(3).raft.campaign();
    c.settle((m) => m.to !== 1);
    assert.notEqual(state(c.node(3)), StateType.Leader);
  });

  test("§5.4.2: a leader never commits an entry of a previous term by counting replicas", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    c.node(1).raft.propose(new TextEncoder().encode("old"));
    c.flush();
    c.outbox.length = 0; // "old" stays on 1 only
    // A later term begins (1 hears of term 5); 1, whose log is the longest, wins it.
    c.node(1).raft.step({ type: MessageType.Heartbeat, to: 1, from: 3, term: 5, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array() });
    c.flush();
    c.outbox.length = 0;
    c.node(1).raft.campaign();
    c.flush();
    // Votes and appends are delivered, but no append acknowledgement comes back yet.
    const old = c.nodes.get(1)?.storage.term(3);
    assert.equal(old, 2, '"old" was written in term 2');
    c.settle((m) => m.type !== MessageType.AppResp);
    assert.equal(commit(c.node(1)), 2, "no commit without an acknowledged entry of the current term");
    c.node(1).raft.tick(); // a heartbeat round brings the acknowledgements back
    c.settle();
    assert.ok(commit(c.node(1)) >= 4, "committed once an entry of the new term is on a majority");
  });

  test("§5.2: a leader sends heartbeats to keep its authority", () => {
    const c = cluster(3);
    c.node(1).raft.campaign();
    c.settle();
    c.node(1).raft.tick();
    c.flush();
    const heartbeats = c.outbox.filter((m) => m.type === MessageType.Heartbeat);
    assert.deepEqual(heartbeats.map((m) => m.to).sort(), [2, 3]);
  });

  test("proposals without a leader are refused, not silently lost", () => {
    const c = cluster(3);
    assert.throws(() => c.node(1).raft.propose(new Uint8Array([1])), /no-leader/);
    assert.equal(c.node(1).raft.status().softState.lead, NONE);
  });
});
