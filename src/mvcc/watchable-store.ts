// The watchable store (etcd's watchableStore): every watcher is in exactly one
// place. Synced watchers get each committed write transaction's events as it
// is applied; unsynced ones (start revision in the past) are caught up from
// the backend in bounded batches, then join the synced group; a watcher whose
// stream cannot take a response becomes a victim holding that response, and
// is retried until it is delivered, never dropped. One revision's events
// always travel in one response.
//
// Synchronous and deterministic: the owner of the clock calls syncWatchers
// and moveVictims (see watch-scheduler.ts) whenever `onWork` asks.
import type { Event } from "../gen/mvccpb/kv_pb.ts";
import type { KvRow } from "../storage/backend.ts";
import { keyString } from "./key-bytes.ts";
import { rowToEvent } from "./kv.ts";
import type { MvccStore } from "./store.ts";
import { WatchGroup, type Watcher } from "./watch-group.ts";
import { WatchStream, type WatchResponseSink } from "./watch-stream.ts";
import { mutant } from "../mutants.ts";

/** Unsynced watchers caught up per sync step (etcd's maxWatchersPerSync). */
export const watchersPerSyncMax = 512;
/** Backend rows read per catch-up step; a revision is never cut, so a bigger one is read whole. */
export const catchUpRowsMax = 1000;

interface Victim {
  watcher: Watcher;
  events: Event[];
  revision: number;
}

export class WatchableStore {
  private readonly synced = new WatchGroup();
  private readonly unsynced = new Set<Watcher>();
  private victims: Victim[] = [];
  private readonly progressWatchers = new Set<Watcher>();
  private readonly streamsAwaitingProgress = new Set<WatchStream>();
  /** Called when unsynced watchers or victims appear, so the scheduler runs a step soon. */
  onWork: (() => void) | undefined;

  constructor(readonly store: MvccStore) {
    const previous = store.onCommitted;
    store.onCommitted =
      previous === undefined
        ? (events, revision) => this.notify(events, revision)
        : (events, revision) => {
            previous(events, revision);
            this.notify(events, revision);
          };
  }

  get revision(): number {
    return this.store.currentRevision;
  }

  /** A new stream of watchers whose responses go to `sink`. */
  newStream(sink: WatchResponseSink): WatchStream {
    return new WatchStream(this, sink);
  }

  get syncedCount(): number {
    return this.synced.size;
  }

  get unsyncedCount(): number {
    return this.unsynced.size;
  }

  get victimCount(): number {
    return this.victims.length;
  }

  /** Whether a sync or victim step has something to do. */
  get hasWork(): boolean {
    return this.unsynced.size > 0 || this.victims.length > 0;
  }

  /** Asks the scheduler for a step (a stream that drained calls this). */
  kick(): void {
    if (this.hasWork) this.onWork?.();
  }

  // --- watchers (called by WatchStream) ----------------------------------

  /**
   * Places a new watcher: synced when it starts after the current revision
   * (start 0 means current+1), unsynced when it must first catch up.
   */
  add(watcher: Watcher, startRevision: number): void {
    const current = this.store.currentRevision;
    if (startRevision === 0 || startRevision > current) {
      watcher.minRevision = Math.max(current + 1, startRevision);
      watcher.state = "synced";
      this.synced.add(watcher);
    } else {
      watcher.minRevision = startRevision;
      watcher.state = "unsynced";
      this.unsynced.add(watcher);
      this.onWork?.();
    }
    if (watcher.progressNotify) this.progressWatchers.add(watcher);
  }

  remove(watcher: Watcher): void {
    if (watcher.state === "synced") this.synced.delete(watcher);
    else if (watcher.state === "unsynced") this.unsynced.delete(watcher);
    // A victim's entry is dropped lazily by moveVictims.
    watcher.state = "canceled";
    this.progressWatchers.delete(watcher);
  }

  /** Drops a stream's pending "progress for all" request (the stream closed). */
  forgetStream(stream: WatchStream): void {
    this.streamsAwaitingProgress.delete(stream);
  }

