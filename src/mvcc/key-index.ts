// The in-memory key index: for every key, its generations of revisions (etcd's
// keyIndex). A generation starts with the put that creates the key and ends
// with the tombstone that deletes it; after a tombstone an empty generation
// waits for the next create. Reads at a revision walk back through it; the
// backend is keyed by revision, so the index is what turns a key into rows.
import { BTree } from "./btree.ts";
import { assert } from "../errors.ts";
import { keyBytes, keyString } from "./key-bytes.ts";

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

/** Shared by every new history: append copies before the first write, never pushes into it. */
const noRevisions: number[] = [];

/**
 * One key's history. Revisions only ever grow.
 *
 * Kept flat, because the index holds one of these per key and per-object
 * overhead is most of its memory: `revs` is every kept (main, sub) pair, oldest
 * first, across all generations; `starts` (absent until the key is first
 * deleted) is where each generation after the oldest begins, as a pair index.
 * Only the oldest generation can have been cut by compaction or restored from
 * a kept row, so only it needs its create revision and first version stored;
 * a later generation was created by its first revision, at version 1.
 */
export class KeyHistory {
  private revs: number[] = noRevisions;
  private starts: number[] | undefined = undefined;
  /** Create revision of the oldest generation. */
  private firstCreate = 0;
  /** Version of the oldest kept revision of the oldest generation. */
  private firstVersion = 1;

  /** `name` is the key as a binary string (keyString), the index's own key. */
  constructor(readonly name: string) {}

  /** The key's bytes (made on each call: the history keeps only the binary string). */
  get key(): Uint8Array {
    return keyBytes(this.name);
  }

  put(main: number, sub: number): void {
    const revs = this.revs;
    const length = revs.length;
    if (length > 0) {
      const lastMain = revs[length - 2] as number;
      assert(
        main > lastMain || (main === lastMain && sub > (revs[length - 1] as number)),
        "key index put with a revision not greater than the last",
      );
    } else {
      this.firstCreate = main;
      this.firstVersion = 1;
    }
    this.append(main, sub);
  }

  /** Ends the current generation; false when the key is not live. */
  tombstone(main: number, sub: number): boolean {
    if (!this.isLive()) return false;
    this.put(main, sub);
    if (this.starts === undefined) this.starts = [this.revs.length >> 1];
    else this.starts.push(this.revs.length >> 1);
    return true;
  }

  /** Starts a history in the middle of a generation, from a row kept by compaction. */
  restore(createRevision: number, main: number, sub: number, version: number): void {
    assert(this.isEmpty(), "key index restore on a non-empty key");
    this.firstCreate = createRevision;
    this.firstVersion = version;
    this.append(main, sub);
  }

  isEmpty(): boolean {
    return this.revs.length === 0 && this.starts === undefined;
  }

  /** True when the key is live now (its last generation has revisions). */
  isLive(): boolean {
    return this.generationStart(this.generationCount() - 1) < this.revs.length >> 1;
  }

  /** The key's revision visible at `atRevision`, into `out`; false if none (absent or deleted). */
  find(atRevision: number, out: FoundRevision): boolean {
    const revs = this.revs;
    const last = this.generationCount() - 1;
    let end = revs.length >> 1;
    for (let generation = last; generation >= 0; generation--) {
      const start = this.generationStart(generation);
      if (start === end) continue;
      // A generation that ended (tombstone) at or before the read revision: deleted then.
      if (generation !== last && (revs[2 * (end - 1)] as number) <= atRevision) return false;
      if ((revs[2 * start] as number) <= atRevision) {
        let i = end - 1;
        while ((revs[2 * i] as number) > atRevision) i--;
        out.main = revs[2 * i] as number;
        out.sub = revs[2 * i + 1] as number;
        if (generation === 0) {
          out.createRevision = this.firstCreate;
          out.version = this.firstVersion + i;
        } else {
          out.createRevision = revs[2 * start] as number;
          out.version = 1 + i - start;
        }
        return true;
      }
      end = start;
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
    const revs = this.revs;
    const last = this.generationCount() - 1;
    let generation = 0;
    // Generations before the last always hold revisions (at least their tombstone).
    while (generation < last && (revs[2 * (this.generationStart(generation + 1) - 1)] as number) <= atRevision) {
      generation++;
    }
    const start = this.generationStart(generation);
    const end = generation === last ? revs.length >> 1 : this.generationStart(generation + 1);
    let keptIndex = -1;
    for (let i = end - 1; i >= start; i--) {
      if ((revs[2 * i] as number) <= atRevision) {
        keptIndex = i;
        break;
      }
    }
    let keeps = false;
    // The pair the remaining history begins with, and the oldest generation's facts there.
    let from = start;
    let create = generation === 0 ? this.firstCreate : (revs[2 * start] as number);
    let version = generation === 0 ? this.firstVersion : 1;
    if (end > start) {
      if (keptIndex > start) {
        version += keptIndex - start;
        from = keptIndex;
      }
      if (keptIndex !== -1) {
        kept.main = revs[2 * from] as number;
        kept.sub = revs[2 * from + 1] as number;
        keeps = true;
      }
      // Only a tombstone left of an ended generation: it goes too.
      if (end - from === 1 && generation !== last) {
        keeps = false;
        generation++;
        from = end;
        create = revs[2 * end] as number;
        version = 1;
      }
    }
    if (generation === 0 && from === 0) return keeps;
    this.revs = revs.slice(2 * from);
    const later = this.starts === undefined ? [] : this.starts.slice(generation);
    for (let i = 0; i < later.length; i++) later[i] = (later[i] as number) - from;
    this.starts = later.length === 0 ? undefined : later;
    this.firstCreate = this.revs.length === 0 ? 0 : create;
    this.firstVersion = version;
    return keeps;
  }

  /** The kept (main, sub) pairs of each generation, oldest first (tests and debugging). */
  generations(): [number, number][][] {
    const out: [number, number][][] = [];
    const count = this.generationCount();
    for (let generation = 0; generation < count; generation++) {
      const pairs: [number, number][] = [];
      const end = generation === count - 1 ? this.revs.length >> 1 : this.generationStart(generation + 1);
      for (let i = this.generationStart(generation); i < end; i++) {
        pairs.push([this.revs[2 * i] as number, this.revs[2 * i + 1] as number]);
      }
      out.push(pairs);
    }
    return out;
  }

  private generationCount(): number {
    return this.starts === undefined ? 1 : this.starts.length + 1;
  }

  private generationStart(generation: number): number {
    return generation === 0 ? 0 : ((this.starts as number[])[generation - 1] as number);
  }

  /**
   * Appends a pair. Short histories (most keys) are copied into an array of
   * exactly their size; V8's push would reserve 16 more slots for each.
   */
  private append(main: number, sub: number): void {
    const revs = this.revs;
    const length = revs.length;
    if (length >= exactSizeBelow) {
      revs.push(main, sub);
      return;
    }
    const next = new Array<number>(length + 2);
    for (let i = 0; i < length; i++) next[i] = revs[i] as number;
    next[length] = main;
    next[length + 1] = sub;
    this.revs = next;
  }
}

/** Histories shorter than this many numbers (pairs × 2) grow by exact copies. */
const exactSizeBelow = 16;

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

  /** The history of the key whose binary string (keyString) is `name`. */
  historyNamed(name: string): KeyHistory | undefined {
    return this.tree.get(name);
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
      history = new KeyHistory(name);
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
    this.tree.set(history.name, history);
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
