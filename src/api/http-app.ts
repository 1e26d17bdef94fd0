// The HTTP side of the client port, one fetch handler (hono): etcd's health,
// version and metrics endpoints and its grpc-gateway JSON routes (`/v3/...`,
// gateway.ts).
import { Hono, type Context } from "hono";
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import type { EtcdServer } from "../server/etcd-server.ts";
import { addGatewayRoutes, goHttpError } from "./gateway.ts";
import { messageNestingDepthMax, requestMessageBytesMax } from "./request-limits.ts";

export interface HttpAppOptions {
  server: EtcdServer;
  routes: (router: ConnectRouter) => void;
  /** The Connect router's options (interceptors, limits); gateway calls go through the same router. */
  routerOptions: ConnectRouterOptions;
  metricsText: () => Promise<string>;
  /** edgetcd's own version: /version's "edgetcd" field. */
  productVersion?: string;
}

export function createHttpApp(options: HttpAppOptions): Hono {
  const { server } = options;
  const app = new Hono();
  const health = healthHandler(server);
  app.all("/health", health);
  app.get("/livez", (c) => c.text("ok"));
  app.get("/readyz", async (c) => {
    const reason = await server.readinessProblem();
    return reason === undefined ? c.text("ok") : c.text(`not ready: ${reason}`, 503);
  });
  // etcd's two fields (the version policy: src/version.ts), then edgetcd's own.
  const version = { etcdserver: server.version, etcdcluster: server.clusterVersion, ...(options.productVersion === undefined ? {} : { edgetcd: options.productVersion }) };
  app.get("/version", (c) => c.json(version));
  app.get("/metrics", metricsHandler(options.metricsText));

  addGatewayRoutes(app, options.routes, options.routerOptions, {
    messageBytesMax: requestMessageBytesMax(server.config.maxRequestBytes),
    recursionLimit: messageNestingDepthMax(server.config.maxTxnOps),
    callsAtOnceMax: server.config.maxConcurrentStreams,
  });
  return app;
}

/**
 * What a --listen-metrics-urls listener serves, as etcd's metrics mux: /metrics
 * and /health, and Go's 404 for anything else.
 */
export function createMetricsApp(server: EtcdServer, metricsText: () => Promise<string>): Hono {
  const app = new Hono();
  app.all("/health", healthHandler(server));
  app.get("/metrics", metricsHandler(metricsText));
  app.notFound((c) => goHttpError(c, "404 page not found", 404));
  return app;
}

const goText = { "content-type": "text/plain; charset=utf-8" };

/**
 * etcd 3.4's /health (etcdhttp.NewHealthHandler), byte for byte: GET only;
 * `?exclude=NOSPACE` (repeatable) leaves that alarm out; healthy is 200 and
 * `{"health":"true"}`, unhealthy 503 and `{"health":"false"}` plus a newline
 * (Go's http.Error); the reason goes to /readyz.
 */
function healthHandler(server: EtcdServer) {
  return async (c: Context) => {
    if (c.req.method !== "GET") return goHttpError(c, "Method Not Allowed", 405, { allow: "GET" });
    const reason = await server.healthProblem(new Set(c.req.queries("exclude") ?? []));
    if (reason !== undefined) return goHttpError(c, JSON.stringify({ health: "false" }), 503);
    return c.body(JSON.stringify({ health: "true" }), 200, goText);
  };
}

function metricsHandler(metricsText: () => Promise<string>) {
  return async (c: Context) => c.text(await metricsText(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
}