  /**
   * A progress response for every watcher of `stream` (watch id -1), sent
   * only once all of them are synced, so it never runs ahead of events not
   * yet handed to the stream; until then it waits (etcd 3.5's deferred
   * progress).
   */
  requestProgressAll(stream: WatchStream): void {
    if (stream.allSynced() || mutant("progress-notify-ahead")) stream.sendProgress(-1n, this.store.currentRevision); // MUTANT
    else this.streamsAwaitingProgress.add(stream);
  }

  /**
   * The periodic progress tick (etcd's progress ticker): a watcher with
   * progress_notify that got no events since the last tick and is synced gets
   * an empty response at the current revision.
   */
  tickProgress(): void {
    const revision = this.store.currentRevision;
    for (const watcher of this.progressWatchers) {
      if (!watcher.eventsSinceTick && watcher.state === "synced") {
        watcher.owner.offer(watcher, noEvents, revision, 0);
      }
      watcher.eventsSinceTick = false;
    }
  }

  // --- the apply path --------------------------------------------------------

  /** Hands one committed transaction's events (all of one revision) to the synced watchers. */
  notify(events: Event[], revision: number): void {
    const synced = this.synced;
    // Nothing to do, and nothing allocated, when no one watches.
    if (synced.size === 0) return;
    const batches = new Map<Watcher, Event[]>();
    for (let event of events) {
      // A put or delete that asked for prev_kv carries it; a watcher gets it only if it asked too.
      if (event.prevKv !== undefined) event = { $typeName: "mvccpb.Event", type: event.type, kv: event.kv };
      const kv = event.kv;
      if (kv === undefined) continue;
      const matched = event;
      synced.match(keyString(kv.key), (watcher) => {
        if (revision < watcher.minRevision || !watcher.accepts(matched)) return;
        const batch = batches.get(watcher);
        if (batch === undefined) batches.set(watcher, [matched]);
        else batch.push(matched);
      });
    }
    let victimAdded = false;
    for (const [watcher, batch] of batches) {
      watcher.minRevision = revision + 1;
      if (watcher.owner.offer(watcher, batch, revision, 0)) continue;
      synced.delete(watcher);
      watcher.state = "victim";
      this.victims.push({ watcher, events: batch, revision });
      victimAdded = true;
    }
    if (victimAdded) this.onWork?.();
  }

  // --- background steps ------------------------------------------------------

  /**
   * Retries every victim's held response; a delivered one goes back to the
   * synced group, or to unsynced if revisions were committed meanwhile.
   * Returns how many were delivered.
   */
  moveVictims(): number {
    if (this.victims.length === 0) return 0;
    const victims = this.victims;
    this.victims = [];
    let moved = 0;
    for (const victim of victims) {
      const watcher = victim.watcher;
      if (watcher.state !== "victim") continue;
      if (!watcher.owner.offer(watcher, victim.events, victim.revision, 0)) {
        this.victims.push(victim);
        continue;
      }
      moved++;
      this.place(watcher);
    }
    if (moved > 0) this.answerDeferredProgress();
    return moved;
  }

  /**
   * The store was replaced by a snapshot from the leader (MvccStore.reload):
   * synced watchers may now be behind the store, so every one whose next
   * revision is not past the new current revision catches up from the
   * backend like a new watcher (and is canceled if that revision is gone).
   */
  storeReplaced(): void {
    const current = this.store.currentRevision;
    for (const watcher of this.synced.all()) {
      if (watcher.minRevision > current) continue;
      this.synced.delete(watcher);
      watcher.state = "unsynced";
      this.unsynced.add(watcher);
    }
    if (this.unsynced.size > 0) this.onWork?.();
  }

