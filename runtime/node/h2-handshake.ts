// Which way a client's HTTP/2 connection is read on Node: natively by
// nghttp2, or through the frame guard and the `:authority` rewriter
// (h2-connection.ts), which put a JS stream wrapper and a JS hop on every read
// and write (a third of the server's time under a put load). Only the
// rewriter needs the guard's JS path; nghttp2 holds the same frame limits
// itself (the peer port relies on it). So a client whose first request carries
// a valid `:authority` is read natively; one that needs a rewrite (etcdctl 3.4
// with http:// endpoints) is guarded. A client uses one authority for every
// request of a connection.
//
// The first request's headers come only after the server's preface: a gRPC
// client waits for the server's SETTINGS before it calls. So this writes an
// empty SETTINGS frame at once (a valid server preface, RFC 9113 §3.4, that
// changes no setting) and reads on until the client has acknowledged it and
// sent its first header block. The acknowledgement is taken out of what the
// server behind reads (it never sent the SETTINGS answered, and nghttp2 treats
// an unexpected ack as a protocol error); its own SETTINGS follow as an
// ordinary settings update.
//
// Anything else before the first header block (a PING, DATA, a reset, a
// frame the guard refuses, more than `bytesMax`), a block that needs a
// rewrite, or no decision within `decideMsMax` takes the guarded path, which
// judges the connection as it judged every connection before, and drops the
// acknowledgement when it comes later (stripSettingsAck).
import type * as net from "node:net";
import { AuthorityFrameRewriter } from "./h2-authority.ts";
import { connectionPrefaceBytes, frameHeaderBytes, frameType, InboundFrameGuard, type FrameLimits, type Violation } from "./h2-frame-guard.ts";

const flagAck = 0x1;
const flagEndHeaders = 0x4;
const framePriority = 0x2;
const frameWindowUpdate = 0x8;

/** A SETTINGS frame with no parameters: the server's preface, changing nothing. */
export const emptySettingsFrame = Buffer.from([0, 0, 0, frameType.settings, 0, 0, 0, 0, 0]);

export interface HandshakeOptions {
  limits: FrameLimits;
  /** No decision this long after the preface (no request yet, no acknowledgement): the guarded path. */
  decideMsMax: number;
  /** Bytes held while deciding; more choose the guarded path. */
  bytesMax: number;
}

export const handshakeDefaults: Omit<HandshakeOptions, "limits"> = {
  decideMsMax: 1000,
  bytesMax: 256 * 1024,
};

export type ReadPath = "native" | "guarded";

/**
 * Reads `socket` (after `head`, which starts with the client preface) until
 * the path is chosen, then calls `decided` with the path, the bytes read (the
 * acknowledgement taken out) and whether the acknowledgement is still to come
 * (only ever on the guarded path). The socket is paused and has no data
 * listener of ours by then.
 */
export function chooseReadPath(
  socket: net.Socket,
  head: Buffer,
  options: HandshakeOptions,
  decided: (path: ReadPath, bytes: Buffer, ackToCome: boolean) => void,
): void {
  const guard = new InboundFrameGuard(options.limits);
  const rewriter = new AuthorityFrameRewriter();
  let bytes: Buffer = Buffer.alloc(0);
  /** Where the next whole frame starts in `bytes`. */
  let walked = connectionPrefaceBytes;
  let ackAt = -1;
  let unusual = false;
  let firstBlockDone = false;
  let violation: Violation | undefined;
  let done = false;

  const finish = (path: ReadPath) => {
    done = true;
    clearTimeout(timer);
    socket.pause();
    socket.off("data", onData);
    socket.off("close", onClose);
    if (ackAt < 0) return decided(path, bytes, true);
    decided(path, Buffer.concat([bytes.subarray(0, ackAt), bytes.subarray(ackAt + frameHeaderBytes)]), false);
  };
  const timer = setTimeout(() => {
    if (!done) finish("guarded");
  }, options.decideMsMax);
  timer.unref?.();
  const onClose = () => {
    done = true;
    clearTimeout(timer);
  };

  const onData = (chunk: Buffer) => {
    if (done) return;
    bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
    violation ??= guard.scan(chunk);
    if (violation === undefined && !rewriter.gaveUp) rewriter.transform(chunk);
    // Whole frames only: their types up to the end of the first header block,
    // and where the acknowledgement lies (it may come after that block).
    while (walked + frameHeaderBytes <= bytes.length && !(firstBlockDone && ackAt >= 0)) {
      const length = bytes.readUIntBE(walked, 3);
      if (walked + frameHeaderBytes + length > bytes.length) break;
      const type = bytes[walked + 3] as number;
      const flags = bytes[walked + 4] as number;
      if (type === frameType.settings && (flags & flagAck) !== 0) {
        if (ackAt < 0 && length === 0) ackAt = walked;
        else if (!firstBlockDone) unusual = true;
      } else if (!firstBlockDone) {
        if (type === frameType.headers || type === frameType.continuation) firstBlockDone = (flags & flagEndHeaders) !== 0;
        else if (type !== frameType.settings && type !== framePriority && type !== frameWindowUpdate) unusual = true;
      }
      walked += frameHeaderBytes + length;
    }
    if (unusual || violation !== undefined || rewriter.gaveUp || rewriter.blocksRewritten > 0 || bytes.length > options.bytesMax) {
      finish("guarded");
    } else if (firstBlockDone && rewriter.blocksUnchanged > 0 && ackAt >= 0) {
      finish("native");
    }
  };

  socket.on("data", onData);
  socket.once("close", onClose);
  socket.write(emptySettingsFrame);
  onData(head);
}
