// Everything the client port serves, runtime-neutral: the Connect routes
// (gRPC, gRPC-Web and Connect share them) and the HTTP app for the rest.
import type { Registry } from "prom-client";
import { grpcMetricsInterceptor } from "./grpc-metrics.ts";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ConnectRouterOptions, Interceptor, ServiceImpl } from "@connectrpc/connect";
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
import { createHttpApp, createMetricsApp } from "./http-app.ts";
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

/** One service the client port serves and the implementation every transport calls. */
export interface ServedService {
  service: DescService;
  implementation: Partial<ServiceImpl<any>>;
}

export interface ClientApi {
  routes: (router: ConnectRouter) => void;
  routerOptions: ConnectRouterOptions;
  /**
   * The services the routes register, with the interceptors and decoding
   * limits they run under: a runtime's own gRPC path (runtime/node/grpc-fast-path.ts)
   * calls these same implementations, so its answers cannot drift from Connect's.
   */
  services: readonly ServedService[];
  interceptors: readonly Interceptor[];
  /** The largest request message (grpc-go's MaxRecvMsgSize as etcd sets it). */
  readMaxBytes: number;
  /** The deepest message nesting the binary decoder follows. */
  recursionLimit: number;
  /** Adds message bytes read from and written to a gRPC client (etcd_network_client_grpc_*_bytes_total). */
  countGrpcBytes: (received: number, sent: number) => void;
  http: Hono;
  /** What a --listen-metrics-urls listener serves: /metrics and /health only. */
  metricsHttp: Hono;
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

export interface ClientApiOptions {
  metricsText: () => Promise<string>;
  cors?: CorsPolicy;
  /** Where grpc_server_* go; none, none are kept (in-process tests). */
  metricsRegistry?: Registry;
  /** edgetcd's own version, beside the etcd version on /version. */
  productVersion?: string;
}

export function createClientApi(server: EtcdServer, options: ClientApiOptions): ClientApi {
  const { metricsText, cors = { kind: "all" }, metricsRegistry } = options;
  const watchFragmentBytes = requestMessageBytesMax(server.config.maxRequestBytes);
  const services: ServedService[] = [
    { service: KV, implementation: kvService(server) },
    { service: Maintenance, implementation: maintenanceService(server) },
    { service: Cluster, implementation: clusterService(server) },
    { service: Watch, implementation: watchService(server, watchFragmentBytes) },
    { service: BrowserWatch, implementation: browserWatchService(server, watchFragmentBytes) },
    { service: Lease, implementation: leaseService(server) },
    { service: BrowserLease, implementation: browserLeaseService(server) },
    { service: Lock, implementation: lockService(server) },
    { service: Election, implementation: electionService(server) },
    { service: Auth, implementation: authService(server) },
  ];
  const routes = (router: ConnectRouter) => {
    for (const { service, implementation } of services) router.service(service, implementation as never);
    answerDecodeErrorsAsEtcd(router);
  };
  const recursionLimit = messageNestingDepthMax(server.config.maxTxnOps);
  const interceptors = [
    // Outermost: it counts every answer, the refusals of those below included.
    ...(metricsRegistry === undefined
      ? []
      : [
          grpcMetricsInterceptor(
            metricsRegistry,
            services.filter(({ service }) => !service.typeName.startsWith("edgetcd.")).map(({ service }) => service),
            { handlingTimes: server.config.metrics === "extensive" },
          ),
        ]),
    learnerGate(() => server.isLearnerMember),
    authInterceptor(server),
  ];
  const routerOptions: ConnectRouterOptions = {
    // Connect refuses a bigger message before reading it whole (the declared
    // length first, then bytes counted while reading) with ResourceExhausted, as grpc-go does.
    readMaxBytes: requestMessageBytesMax(server.config.maxRequestBytes),
    binaryOptions: { recursionLimit },
    jsonOptions: { recursionLimit },
    grpc: true,
    grpcWeb: true,
    connect: true,
    interceptors,
  } as ConnectRouterOptions;
  return {
    routes,
    routerOptions,
    services,
    interceptors,
    readMaxBytes: requestMessageBytesMax(server.config.maxRequestBytes),
    recursionLimit,
    countGrpcBytes: (received, sent) => {
      server.stats.clientGrpcReceivedBytes += received;
      server.stats.clientGrpcSentBytes += sent;
    },
    http: createHttpApp({ server, routes, routerOptions, metricsText, ...(options.productVersion === undefined ? {} : { productVersion: options.productVersion }) }),
    metricsHttp: createMetricsApp(server, metricsText),
    cors,
    refusesNamedCertificateOnGateway: () => server.config.clientCertAuth && server.auth.enabled,
  };
}
