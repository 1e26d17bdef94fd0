// Every protocol on the client port refuses a message over the gRPC receive
// limit (--max-request-bytes + 512 KiB) with grpc-go's ResourceExhausted, and
// a txn nested past what the decoder follows with etcd's InvalidArgument; the
// connection keeps serving afterwards (an HTTP/1.1 body refused half-read used
// to leave the next request on its connection hanging).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { KV, RequestOpSchema, TxnRequestSchema, type TxnRequest } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

/** etcd's default --max-request-bytes plus its gRPC overhead. */
const messageBytesMax = 1_572_864 + 512 * 1024;
const bytes = (text: string) => new TextEncoder().encode(text);

function nestedTxn(depth: number): TxnRequest {
  let txn = create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestPut", value: { key: bytes("deep"), value: bytes("v") } } })] });
  for (let level = 0; level < depth; level++) {
    txn = create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestTxn", value: txn } })] });
  }
  return txn;
}

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the request was accepted");
}

describe("request limits on every protocol", () => {
  let edgetcd: RunningServer;
  before(async () => {
    edgetcd = await startEdgetcd();
  }, { timeout: 120_000 });
  after(async () => {
    await edgetcd?.stop();
  });

  const transports: Array<[string, (baseUrl: string) => Transport]> = [
    ["gRPC over HTTP/2", (baseUrl) => createGrpcTransport({ baseUrl })],
    ["gRPC-Web over HTTP/1.1", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect binary over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect JSON over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
    ["Connect binary over HTTP/2", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })],
  ];

  for (const [name, makeTransport] of transports) {
    test(`${name}: etcd's answers to an oversized and a too-deeply nested message; the connection keeps serving`, { timeout: 30_000 }, async () => {
      const kv = createClient(KV, makeTransport(`http://${edgetcd.endpoint}`));
      const tooBig = await refusal(kv.put({ key: bytes("big"), value: new Uint8Array(3_000_000) }));
      assert.equal(tooBig.code, Code.ResourceExhausted);
      assert.match(tooBig.rawMessage, new RegExp(`^grpc: received message larger than max \\(\\d+ vs\\. ${messageBytesMax}\\)$`));
      const put = await kv.put({ key: bytes("after-big"), value: bytes(name) }, { timeoutMs: 5_000 });
      assert.ok((put.header?.revision ?? 0n) > 0n);

      const tooDeep = await refusal(kv.txn(nestedTxn(400)));
      assert.equal(tooDeep.code, Code.InvalidArgument);
      assert.equal(tooDeep.rawMessage, "etcdserver: too many operations in txn request");
    });
  }

  test("the JSON gateway answers the next request on a connection whose body it refused", { timeout: 30_000 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string, body: string) =>
      new Promise<number>((resolve, reject) => {
        const request = http.request({ host: "127.0.0.1", port: edgetcd.clientPort, path, method: "POST", agent }, (response) => {
          response.resume();
          response.on("end", () => resolve(response.statusCode ?? 0));
        });
        request.on("error", reject);
        request.setTimeout(5_000, () => request.destroy(new Error(`${path}: no answer in 5 s`)));
        request.end(body);
      });
    try {
      const big = JSON.stringify({ key: Buffer.alloc(6_000_000, "a").toString("base64") });
      assert.equal(await post("/v3/kv/range", big), 429);
      assert.equal(await post("/v3/kv/put", JSON.stringify({ key: "YQ==", value: "dg==" })), 200);
    } finally {
      agent.destroy();
    }
  });
});
