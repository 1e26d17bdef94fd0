import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KeyHistory, KeyIndex, newFoundRevision } from "../../src/mvcc/key-index.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { bytes, text } from "./helpers.ts";

function at(history: KeyHistory, revision: number): string | undefined {
  const found = newFoundRevision();
  if (!history.find(revision, found)) return undefined;
  return `${found.main}.${found.sub} c${found.createRevision} v${found.version}`;
}

function shape(history: KeyHistory): string {
  return history.generations().map((g) => `[${g.map(([main, sub]) => `${main}.${sub}`).join(" ")}]`).join("");
}

// etcd's key_index_test history: put 2, 4, tombstone 6; put 8, 10, tombstone 12; put 14, 14.1, tombstone 16.
function etcdHistory(): KeyHistory {
  const history = new KeyHistory("foo");
  history.put(2, 0);
  history.put(4, 0);
  history.tombstone(6, 0);
  history.put(8, 0);
  history.put(10, 0);
  history.tombstone(12, 0);
  history.put(14, 0);
  history.put(14, 1);
  history.tombstone(16, 0);
  return history;
}

describe("key history", () => {
  test("generations: a tombstone ends one, the next put starts another with version 1", () => {
    const history = etcdHistory();
    assert.equal(shape(history), "[2.0 4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]");
    assert.equal(at(history, 1), undefined);
    assert.equal(at(history, 2), "2.0 c2 v1");
    assert.equal(at(history, 5), "4.0 c2 v2");
    assert.equal(at(history, 6), undefined, "deleted at 6");
    assert.equal(at(history, 7), undefined);
    assert.equal(at(history, 8), "8.0 c8 v1");
    assert.equal(at(history, 11), "10.0 c8 v2");
    assert.equal(at(history, 12), undefined);
    assert.equal(at(history, 14), "14.1 c14 v2");
    assert.equal(at(history, 16), undefined);
    assert.equal(at(history, 100), undefined);
    assert.equal(history.isLive(), false);
  });

  test("tombstone of a deleted key is refused", () => {
    const history = new KeyHistory("k");
    history.put(1, 0);
    assert.equal(history.tombstone(2, 0), true);
    assert.equal(history.tombstone(3, 0), false);
  });

  test("revisions must grow", () => {
    const history = new KeyHistory("k");
    history.put(5, 1);
    assert.throws(() => history.put(5, 1));
    assert.throws(() => history.put(4, 9));
  });

  // Expected shapes and kept revisions follow etcd's TestKeyIndexCompactAndKeep.
  const cases: [number, string, string | undefined][] = [
    [1, "[2.0 4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]", undefined],
    [2, "[2.0 4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]", "2.0"],
    [3, "[2.0 4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]", "2.0"],
    [4, "[4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]", "4.0"],
    [5, "[4.0 6.0][8.0 10.0 12.0][14.0 14.1 16.0][]", "4.0"],
    [6, "[8.0 10.0 12.0][14.0 14.1 16.0][]", undefined],
    [7, "[8.0 10.0 12.0][14.0 14.1 16.0][]", undefined],
    [8, "[8.0 10.0 12.0][14.0 14.1 16.0][]", "8.0"],
    [10, "[10.0 12.0][14.0 14.1 16.0][]", "10.0"],
    [12, "[14.0 14.1 16.0][]", undefined],
    [14, "[14.1 16.0][]", "14.1"],
    [15, "[14.1 16.0][]", "14.1"],
    [16, "[]", undefined],
    [17, "[]", undefined],
  ];
  for (const [revision, expected, kept] of cases) {
    test(`compact at ${revision}`, () => {
      const history = etcdHistory();
      const found = newFoundRevision();
      const keeps = history.compact(revision, found);
      assert.equal(shape(history), expected);
      assert.equal(keeps ? `${found.main}.${found.sub}` : undefined, kept);
    });
  }

  test("compacting step by step equals compacting at once", () => {
    for (let target = 1; target <= 17; target++) {
      const stepwise = etcdHistory();
      const found = newFoundRevision();
      for (let revision = 1; revision <= target; revision++) stepwise.compact(revision, found);
      const once = etcdHistory();
      once.compact(target, found);
      assert.equal(shape(stepwise), shape(once), `at ${target}`);
    }
  });

  test("reads at or after the compact revision are unchanged by compaction", () => {
    for (let compactAt = 1; compactAt <= 17; compactAt++) {
      const history = etcdHistory();
      const before = Array.from({ length: 20 - compactAt }, (_, i) => at(history, compactAt + i));
      history.compact(compactAt, newFoundRevision());
      const after = Array.from({ length: 20 - compactAt }, (_, i) => at(history, compactAt + i));
      assert.deepEqual(after, before, `compact at ${compactAt}`);
    }
  });
});

