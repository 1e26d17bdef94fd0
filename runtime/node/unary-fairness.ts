// One connection's share of the event loop. A client may open up to the
// stream limit at once, and every unary call it opens costs CPU on the one
// event loop the whole member shares: 750 Range calls in one burst from a
// client that never reads kept a well-behaved client on another connection
// waiting seconds (p99 4 s; etcd, on every core, 0.5 s). So each HTTP/2
// connection runs at most `unaryCallsPerConnectionMax` unary calls at a time;
// the rest wait, unstarted, in order. A call counts until its stream closes,
// i.e. until its answer has left: a client that does not read its answers
// holds its own slots, and only its own, until the session supervisor closes
// it (h2-session-limits.ts). Streaming calls (watch, keep-alive, snapshot,
// observe) live long and are not counted: the stream limit bounds them.
import type * as http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import type { NodeRequestHandler } from "./http-listener.ts";

/** Unary calls one HTTP/2 connection may have running at once; more wait their turn. */
export const unaryCallsPerConnectionMax = 64;

interface ConnectionShare {
  running: number;
  waiting: Array<() => void>;
}

/** The request paths (`/package.Service/Method`) of the services' streaming methods. */
export function streamingPaths(services: readonly DescService[]): Set<string> {
  const paths = new Set<string>();
  for (const service of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") paths.add(`/${service.typeName}/${method.name}`);
    }
  }
  return paths;
}

export function withUnaryFairness(handler: NodeRequestHandler, streaming: ReadonlySet<string>, callsMax = unaryCallsPerConnectionMax): NodeRequestHandler {
  const shares = new WeakMap<http2.Http2Session, ConnectionShare>();
  return (request, response) => {
    const stream = (request as http2.Http2ServerRequest).stream as http2.ServerHttp2Stream | undefined;
    const session = stream?.session;
    if (stream === undefined || session === undefined || streaming.has(request.url ?? "")) return handler(request, response);
    let share = shares.get(session);
    if (share === undefined) {
      share = { running: 0, waiting: [] };
      shares.set(session, share);
    }
    const owner = share;
    const start = () => {
      owner.running++;
      stream.once("close", () => {
        owner.running--;
        owner.waiting.shift()?.();
      });
      handler(request, response);
    };
    if (owner.running < callsMax) return start();
    const queued = () => {
      if (stream.destroyed || stream.closed) return owner.waiting.shift()?.();
      start();
    };
    owner.waiting.push(queued);
  };
}
