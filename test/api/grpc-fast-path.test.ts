// The gRPC fast path (runtime/node/grpc-fast-path.ts) on the wire, beside
// etcd 3.4: what a gRPC client sees (headers, trailers or trailers-only,
// grpc-status, grpc-message) for answers and for every framing error grpc-go
// names, and a deadline on a stream. The same calls through Connect
// (EDGETCD_GRPC_FAST_PATH=0) give etcd's answers where Connect can.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PutRequestSchema, PutResponseSchema, RangeRequestSchema, WatchRequestSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { etcdBesideEdgetcd, startEdgetcd, type RunningServer } from "../support/processes.ts";

interface RawAnswer {
  /** Response header names, pseudo-headers and `date` left out. */
  headerNames: string[];
  /** Whether grpc-status came in the response headers (trailers-only). */
  trailersOnly: boolean;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Buffer;
}

function envelope(message: Uint8Array, flags = 0, declaredLength = message.length): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = flags;
  frame.writeUInt32BE(declaredLength, 1);
  frame.set(message, 5);
  return frame;
}

/** One raw gRPC call: `body` as sent, half-closed unless `keepOpen`. */
function rawCall(endpoint: string, path: string, body: Buffer, options: { headers?: Record<string, string>; keepOpen?: boolean } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${endpoint}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...options.headers });
    const answer: RawAnswer = { headerNames: [], trailersOnly: false, grpcStatus: undefined, grpcMessage: undefined, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) answer.grpcStatus = String(headers["grpc-status"]);
      if (headers["grpc-message"] !== undefined) answer.grpcMessage = String(headers["grpc-message"]);
    };
    stream.on("response", (headers) => {
      answer.headerNames = Object.keys(headers)
        .filter((name) => !name.startsWith(":") && name !== "date")
        .sort();
      answer.trailersOnly = headers["grpc-status"] !== undefined;
      take(headers);
    });
    stream.on("trailers", take);
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    const done = () => {
      answer.body = Buffer.concat(chunks);
      session.close();
      resolve(answer);
    };
    stream.on("close", done);
    stream.on("error", () => {
      // A reset after the answer: what was answered is the result.
    });
    if (options.keepOpen === true) stream.write(body);
    else stream.end(body);
  });
}

const put = (key: string) => toBinary(PutRequestSchema, create(PutRequestSchema, { key: new TextEncoder().encode(key), value: new TextEncoder().encode("v") }));

/** Calls whose answer must be etcd's, status and text. */
const statusCases: Array<{ name: string; path: string; body: () => Buffer; etcdLevel: boolean }> = [
  { name: "an etcd error (empty key)", path: "/etcdserverpb.KV/Range", body: () => envelope(toBinary(RangeRequestSchema, create(RangeRequestSchema, {}))), etcdLevel: true },
  { name: "a compressed frame without grpc-encoding", path: "/etcdserverpb.KV/Put", body: () => envelope(put("c"), 1), etcdLevel: false },
  { name: "an unknown payload flag", path: "/etcdserverpb.KV/Put", body: () => envelope(put("f"), 2), etcdLevel: false },
  { name: "a message declared over the receive limit", path: "/etcdserverpb.KV/Put", body: () => envelope(put("big"), 0, 3 * 1024 * 1024), etcdLevel: false },
];

