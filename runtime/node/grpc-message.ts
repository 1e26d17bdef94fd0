// grpc-message as grpc-go writes it. The gRPC spec percent-encodes only bytes
// outside 0x20–0x7E and "%"; Connect applies encodeURIComponent, which also
// turns ":" and "," and spaces into %XX. Clients built on grpc-js (the `etcd3`
// npm package) decode with decodeURI, which leaves "%3A" in place, so
// "etcdserver%3A role name not found" no longer matches etcd's message and
// the client's error classes (and its re-login on "invalid auth token") miss.
// etcdctl decodes every %XX, which is why it never showed.
import type { NodeRequestHandler } from "./http-listener.ts";

const encoder = new TextEncoder();

/** `value` (Connect's encoding) re-encoded the way grpc-go encodes a status message. */
export function grpcGoMessage(value: string): string {
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    return value;
  }
  return encodeGrpcGoMessage(text);
}

/** A status message, as grpc-go percent-encodes it into grpc-message. */
export function encodeGrpcGoMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = "";
  for (const byte of encoder.encode(text)) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(byte);
  }
  return out;
}

type Headers = Record<string, string | string[] | number | undefined>;

function rewritten(headers: unknown): unknown {
  if (headers === null || typeof headers !== "object" || Array.isArray(headers)) return headers;
  const message = (headers as Headers)["grpc-message"];
  if (typeof message !== "string") return headers;
  return { ...(headers as Headers), "grpc-message": grpcGoMessage(message) };
}

/** gRPC calls (not gRPC-Web, whose browser clients decode every %XX) get grpc-go's grpc-message. */
export function withGrpcGoMessages(handler: NodeRequestHandler): NodeRequestHandler {
  return (request, response) => {
    const contentType = request.headers["content-type"];
    if (typeof contentType === "string" && contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")) {
      const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => unknown;
      const addTrailers = response.addTrailers.bind(response) as (trailers: unknown) => void;
      (response as { writeHead: unknown }).writeHead = (status: number, ...rest: unknown[]) =>
        writeHead(status, ...rest.map((argument) => (typeof argument === "string" ? argument : rewritten(argument))));
      (response as { addTrailers: unknown }).addTrailers = (trailers: unknown) => addTrailers(rewritten(trailers));
    }
    handler(request, response);
  };
}
