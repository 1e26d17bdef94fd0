// One client watch stream's watchers (etcd's mvcc watchStream): ids chosen by
// the client or assigned in order, creation and cancellation, and the sink
// its responses go to. The API layer turns sink deliveries into protobuf.
import type { Event } from "../gen/mvccpb/kv_pb.ts";
import { unbounded, Watcher, type WatcherOwner, type WatchFilters } from "./watch-group.ts";


/** watch_id 0 in a create request asks the server to choose (etcd's AutoWatchID). */
export const autoWatchId = 0n;
/** The id of responses that belong to no watcher (etcd's InvalidWatchID). */
export const invalidWatchId = -1n;

/** etcd's mvcc error texts, sent as a failed create's cancel_reason. */
export const watchErrors = {
  emptyRange: "mvcc: watcher range is empty",
  duplicateId: "mvcc: duplicate watch ID provided on the WatchStream",
} as const;

/** One response as the store hands it to a stream. */
export interface WatchDelivery {
  watchId: bigint;
  events: Event[];
  /** The header revision (etcd sets 0 on a compaction cancel). */
  revision: number;
  /** Non-zero: the watcher was canceled because its start revision was compacted. */
  compactRevision: number;
}

export interface WatchResponseSink {
  /**
   * Takes a response. Without `force` it may refuse (false) when the stream is
   * full; the store then holds the response and retries it later.
   */
  send(delivery: WatchDelivery, force: boolean): boolean;
}

export interface WatchCreateOptions {
  /** Client-chosen id; autoWatchId lets the stream choose. */
  id: bigint;
  /** Binary string of the key (already defaulted to "\0" when empty). */
  key: string;
  /** undefined: single key; `unbounded`: every key >= key; else the exclusive end. */
  end: string | undefined;
  /** 0: from current+1. */
  startRevision: number;
  filters: WatchFilters;
  progressNotify: boolean;
}

export type WatchCreateResult = { id: bigint } | { error: string };

/** What a watch stream needs of the store it watches (WatchableStore; named here so the two do not import each other). */
export interface WatchHub {
  readonly revision: number;
  add(watcher: Watcher, startRevision: number): void;
  remove(watcher: Watcher): void;
  requestProgressAll(stream: WatchStream): void;
  forgetStream(stream: WatchStream): void;
}

export class WatchStream implements WatcherOwner {
  private readonly watchers = new Map<bigint, Watcher>();
  private nextId = 0n;
  private closed = false;

  constructor(
    private readonly hub: WatchHub,
    private readonly sink: WatchResponseSink,
  ) {}

  get revision(): number {
    return this.hub.revision;
  }

  get size(): number {
    return this.watchers.size;
  }

  watch(options: WatchCreateOptions): WatchCreateResult {
    const { key, end } = options;
    if (end !== undefined && end !== unbounded && key >= end) return { error: watchErrors.emptyRange };
    if (this.closed) return { error: watchErrors.emptyRange };
    let id = options.id;
    if (id === autoWatchId) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      return { error: watchErrors.duplicateId };
    }
    const watcher = new Watcher(this, id, key, end, options.startRevision, options.filters, options.progressNotify);
    this.watchers.set(id, watcher);
    this.hub.add(watcher, options.startRevision);
    return { id };
  }

  /** Cancels watcher `id`; false when there is none. */
  cancel(id: bigint): boolean {
    const watcher = this.watchers.get(id);
    if (watcher === undefined || this.closed) return false;
    this.watchers.delete(id);
    this.hub.remove(watcher);
    return true;
  }

  /** The client's WatchProgressRequest (see WatchableStore.requestProgressAll). */
  requestProgress(): void {
    if (!this.closed) this.hub.requestProgressAll(this);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of this.watchers.values()) this.hub.remove(watcher);
    this.watchers.clear();
    this.hub.forgetStream(this);
  }

  allSynced(): boolean {
    for (const watcher of this.watchers.values()) if (watcher.state !== "synced") return false;
    return true;
  }

  sendProgress(watchId: bigint, revision: number): void {
    if (!this.closed) this.sink.send({ watchId, events: [], revision, compactRevision: 0 }, true);
  }

  offer(watcher: Watcher, events: Event[], revision: number, compactRevision: number): boolean {
    if (this.closed) return true;
    const accepted = this.sink.send({ watchId: watcher.id, events, revision, compactRevision }, false);
    if (!accepted) return false;
    if (events.length > 0) watcher.eventsSinceTick = true;
    // A compacted watcher is gone once its cancel is delivered.
    if (compactRevision !== 0) this.watchers.delete(watcher.id);
    return true;
  }
}
