// etcd's grpc-gateway JSON routes (`/v3/...`). Each call goes through the same
// Connect services in memory, so it gets the same checks, interceptors and
// errors as gRPC. Like etcd's gateway, which hands the decoded request to its
// own gRPC server, a request is refused with grpc-go's ResourceExhausted (429)
// when its protobuf form is over the gRPC receive limit, and any decoding
// error is InvalidArgument (400).
import type { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import {
  fromJson,
  toBinary,
  toJson,
  type DescField,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type JsonValue,
  ScalarType,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type ConnectRouterOptions, type Transport } from "@connectrpc/connect";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../gen/etcdserverpb/rpc_pb.ts";
import { Election } from "../gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../gen/v3lockpb/v3lock_pb.ts";
import { goBase64ErrorOffset, goBase64Message } from "./go-base64.ts";
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
  ["/v3/cluster/member/add", Cluster.method.memberAdd],
  ["/v3/cluster/member/remove", Cluster.method.memberRemove],
  ["/v3/cluster/member/update", Cluster.method.memberUpdate],
  ["/v3/cluster/member/promote", Cluster.method.memberPromote],
  ["/v3/maintenance/defragment", Maintenance.method.defragment],
  ["/v3/maintenance/transfer-leadership", Maintenance.method.moveLeader],
  ["/v3/lease/grant", Lease.method.leaseGrant],
  ["/v3/lease/revoke", Lease.method.leaseRevoke],
  ["/v3/kv/lease/revoke", Lease.method.leaseRevoke],
  ["/v3/lease/timetolive", Lease.method.leaseTimeToLive],
  ["/v3/kv/lease/timetolive", Lease.method.leaseTimeToLive],
  ["/v3/lease/leases", Lease.method.leaseLeases],
  ["/v3/kv/lease/leases", Lease.method.leaseLeases],
  ["/v3/election/campaign", Election.method.campaign],
  ["/v3/election/proclaim", Election.method.proclaim],
  ["/v3/election/leader", Election.method.leader],
  ["/v3/election/resign", Election.method.resign],
  ["/v3/lock/lock", Lock.method.lock],
  ["/v3/lock/unlock", Lock.method.unlock],
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
 * etcd's gateway paths for streaming RPCs. grpc-gateway reads the body as a
 * sequence of JSON requests and writes each response as a line
 * `{"result":{…}}`; a stream error ends it with a line `{"error":{…}}`.
 */
const streamingGatewayRoutes: ReadonlyArray<readonly [string, DescMethodBiDiStreaming | DescMethodServerStreaming]> = [
  ["/v3/watch", Watch.method.watch],
  ["/v3/lease/keepalive", Lease.method.leaseKeepAlive],
  ["/v3/election/observe", Election.method.observe],
  ["/v3/maintenance/snapshot", Maintenance.method.snapshot],
];

/** Requests one streaming gateway body may hold. */
const streamingGatewayRequestsMax = 1000;

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
  /**
   * Gateway calls running at once, watches and keep-alives included: etcd's
   * gateway is one gRPC connection to its own server, held to
   * --max-concurrent-streams, so past it a call waits for one to end (etcd's
   * TestV3Curl_MaxStreams_ReachLimit: a range behind that many watches times
   * out). Undefined: no limit.
   */
  callsAtOnceMax?: number;
}

/** Gateway calls that may wait for a slot; past this many a call is refused at once. */
export const gatewayCallsWaitingMax = 4096;

/** The --max-concurrent-streams slots of the gateway's calls, in arrival order. */
class CallSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly runningMax: number) {}

  /**
   * Resolves with the function that gives the slot back once the call may
   * start; undefined when the client went away while it waited. Throws when
   * too many wait already.
   */
  take(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (this.running < this.runningMax) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= gatewayCallsWaitingMax) throw new ConnectError("grpc: the gateway's calls are all in use", Code.ResourceExhausted);
    return new Promise((resolve) => {
      const grant = () => {
        signal.removeEventListener("abort", giveUp);
        this.running++;
        resolve(this.releaser());
      };
      const giveUp = () => {
        const index = this.waiting.indexOf(grant);
        if (index >= 0) this.waiting.splice(index, 1);
        resolve(undefined);
      };
      this.waiting.push(grant);
      signal.addEventListener("abort", giveUp, { once: true });
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.waiting.shift()?.();
    };
  }
}

