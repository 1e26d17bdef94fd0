// The limits every client protocol applies to a request before it reaches a
// service, and the errors etcd (through grpc-go) answers when one is broken.
import { Code, ConnectError } from "@connectrpc/connect";
import { etcdError } from "../errors.ts";
import { requestNestingDepthMax } from "../server/request-codec.ts";
import { toConnectError } from "./errors.ts";

/**
 * etcd lets gRPC messages exceed --max-request-bytes by this much
 * (v3rpc/grpc.go: MaxRecvMsgSize = max-request-bytes + grpcOverheadBytes);
 * a proposal over --max-request-bytes is then answered "request is too large".
 */
export const grpcOverheadBytes = 512 * 1024;

/** The largest protobuf message a client may send, as etcd's gRPC server receives it. */
export function requestMessageBytesMax(maxRequestBytes: number): number {
  return maxRequestBytes + grpcOverheadBytes;
}

/**
 * grpc-go's answer to a message over its receive limit (rpc_util.go), which
 * etcd's grpc-gateway passes on as HTTP 429.
 */
export function messageTooLargeError(messageBytes: number, messageBytesMax: number): ConnectError {
  return new ConnectError(`grpc: received message larger than max (${messageBytes} vs. ${messageBytesMax})`, Code.ResourceExhausted);
}

/**
 * The deepest message nesting a decoder follows. Only a txn nests (TxnRequest →
 * RequestOp → TxnRequest …, two levels per txn), and etcd refuses a txn nested
 * deeper than --max-txn-ops ("too many operations in txn request": each level
 * spends one op of its parent's budget), so the decoder lets through every
 * nesting etcd's check sees and refuses only deeper ones. It never passes
 * what the log decodes (requestNestingDepthMax), whatever --max-txn-ops.
 */
export function messageNestingDepthMax(maxTxnOps: number): number {
  const checkedByEtcd = 2 * (maxTxnOps + 2) + 2;
  return Math.min(checkedByEtcd, requestNestingDepthMax);
}

/** Whether `error` is protobuf-es giving up on a message nested past its recursion limit. */
export function isNestingLimitError(error: unknown): boolean {
  const message = error instanceof ConnectError ? error.rawMessage : error instanceof Error ? error.message : "";
  return message.includes("maximum recursion depth");
}

/**
 * etcd's answer to a message nested past the limit: such a message is a txn
 * nested deeper than --max-txn-ops, which etcd refuses with InvalidArgument.
 */
export function nestingTooDeepError(): ConnectError {
  return toConnectError(etcdError("tooManyOps"));
}
