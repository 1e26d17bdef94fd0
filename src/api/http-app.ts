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

  addGatewayRoutes(app, options.routes, options.routerOptions, {
    messageBytesMax: requestMessageBytesMax(server.config.maxRequestBytes),
    recursionLimit: messageNestingDepthMax(server.config.maxTxnOps),
  });
  return app;
}
