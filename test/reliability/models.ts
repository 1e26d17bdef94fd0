// Sequential specifications for the linearizability checker:
//  - a per-key versioned register (Jepsen's etcd register workload: read, write,
//    compare-and-set; value, version and mod revision as etcd reports them),
//    partitioned by key;
//  - an etcd model with one global revision (range at a revision, put, delete,
//    txn with compares, lease grant/revoke, compact), which cannot be split.
// Both are non-deterministic for writes whose outcome the client does not know:
// such a write leads to two states, applied and not applied, and the checker
// keeps the set (powersetModel), as etcd's robustness model does.
import { powersetModel, type Model, type NondeterministicModel, type Operation } from "./porcupine.ts";

// ---------------------------------------------------------------------------
// Hashing: a 64-bit chain over the writes a state has seen.

function fnv32(text: string, seed: number): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Extends a digest with one more applied change; equal digests mean the same change sequence. */
function chain(digest: string, change: string): string {
  const text = `${digest}\u0000${change}`;
  return fnv32(text, 0x811c9dc5).toString(16).padStart(8, "0") + fnv32(text, 0x3b9aca07).toString(16).padStart(8, "0");
}

// ---------------------------------------------------------------------------
// Per-key versioned register.

export type RegisterInput =
  | { type: "read"; key: string }
  | { type: "write"; key: string; value: string }
  /** Compare-and-set on the value (etcd txn: compare value = expected, then put). */
  | { type: "cas"; key: string; expected: string; value: string };

export type RegisterOutput =
  | { type: "unknown" }
  /** value null when the key is absent (then version and modRevision are 0). */
  | { type: "read"; value: string | null; version: number; modRevision: number }
  | { type: "write"; revision: number }
  | { type: "cas"; succeeded: boolean; revision: number };

export interface RegisterState {
  value: string | null;
  version: number;
  /** The last mod revision the history revealed. */
  modRevision: number;
  /** A write whose revision nobody saw was applied since: the next one seen must be larger. */
  modRevisionPending: boolean;
}

function registerApply(state: RegisterState, value: string, revision: number | undefined): RegisterState {
  return revision === undefined
    ? { value, version: state.version + 1, modRevision: state.modRevision, modRevisionPending: true }
    : { value, version: state.version + 1, modRevision: revision, modRevisionPending: false };
}

/** A write must land after the last one: its revision is larger than every revision seen for the key. */
function revisionFits(state: RegisterState, revision: number): boolean {
  return revision > state.modRevision;
}

export const registerNondeterministicModel: NondeterministicModel<RegisterState, RegisterInput, RegisterOutput> = {
  init: () => [{ value: null, version: 0, modRevision: 0, modRevisionPending: false }],
  step(state, input, output) {
    if (output.type === "unknown") {
      if (input.type === "read") return [state];
      if (input.type === "cas" && state.value !== input.expected) return [state];
      return [state, registerApply(state, input.value, undefined)];
    }
    switch (input.type) {
      case "read": {
        if (output.type !== "read" || output.value !== state.value || output.version !== state.version) return [];
        if (state.modRevisionPending) {
          if (!revisionFits(state, output.modRevision)) return [];
          return [{ ...state, modRevision: output.modRevision, modRevisionPending: false }];
        }
        return output.modRevision === state.modRevision ? [state] : [];
      }
      case "write":
        if (output.type !== "write" || !revisionFits(state, output.revision)) return [];
        return [registerApply(state, input.value, output.revision)];
      case "cas": {
        if (output.type !== "cas") return [];
        const succeeds = state.value === input.expected;
        if (output.succeeded !== succeeds) return [];
        if (!succeeds) return output.revision >= state.modRevision ? [state] : [];
        if (!revisionFits(state, output.revision)) return [];
        return [registerApply(state, input.value, output.revision)];
      }
    }
  },
  hash: (state) => `${state.value}|${state.version}|${state.modRevision}|${state.modRevisionPending ? 1 : 0}`,
  equal: (a, b) =>
    a.value === b.value && a.version === b.version && a.modRevision === b.modRevision && a.modRevisionPending === b.modRevisionPending,
  partition: (history) => partitionBy(history, (input) => input.key),
  describeOperation: (input, output) => `${JSON.stringify(input)} -> ${JSON.stringify(output)}`,
  describeState: (state) => JSON.stringify(state),
};

export const registerModel: Model<readonly RegisterState[], RegisterInput, RegisterOutput> = powersetModel(registerNondeterministicModel);

