// SenderVouching: unknown senders admitted on a known member's word, with the
// lookups bounded so a flood of forged ids cannot make a member flood its peers.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Clock, Logger } from "../../src/ports.ts";
import type { NodeId } from "../../src/raft/types.ts";
import { SenderVouching, withVouching, type VouchingOptions } from "../../src/peer/vouching.ts";
import { nextTurn } from "./support.ts";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function fixture(listed: ReadonlyMap<NodeId, string[]>, limits: VouchingOptions["limits"] = {}) {
  let nowMs = 0;
  const clock: Clock = {
    nowMs: () => nowMs,
    wallMs: () => nowMs,
    setTimer: () => ({ cancel() {} }),
    setInterval: () => ({ cancel() {} }),
  };
  const lookups: NodeId[] = [];
  const vouched: NodeId[] = [];
  const lapsed: NodeId[] = [];
  const vouching = new SenderVouching({
    clock,
    logger: silent,
    limits,
    lookup: async (id) => {
      lookups.push(id);
      return listed.get(id);
    },
    onVouched: (id) => vouched.push(id),
    onLapsed: (id) => lapsed.push(id),
  });
  return { vouching, lookups, vouched, lapsed, advance: (ms: number) => (nowMs += ms) };
}

test("an id a known member lists is refused while looked up, then admitted, and its peer is dialled", async () => {
  const { vouching, lookups, vouched } = fixture(new Map([[7, ["http://10.0.0.7:2380"]]]));
  assert.equal(vouching.vouches(7), false, "refused while the lookup is out");
  assert.equal(vouching.vouches(7), false);
  await nextTurn();
  assert.deepEqual(lookups, [7], "one lookup, however often asked");
  assert.equal(vouching.vouches(7), true);
  assert.deepEqual(vouched, [7]);
});

test("an id nobody lists is looked up at most once per interval", async () => {
  const { vouching, lookups, advance } = fixture(new Map());
  for (let i = 0; i < 100; i++) assert.equal(vouching.vouches(9), false);
  await nextTurn();
  for (let i = 0; i < 100; i++) vouching.vouches(9);
  assert.equal(lookups.length, 1);
  advance(1000);
  vouching.vouches(9);
  await nextTurn();
  assert.equal(lookups.length, 2);
});

test("a flood of forged ids starts a bounded number of lookups and tracks a bounded number of ids", async () => {
  const { vouching, lookups, advance } = fixture(new Map([[5, ["http://10.0.0.5:2380"]]]), { lookupsPerIntervalMax: 4, sendersTrackedMax: 8 });
  for (let second = 0; second < 10; second++) {
    for (let id = 1000 + second * 10_000; id < 1000 + second * 10_000 + 5000; id++) assert.equal(vouching.vouches(id), false);
    await nextTurn();
    advance(1000);
  }
  assert.ok(lookups.length <= 40, `${lookups.length} lookups for 50,000 forged ids in 10 s`);
  // A real newcomer still gets through once the flood leaves room.
  vouching.vouches(5);
  await nextTurn();
  assert.equal(vouching.vouches(5), true);
});

test("a vouch is re-asked in its second half and lapses when no known member lists the id any more", async () => {
  const listed = new Map([[7, ["http://10.0.0.7:2380"]]]);
  const { vouching, lapsed, advance } = fixture(listed, { vouchedForMs: 10_000 });
  vouching.vouches(7);
  await nextTurn();
  assert.equal(vouching.vouches(7), true);
  listed.delete(7);
  advance(6000);
  assert.equal(vouching.vouches(7), true, "still admitted while re-asked");
  await nextTurn();
  assert.equal(vouching.vouches(7), false);
  assert.deepEqual(lapsed, [7]);
});

test("withVouching never admits a removed id and asks only about unknown ones", async () => {
  const { vouching, lookups } = fixture(new Map([[3, ["http://10.0.0.3:2380"]]]));
  const membershipOf = withVouching((id) => (id === 1 ? "member" : id === 3 ? "removed" : "unknown"), vouching);
  assert.equal(membershipOf(1), "member");
  assert.equal(membershipOf(3), "removed");
  await nextTurn();
  assert.deepEqual(lookups, []);
});
