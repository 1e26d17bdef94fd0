// Serves the client API on one URL: Connect's Node adapter for RPCs (gRPC over
// HTTP/2; gRPC-Web and Connect over either), the hono app for everything else.
// Every request first passes the `--cors` policy (src/api/cors.ts).
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createContextValues, type ContextValues } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { clientCommonNameKey } from "../../src/api/auth-context.ts";
import { getRequestListener } from "@hono/node-server";
import { gatewayCertificateRefusal, type ClientApi } from "../../src/api/client-api.ts";
import type { ClientListenerOptions } from "../../src/cli/edgetcd.ts";
import { corsHeaders, type CorsPolicy } from "../../src/api/cors.ts";
import { clientTlsListenOptions } from "./client-tls.ts";
import { listenAddressOf, listenHttp, tlsSocketOf, tlsSocketOfStream, writeHead, type Listener, type NodeRequestHandler, type StreamClaim } from "./http-listener.ts";
import { grpcFastPath } from "./grpc-fast-path.ts";
import type * as tls from "node:tls";
import { clientTransportLimits } from "./transport-limits.ts";
import { closingAfterUnreadBody } from "./unread-body.ts";
import { BrowserLease, BrowserWatch } from "../../src/gen/edgetcd/v1/edgetcd_pb.ts";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { answeringUnknownGrpcMethods } from "./grpc-unimplemented.ts";
import { Election } from "../../src/gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { streamingPaths, UnaryFairness, withUnaryFairness } from "./unary-fairness.ts";
import { withGrpcGoMessages } from "./grpc-message.ts";

/** The services the client port serves (src/api/client-api.ts registers them). */
const servedServices = [KV, Watch, Lease, Maintenance, Cluster, Auth, Lock, Election, BrowserWatch, BrowserLease];
/** Calls that stay open (watch, keep-alive, snapshot, observe): not counted against a connection's unary share. */
const streamingCallPaths = streamingPaths(servedServices);

export async function serveClientApi(api: ClientApi, url: URL, options: ClientListenerOptions): Promise<Listener> {
  const listener = await bindClientApi(url, options);
  listener.serve(api);
  return listener;
}

/**
 * Requests held while a bound listener waits for its API (the member is still
 * starting); past this many, a request is answered 503 at once.
 */
export const requestsWaitingForStartMax = 1024;

/**
 * Binds the client port without serving it yet: etcd binds every listener
 * before it touches the data dir, so a port in use fails the start at once
 * and creates nothing (issue 25). Requests that arrive before `serve` wait
 * for it (up to requestsWaitingForStartMax), as connections wait in etcd's
 * accept backlog.
 */
export async function bindClientApi(url: URL, options: ClientListenerOptions): Promise<Listener & { serve(api: ClientApi): void }> {
  let handlers: { http2: NodeRequestHandler; http1: NodeRequestHandler | undefined; claim: StreamClaim | undefined } | undefined;
  const waiting: Array<() => void> = [];
  const deferred =
    (pick: (ready: NonNullable<typeof handlers>) => NodeRequestHandler | undefined): NodeRequestHandler =>
    (request, response) => {
      const run = () => (pick(handlers as NonNullable<typeof handlers>) ?? refuse)(request, response);
      if (handlers !== undefined) run();
      else if (waiting.length < requestsWaitingForStartMax) waiting.push(run);
      else refuse(request, response);
    };
  const listener = await listenHttp({
    ...listenAddressOf(url),
    handleHttp2: deferred((ready) => ready.http2),
    // Until the member serves, a stream waits on the compatibility path with the rest.
    claimHttp2Stream: (stream, headers) => handlers?.claim?.(stream, headers) ?? false,
    handleHttp1: options.http ? deferred((ready) => ready.http1) : undefined,
    limits: clientTransportLimits(options.transport),
    ...(options.tls === undefined ? {} : { tls: clientTlsListenOptions(options.tls) }),
  });
  return {
    ...listener,
    serve(api) {
      handlers = clientHandlers(api, options);
      for (const run of waiting.splice(0)) run();
    },
  };
}

