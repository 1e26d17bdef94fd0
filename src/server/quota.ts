// etcd's backend quota (etcdserver/quota.go): a write that would take the
// backend past --quota-backend-bytes is refused before it is proposed, and
// raises the NOSPACE alarm. The cost is etcd's estimate of what the write adds.
import type { LeaseGrantRequest, PutRequest, RequestOp, TxnRequest } from "../gen/etcdserverpb/rpc_pb.ts";

/** etcd's per-key and per-lease overhead estimates, in bytes. */
export const kvOverheadBytes = 256;
export const leaseOverheadBytes = 64;
/** etcd's default quota (2 GiB) and largest recommended quota (8 GiB). */
export const quotaBytesDefault = 2 * 1024 * 1024 * 1024;
export const quotaBytesMaxRecommended = 8 * 1024 * 1024 * 1024;

export function putCostBytes(request: PutRequest): number {
  return kvOverheadBytes + request.key.length + request.value.length;
}

function opCostBytes(op: RequestOp): number {
  return op.request.case === "requestPut" ? putCostBytes(op.request.value) : 0;
}

/** The larger branch's puts (nested txns count nothing, as in etcd). */
export function txnCostBytes(request: TxnRequest): number {
  const success = request.success.reduce((sum, op) => sum + opCostBytes(op), 0);
  const failure = request.failure.reduce((sum, op) => sum + opCostBytes(op), 0);
  return Math.max(success, failure);
}

export function leaseGrantCostBytes(_request: LeaseGrantRequest): number {
  return leaseOverheadBytes;
}

/**
 * --quota-backend-bytes as etcd reads it: 0 is the default, negative turns
 * the quota off (undefined).
 */
export function quotaBytesOf(flagValue: number): number | undefined {
  if (flagValue < 0) return undefined;
  return flagValue === 0 ? quotaBytesDefault : flagValue;
}
