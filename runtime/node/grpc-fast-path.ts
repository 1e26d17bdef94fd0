// gRPC straight from the HTTP/2 stream: what every etcd client sends
// (content-type application/grpc, no compression, no browser Origin) is read,
// decoded and answered here, calling the same service implementations and
// interceptors Connect calls (src/api/client-api.ts), so both transports give
// the same answers. Connect keeps everything else on the port: gRPC-Web, the
// Connect protocol, compressed gRPC, HTTP/1.1 and unknown methods.
//
// Why: Connect's universal handler (async-iterable plumbing, an
// AbortController and a DOMException per call, Node → web header conversion)
// cost more per call than all of etcd's put (issue 23). Here a unary call is
// one decode, one promise chain and one encode; an AbortController is made
// only for a service that asks for the call's signal.
//
// On the wire this is grpc-go as etcd runs it: `grpc-status` and
// `grpc-message` (percent-encoded as grpc-go does) in trailers, or
// trailers-only when nothing was sent; grpc-go's messages for a compressed
// frame without an encoding, an unknown payload flag, a message over the
// receive limit and one that does not parse; `grpc-timeout` deadlines.
import type * as http2 from "node:http2";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import type { ClientApi } from "../../src/api/client-api.ts";
import { isNestingLimitError, messageTooLargeError, nestingTooDeepError } from "../../src/api/request-limits.ts";
import { encodeGrpcGoMessage } from "./grpc-message.ts";
import type { UnaryFairness } from "./unary-fairness.ts";

/** Decoded messages a streaming call holds unread before its stream stops reading (HTTP/2 flow control then holds the client). */
export const streamInputMessagesMax = 16;

const envelopeHeaderBytes = 5;
/** The longest delay setTimeout honours; longer ones fire at once. */
const timerMsMax = 2 ** 31 - 1;
const flagCompressed = 0x01;

type AnyImplementation = (input: unknown, context: HandlerContext) => unknown;

interface Route {
  service: DescService;
  method: DescMethod;
  /** The interceptors, then the implementation. */
  call: (request: CallRequest) => Promise<CallResponse>;
}

/** What Connect's interceptors see of a call (its UnaryRequest / StreamRequest), plus our context. */
interface CallRequest {
  stream: boolean;
  service: DescService;
  method: DescMethod;
  requestMethod: string;
  url: string;
  signal: AbortSignal;
  header: Headers;
  contextValues: HandlerContext["values"];
  message: unknown;
  context: CallContext;
}

interface CallResponse {
  stream: boolean;
  message: unknown;
}

export interface GrpcFastPathOptions {
  /** Shared with Connect's path, so a connection's unary share counts both. */
  fairness: UnaryFairness;
  /** Context values of a call from this stream (the TLS client certificate's CommonName). */
  contextValuesOf?: (stream: http2.ServerHttp2Stream) => HandlerContext["values"];
}

/**
 * A `stream` event handler for the HTTP/2 server: true when it took the
 * stream, false to leave it to the next handler (Connect).
 */
export function grpcFastPath(api: ClientApi, options: GrpcFastPathOptions): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean {
  const routes = new Map<string, Route>();
  for (const { service, implementation } of api.services) {
    for (const method of service.methods) {
      const implement = (implementation as Record<string, AnyImplementation | undefined>)[method.localName];
      if (implement === undefined) continue;
      routes.set(`/${service.typeName}/${method.name}`, { service, method, call: chain(api.interceptors, method, implement.bind(implementation)) });
    }
  }
  const limits: DecodeLimits = { readMaxBytes: api.readMaxBytes, recursionLimit: api.recursionLimit, countBytes: api.countGrpcBytes };
  return (stream, headers) => {
    const route = routes.get(headers[":path"] ?? "");
    if (route === undefined) return false;
    const claim = claims(headers);
    if (claim === undefined) return false;
    const call = new Call(stream, headers, route, limits, options.contextValuesOf?.(stream) ?? createContextValues(), claim.timeoutMs);
    if (route.method.methodKind === "unary") options.fairness.admit(stream, () => call.runUnary());
    else call.runStreaming();
    return true;
  };
}

/**
 * Whether this path serves the call: binary gRPC, uncompressed, not from a
 * browser, with a deadline it can read (Connect answers a malformed one).
 * Undefined when it does not; else the call's deadline, if it has one.
 */
function claims(headers: http2.IncomingHttpHeaders): { timeoutMs: number | undefined } | undefined {
  if (headers[":method"] !== "POST" || headers.origin !== undefined) return undefined;
  const contentType = headers["content-type"];
  if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return undefined;
  const encoding = headers["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity") return undefined;
  const timeout = headers["grpc-timeout"];
  if (timeout === undefined) return { timeoutMs: undefined };
  if (typeof timeout !== "string") return undefined;
  const parsed = parseTimeout(timeout, Number.POSITIVE_INFINITY);
  return parsed.error === undefined ? { timeoutMs: parsed.timeoutMs } : undefined;
}

