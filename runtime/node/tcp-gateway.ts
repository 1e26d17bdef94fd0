// The byte pipe of `edgetcd gateway start` (src/cli/gateway.ts): accept,
// pick an endpoint, dial, then copy both ways with stream back-pressure
// (pipe), so a slow side holds the other instead of growing buffers. A dial
// that fails marks its endpoint down for the retry delay and the next one is
// tried; with none left the client's connection is closed.
import * as net from "node:net";
import type { GatewayOptions } from "../../src/cli/gateway.ts";
import { listenOn } from "./http-listener.ts";

/** How long a dial may take before the endpoint counts as failed. */
const dialTimeoutMs = 5000;
/** Client connections the gateway holds at once (each also holds one to a member); more are refused at accept. */
export const gatewayConnectionsMax = 10_000;

export interface TcpGateway {
  port: number;
  close(): Promise<void>;
}

export async function startTcpGateway(options: GatewayOptions, onEndpointDown: (endpoint: string, error: string) => void): Promise<TcpGateway> {
  const downUntil = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const candidates = () => {
    const now = Date.now();
    const up = options.endpoints.filter((endpoint) => (downUntil.get(`${endpoint.host}:${endpoint.port}`) ?? 0) <= now);
    // Random order, as etcd's proxy picks at random among the active remotes.
    return up.map((endpoint) => ({ endpoint, order: Math.random() })).sort((a, b) => a.order - b.order).map((entry) => entry.endpoint);
  };
  const server = net.createServer((client) => {
    track(client);
    client.pause();
    client.on("error", () => client.destroy());
    const tryNext = (remaining: GatewayOptions["endpoints"]) => {
      const endpoint = remaining[0];
      if (endpoint === undefined || client.destroyed) {
        client.destroy();
        return;
      }
      const name = `${endpoint.host}:${endpoint.port}`;
      const upstream = net.connect({ host: endpoint.host, port: endpoint.port });
      track(upstream);
      let connected = false;
      const timer = setTimeout(() => upstream.destroy(new Error(`dial timed out after ${dialTimeoutMs} ms`)), dialTimeoutMs);
      upstream.on("error", (error) => {
        clearTimeout(timer);
        if (connected) return client.destroy();
        downUntil.set(name, Date.now() + options.retryDelayMs);
        onEndpointDown(name, error.message);
        tryNext(remaining.slice(1));
      });
      upstream.once("connect", () => {
        connected = true;
        clearTimeout(timer);
        upstream.setNoDelay(true);
        client.setNoDelay(true);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryNext(candidates());
  });
  server.maxConnections = gatewayConnectionsMax;
  const port = await listenOn(server, options.listenPort, options.listenHost);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
