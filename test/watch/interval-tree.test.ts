// The interval treap against a brute-force list: every stab returns exactly
// the intervals that contain the point, through random inserts and removes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { IntervalTree, unbounded, type IntervalHandle } from "../../src/mvcc/watch-interval-tree.ts";

function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

const alphabet = "abcdef";
function randomKey(random: () => number): string {
  let key = "";
  const length = 1 + Math.floor(random() * 3);
  for (let i = 0; i < length; i++) key += alphabet[Math.floor(random() * alphabet.length)];
  return key;
}

describe("watch interval tree", () => {
  for (const seed of [1, 2, 3, 42]) {
    test(`stab matches brute force (seed ${seed})`, () => {
      const random = seeded(seed);
      const tree = new IntervalTree<number>();
      const live = new Map<number, { low: string; high: string; handle: IntervalHandle }>();
      let next = 0;
      for (let round = 0; round < 3000; round++) {
        const action = random();
        if (action < 0.5 || live.size === 0) {
          const a = randomKey(random);
          const b = random() < 0.15 ? unbounded : randomKey(random);
          const [low, high] = a < b ? [a, b] : [b, a];
          if (low === high) continue;
          const id = next++;
          live.set(id, { low, high, handle: tree.insert(low, high, id) });
        } else if (action < 0.8) {
          const ids = [...live.keys()];
          const id = ids[Math.floor(random() * ids.length)] as number;
          const entry = live.get(id)!;
          assert.equal(tree.remove(entry.handle), true);
          assert.equal(tree.remove(entry.handle), false, "a second remove finds nothing");
          live.delete(id);
        } else {
          const point = randomKey(random);
          const found: number[] = [];
          tree.stab(point, (id) => found.push(id));
          const expected = [...live].filter(([, entry]) => entry.low <= point && point < entry.high).map(([id]) => id);
          assert.deepEqual(found.sort((x, y) => x - y), expected.sort((x, y) => x - y), `seed ${seed} round ${round} point ${point}`);
        }
        assert.equal(tree.size, live.size);
      }
    });
  }

  test("an unbounded interval holds every key at or after its low end, including bytes 0xff", () => {
    const tree = new IntervalTree<string>();
    tree.insert("b", unbounded, "from-b");
    const stab = (point: string) => {
      const found: string[] = [];
      tree.stab(point, (value) => found.push(value));
      return found;
    };
    assert.deepEqual(stab("a"), []);
    assert.deepEqual(stab("b"), ["from-b"]);
    assert.deepEqual(stab("\u00ff\u00ff\u00ff"), ["from-b"]);
  });
});
