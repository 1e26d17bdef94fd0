// How a client request travels through the log: one entry's data is
//   byte 0      format version (1)
//   byte 1      request kind (RequestKind)
//   bytes 2..9  request id, big-endian u64 (the proposing member's waiter key)
//   bytes 10..  the etcd request message in protobuf binary
// Protobuf keeps the hot path to one encode/decode of the message etcd itself
// defines; the 10-byte header is all we add.
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  LeaseCheckpointRequestSchema,
  LeaseGrantRequestSchema,
  LeaseRevokeRequestSchema,
  MemberSchema,
  PutRequestSchema,
  TxnRequestSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../errors.ts";

export enum RequestKind {
  Put = 1,
  DeleteRange = 2,
  Txn = 3,
  Compact = 4,
  LeaseGrant = 5,
  LeaseRevoke = 6,
  /** The primary lessor records leases' remaining TTLs (etcd's LeaseCheckpoint). */
  LeaseCheckpoint = 7,
  /** A member publishes its name and client URLs (etcd's attribute update). */
  MemberAttributes = 20,
}

const schemas = {
  [RequestKind.Put]: PutRequestSchema,
  [RequestKind.DeleteRange]: DeleteRangeRequestSchema,
  [RequestKind.Txn]: TxnRequestSchema,
  [RequestKind.Compact]: CompactionRequestSchema,
  [RequestKind.LeaseGrant]: LeaseGrantRequestSchema,
  [RequestKind.LeaseRevoke]: LeaseRevokeRequestSchema,
  [RequestKind.LeaseCheckpoint]: LeaseCheckpointRequestSchema,
  [RequestKind.MemberAttributes]: MemberSchema,
} as const;

export type RequestOf<K extends RequestKind> = MessageShape<(typeof schemas)[K]>;

export type InternalRequest =
  | { kind: RequestKind.Put; id: number; request: RequestOf<RequestKind.Put> }
  | { kind: RequestKind.DeleteRange; id: number; request: RequestOf<RequestKind.DeleteRange> }
  | { kind: RequestKind.Txn; id: number; request: RequestOf<RequestKind.Txn> }
  | { kind: RequestKind.Compact; id: number; request: RequestOf<RequestKind.Compact> }
  | { kind: RequestKind.LeaseGrant; id: number; request: RequestOf<RequestKind.LeaseGrant> }
  | { kind: RequestKind.LeaseRevoke; id: number; request: RequestOf<RequestKind.LeaseRevoke> }
  | { kind: RequestKind.LeaseCheckpoint; id: number; request: RequestOf<RequestKind.LeaseCheckpoint> }
  | { kind: RequestKind.MemberAttributes; id: number; request: RequestOf<RequestKind.MemberAttributes> };

const formatVersion = 1;
const headerBytes = 10;

/**
 * How deep a logged request's messages may nest when decoded. A txn nests
 * (TxnRequest → RequestOp → TxnRequest …); the client API decodes no deeper
 * than this whatever its member's --max-txn-ops, so every entry any member
 * proposed decodes here: protobuf-es's default of 100 would stop this member
 * on a txn nested 50 deep. It stays well under what the runtimes' default
 * stacks decode (~1,900 levels measured on Node).
 */
export const requestNestingDepthMax = 1000;

export function encodeRequest(internal: InternalRequest): Uint8Array {
  const schema = schemas[internal.kind] as DescMessage;
  const body = toBinary(schema, internal.request as MessageShape<DescMessage>);
  const data = new Uint8Array(headerBytes + body.length);
  const view = new DataView(data.buffer);
  data[0] = formatVersion;
  data[1] = internal.kind;
  view.setBigUint64(2, BigInt(internal.id));
  data.set(body, headerBytes);
  return data;
}

export function decodeRequest(data: Uint8Array): InternalRequest {
  assert(data.length >= headerBytes && data[0] === formatVersion, "log entry has a known request format");
  const kind = data[1] as RequestKind;
  const schema = schemas[kind] as DescMessage | undefined;
  assert(schema !== undefined, `log entry request kind ${kind} is known`);
  const id = Number(new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(2));
  const request = fromBinary(schema, data.subarray(headerBytes), { recursionLimit: requestNestingDepthMax });
  return { kind, id, request } as InternalRequest;
}
