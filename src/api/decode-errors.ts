// Connect decodes a request before any interceptor or service sees it, and
// reports its own failures in its own words: a message over readMaxBytes as
// ResourceExhausted "message size N is larger than configured readMaxBytes M",
// a message nested past the recursion limit as Internal "parse binary: …
// maximum recursion depth …". etcd's clients speak gRPC, and etcd (grpc-go,
// gogo protobuf) answers those with grpc-go's "grpc: received message larger
// than max (N vs. M)" and, for deep nesting, InvalidArgument "too many
// operations in txn request". This wraps the router's handlers so the gRPC
// status trailer carries etcd's answer. gRPC-Web and Connect, which etcd does
// not serve, keep Connect's answer (same code for an oversized message).
import type { ConnectError, ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { Code } from "@connectrpc/connect";
import { isNestingLimitError, messageTooLargeError, nestingTooDeepError } from "./request-limits.ts";

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
    const trailer = response.trailer;
    if (trailer === undefined) return response;
    rewriteTrailer(trailer);
    // A failure on a later message of a stream lands in the trailer when the body ends.
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

function rewriteTrailer(trailer: Headers): void {
  const error = findTrailerError(trailer);
  if (error === undefined) return;
  const etcdAnswer = etcdDecodeError(error);
  if (etcdAnswer !== undefined) setTrailerStatus(trailer, etcdAnswer);
}

function etcdDecodeError(error: ConnectError): ConnectError | undefined {
  if (error.code === Code.ResourceExhausted) {
    const match = readMaxBytesPattern.exec(error.rawMessage);
    if (match === null) return undefined;
    const limit = Number(match[2]);
    // A message streamed without its size is known only to be over the limit.
    return messageTooLargeError(match[1] === undefined ? limit + 1 : Number(match[1]), limit);
  }
  if (error.code === Code.Internal && error.rawMessage.startsWith("parse binary:") && isNestingLimitError(error)) return nestingTooDeepError();
  return undefined;
}
