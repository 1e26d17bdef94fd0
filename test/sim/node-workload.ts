// The clients of the whole-node simulation. They call the server's own
// methods (put, range, txn, deleteRange, compact) on a random live member,
// with unique values, and check what can be checked as answers arrive:
//   - a response's header revision never goes back: an operation that starts
//     after another completed answers with a revision at least as high;
//   - a linearizable read of a key whose put was acknowledged before the read
//     started finds that value.
// Keys under `set/` are written once and never deleted: at the end each
// acknowledged one must be present on every member. Keys under `reg/` are
// overwritten, deleted and compared in txns, and are checked by HashKV.

import { create } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  CompareSchema,
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  RequestOpSchema,
  TxnRequestSchema,
  type ResponseHeader,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../../src/server/etcd-server.ts";
import type { Prng } from "../../runtime/sim/prng.ts";
import type { Trace } from "./trace.ts";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const registerKeys = 8;

export interface WorkloadTarget {
  name: string;
  /** Which incarnation of the member: operations sent to a crashed one are abandoned. */
  incarnation: number;
  server: EtcdServer;
}

export class NodeWorkload {
  /** set/ key → its value, for every acknowledged put. */
  readonly acknowledged = new Map<string, string>();
  /** The highest revision any completed operation answered with. */
  private revisionSeen = 0;
  private nextValue = 0;
  /** Operations without an answer yet, by id, with the incarnation they went to. */
  private readonly inFlight = new Map<number, string>();
  private nextOperation = 0;
  readonly inFlightMax = 16;
  writesAcknowledged = 0;
  writesFailed = 0;
  readsChecked = 0;
  compactions = 0;
  violation: string | undefined;

  constructor(
    private readonly seed: number,
    private readonly random: Prng,
    private readonly trace: Trace,
  ) {}

  get highestRevision(): number {
    return this.revisionSeen;
  }

  /** Starts one random operation against `target` (if not too many are in flight). */
  issue(target: WorkloadTarget): void {
    if (this.inFlight.size >= this.inFlightMax) return;
    const roll = this.random.int(100);
    if (roll < 45) this.putUnique(target);
    else if (roll < 65) this.putRegister(target);
    else if (roll < 75) this.txnRegister(target);
    else if (roll < 80) this.deleteRegister(target);
    else if (roll < 97) this.readBack(target);
    else this.compact(target);
  }

  private value(): string {
    return `s${this.seed}-v${this.nextValue++}`;
  }