function partitionBy<I, O>(history: readonly Operation<I, O>[], keyOf: (input: I) => string): Operation<I, O>[][] {
  const groups = new Map<string, Operation<I, O>[]>();
  for (const operation of history) {
    const key = keyOf(operation.input);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [operation]);
    else group.push(operation);
  }
  return [...groups.values()];
}

// ---------------------------------------------------------------------------
// The etcd model.

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** 0 when no lease is attached. */
  lease: number;
}

/** rangeEnd as etcd reads it: absent = the key alone, "\0" = every key from `key` on. */
export type RangeOp = { type: "range"; key: string; rangeEnd?: string; revision?: number };
export type PutOp = { type: "put"; key: string; value: string; lease?: number };
export type DeleteOp = { type: "delete"; key: string; rangeEnd?: string };
export type TxnOp = RangeOp | PutOp | DeleteOp;

export interface Compare {
  key: string;
  target: "value" | "version" | "create" | "mod";
  result: "=" | "!=" | ">" | "<";
  /** A string for value, a number for the others. */
  operand: string | number;
}

export type EtcdRequest =
  | RangeOp
  | PutOp
  | DeleteOp
  | { type: "txn"; compares: Compare[]; success: TxnOp[]; failure: TxnOp[] }
  | { type: "leaseGrant"; lease: number; ttl: number }
  | { type: "leaseRevoke"; lease: number }
  | { type: "compact"; revision: number };

export type EtcdErrorName = "compacted" | "futureRevision" | "leaseNotFound" | "leaseExists";

export type TxnOpResult =
  | { type: "range"; kvs: KeyValue[]; count: number }
  | { type: "put" }
  | { type: "delete"; deleted: number };

export type EtcdResponse =
  /** The request failed in a way that leaves its effect unknown (timeout, unavailable, connection lost). */
  | { type: "unknown" }
  /** One of etcd's definite errors: the request had no effect. */
  | { type: "error"; error: EtcdErrorName }
  | { type: "range"; revision: number; kvs: KeyValue[]; count: number }
  | { type: "put"; revision: number }
  | { type: "delete"; revision: number; deleted: number }
  | { type: "txn"; revision: number; succeeded: boolean; results: TxnOpResult[] }
  | { type: "leaseGrant" }
  | { type: "leaseRevoke"; revision: number }
  | { type: "compact" };

/** One applied revision's pre-images, newest first, so a range at an older revision can be answered. */
interface RevisionUndo {
  revision: number;
  before: Map<string, KeyValue | undefined>;
  older: RevisionUndo | undefined;
}

export interface EtcdState {
  revision: number;
  compactRevision: number;
  kvs: ReadonlyMap<string, KeyValue>;
  /** lease id → keys attached to it. */
  leases: ReadonlyMap<number, ReadonlySet<string>>;
  undo: RevisionUndo | undefined;
  /** The chain of every revision's changes since init: the whole key history, in 64 bits. */
  historyDigest: string;
  /**
   * Identity of the state: revision, compact revision, key history and live
   * leases. It depends on what the state is, not on the order of the changes
   * that led there (a lease grant before or after a put gives the same state),
   * or the checker would see a new state for every such order.
   */
  digest: string;
}

function withDigest(state: Omit<EtcdState, "digest">): EtcdState {
  const leases = [...state.leases.keys()].sort((a, b) => a - b).join(",");
  return { ...state, digest: `${state.revision}/${state.compactRevision}/${state.historyDigest}/${leases}` };
}

export function initialEtcdState(): EtcdState {
  return withDigest({ revision: 1, compactRevision: 0, kvs: new Map(), leases: new Map(), undo: undefined, historyDigest: "init" });
}

function inRange(key: string, start: string, end: string | undefined): boolean {
  if (end === undefined || end === "") return key === start;
  if (end === "\0") return key >= start;
  return key >= start && key < end;
}

/** The key-values as of `revision` (which must not be compacted or in the future). */
function kvsAt(state: EtcdState, revision: number): ReadonlyMap<string, KeyValue> {
  if (revision <= 0 || revision >= state.revision) return state.kvs;
  const view = new Map(state.kvs);
  for (let undo = state.undo; undo !== undefined && undo.revision > revision; undo = undo.older) {
    for (const [key, before] of undo.before) {
      if (before === undefined) view.delete(key);
      else view.set(key, before);
    }
  }
  return view;
}

