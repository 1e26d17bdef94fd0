// The lessor stepped by hand on a fake clock: minimum TTL, grant checks,
// attach/detach from committed events, revoke order, renew, expiry only on the
// primary, promote (with etcd's spreading of piled-up expiries), demote,
// recovery from the lease bucket, and the expiry queue against brute force.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Event } from "../../src/gen/mvccpb/kv_pb.ts";
import { EtcdError } from "../../src/errors.ts";
import { ExpiryQueue } from "../../src/lease/expiry-queue.ts";
import { leaseIdHex, randomLeaseId } from "../../src/lease/lease-id.ts";
import { Lessor, leaseRevokeRatePerSecond, minLeaseTtlSeconds, type LeaseBackend } from "../../src/lease/lessor.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

class MemoryBackend implements LeaseBackend {
  readonly rows = new Map<string, [Uint8Array, Uint8Array]>();
  bucketPut(name: string, key: Uint8Array, value: Uint8Array): void {
    this.rows.set(`${name}/${key.join(",")}`, [key, value]);
  }
  bucketDelete(name: string, key: Uint8Array): void {
    this.rows.delete(`${name}/${key.join(",")}`);
  }
  bucketEntries(name: string): [Uint8Array, Uint8Array][] {
    return [...this.rows.entries()].filter(([k]) => k.startsWith(`${name}/`)).map(([, row]) => row);
  }
}

function setup(minTtlSeconds = 2) {
  const clock = { now: 1_000_000, nowMs: () => clock.now };
  const backend = new MemoryBackend();
  const lessor = new Lessor({ backend, clock, minTtlSeconds, expiredRetryMs: 7000 });
  return { clock, backend, lessor };
}

const put = (key: string, lease: bigint): Event =>
  ({ $typeName: "mvccpb.Event", type: 0, kv: { $typeName: "mvccpb.KeyValue", key: bytes(key), value: bytes("v"), createRevision: 2n, modRevision: 2n, version: 1n, lease } }) as Event;
const del = (key: string): Event =>
  ({ $typeName: "mvccpb.Event", type: 1, kv: { $typeName: "mvccpb.KeyValue", key: bytes(key), value: new Uint8Array(0), createRevision: 0n, modRevision: 3n, version: 0n, lease: 0n } }) as Event;

function etcdMessage(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    assert.ok(error instanceof EtcdError);
    return error.message;
  }
  assert.fail("expected an etcd error");
}