  private track<T extends { header?: ResponseHeader }>(
    target: WorkloadTarget,
    what: string,
    operation: () => Promise<T>,
    onOk: (response: T) => void,
    isWrite: boolean,
  ): void {
    const floor = this.revisionSeen;
    const id = this.nextOperation++;
    this.inFlight.set(id, `${target.name}#${target.incarnation}`);
    let promise: Promise<T>;
    try {
      promise = operation();
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (response) => {
        this.inFlight.delete(id);
        const revision = Number(response.header?.revision ?? 0n);
        if (revision < floor) {
          this.fail(`${what} on ${target.name} answered revision ${revision}, but revision ${floor} was answered before it started`);
        }
        this.revisionSeen = Math.max(this.revisionSeen, revision);
        if (isWrite) this.writesAcknowledged++;
        onOk(response);
      },
      (error: unknown) => {
        this.inFlight.delete(id);
        if (isWrite) this.writesFailed++;
        this.trace.add(`${target.name} ${what}: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  }

  /** Forgets operations whose member crashed: they will never answer (their outcome stays unknown). */
  abandon(name: string, incarnation: number): void {
    const key = `${name}#${incarnation}`;
    for (const [id, target] of this.inFlight) if (target === key) this.inFlight.delete(id);
  }

  private putUnique(target: WorkloadTarget): void {
    const value = this.value();
    const key = `set/${value}`;
    this.track(
      target,
      `put ${key}`,
      () => target.server.put(create(PutRequestSchema, { key: textEncoder.encode(key), value: textEncoder.encode(value) })),
      () => this.acknowledged.set(key, value),
      true,
    );
  }

  /** One more acknowledged put after heal (the liveness check); rejects if it fails. */
  finalPut(target: WorkloadTarget): Promise<void> {
    const value = this.value();
    const key = `set/${value}`;
    return new Promise((resolve, reject) => {
      this.track(
        target,
        `final put ${key}`,
        () =>
          target.server.put(create(PutRequestSchema, { key: textEncoder.encode(key), value: textEncoder.encode(value) })).catch((error: unknown) => {
            reject(error);
            throw error;
          }),
        () => {
          this.acknowledged.set(key, value);
          resolve();
        },
        true,
      );
    });
  }

  private registerKey(): string {
    return `reg/${this.random.int(registerKeys)}`;
  }

  private putRegister(target: WorkloadTarget): void {
    const key = this.registerKey();
    const value = this.value();
    this.track(
      target,
      `put ${key}`,
      () => target.server.put(create(PutRequestSchema, { key: textEncoder.encode(key), value: textEncoder.encode(value), prevKv: true })),
      () => {},
      true,
    );
  }

  private txnRegister(target: WorkloadTarget): void {
    const key = textEncoder.encode(this.registerKey());
    const other = textEncoder.encode(this.registerKey());
    const value = textEncoder.encode(this.value());
    const request = create(TxnRequestSchema, {
      compare: [
        create(CompareSchema, {
          key,
          target: Compare_CompareTarget.VERSION,
          result: Compare_CompareResult.GREATER,
          targetUnion: { case: "version", value: BigInt(this.random.int(4)) },
        }),
      ],
      success: [
        create(RequestOpSchema, { request: { case: "requestPut", value: create(PutRequestSchema, { key, value }) } }),
        create(RequestOpSchema, { request: { case: "requestDeleteRange", value: create(DeleteRangeRequestSchema, { key: other }) } }),
      ],
      failure: [create(RequestOpSchema, { request: { case: "requestPut", value: create(PutRequestSchema, { key: other, value }) } })],
    });
    this.track(target, "txn", () => target.server.txn(request), () => {}, true);
  }

  private deleteRegister(target: WorkloadTarget): void {
    const key = this.registerKey();
    const ranged = this.random.chance(0.3);
    const request = ranged
      ? create(DeleteRangeRequestSchema, { key: textEncoder.encode("reg/"), rangeEnd: textEncoder.encode("reg0") })
      : create(DeleteRangeRequestSchema, { key: textEncoder.encode(key) });
    this.track(target, `delete ${ranged ? "reg/*" : key}`, () => target.server.deleteRange(request), () => {}, true);
  }

  /** A linearizable read of an acknowledged set/ key must find it. */
  private readBack(target: WorkloadTarget): void {
    const keys = [...this.acknowledged.keys()];
    if (keys.length === 0) return this.putUnique(target);
    const key = this.random.pick(keys);
    const expected = this.acknowledged.get(key);
    this.track(
      target,
      `get ${key}`,
      () => target.server.range(create(RangeRequestSchema, { key: textEncoder.encode(key) })),
      (response) => {
        this.readsChecked++;
        const found = response.kvs[0];
        const value = found === undefined ? undefined : textDecoder.decode(found.value);
        if (value !== expected) this.fail(`linearizable get ${key} on ${target.name} found ${value ?? "nothing"}, but ${expected} was acknowledged before`);
      },
      false,
    );
  }

  private compact(target: WorkloadTarget): void {
    const revision = this.revisionSeen - this.random.between(5, 40);
    if (revision <= 1) return;
    this.track(
      target,
      `compact ${revision}`,
      () => target.server.compact(create(CompactionRequestSchema, { revision: BigInt(revision) })),
      () => {
        this.compactions++;
      },
      false,
    );
  }

  private fail(message: string): void {
    this.trace.add(`VIOLATION ${message}`);
    this.violation ??= message;
  }
}

/** Every set/ key a member holds, read locally (serializable), with the member's revision. */
export async function readSetKeys(server: EtcdServer): Promise<{ revision: number; values: Map<string, string> }> {
  const response = await server.range(
    create(RangeRequestSchema, { key: textEncoder.encode("set/"), rangeEnd: textEncoder.encode("set0"), serializable: true }),
  );
  const values = new Map<string, string>();
  for (const kv of response.kvs) values.set(textDecoder.decode(kv.key), textDecoder.decode(kv.value));
  return { revision: Number(response.header?.revision ?? 0n), values };
}
