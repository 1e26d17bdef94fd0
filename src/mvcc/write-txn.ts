// A write transaction (etcd's storeTxnWrite): every change inside it shares
// main revision begin+1 and takes the next sub revision. Reads inside it see
// its own earlier changes (the key index is updated at once and the backend
// reads through the open SQLite transaction). `end()` publishes the revision.
import type { Event, KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { assert, EtcdError } from "../errors.ts";
import type { FoundRevision } from "./key-index.ts";
import { newFoundRevision } from "./key-index.ts";
import { deletedKeyValue, eventDelete, eventPut, type RangeOptions, type RangeResult } from "./kv.ts";
import type { Backend } from "../storage/backend.ts";
import type { KeyIndex } from "./key-index.ts";

const emptyBytes = new Uint8Array(0);

/** What a write transaction needs of its store (MvccStore; named here so the two do not import each other). */
export interface WriteTxnStore {
  readonly index: KeyIndex;
  readonly backend: Backend;
  rangeAt(key: Uint8Array, end: Uint8Array | undefined, currentRevision: number, options: RangeOptions): RangeResult;
  /** Publishes a transaction's events; returns the store's revision after it. */
  finishWrite(events: Event[]): number;
}

export class WriteTxn {
  /** The changes so far, as the events watchers will receive. */
  readonly events: Event[] = [];
  private ended = false;
  private readonly found: FoundRevision = newFoundRevision();

  constructor(
    private readonly store: WriteTxnStore,
    /** The store's revision when the transaction began; changes go to beginRevision+1. */
    readonly beginRevision: number,
  ) {}

  /** The revision reads inside the transaction see: begin+1 once something changed. */
  get readRevision(): number {
    return this.events.length > 0 ? this.beginRevision + 1 : this.beginRevision;
  }

  /** The revision a response reports: the txn's revision if it changed something, else the begin one. */
  get revision(): number {
    return this.readRevision;
  }

  range(key: Uint8Array, end: Uint8Array | undefined, options: RangeOptions = {}): RangeResult {
    return this.store.rangeAt(key, end, this.readRevision, options);
  }

  /** Puts `key`; returns the revision it was written at. `prevKv` is attached to the event when the caller has it. */
  put(key: Uint8Array, value: Uint8Array, lease: bigint, prevKv?: KeyValue): number {
    assert(!this.ended, "put on an ended write txn");
    const main = this.beginRevision + 1;
    const sub = this.events.length;
    let createRevision = main;
    let version = 1;
    if (this.store.index.get(key, main, this.found)) {
      createRevision = this.found.createRevision;
      version = this.found.version + 1;
    }
    this.store.backend.putKv(main, sub, key, value, createRevision, version, lease, false);
    this.store.index.put(key, main, sub);
    const kv: KeyValue = {
      $typeName: "mvccpb.KeyValue",
      key,
      createRevision: BigInt(createRevision),
      modRevision: BigInt(main),
      version: BigInt(version),
      value,
      lease,
    };
    this.events.push(
      prevKv === undefined
        ? { $typeName: "mvccpb.Event", type: eventPut, kv }
        : { $typeName: "mvccpb.Event", type: eventPut, kv, prevKv },
    );
    return main;
  }

  /**
   * Deletes every live key in [key, end) (see KeyIndex.visit for `end`);
   * returns how many. `prevKvs`, when given, are the deleted keys' values in
   * key order, attached to the events.
   */
  deleteRange(key: Uint8Array, end: Uint8Array | undefined, prevKvs?: KeyValue[]): number {
    assert(!this.ended, "deleteRange on an ended write txn");
    const keys: Uint8Array[] = [];
    this.store.index.visit(key, end, this.readRevision, (history) => keys.push(history.key));
    const main = this.beginRevision + 1;
    for (let i = 0; i < keys.length; i++) {
      const deletedKey = keys[i] as Uint8Array;
      const sub = this.events.length;
      this.store.backend.putKv(main, sub, deletedKey, emptyBytes, 0, 0, 0n, true);
      const live = this.store.index.tombstone(deletedKey, main, sub);
      assert(live, "tombstone of a key that is not live");
      const prevKv = prevKvs?.[i];
      const kv = deletedKeyValue(deletedKey, main);
      this.events.push(
        prevKv === undefined
          ? { $typeName: "mvccpb.Event", type: eventDelete, kv }
          : { $typeName: "mvccpb.Event", type: eventDelete, kv, prevKv },
      );
    }
    return keys.length;
  }

  /** Ends the transaction; returns the store's revision after it. */
  end(): number {
    assert(!this.ended, "write txn ended twice");
    this.ended = true;
    return this.store.finishWrite(this.events);
  }

  /**
   * Ends a transaction whose work threw, and throws. An operating error
   * (etcd's, checked before the first change) ends it with nothing changed
   * and goes to the client. Anything else, or any error after a change, is a
   * bug: half a transaction is never published, and the error that stops the
   * member says so.
   */
  abandon(error: unknown): never {
    assert(!this.ended, "write txn ended twice");
    this.ended = true;
    if (error instanceof EtcdError && this.events.length === 0) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`assertion failed: a write transaction threw after ${this.events.length} change(s), unpublished: ${detail}`, { cause: error });
  }

  /** Runs `work` in this transaction and ends it: published if `work` returns, abandoned if it throws. */
  run<T>(work: (txn: WriteTxn) => T): T {
    let result: T;
    try {
      result = work(this);
    } catch (error) {
      this.abandon(error);
    }
    this.end();
    return result;
  }
}
