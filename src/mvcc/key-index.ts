// The in-memory key index: for every key, its generations of revisions (etcd's
// keyIndex). A generation starts with the put that creates the key and ends
// with the tombstone that deletes it; after a tombstone an empty generation
// waits for the next create. Reads at a revision walk back through it; the
// backend is keyed by revision, so the index is what turns a key into rows.
import { BTree } from "./btree.ts";
import { assert } from "../errors.ts";
import { keyString } from "./key-bytes.ts";

/** The revision of a key found at some read revision, and its generation's facts. */
export interface FoundRevision {
  main: number;
  sub: number;
  createRevision: number;
  version: number;
}

export function newFoundRevision(): FoundRevision {
  return { main: 0, sub: 0, createRevision: 0, version: 0 };
}

class Generation {
  /** Main revision of the put that created the key in this generation. */
  createRevision = 0;
  /** Revisions put in this generation so far, a tombstone included. */
  version = 0;
  mains: number[] = [];
  subs: number[] = [];
}

/** One key's history. Revisions only ever grow. */
export class KeyHistory {
  generations: Generation[] = [new Generation()];
  /** Main revision of the last change (put or tombstone). */
  modifiedMain = 0;
  modifiedSub = 0;

  constructor(readonly key: Uint8Array) {}

  put(main: number, sub: number): void {
    assert(
      main > this.modifiedMain || (main === this.modifiedMain && sub > this.modifiedSub),
      "key index put with a revision not greater than the last",
    );
    const generation = this.generations[this.generations.length - 1] as Generation;
    if (generation.mains.length === 0) generation.createRevision = main;
    generation.mains.push(main);
    generation.subs.push(sub);
    generation.version++;
    this.modifiedMain = main;
    this.modifiedSub = sub;
  }

  /** Ends the current generation; false when the key is not live. */
  tombstone(main: number, sub: number): boolean {
    const generation = this.generations[this.generations.length - 1] as Generation;
    if (generation.mains.length === 0) return false;
    this.put(main, sub);
    this.generations.push(new Generation());
    return true;
  }

  /** Starts a history in the middle of a generation, from a row kept by compaction. */
  restore(createRevision: number, main: number, sub: number, version: number): void {
    const generation = this.generations[this.generations.length - 1] as Generation;
    assert(generation.mains.length === 0 && this.generations.length === 1, "key index restore on a non-empty key");
    generation.createRevision = createRevision;
    generation.version = version;
    generation.mains.push(main);
    generation.subs.push(sub);
    this.modifiedMain = main;
    this.modifiedSub = sub;
  }

  isEmpty(): boolean {
    return this.generations.length === 1 && (this.generations[0] as Generation).mains.length === 0;
  }

  /** True when the key is live now (its last generation has revisions). */
  isLive(): boolean {
    return (this.generations[this.generations.length - 1] as Generation).mains.length > 0;
  }

  /** The key's revision visible at `atRevision`, into `out`; false if none (absent or deleted). */
  find(atRevision: number, out: FoundRevision): boolean {
    const last = this.generations.length - 1;
    for (let index = last; index >= 0; index--) {
      const generation = this.generations[index] as Generation;
      const mains = generation.mains;
      const length = mains.length;
      if (length === 0) continue;
      // A generation that ended (tombstone) at or before the read revision: deleted then.
      if (index !== last && (mains[length - 1] as number) <= atRevision) return false;
      if ((mains[0] as number) > atRevision) continue;
      for (let i = length - 1; i >= 0; i--) {
        if ((mains[i] as number) <= atRevision) {
          out.main = mains[i] as number;
          out.sub = generation.subs[i] as number;
          out.createRevision = generation.createRevision;
          out.version = generation.version - (length - 1 - i);
          return true;
        }
      }
    }
    return false;
  }

