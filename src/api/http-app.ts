// The HTTP side of the client port, one fetch handler (hono): etcd's health,
// version and metrics endpoints and its grpc-gateway JSON routes (`/v3/...`).
// Gateway calls go through the same Connect services in memory, so they get
// the same checks, interceptors and errors as gRPC.
import { Hono, type Context } from "hono";
import { fromJson, toJson, type DescMessage, type DescMethodUnary, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type Transport } from "@connectrpc/connect";
import { Cluster, KV, Maintenance } from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";

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
  ["/v3/maintenance/hash", Maintenance.method.hashKV],
  ["/v3/cluster/member/list", Cluster.method.memberList],
];

export interface HttpAppOptions {
  server: EtcdServer;
  routes: (router: ConnectRouter) => void;
  metricsText: () => Promise<string>;
}

export function createHttpApp(options: HttpAppOptions): Hono {
  const { server } = options;
  const app = new Hono();
  const health = (c: Context) => {
    const reason = server.healthProblem();
    return c.json(reason === undefined ? { health: "true", reason: "" } : { health: "false", reason }, reason ? 503 : 200);
  };
  app.get("/health", health);
  app.get("/livez", (c) => c.text("ok"));
  app.get("/readyz", (c) => (server.healthProblem() === undefined ? c.text("ok") : c.text("not ready", 503)));
  app.get("/version", (c) => c.json({ etcdserver: server.version, etcdcluster: server.clusterVersion }));
  app.get("/metrics", async (c) => c.text(await options.metricsText(), 200, { "content-type": "text/plain; version=0.0.4" }));

  const transport = createRouterTransport(options.routes);
  for (const [path, method] of gatewayRoutes) {
    app.post(path, (c) => callGateway(c, transport, method));
  }
  return app;
}

async function callGateway(c: Context, transport: Transport, method: DescMethodUnary): Promise<Response> {
  let body: JsonValue;
  try {
    const text = await c.req.text();
    body = text === "" ? {} : (JSON.parse(text) as JsonValue);
  } catch {
    return gatewayError(c, new ConnectError("unexpected end of JSON input", Code.InvalidArgument));
  }
  try {
    const request = fromJson(method.input as DescMessage, body, { ignoreUnknownFields: true });
    const response = await transport.unary(method, undefined, undefined, undefined, request as never, undefined);
    return c.json(toJson(method.output as DescMessage, response.message as never, { useProtoFieldName: true }) as object);
  } catch (error) {
    return gatewayError(c, ConnectError.from(error));
  }
}

function gatewayError(c: Context, error: ConnectError): Response {
  const status = httpStatusOfCode[error.code] ?? 500;
  return c.json({ error: error.rawMessage, message: error.rawMessage, code: error.code }, status as 400);
}