function rangeOf(kvs: ReadonlyMap<string, KeyValue>, op: { key: string; rangeEnd?: string }): KeyValue[] {
  return [...kvs.values()].filter((kv) => inRange(kv.key, op.key, op.rangeEnd)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A write transaction in progress: copies the maps on first change. */
class Writer {
  kvs: Map<string, KeyValue>;
  leases: Map<number, Set<string>>;
  before = new Map<string, KeyValue | undefined>();
  changed = false;
  readonly revision: number;
  constructor(readonly state: EtcdState) {
    this.kvs = state.kvs as Map<string, KeyValue>;
    this.leases = state.leases as Map<number, Set<string>>;
    this.revision = state.revision + 1;
  }
  private touch(key: string): void {
    if (!this.changed) {
      this.changed = true;
      this.kvs = new Map(this.kvs);
      this.leases = new Map(this.leases);
    }
    if (!this.before.has(key)) this.before.set(key, this.kvs.get(key));
  }
  private detach(kv: KeyValue | undefined): void {
    if (kv === undefined || kv.lease === 0) return;
    const keys = this.leases.get(kv.lease);
    if (keys === undefined) return;
    const copy = new Set(keys);
    copy.delete(kv.key);
    this.leases.set(kv.lease, copy);
  }
  put(op: PutOp): void {
    this.touch(op.key);
    const old = this.kvs.get(op.key);
    this.detach(old);
    const lease = op.lease ?? 0;
    this.kvs.set(op.key, {
      key: op.key,
      value: op.value,
      createRevision: old?.createRevision ?? this.revision,
      modRevision: this.revision,
      version: (old?.version ?? 0) + 1,
      lease,
    });
    if (lease !== 0) this.leases.set(lease, new Set(this.leases.get(lease)).add(op.key));
  }
  delete(op: { key: string; rangeEnd?: string }): number {
    const doomed = rangeOf(this.kvs, op);
    for (const kv of doomed) {
      this.touch(kv.key);
      this.detach(kv);
      this.kvs.delete(kv.key);
    }
    return doomed.length;
  }
  /** The state after the transaction: one new revision if anything changed. */
  finish(): EtcdState {
    if (!this.changed) return this.state;
    const effect = [...this.before.keys()].sort().map((key) => {
      const kv = this.kvs.get(key);
      return kv === undefined ? `${key}:deleted` : `${key}:${kv.value}:${kv.lease}`;
    });
    return withDigest({
      revision: this.revision,
      compactRevision: this.state.compactRevision,
      kvs: this.kvs,
      leases: this.leases,
      undo: { revision: this.revision, before: this.before, older: this.state.undo },
      historyDigest: chain(this.state.historyDigest, `${this.revision} ${effect.join(" ")}`),
    });
  }
}

function compareHolds(kvs: ReadonlyMap<string, KeyValue>, compare: Compare): boolean {
  const kv = kvs.get(compare.key);
  // etcd: a value compare on a missing key is false; the numeric targets compare against 0.
  if (kv === undefined && compare.target === "value") return false;
  const actual: string | number =
    compare.target === "value" ? (kv as KeyValue).value
    : compare.target === "version" ? (kv?.version ?? 0)
    : compare.target === "create" ? (kv?.createRevision ?? 0)
    : (kv?.modRevision ?? 0);
  const operand = compare.operand;
  switch (compare.result) {
    case "=": return actual === operand;
    case "!=": return actual !== operand;
    case ">": return actual > operand;
    case "<": return actual < operand;
  }
}

function leaseMissing(state: EtcdState, ops: readonly TxnOp[]): boolean {
  return ops.some((op) => op.type === "put" && (op.lease ?? 0) !== 0 && !state.leases.has(op.lease as number));
}

/** etcd's sequential semantics: the state after `request` and the response it gives. */
export function applyEtcd(state: EtcdState, request: EtcdRequest): { state: EtcdState; response: EtcdResponse } {
  const error = (name: EtcdErrorName) => ({ state, response: { type: "error", error: name } as EtcdResponse });
  switch (request.type) {
    case "range": {
      const revision = request.revision ?? 0;
      if (revision > state.revision) return error("futureRevision");
      if (revision > 0 && revision < state.compactRevision) return error("compacted");
      const kvs = rangeOf(kvsAt(state, revision), request);
      return { state, response: { type: "range", revision: state.revision, kvs, count: kvs.length } };
    }
    case "put": {
      if (leaseMissing(state, [request])) return error("leaseNotFound");
      const writer = new Writer(state);
      writer.put(request);
      const next = writer.finish();
      return { state: next, response: { type: "put", revision: next.revision } };
    }
    case "delete": {
      const writer = new Writer(state);
      const deleted = writer.delete(request);
      const next = writer.finish();
      return { state: next, response: { type: "delete", revision: next.revision, deleted } };
    }
    case "txn": {
      const succeeded = request.compares.every((compare) => compareHolds(state.kvs, compare));
      const ops = succeeded ? request.success : request.failure;
      if (leaseMissing(state, ops)) return error("leaseNotFound");
      const writer = new Writer(state);
      const results: TxnOpResult[] = ops.map((op) => {
        if (op.type === "put") {
          writer.put(op);
          return { type: "put" };
        }
        if (op.type === "delete") return { type: "delete", deleted: writer.delete(op) };
        const kvs = rangeOf(writer.kvs, op);
        return { type: "range", kvs, count: kvs.length };
      });
      const next = writer.finish();
      return { state: next, response: { type: "txn", revision: next.revision, succeeded, results } };
    }
    case "leaseGrant": {
      if (state.leases.has(request.lease)) return error("leaseExists");
      const leases = new Map(state.leases).set(request.lease, new Set<string>());
      return { state: withDigest({ ...state, leases }), response: { type: "leaseGrant" } };
    }
    case "leaseRevoke": {
      const keys = state.leases.get(request.lease);
      if (keys === undefined) return error("leaseNotFound");
      const writer = new Writer(state);
      for (const key of [...keys].sort()) writer.delete({ key });
      const afterDeletes = writer.finish();
      const leases = new Map(afterDeletes.leases);
      leases.delete(request.lease);
      const next = withDigest({ ...afterDeletes, leases });
      return { state: next, response: { type: "leaseRevoke", revision: next.revision } };
    }
    case "compact": {
      if (request.revision <= state.compactRevision) return error("compacted");
      if (request.revision > state.revision) return error("futureRevision");
      const next = withDigest({ ...state, compactRevision: request.revision });
      return { state: next, response: { type: "compact" } };
    }
  }
}

function sameKvs(a: readonly KeyValue[], b: readonly KeyValue[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as KeyValue;
      return (
        x.key === y.key && x.value === y.value && x.createRevision === y.createRevision &&
        x.modRevision === y.modRevision && x.version === y.version && x.lease === y.lease
      );
    })
  );
}

