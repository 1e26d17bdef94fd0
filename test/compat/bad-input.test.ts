// Bad input gets etcd's gRPC code and exact message, from etcd 3.4 and from
// edgetcd alike, and the node keeps serving afterwards.
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
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const putOp = (key: string) => create(RequestOpSchema, { request: { case: "requestPut", value: { key: bytes(key), value: bytes("v") } } });
const delOp = (key: string, rangeEnd = "") =>
  create(RequestOpSchema, { request: { case: "requestDeleteRange", value: { key: bytes(key), rangeEnd: bytes(rangeEnd) } } });

type Call = (client: Client<typeof KV>) => Promise<unknown>;

/** Requests etcd 3.4 accepts although they look wrong: we must answer the same. */
const acceptedByEtcd = new Set(["txn with unknown compare target", "txn with unknown compare result"]);

const cases: Array<[string, Call]> = [
  ["oversized put", (c) => c.put({ key: bytes("big"), value: new Uint8Array(1_600_000) })],
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
    const clientOf = (server: RunningServer) => createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
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
