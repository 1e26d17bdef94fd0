// Helpers shared by the lease tests that run a real 3-member edgetcd cluster.
import assert from "node:assert/strict";
import { sleep, type ClusterMember } from "../support/cluster.ts";

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value);

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
