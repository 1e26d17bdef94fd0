// The peer port's own routes beside the Raft transport's (/raft/...): one
// table, looked up once per request, in front of the transport's handler, so
// the transport stays unaware of them. Today: GET /members (a joining or
// vouching member asks) and the lease routes (renewals and time-to-live
// forwarded to the leader).
import type { PeerIncomingRequest, PeerNetwork } from "../ports.ts";

export interface PeerRoute {
  /** What the route is, for a reader of the table. */
  name: string;
  matches(request: PeerIncomingRequest): boolean;
  /** Answers the request (the route owns it from here). */
  handle(request: PeerIncomingRequest): void;
}

/** `network` with `routes` served on every peer URL it listens on; any other request goes to the listener's handler. */
export function withPeerRoutes(network: PeerNetwork, routes: readonly PeerRoute[]): PeerNetwork {
  return {
    listen: (url, handler) =>
      network.listen(url, (request) => {
        const route = routes.find((candidate) => candidate.matches(request));
        if (route === undefined) return handler(request);
        route.handle(request);
      }),
    connect: (url) => network.connect(url),
    // One-off peer requests (GET /members, lease forwarding) keep the network's TLS.
    fetch: network.fetch,
  };
}
