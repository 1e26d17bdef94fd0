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

/** The per-connection shares, kept for every transport that serves unary calls on the connection. */
export class UnaryFairness {
  private readonly shares = new WeakMap<http2.Http2Session, ConnectionShare>();

  constructor(private readonly callsMax = unaryCallsPerConnectionMax) {}

  /** Calls `start` now, or when the stream's connection has a free slot; the call counts until its stream closes. */
  admit(stream: http2.Http2Stream, start: () => void): void {
    const session = stream.session;
    if (session === undefined) return start();
    let share = this.shares.get(session);
    if (share === undefined) {
      share = { running: 0, waiting: [] };
      this.shares.set(session, share);
    }
    const owner = share;
    const run = () => {
      owner.running++;
      stream.once("close", () => {
        owner.running--;
        owner.waiting.shift()?.();
      });
      start();
    };
    if (owner.running < this.callsMax) return run();
    owner.waiting.push(() => {
      if (stream.destroyed || stream.closed) return owner.waiting.shift()?.();
      run();
    });
  }
}

export function withUnaryFairness(handler: NodeRequestHandler, streaming: ReadonlySet<string>, fairness = new UnaryFairness()): NodeRequestHandler {
  return (request, response) => {
    const stream = (request as http2.Http2ServerRequest).stream as http2.ServerHttp2Stream | undefined;
    if (stream === undefined || stream.session === undefined || streaming.has(request.url ?? "")) return handler(request, response);
    fairness.admit(stream, () => handler(request, response));
  };
}
