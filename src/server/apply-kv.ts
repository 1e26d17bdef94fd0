// Applies KV requests to MVCC with etcd 3.4's semantics (etcdserver/apply.go):
// Range with its filters, sort and limit quirks; Put with prev_kv and the
// ignore_value / ignore_lease flags; DeleteRange; Txn with compares evaluated
// on the state before the txn, checks done before any write, and one revision
// for the whole txn; Compact. Synchronous: this is the apply hot path.
// Response headers carry the revision only; the server fills cluster id,
// member id and raft term.
import type {
  CompactionRequest,
  CompactionResponse,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { etcdError } from "../errors.ts";
import { compareBytes } from "../mvcc/key-bytes.ts";
import type { MvccStore } from "../mvcc/store.ts";
import type { WriteTxn } from "../mvcc/write-txn.ts";

// Enum values of etcdserverpb (written as numbers so this file needs no runtime import of src/gen).
const sortNone = 0;
const sortAscend = 1;
const sortDescend = 2;
const sortTargetKey = 0;
const sortTargetVersion = 1;
const sortTargetCreate = 2;
const sortTargetMod = 3;
const sortTargetValue = 4;
const compareEqual = 0;
const compareGreater = 1;
const compareLess = 2;
const compareNotEqual = 3;
const targetVersion = 0;
const targetCreate = 1;
const targetMod = 2;
const targetValue = 3;
const targetLease = 4;

const emptyBytes = new Uint8Array(0);

/**
 * etcd's range end conventions: empty = the single key (undefined here);
 * one zero byte = every key >= key (empty here); otherwise [key, rangeEnd).
 */
export function mvccRangeEnd(rangeEnd: Uint8Array): Uint8Array | undefined {
  if (rangeEnd.length === 0) return undefined;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return emptyBytes;
  return rangeEnd;
}

/** A txn whose success and failure ops are all ranges (etcd's isTxnReadonly; a nested txn counts as a write). */
export function isTxnReadOnly(request: TxnRequest): boolean {
  for (const op of request.success) if (op.request.case !== "requestRange") return false;
  for (const op of request.failure) if (op.request.case !== "requestRange") return false;
  return true;
}

function header(revision: number): ResponseHeader {
  return {
    $typeName: "etcdserverpb.ResponseHeader",
    clusterId: 0n,
    memberId: 0n,
    revision: BigInt(revision),
    raftTerm: 0n,
  };
}

export interface KvApplierOptions {
  /** When set, a put naming a lease this rejects fails with "lease not found". */
  leaseExists?: (leaseId: bigint) => boolean;
}

/** Operations seen by this member since it started, for etcd's etcd_mvcc_*_total metrics. */
export interface MvccCounts {
  ranges: number;
  puts: number;
  deletes: number;
  txns: number;
  putBytes: number;
}

export class KvApplier {
  /** Lease existence check, settable once the lessor exists. */
  leaseExists: ((leaseId: bigint) => boolean) | undefined;
  readonly counts: MvccCounts = { ranges: 0, puts: 0, deletes: 0, txns: 0, putBytes: 0 };

  constructor(
    readonly store: MvccStore,
    options: KvApplierOptions = {},
  ) {
    this.leaseExists = options.leaseExists;
  }

  // --- Range ------------------------------------------------------------

  range(request: RangeRequest, txn?: WriteTxn): RangeResponse {
    this.counts.ranges++;
    const sortOrderRequested: number = request.sortOrder;
    const sortTarget: number = request.sortTarget;
    const limitRequested = Number(request.limit);
    const minMod = request.minModRevision;
    const maxMod = request.maxModRevision;
    const minCreate = request.minCreateRevision;
    const maxCreate = request.maxCreateRevision;
    const filtered = minMod !== 0n || maxMod !== 0n || minCreate !== 0n || maxCreate !== 0n;

    // Sorting or filtering needs every key; otherwise one extra tells `more`.
    let limit = limitRequested;
    if (sortOrderRequested !== sortNone || filtered) limit = 0;
    if (limit > 0) limit++;

    const options = { revision: Number(request.revision), limit, countOnly: request.countOnly };
    const end = mvccRangeEnd(request.rangeEnd);
    const result = txn === undefined ? this.store.range(request.key, end, options) : txn.range(request.key, end, options);

    let kvs = result.kvs;
    if (filtered) {
      kvs = kvs.filter(
        (kv) =>
          !(maxMod !== 0n && kv.modRevision > maxMod) &&
          !(minMod !== 0n && kv.modRevision < minMod) &&
          !(maxCreate !== 0n && kv.createRevision > maxCreate) &&
          !(minCreate !== 0n && kv.createRevision < minCreate),
      );
    }

    // MVCC returns keys ascending already; a target other than KEY with order
    // NONE still sorts ascending (etcd).
    let sortOrder = sortOrderRequested;
    if (sortTarget !== sortTargetKey && sortOrder === sortNone) sortOrder = sortAscend;
    if (sortOrder === sortAscend || sortOrder === sortDescend) {
      const compare = sortComparator(sortTarget);
      if (compare !== undefined) {
        if (sortOrder === sortAscend) kvs.sort(compare);
        else kvs.sort((a, b) => compare(b, a));
      }
    }

    let more = false;
    if (limitRequested > 0 && kvs.length > limitRequested) {
      kvs.length = limitRequested;
      more = true;
    }
    if (request.keysOnly) for (const kv of kvs) kv.value = emptyBytes;

    return {
      $typeName: "etcdserverpb.RangeResponse",
      header: header(result.revision),
      kvs,
      more,
      count: BigInt(result.count),
    };
  }

  // --- Put --------------------------------------------------------------

  put(request: PutRequest, txn?: WriteTxn): PutResponse {
    if (txn !== undefined) return this.putIn(txn, request);
    this.checkLease(request.lease);
    return this.store.write().run((own) => this.putIn(own, request));
  }

  private putIn(txn: WriteTxn, request: PutRequest): PutResponse {
    this.counts.puts++;
    this.counts.putBytes += request.key.length + request.value.length;
    let value = request.value;
    let lease = request.lease;
    let previous: KeyValue | undefined;
    if (request.ignoreValue || request.ignoreLease || request.prevKv) {
      previous = txn.range(request.key, undefined).kvs[0];
      if ((request.ignoreValue || request.ignoreLease) && previous === undefined) throw etcdError("keyNotFound");
      if (request.ignoreValue) value = (previous as KeyValue).value;
      if (request.ignoreLease) lease = (previous as KeyValue).lease;
    }
    const revision = txn.put(request.key, value, lease, previous);
    const response: PutResponse = { $typeName: "etcdserverpb.PutResponse", header: header(revision) };
    if (request.prevKv && previous !== undefined) response.prevKv = previous;
    return response;
  }

  private checkLease(lease: bigint): void {
    if (lease !== 0n && this.leaseExists !== undefined && !this.leaseExists(lease)) throw etcdError("leaseNotFound");
  }

  // --- DeleteRange ------------------------------------------------------

  deleteRange(request: DeleteRangeRequest, txn?: WriteTxn): DeleteRangeResponse {
    if (txn !== undefined) return this.deleteRangeIn(txn, request);
    return this.store.write().run((own) => this.deleteRangeIn(own, request));
  }

  private deleteRangeIn(txn: WriteTxn, request: DeleteRangeRequest): DeleteRangeResponse {
    this.counts.deletes++;
    const end = mvccRangeEnd(request.rangeEnd);
    const prevKvs = request.prevKv ? txn.range(request.key, end).kvs : [];
    const deleted = txn.deleteRange(request.key, end, request.prevKv ? prevKvs : undefined);
    return {
      $typeName: "etcdserverpb.DeleteRangeResponse",
      header: header(txn.revision),
      deleted: BigInt(deleted),
      prevKvs,
    };
  }

  // --- Txn --------------------------------------------------------------

  txn(request: TxnRequest): TxnResponse {
    this.counts.txns++;
    // Every compare on the path, nested ones included, is evaluated on the
    // state before the txn; every check runs before the first write.
    const path: boolean[] = [];
    this.comparePath(request, path);
    const isWrite = !isTxnReadOnly(request);
    const current = this.store.currentRevision;
    if (isWrite) this.checkOps(request, path, { index: 0 }, (op) => this.checkPutOp(op));
    this.checkOps(request, path, { index: 0 }, (op) => this.checkRangeOp(op, current));

    if (!isWrite) {
      // Read-only: no write txn, nothing changes; ranges read at the current revision.
      const response = this.applyTxn(request, path, { index: 0 }, undefined);
      response.header = header(this.store.currentRevision);
      return response;
    }
    return this.store.write().run((txn) => {
      const response = this.applyTxn(request, path, { index: 0 }, txn);
      response.header = header(txn.revision);
      return response;
    });
  }

  // --- Compact ----------------------------------------------------------

  /** Compacts at request.revision; `physical` needs nothing more, compaction is synchronous here. */
  compact(request: CompactionRequest): CompactionResponse {
    this.store.compact(Number(request.revision));
    return { $typeName: "etcdserverpb.CompactionResponse", header: header(this.store.currentRevision) };
  }

  private comparePath(request: TxnRequest, path: boolean[]): void {
    const succeeded = this.applyCompares(request.compare);
    path.push(succeeded);
    for (const op of succeeded ? request.success : request.failure) {
      if (op.request.case === "requestTxn") this.comparePath(op.request.value, path);
    }
  }

  private checkOps(request: TxnRequest, path: boolean[], cursor: { index: number }, check: (op: RequestOp) => void): void {
    const succeeded = path[cursor.index++] as boolean;
    for (const op of succeeded ? request.success : request.failure) {
      if (op.request.case === "requestTxn") this.checkOps(op.request.value, path, cursor, check);
      else check(op);
    }
  }

  private checkPutOp(op: RequestOp): void {
    if (op.request.case !== "requestPut") return;
    const put = op.request.value;
    if ((put.ignoreValue || put.ignoreLease) && this.store.range(put.key, undefined, { countOnly: true }).count === 0) {
      throw etcdError("keyNotFound");
    }
    this.checkLease(put.lease);
  }

  private checkRangeOp(op: RequestOp, current: number): void {
    if (op.request.case !== "requestRange") return;
    const revision = Number(op.request.value.revision);
    if (revision === 0) return;
    if (revision > current) throw etcdError("futureRevision");
    if (revision < this.store.compactRevision) throw etcdError("compacted");
  }

  private applyTxn(request: TxnRequest, path: boolean[], cursor: { index: number }, txn: WriteTxn | undefined): TxnResponse {
    const succeeded = path[cursor.index++] as boolean;
    const ops = succeeded ? request.success : request.failure;
    const responses: ResponseOp[] = new Array(ops.length);
    for (let i = 0; i < ops.length; i++) {
      responses[i] = this.applyOp(ops[i] as RequestOp, path, cursor, txn);
    }
    return { $typeName: "etcdserverpb.TxnResponse", succeeded, responses };
  }

  private applyOp(op: RequestOp, path: boolean[], cursor: { index: number }, txn: WriteTxn | undefined): ResponseOp {
    const request = op.request;
    switch (request.case) {
      case "requestRange":
        return responseOp({ case: "responseRange", value: this.range(request.value, txn) });
      case "requestPut":
        return responseOp({ case: "responsePut", value: this.putIn(txn as WriteTxn, request.value) });
      case "requestDeleteRange":
        return responseOp({ case: "responseDeleteRange", value: this.deleteRangeIn(txn as WriteTxn, request.value) });
      case "requestTxn": {
        const nested = this.applyTxn(request.value, path, cursor, txn);
        // etcd gives a nested txn response an empty header (all zero).
        nested.header = header(0);
        return responseOp({ case: "responseTxn", value: nested });
      }
      default:
        return responseOp({ case: undefined });
    }
  }

  private applyCompares(compares: Compare[]): boolean {
    for (const compare of compares) if (!this.applyCompare(compare)) return false;
    return true;
  }

  /** True when every key of the compare's range satisfies it (etcd's applyCompare). */
  private applyCompare(compare: Compare): boolean {
    const end = mvccRangeEnd(compare.rangeEnd);
    const target: number = compare.target;
    const store = this.store;
    if (target === targetValue || target === targetLease) {
      const kvs = store.range(compare.key, end).kvs;
      // A value compare on a missing key always fails: no way to tell a missing value from "".
      if (kvs.length === 0) return target === targetValue ? false : compareResult(compare, compareKeyValue(compare, undefined));
      for (const kv of kvs) if (!compareResult(compare, compareKeyValue(compare, kv))) return false;
      return true;
    }
    // VERSION, CREATE, MOD (and unknown targets) need only the key index.
    const wanted = compareNumberTarget(compare);
    let all = true;
    let any = false;
    store.index.visit(compare.key, end, store.currentRevision, (_history, found) => {
      any = true;
      if (!all) return;
      let actual = 0;
      if (target === targetVersion) actual = found.version;
      else if (target === targetCreate) actual = found.createRevision;
      else if (target === targetMod) actual = found.main;
      else return; // unknown target: etcd compares as equal
      if (!compareResult(compare, actual < wanted ? -1 : actual > wanted ? 1 : 0)) all = false;
    });
    // No key: compare the zero values (an unknown target compares as equal).
    if (!any) return compareResult(compare, target > targetLease || wanted === 0 ? 0 : wanted > 0 ? -1 : 1);
    return all;
  }
}

function responseOp(response: ResponseOp["response"]): ResponseOp {
  return { $typeName: "etcdserverpb.ResponseOp", response };
}

/** The number a VERSION/CREATE/MOD compare names; 0 when its union holds another case (etcd). */
function compareNumberTarget(compare: Compare): number {
  const union = compare.targetUnion;
  switch (compare.target as number) {
    case targetVersion:
      return union.case === "version" ? Number(union.value) : 0;
    case targetCreate:
      return union.case === "createRevision" ? Number(union.value) : 0;
    case targetMod:
      return union.case === "modRevision" ? Number(union.value) : 0;
    default:
      return 0;
  }
}

/** Sign of (kv's target − compare's target) for VALUE and LEASE; a missing kv reads as zero values. */
function compareKeyValue(compare: Compare, kv: KeyValue | undefined): number {
  const union = compare.targetUnion;
  if ((compare.target as number) === targetValue) {
    const wanted = union.case === "value" ? union.value : emptyBytes;
    return compareBytes(kv?.value ?? emptyBytes, wanted);
  }
  const wanted = union.case === "lease" ? union.value : 0n;
  const actual = kv?.lease ?? 0n;
  return actual < wanted ? -1 : actual > wanted ? 1 : 0;
}

function compareResult(compare: Compare, sign: number): boolean {
  switch (compare.result as number) {
    case compareEqual:
      return sign === 0;
    case compareNotEqual:
      return sign !== 0;
    case compareGreater:
      return sign > 0;
    case compareLess:
      return sign < 0;
    default:
      return true; // unknown result: etcd treats the compare as satisfied
  }
}

type KvComparator = (a: KeyValue, b: KeyValue) => number;

const byKey: KvComparator = (a, b) => compareBytes(a.key, b.key);
const byVersion: KvComparator = (a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0);
const byCreate: KvComparator = (a, b) =>
  a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0;
const byMod: KvComparator = (a, b) => (a.modRevision < b.modRevision ? -1 : a.modRevision > b.modRevision ? 1 : 0);
const byValue: KvComparator = (a, b) => compareBytes(a.value, b.value);

function sortComparator(target: number): KvComparator | undefined {
  switch (target) {
    case sortTargetKey:
      return byKey;
    case sortTargetVersion:
      return byVersion;
    case sortTargetCreate:
      return byCreate;
    case sortTargetMod:
      return byMod;
    case sortTargetValue:
      return byValue;
    default:
      return undefined;
  }
}
