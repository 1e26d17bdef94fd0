// Test builds only: EDGETCD_TEST_PEER_DIAL may hold a JSON object mapping peer
// URL origins to other origins ({"http://127.0.0.1:40001": "http://127.0.0.1:41001"}).
// A session to a mapped peer then dials the other origin (a fault-injecting
// proxy in test/support/peer-proxy.ts), while its :authority and headers stay
// those of the real peer URL. Read once by the composition root; unset, every
// peer is dialled at its own URL.
import * as net from "node:net";
import type { PeerDialer } from "../node/peer-network.ts";

const peerDialVariable = "EDGETCD_TEST_PEER_DIAL";

/** The dialer the environment asks for, or undefined when it names none (production). */
export function peerDialerFromEnv(env: Record<string, string | undefined>): PeerDialer | undefined {
  const overrides = parseDialOverrides(env[peerDialVariable]);
  if (overrides.size === 0) return undefined;
  return (url) => {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      return undefined; // http2.connect reports the bad URL itself
    }
    const target = overrides.get(origin);
    if (target === undefined) return undefined;
    const host = target.hostname.replace(/^\[|\]$/g, "");
    return () => net.connect(Number(target.port || 80), host);
  };
}

function parseDialOverrides(text: string | undefined): Map<string, URL> {
  const overrides = new Map<string, URL>();
  if (text === undefined || text === "") return overrides;
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${peerDialVariable} must be a JSON object of origin to origin`);
  }
  for (const [from, to] of Object.entries(parsed)) {
    if (typeof to !== "string") throw new Error(`${peerDialVariable}: ${from} must map to a string`);
    overrides.set(new URL(from).origin, new URL(to));
  }
  return overrides;
}
