// etcd's grpc-gateway JSON routes (`/v3/...`). Each call goes through the same
// Connect services in memory, so it gets the same checks, interceptors and
// errors as gRPC. Like etcd's gateway, which hands the decoded request to its
// own gRPC server, a request is refused with grpc-go's ResourceExhausted (429)
// when its protobuf form is over the gRPC receive limit, and any decoding
// error is InvalidArgument (400).
import type { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { fromJson, toBinary, toJson, type DescField, type DescMessage, type DescMethodUnary, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type ConnectRouterOptions, type Transport } from "@connectrpc/connect";
import { Auth, Cluster, KV, Maintenance } from "../gen/etcdserverpb/rpc_pb.ts";
import { isNestingLimitError, messageTooLargeError, nestingTooDeepError } from "./request-limits.ts";

/** HTTP status for each gRPC code, as grpc-gateway maps them. */
const httpStatusOfCode: Record<number, number> = {
  [Code.Canceled]: 408,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 412,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** etcd's gateway paths for unary RPCs. */
const gatewayRoutes: ReadonlyArray<readonly [string, DescMethodUnary]> = [
  ["/v3/kv/range", KV.method.range],
  ["/v3/kv/put", KV.method.put],
  ["/v3/kv/deleterange", KV.method.deleteRange],
  ["/v3/kv/txn", KV.method.txn],
  ["/v3/kv/compaction", KV.method.compact],
  ["/v3/maintenance/status", Maintenance.method.status],
  ["/v3/maintenance/alarm", Maintenance.method.alarm],
  // etcd's proto gives Hash and HashKV this one path; etcd's gateway serves Hash.
  ["/v3/maintenance/hash", Maintenance.method.hash],
  ["/v3/cluster/member/list", Cluster.method.memberList],
  ["/v3/auth/enable", Auth.method.authEnable],
  ["/v3/auth/disable", Auth.method.authDisable],
  ["/v3/auth/status", Auth.method.authStatus],
  ["/v3/auth/authenticate", Auth.method.authenticate],
  ["/v3/auth/user/add", Auth.method.userAdd],
  ["/v3/auth/user/get", Auth.method.userGet],
  ["/v3/auth/user/list", Auth.method.userList],
  ["/v3/auth/user/delete", Auth.method.userDelete],
  ["/v3/auth/user/changepw", Auth.method.userChangePassword],
  ["/v3/auth/user/grant", Auth.method.userGrantRole],
  ["/v3/auth/user/revoke", Auth.method.userRevokeRole],
  ["/v3/auth/role/add", Auth.method.roleAdd],
  ["/v3/auth/role/get", Auth.method.roleGet],
  ["/v3/auth/role/list", Auth.method.roleList],
  ["/v3/auth/role/delete", Auth.method.roleDelete],
  ["/v3/auth/role/grant", Auth.method.roleGrantPermission],
  ["/v3/auth/role/revoke", Auth.method.roleRevokePermission],
];

/**
 * JSON bytes a gateway request may have, as a multiple of the gRPC message
 * limit. etcd reads any body and limits only the decoded message; a JSON body
 * is bigger than its message (base64 takes 4 bytes per 3, plus names and
 * quotes), so twice the limit lets every request etcd accepts through, except
 * ones padded with whitespace, while a body that could never fit is refused
 * before it is read whole.
 */
const gatewayBodyPerMessageBytesMax = 2;

export interface GatewayLimits {
  /** The gRPC receive limit (etcd: --max-request-bytes + 512 KiB). */
  messageBytesMax: number;
  /** How deep a request's messages may nest (see messageNestingDepthMax). */
  recursionLimit: number;
}

export function addGatewayRoutes(app: Hono, routes: (router: ConnectRouter) => void, routerOptions: ConnectRouterOptions, limits: GatewayLimits): void {
  const transport = createRouterTransport(routes, {
    router: routerOptions,
    // The in-memory client decodes the answers: a txn nested as deep as the server allows answers as deep.
    transport: { binaryOptions: { recursionLimit: limits.recursionLimit } },
  });
  const bodyBytesMax = gatewayBodyPerMessageBytesMax * limits.messageBytesMax;
  const limitBody = bodyLimit({
    maxSize: bodyBytesMax,
    // Refused by its JSON size, so the size reported is the body's (declared,
    // or the limit when it streams without a length); etcd reports the message's.
    onError: (c) => gatewayError(c, messageTooLargeError(declaredBytes(c) ?? bodyBytesMax + 1, limits.messageBytesMax)),
  });
  for (const [path, method] of gatewayRoutes) {
    // etcd 3.4 serves every route under /v3beta too (the prefix of 3.3's gateway).
    for (const served of [path, path.replace(/^\/v3\//, "/v3beta/")]) {
      app.post(served, limitBody, (c) => callGateway(c, transport, method, limits));
      // grpc-gateway's answer to another method on a known path (http.Error with the status text).
      app.on(["GET", "PUT", "DELETE", "PATCH", "HEAD"], served, (c) => c.text("Method Not Allowed\n", 405, { "x-content-type-options": "nosniff" }));
    }
  }
}

async function callGateway(c: Context, transport: Transport, method: DescMethodUnary, limits: GatewayLimits): Promise<Response> {
  let request: unknown;
  try {
    request = decodeRequest(await c.req.text(), method.input as DescMessage, limits.recursionLimit);
  } catch (error) {
    return gatewayError(c, decodeError(error));
  }
  // etcd's gateway sends the decoded request to its gRPC server, which measures the protobuf message.
  const messageBytes = toBinary(method.input as DescMessage, request as never).length;
  if (messageBytes > limits.messageBytesMax) return gatewayError(c, messageTooLargeError(messageBytes, limits.messageBytesMax));
  try {
    // The token travels as grpc-gateway forwards it: the Authorization header
    // becomes `authorization` metadata. No client certificate's name is used
    // here (etcd ignores it on gateway calls).
    const authorization = c.req.header("authorization");
    const header = authorization === undefined ? undefined : { authorization };
    const response = await transport.unary(method, undefined, undefined, header, request as never, undefined);
    return c.json(toJson(method.output as DescMessage, response.message as never, { useProtoFieldName: true }) as object);
  } catch (error) {
    return gatewayError(c, ConnectError.from(error));
  }
}

/** The request a JSON body stands for: an empty body or `null` is the empty message, as in etcd. */
function decodeRequest(text: string, schema: DescMessage, recursionLimit: number): unknown {
  const json = text === "" ? null : (JSON.parse(text) as JsonValue);
  // etcd ignores unknown fields but refuses an unknown enum name, which
  // protobuf-es's ignoreUnknownFields would let through as the default.
  return fromJson(schema, knownFieldsOnly(json ?? {}, schema, recursionLimit), { recursionLimit });
}

/** `json` without the fields `schema` does not define, at every level down to `depthLeft`. */
function knownFieldsOnly(json: JsonValue, schema: DescMessage, depthLeft: number): JsonValue {
  if (depthLeft <= 0 || !isJsonObject(json)) return json;
  const fields = new Map<string, DescField>();
  for (const field of schema.fields) fields.set(field.name, field).set(field.jsonName, field);
  const known: Record<string, JsonValue> = {};
  for (const [name, value] of Object.entries(json)) {
    const field = fields.get(name);
    if (field !== undefined) known[name] = knownFieldsOnlyIn(field, value, depthLeft - 1);
  }
  return known;
}

function knownFieldsOnlyIn(field: DescField, value: JsonValue, depthLeft: number): JsonValue {
  if (field.fieldKind === "message") return knownFieldsOnly(value, field.message, depthLeft);
  if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
    return value.map((item) => knownFieldsOnly(item, field.message, depthLeft));
  }
  if (field.fieldKind === "map" && field.mapKind === "message" && isJsonObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, knownFieldsOnly(item, field.message, depthLeft)]));
  }
  return value;
}

function isJsonObject(json: JsonValue): json is { [name: string]: JsonValue } {
  return typeof json === "object" && json !== null && !Array.isArray(json);
}

/**
 * Every decoding failure is InvalidArgument, as from etcd's gateway. The text is
 * the JSON parser's or protobuf-es's, not Go's (etcd says, e.g., "illegal base64
 * data at input byte 0"); clients match the code and status, not this text.
 */
function decodeError(error: unknown): ConnectError {
  if (isNestingLimitError(error)) return nestingTooDeepError();
  return new ConnectError(error instanceof Error ? error.message : String(error), Code.InvalidArgument);
}

function declaredBytes(c: Context): number | undefined {
  const length = Number(c.req.header("content-length"));
  return Number.isSafeInteger(length) && length > 0 ? length : undefined;
}

/** grpc-gateway's error body: `{"error", "message", "code"}` with the HTTP status of the code. */
function gatewayError(c: Context, error: ConnectError): Response {
  const status = httpStatusOfCode[error.code] ?? 500;
  return c.json({ error: error.rawMessage, message: error.rawMessage, code: error.code }, status as 400);
}
