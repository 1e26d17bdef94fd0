// Limits on each HTTP/2 session of one listener that only time can judge:
// streams per connection, bytes buffered for a client that does not read, an
// idle connection, and the server's keepalive pings (etcd's
// --grpc-keepalive-interval and --grpc-keepalive-timeout). One timer per
// listener looks at every session; nothing here runs per frame.
import type * as http2 from "node:http2";
import type * as net from "node:net";
import { PingStrikes, type GuardedConnection, type KeepaliveEnforcement } from "./h2-connection.ts";
import { http2ErrorCode, ResetAllowance, type Violation } from "./h2-frame-guard.ts";

export interface SessionLimits {
  /** Streams open at once on one connection; more are refused with REFUSED_STREAM. */
  concurrentStreamsMax: number;
  /**
   * Response bytes a connection may hold for a client that does not read (its
   * flow-control window stays shut, or its socket is full). Over it, new
   * streams are refused ...
   */
  outboundBufferedBytesMax: number;
  /** ... and when the client takes none of them for this long, the connection is closed with ENHANCE_YOUR_CALM. */
  outboundBufferedOverMsMax: number;
  /** Bytes a client sent on one stream that the handler has not read yet; over it the stream is reset with ENHANCE_YOUR_CALM. */
  inboundStreamBufferedBytesMax: number;
  /** A connection with no stream open for this long is sent GOAWAY(NO_ERROR) and closed; 0 never. */
  idleMsMax: number;
  /** The server pings a client it has heard nothing from for this long (etcd's --grpc-keepalive-interval); 0 never. */
  keepaliveIntervalMs: number;
  /** ... and closes the connection when the ack takes longer than this (--grpc-keepalive-timeout). */
  keepaliveTimeoutMs: number;
}

const refusedStream = 0x7;
/** The supervisor's period: fine enough for the shortest limit, never busier than this. */
const tickMsMin = 20;
const tickMsMax = 1000;

interface Watched {
  session: http2.ServerHttp2Session;
  connection: GuardedConnection | undefined;
  streams: Set<http2.ServerHttp2Stream>;
  idleSinceMs: number;
  /** Bytes buffered for the client at the last tick. */
  bufferedBytes: number;
  /** Since when the buffer has been over the limit without shrinking. */
  bufferedOverSinceMs: number | undefined;
  pingSentAtMs: number | undefined;
  /**
   * A client's connection read natively (h2-handshake.ts): the guard's
   * per-connection policies, kept here from the session's events instead.
   */
  native: NativeClient | undefined;
  /** Closed for a violation; its GOAWAY is on its way. */
  closing: boolean;
}

interface NativeClient {
  /** The connection's socket (a session's own `socket` is a proxy that refuses destroy). */
  socket: net.Socket;
  pings: PingStrikes;
  resets: ResetAllowance;
  /** The highest stream id the client opened: the last stream id of our GOAWAY. */
  lastStreamId: number;
  /** The socket's bytesRead when last looked at, and since when it has not moved. */
  bytesRead: number;
  lastReadAtMs: number;
}