// The flat history against a plain list of every change: random puts,
// deletes and compactions, and after each step reads at every revision from
// the last compaction on, the kept revision, and emptiness.
describe("key history against a model", () => {
  interface Change {
    main: number;
    sub: number;
    tombstone: boolean;
  }
  function expected(changes: Change[], revision: number): string | undefined {
    let index = -1;
    for (let i = 0; i < changes.length; i++) if ((changes[i] as Change).main <= revision) index = i;
    if (index === -1 || (changes[index] as Change).tombstone) return undefined;
    let start = index;
    while (start > 0 && !(changes[start - 1] as Change).tombstone) start--;
    const change = changes[index] as Change;
    return `${change.main}.${change.sub} c${(changes[start] as Change).main} v${index - start + 1}`;
  }
  for (let seed = 1; seed <= 200; seed++) {
    test(`seed ${seed}`, () => {
      const random = seededRandom(seed);
      const history = new KeyHistory("k");
      const changes: Change[] = [];
      let main = 1;
      let compacted = 0;
      for (let step = 0; step < 60; step++) {
        const choice = random();
        if (choice < 0.55) {
          const sub = random() < 0.2 && changes.length > 0 ? (changes[changes.length - 1] as Change).sub + 1 : 0;
          if (sub === 0) main += 1 + Math.floor(random() * 3);
          history.put(main, sub);
          changes.push({ main, sub, tombstone: false });
        } else if (choice < 0.75) {
          main += 1;
          const live = changes.length > 0 && !(changes[changes.length - 1] as Change).tombstone;
          assert.equal(history.tombstone(main, 0), live, `step ${step}: tombstone of a ${live ? "live" : "deleted"} key`);
          if (live) changes.push({ main, sub: 0, tombstone: true });
        } else {
          compacted = Math.min(main + 2, compacted + Math.floor(random() * 8));
          const found = newFoundRevision();
          const keeps = history.compact(compacted, found);
          const latest = expected(changes, compacted);
          assert.equal(keeps ? `${found.main}.${found.sub}` : undefined, latest?.split(" ")[0], `step ${step}: kept at ${compacted}`);
          const last = changes[changes.length - 1];
          const gone = last === undefined || (last.tombstone && last.main <= compacted);
          assert.equal(history.isEmpty(), gone, `step ${step}: empty after compacting at ${compacted}`);
          if (gone) return;
        }
        for (let revision = compacted; revision <= main + 1; revision++) {
          assert.equal(at(history, revision), expected(changes, revision), `step ${step}: read at ${revision}`);
        }
        const last = changes[changes.length - 1];
        assert.equal(history.isLive(), last !== undefined && !last.tombstone);
      }
    });
  }
});

describe("key index", () => {
  function keysAt(index: KeyIndex, key: string, end: string | undefined | null, revision: number): string[] {
    const out: string[] = [];
    const endBytes = end === null ? new Uint8Array(0) : end === undefined ? undefined : bytes(end);
    index.visit(bytes(key), endBytes, revision, (history, found) => out.push(`${text(history.key)}@${found.main}`));
    return out;
  }

  test("ranges in byte order: single key, [key, end), from key, everything", () => {
    const index = new KeyIndex();
    const keys = ["a", "b", "ba", "c", "\u007f", "z"];
    keys.forEach((key, i) => index.put(bytes(key), i + 1, 0));
    const high = new Uint8Array([0xff, 0x01]);
    index.put(high, 7, 0);
    assert.deepEqual(keysAt(index, "b", undefined, 10), ["b@2"]);
    assert.deepEqual(keysAt(index, "bb", undefined, 10), []);
    assert.deepEqual(keysAt(index, "b", "c", 10), ["b@2", "ba@3"]);
    assert.deepEqual(keysAt(index, "b", "b", 10), []);
    assert.deepEqual(keysAt(index, "c", "b", 10), []);
    assert.deepEqual(keysAt(index, "c", null, 10).length, 4, "c, DEL, z and the 0xff key");
    assert.deepEqual(keysAt(index, "\u0000", null, 10).length, 7);
    assert.deepEqual(keysAt(index, "a", null, 3), ["a@1", "b@2", "ba@3"], "only keys existing at 3");
    const found = newFoundRevision();
    assert.equal(index.get(high, 7, found), true);
    // 0xff sorts after 0x7f byte-wise (a UTF-8 decode would not keep that).
    const all: number[] = [];
    index.visit(bytes("\u007f"), new Uint8Array(0), 10, (history) => all.push(history.key[0] as number));
    assert.deepEqual(all, [0x7f, 0xff]);
  });

  test("compaction removes keys whose history is gone", () => {
    const index = new KeyIndex();
    index.put(bytes("a"), 1, 0);
    index.put(bytes("b"), 2, 0);
    assert.equal(index.tombstone(bytes("a"), 3, 0), true);
    const kept: string[] = [];
    index.compact(3, (main, sub) => kept.push(`${main}.${sub}`));
    assert.deepEqual(kept, ["2.0"]);
    assert.equal(index.keyCount, 1);
    assert.equal(index.history(bytes("a")), undefined);
  });
});
