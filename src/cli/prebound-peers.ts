// Peer listeners bound before the member starts. etcd binds every listener
// (peer, client, metrics) before it touches the data dir, so a port in use
// fails the start at once and creates nothing (issue 25). The peer transport
// is built later, inside startServer (src/server/bootstrap.ts); the network handed to it here gives
// it the listener already bound at each URL instead of binding another.
import type { PeerIncomingRequest, PeerListener, PeerNetwork, PeerRequestHandler } from "../ports.ts";

/** The status a peer gets while this member is still starting: its sender retries, as for any refused stream. */
const startingStatus = 503;

interface Bound {
  listener: PeerListener;
  handler: PeerRequestHandler | undefined;
}

export interface PreboundPeers {
  /** `network`, but listen(url) at a bound URL attaches to that listener (once). */
  network: PeerNetwork;
  /** Closes the listeners the member did not take (it failed to start, say). */
  closeUntaken(): Promise<void>;
}

/** Binds each of `urls` on `network`, or closes those bound and throws. */
export async function bindPeerListeners(network: PeerNetwork, urls: readonly URL[]): Promise<PreboundPeers> {
  const bound = new Map<string, Bound>();
  try {
    for (const url of urls) {
      const entry: Bound = { listener: undefined as unknown as PeerListener, handler: undefined };
      entry.listener = await network.listen(url, (request) => (entry.handler ?? answerStarting)(request));
      bound.set(url.href, entry);
    }
  } catch (error) {
    await Promise.all([...bound.values()].map((entry) => entry.listener.close()));
    throw error;
  }
  return {
    network: {
      async listen(url, handler) {
        const entry = bound.get(url.href);
        if (entry === undefined || entry.handler !== undefined) return network.listen(url, handler);
        entry.handler = handler;
        return entry.listener;
      },
      connect: (url) => network.connect(url),
      fetch: network.fetch,
    },
    async closeUntaken() {
      await Promise.all([...bound.values()].filter((entry) => entry.handler === undefined).map((entry) => entry.listener.close()));
    },
  };
}

function answerStarting(request: PeerIncomingRequest): void {
  request.respond(startingStatus);
  request.end();
}
