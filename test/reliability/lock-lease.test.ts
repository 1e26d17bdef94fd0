// A lock is never handed to a waiter whose lease has already expired, even in
// the moment between the expiry and the revoke that deletes its key (Jepsen's
// finding on etcd 3.4.3). Several waiters on lease TTL 2 s wait behind
// holders that unlock at staggered times after the waiters' leases have
// certainly expired (granted + TTL), some before the leader's expiry loop
// (every 500 ms) revokes them: each waiter must get "session is expired".
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Lease } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytes = (text: string) => new TextEncoder().encode(text);

describe("lock and lease expiry", () => {
  let server: RunningServer;
  before(async () => {
    server = await startEdgetcd({ extraArgs: ["--heartbeat-interval", "100", "--election-timeout", "1000"], readyTimeoutMs: 60_000 });
  });
  after(() => server?.kill());

  test("a waiter whose lease expired before the lock was released is not handed the lock", { timeout: 60_000 }, async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    const lease = createClient(Lease, transport);
    const lock = createClient(Lock, transport);
    const offsetsMs = [5, 15, 30, 50, 100, 200, 350];
    const outcomes = await Promise.all(
      offsetsMs.map(async (offsetMs, index) => {
        const name = bytes(`expiry-${index}`);
        const owner = await lease.leaseGrant({ TTL: 60n });
        const held = await lock.lock({ name, lease: owner.ID });
        const short = await lease.leaseGrant({ TTL: 2n });
        const grantedAt = Date.now();
        const waiting = lock.lock({ name, lease: short.ID }, { timeoutMs: 20_000 }).then(
          () => "locked",
          (error: Error) => error.message,
        );
        // The short lease was applied before grantedAt, so it has expired by grantedAt + 2 s.
        await sleep(grantedAt + 2000 + offsetMs - Date.now());
        await lock.unlock({ key: held.key });
        const outcome = await waiting;
        await lease.leaseRevoke({ ID: owner.ID });
        return `unlock ${offsetMs} ms after expiry: ${outcome}`;
      }),
    );
    for (const outcome of outcomes) assert.match(outcome, /session is expired/, outcomes.join("\n"));
  });
});