/** Connect's order: the first interceptor is the outermost. */
function chain(interceptors: readonly Interceptor[], method: DescMethod, implement: AnyImplementation): Route["call"] {
  const unary = method.methodKind === "unary";
  const serverStreaming = method.methodKind === "server_streaming";
  const last = async (request: CallRequest): Promise<CallResponse> => {
    const context = request.context as unknown as HandlerContext;
    if (unary) return { stream: false, message: await implement(request.message, context) };
    // As in Connect, interceptors see a server stream's one request as a stream of one; the implementation gets the message.
    const input = serverStreaming ? await onlyMessageOf(request.message as AsyncIterable<unknown>) : request.message;
    return { stream: true, message: implement(input, context) };
  };
  let next = last as unknown as Parameters<Interceptor>[0];
  for (let index = interceptors.length - 1; index >= 0; index--) next = (interceptors[index] as Interceptor)(next);
  return next as unknown as Route["call"];
}

/** One message as the stream of one Connect's interceptors see for a server-streaming call. */
async function* streamOf<T>(message: T): AsyncIterable<T> {
  yield message;
}

/** The message of a stream of one (what an interceptor passed on of streamOf's). */
async function onlyMessageOf<T>(messages: AsyncIterable<T>): Promise<T> {
  for await (const message of messages) return message;
  throw missingInput("server_streaming");
}

/**
 * The request headers as the interceptors read them (`get` only: the token),
 * without building a fetch Headers per call. Node gives names in lower case.
 */
class NodeHeaders {
  constructor(private readonly headers: http2.IncomingHttpHeaders) {}

  get(name: string): string | null {
    const value = this.headers[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : String(value);
  }
}

/** A call's HandlerContext. The AbortController exists only once a service asks for the signal. */
class CallContext {
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  private controller: AbortController | undefined;
  /** Why the call ended, made only if a service holds the signal (an error captures a stack). */
  private abortReason: (() => unknown) | undefined;
  private aborted = false;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    readonly requestHeader: Headers,
    readonly values: HandlerContext["values"],
    private readonly deadlineAtMs: number | undefined,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.abortReason?.());
    }
    return this.controller.signal;
  }

  get responseHeader(): Headers {
    return (this.responseHeaders ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailers ??= new Headers());
  }

  /** Headers and trailers a service set, if any. */
  get setHeaders(): Headers | undefined {
    return this.responseHeaders;
  }

  get setTrailers(): Headers | undefined {
    return this.responseTrailers;
  }

  timeoutMs(): number | undefined {
    return this.deadlineAtMs === undefined ? undefined : Math.max(0, this.deadlineAtMs - performance.now());
  }

  abort(reason?: () => unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason?.());
  }
}

interface DecodeLimits {
  readMaxBytes: number;
  recursionLimit: number;
  /** Message bytes read from and written to clients (etcd_network_client_grpc_*_bytes_total). */
  countBytes(received: number, sent: number): void;
}

/** Splits a request body into gRPC messages as its chunks arrive; throws grpc-go's errors. */
class EnvelopeReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly limits: DecodeLimits) {}

  /** The whole messages completed by `chunk`. */
  push(chunk: Buffer, take: (payload: Uint8Array) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= envelopeHeaderBytes) {
      const head = this.chunks[0] as Buffer;
      const header = head.length >= envelopeHeaderBytes ? head : Buffer.concat(this.chunks, envelopeHeaderBytes);
      const flags = header[0] as number;
      const length = header.readUInt32BE(1);
      if (flags === flagCompressed) throw new ConnectError("grpc: compressed flag set with identity or empty encoding", Code.Internal);
      if (flags !== 0) throw new ConnectError(`grpc: received unexpected payload format ${flags}`, Code.Internal);
      if (length > this.limits.readMaxBytes) throw messageTooLargeError(length, this.limits.readMaxBytes);
      const total = envelopeHeaderBytes + length;
      if (this.buffered < total) return;
      if (head.length >= total) {
        take(head.subarray(envelopeHeaderBytes, total));
        if (head.length === total) this.chunks.shift();
        else this.chunks[0] = head.subarray(total);
      } else {
        const joined = Buffer.concat(this.chunks, this.buffered);
        take(joined.subarray(envelopeHeaderBytes, total));
        this.chunks = total < joined.length ? [joined.subarray(total)] : [];
      }
      this.buffered -= total;
    }
  }

  /** Bytes of an unfinished message at the end of the body. */
  get hasPartial(): boolean {
    return this.buffered > 0;
  }
}

