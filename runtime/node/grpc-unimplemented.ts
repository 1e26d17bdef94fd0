// A gRPC or gRPC-Web call to a service or method this server does not have
// gets grpc-go's answer: HTTP 200, trailers-only, grpc-status 12
// (Unimplemented) and grpc-go's message. Clients fall back on Unimplemented
// (Kubernetes does for KV/RangeStream); an HTTP 404 without grpc-status is,
// to grpc-js, an INTERNAL error, and to others a broken server.
import type { DescService } from "@bufbuild/protobuf";
import { writeHead, type NodeRequestHandler } from "./http-listener.ts";

/** grpc-status 12 for unknown gRPC paths; every other request goes to `fallback`. */
export function answeringUnknownGrpcMethods(services: readonly DescService[], fallback: NodeRequestHandler): NodeRequestHandler {
  const methodsOf = new Map<string, Set<string>>();
  for (const service of services) methodsOf.set(service.typeName, new Set(service.methods.map((method) => method.name)));
  return (request, response) => {
    const contentType = request.headers["content-type"];
    if (typeof contentType !== "string" || !contentType.startsWith("application/grpc")) {
      fallback(request, response);
      return;
    }
    const path = (request.url ?? "").split("?", 1)[0] as string;
    const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
    const service = match?.[1];
    const method = match?.[2];
    let message: string;
    if (service === undefined || method === undefined) message = `malformed method name: "${path}"`;
    else if (!methodsOf.has(service)) message = `unknown service ${service}`;
    else message = `unknown method ${method} for service ${service}`;
    // The request body is not read: the answer does not depend on it.
    request.resume();
    const responseType = contentType.startsWith("application/grpc-web-text") ? "application/grpc-web-text+proto" : contentType.startsWith("application/grpc-web") ? "application/grpc-web+proto" : "application/grpc";
    writeHead(response, 200, { "content-type": responseType, "grpc-status": "12", "grpc-message": message });
    response.end();
  };
}
