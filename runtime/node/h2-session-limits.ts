// Limits on each HTTP/2 session of one listener that only time can judge:
// streams per connection, bytes buffered for a client that does not read, an
// idle connection, and the server's keepalive pings (etcd's
// --grpc-keepalive-interval and --grpc-keepalive-timeout). One timer per
// listener looks at every session; nothing here runs per frame.
import type * as http2 from "node:http2";
import type { GuardedConnection } from "./h2-connection.ts";
import { http2ErrorCode, type Violation } from "./h2-frame-guard.ts";

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

  /** Watches a new session; `connection` is its guarded socket when it has one. */
  adopt(session: http2.ServerHttp2Session, connection: GuardedConnection | undefined): void {
    const watched: Watched = {
      session,
      connection,
      streams: new Set(),
      idleSinceMs: this.nowMs(),
      bufferedBytes: 0,
      bufferedOverSinceMs: undefined,
      pingSentAtMs: undefined,
    };
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
    stream.once("close", () => {
      watched.streams.delete(stream);
      if (watched.connection !== undefined) watched.connection.openStreams = watched.streams.size;
      if (watched.streams.size === 0) watched.idleSinceMs = this.nowMs();
    });
  }

  private tick(): void {
    const now = this.nowMs();
    for (const watched of this.sessions) {
      if (watched.session.destroyed || watched.connection?.isClosing === true) continue;
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

  private checkKeepalive(watched: Watched, now: number): void {
    const connection = watched.connection;
    if (this.limits.keepaliveIntervalMs <= 0 || connection === undefined) return;
    if (watched.pingSentAtMs !== undefined) {
      // grpc-go closes the transport when the ack is late; any byte from the client counts as an answer.
      if (connection.lastReadAtMs >= watched.pingSentAtMs) watched.pingSentAtMs = undefined;
      else if (this.limits.keepaliveTimeoutMs > 0 && now - watched.pingSentAtMs >= this.limits.keepaliveTimeoutMs) {
        watched.session.destroy();
      }
      return;
    }
    if (now - connection.lastReadAtMs < this.limits.keepaliveIntervalMs) return;
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
  watched.session.destroy(undefined, violation.code);
}
