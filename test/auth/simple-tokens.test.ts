// etcd's simple tokens stepped on the simulator's clock: the token's shape, one
// TTL past the last use, invalidation by user, enable/disable, the cap on tokens
// held, and the expiry timer (only while tokens are held; none after stop).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SimpleTokens, simpleTokenIndex, simpleTokenPrefixLength } from "../../src/auth/simple-tokens.ts";
import { simClock } from "../../runtime/sim/clock.ts";
import { simRandom } from "../../runtime/sim/random.ts";

/** The simulator's clock, counting timers that are set and neither fired nor cancelled. */
function countingClock() {
  const inner = simClock();
  let pending = 0;
  const clock = {
    nowMs: () => inner.nowMs(),
    advance: (ms: number) => inner.advance(ms),
    pendingTimers: () => pending,
    setTimer(ms: number, fn: () => void) {
      let live = true;
      pending++;
      const end = () => {
        if (live) pending--;
        live = false;
      };
      const timer = inner.setTimer(ms, () => {
        end();
        fn();
      });
      return { cancel: () => (end(), timer.cancel()) };
    },
  };
  return clock;
}

function setup(options: { ttlSeconds?: number; tokensMax?: number } = { ttlSeconds: 10 }) {
  const clock = countingClock();
  const tokens = new SimpleTokens(clock, simRandom(1), options);
  tokens.enable();
  return { clock, tokens };
}

describe("simple tokens", () => {
  test("a prefix is 16 letters; the token is prefix.index and names its user", () => {
    const { tokens } = setup();
    const prefix = tokens.newPrefix();
    assert.match(prefix, new RegExp(`^[a-zA-Z]{${simpleTokenPrefixLength}}$`));
    assert.notEqual(tokens.newPrefix(), prefix);
    const token = tokens.assign(prefix, 42, "alice");
    assert.equal(token, `${prefix}.42`);
    assert.equal(simpleTokenIndex(token), 42);
    assert.equal(tokens.info(token), "alice");
  });

  test("unknown and malformed tokens name nobody", () => {
    const { tokens } = setup();
    tokens.assign("abcdefghijklmnop", 7, "alice");
    for (const token of ["", "abcdefghijklmnop", "abcdefghijklmnop.8", "abcdefghijklmnop.7.7", "x.7"]) assert.equal(tokens.info(token), undefined, token);
    for (const token of ["", "abc", "abc.", "abc.x", "abc.1.2", ".5"]) assert.equal(simpleTokenIndex(token), undefined, token);
  });

  test("a token expires one TTL after its last use, and each use pushes that back", () => {
    const { clock, tokens } = setup({ ttlSeconds: 10 });
    const token = tokens.assign(tokens.newPrefix(), 1, "alice");
    clock.advance(9_000);
    assert.equal(tokens.info(token), "alice");
    clock.advance(9_000); // 18 s after the login, 9 s after its use
    assert.equal(tokens.info(token), "alice");
    clock.advance(10_000);
    assert.equal(tokens.info(token), undefined);
  });

  test("the expiry timer forgets unused tokens without being asked, then stops", () => {
    const { clock, tokens } = setup({ ttlSeconds: 10 });
    const kept = tokens.assign(tokens.newPrefix(), 1, "alice");
    tokens.assign(tokens.newPrefix(), 2, "bob");
    clock.advance(6_000);
    assert.equal(tokens.info(kept), "alice");
    clock.advance(5_000); // bob's expired, alice's was used 5 s ago
    assert.equal(tokens.size, 1);
    clock.advance(10_000);
    assert.equal(tokens.size, 0);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("etcd's default TTL is 300 s, also when the flag says 0", () => {
    const { clock, tokens } = setup({ ttlSeconds: 0 });
    const token = tokens.assign(tokens.newPrefix(), 1, "alice");
    clock.advance(299_000);
    assert.equal(tokens.info(token), "alice");
    clock.advance(300_000);
    assert.equal(tokens.info(token), undefined);
  });

  test("invalidateUser forgets that user's tokens only", () => {
    const { tokens } = setup();
    const first = tokens.assign("aaaaaaaaaaaaaaaa", 1, "alice");
    const second = tokens.assign("bbbbbbbbbbbbbbbb", 2, "alice");
    const other = tokens.assign("cccccccccccccccc", 3, "bob");
    tokens.invalidateUser("alice");
    assert.equal(tokens.info(first), undefined);
    assert.equal(tokens.info(second), undefined);
    assert.equal(tokens.info(other), "bob");
  });

  test("while disabled nothing is registered; disable forgets every token and its timer", () => {
    const clock = countingClock();
    const tokens = new SimpleTokens(clock, simRandom(2));
    const early = tokens.assign("aaaaaaaaaaaaaaaa", 1, "alice");
    assert.equal(early, "aaaaaaaaaaaaaaaa.1");
    assert.equal(tokens.info(early), undefined);
    tokens.enable();
    const token = tokens.assign("bbbbbbbbbbbbbbbb", 2, "alice");
    assert.equal(tokens.info(token), "alice");
    tokens.disable();
    assert.equal(tokens.info(token), undefined);
    assert.equal(clock.pendingTimers(), 0);
    tokens.enable();
    assert.equal(tokens.info(token), undefined);
  });

  test("stop leaves no timer behind", () => {
    const { clock, tokens } = setup();
    tokens.assign(tokens.newPrefix(), 1, "alice");
    assert.equal(clock.pendingTimers(), 1);
    tokens.stop();
    assert.equal(clock.pendingTimers(), 0);
  });

  test("at the cap, the token closest to expiry makes room", () => {
    const { clock, tokens } = setup({ ttlSeconds: 10, tokensMax: 3 });
    const first = tokens.assign("aaaaaaaaaaaaaaaa", 1, "a");
    clock.advance(1_000);
    const second = tokens.assign("bbbbbbbbbbbbbbbb", 2, "b");
    clock.advance(1_000);
    const third = tokens.assign("cccccccccccccccc", 3, "c");
    clock.advance(1_000);
    assert.equal(tokens.info(first), "a"); // used: now the last to expire
    const fourth = tokens.assign("dddddddddddddddd", 4, "d");
    assert.equal(tokens.size, 3);
    assert.equal(tokens.info(second), undefined);
    assert.deepEqual([first, third, fourth].map((token) => tokens.info(token)), ["a", "c", "d"]);
  });

  test("a second login at one raft index is a bug", () => {
    const { tokens } = setup();
    tokens.assign("aaaaaaaaaaaaaaaa", 5, "alice");
    assert.throws(() => tokens.assign("aaaaaaaaaaaaaaaa", 5, "bob"), /assertion failed/);
  });
});