function sameTxnResult(a: TxnOpResult, b: TxnOpResult): boolean {
  if (a.type !== b.type) return false;
  if (a.type === "range" && b.type === "range") return a.count === b.count && sameKvs(a.kvs, b.kvs);
  if (a.type === "delete" && b.type === "delete") return a.deleted === b.deleted;
  return true;
}

/** Does the observed response equal the one the model gives? */
export function sameResponse(expected: EtcdResponse, observed: EtcdResponse): boolean {
  switch (expected.type) {
    case "unknown":
      return observed.type === "unknown";
    case "error":
      return observed.type === "error" && observed.error === expected.error;
    case "range":
      return observed.type === "range" && observed.revision === expected.revision && observed.count === expected.count && sameKvs(observed.kvs, expected.kvs);
    case "put":
      return observed.type === "put" && observed.revision === expected.revision;
    case "delete":
      return observed.type === "delete" && observed.revision === expected.revision && observed.deleted === expected.deleted;
    case "txn":
      return (
        observed.type === "txn" && observed.revision === expected.revision && observed.succeeded === expected.succeeded &&
        observed.results.length === expected.results.length &&
        observed.results.every((result, i) => sameTxnResult(expected.results[i] as TxnOpResult, result))
      );
    case "leaseGrant":
      return observed.type === "leaseGrant";
    case "leaseRevoke":
      return observed.type === "leaseRevoke" && observed.revision === expected.revision;
    case "compact":
      return observed.type === "compact";
  }
}

/** A cheap test before applying: a response reports the current revision or the next one. */
function revisionPossible(state: EtcdState, observed: EtcdResponse): boolean {
  switch (observed.type) {
    case "range":
      return observed.revision === state.revision;
    case "put":
      return observed.revision === state.revision + 1;
    case "delete":
    case "txn":
    case "leaseRevoke":
      return observed.revision === state.revision || observed.revision === state.revision + 1;
    default:
      return true;
  }
}

export function isReadOnly(request: EtcdRequest): boolean {
  if (request.type === "range") return true;
  if (request.type === "txn") return [...request.success, ...request.failure].every((op) => op.type === "range");
  return false;
}