export function addGatewayRoutes(app: Hono, routes: (router: ConnectRouter) => void, routerOptions: ConnectRouterOptions, limits: GatewayLimits): void {
  const transport = createRouterTransport(routes, {
    router: routerOptions,
    // The in-memory client decodes the answers: a txn nested as deep as the server allows answers as deep.
    transport: { binaryOptions: { recursionLimit: limits.recursionLimit } },
  });
  const slots = new CallSlots(limits.callsAtOnceMax ?? Number.POSITIVE_INFINITY);
  const bodyBytesMax = gatewayBodyPerMessageBytesMax * limits.messageBytesMax;
  const limitBody = bodyLimit({
    maxSize: bodyBytesMax,
    // Refused by its JSON size, so the size reported is the body's (declared,
    // or the limit when it streams without a length); etcd reports the message's.
    onError: (c) => gatewayError(c, messageTooLargeError(declaredBytes(c) ?? bodyBytesMax + 1, limits.messageBytesMax)),
  });
  const handlers: Array<readonly [string, (c: Context) => Promise<Response>]> = [
    ...gatewayRoutes.map(([path, method]) => [path, (c: Context) => callGateway(c, transport, method, limits, slots)] as const),
    ...streamingGatewayRoutes.map(([path, method]) => [path, (c: Context) => streamGateway(c, transport, method, limits, slots)] as const),
  ];
  for (const [path, handle] of handlers) {
    // etcd 3.4 serves every route under /v3beta too (the prefix of 3.3's gateway).
    for (const served of [path, path.replace(/^\/v3\//, "/v3beta/")]) {
      app.post(served, limitBody, handle);
      // grpc-gateway's answer to another method on a known path (http.Error with the status text).
      app.on(["GET", "PUT", "DELETE", "PATCH", "HEAD"], served, (c) => goHttpError(c, "Method Not Allowed", 405));
    }
  }
}

async function callGateway(c: Context, transport: Transport, method: DescMethodUnary, limits: GatewayLimits, slots: CallSlots): Promise<Response> {
  let request: unknown;
  try {
    request = decodeRequest(await c.req.text(), method.input as DescMessage, limits.recursionLimit);
  } catch (error) {
    return gatewayError(c, decodeError(error));
  }
  // etcd's gateway sends the decoded request to its gRPC server, which measures the protobuf message.
  const messageBytes = toBinary(method.input as DescMessage, request as never).length;
  if (messageBytes > limits.messageBytesMax) return gatewayError(c, messageTooLargeError(messageBytes, limits.messageBytesMax));
  let release: (() => void) | undefined;
  try {
    release = await slots.take(c.req.raw.signal);
    if (release === undefined) return c.body(null, 499 as never); // the client went away while it waited
    const response = await transport.unary(method, undefined, undefined, forwardedHeader(c), request as never, undefined);
    return c.json(toJson(method.output as DescMessage, response.message as never, { useProtoFieldName: true }) as object, 200, answeredByGrpc);
  } catch (error) {
    return gatewayError(c, ConnectError.from(error));
  } finally {
    release?.();
  }
}

/**
 * A streaming call: every JSON request in the body is sent (a server-streaming
 * method takes the first), and every response is written as it comes, one
 * line each, until the stream ends or the client goes away.
 */
async function streamGateway(
  c: Context,
  transport: Transport,
  method: DescMethodBiDiStreaming | DescMethodServerStreaming,
  limits: GatewayLimits,
  slots: CallSlots,
): Promise<Response> {
  let requests: unknown[];
  try {
    requests = splitJsonValues(await c.req.text()).map((text) => decodeRequest(text, method.input as DescMessage, limits.recursionLimit));
  } catch (error) {
    return gatewayError(c, decodeError(error));
  }
  if (requests.length === 0) requests.push(decodeRequest("", method.input as DescMessage, limits.recursionLimit));
  if (method.methodKind === "server_streaming") requests = requests.slice(0, 1);
  const header = forwardedHeader(c);
  let release: (() => void) | undefined;
  try {
    release = await slots.take(c.req.raw.signal);
  } catch (error) {
    return gatewayError(c, ConnectError.from(error));
  }
  if (release === undefined) return c.body(null, 499 as never); // the client went away while it waited
  const giveBack = release;
  const abort = new AbortController();
  // The stream holds its slot until it ends, however it ends.
  abort.signal.addEventListener("abort", giveBack, { once: true });
  c.req.raw.signal.addEventListener("abort", () => abort.abort(), { once: true });
  async function* input() {
    yield* requests as never[];
  }
  const encoder = new TextEncoder();
  const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);
  // Pulled one response at a time: a client that reads slowly holds the
  // stream (and the watch behind it, whose own queue is bounded) instead of
  // lines piling up here.
  let responses: AsyncIterator<unknown> | undefined;
  const output = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        responses ??= (await transport.stream(method as never, abort.signal, undefined, header, input() as never, undefined)).message[Symbol.asyncIterator]();
        const next = await responses.next();
        if (next.done !== true) {
          controller.enqueue(line({ result: toJson(method.output as DescMessage, next.value as never, { useProtoFieldName: true }) }));
          return;
        }
      } catch (error) {
        if (!abort.signal.aborted) {
          const connect = ConnectError.from(error);
          controller.enqueue(line({ error: { grpc_code: connect.code, http_code: httpStatusOfCode[connect.code] ?? 500, message: connect.rawMessage, http_status: "" } }));
        }
      }
      giveBack();
      try {
        controller.close();
      } catch {
        // already closed: the client went away
      }
    },
    cancel() {
      abort.abort();
      void responses?.return?.();
    },
  });
  return new Response(output, { status: 200, headers: { "content-type": "application/json", ...answeredByGrpc } });
}

