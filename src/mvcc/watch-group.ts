// A watcher and a group of watchers indexed by what they watch: single keys in
// a map, ranges in an interval tree (etcd's watcherGroup), so matching an
// event costs one map lookup plus O(log n + matches), never a scan.
import type { Event } from "../gen/mvccpb/kv_pb.ts";
import { eventDelete, eventPut } from "./kv.ts";
import { IntervalTree, unbounded, type IntervalHandle } from "./watch-interval-tree.ts";

/** Where a watcher is: exactly one of these at any time. */
export type WatcherState = "synced" | "unsynced" | "victim" | "canceled";

export interface WatchFilters {
  /** Drop PUT events (etcd's NOPUT filter). */
  noPut: boolean;
  /** Drop DELETE events (etcd's NODELETE filter). */
  noDelete: boolean;
}

/** Anything that owns watchers and receives their responses (a watch stream). */
export interface WatcherOwner {
  /** Hands over a response; false when the owner cannot take it now (the watcher becomes a victim). */
  offer(watcher: Watcher, events: Event[], revision: number, compactRevision: number): boolean;
}

export class Watcher {
  state: WatcherState = "unsynced";
  /** The next revision this watcher must receive. */
  minRevision: number;
  /** Set when events were delivered since the last periodic progress tick. */
  eventsSinceTick = false;
  /** This watcher's slot in a range tree, while it is in one. */
  treeHandle: IntervalHandle | undefined;

  constructor(
    readonly owner: WatcherOwner,
    readonly id: bigint,
    /** Binary string of the key. */
    readonly key: string,
    /** undefined: just `key`; `unbounded`: every key >= `key`; else the exclusive end. */
    readonly end: string | undefined,
    startRevision: number,
    readonly filters: WatchFilters,
    readonly progressNotify: boolean,
  ) {
    this.minRevision = startRevision;
  }

  contains(key: string): boolean {
    if (this.end === undefined) return key === this.key;
    return key >= this.key && key < this.end;
  }

  /** Whether the filters let `event` through. */
  accepts(event: Event): boolean {
    if (event.type === eventPut) return !this.filters.noPut;
    if (event.type === eventDelete) return !this.filters.noDelete;
    return true;
  }
}

export class WatchGroup {
  private readonly keys = new Map<string, Set<Watcher>>();
  private readonly ranges = new IntervalTree<Watcher>();
  size = 0;

  add(watcher: Watcher): void {
    if (watcher.end === undefined) {
      let set = this.keys.get(watcher.key);
      if (set === undefined) {
        set = new Set();
        this.keys.set(watcher.key, set);
      }
      set.add(watcher);
    } else {
      watcher.treeHandle = this.ranges.insert(watcher.key, watcher.end, watcher);
    }
    this.size++;
  }

  /** Removes `watcher`; false when it was not in the group. */
  delete(watcher: Watcher): boolean {
    if (watcher.end === undefined) {
      const set = this.keys.get(watcher.key);
      if (set === undefined || !set.delete(watcher)) return false;
      if (set.size === 0) this.keys.delete(watcher.key);
    } else {
      if (watcher.treeHandle === undefined || !this.ranges.remove(watcher.treeHandle)) return false;
      watcher.treeHandle = undefined;
    }
    this.size--;
    return true;
  }

  /** Every watcher of the group. */
  all(): Watcher[] {
    const out = this.ranges.values();
    for (const set of this.keys.values()) for (const watcher of set) out.push(watcher);
    return out;
  }

  /** Calls `visit` for every watcher whose key or range holds `key`. */
  match(key: string, visit: (watcher: Watcher) => void): void {
    if (this.keys.size > 0) {
      const set = this.keys.get(key);
      if (set !== undefined) for (const watcher of set) visit(watcher);
    }
    if (this.ranges.size > 0) this.ranges.stab(key, visit);
  }
}

export { unbounded };
