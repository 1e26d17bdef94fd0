// HTTP/1.1 requests refused before their body was read whole (a body over
// --max-request-bytes is refused from its declared length or its first bytes).
import type { NodeRequestHandler } from "./http-listener.ts";

/** How long the rest of a refused HTTP/1.1 body is read and dropped before the connection is closed. */
const unreadBodyDrainMsMax = 500;

/**
 * A request answered before its body was read whole (one over the size limit
 * is refused after its declared length or its first bytes) leaves the rest of
 * its body on the HTTP/1.1 connection; Node parses nothing more from it, and
 * a client that stopped sending mid-body cannot reuse it either. As Go's
 * net/http does for etcd, the answer says `Connection: close`, and the close
 * lingers: Node would close as soon as the answer is written, and closing
 * with the client's bytes still arriving resets the connection, so the client
 * can lose the answer. Here the write side closes, what still comes is read
 * and dropped, and the socket goes a moment later.
 */
export function closingAfterUnreadBody(handler: NodeRequestHandler): NodeRequestHandler {
  return (request, response) => {
    const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => unknown;
    (response as { writeHead: (...args: unknown[]) => unknown }).writeHead = (...args: unknown[]) => {
      if (!request.complete) {
        response.setHeader("connection", "close");
        lingerOnClose(request.socket as unknown as LingeringSocket, () => request.resume());
      }
      return writeHead(...args);
    };
    handler(request, response);
  };
}

interface LingeringSocket {
  destroySoon(): void;
  end(): void;
  destroy(): void;
}

function lingerOnClose(socket: LingeringSocket | null, drain: () => void): void {
  if (socket === null) return;
  socket.destroySoon = () => {
    socket.end();
    drain();
    setTimeout(() => socket.destroy(), unreadBodyDrainMsMax).unref();
  };
}
