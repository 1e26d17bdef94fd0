// Serves the client API on one URL: Connect's Node adapter for RPCs (gRPC over
// HTTP/2; gRPC-Web and Connect over either), the hono app for everything else.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { ClientApi } from "../../src/api/client-api.ts";
import { listenHttp, type Listener } from "./http-listener.ts";

export async function serveClientApi(api: ClientApi, url: URL, options: { http: boolean; grpc: boolean }): Promise<Listener> {
  const httpHandler = getRequestListener(api.http.fetch);
  const rpcHandler = connectNodeAdapter({
    ...api.routerOptions,
    routes: api.routes,
    fallback: (request, response) => void httpHandler(request as never, response as never),
  });
  const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return listenHttp({
    host,
    port,
    handleHttp2: options.grpc ? rpcHandler : (request, response) => void httpHandler(request as never, response as never),
    handleHttp1: options.http ? rpcHandler : undefined,
  });
}
