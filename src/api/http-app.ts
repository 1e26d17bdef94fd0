// The HTTP side of the client port, one fetch handler (hono): etcd's health,
// version and metrics endpoints and its grpc-gateway JSON routes (`/v3/...`,
// gateway.ts).
import { Hono, type Context } from "hono";
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import type { EtcdServer } from "../server/etcd-server.ts";
import { addGatewayRoutes } from "./gateway.ts";
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
  // etcd 3.4's shape, which its e2e suite and scripts match literally; the
  // reason goes to /readyz and the log, as 3.5's reason field would.
  const health = (c: Context) => {
    const reason = server.healthProblem();
    // Go's JSON encoder ends the body with a newline.
    return c.body(`${JSON.stringify({ health: reason === undefined ? "true" : "false" })}\n`, reason === undefined ? 200 : 503, { "content-type": "application/json" });
  };
  app.get("/health", health);
  app.get("/livez", (c) => c.text("ok"));
  app.get("/readyz", (c) => {
    const reason = server.healthProblem();
    return reason === undefined ? c.text("ok") : c.text(`not ready: ${reason}`, 503);
  });
  // etcd's two fields (the version policy: src/version.ts), then edgetcd's own.
  const version = { etcdserver: server.version, etcdcluster: server.clusterVersion, ...(options.productVersion === undefined ? {} : { edgetcd: options.productVersion }) };
  app.get("/version", (c) => c.json(version));
  app.get("/metrics", async (c) => c.text(await options.metricsText(), 200, { "content-type": "text/plain; version=0.0.4" }));

  addGatewayRoutes(app, options.routes, options.routerOptions, {
    messageBytesMax: requestMessageBytesMax(server.config.maxRequestBytes),
    recursionLimit: messageNestingDepthMax(server.config.maxTxnOps),
  });
  return app;
}
