// Bad input gets etcd's gRPC code and exact message, from etcd 3.4 and from
// edgetcd alike, and the node keeps serving afterwards. The JSON gateway gets
// etcd's HTTP status, gRPC code and error shape (and its message where the
// text is etcd's or grpc-go's own, not Go's JSON decoder's).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  KV,
  RangeRequest_SortOrder,
  RequestOpSchema,
  TxnRequestSchema,
  type TxnRequest,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const putOp = (key: string) => create(RequestOpSchema, { request: { case: "requestPut", value: { key: bytes(key), value: bytes("v") } } });
const delOp = (key: string, rangeEnd = "") =>
  create(RequestOpSchema, { request: { case: "requestDeleteRange", value: { key: bytes(key), rangeEnd: bytes(rangeEnd) } } });

type Call = (client: Client<typeof KV>) => Promise<unknown>;

/** A txn holding a txn … `depth` times, a put at the bottom. */
function nestedTxn(depth: number): TxnRequest {
  let txn = create(TxnRequestSchema, { success: [putOp("deep")] });
  for (let level = 0; level < depth; level++) {
    txn = create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestTxn", value: txn } })] });
  }
  return txn;
}

/** Requests etcd 3.4 accepts although they look wrong: we must answer the same. */
const acceptedByEtcd = new Set(["txn with unknown compare target", "txn with unknown compare result"]);

const cases: Array<[string, Call]> = [
  ["oversized put", (c) => c.put({ key: bytes("big"), value: new Uint8Array(1_600_000) })],
  ["put over the gRPC receive limit", (c) => c.put({ key: bytes("big"), value: new Uint8Array(3_000_000) })],
  ["txn nested deeper than --max-txn-ops", (c) => c.txn(nestedTxn(129))],
  ["txn nested deeper than the decoder follows", (c) => c.txn(nestedTxn(400))],
  ["empty key range", (c) => c.range({ key: new Uint8Array(0) })],
  ["empty key put", (c) => c.put({ key: new Uint8Array(0), value: bytes("v") })],
  ["txn with duplicate put keys", (c) => c.txn({ success: [putOp("dup"), putOp("dup")] })],
  ["txn with put inside deleted range", (c) => c.txn({ success: [delOp("a", "c"), putOp("b")] })],
  ["txn with too many ops", (c) => c.txn({ success: Array.from({ length: 129 }, (_, i) => putOp(`k${i}`)) })],
  [
    "txn with unknown compare target",
    (c) =>
      c.txn({
        compare: [create(CompareSchema, { key: bytes("a"), target: 9 as Compare_CompareTarget, result: Compare_CompareResult.EQUAL })],
        success: [putOp("x")],
      }),
  ],
  [
    "txn with unknown compare result",
    (c) =>
      c.txn({
        compare: [
          create(CompareSchema, {
            key: bytes("a"),
            target: Compare_CompareTarget.VERSION,
            result: 9 as Compare_CompareResult,
            targetUnion: { case: "version", value: 1n },
          }),
        ],
        success: [putOp("x")],
      }),
  ],
  ["range at a future revision", (c) => c.range({ key: bytes("a"), revision: 1_000_000n })],
  ["compact a future revision", (c) => c.compact({ revision: 1_000_000n })],
  ["put with ignore_value on a missing key", (c) => c.put({ key: bytes("missing"), ignoreValue: true })],
  ["put with ignore_value and a value", (c) => c.put({ key: bytes("missing"), value: bytes("v"), ignoreValue: true })],
];

async function outcome(client: Client<typeof KV>, call: Call): Promise<string> {
  try {
    await call(client);
    return "ok";
  } catch (error) {
    const connectError = ConnectError.from(error);
    return `${connectError.code} ${connectError.rawMessage}`;
  }
}

// etcd 3.4 crashes on an unknown sort value; we answer as etcd 3.5 does.
const edgetcdOnly: Array<[string, Call, string]> = [
  ["invalid sort order", (c) => c.range({ key: bytes("a"), sortOrder: 7 as RangeRequest_SortOrder }), "3 etcdserver: invalid sort option"],
];

describe("bad input", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("each bad request gets etcd's code and message, and the node keeps serving", async () => {
    // The client decodes answers nested as deep as etcd sends them.
    const transportOf = (server: RunningServer) => createGrpcTransport({ baseUrl: `http://${server.endpoint}`, binaryOptions: { recursionLimit: 1000 } });
    const clientOf = (server: RunningServer) => createClient(KV, transportOf(server));
    const etcdClient = clientOf(etcd);
    const edgetcdClient = clientOf(edgetcd);
    for (const [name, call] of cases) {
      const expected = await outcome(etcdClient, call);
      const actual = await outcome(edgetcdClient, call);
      if (!acceptedByEtcd.has(name)) assert.notEqual(expected, "ok", `${name}: etcd refuses it`);
      assert.equal(actual, expected, name);
      const after = await edgetcdClient.put({ key: bytes("alive"), value: bytes(name) });
      assert.ok((after.header?.revision ?? 0n) > 0n, `${name}: the node still serves writes`);
    }
    for (const [name, call, expected] of edgetcdOnly) assert.equal(await outcome(edgetcdClient, call), expected, name);
  });
});

// --- the JSON gateway ---------------------------------------------------------