/**
 * The etcd model. A write whose outcome is unknown (its return is +Infinity)
 * leads to the set {applied, not applied}, as etcd's robustness model keeps
 * it. With `neverAppliedBranch: false` only "applied" is kept: a write that
 * never took effect is then the same as one placed after everything else
 * (nothing observes it), which the search can always do since the return is
 * at +Infinity; that avoids doubling the search for every failed write still
 * pending, and is what the long runs use.
 */
export function makeEtcdModel(options: { neverAppliedBranch: boolean }): NondeterministicModel<EtcdState, EtcdRequest, EtcdResponse> {
  return {
    init: () => [initialEtcdState()],
    step(state, request, observed) {
      if (!revisionPossible(state, observed)) return [];
      const { state: next, response } = applyEtcd(state, request);
      if (observed.type === "unknown") return next === state || !options.neverAppliedBranch ? [next] : [state, next];
      return sameResponse(response, observed) ? [next] : [];
    },
    hash: (state) => state.digest,
    equal: (a, b) => a.digest === b.digest,
    describeOperation: (request, response) => `${describeRequest(request)} -> ${JSON.stringify(response)}`,
    describeState: (state) =>
      `rev ${state.revision} compact ${state.compactRevision} {${[...state.kvs.values()].map((kv) => `${kv.key}=${kv.value}@${kv.modRevision}`).join(", ")}}`,
  };
}

export const etcdNondeterministicModel = makeEtcdModel({ neverAppliedBranch: true });

/** The etcd model whose failed writes may be applied or not (a set of states). */
export const etcdModel: Model<readonly EtcdState[], EtcdRequest, EtcdResponse> = powersetModel(etcdNondeterministicModel);

/** The etcd model whose failed writes take effect at some point after their call (never = last). */
export const etcdModelAppliedLast: Model<readonly EtcdState[], EtcdRequest, EtcdResponse> = powersetModel(makeEtcdModel({ neverAppliedBranch: false }));

export function describeRequest(request: EtcdRequest): string {
  return JSON.stringify(request).replaceAll("\\u0000", "\\0");
}

/**
 * Makes a recorded etcd history cheaper to check without changing its verdict:
 *  - a failed request that cannot change anything (a read, a read-only txn) is
 *    dropped, as is a failed lease grant whose lease no other request names:
 *    nothing could observe either;
 *  - a failed write whose unique value some read returned took effect before
 *    that read returned, so its return time becomes that read's.
 * Every written value is unique, so a value names the write that wrote it.
 */
export function prepareEtcdHistory(history: readonly Operation<EtcdRequest, EtcdResponse>[]): Operation<EtcdRequest, EtcdResponse>[] {
  const leasesNamed = new Set<number>();
  const firstSeen = new Map<string, number>();
  const see = (kvs: readonly KeyValue[], at: number) => {
    for (const kv of kvs) firstSeen.set(kv.value, Math.min(firstSeen.get(kv.value) ?? Infinity, at));
  };
  for (const operation of history) {
    const { input, output } = operation;
    if (input.type === "put" && input.lease !== undefined) leasesNamed.add(input.lease);
    if (input.type === "leaseRevoke") leasesNamed.add(input.lease);
    if (input.type === "txn") for (const op of [...input.success, ...input.failure]) if (op.type === "put" && op.lease !== undefined) leasesNamed.add(op.lease);
    if (output.type === "range") see(output.kvs, operation.return);
    if (output.type === "txn") for (const result of output.results) if (result.type === "range") see(result.kvs, operation.return);
  }
  const writtenValues = (input: EtcdRequest): string[] => {
    if (input.type === "put") return [input.value];
    if (input.type === "txn") return [...input.success, ...input.failure].flatMap((op) => (op.type === "put" ? [op.value] : []));
    return [];
  };
  const prepared: Operation<EtcdRequest, EtcdResponse>[] = [];
  for (const operation of history) {
    if (operation.output.type !== "unknown") {
      prepared.push(operation);
      continue;
    }
    const { input } = operation;
    if (isReadOnly(input)) continue;
    if (input.type === "leaseGrant" && !leasesNamed.has(input.lease)) continue;
    // A txn writes one of its branches; only a put (one value) pins the time.
    const values = input.type === "put" ? writtenValues(input) : [];
    const seenAt = Math.min(...values.map((value) => firstSeen.get(value) ?? Infinity));
    prepared.push(seenAt < Infinity ? { ...operation, return: Math.max(operation.call, seenAt) } : operation);
  }
  return prepared;
}
