// Connect decodes a request before any interceptor or service sees it, and
// reports its own failures in its own words: a message over readMaxBytes as
// ResourceExhausted "message size N is larger than configured readMaxBytes M",
// a message nested past the recursion limit as Internal "parse binary: …
// maximum recursion depth …". etcd's clients speak gRPC, and etcd (grpc-go,
// gogo protobuf) answers those with grpc-go's "grpc: received message larger
// than max (N vs. M)" and, for deep nesting, InvalidArgument "too many
// operations in txn request". This wraps the router's handlers so the status
// carries etcd's answer on every protocol: the gRPC trailer, the gRPC-Web
// trailer message, the Connect unary error body.
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { encodeEnvelope, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { isNestingLimitError, messageTooLargeError, nestingTooDeepError } from "./request-limits.ts";
import { concatenated as joined } from "../bytes.ts";

/** Connect's text for a message over readMaxBytes (protocol/limit-io.js), with or without the size. */
const readMaxBytesPattern = /^message size (?:(\d+) )?is larger than configured readMaxBytes (\d+)$/;

export function answerDecodeErrorsAsEtcd(router: ConnectRouter): void {
  const handlers = router.handlers;
  for (let index = 0; index < handlers.length; index++) {
    handlers[index] = withEtcdDecodeErrors(handlers[index] as UniversalHandler);
  }
}

function withEtcdDecodeErrors(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (request: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const response = await handler(request);
    const contentType = response.header?.get("content-type") ?? "";
    if (response.trailer !== undefined) return withGrpcTrailer(response, response.trailer);
    if (contentType.startsWith("application/grpc-web")) return withGrpcWebTrailer(response);
    if (response.status !== 200 && contentType.startsWith("application/json")) return await withConnectError(response);
    return response;
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** gRPC: the status is in the trailer, set when the body ends (a failure on a stream's later message lands there then). */
function withGrpcTrailer(response: UniversalServerResponse, trailer: Headers): UniversalServerResponse {
  rewriteTrailer(trailer);
  const body = response.body;
  if (body === undefined) return response;
  return {
    ...response,
    body: (async function* () {
      try {
        yield* body;
      } finally {
        rewriteTrailer(trailer);
      }
    })(),
  };
}

function rewriteTrailer(trailer: Headers): void {
  const error = findTrailerError(trailer);
  if (error === undefined) return;
  const etcdAnswer = etcdDecodeError(error);
  if (etcdAnswer !== undefined) setTrailerStatus(trailer, etcdAnswer);
}

/** gRPC-Web: the trailer is the body's last envelope, one chunk of its own (flag 0x80, uncompressed). */
function withGrpcWebTrailer(response: UniversalServerResponse): UniversalServerResponse {
  const body = response.body;
  if (body === undefined) return response;
  const envelopeHeaderBytes = 5;
  return {
    ...response,
    body: (async function* () {
      for await (const chunk of body) {
        if (chunk[0] !== trailerFlag) {
          yield chunk;
          continue;
        }
        const trailer = trailerParse(chunk.subarray(envelopeHeaderBytes));
        rewriteTrailer(trailer);
        yield encodeEnvelope(trailerFlag, trailerSerialize(trailer));
      }
    })(),
  };
}

/** Connect unary: an error is a JSON body with the HTTP status of its code. */
async function withConnectError(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body ?? []) chunks.push(chunk);
  const bytes = joined(chunks);
  // A body that is not Connect's error JSON comes back as the fallback, which maps to nothing.
  const etcdAnswer = etcdDecodeError(errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown)));
  if (etcdAnswer === undefined) return { ...response, body: once(bytes) };
  const answerBytes = errorToJsonBytes(etcdAnswer, {});
  const header = new Headers(response.header);
  header.set("content-length", String(answerBytes.length));
  return { ...response, status: codeToHttpStatus(etcdAnswer.code), header, body: once(answerBytes) };
}


async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function etcdDecodeError(error: ConnectError): ConnectError | undefined {
  if (error.code === Code.ResourceExhausted) {
    const match = readMaxBytesPattern.exec(error.rawMessage);
    if (match === null) return undefined;
    const limit = Number(match[2]);
    // A message streamed without its size is known only to be over the limit.
    return messageTooLargeError(match[1] === undefined ? limit + 1 : Number(match[1]), limit);
  }
  // Binary decoding fails as Internal, JSON decoding as InvalidArgument.
  const decoding = error.code === Code.Internal || error.code === Code.InvalidArgument;
  if (decoding && /^(parse binary|cannot decode)/.test(error.rawMessage) && isNestingLimitError(error)) return nestingTooDeepError();
  return undefined;
}