export class SessionSupervisor {
  private readonly sessions = new Set<Watched>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly limits: SessionLimits,
    private readonly nowMs: () => number,
  ) {
    const shortestMs = Math.min(
      ...[limits.outboundBufferedOverMsMax, limits.idleMsMax, limits.keepaliveIntervalMs, limits.keepaliveTimeoutMs].filter((ms) => ms > 0),
    );
    const tickMs = Math.max(tickMsMin, Math.min(tickMsMax, Math.floor(shortestMs / 4)));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref?.();
  }

  /**
   * Watches a new session; `connection` is its guarded socket when it has one.
   * `nativeClient`: a client's session read natively, held here to the
   * keepalive and reset policies the guard holds guarded ones to.
   */
  adopt(session: http2.ServerHttp2Session, connection: GuardedConnection | undefined, nativeClient?: { socket: net.Socket; keepalive: KeepaliveEnforcement }): void {
    const now = this.nowMs();
    const watched: Watched = {
      session,
      connection,
      streams: new Set(),
      idleSinceMs: now,
      bufferedBytes: 0,
      bufferedOverSinceMs: undefined,
      pingSentAtMs: undefined,
      native: undefined,
      closing: false,
    };
    if (connection === undefined && nativeClient !== undefined) {
      const native: NativeClient = {
        socket: nativeClient.socket,
        pings: new PingStrikes(nativeClient.keepalive, this.nowMs),
        resets: new ResetAllowance(),
        lastStreamId: 0,
        bytesRead: 0,
        lastReadAtMs: now,
      };
      watched.native = native;
      session.on("ping", () => {
        const violation = native.pings.onPing(watched.streams.size);
        if (violation !== undefined) close(watched, violation);
      });
    }
    this.sessions.add(watched);
    session.once("close", () => this.sessions.delete(watched));
    session.on("stream", (stream) => this.onStream(watched, stream));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private onStream(watched: Watched, stream: http2.ServerHttp2Stream): void {
    // Node refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS itself; this
    // holds the limit on a server that does not (or on a client that ignores it).
    const overBuffered = watched.bufferedBytes > this.limits.outboundBufferedBytesMax;
    if (watched.streams.size >= this.limits.concurrentStreamsMax || overBuffered) {
      stream.close(refusedStream);
      return;
    }
    watched.streams.add(stream);
    if (watched.connection !== undefined) watched.connection.openStreams = watched.streams.size;
    const native = watched.native;
    if (native !== undefined) {
      const id = stream.id ?? 0;
      if (id > native.lastStreamId) native.lastStreamId = id;
      // Every stream is answered with HEADERS: as grpc-go, that forgives the client's pings.
      native.pings.serverSent();
      stream.once("aborted", () => {
        const violation = native.resets.onReset();
        if (violation !== undefined) close(watched, violation);
      });
    }
    stream.once("close", () => {
      native?.pings.serverSent();
      watched.streams.delete(stream);
      if (watched.connection !== undefined) watched.connection.openStreams = watched.streams.size;
      if (watched.streams.size === 0) watched.idleSinceMs = this.nowMs();
    });
  }

  private tick(): void {
    const now = this.nowMs();
    for (const watched of this.sessions) {
      if (watched.session.destroyed || watched.closing || watched.connection?.isClosing === true) continue;
      this.checkBuffered(watched, now);
      this.checkIdle(watched, now);
      this.checkKeepalive(watched, now);
    }
  }

  private checkBuffered(watched: Watched, now: number): void {
    let bufferedBytes = watched.connection?.socketBufferedBytes ?? 0;
    // Both runtimes count a response's unsent bytes in writableLength (checked: 8 MiB for an unread 8 MiB body).
    for (const stream of watched.streams) {
      bufferedBytes += stream.writableLength;
      // grpc-go answers a stream that outruns its quota with RST_STREAM ENHANCE_YOUR_CALM; its clients read that as ResourceExhausted.
      if (stream.readableLength > this.limits.inboundStreamBufferedBytesMax) stream.close(http2ErrorCode.enhanceYourCalm);
    }
    const shrank = bufferedBytes < watched.bufferedBytes;
    watched.bufferedBytes = bufferedBytes;
    // A client that reads, however slowly, keeps its connection: a large
    // response may take a while; one that takes nothing is holding our memory.
    if (bufferedBytes <= this.limits.outboundBufferedBytesMax || shrank) {
      watched.bufferedOverSinceMs = undefined;
      return;
    }
    watched.bufferedOverSinceMs ??= now;
    if (now - watched.bufferedOverSinceMs >= this.limits.outboundBufferedOverMsMax) {
      close(watched, { code: http2ErrorCode.enhanceYourCalm, debug: `client not reading: ${bufferedBytes} bytes buffered` });
    }
  }

  private checkIdle(watched: Watched, now: number): void {
    if (this.limits.idleMsMax <= 0 || watched.streams.size > 0) return;
    if (now - watched.idleSinceMs < this.limits.idleMsMax) return;
    close(watched, { code: http2ErrorCode.noError, debug: "idle" });
  }

  /** When the client last sent a byte, if this session can tell. */
  private lastReadAtMs(watched: Watched, now: number): number | undefined {
    if (watched.connection !== undefined) return watched.connection.lastReadAtMs;
    const native = watched.native;
    if (native === undefined) return undefined;
    // nghttp2 reads the socket itself; its byte count shows whether anything came since the last tick.
    const bytesRead = native.socket.bytesRead;
    if (bytesRead !== native.bytesRead) {
      native.bytesRead = bytesRead;
      native.lastReadAtMs = now;
    }
    return native.lastReadAtMs;
  }

  private checkKeepalive(watched: Watched, now: number): void {
    if (this.limits.keepaliveIntervalMs <= 0) return;
    const lastReadAtMs = this.lastReadAtMs(watched, now);
    if (lastReadAtMs === undefined) return;
    if (watched.pingSentAtMs !== undefined) {
      // grpc-go closes the transport when the ack is late; any byte from the client counts as an answer.
      if (lastReadAtMs >= watched.pingSentAtMs) watched.pingSentAtMs = undefined;
      else if (this.limits.keepaliveTimeoutMs > 0 && now - watched.pingSentAtMs >= this.limits.keepaliveTimeoutMs) {
        watched.session.destroy();
      }
      return;
    }
    if (now - lastReadAtMs < this.limits.keepaliveIntervalMs) return;
    watched.pingSentAtMs = now;
    try {
      watched.session.ping(() => {});
    } catch {
      watched.session.destroy();
    }
  }
}

/** A guarded connection writes its own GOAWAY; a native one asks the session to send it. */
function close(watched: Watched, violation: Violation): void {
  if (watched.connection !== undefined) {
    watched.connection.closeWith(violation);
    return;
  }
  if (violation.code === http2ErrorCode.noError) {
    watched.session.close();
    return;
  }
  const session = watched.session;
  if (watched.native !== undefined && !session.destroyed) {
    if (watched.closing) return;
    watched.closing = true;
    // The client learns why, as from the guard: our GOAWAY with the debug text, then the end.
    session.goaway(violation.code, watched.native.lastStreamId, Buffer.from(violation.debug));
    // Then the socket, first: a session destroyed while its socket is open sends a GOAWAY of its own, NO_ERROR.
    const socket = watched.native.socket;
    setTimeout(() => {
      socket.destroy();
      session.destroy();
    }, goawayFlushMs).unref?.();
    return;
  }
  session.destroy(undefined, violation.code);
}

/** How long a native session closed for a violation has to send its GOAWAY. */
const goawayFlushMs = 100;
