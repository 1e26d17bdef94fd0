// Helpers shared by the lease tests that run a real 3-member edgetcd cluster.
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Lease, Maintenance } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Election } from "../../src/gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import type { ClusterMember, TestCluster } from "../support/cluster.ts";

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value);
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function clientsOf(member: ClusterMember) {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${member.clientPort}` });
  return {
    kv: createClient(KV, transport),
    lease: createClient(Lease, transport),
    lock: createClient(Lock, transport),
    election: createClient(Election, transport),
    maintenance: createClient(Maintenance, transport),
  };
}

export type MemberClients = ReturnType<typeof clientsOf>;

/** The member that reports itself leader, polling every running member. */
export async function leaderOf(cluster: TestCluster, timeoutMs = 10_000): Promise<ClusterMember> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const member of cluster.members) {
      if (member.server === undefined) continue;
      try {
        const status = await clientsOf(member).maintenance.status({}, { timeoutMs: 500 });
        if (status.leader !== 0n && status.leader === status.header?.memberId) return member;
      } catch {
        // down, or no leader yet
      }
    }
    await sleep(50);
  }
  throw new Error(`no leader within ${timeoutMs} ms`);
}

export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** SIGKILLs a member and forgets it, so leaderOf looks only at the others. */
export async function killMember(member: ClusterMember): Promise<void> {
  await member.server?.kill();
  member.server = undefined;
}