function decode(schema: DescMessage, payload: Uint8Array, limits: DecodeLimits): unknown {
  limits.countBytes(payload.length, 0);
  try {
    return fromBinary(schema, payload, { recursionLimit: limits.recursionLimit });
  } catch (error) {
    if (isNestingLimitError(error)) throw nestingTooDeepError();
    throw new ConnectError(`grpc: error unmarshalling request: ${error instanceof Error ? error.message : String(error)}`, Code.Internal);
  }
}

function framed(schema: DescMessage, message: unknown): Uint8Array {
  const value = isMessage(message, schema) ? message : create(schema, message as never);
  return encodeEnvelope(0, toBinary(schema, value));
}

/** Connect's words for a call with no request message, or with more than its one. */
const missingInput = (kind: string) => new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
const extraInput = (kind: string) => new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);

function asConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  // Connect's answer to anything a service throws that is not a status.
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

function statusFields(error: ConnectError | undefined): Record<string, string> {
  if (error === undefined) return { "grpc-status": "0", "grpc-message": "" };
  const fields: Record<string, string> = { "grpc-status": String(error.code), "grpc-message": encodeGrpcGoMessage(error.rawMessage) };
  error.metadata.forEach((value, name) => {
    if (!name.startsWith("grpc-")) fields[name] = value;
  });
  return fields;
}

function withHeaders(fields: Record<string, string>, extra: Headers | undefined): Record<string, string> {
  extra?.forEach((value, name) => {
    if (!name.startsWith(":") && name !== "content-type" && !name.startsWith("grpc-")) fields[name] = value;
  });
  return fields;
}

const canceled = () => new ConnectError("operation was aborted via signal", Code.Canceled);
const deadlineExceeded = () => new ConnectError("context deadline exceeded", Code.DeadlineExceeded);

/** One gRPC call on one HTTP/2 stream. */
class Call {
  private readonly context: CallContext;
  private readonly request: CallRequest;
  private readonly reader: EnvelopeReader;
  private headersSent = false;
  private statusSent = false;
  private finished = false;
  private deadline: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    private readonly route: Route,
    private readonly limits: DecodeLimits,
    values: HandlerContext["values"],
    ms: number | undefined,
  ) {
    const requestHeader = new NodeHeaders(headers) as unknown as Headers;
    const path = headers[":path"] as string;
    this.context = new CallContext(route.service, route.method, path, requestHeader, values, ms === undefined ? undefined : performance.now() + ms);
    const context = this.context;
    this.request = {
      stream: route.method.methodKind !== "unary",
      service: route.service,
      method: route.method,
      requestMethod: "POST",
      url: path,
      get signal() {
        return context.signal;
      },
      header: requestHeader,
      contextValues: values,
      message: undefined,
      context,
    };
    this.reader = new EnvelopeReader(limits);
    // A deadline past what a timer holds (about 24.8 days) is no deadline.
    if (ms !== undefined && ms <= timerMsMax) {
      this.deadline = setTimeout(() => this.fail(deadlineExceeded()), ms);
      this.deadline.unref?.();
    }
    stream.once("close", () => {
      if (this.deadline !== undefined) clearTimeout(this.deadline);
      this.finished = true;
      this.context.abort(canceled);
    });
    stream.on("error", ignoreStreamError);
  }

  runUnary(): void {
    if (this.finished) return;
    let message: Uint8Array | undefined;
    let count = 0;
    const stream = this.stream;
    stream.on("data", (chunk: Buffer) => {
      if (this.finished) return;
      try {
        this.reader.push(chunk, (payload) => {
          count++;
          message = payload;
          if (count > 1) throw extraInput("unary");
        });
      } catch (error) {
        this.fail(error);
      }
    });
    stream.once("end", () => {
      if (this.finished) return;
      // A second message already failed the call as it arrived.
      if (count === 0 || this.reader.hasPartial) return this.fail(missingInput("unary"));
      let input: unknown;
      try {
        input = decode(this.route.method.input, message as Uint8Array, this.limits);
      } catch (error) {
        return this.fail(error);
      }
      this.request.message = input;
      this.route.call(this.request).then(
        (response) => this.answerUnary(response.message),
        (error: unknown) => this.fail(error),
      );
    });
  }

  private answerUnary(message: unknown): void {
    if (this.finished) return;
    let frame: Uint8Array;
    try {
      frame = framed(this.route.method.output, message);
      this.limits.countBytes(0, frame.length - envelopeHeaderBytes);
    } catch (error) {
      return this.fail(error);
    }
    this.finished = true;
    this.statusSent = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const trailers = withHeaders(statusFields(undefined), this.context.setTrailers);
    stream.respond(withHeaders({ ":status": "200", "content-type": "application/grpc" }, this.context.setHeaders), { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.end(frame);
  }

  /** Ends the call with `error`'s status: in the trailers, or trailers-only when nothing was sent. */
  private fail(error: unknown): void {
    const status = asConnectError(error);
    if (this.finished && !this.headersSent) return;
    this.finished = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.context.abort(() => status);
    this.closeWith(status);
  }

  private closeWith(status: ConnectError | undefined): void {
    const stream = this.stream;
    if (this.statusSent || stream.destroyed || stream.closed) return;
    this.statusSent = true;
    const trailers = withHeaders(statusFields(status), this.context.setTrailers);
    if (this.headersSent) {
      stream.once("wantTrailers", () => {
        stream.sendTrailers(trailers);
        // Then the request's half is reset, as grpc-go does, if the client
        // has not ended it. Not at once: Node would send the reset before
        // the trailers it has not written yet.
        if (!stream.readableEnded) setImmediate(() => stream.closed || stream.close());
      });
      stream.end();
    } else {
      stream.respond({ ":status": "200", "content-type": "application/grpc", ...trailers }, { endStream: true });
      // An answer before the request ended resets the request's half, as
      // grpc-go does: the rest of it is not read. Not at once, for the same
      // reason as above.
      if (!stream.readableEnded) setImmediate(() => stream.closed || stream.close());
    }
  }

  runStreaming(): void {
    const input = new InputMessages(this.stream, this.route.method.input, this.limits, this.reader);
    const kind = this.route.method.methodKind;
    // A server stream takes one request message, as a unary call does.
    const start = async (): Promise<AsyncIterable<unknown>> => {
      if (kind === "server_streaming") {
        const first = await input.single();
        this.request.message = streamOf(first);
      } else {
        this.request.message = input;
      }
      const response = await this.route.call(this.request);
      return response.message as AsyncIterable<unknown>;
    };
    void start().then(
      (output) => this.pump(output, input),
      (error: unknown) => this.fail(error),
    );
  }

  private async pump(output: AsyncIterable<unknown>, input: InputMessages): Promise<void> {
    const iterator = output[Symbol.asyncIterator]();
    const stream = this.stream;
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) break;
        if (this.finished || stream.destroyed || stream.closed) break;
        const frame = framed(this.route.method.output, next.value);
        this.limits.countBytes(0, frame.length - envelopeHeaderBytes);
        if (!this.headersSent) {
          this.headersSent = true;
          stream.respond(withHeaders({ ":status": "200", "content-type": "application/grpc" }, this.context.setHeaders), { waitForTrailers: true });
        }
        if (!stream.write(frame)) await drained(stream);
      }
    } catch (error) {
      void iterator.return?.();
      return this.fail(error);
    }
    if (this.finished) {
      void iterator.return?.();
      return;
    }
    // A request the input could not read (too large, unparsable) is the call's status, as grpc-go's RecvMsg error is etcd's.
    const inputError = input.error;
    if (inputError !== undefined) return this.fail(inputError);
    this.finished = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.context.abort();
    this.closeWith(undefined);
  }
}