describe("lessor", () => {
  test("minimum TTL is 1.5 election timeouts in whole heartbeat ticks, rounded up to a second (etcd)", () => {
    assert.equal(minLeaseTtlSeconds(100, 1000), 2);
    assert.equal(minLeaseTtlSeconds(50, 500), 1);
    assert.equal(minLeaseTtlSeconds(100, 1050), 2);
    assert.equal(minLeaseTtlSeconds(300, 3000), 5);
  });

  test("grant raises short TTLs to the minimum and refuses id 0, a taken id and a TTL past the maximum", () => {
    const { lessor } = setup(2);
    assert.equal(lessor.grant(5n, 1).ttlSeconds, 2);
    assert.equal(lessor.grant(6n, 0).ttlSeconds, 2);
    assert.equal(lessor.grant(7n, 30).ttlSeconds, 30);
    assert.equal(etcdMessage(() => lessor.grant(0n, 10)), "etcdserver: requested lease not found");
    assert.equal(etcdMessage(() => lessor.grant(5n, 10)), "etcdserver: lease already exists");
    assert.equal(etcdMessage(() => lessor.grant(8n, 9_000_000_001)), "etcdserver: too large lease TTL");
    lessor.grant(9n, 9_000_000_000);
  });

  test("committed puts attach keys, a put without the lease or a delete detaches, a put to another lease moves the key", () => {
    const { lessor } = setup();
    lessor.grant(1n, 10);
    lessor.grant(2n, 10);
    lessor.observe([put("b", 1n), put("a", 1n), put("c", 1n), put("d", 2n)]);
    lessor.observe([put("c", 0n), del("d"), put("a", 2n), put("x", 0n)]);
    assert.deepEqual([...lessor.lookup(1n)!.keys.values()].map(text), ["b"]);
    assert.deepEqual([...lessor.lookup(2n)!.keys.values()].map(text), ["a"]);
    lessor.observe([put("z", 1n), put("m", 1n)]);
    // Revoke hands the keys back in byte order and forgets the lease.
    assert.deepEqual(lessor.revoke(1n).map(text), ["b", "m", "z"]);
    assert.equal(lessor.lookup(1n), undefined);
    assert.equal(etcdMessage(() => lessor.revoke(1n)), "etcdserver: requested lease not found");
    // Its keys no longer belong to anything: a later put of one to lease 2 attaches cleanly.
    lessor.observe([put("z", 2n)]);
    assert.deepEqual([...lessor.lookup(2n)!.keys.values()].map(text).sort(), ["a", "z"]);
  });

  test("only the primary expires leases; promote extends every lease by the given time", () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 5);
    clock.now += 60_000;
    assert.equal(lessor.remainingMs(lessor.lookup(1n)!), Number.POSITIVE_INFINITY);
    assert.deepEqual(lessor.takeExpired(10), []);
    lessor.promote(1000);
    assert.equal(lessor.remainingMs(lessor.lookup(1n)!), 6000);
    clock.now += 5999;
    assert.deepEqual(lessor.takeExpired(10), []);
    clock.now += 1;
    assert.deepEqual(lessor.takeExpired(10), [1n]);
    // Handed out once; again only after the retry interval, if still not revoked.
    assert.deepEqual(lessor.takeExpired(10), []);
    clock.now += 7000;
    assert.deepEqual(lessor.takeExpired(10), [1n]);
  });

  test("renew restarts the TTL; an expired lease cannot be renewed; a demoted lessor expires nothing", () => {
    const { clock, lessor } = setup();
    lessor.promote(0);
    lessor.grant(1n, 3);
    clock.now += 2500;
    assert.deepEqual(lessor.renew(1n), { ttlSeconds: 3, checkpointCleared: false });
    clock.now += 2500;
    assert.deepEqual(lessor.takeExpired(10), []);
    clock.now += 500;
    assert.deepEqual(lessor.renew(1n), { expired: true });
    assert.equal(etcdMessage(() => lessor.renew(99n)), "etcdserver: requested lease not found");
    lessor.demote();
    clock.now += 100_000;
    assert.deepEqual(lessor.takeExpired(10), []);
    assert.throws(() => lessor.renew(1n), /not primary/);
  });

  test("a checkpointed remaining TTL is used by the next promote and cleared by a renewal", () => {
    const { clock, lessor } = setup();
    lessor.grant(1n, 100);
    lessor.checkpoint(1n, 7);
    lessor.promote(0);
    assert.equal(lessor.remainingMs(lessor.lookup(1n)!), 7000);
    assert.deepEqual(lessor.renew(1n), { ttlSeconds: 100, checkpointCleared: true });
    assert.equal(lessor.remainingMs(lessor.lookup(1n)!), 100_000);
    clock.now += 1;
  });

  test("takeExpired hands out at most `limit` leases per call, soonest first", () => {
    const { clock, lessor } = setup(1);
    lessor.promote(0);
    for (let i = 1n; i <= 10n; i++) lessor.grant(i, Number(i));
    clock.now += 20_000;
    assert.deepEqual(lessor.takeExpired(4), [1n, 2n, 3n, 4n]);
    assert.deepEqual(lessor.takeExpired(100), [5n, 6n, 7n, 8n, 9n, 10n]);
  });

  test("the table survives a restart with full TTLs and no expiry until promoted; keys re-attach", () => {
    const { clock, backend, lessor } = setup();
    lessor.promote(0);
    lessor.grant(1n, 10);
    lessor.grant(-5n, 20);
    lessor.grant(3n, 30);
    lessor.revoke(3n);
    lessor.checkpoint(1n, 4);
    clock.now += 8000;
    const restarted = new Lessor({ backend, clock, minTtlSeconds: 2, expiredRetryMs: 7000 });
    assert.deepEqual(restarted.leasesByExpiry().map((lease) => [lease.id, lease.ttlSeconds]), [[-5n, 20], [1n, 10]]);
    restarted.attachRestored([{ key: bytes("k"), lease: 1n }, { key: bytes("lost"), lease: 3n }]);
    assert.deepEqual([...restarted.lookup(1n)!.keys.values()].map(text), ["k"]);
    assert.equal(restarted.remainingMs(restarted.lookup(1n)!), Number.POSITIVE_INFINITY);
    restarted.promote(500);
    assert.equal(restarted.remainingMs(restarted.lookup(1n)!), 10_500);
  });

  test("promote spreads expiries that would pile up beyond the revoke rate (etcd)", () => {
    const { clock, lessor } = setup(1);
    const count = 3 * leaseRevokeRatePerSecond;
    for (let i = 1; i <= count; i++) lessor.grant(BigInt(i), 10);
    lessor.promote(1000);
    const perSecond = new Map<number, number>();
    for (const lease of lessor.leasesByExpiry()) {
      const second = Math.floor((lease.expiryMs - clock.now) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
      assert.ok(lease.expiryMs - clock.now >= 11_000);
    }
    for (const [, n] of perSecond) assert.ok(n <= leaseRevokeRatePerSecond, `${n} leases expire in one second`);
  });
});

describe("lease ids", () => {
  test("server-chosen ids are positive int64s; keys print them as Go's %x does", () => {
    let seed = 7;
    const random = {
      int: (bound: number) => Math.floor((seed = (seed * 16807) % 2147483647) / 2147483647 * bound),
      bytes: (length: number) => Uint8Array.from({ length }, () => 0xff),
    };
    const id = randomLeaseId(random);
    assert.equal(id, (1n << 63n) - 1n);
    assert.equal(leaseIdHex(0x694d77aa9e38260fn), "694d77aa9e38260f");
    assert.equal(leaseIdHex(0x12n), "12");
    assert.equal(leaseIdHex(-0x1an), "-1a");
  });
});

describe("expiry queue", () => {
  test("pops in due order through sets, moves and deletes (against brute force)", () => {
    let seed = 12345;
    const next = (bound: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % bound;
    };
    const queue = new ExpiryQueue();
    const model = new Map<bigint, number>();
    for (let step = 0; step < 5000; step++) {
      const id = BigInt(next(200));
      const action = next(10);
      if (action < 6) {
        const due = next(100_000);
        queue.set(id, due);
        model.set(id, due);
      } else if (action < 8) {
        queue.delete(id);
        model.delete(id);
      } else {
        const head = queue.peek();
        const smallest = Math.min(...model.values());
        if (model.size === 0) assert.equal(head, undefined);
        else assert.equal(head?.dueMs, smallest);
      }
      assert.equal(queue.size, model.size);
    }
    const popped: number[] = [];
    while (queue.size > 0) {
      const head = queue.peek()!;
      popped.push(head.dueMs);
      queue.delete(head.id);
    }
    assert.deepEqual(popped, [...model.values()].sort((a, b) => a - b));
  });
});
