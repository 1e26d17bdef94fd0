// The simulator's building blocks: seeded PRNG, clock, network, disk.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SimClock } from "../../runtime/sim/clock.ts";
import { SimDisk } from "../../runtime/sim/disk.ts";
import { SimNetwork } from "../../runtime/sim/network.ts";
import { Prng } from "../../runtime/sim/prng.ts";
import { replayRaftRecords, type RaftRecord, storageFromDisk } from "../../runtime/sim/raft-disk.ts";
import { simRandom } from "../../runtime/sim/random.ts";
import { EntryType } from "../../src/raft/types.ts";

describe("Prng", () => {
  test("is a pure function of its seed, and seeds differ", () => {
    const draw = (seed: number) => {
      const prng = new Prng(seed);
      return Array.from({ length: 16 }, () => prng.nextUint32());
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    assert.notDeepEqual(draw(1), draw(2 ** 32 + 1), "high bits of the seed matter");
  });

  test("int stays in range and covers it", () => {
    const prng = new Prng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const value = prng.int(7);
      assert.ok(value >= 0 && value < 7 && Number.isInteger(value));
      seen.add(value);
    }
    assert.equal(seen.size, 7);
    assert.deepEqual(new Prng(5).shuffled([1, 2, 3, 4, 5]).sort(), [1, 2, 3, 4, 5]);
    const random = simRandom(9);
    assert.equal(random.bytes(5).byteLength, 5);
    assert.ok(random.int(3) < 3);
  });
});

describe("SimClock", () => {
  test("runs timers in time order, ties in scheduling order; cancel and intervals work", () => {
    const clock = new SimClock(1000);
    const log: string[] = [];
    clock.setTimer(5, () => log.push(`a@${clock.nowMs()}`));
    clock.setTimer(2, () => log.push(`b@${clock.nowMs()}`));
    clock.setTimer(5, () => log.push(`c@${clock.nowMs()}`));
    clock.setTimer(3, () => log.push("cancelled")).cancel();
    const interval = clock.setInterval(4, () => log.push(`i@${clock.nowMs()}`));
    clock.advance(9);
    interval.cancel();
    clock.advance(100);
    assert.deepEqual(log, ["b@2", "i@4", "a@5", "c@5", "i@8"]);
    assert.equal(clock.nowMs(), 109);
    assert.equal(clock.wallMs(), 1109);
  });
});

describe("SimNetwork", () => {
  test("delivers with delays, cuts links one way, heals", () => {
    const clock = new SimClock();
    const delivered: string[] = [];
    const lost: string[] = [];
    const network = new SimNetwork<string>(
      clock,
      new Prng(1),
      (from, to, payload) => delivered.push(`${from}>${to}:${payload}`),
      (from, to, payload, why) => lost.push(`${from}>${to}:${payload}:${why}`),
    );
    network.cut(1, 2);
    assert.equal(network.send(1, 2, "x"), "cut");
    assert.equal(network.send(2, 1, "y"), "sent");
    clock.advance(10);
    assert.deepEqual(delivered, ["2>1:y"]);
    assert.deepEqual(lost, ["1>2:x:cut"]);
    // A partition also loses what is already in flight.
    network.healAll();
    network.send(1, 3, "z");
    network.partition([[1], [2, 3]]);
    assert.ok(network.isCut(3, 1) && !network.isCut(2, 3));
    clock.advance(10);
    assert.deepEqual(lost.at(-1), "1>3:z:cut");
  });

  test("drops, duplicates and reorders according to its faults", () => {
    const clock = new SimClock();
    const delivered: number[] = [];
    const network = new SimNetwork<number>(clock, new Prng(2), (_f, _t, payload) => delivered.push(payload));
    network.faults = { dropRate: 0.2, duplicateRate: 0.2, delayMsMin: 1, delayMsMax: 20, slowRate: 0, slowDelayMsMax: 0 };
    for (let i = 0; i < 500; i++) network.send(1, 2, i);
    clock.advance(100);
    const unique = new Set(delivered);
    assert.ok(unique.size < 480 && unique.size > 320, `delivered ${unique.size}`);
    assert.ok(delivered.length > unique.size, "some duplicated");
    assert.notDeepEqual(delivered, [...delivered].sort((a, b) => a - b), "reordered");
  });
});

describe("SimDisk", () => {
  test("a crash keeps synced writes and at most a prefix of the rest", () => {
    const disk = new SimDisk<number>([0]);
    disk.write(1);
    disk.sync();
    disk.write(2);
    disk.write(3);
    assert.deepEqual(disk.allRecords(), [0, 1, 2, 3]);
    assert.deepEqual(disk.crash(new Prng(1), true), [0, 1]);
    const prefixes = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const other = new SimDisk<number>([0]);
      other.write(1);
      other.write(2);
      prefixes.add(other.crash(new Prng(seed), false).join(","));
    }
    assert.deepEqual([...prefixes].sort(), ["0", "0,1", "0,1,2"]);
  });

  test("raft records replay like a WAL: truncation, installed and local snapshots", () => {
    const entry = (index: number, term: number) => ({ index, term, type: EntryType.Normal, data: new Uint8Array([index]) });
    const confState = { voters: [1, 2, 3], learners: [] };
    const records: RaftRecord[] = [
      { kind: "installSnapshot", snapshot: { metadata: { index: 1, term: 1, confState }, data: new Uint8Array() } },
      { kind: "hardState", hardState: { term: 1, vote: 0, commit: 1 } },
      { kind: "entries", entries: [entry(2, 2), entry(3, 2), entry(4, 2)] },
      { kind: "entries", entries: [entry(4, 3), entry(5, 3)] },
      { kind: "hardState", hardState: { term: 3, vote: 2, commit: 4 } },
      { kind: "localSnapshot", snapshot: { metadata: { index: 4, term: 3, confState }, data: new Uint8Array() }, compactIndex: 3 },
    ];
    const state = replayRaftRecords(records);
    assert.deepEqual(state.hardState, { term: 3, vote: 2, commit: 4 });
    assert.deepEqual(state.entries.map((e) => [e.index, e.term]), [[4, 3], [5, 3]]);
    const storage = storageFromDisk(state);
    assert.equal(storage.firstIndex(), 5);
    assert.equal(storage.lastIndex(), 5);
    assert.equal(storage.term(4), 3);
    const installed = replayRaftRecords([
      ...records,
      { kind: "installSnapshot", snapshot: { metadata: { index: 9, term: 4, confState }, data: new Uint8Array() } },
    ]);
    assert.deepEqual(installed.entries, []);
    assert.equal(installed.snapshot?.metadata.index, 9);
  });
});
