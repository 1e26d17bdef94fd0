// The settings the Raft tests run a node with, as etcd-io/raft's tests do:
// election after 10 ticks, heartbeat every tick, 1 MiB messages, 256 appends
// in flight, safe reads, no randomness, applied up to the storage's snapshot.
// Each test overrides what it is about.
import type { MemoryStorage } from "../../src/raft/memory-storage.ts";
import type { NodeId, RaftConfig } from "../../src/raft/types.ts";

export function testRaftConfig(id: NodeId, storage: MemoryStorage, overrides: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    maxSizePerMsg: 1024 * 1024,
    maxInflightMsgs: 256,
    readOnlyOption: "safe",
    randomInt: () => 0,
    storage,
    applied: storage.firstIndex() - 1,
    ...overrides,
  };
}
