// The real etcdctl (3.4) against a bare h2c gRPC endpoint that only knows our
// generated schema: what etcdctl sends must decode to the request we expect,
// and what we answer must print as etcd's answer would. This checks the
// schema against etcd's own Go code, not against our reading of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  MemberListRequestSchema,
  MemberListResponseSchema,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  RangeResponseSchema,
  TxnRequestSchema,
  TxnResponseSchema,
  Compare_CompareResult,
  Compare_CompareTarget,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";

const ETCDCTL = process.env["ETCDCTL"] ?? "etcdctl";
const text = (value: string) => new TextEncoder().encode(value);
const header = { clusterId: 0x1000n, memberId: 0x2000n, revision: 9n, raftTerm: 2n };

type Handler = { request: DescMessage; response: DescMessage; answer: () => MessageInitShape<DescMessage> };

// Ties each canned answer to its response schema so tsc checks its fields.
function handler<Response extends DescMessage>(
  request: DescMessage,
  response: Response,
  answer: () => MessageInitShape<Response>,
): Handler {
  return { request, response, answer: answer as () => MessageInitShape<DescMessage> };
}

// Serves exactly one gRPC call per path and records the decoded requests.
async function withFakeServer(
  handlers: Record<string, Handler>,
  body: (endpoint: string, seen: Map<string, unknown>) => Promise<void>,
) {
  const seen = new Map<string, unknown>();
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    const handler = handlers[path];
    const chunks: Uint8Array[] = [];
    stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    stream.on("end", () => {
      if (!handler) {
        stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
        return;
      }
      const frame = Buffer.concat(chunks);
      // gRPC message framing: 1 byte compressed flag, 4 bytes big-endian length.
      assert.equal(frame[0], 0);
      const length = frame.readUInt32BE(1);
      seen.set(path, fromBinary(handler.request, new Uint8Array(frame.subarray(5, 5 + length))));
      const payload = toBinary(handler.response, create(handler.response, handler.answer()));
      const out = Buffer.alloc(5 + payload.length);
      out.writeUInt32BE(payload.length, 1);
      out.set(payload, 5);
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await body(`127.0.0.1:${port}`, seen);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function etcdctl(endpoint: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      ETCDCTL,
      [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=3s", ...args],
      { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 10_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

function decoded<Desc extends DescMessage>(seen: Map<string, unknown>, path: string, _schema: Desc): MessageShape<Desc> {
  const message = seen.get(path);
  assert.ok(message, `etcdctl did not call ${path}`);
  return message as MessageShape<Desc>;
}

test("etcdctl get with sort, limit, revision and serializable decodes, and our reply prints", async () => {
  const handlers = {
    "/etcdserverpb.KV/Range": handler(
      RangeRequestSchema,
      RangeResponseSchema,
      () => ({
        header,
        kvs: [{ key: text("foo"), value: text("bar"), createRevision: 3n, modRevision: 4n, version: 2n }],
        count: 1n,
      }),
    ),
  };
  await withFakeServer(handlers, async (endpoint, seen) => {
    const out = await etcdctl(endpoint, [
      "get", "foo", "--prefix", "--limit=5", "--rev=7", "--consistency=s", "--order=DESCEND", "--sort-by=MODIFY",
    ]);
    assert.equal(out, "foo\nbar\n");
    const request = decoded(seen, "/etcdserverpb.KV/Range", RangeRequestSchema);
    assert.equal(new TextDecoder().decode(request.key), "foo");
    assert.equal(new TextDecoder().decode(request.rangeEnd), "fop");
    assert.equal(request.limit, 5n);
    assert.equal(request.revision, 7n);
    assert.equal(request.serializable, true);
    assert.equal(request.sortOrder, RangeRequest_SortOrder.DESCEND);
    assert.equal(request.sortTarget, RangeRequest_SortTarget.MOD);
  });
});

test("etcdctl put with prev-kv and lease decodes, and the prev kv prints", async () => {
  const handlers = {
    "/etcdserverpb.KV/Put": handler(
      PutRequestSchema,
      PutResponseSchema,
      () => ({ header, prevKv: { key: text("foo"), value: text("old"), modRevision: 8n } }),
    ),
  };
  await withFakeServer(handlers, async (endpoint, seen) => {
    const out = await etcdctl(endpoint, ["put", "foo", "bar", "--prev-kv", "--lease=1a2b"]);
    assert.equal(out, "OK\nfoo\nold\n");
    const request = decoded(seen, "/etcdserverpb.KV/Put", PutRequestSchema);
    assert.equal(new TextDecoder().decode(request.value), "bar");
    assert.equal(request.lease, 0x1a2bn);
    assert.equal(request.prevKv, true);
  });
});

test("etcdctl txn compare on mod revision decodes", async () => {
  const handlers = {
    "/etcdserverpb.KV/Txn": handler(
      TxnRequestSchema,
      TxnResponseSchema,
      () => create(TxnResponseSchema, { header, succeeded: true, responses: [{ response: { case: "responsePut", value: { header } } }] }),
    ),
  };
  await withFakeServer(handlers, async (endpoint, seen) => {
    const script = 'mod("k") > "5"\n\nput k v\n\n\n';
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        ETCDCTL,
        [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=3s", "txn"],
        { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 10_000 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
      );
      child.stdin?.end(script);
    });
    assert.equal(out, "SUCCESS\n\nOK\n");
    const request = decoded(seen, "/etcdserverpb.KV/Txn", TxnRequestSchema);
    assert.equal(request.compare.length, 1);
    const compare = request.compare[0]!;
    assert.equal(compare.result, Compare_CompareResult.GREATER);
    assert.equal(compare.target, Compare_CompareTarget.MOD);
    assert.deepEqual(compare.targetUnion, { case: "modRevision", value: 5n });
    const put = request.success[0]?.request;
    assert.equal(put?.case, "requestPut");
    assert.equal(new TextDecoder().decode(put?.case === "requestPut" ? put.value.key : undefined), "k");
  });
});

test("etcdctl member list prints our members, learner flag included", async () => {
  const handlers = {
    "/etcdserverpb.Cluster/MemberList": handler(
      MemberListRequestSchema,
      MemberListResponseSchema,
      () => ({
        header,
        members: [
          { ID: 0x8e9e05c52164694dn, name: "infra1", peerURLs: ["http://127.0.0.1:2380"], clientURLs: ["http://127.0.0.1:2379"] },
          { ID: 0x91bc3c398fb3c146n, name: "infra2", peerURLs: ["http://127.0.0.1:22380"], isLearner: true },
        ],
      }),
    ),
  };
  await withFakeServer(handlers, async (endpoint) => {
    const out = await etcdctl(endpoint, ["member", "list"]);
    assert.equal(
      out,
      "8e9e05c52164694d, started, infra1, http://127.0.0.1:2380, http://127.0.0.1:2379, false\n" +
        "91bc3c398fb3c146, started, infra2, http://127.0.0.1:22380, , true\n",
    );
  });
});
