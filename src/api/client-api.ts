// Everything the client port serves, runtime-neutral: the Connect routes
// (gRPC, gRPC-Web and Connect share them) and the HTTP app for the rest.
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import type { Hono } from "hono";
import { BrowserLease, BrowserWatch } from "../gen/edgetcd/v1/edgetcd_pb.ts";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../gen/etcdserverpb/rpc_pb.ts";
import { authInterceptor } from "./auth-context.ts";
import { authService } from "./auth-service.ts";
import { Election } from "../gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../gen/v3lockpb/v3lock_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { clusterService } from "./cluster-service.ts";
import type { CorsPolicy } from "./cors.ts";
import { createHttpApp } from "./http-app.ts";
import { kvService } from "./kv-service.ts";
import { learnerGate } from "./learner-gate.ts";
import { browserLeaseService, leaseService } from "./lease-service.ts";
import { electionService } from "./election-service.ts";
import { answerDecodeErrorsAsEtcd } from "./decode-errors.ts";
import { lockService } from "./lock-service.ts";
import { maintenanceService } from "./maintenance-service.ts";
import { browserWatchService } from "./browser-watch-service.ts";
import { messageNestingDepthMax, requestMessageBytesMax } from "./request-limits.ts";
import { watchService } from "./watch-service.ts";

export interface ClientApi {
  routes: (router: ConnectRouter) => void;
  routerOptions: ConnectRouterOptions;
  http: Hono;
  /** Which web origins may call (`--cors`); each runtime's listener applies it to every request. */
  cors: CorsPolicy;
  /**
   * Whether a gateway request (`/v3/...`) over TLS with a named client
   * certificate is refused: with --client-cert-auth and auth on, etcd answers
   * it 400 rather than run it as nobody while the client believes its
   * certificate counts. The runtime's listener sees the certificate and asks.
   */
  refusesNamedCertificateOnGateway: () => boolean;
}

/** etcd's answer to such a request (embed/serve.go), as plain text with status 400. */
export const gatewayCertificateRefusal = "CommonName of client sending a request against gateway will be ignored and not used as expected";

export function createClientApi(server: EtcdServer, metricsText: () => Promise<string>, cors: CorsPolicy = { kind: "all" }): ClientApi {
  const routes = (router: ConnectRouter) => {
    router.service(KV, kvService(server));
    router.service(Maintenance, maintenanceService(server));
    router.service(Cluster, clusterService(server));
    const watchFragmentBytes = requestMessageBytesMax(server.config.maxRequestBytes);
    router.service(Watch, watchService(server, watchFragmentBytes));
    router.service(BrowserWatch, browserWatchService(server, watchFragmentBytes));
    router.service(Lease, leaseService(server));
    router.service(BrowserLease, browserLeaseService(server));
    router.service(Lock, lockService(server));
    router.service(Election, electionService(server));
    router.service(Auth, authService(server));
    answerDecodeErrorsAsEtcd(router);
  };
  const recursionLimit = messageNestingDepthMax(server.config.maxTxnOps);
  const routerOptions: ConnectRouterOptions = {
    // Connect refuses a bigger message before reading it whole (the declared
    // length first, then bytes counted while reading) with ResourceExhausted, as grpc-go does.
    readMaxBytes: requestMessageBytesMax(server.config.maxRequestBytes),
    binaryOptions: { recursionLimit },
    jsonOptions: { recursionLimit },
    grpc: true,
    grpcWeb: true,
    connect: true,
    interceptors: [learnerGate(() => server.isLearnerMember), authInterceptor(server)],
  } as ConnectRouterOptions;
  return {
    routes,
    routerOptions,
    http: createHttpApp({ server, routes, routerOptions, metricsText }),
    cors,
    refusesNamedCertificateOnGateway: () => server.config.clientCertAuth && server.auth.enabled,
  };
}