/** The JSON values of a body written one after another (`{…}{…}` or one per line), as a JSON decoder reads a stream. */
function splitJsonValues(text: string): string[] {
  const values: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (start < 0) {
      if (char === "{" || char === "[") {
        start = i;
        depth = 1;
      } else if (char !== undefined && !/\s/.test(char)) {
        throw new ConnectError(`invalid character '${char}' looking for beginning of value`, Code.InvalidArgument);
      }
      continue;
    }
    if (inString) {
      if (escaped) escaped = false;
      else if (char === "\\") escaped = true;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") {
      depth--;
      if (depth === 0) {
        values.push(text.slice(start, i + 1));
        start = -1;
        if (values.length > streamingGatewayRequestsMax) throw new ConnectError("too many requests in one stream body", Code.ResourceExhausted);
      }
    }
  }
  if (start >= 0) throw new ConnectError("unexpected EOF", Code.InvalidArgument);
  return values;
}

/**
 * The metadata a gateway call carries to the services: the token, as
 * grpc-gateway forwards the Authorization header as `authorization`. No
 * client certificate's name is passed (etcd ignores it on gateway calls).
 */
function forwardedHeader(c: Context): Record<string, string> | undefined {
  const authorization = c.req.header("authorization");
  return authorization === undefined ? undefined : { authorization };
}

/** The request a JSON body stands for: an empty body or `null` is the empty message, as in etcd. */
function decodeRequest(text: string, schema: DescMessage, recursionLimit: number): unknown {
  const json = text === "" ? null : (JSON.parse(quoteLongIntegers(text)) as JsonValue);
  // etcd ignores unknown fields but refuses an unknown enum name, which
  // protobuf-es's ignoreUnknownFields would let through as the default.
  return fromJson(schema, knownFieldsOnly(json ?? {}, schema, recursionLimit), { recursionLimit });
}

