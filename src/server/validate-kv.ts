// The checks etcd makes on KV requests before proposing them
// (etcdserver/api/v3rpc/key.go): they cost nothing to apply and fail fast with
// InvalidArgument. Txns additionally get the put/delete overlap check
// (checkIntervals), done after the cheap checks to avoid quadratic work on
// requests that would fail anyway.
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { etcdError } from "../errors.ts";
import { keyString } from "../mvcc/key-bytes.ts";

/** etcd's default --max-txn-ops: most ops in a txn's compare, success or failure list. */
export const maxTxnOpsDefault = 128;

const sortOrderMax = 2; // NONE, ASCEND, DESCEND
const sortTargetMax = 4; // KEY, VERSION, CREATE, MOD, VALUE

export function validateRangeRequest(request: RangeRequest): void {
  if (request.key.length === 0) throw etcdError("emptyKey");
  const order: number = request.sortOrder;
  const target: number = request.sortTarget;
  if (!Number.isInteger(order) || order < 0 || order > sortOrderMax) throw etcdError("invalidSortOption");
  if (!Number.isInteger(target) || target < 0 || target > sortTargetMax) throw etcdError("invalidSortOption");
}

export function validatePutRequest(request: PutRequest): void {
  if (request.key.length === 0) throw etcdError("emptyKey");
  if (request.ignoreValue && request.value.length !== 0) throw etcdError("valueProvided");
  if (request.ignoreLease && request.lease !== 0n) throw etcdError("leaseProvided");
}

export function validateDeleteRangeRequest(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw etcdError("emptyKey");
}

/** All checks for a Txn: sizes, keys, each op (recursively), then put/delete overlaps. */
export function validateTxnRequest(request: TxnRequest, maxTxnOps: number = maxTxnOpsDefault): void {
  checkTxn(request, maxTxnOps);
  checkIntervals(request.success);
  checkIntervals(request.failure);
}

function checkTxn(request: TxnRequest, maxTxnOps: number): void {
  const ops = Math.max(request.compare.length, request.success.length, request.failure.length);
  if (ops > maxTxnOps) throw etcdError("tooManyOps");
  for (const compare of request.compare) if (compare.key.length === 0) throw etcdError("emptyKey");
  // A nested txn gets what its parent leaves of the budget (etcd).
  for (const op of request.success) checkOp(op, maxTxnOps - ops);
  for (const op of request.failure) checkOp(op, maxTxnOps - ops);
}

function checkOp(op: RequestOp, maxTxnOps: number): void {
  const request = op.request;
  switch (request.case) {
    case "requestRange":
      return validateRangeRequest(request.value);
    case "requestPut":
      return validatePutRequest(request.value);
    case "requestDeleteRange":
      return validateDeleteRangeRequest(request.value);
    case "requestTxn":
      return checkTxn(request.value, maxTxnOps);
    default:
      // An empty op: etcd answers "key not found".
      throw etcdError("keyNotFound");
  }
}

// --- put/delete overlap (etcd's checkIntervals) ----------------------------
// Keys are binary strings (byte order). etcd's affine intervals treat the
// empty string as +infinity; a point k is the interval [k, k+"\0").

interface Interval {
  begin: string;
  end: string;
}

function compareAffine(a: string, b: string): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** 0 when the intervals overlap, as etcd's adt.Interval.Compare. */
function compareIntervals(a: Interval, b: Interval): number {
  if (compareAffine(a.begin, b.begin) < 0 && compareAffine(a.end, b.begin) <= 0) return -1;
  if (compareAffine(a.begin, b.end) >= 0) return 1;
  return 0;
}

function intersectsPoint(deletes: Interval[], key: string): boolean {
  const point = { begin: key, end: `${key}\u0000` };
  for (const interval of deletes) if (compareIntervals(point, interval) === 0) return true;
  return false;
}

/**
 * A txn may not put a key twice, nor put a key that one of its deletes
 * covers, at any nesting depth; the two branches of a nested txn are
 * exclusive, so a key put in both of them is fine.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; deletes: Interval[] } {
  const deletes: Interval[] = [];
  for (const op of ops) {
    if (op.request.case !== "requestDeleteRange") continue;
    const request = op.request.value;
    const begin = keyString(request.key);
    deletes.push({ begin, end: request.rangeEnd.length !== 0 ? keyString(request.rangeEnd) : `${begin}\u0000` });
  }

  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request.case !== "requestTxn") continue;
    const then = checkIntervals(op.request.value.success);
    const otherwise = checkIntervals(op.request.value.failure);
    for (const key of then.puts) {
      if (puts.has(key) || intersectsPoint(deletes, key)) throw etcdError("duplicateKey");
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) throw etcdError("duplicateKey");
      if (intersectsPoint(deletes, key)) throw etcdError("duplicateKey");
      puts.add(key);
    }
    deletes.push(...then.deletes, ...otherwise.deletes);
  }

  for (const op of ops) {
    if (op.request.case !== "requestPut") continue;
    const key = keyString(op.request.value.key);
    if (puts.has(key) || intersectsPoint(deletes, key)) throw etcdError("duplicateKey");
    puts.add(key);
  }
  return { puts, deletes };
}
