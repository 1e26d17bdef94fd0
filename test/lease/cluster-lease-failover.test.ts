// 1,000 leases kept alive through LeaseKeepAlive streams spread over the
// members of a real 3-member edgetcd cluster (two of them followers, which
// forward renewals to the leader): a SIGKILL of the leader expires none of
// them, the stream on the dead member moves to another one, and leases nobody
// keeps alive still expire within TTL + election timeout of the new leader
// taking over (etcd's promote extends every lease by an election timeout).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type MemberClients, type TestCluster } from "../support/cluster.ts";
import { bytes, killMember, until } from "./cluster-support.ts";

const electionMs = 500;

/** A request stream the test pushes into while the call is open. */
class PushQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

interface KeepAliveReport {
  /** Leases answered with TTL 0 (gone) at least once. */
  gone: Set<bigint>;
  renewals: number;
  reconnects: number;
}

/**
 * Keeps `ids` alive over one LeaseKeepAlive stream, renewing each every
 * `intervalMs`; when its member dies, moves to the next running member.
 */
async function keepAlive(cluster: TestCluster, startIndex: number, ids: bigint[], intervalMs: number, signal: AbortSignal, report: KeepAliveReport) {
  let index = startIndex;
  while (!signal.aborted) {
    const member = cluster.members[index % cluster.members.length] as ClusterMember;
    index++;
    if (member.server === undefined) continue;
    const requests = new PushQueue<{ ID: bigint }>();
    // The sender stops with this stream, not only at the end of the test.
    let streamOpen = true;
    const sender = (async () => {
      while (!signal.aborted && streamOpen) {
        for (const ID of ids) requests.push({ ID });
        await sleep(intervalMs);
      }
      requests.end();
    })();
    try {
      for await (const response of clientsOf(member).lease.leaseKeepAlive(requests, { signal })) {
        report.renewals++;
        if (response.TTL <= 0n) report.gone.add(response.ID);
      }
    } catch {
      if (signal.aborted) break;
      report.reconnects++;
      await sleep(100);
    } finally {
      streamOpen = false;
      requests.end();
    }
    await sender.catch(() => undefined);
  }
}

/** Retries a call that failed on a busy machine (an extra election answers "leader changed"). */
async function retried<T>(call: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= attempts) throw error;
      await sleep(200);
    }
  }
}

async function leaseIds(clients: MemberClients): Promise<Set<bigint>> {
  return new Set((await clients.lease.leaseLeases({})).leases.map((lease) => lease.ID));
}

describe("1,000 leases kept alive across a leader kill", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3, { electionMs });
    await leaderOf(cluster);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  test("kill -9 the leader while 1,000 leases are kept alive: none expires; leases left alone still expire", { timeout: 90_000 }, async () => {
    const keptTtlSeconds = 8;
    const idleTtlSeconds = 3;
    const keptCount = 1000;
    const idleCount = 20;
    const leader = await leaderOf(cluster);
    const grantOn = clientsOf(leader);
    const report: KeepAliveReport = { gone: new Set(), renewals: 0, reconnects: 0 };
    const stop = new AbortController();
    // One stream per member; each lease joins its stream as soon as it is granted.
    const groups = cluster.members.map((): bigint[] => []);
    const keepers = groups.map((ids, index) => keepAlive(cluster, index, ids, 2000, stop.signal, report));
    const kept: bigint[] = [];
    try {
      const grantStartedAt = Date.now();
      // Granted 50 at a time; a grant that times out on this busy machine is simply asked again.
      while (kept.length < keptCount) {
        const granted = await Promise.allSettled(Array.from({ length: 50 }, () => grantOn.lease.leaseGrant({ TTL: BigInt(keptTtlSeconds) })));
        for (const result of granted) {
          if (result.status !== "fulfilled" || kept.length >= keptCount) continue;
          groups[kept.length % groups.length]?.push(result.value.ID);
          kept.push(result.value.ID);
        }
      }
      console.log(`granted ${keptCount} leases in ${Date.now() - grantStartedAt} ms`);
      const idle = await Promise.all(Array.from({ length: idleCount }, () => retried(() => grantOn.lease.leaseGrant({ TTL: BigInt(idleTtlSeconds) }))));
      await Promise.all(idle.map((lease, i) => retried(() => grantOn.kv.put({ key: bytes(`idle/${i}`), value: bytes("v"), lease: lease.ID }))));
      await sleep(1000);
      await killMember(leader);
      const next = await leaderOf(cluster);
      const takenOverAt = Date.now();
      const onNext = clientsOf(next);
      // Leases nobody renews expire within TTL + election timeout of the takeover (etcd's promote extends every lease by an election timeout).
      const idleLeft = () => onNext.kv.range({ key: bytes("idle/"), rangeEnd: bytes("idle0"), countOnly: true, serializable: true });
      await until(async () => (await idleLeft().catch(() => undefined))?.count === 0n, "idle leases to expire", 20_000);
      const idleExpiredAfterMs = Date.now() - takenOverAt;
      assert.ok(idleExpiredAfterMs <= idleTtlSeconds * 1000 + electionMs + 2000, `idle leases expired ${idleExpiredAfterMs} ms after the takeover`);
      // Past the kept leases' TTL since the kill, every one of them still stands.
      await sleep(keptTtlSeconds * 1000 + electionMs - idleExpiredAfterMs);
      const standing = await retried(() => leaseIds(onNext));
      const lost = kept.filter((id) => !standing.has(id));
      assert.deepEqual(lost, [], `${lost.length} kept-alive leases expired`);
      assert.equal(report.gone.size, 0, `${report.gone.size} kept-alive leases answered TTL 0`);
      for (const lease of idle) assert.ok(!standing.has(lease.ID), "an idle lease is gone");
      console.log(`idle leases expired ${idleExpiredAfterMs} ms after the takeover; ${report.renewals} renewals, ${report.reconnects} reconnects`);
      assert.ok(report.reconnects >= 1, "the stream on the killed leader moved to another member");
    } finally {
      stop.abort();
      await Promise.all(keepers);
    }
  });

});