function clientHandlers(api: ClientApi, options: ClientListenerOptions): { http2: NodeRequestHandler; http1: NodeRequestHandler | undefined; claim: StreamClaim | undefined } {
  if (options.metricsOnly === true) {
    // etcd's metrics mux: no RPCs, no gateway, no CORS.
    const metricsHandler = getRequestListener(api.metricsHttp.fetch);
    const metrics: NodeRequestHandler = (request, response) => void metricsHandler(request as never, response as never);
    return { http2: metrics, http1: metrics, claim: undefined };
  }
  const httpHandler = getRequestListener(api.http.fetch);
  const rpcHandler = connectNodeAdapter({
    ...api.routerOptions,
    routes: api.routes,
    ...(options.tls === undefined ? {} : { contextValues: (request: http.IncomingMessage | http2.Http2ServerRequest) => certificateContext(tlsSocketOf(request)) }),
    fallback: answeringUnknownGrpcMethods(servedServices, (request, response) => void httpHandler(request as never, response as never)) as never,
  });
  const httpOnly: NodeRequestHandler = (request, response) => void httpHandler(request as never, response as never);
  const gatewayGuard = options.tls === undefined ? (handler: NodeRequestHandler) => handler : (handler: NodeRequestHandler) => refusingNamedCertificateOnGateway(api, handler);
  const fairness = new UnaryFairness();
  // etcd clients' gRPC goes straight to the services (grpc-fast-path.ts); the rest through Connect.
  const claim =
    options.grpc && process.env.EDGETCD_GRPC_FAST_PATH !== "0"
      ? grpcFastPath(api, { fairness, ...(options.tls === undefined ? {} : { contextValuesOf: (stream: http2.ServerHttp2Stream) => certificateContext(tlsSocketOfStream(stream)) }) })
      : undefined;
  return {
    http2: withCors(api.cors, gatewayGuard(withUnaryFairness(options.grpc ? withGrpcGoMessages(rpcHandler) : httpOnly, streamingCallPaths, fairness))),
    http1: options.http ? withCors(api.cors, gatewayGuard(closingAfterUnreadBody(rpcHandler))) : undefined,
    claim,
  };
}

/**
 * The CommonName of the client certificate the TLS handshake verified, for
 * --client-cert-auth (src/api/auth-context.ts). Only a certificate that
 * chained to the trusted CA counts (`authorized`); the gateway's in-memory
 * calls never get here.
 */
function certificateContext(socket: tls.TLSSocket | undefined): ContextValues {
  const values = createContextValues();
  if (socket?.authorized === true) {
    const subject = socket.getPeerCertificate().subject as { CN?: string | string[] } | undefined;
    const commonName = Array.isArray(subject?.CN) ? subject.CN[0] : subject?.CN;
    if (commonName !== undefined && commonName !== "") values.set(clientCommonNameKey, commonName);
  }
  return values;
}

/** etcd's refusal of a gateway call made with a named client certificate (see ClientApi). */
function refusingNamedCertificateOnGateway(api: ClientApi, handler: NodeRequestHandler): NodeRequestHandler {
  return (request, response) => {
    if (request.url?.startsWith("/v3/") && api.refusesNamedCertificateOnGateway() && certificateContext(tlsSocketOf(request)).get(clientCommonNameKey) !== undefined) {
      writeHead(response, 400, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
      response.end(`${gatewayCertificateRefusal}\n`);
      return;
    }
    handler(request, response);
  };
}

/** Too many requests while starting: try again. */
const refuse: NodeRequestHandler = (_request, response) => {
  response.statusCode = 503;
  response.end();
};

/** Adds the CORS headers before the handler writes its head, and answers every OPTIONS request itself, as etcd does. */
function withCors(policy: CorsPolicy, handler: NodeRequestHandler): NodeRequestHandler {
  return (request, response) => {
    const origin = request.headers.origin;
    const preflight = request.method === "OPTIONS";
    for (const [name, value] of corsHeaders(policy, typeof origin === "string" ? origin : undefined, preflight)) {
      response.setHeader(name, value);
    }
    if (preflight) {
      response.statusCode = 200;
      response.end();
      return;
    }
    handler(request, response);
  };
}
