// A ReadIndex request re-sent with a context the leader already answered must
// not be confirmed by heartbeat acknowledgements that were sent before it
// arrived. Found by test:long L1 with pause-leader (seeds 1036 and 3038): a
// leader resumed from SIGSTOP found in its socket a follower's re-sent read
// (context Y, answered before the pause) and an old acknowledgement of a
// heartbeat carrying Y. It queued Y again behind its own new read X, and the
// old acknowledgement then "confirmed" both, so X got the leader's own stale
// commit index while another leader had committed past it: a stale
// linearizable read. Acknowledgements only prove leadership at the time the
// heartbeat was sent, so a context is queued at most once per term; a re-sent
// request for an answered context gets the index it was answered with.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryStorage, bootstrapStorage } from "../../src/raft/memory-storage.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { type Message, MessageType, type ReadState, StateType } from "../../src/raft/types.ts";
import { testRaftConfig } from "./test-node.ts";

interface Member {
  node: RawNode;
  storage: MemoryStorage;
  readStates: ReadState[];
}

function member(id: number, randomElection: number): Member {
  const storage = bootstrapStorage({ voters: [1, 2, 3], learners: [] });
  const node = new RawNode(
    testRaftConfig(id, storage, { preVote: true, checkQuorum: true, randomInt: (bound) => Math.min(randomElection, bound - 1) }),
  );
  return { node, storage, readStates: [] };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const ctx = (name: string) => new TextEncoder().encode(name);

class Net {
  // Member 3's election timeout is the longest, so member 1 campaigns first.
  readonly members = new Map([1, 2, 3].map((id) => [id, member(id, id === 3 ? 9 : 0)]));
  /** Messages sent and not yet delivered. */
  queue: Message[] = [];

  get(id: number): Member {
    return this.members.get(id) as Member;
  }

  /** Takes every member's Ready: persists, collects read states and messages. */
  flush(): void {
    for (const m of this.members.values()) {
      while (m.node.hasReady()) {
        const ready = m.node.ready();
        m.storage.append(ready.entries);
        if (ready.hardState !== undefined) m.storage.setHardState(ready.hardState);
        m.readStates.push(...ready.readStates);
        this.queue.push(...ready.messages, ...ready.messagesAfterPersist);
        m.node.advance(ready);
      }
    }
  }

  /** Removes and returns the queued messages matching `match`. */
  take(match: (m: Message) => boolean): Message[] {
    const taken = this.queue.filter(match);
    this.queue = this.queue.filter((m) => !match(m));
    return taken;
  }

  deliver(messages: Message[]): void {
    for (const m of messages) this.get(m.to).node.step(m);
    this.flush();
  }

  /** Delivers everything except what `hold` matches, until quiet. */
  settle(hold: (m: Message) => boolean = () => false): void {
    this.flush();
    for (let round = 0; round < 100; round++) {
      const deliverable = this.take((m) => !hold(m));
      if (deliverable.length === 0) return;
      this.deliver(deliverable);
    }
  }
}

describe("ReadIndex: a re-sent request for an answered context", () => {
  test("is not confirmed by acknowledgements older than it, so a read queued with it keeps waiting", () => {
    const net = new Net();
    net.get(2).node.campaign();
    net.settle();
    assert.equal(net.get(2).node.status().softState.state, StateType.Leader);
    for (let i = 0; i < 5; i++) net.get(2).node.propose(ctx(`before-${i}`));
    net.settle();

    // Member 3 reads through the leader (context Y). Member 1's acknowledgement
    // of the heartbeat carrying Y is held back (it sits in the leader's socket).
    net.get(3).node.readIndex(ctx("Y"));
    net.settle((m) => m.type === MessageType.HeartbeatResp && m.from === 1);
    const oldAck = net.take((m) => m.type === MessageType.HeartbeatResp && m.from === 1 && text(m.context) === "Y");
    assert.equal(oldAck.length, 1);
    assert.deepEqual(net.get(3).readStates.map((s) => text(s.requestCtx)), ["Y"]);
    const leaderCommit = net.get(2).node.status().hardState.commit;

    // The leader is paused: members 1 and 3 elect member 1 and commit more.
    net.queue = [];
    const toOrFromPaused = (m: Message) => m.to === 2 || m.from === 2;
    // Member 3 first stops trusting its leader's lease, then member 1 campaigns.
    for (let tick = 0; tick < 10; tick++) net.get(3).node.tick();
    for (let tick = 0; tick < 30 && net.get(1).node.status().softState.state !== StateType.Leader; tick++) {
      net.get(1).node.tick();
      net.settle(toOrFromPaused);
      net.take(toOrFromPaused);
    }
    assert.equal(net.get(1).node.status().softState.state, StateType.Leader);
    for (let i = 0; i < 5; i++) net.get(1).node.propose(ctx(`after-${i}`));
    net.settle(toOrFromPaused);
    net.take(toOrFromPaused);
    const newCommit = net.get(1).node.status().hardState.commit;
    assert.ok(newCommit > leaderCommit);

    // Resumed, the old leader starts its own read X, then finds in its socket
    // member 3's re-sent Y (sent before the election) and member 1's old ack.
    const old = net.get(2);
    old.node.readIndex(ctx("X"));
    old.node.step({ ...oldAck[0]!, type: MessageType.ReadIndex, from: 3, to: 2, term: 0, context: ctx("Y") });
    old.node.step(oldAck[0]!);
    net.flush();
    const answeredX = old.readStates.filter((s) => text(s.requestCtx) === "X");
    assert.deepEqual(answeredX, [], `X was answered at ${answeredX[0]?.index}, but member 1 committed up to ${newCommit} meanwhile`);
    // Member 3 gets Y's first answer again (its request began before it).
    const resentAnswer = net.queue.find((m) => m.type === MessageType.ReadIndexResp && m.to === 3 && text(m.context) === "Y");
    assert.ok(resentAnswer !== undefined && resentAnswer.index <= leaderCommit, "the re-sent Y is answered with its first index");
  });
});
