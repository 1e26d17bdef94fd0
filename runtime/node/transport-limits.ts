// Every limit the HTTP/1.1 + HTTP/2 listener holds a connection to, with its
// default and where the default comes from (issue 24: one hostile connection
// must not take a member's memory or starve other clients).
import type { KeepaliveEnforcement } from "./h2-connection.ts";
import { frameLimitsDefault, type FrameLimits } from "./h2-frame-guard.ts";
import type { SessionLimits } from "./h2-session-limits.ts";

export interface TransportLimits extends FrameLimits, SessionLimits {
  keepalive: KeepaliveEnforcement;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: decoded header bytes of one request (RFC 9113 §6.5.2). */
  headerListBytesMax: number;
  /** Node's maxSessionMemory (nghttp2 state, queued frames and data); over it, new streams are refused. */
  sessionMemoryMegabytesMax: number;
  /** A connection whose first bytes decide neither HTTP/1.1 nor HTTP/2 within this is closed. */
  prefaceTimeoutMs: number;
  /** TLS ports: a connection whose handshake has not finished within this is closed. */
  tlsHandshakeTimeoutMs: number;
  /** HTTP/1.1: a request's headers must arrive within this (Node's headersTimeout default). */
  http1HeadersTimeoutMs: number;
  /** HTTP/1.1: a whole request must arrive within this (Node's requestTimeout default). */
  http1RequestTimeoutMs: number;
}

/** Streams one connection may open at once; see `concurrentStreamsMax` below. */
export const concurrentStreamsMaxDefault = 1000;

export const transportLimitsDefault: TransportLimits = {
  ...frameLimitsDefault,
  // Go's http2 server default (http.DefaultMaxHeaderBytes); grpc-go's is 16 MiB,
  // but Node's nghttp2 refuses a block of more than 9 frames of 16 KiB anyway.
  headerListBytesMax: 1 << 20,
  // etcd's default (--max-concurrent-streams) is 2^32-1, which let 10,000 idle
  // streams cost one connection 600 MB. 1000 leaves room for a client that opens
  // one watch stream per resource (Kubernetes opens one per watched type; etcd's
  // clients multiplex watches of one context over one stream) and bounds the cost.
  concurrentStreamsMax: concurrentStreamsMaxDefault,
  // Node's default is 10 MB; requests up to --max-request-bytes (1.5 MiB plus
  // 512 KiB of gRPC overhead) and large responses in flight must still fit.
  sessionMemoryMegabytesMax: 32,
  outboundBufferedBytesMax: 64 * 1024 * 1024,
  outboundBufferedOverMsMax: 20_000,
  // A request stream's unread input: Node's flow control keeps it within the
  // stream window (64 KiB); Bun's server takes DATA whether or not the handler
  // reads, so a flood on one stream (a keep-alive flood: 150 MB in 8 s) piles
  // up here unless the stream is cut off.
  inboundStreamBufferedBytesMax: 4 * 1024 * 1024,
  // etcd and grpc-go never close an idle connection (MaxConnectionIdle is
  // infinite); we close one with no stream open (so never one holding a watch)
  // after a generous while, and clients reconnect on their next call.
  idleMsMax: 15 * 60 * 1000,
  // etcd's --grpc-keepalive-interval and --grpc-keepalive-timeout defaults.
  keepaliveIntervalMs: 2 * 60 * 60 * 1000,
  keepaliveTimeoutMs: 20_000,
  // etcd's --grpc-keepalive-min-time default.
  keepalive: { pingIntervalMsMin: 5000 },
  prefaceTimeoutMs: 10_000,
  // grpc-go (etcd 3.4) allows 120 s (ConnectionTimeout), as does Node's default;
  // a handshake is 1-2 round trips, well under a second even across regions, so
  // 10 s (as long as the preface may take) lets a slow client in and stops
  // sockets that never speak from being held for two minutes each.
  tlsHandshakeTimeoutMs: 10_000,
  http1HeadersTimeoutMs: 60_000,
  http1RequestTimeoutMs: 300_000,
};

/** etcd's transport flags, as the server configuration holds them. */
export interface ClientTransportFlags {
  maxConcurrentStreams: number;
  grpcKeepaliveMinTimeMs: number;
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;
}

/**
 * The client listener's limits from etcd's flags. `--max-concurrent-streams`
 * is honoured up to `concurrentStreamsMaxDefault`; a larger value (etcd's
 * default among them) is held to it.
 */
export function clientTransportLimits(flags: ClientTransportFlags): TransportLimits {
  return {
    ...transportLimitsDefault,
    concurrentStreamsMax: Math.max(1, Math.min(flags.maxConcurrentStreams, concurrentStreamsMaxDefault)),
    keepalive: { pingIntervalMsMin: flags.grpcKeepaliveMinTimeMs },
    keepaliveIntervalMs: flags.grpcKeepaliveIntervalMs,
    keepaliveTimeoutMs: flags.grpcKeepaliveTimeoutMs,
  };
}

/**
 * The peer listener's limits: the client port's, without gRPC keepalive
 * enforcement or server pings, which etcd applies to its gRPC clients only
 * (members ping their own sessions as often as src/peer/ needs).
 */
export const peerTransportLimits: TransportLimits = {
  ...transportLimitsDefault,
  keepalive: { pingIntervalMsMin: 0 },
  keepaliveIntervalMs: 0,
};
