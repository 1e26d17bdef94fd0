// Cross-origin access to the client port (`--cors`), so a web page served from
// another origin can call Connect and gRPC-Web RPCs and the HTTP endpoints.
//
// etcd 3.4's rules: the flag is "*" (the default) or a comma-separated list of
// origin URLs (http or https, host:port, no path); "*" or an empty list allows
// every origin. An allowed request gets Access-Control-Allow-* headers
// (Allow-Origin "*" when every origin is allowed, else the request's own
// Origin); a refused one simply gets none, and the browser blocks the reply.
// Every OPTIONS request is answered 200 with no body and never reaches a
// handler. Beyond etcd, we also allow and expose the headers that Connect and
// gRPC-Web use, since browsers only let a page see exposed response headers and
// gRPC-Web carries its status in them.

/** Origins allowed to call from a browser; `all` when `--cors` is "*" or empty. */
export type CorsPolicy = { kind: "all" } | { kind: "list"; origins: ReadonlySet<string> };

/** Methods etcd advertises, which cover Connect (POST, GET) too. */
const allowedMethods = "POST, GET, OPTIONS, PUT, DELETE";

/** etcd's three plus the request headers Connect and gRPC-Web clients send, and etcd's `token` metadata. */
const allowedHeaders = [
  "accept",
  "content-type",
  "authorization",
  "token",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-timeout",
  "grpc-accept-encoding",
  "x-grpc-web",
  "x-user-agent",
].join(", ");

/** Response headers a page must be able to read: gRPC-Web's status and Connect's streaming encoding. */
const exposedHeaders = ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "connect-content-encoding"].join(", ");

/** How long a browser may cache a preflight answer, in seconds. */
const preflightMaxAgeSeconds = 7200;

export class CorsFlagError extends Error {}

/** Parses `--cors` as etcd does: "*" or empty for all, else origin URLs; throws CorsFlagError on a bad one. */
export function parseCorsFlag(text: string): CorsPolicy {
  if (text === "" || text === "*") return { kind: "all" };
  const origins = new Set<string>();
  for (const item of text.split(",")) {
    const trimmed = item.trim();
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      throw new CorsFlagError(`invalid value "${text}" for flag -cors: cannot parse URL ${trimmed}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new CorsFlagError(`invalid value "${text}" for flag -cors: URL scheme must be http or https: ${trimmed}`);
    }
    // Like etcd: an origin names its port, and has no path.
    if (!/^[a-z]+:\/\/[^/]+:\d+$/i.test(trimmed)) {
      throw new CorsFlagError(`invalid value "${text}" for flag -cors: URL must be scheme://host:port with no path: ${trimmed}`);
    }
    origins.add(`${url.protocol}//${url.host}`);
    // URL drops a scheme's default port (http://a:80 -> http://a); browsers send the short form too.
  }
  return { kind: "list", origins };
}

export function originAllowed(policy: CorsPolicy, origin: string | undefined): boolean {
  if (policy.kind === "all") return true;
  return origin !== undefined && policy.origins.has(origin);
}

/**
 * The CORS headers to add to a response for a request from `origin`, or an
 * empty list when the origin is refused. `preflight` adds the answers a
 * browser asks for in an OPTIONS request.
 */
export function corsHeaders(policy: CorsPolicy, origin: string | undefined, preflight: boolean): Array<[string, string]> {
  if (!originAllowed(policy, origin)) return [];
  const headers: Array<[string, string]> = [
    ["access-control-allow-origin", policy.kind === "all" ? "*" : (origin as string)],
    ["access-control-allow-methods", allowedMethods],
    ["access-control-allow-headers", allowedHeaders],
    ["access-control-expose-headers", exposedHeaders],
  ];
  if (preflight) headers.push(["access-control-max-age", String(preflightMaxAgeSeconds)]);
  // The answer depends on Origin, so caches must key on it.
  if (policy.kind === "list") headers.push(["vary", "Origin"]);
  return headers;
}