/** A body of `bytes` bytes sent in chunks, with no content-length. */
function streamedBody(text: string): ReadableStream<Uint8Array> {
  const data = bytes(text);
  const chunkBytes = 64 * 1024;
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= data.length) return controller.close();
      controller.enqueue(data.subarray(offset, offset + chunkBytes));
      offset += chunkBytes;
    },
  });
}

const base64Of = (length: number) => Buffer.alloc(length, "a").toString("base64");
const nestedTxnJson = (depth: number) => {
  let json = '{"success":[{"request_put":{"key":"ZGVlcA==","value":"dg=="}}]}';
  for (let level = 0; level < depth; level++) json = `{"success":[{"request_txn":${json}}]}`;
  return json;
};

interface GatewayCase {
  name: string;
  path: string;
  body: () => string | ReadableStream<Uint8Array>;
  /** Whether edgetcd's message must be etcd's too (not a Go JSON decoder's text). */
  sameMessage: boolean;
}

const gatewayCases: GatewayCase[] = [
  // 2.8 MB of JSON, a 2.1 MB message: refused by the gRPC receive limit after decoding.
  { name: "range over the gRPC receive limit", path: "/v3/kv/range", body: () => JSON.stringify({ key: base64Of(2_100_000) }), sameMessage: true },
  // A body that could never fit, refused before it is read whole.
  { name: "range far over the limit", path: "/v3/kv/range", body: () => JSON.stringify({ key: base64Of(6_000_000) }), sameMessage: false },
  { name: "put far over the limit, streamed without a length", path: "/v3/kv/put", body: () => streamedBody(JSON.stringify({ key: "YQ==", value: base64Of(6_000_000) })), sameMessage: false },
  { name: "wrong-typed key", path: "/v3/kv/range", body: () => '{"key": 5}', sameMessage: false },
  { name: "wrong-typed bool", path: "/v3/kv/range", body: () => '{"key": "YQ==", "serializable": "yes"}', sameMessage: false },
  { name: "fractional int64", path: "/v3/kv/range", body: () => '{"key": "YQ==", "limit": 1.5}', sameMessage: false },
  { name: "unknown enum name", path: "/v3/kv/range", body: () => '{"key": "YQ==", "sort_order": "BOGUS", "unknown_field": 1}', sameMessage: false },
  // Go's base64.StdEncoding (padding required, no URL-safe alphabet) with Go's words, at any depth.
  { name: "bad base64", path: "/v3/kv/put", body: () => '{"key": "!!!", "value": "dg=="}', sameMessage: true },
  { name: "base64 without its padding", path: "/v3/kv/put", body: () => '{"key": "YQ", "value": "dg=="}', sameMessage: true },
  { name: "URL-safe base64", path: "/v3/kv/put", body: () => '{"key": "YQ==", "value": "a-b_"}', sameMessage: true },
  { name: "base64 going on after its padding", path: "/v3/kv/range", body: () => '{"key": "YQ==YQ=="}', sameMessage: true },
  { name: "bad base64 in a txn compare", path: "/v3/kv/txn", body: () => '{"compare": [{"key": "YQ=", "target": "VALUE", "value": "YQ=="}]}', sameMessage: true },
  { name: "truncated JSON", path: "/v3/kv/range", body: () => '{"key": ', sameMessage: false },
  { name: "an array for a request", path: "/v3/kv/range", body: () => "[1]", sameMessage: false },
  { name: "null for a request", path: "/v3/kv/range", body: () => "null", sameMessage: true },
  { name: "txn nested 1,000 deep", path: "/v3/kv/txn", body: () => nestedTxnJson(1000), sameMessage: true },
];

interface GatewayOutcome {
  status: number;
  code: unknown;
  keys: string;
  message: unknown;
}

async function gatewayOutcome(server: RunningServer, gatewayCase: GatewayCase): Promise<GatewayOutcome> {
  const body = gatewayCase.body();
  const init = { method: "POST", body, ...(typeof body === "string" ? {} : { duplex: "half" }) } as RequestInit;
  const response = await fetch(`http://${server.endpoint}${gatewayCase.path}`, init);
  const json = (await response.json()) as Record<string, unknown>;
  return { status: response.status, code: json.code, keys: Object.keys(json).sort().join(","), message: json.message };
}

describe("bad input on the JSON gateway", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("each bad body gets etcd's status, code and error shape, and the node keeps serving", { timeout: 120_000 }, async () => {
    const client = createClient(KV, createGrpcTransport({ baseUrl: `http://${edgetcd.endpoint}` }));
    for (const gatewayCase of gatewayCases) {
      const expected = await gatewayOutcome(etcd, gatewayCase);
      const actual = await gatewayOutcome(edgetcd, gatewayCase);
      assert.notEqual(expected.status, 200, `${gatewayCase.name}: etcd refuses it`);
      assert.equal(expected.keys, "code,error,message", `${gatewayCase.name}: etcd's error shape`);
      const comparable = (outcome: GatewayOutcome) => ({ ...outcome, message: gatewayCase.sameMessage ? outcome.message : "" });
      assert.deepEqual(comparable(actual), comparable(expected), gatewayCase.name);
      const after = await client.put({ key: bytes("alive"), value: bytes(gatewayCase.name) });
      assert.ok((after.header?.revision ?? 0n) > 0n, `${gatewayCase.name}: the node still serves writes`);
    }
  });
});
