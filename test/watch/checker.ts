// The watch checker: a model of the key space written by one sequential
// client (so every revision's events are known exactly), and checks of what
// each watcher received against it: ordered, unique, reliable (no gaps),
// atomic per revision, bookmarkable (after progress at P nothing <= P, and
// nothing <= P still missing), filters, IsCreate iff the key was absent, and
// prev_kv equal to the value before.
import assert from "node:assert/strict";
import type { WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";

export interface ModelKv {
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface ModelEvent {
  type: "PUT" | "DELETE";
  key: string;
  /** The kv after (PUT) or the deleted key at the deleting revision (DELETE). */
  kv: ModelKv;
  /** The key's kv before this revision, if it existed. */
  prevKv: ModelKv | undefined;
}

export type ModelOp = { put: [string, string] } | { del: [string, string | undefined] };

/** The key space as one sequential writer leaves it, with every revision's events. */
export class Model {
  revision = 1;
  compactRevision = -1;
  readonly live = new Map<string, ModelKv>();
  readonly history = new Map<number, ModelEvent[]>();

  /** Applies one write transaction; returns its revision (unchanged if it changed nothing). */
  apply(ops: ModelOp[]): number {
    const revision = this.revision + 1;
    const events: ModelEvent[] = [];
    for (const op of ops) {
      if ("put" in op) {
        const [key, value] = op.put;
        const before = this.live.get(key);
        const kv = {
          value,
          createRevision: before?.createRevision ?? revision,
          modRevision: revision,
          version: (before?.version ?? 0) + 1,
        };
        this.live.set(key, kv);
        events.push({ type: "PUT", key, kv, prevKv: before });
      } else {
        const [key, end] = op.del;
        const keys = [...this.live.keys()].filter((k) => inRange(k, key, end)).sort(compareKeys);
        for (const k of keys) {
          const before = this.live.get(k);
          this.live.delete(k);
          events.push({ type: "DELETE", key: k, kv: { value: "", createRevision: 0, modRevision: revision, version: 0 }, prevKv: before });
        }
      }
    }
    if (events.length === 0) return this.revision;
    this.revision = revision;
    this.history.set(revision, events);
    return revision;
  }

  /** The events a watcher must get from `start` through `through`, filters applied. */
  expected(spec: WatcherSpec, start: number, through: number): ModelEvent[] {
    const events: ModelEvent[] = [];
    for (let revision = start; revision <= through; revision++) {
      for (const event of this.history.get(revision) ?? []) {
        if (!inRange(event.key, spec.key, spec.end)) continue;
        if (spec.noPut && event.type === "PUT") continue;
        if (spec.noDelete && event.type === "DELETE") continue;
        events.push(event);
      }
    }
    return events;
  }
}

/** end undefined: just key; "\0": every key >= key; else [key, end). */
export function inRange(k: string, key: string, end: string | undefined): boolean {
  if (end === undefined) return k === key;
  if (end === "\0") return k >= key;
  return k >= key && k < end;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface WatcherSpec {
  key: string;
  end: string | undefined;
  /** As requested; 0 = from now. */
  startRevision: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
}

const decoder = new TextDecoder();
const text = (value: Uint8Array) => decoder.decode(value);

function describeEvent(event: ModelEvent, withPrev: boolean): string {
  const { kv } = event;
  let line = `${kv.modRevision} ${event.type} ${event.key}=${kv.value} c${kv.createRevision} v${kv.version}`;
  if (withPrev && event.prevKv !== undefined) line += ` prev=${event.prevKv.value}@${event.prevKv.modRevision}`;
  return line;
}

function describeReceived(event: NonNullable<WatchResponse["events"][number]>, withPrev: boolean): string {
  const kv = event.kv!;
  let line = `${kv.modRevision} ${event.type === 0 ? "PUT" : "DELETE"} ${text(kv.key)}=${text(kv.value)} c${kv.createRevision} v${kv.version}`;
  if (withPrev && event.prevKv !== undefined) line += ` prev=${text(event.prevKv.value)}@${event.prevKv.modRevision}`;
  return line;
}

export interface CheckedWatcher {
  spec: WatcherSpec;
  watchId: bigint;
  /** header.revision of the created response. */
  createdRevision: number;
  /** Every response of the stream, in arrival order (all watchers, progress included). */
  streamResponses: WatchResponse[];
}

/**
 * Checks one watcher against the model up to `through` (a revision the
 * stream confirmed with a progress notification). Returns the revision of the
 * last event received, or the start revision - 1.
 */
export function checkWatcher(model: Model, watcher: CheckedWatcher, through: number, label: string): { lastRevision: number; canceledAt?: number } {
  const { spec } = watcher;
  const start = spec.startRevision === 0 ? watcher.createdRevision + 1 : spec.startRevision;
  const mine = watcher.streamResponses.filter((response) => response.watchId === watcher.watchId && !response.created);
  const canceled = mine.find((response) => response.canceled);
  if (canceled !== undefined) {
    // Only compaction cancels a watcher here; it must have been below the compact revision.
    assert.ok(canceled.compactRevision > 0n, `${label}: canceled without compact_revision`);
    assert.ok(start < Number(canceled.compactRevision), `${label}: canceled although start ${start} >= compact ${canceled.compactRevision}`);
    assert.equal(mine.at(-1), canceled, `${label}: a response after the cancel`);
  }

  // Atomic: all events of one revision in one response; ordered and unique across responses.
  const seenRevisions = new Set<number>();
  let lastRevision = start - 1;
  for (const response of mine) {
    const inThis = new Set<number>();
    for (const event of response.events) {
      const revision = Number(event.kv!.modRevision);
      assert.ok(revision >= lastRevision, `${label}: revision ${revision} after ${lastRevision} (ordered)`);
      if (!inThis.has(revision)) assert.ok(!seenRevisions.has(revision), `${label}: revision ${revision} split across responses (atomic)`);
      inThis.add(revision);
      lastRevision = revision;
    }
    for (const revision of inThis) seenRevisions.add(revision);
  }

  const received = mine.flatMap((response) => response.events);
  const expectedThrough = canceled !== undefined ? lastRevision : through;
  const expected = model.expected(spec, start, expectedThrough);
  // prev_kv of a revision whose previous one was compacted may be missing (etcd reads it at send time).
  const actualLines = received.map((event) => {
    const prevReadable = Number(event.kv!.modRevision) - 1 >= model.compactRevision;
    return describeReceived(event, spec.prevKv && prevReadable);
  });
  const expectedLines = expected.map((event) => {
    const isCreate = event.type === "PUT" && event.kv.createRevision === event.kv.modRevision;
    const prevReadable = event.kv.modRevision - 1 >= model.compactRevision;
    return describeEvent({ ...event, prevKv: isCreate ? undefined : event.prevKv }, spec.prevKv && prevReadable);
  });
  // Exact equality covers reliable (no gaps), unique, filters, IsCreate (create_revision == mod_revision iff absent) and prev_kv.
  assert.deepEqual(actualLines, expectedLines, `${label}: events from ${start} through ${expectedThrough}`);
  if (!spec.prevKv) assert.ok(received.every((event) => event.prevKv === undefined), `${label}: prev_kv without asking`);
  return canceled !== undefined ? { lastRevision, canceledAt: Number(canceled.compactRevision) } : { lastRevision };
}

/**
 * Bookmarkable: after a progress notification at P on a stream, no event <= P
 * arrives, and every watcher of the stream already has all its events <= P.
 */
export function checkProgress(model: Model, watchers: CheckedWatcher[], responses: WatchResponse[], label: string): number {
  let progressCount = 0;
  // Per watcher: the newest progress revision it saw after being created.
  const bookmarks = new Map<bigint, number>();
  const created = new Set<bigint>();
  for (const [index, response] of responses.entries()) {
    if (response.created) {
      created.add(response.watchId);
      continue;
    }
    const isProgress = !response.canceled && response.events.length === 0 && response.compactRevision === 0n;
    if (isProgress && response.watchId === -1n) {
      const revision = Number(response.header!.revision);
      progressCount++;
      for (const id of created) bookmarks.set(id, Math.max(bookmarks.get(id) ?? 0, revision));
      for (const watcher of watchers) {
        if (!created.has(watcher.watchId)) continue;
        if (responses.slice(0, index).some((r) => r.watchId === watcher.watchId && r.canceled)) continue;
        const start = watcher.spec.startRevision === 0 ? watcher.createdRevision + 1 : watcher.spec.startRevision;
        if (start < model.compactRevision) continue;
        const owed = model.expected(watcher.spec, start, revision).length;
        const got = responses
          .slice(0, index)
          .filter((r) => r.watchId === watcher.watchId && !r.created)
          .reduce((sum, r) => sum + r.events.length, 0);
        assert.equal(got, owed, `${label}: progress at ${revision} sent before watcher ${watcher.watchId} had all its events`);
      }
      continue;
    }
    if (response.canceled) created.delete(response.watchId);
    const bookmark = bookmarks.get(response.watchId) ?? 0;
    for (const event of response.events) {
      const revision = Number(event.kv!.modRevision);
      assert.ok(revision > bookmark, `${label}: watcher ${response.watchId} got an event at ${revision} after a progress notification at ${bookmark}`);
    }
  }
  return progressCount;
}
