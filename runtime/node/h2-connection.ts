// The socket of one HTTP/2 connection as our server reads it: every byte the
// client sends first passes the frame guard (h2-frame-guard.ts), then, on the
// client port, the `:authority` rewriter (h2-authority.ts). A connection that
// breaks a limit gets a GOAWAY written here, straight to the socket, and is
// destroyed: the server never sees the offending bytes, and its session (with
// everything it buffered) goes with the socket.
//
// The cost: the server no longer owns a native socket. Node then drives it
// through its JS stream wrapper (one more JS hop per read and write, and
// `request.socket.remoteAddress` is undefined on Node; nothing reads it today);
// Bun reads through streams anyway.
import { Duplex } from "node:stream";
import type * as net from "node:net";
import { AuthorityFrameRewriter } from "./h2-authority.ts";
import {
  connectionPrefaceBytes,
  encodeGoaway,
  frameHeaderBytes,
  FrameHeaderScanner,
  frameType,
  http2ErrorCode,
  InboundFrameGuard,
  type FrameLimits,
  type Violation,
} from "./h2-frame-guard.ts";

/**
 * grpc-go's keepalive enforcement policy as etcd configures it
 * (`--grpc-keepalive-min-time`, PermitWithoutStream false).
 */
export interface KeepaliveEnforcement {
  /** A client ping sooner than this after its last one is a strike; 0 turns enforcement off. */
  pingIntervalMsMin: number;
}

/** grpc-go: a ping with no stream open is a strike unless the last came this long ago (its defaultPingTimeout). */
const pingWithoutStreamIntervalMsMin = 2 * 60 * 60 * 1000;
/** grpc-go's maxPingStrikes: the third strike after the last reset closes the connection. */
const pingStrikesMax = 2;
/** How long a closing connection may take to send its GOAWAY before the socket is destroyed anyway. */
const goawayFlushMsMax = 1000;

export interface GuardedConnectionOptions {
  limits: FrameLimits;
  keepalive: KeepaliveEnforcement;
  rewriteAuthority: boolean;
  /** Drop the client's first SETTINGS acknowledgement: it answers a SETTINGS we wrote, not the server's (h2-handshake.ts). */
  stripSettingsAck?: boolean;
  nowMs: () => number;
  /** Called once, when the connection is closed for breaking a limit. */
  onViolation?: (violation: Violation) => void;
}

/** What the session supervisor (h2-session-limits.ts) needs to know of a guarded connection. */
export class GuardedConnection {
  /** Streams open on the session; kept by the supervisor. */
  openStreams = 0;
  /** When the client last sent any byte. */
  lastReadAtMs: number;
  private readonly guard: InboundFrameGuard;
  private readonly pings: PingStrikes;
  private closing = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly options: GuardedConnectionOptions,
  ) {
    this.lastReadAtMs = options.nowMs();
    this.pings = new PingStrikes(options.keepalive, options.nowMs);
    this.guard = new InboundFrameGuard(options.limits, () => this.pings.onPing(this.openStreams));
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Bytes written by the server and not yet taken by the kernel. */
  get socketBufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** Checks the client's bytes; a violation closes the connection and returns it. */
  inspect(chunk: Buffer): Violation | undefined {
    this.lastReadAtMs = this.options.nowMs();
    const violation = this.guard.scan(chunk);
    if (violation !== undefined) this.closeWith(violation);
    return violation;
  }

  /** Outbound frames: HEADERS and DATA reset the ping strikes, as in grpc-go. */
  readonly outbound = new FrameHeaderScanner(0, (frame) => {
    if (frame.type === frameType.headers || frame.type === frameType.data) this.pings.serverSent();
    return undefined;
  });

  /** Sends GOAWAY (last stream id = the highest the client opened), stops reading, destroys the socket once sent. */
  closeWith(violation: Violation): void {
    if (this.closing) return;
    this.closing = true;
    this.options.onViolation?.(violation);
    const socket = this.socket;
    socket.pause();
    socket.removeAllListeners("data");
    const timer = setTimeout(() => socket.destroy(), goawayFlushMsMax);
    timer.unref?.();
    socket.end(encodeGoaway(this.guard.lastStreamId, violation.code, violation.debug), () => {
      clearTimeout(timer);
      socket.destroy();
    });
  }
}

/**
 * grpc-go's keepalive enforcement of a client's pings: a ping sooner than
 * the allowed interval after the last one is a strike (the interval is 2 h
 * when no stream is open), the third strike since the server last sent
 * HEADERS or DATA closes the connection with ENHANCE_YOUR_CALM "too_many_pings".
 */
export class PingStrikes {
  private lastPingAtMs = Number.NEGATIVE_INFINITY;
  private strikes = 0;
  /** grpc-go's resetPingStrikes: the server sent HEADERS or DATA since the client's last ping. */
  private serverSentSincePing = false;

  constructor(
    private readonly keepalive: KeepaliveEnforcement,
    private readonly nowMs: () => number,
  ) {}

