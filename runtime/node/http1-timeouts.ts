// HTTP/1.1 header and request timeouts for connections handed to an
// http.Server that never listen()s (http-listener.ts routes sockets to it):
// Node runs its own headersTimeout/requestTimeout checks only for a server
// that listens, and Bun's node:http does not promise them either, so the
// listener keeps them here, with Node's meaning: the request's headers must
// arrive within `headersTimeoutMs` of the connection (or of the previous
// response), the whole request within `requestTimeoutMs`. A late client gets
// 408 and the connection is closed.
import type * as http from "node:http";
import type * as net from "node:net";

export interface Http1Timeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

const requestTimeoutResponse = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

interface Watched {
  timer: ReturnType<typeof setTimeout> | undefined;
  /** When the current request began: the connection opened or the previous response ended. */
  startedAtMs: number;
  /** Requests received and not yet answered (more than one when the client pipelines). */
  inFlight: number;
}

export class Http1TimeoutWatch {
  private readonly connections = new WeakMap<net.Socket, Watched>();

  constructor(
    server: http.Server,
    private readonly timeouts: Http1Timeouts,
    private readonly nowMs: () => number,
  ) {
    server.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => this.onRequest(request, response));
  }

  /** Starts the clock on a connection just handed to the server. */
  adopt(socket: net.Socket): void {
    const watched: Watched = { timer: undefined, startedAtMs: this.nowMs(), inFlight: 0 };
    this.connections.set(socket, watched);
    this.arm(socket, watched, this.timeouts.headersTimeoutMs, true);
    socket.once("close", () => clearTimeout(watched.timer));
  }

  private onRequest(request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    const watched = this.connections.get(socket);
    if (watched === undefined) return;
    watched.inFlight += 1;
    const remainingMs = this.timeouts.requestTimeoutMs - (this.nowMs() - watched.startedAtMs);
    this.arm(socket, watched, remainingMs, () => !response.headersSent);
    const received = () => clearTimeout(watched.timer);
    if (request.complete) received();
    else request.once("end", received);
    response.once("close", () => {
      received();
      watched.inFlight -= 1;
      if (socket.destroyed || watched.inFlight > 0) return;
      watched.startedAtMs = this.nowMs();
      this.arm(socket, watched, this.timeouts.headersTimeoutMs, true);
    });
  }

  /** On expiry: 408 when no response has begun (`answer`), then close. */
  private arm(socket: net.Socket, watched: Watched, delayMs: number, answer: boolean | (() => boolean)): void {
    clearTimeout(watched.timer);
    watched.timer = setTimeout(
      () => {
        const mayAnswer = typeof answer === "function" ? answer() : answer;
        if (mayAnswer && socket.writable) socket.end(requestTimeoutResponse);
        else socket.destroy();
        setTimeout(() => socket.destroy(), 1000).unref?.();
      },
      Math.max(0, delayMs),
    );
    watched.timer.unref?.();
  }
}
