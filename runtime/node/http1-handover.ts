// Handing an HTTP/1.1 connection to node:http's server from outside: the
// listener (http-listener.ts) has read the connection's first bytes to choose
// HTTP/2 or HTTP/1.1 and gives them back with the socket, to a server that
// never listens itself. Node and Bun take that as it is. Deno 2.9's node:http
// does not, in two ways, each found with a minimal repro (issue 16) and worked
// around here for Deno only:
//
// 1. Its server closes a kept-alive connection after each response when
//    `server.listening` is false: Deno's resOnFinish (node:_http_server) has
//    `if (!server.listening) socket.destroy()` where Node's keeps the
//    connection for the next request. A client's second request on the
//    connection met a reset (ECONNRESET), every time.
// 2. Its parser reads the socket itself (parser.consume of the socket's
//    handle, as Node's does). The bytes given back with unshift reach the
//    parser through the stream, on the tick after resume(); Node runs that
//    tick before the socket's next read callback, Deno did not: the rest of a
//    request already in the kernel's buffer went to the parser first, which
//    took body bytes for a request line, and the client got HTTP 400.
//    Reading the bytes out of the stream at once hands them to the parser
//    before it can read the socket.
import type * as http from "node:http";
import type * as net from "node:net";

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** Lets `server`, which never listens, keep its connections between requests on every runtime (fault 1). */
export function keepConnectionsAlive(server: http.Server): void {
  if (!isDeno) return;
  // It serves the connections its listener hands over for as long as that
  // listener lives, which is what a listening server does.
  Object.defineProperty(server, "listening", { configurable: true, get: () => true });
}

/** Gives `server` a connection whose first bytes, `head`, were already read from it. */
export function handOverHttp1(server: http.Server, socket: net.Socket, head: Buffer): void {
  socket.pause();
  socket.unshift(head);
  server.emit("connection", socket);
  // The server now listens to "data": read() emits `head` to it at once (fault 2).
  if (isDeno) socket.read();
  socket.resume();
}
