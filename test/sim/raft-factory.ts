// The real Raft core, as the simulator's node factory.
import { RawNode } from "../../src/raft/raw-node.ts";
import type { RaftConfig } from "../../src/raft/types.ts";
import type { RaftNodeApi } from "./sim-node.ts";

export function createRawNode(config: RaftConfig): RaftNodeApi {
  return new RawNode(config);
}
