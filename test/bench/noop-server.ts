// A KV service that does nothing (Put and Range answer a constant), served one
// of three ways, for the transport's share of a call (test/bench/transport.ts):
//   raw      node:http2's stream API with gRPC framing by hand: the floor
//   edgetcd  edgetcd's client listener (frame guard, :authority rewriter,
//            session limits) and its gRPC fast path, as a member serves it
//   connect  Connect's Node adapter on a plain node:http2 server
// Prints the port it listens on, then serves until killed.
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { createConnectRouter } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { KV, PutResponseSchema, RangeResponseSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { ClientApi } from "../../src/api/client-api.ts";
import { grpcFastPath } from "../../runtime/node/grpc-fast-path.ts";
import { listenHttp } from "../../runtime/node/http-listener.ts";
import { UnaryFairness } from "../../runtime/node/unary-fairness.ts";

const mode = process.argv[2] ?? "raw";
const header = { clusterId: 1n, memberId: 1n, revision: 1n, raftTerm: 1n };
const putAnswer = create(PutResponseSchema, { header });
const rangeAnswer = create(RangeResponseSchema, { header });
const implementation = { put: () => putAnswer, range: () => rangeAnswer };

let port: number;
if (mode === "raw") {
  const putFrame = encodeEnvelope(0, toBinary(PutResponseSchema, putAnswer));
  const rangeFrame = encodeEnvelope(0, toBinary(RangeResponseSchema, rangeAnswer));
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const frame = headers[":path"] === "/etcdserverpb.KV/Range" ? rangeFrame : putFrame;
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "" }));
      stream.end(frame);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
} else if (mode === "connect") {
  const handler = connectNodeAdapter({ routes: (router) => router.service(KV, implementation as never) });
  const server = http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
} else {
  const routes = (router: ReturnType<typeof createConnectRouter>) => router.service(KV, implementation as never);
  const api = { services: [{ service: KV, implementation }], interceptors: [], readMaxBytes: 2 * 1024 * 1024, recursionLimit: 100, countGrpcBytes: () => {} } as unknown as ClientApi;
  const connect = connectNodeAdapter({ routes });
  const listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    handleHttp2: connect,
    claimHttp2Stream: grpcFastPath(api, { fairness: new UnaryFairness() }),
  });
  port = listener.port;
}
console.log(port);