/**
 * `json` without the fields `schema` does not define, at every level down to
 * `depthLeft`; a bytes field's string that Go's base64 refuses fails here, in
 * the gateway's words (see go-base64.ts).
 */
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
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES) checkGoBase64(value);
  if (field.fieldKind === "list" && field.listKind === "scalar" && field.scalar === ScalarType.BYTES && Array.isArray(value)) value.forEach(checkGoBase64);
  if (field.fieldKind === "message") return knownFieldsOnly(value, field.message, depthLeft);
  if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
    return value.map((item) => knownFieldsOnly(item, field.message, depthLeft));
  }
  if (field.fieldKind === "map" && field.mapKind === "message" && isJsonObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, knownFieldsOnly(item, field.message, depthLeft)]));
  }
  return value;
}

function checkGoBase64(value: JsonValue): void {
  if (typeof value !== "string") return;
  const errorOffset = goBase64ErrorOffset(value);
  if (errorOffset !== undefined) throw new ConnectError(goBase64Message(errorOffset), Code.InvalidArgument);
}

function isJsonObject(json: JsonValue): json is { [name: string]: JsonValue } {
  return typeof json === "object" && json !== null && !Array.isArray(json);
}

/**
 * Integer literals too long for a JavaScript number, written as strings
 * (protobuf's JSON takes int64 either way). Go's JSON decoder reads
 * `{"ID":5077746727278527983}` exactly; JSON.parse would round it to another
 * lease. etcd's API has no floating-point fields to spoil.
 */
function quoteLongIntegers(text: string): string {
  let out = "";
  let inString = false;
  let escaped = false;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (inString) {
      if (escaped) escaped = false;
      else if (char === "\\") escaped = true;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') {
      inString = true;
      continue;
    }
    if (char === "-" || (char >= "0" && char <= "9")) {
      let end = i + 1;
      while (end < text.length && (text[end] as string) >= "0" && (text[end] as string) <= "9") end++;
      const literal = text.slice(i, end);
      const next = text[end];
      if (literal.replace("-", "").length > 15 && next !== "." && next !== "e" && next !== "E") {
        out += `${text.slice(from, i)}"${literal}"`;
        from = end;
      }
      i = end - 1;
    }
  }
  return out + text.slice(from);
}

/**
 * Every decoding failure is InvalidArgument, as from etcd's gateway. Bad base64
 * has Go's text (checked before protobuf-es decodes); other texts are the JSON
 * parser's or protobuf-es's, not Go's.
 */
function decodeError(error: unknown): ConnectError {
  if (isNestingLimitError(error)) return nestingTooDeepError();
  if (error instanceof ConnectError) return error;
  return new ConnectError(error instanceof Error ? error.message : String(error), Code.InvalidArgument);
}

function declaredBytes(c: Context): number | undefined {
  const length = Number(c.req.header("content-length"));
  return Number.isSafeInteger(length) && length > 0 ? length : undefined;
}

/** Go's http.Error, as etcd's muxes answer: the text and a newline, plain text a browser must not sniff. */
export function goHttpError(c: Context, text: string, status: 404 | 405 | 503, headers: Record<string, string> = {}): Response {
  return c.body(`${text}\n`, status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", ...headers });
}

/**
 * grpc-gateway forwards the gRPC answer's header metadata: etcd's gateway
 * answers every call its server took with this header. (A call the server
 * refused carries it as an HTTP trailer instead, which we do not send.)
 */
const answeredByGrpc = { "grpc-metadata-content-type": "application/grpc" };

/** grpc-gateway's error body: `{"error", "message", "code"}` with the HTTP status of the code. */
function gatewayError(c: Context, error: ConnectError): Response {
  const status = httpStatusOfCode[error.code] ?? 500;
  return c.json({ error: error.rawMessage, message: error.rawMessage, code: error.code }, status as 400);
}