  serverSent(): void {
    this.serverSentSincePing = true;
  }

  /** A PING from the client (not an ack); a violation when it is one strike too many. */
  onPing(openStreams: number): Violation | undefined {
    const minMs = this.keepalive.pingIntervalMsMin;
    if (minMs <= 0) return undefined;
    const now = this.nowMs();
    const sinceLastMs = now - this.lastPingAtMs;
    this.lastPingAtMs = now;
    if (this.serverSentSincePing) {
      this.serverSentSincePing = false;
      this.strikes = 0;
      return undefined;
    }
    const allowedMs = openStreams > 0 ? minMs : pingWithoutStreamIntervalMsMin;
    if (sinceLastMs < allowedMs) this.strikes += 1;
    if (this.strikes > pingStrikesMax) return { code: http2ErrorCode.enhanceYourCalm, debug: "too_many_pings" };
    return undefined;
  }
}

/**
 * The socket as the server should read it: `head` (the bytes already read,
 * starting with the preface) and then everything the client sends, guarded and
 * (when asked) with authorities made valid. Writes go straight to the socket.
 * Reading follows the server's pace: the socket pauses while the server has not
 * taken what we handed it.
 */
export function guardedHttp2Socket(socket: net.Socket, head: Buffer, options: GuardedConnectionOptions): { stream: Duplex; connection: GuardedConnection } {
  const connection = new GuardedConnection(socket, options);
  const rewriter = options.rewriteAuthority ? new AuthorityFrameRewriter() : undefined;
  const stripper = options.stripSettingsAck === true ? new SettingsAckStripper() : undefined;
  // Writes after a GOAWAY of ours are dropped: the client must see our GOAWAY last.
  const writeOut = (chunk: Buffer): boolean => {
    if (connection.isClosing) return true;
    connection.outbound.scan(chunk);
    return socket.write(chunk);
  };
  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      if (socket.isPaused() && !connection.isClosing) socket.resume();
    },
    // The server issues one write at a time and waits for its callback, so the
    // callback comes as soon as the socket has taken the bytes (not when they
    // reach the kernel), unless the socket is over its high-water mark.
    write(chunk: Buffer, _encoding, callback) {
      if (writeOut(chunk)) callback();
      else socket.once("drain", () => callback());
    },
    writev(chunks, callback) {
      socket.cork();
      let accepted = true;
      for (const { chunk } of chunks) accepted = writeOut(chunk as Buffer);
      socket.uncork();
      if (accepted) callback();
      else socket.once("drain", () => callback());
    },
    final(callback) {
      if (connection.isClosing) callback();
      else socket.end(callback);
    },
    destroy(error, callback) {
      if (!connection.isClosing) socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  for (const name of ["remoteAddress", "remotePort", "remoteFamily", "localAddress", "localPort"] as const) {
    Object.defineProperty(stream, name, { get: () => socket[name] });
  }
  const forward = (received: Buffer) => {
    const chunk = stripper === undefined ? received : stripper.transform(received);
    if (connection.inspect(chunk) !== undefined) return;
    const bytes = rewriter === undefined ? chunk : rewriter.transform(chunk);
    if (bytes.length > 0 && !stream.push(bytes)) socket.pause();
  };
  forward(head);
  socket.on("data", forward);
  socket.on("end", () => stream.push(null));
  socket.on("error", (error) => stream.destroy(error));
  socket.on("close", () => stream.destroy());
  return { stream, connection };
}

/**
 * Takes the first SETTINGS acknowledgement out of a client's byte stream
 * (preface included), however the stream is cut into chunks; everything else
 * passes unchanged. The start of a frame header that a chunk ends in is held
 * back until the header is whole: it may be the acknowledgement.
 */
export class SettingsAckStripper {
  private readonly scanner = new FrameHeaderScanner(connectionPrefaceBytes, (frame) => {
    if (this.ackAt < 0 && frame.type === frameType.settings && (frame.flags & flagAck) !== 0 && frame.length === 0) this.ackAt = frame.offset;
    return undefined;
  });
  private ackAt = -1;
  private stripped = false;
  /** Bytes held back from the end of the last chunk, and where they start in the stream. */
  private held: Buffer = Buffer.alloc(0);
  private heldAt = 0;

  transform(chunk: Buffer): Buffer {
    if (this.stripped) return chunk;
    this.scanner.scan(chunk);
    const bytes = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const bytesAt = this.heldAt;
    if (this.ackAt >= 0) {
      this.stripped = true;
      this.held = Buffer.alloc(0);
      const at = this.ackAt - bytesAt;
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + frameHeaderBytes)]);
    }
    const keep = this.scanner.pendingHeaderBytes;
    this.held = Buffer.from(bytes.subarray(bytes.length - keep));
    this.heldAt = bytesAt + bytes.length - keep;
    return bytes.subarray(0, bytes.length - keep);
  }
}

const flagAck = 0x1;