  /**
   * One catch-up step for up to watchersPerSyncMax unsynced watchers: cancel
   * those whose start revision was compacted, read at most catchUpRowsMax
   * rows (whole revisions) from the lowest start revision, and hand each
   * watcher its events. Returns how many watchers it moved forward.
   */
  syncWatchers(): number {
    if (this.unsynced.size === 0) return 0;
    let advanced = 0;
    const current = this.store.currentRevision;
    const compactRevision = this.store.compactRevision;
    const chosen = new WatchGroup();
    const chosenList: Watcher[] = [];
    let fromRevision = Number.MAX_SAFE_INTEGER;
    for (const watcher of this.unsynced) {
      if (chosenList.length >= watchersPerSyncMax) break;
      if (watcher.minRevision < compactRevision) {
        // etcd: a compacted watcher gets compact_revision and is canceled; retried if the stream is full.
        if (watcher.owner.offer(watcher, noEvents, 0, compactRevision)) {
          this.unsynced.delete(watcher);
          this.progressWatchers.delete(watcher);
          watcher.state = "canceled";
          advanced++;
        }
        continue;
      }
      chosen.add(watcher);
      chosenList.push(watcher);
      if (watcher.minRevision < fromRevision) fromRevision = watcher.minRevision;
    }
    if (chosenList.length === 0) return advanced;

    const { rows, throughRevision } = this.readRevisions(fromRevision, current);
    const batches = new Map<Watcher, Event[]>();
    for (const row of rows) {
      const event = rowToEvent(row);
      chosen.match(keyString(row.key), (watcher) => {
        if (row.main < watcher.minRevision || !watcher.accepts(event)) return;
        const batch = batches.get(watcher);
        if (batch === undefined) batches.set(watcher, [event]);
        else batch.push(event);
      });
    }

    for (const watcher of chosenList) {
      if (watcher.minRevision > throughRevision) continue;
      watcher.minRevision = throughRevision + 1;
      this.unsynced.delete(watcher);
      advanced++;
      const batch = batches.get(watcher);
      if (batch !== undefined && !watcher.owner.offer(watcher, batch, current, 0)) {
        watcher.state = "victim";
        this.victims.push({ watcher, events: batch, revision: current });
        continue;
      }
      this.place(watcher);
    }
    this.answerDeferredProgress();
    return advanced;
  }

  /**
   * Rows of revisions fromRevision..current, at most catchUpRowsMax of them
   * unless one revision alone is bigger; `throughRevision` is the last
   * revision read whole.
   */
  private readRevisions(fromRevision: number, current: number): { rows: KvRow[]; throughRevision: number } {
    const backend = this.store.backend;
    const rows = backend.scanRows(fromRevision - 1, Number.MAX_SAFE_INTEGER, current, catchUpRowsMax);
    if (rows.length < catchUpRowsMax) return { rows, throughRevision: current };
    const lastMain = (rows[rows.length - 1] as KvRow).main;
    if (lastMain === current) {
      // Read the rest of the last revision; the rows stop there anyway.
      this.readRestOfRevision(rows, current);
      return { rows, throughRevision: current };
    }
    const firstMain = (rows[0] as KvRow).main;
    if (firstMain < lastMain) {
      // Cut the last, possibly partial, revision; the next step starts there.
      let end = rows.length;
      while (end > 0 && (rows[end - 1] as KvRow).main === lastMain) end--;
      rows.length = end;
      return { rows, throughRevision: lastMain - 1 };
    }
    this.readRestOfRevision(rows, lastMain);
    return { rows, throughRevision: lastMain };
  }

  private readRestOfRevision(rows: KvRow[], revision: number): void {
    for (;;) {
      const last = rows[rows.length - 1] as KvRow;
      const more = this.store.backend.scanRows(last.main, last.sub, revision, catchUpRowsMax);
      for (const row of more) rows.push(row);
      if (more.length < catchUpRowsMax) return;
    }
  }

  /** Puts a watcher that is up to date through minRevision-1 where it belongs. */
  private place(watcher: Watcher): void {
    if (watcher.minRevision <= this.store.currentRevision) {
      watcher.state = "unsynced";
      this.unsynced.add(watcher);
      this.onWork?.();
    } else {
      watcher.state = "synced";
      this.synced.add(watcher);
    }
  }

  private answerDeferredProgress(): void {
    if (this.streamsAwaitingProgress.size === 0) return;
    for (const stream of this.streamsAwaitingProgress) {
      if (!stream.allSynced()) continue;
      this.streamsAwaitingProgress.delete(stream);
      stream.sendProgress(-1n, this.store.currentRevision);
    }
  }
}

const noEvents: Event[] = [];