/** A reset or broken connection: 'close' follows and ends the call. */
function ignoreStreamError(): void {}

/** Resolves when `stream` can take more, or has closed. */
function drained(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/**
 * A streaming call's request messages, decoded as they arrive. At most
 * `streamInputMessagesMax` wait unread; then the stream stops reading until
 * the service takes some, so HTTP/2 flow control holds the client.
 */
class InputMessages implements AsyncIterable<unknown> {
  private readonly queue: unknown[] = [];
  private ended = false;
  private failure: ConnectError | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    schema: DescMessage,
    limits: DecodeLimits,
    reader: EnvelopeReader,
  ) {
    stream.on("data", (chunk: Buffer) => {
      if (this.ended) return;
      try {
        reader.push(chunk, (payload) => this.queue.push(decode(schema, payload, limits)));
      } catch (error) {
        // Nothing more is read: the call ends with this error once the service stops.
        stream.pause();
        this.end(asConnectError(error));
        return;
      }
      if (this.queue.length >= streamInputMessagesMax) stream.pause();
      this.notify();
    });
    stream.once("end", () => this.end(reader.hasPartial ? new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument) : undefined));
    stream.once("close", () => this.end(undefined));
  }

  /** The request's error, when reading it failed. */
  get error(): ConnectError | undefined {
    return this.failure;
  }

  private end(failure: ConnectError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** The one message of a server-streaming call. */
  async single(): Promise<unknown> {
    let first: { message: unknown } | undefined;
    for await (const message of this) {
      // A second message fails the call at once: nothing more is read or kept.
      if (first !== undefined) throw extraInput("server_streaming");
      first = { message };
    }
    if (first === undefined) throw missingInput("server_streaming");
    return first.message;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<unknown> {
    for (;;) {
      if (this.queue.length > 0) {
        const message = this.queue.shift();
        if (this.queue.length < streamInputMessagesMax / 2 && this.stream.isPaused()) this.stream.resume();
        yield message;
        continue;
      }
      if (this.ended) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