describe("the gRPC fast path, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd();
  let connectOnly: RunningServer | undefined;
  before(async () => {
    connectOnly = await startEdgetcd({ env: { EDGETCD_GRPC_FAST_PATH: "0" } });
  }, { timeout: 60_000 });
  after(async () => {
    await connectOnly?.stop();
  });

  test("a put is answered as grpc-go answers: headers, one message, then grpc-status 0 and an empty grpc-message", async () => {
    const [etcd, edgetcd] = await Promise.all([servers.etcd, servers.edgetcd].map((server) => rawCall(server.endpoint, "/etcdserverpb.KV/Put", envelope(put("a")))));
    for (const answer of [etcd, edgetcd]) {
      assert.equal(answer?.trailersOnly, false);
      assert.equal(answer?.grpcStatus, "0");
      assert.equal(answer?.grpcMessage, "");
      const body = answer?.body as Buffer;
      assert.equal(body.readUInt32BE(1), body.length - 5);
      assert.ok((fromBinary(PutResponseSchema, body.subarray(5)).header?.revision ?? 0n) > 0n);
    }
    assert.deepEqual(edgetcd?.headerNames, etcd?.headerNames);
  });

  for (const { name, path, body, etcdLevel } of statusCases) {
    test(`${name}: trailers-only, etcd's grpc-status and grpc-message`, async () => {
      const etcd = await rawCall(servers.etcd.endpoint, path, body());
      const edgetcd = await rawCall(servers.edgetcd.endpoint, path, body());
      assert.notEqual(etcd.grpcStatus, "0");
      assert.deepEqual(
        { trailersOnly: edgetcd.trailersOnly, status: edgetcd.grpcStatus, message: edgetcd.grpcMessage, headers: edgetcd.headerNames },
        { trailersOnly: etcd.trailersOnly, status: etcd.grpcStatus, message: etcd.grpcMessage, headers: etcd.headerNames },
      );
      if (etcdLevel) {
        const connect = await rawCall((connectOnly as RunningServer).endpoint, path, body());
        assert.deepEqual({ status: connect.grpcStatus, message: connect.grpcMessage }, { status: etcd.grpcStatus, message: etcd.grpcMessage });
      }
    });
  }

  test("bytes that are not the request message: grpc-go's unmarshalling error, code Internal", async () => {
    const garbage = envelope(Buffer.from([0xff, 0xff, 0xff]));
    const [etcd, edgetcd] = await Promise.all([servers.etcd, servers.edgetcd].map((server) => rawCall(server.endpoint, "/etcdserverpb.KV/Put", garbage)));
    assert.equal(edgetcd?.grpcStatus, etcd?.grpcStatus);
    const prefix = "grpc: error unmarshalling request: ";
    assert.ok(etcd?.grpcMessage?.startsWith(prefix), etcd?.grpcMessage);
    assert.ok(edgetcd?.grpcMessage?.startsWith(prefix), edgetcd?.grpcMessage);
  });

  test("a grpc-timeout longer than a timer holds (99999999H) is no deadline, as in etcd", async () => {
    const call = (server: RunningServer) => rawCall(server.endpoint, "/etcdserverpb.KV/Put", envelope(put("t")), { headers: { "grpc-timeout": "99999999H" } });
    const [etcd, edgetcd] = await Promise.all([call(servers.etcd), call(servers.edgetcd)]);
    assert.equal(etcd.grpcStatus, "0");
    assert.equal(edgetcd.grpcStatus, "0");
  });

  test("a unary call that sends message after message is refused at the second; the member serves on", async () => {
    const flood = Buffer.concat(Array.from({ length: 2000 }, (_, n) => envelope(put(`flood/${n}`))));
    const answer = await rawCall(servers.edgetcd.endpoint, "/etcdserverpb.KV/Put", flood);
    assert.equal(answer.grpcStatus, "12");
    assert.equal(answer.grpcMessage, "protocol error: received extra input message for unary method");
    const after = await rawCall(servers.edgetcd.endpoint, "/etcdserverpb.KV/Put", envelope(put("after")));
    assert.equal(after.grpcStatus, "0");
  });

  test("a watch stream past its grpc-timeout ends with etcd's status", async () => {
    const request = toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: new TextEncoder().encode("w") } } }));
    const call = (server: RunningServer) => rawCall(server.endpoint, "/etcdserverpb.Watch/Watch", envelope(request), { headers: { "grpc-timeout": "300m" }, keepOpen: true });
    const [etcd, edgetcd] = await Promise.all([call(servers.etcd), call(servers.edgetcd)]);
    // etcd answers DeadlineExceeded (4) or, when its watch handler's
    // ctx.Err() wins the race, Unknown (2); both with the context's text.
    for (const answer of [etcd, edgetcd]) {
      assert.ok(answer.grpcStatus === "4" || answer.grpcStatus === "2", `grpc-status ${answer.grpcStatus}`);
      assert.equal(answer.grpcMessage, "context deadline exceeded");
    }
    // The created response came before the deadline.
    assert.ok(edgetcd.body.length > 5);
  });
});
