// How a client request travels through the log: one entry's data is
//   byte 0      format version: 1 without a user, 2 with one
//   byte 1      request kind (RequestKind)
//   bytes 2..9  request id, big-endian u64 (the proposing member's waiter key)
// format 2 only (etcd's RequestHeader username and auth_revision):
//   bytes 10..17  auth revision the user was checked at, big-endian u64
//   bytes 18..19  username length n, big-endian u16
//   bytes 20..    username, UTF-8, n bytes
// then the etcd request message in protobuf binary.
// Protobuf keeps the hot path to one encode/decode of the message etcd itself
// defines; the header is all we add, and without auth it stays 10 bytes.
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { InternalAuthenticateRequestSchema } from "../gen/edgetcd/v1/internal_pb.ts";
import {
  AlarmRequestSchema,
  AuthDisableRequestSchema,
  AuthEnableRequestSchema,
  AuthRoleAddRequestSchema,
  AuthRoleDeleteRequestSchema,
  AuthRoleGrantPermissionRequestSchema,
  AuthRoleRevokePermissionRequestSchema,
  AuthUserAddRequestSchema,
  AuthUserChangePasswordRequestSchema,
  AuthUserDeleteRequestSchema,
  AuthUserGrantRoleRequestSchema,
  AuthUserRevokeRoleRequestSchema,
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
import { usernameBytesMax } from "../auth/store.ts";

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
  /** Raise, clear or list alarms (etcd's Alarm goes through the log for all three). */
  Alarm = 21,
  AuthEnable = 30,
  AuthDisable = 31,
  /** A checked login (edgetcd.v1.InternalAuthenticateRequest). */
  Authenticate = 32,
  AuthUserAdd = 33,
  AuthUserDelete = 34,
  AuthUserChangePassword = 35,
  AuthUserGrantRole = 36,
  AuthUserRevokeRole = 37,
  AuthRoleAdd = 38,
  AuthRoleDelete = 39,
  AuthRoleGrantPermission = 40,
  AuthRoleRevokePermission = 41,
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
  [RequestKind.Alarm]: AlarmRequestSchema,
  [RequestKind.AuthEnable]: AuthEnableRequestSchema,
  [RequestKind.AuthDisable]: AuthDisableRequestSchema,
  [RequestKind.Authenticate]: InternalAuthenticateRequestSchema,
  [RequestKind.AuthUserAdd]: AuthUserAddRequestSchema,
  [RequestKind.AuthUserDelete]: AuthUserDeleteRequestSchema,
  [RequestKind.AuthUserChangePassword]: AuthUserChangePasswordRequestSchema,
  [RequestKind.AuthUserGrantRole]: AuthUserGrantRoleRequestSchema,
  [RequestKind.AuthUserRevokeRole]: AuthUserRevokeRoleRequestSchema,
  [RequestKind.AuthRoleAdd]: AuthRoleAddRequestSchema,
  [RequestKind.AuthRoleDelete]: AuthRoleDeleteRequestSchema,
  [RequestKind.AuthRoleGrantPermission]: AuthRoleGrantPermissionRequestSchema,
  [RequestKind.AuthRoleRevokePermission]: AuthRoleRevokePermissionRequestSchema,
} as const;

export type RequestOf<K extends RequestKind> = MessageShape<(typeof schemas)[K]>;

/** A logged request: its kind, its waiter id, who proposed it (auth on) and etcd's message. */
export type InternalRequest = {
  [K in keyof typeof schemas]: { kind: K; id: number; auth?: RequestAuth | undefined; request: RequestOf<K> };
}[keyof typeof schemas];

/** etcd's RequestHeader username and auth_revision: checked again when the entry is applied. */
export interface RequestAuth {
  username: string;
  revision: number;
}

const formatPlain = 1;
const formatWithUser = 2;
const headerBytes = 10;
const userHeaderBytes = 10;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

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
  const username = internal.auth === undefined ? undefined : utf8Encoder.encode(internal.auth.username);
  assert(username === undefined || username.length <= usernameBytesMax, "a logged username fits its length field");
  const prefixBytes = username === undefined ? headerBytes : headerBytes + userHeaderBytes + username.length;
  const data = new Uint8Array(prefixBytes + body.length);
  const view = new DataView(data.buffer);
  data[0] = username === undefined ? formatPlain : formatWithUser;
  data[1] = internal.kind;
  view.setBigUint64(2, BigInt(internal.id));
  if (username !== undefined) {
    view.setBigUint64(headerBytes, BigInt((internal.auth as RequestAuth).revision));
    view.setUint16(headerBytes + 8, username.length);
    data.set(username, headerBytes + userHeaderBytes);
  }
  data.set(body, prefixBytes);
  return data;
}

export function decodeRequest(data: Uint8Array): InternalRequest {
  assert(data.length >= headerBytes && (data[0] === formatPlain || data[0] === formatWithUser), "log entry has a known request format");
  const kind = data[1] as RequestKind;
  const schema = schemas[kind as keyof typeof schemas] as DescMessage | undefined;
  assert(schema !== undefined, `log entry request kind ${kind} is known`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const id = Number(view.getBigUint64(2));
  let auth: RequestAuth | undefined;
  let bodyStart = headerBytes;
  if (data[0] === formatWithUser) {
    assert(data.length >= headerBytes + userHeaderBytes, "log entry user header is whole");
    const usernameBytes = view.getUint16(headerBytes + 8);
    bodyStart = headerBytes + userHeaderBytes + usernameBytes;
    assert(data.length >= bodyStart, "log entry username is whole");
    auth = {
      revision: Number(view.getBigUint64(headerBytes)),
      username: utf8Decoder.decode(data.subarray(headerBytes + userHeaderBytes, bodyStart)),
    };
  }
  const request = fromBinary(schema, data.subarray(bodyStart), { recursionLimit: requestNestingDepthMax });
  return { kind, id, auth, request } as InternalRequest;
}