  /**
   * Drops every revision not needed to read at `atRevision` or later: whole
   * generations that ended at or before it, and in the first remaining one the
   * revisions older than the latest at or before it. Returns through `kept`
   * the revision at or before `atRevision` that stays (the backend keeps its
   * row), or false when none stays.
   */
  compact(atRevision: number, kept: FoundRevision): boolean {
    let index = 0;
    const last = this.generations.length - 1;
    while (index < last) {
      const mains = (this.generations[index] as Generation).mains;
      if ((mains[mains.length - 1] as number) > atRevision) break;
      index++;
    }
    const generation = this.generations[index] as Generation;
    let keptIndex = -1;
    for (let i = generation.mains.length - 1; i >= 0; i--) {
      if ((generation.mains[i] as number) <= atRevision) {
        keptIndex = i;
        break;
      }
    }
    let keeps = false;
    if (generation.mains.length > 0) {
      if (keptIndex > 0) {
        generation.mains = generation.mains.slice(keptIndex);
        generation.subs = generation.subs.slice(keptIndex);
      }
      if (keptIndex !== -1) {
        kept.main = generation.mains[0] as number;
        kept.sub = generation.subs[0] as number;
        keeps = true;
      }
      // Only a tombstone left of an ended generation: it goes too.
      if (generation.mains.length === 1 && index !== last) {
        keeps = false;
        index++;
      }
    }
    if (index > 0) this.generations = this.generations.slice(index);
    return keeps;
  }
}

/** Callback of KeyIndex.visit: the key's history and its revision at the read revision. */
export type VisitFn = (history: KeyHistory, found: FoundRevision) => void;

/** Every key's history, in byte order of keys. */
export class KeyIndex {
  private readonly tree = new BTree<string, KeyHistory>();
  private readonly scratch = newFoundRevision();
  private live = 0;

  get keyCount(): number {
    return this.tree.size;
  }

  /** Keys live now (not deleted): etcd's etcd_debugging_mvcc_keys_total. */
  get liveKeyCount(): number {
    return this.live;
  }

  /** Counts the live keys again, after histories were built directly (restore). */
  recountLive(): void {
    let live = 0;
    this.tree.forEachPair((_name, history) => {
      if (history.isLive()) live++;
    });
    this.live = live;
  }

  history(key: Uint8Array): KeyHistory | undefined {
    return this.tree.get(keyString(key));
  }

  /** The key's revision at `atRevision`, into `out`. */
  get(key: Uint8Array, atRevision: number, out: FoundRevision): boolean {
    const history = this.tree.get(keyString(key));
    return history !== undefined && history.find(atRevision, out);
  }

  put(key: Uint8Array, main: number, sub: number): void {
    const name = keyString(key);
    let history = this.tree.get(name);
    if (history === undefined) {
      history = new KeyHistory(key);
      this.tree.set(name, history);
    }
    if (!history.isLive()) this.live++;
    history.put(main, sub);
  }

  /** Deletes a live key at (main, sub); false when it is not live. */
  tombstone(key: Uint8Array, main: number, sub: number): boolean {
    const history = this.tree.get(keyString(key));
    if (history === undefined || !history.tombstone(main, sub)) return false;
    this.live--;
    return true;
  }

  /** Adds a restored history (see KeyHistory.restore). */
  insert(history: KeyHistory): void {
    this.tree.set(keyString(history.key), history);
    if (history.isLive()) this.live++;
  }

  /**
   * Calls `visit` for every key in [key, end) that exists at `atRevision`, in
   * key order. `end` undefined: just `key`; `end` empty: every key >= `key`.
   * The FoundRevision passed is reused between calls.
   */
  visit(key: Uint8Array, end: Uint8Array | undefined, atRevision: number, visit: VisitFn): void {
    const found = this.scratch;
    if (end === undefined) {
      const history = this.tree.get(keyString(key));
      if (history !== undefined && history.find(atRevision, found)) visit(history, found);
      return;
    }
    const low = keyString(key);
    let high: string | undefined;
    let includeHigh = false;
    if (end.length === 0) {
      high = this.tree.maxKey();
      includeHigh = true;
      if (high === undefined) return;
    } else {
      high = keyString(end);
    }
    if (high < low || (high === low && !includeHigh)) return;
    this.tree.forRange(low, high, includeHigh, (_name, history) => {
      if (history.find(atRevision, found)) visit(history, found);
    });
  }

  /**
   * Compacts every key at `atRevision`, removing keys left empty. `keep` is
   * called for each revision at or before `atRevision` whose backend row must stay.
   */
  compact(atRevision: number, keep: (main: number, sub: number) => void): void {
    const kept = newFoundRevision();
    const emptied: string[] = [];
    this.tree.forEachPair((name, history) => {
      if (history.compact(atRevision, kept)) keep(kept.main, kept.sub);
      if (history.isEmpty()) emptied.push(name);
    });
    for (const name of emptied) this.tree.delete(name);
  }

  /** Every history in key order (restore and hashing). */
  forEach(fn: (history: KeyHistory) => void): void {
    this.tree.forEachPair((_name, history) => fn(history));
  }
}
