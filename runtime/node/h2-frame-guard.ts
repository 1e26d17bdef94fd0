// Limits on the frames an HTTP/2 client sends, judged before any server (or
// the `:authority` rewriter, which holds a header block until it ends) keeps
// a byte of them. Only frame headers are read; payloads are skipped.
//
// Why here and not in the server: the rewriter must hold every frame of an
// unfinished header block, so it is the first to pay for a CONTINUATION flood
// (issue 24: empty CONTINUATION frames grew Node to 1.3 GB, Bun to 2.1 GB). The
// guard bounds what a block may cost: at most `headerBlockContinuationFramesMax`
// CONTINUATION frames (nghttp2's limit since its 2024 CONTINUATION-flood fix,
// so Node's server would refuse the same block) and at most
// `headerBlockBytesMax` bytes, frame headers included, so empty frames count.

/** HTTP/2 error codes (RFC 9113 §7) used when a limit closes a connection. */
export const http2ErrorCode = {
  noError: 0x0,
  protocolError: 0x1,
  frameSizeError: 0x6,
  enhanceYourCalm: 0xb,
} as const;

export const connectionPrefaceBytes = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
export const frameHeaderBytes = 9;
export const frameType = { data: 0x0, headers: 0x1, rstStream: 0x3, settings: 0x4, ping: 0x6, goaway: 0x7, continuation: 0x9 } as const;
const flagAck = 0x1;
const flagEndHeaders = 0x4;

/** SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 §6.5.2); our servers never raise it. */
export const frameBytesMaxDefault = 16384;

export interface FrameLimits {
  /** A frame longer than this breaks SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR. */
  frameBytesMax: number;
  /** CONTINUATION frames after one HEADERS frame; nghttp2 ≥ 1.61 allows 8. */
  headerBlockContinuationFramesMax: number;
  /** One header block's frames, headers included (so empty frames count). */
  headerBlockBytesMax: number;
}

const headerBlockContinuationFramesMaxDefault = 8;

/**
 * Streams a client may reset (RST_STREAM) in a burst, and how fast that
 * allowance comes back. nghttp2's fix for the 2023 rapid reset attack
 * (CVE-2023-44487) allows a burst of 1000 at 33/s; here each reset stream
 * has already started a call on the one event loop every client shares, and
 * a burst of 1000 still held a well-behaved client at a 1.8 s p99, so the
 * burst is 200 (no client of etcd's cancels that many calls at once on one
 * connection). Over the allowance the connection is closed with ENHANCE_YOUR_CALM.
 */
export const resetStreamsBurstMax = 200;
export const resetStreamsPerSecond = 33;

export const frameLimitsDefault: FrameLimits = {
  frameBytesMax: frameBytesMaxDefault,
  headerBlockContinuationFramesMax: headerBlockContinuationFramesMaxDefault,
  // A block cannot be larger than its frames: one HEADERS and the CONTINUATIONs allowed, each of at most a full frame.
  headerBlockBytesMax: (1 + headerBlockContinuationFramesMaxDefault) * (frameHeaderBytes + frameBytesMaxDefault),
};

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
  /** Where the frame header starts in the whole byte stream (the preface included). */
  offset: number;
}

/** Why a connection is closed: the GOAWAY's error code and debug data. */
export interface Violation {
  code: number;
  debug: string;
}

/**
 * Walks a byte stream of HTTP/2 frames (after an optional preface), however it
 * is cut into chunks, and shows each frame header to `onFrame`. Payloads are
 * skipped, never copied.
 */
export class FrameHeaderScanner {
  private prefaceRemaining: number;
  private payloadRemaining = 0;
  private readonly header = Buffer.alloc(frameHeaderBytes);
  private headerBytes = 0;
  private readonly frame: FrameHeader = { length: 0, type: 0, flags: 0, streamId: 0, offset: 0 };
  /** Bytes of the stream before the chunk being scanned. */
  private streamOffset = 0;

  /** `onFrame` returns a violation to stop scanning; the scanner then stays stopped. */
  constructor(
    prefaceBytes: number,
    private readonly onFrame: (frame: FrameHeader) => Violation | undefined,
  ) {
    this.prefaceRemaining = prefaceBytes;
  }

  stopped: Violation | undefined;

  /** Bytes of a frame header begun at the end of the last chunk and not yet whole. */
  get pendingHeaderBytes(): number {
    return this.headerBytes;
  }

  /** Returns the first violation found (this chunk or an earlier one), or undefined. */
  scan(chunk: Uint8Array): Violation | undefined {
    const chunkOffset = this.streamOffset;
    this.streamOffset += chunk.length;
    let position = 0;
    while (position < chunk.length && this.stopped === undefined) {
      const available = chunk.length - position;
      if (this.prefaceRemaining > 0 || this.payloadRemaining > 0) {
        const skipped = Math.min(available, this.prefaceRemaining > 0 ? this.prefaceRemaining : this.payloadRemaining);
        if (this.prefaceRemaining > 0) this.prefaceRemaining -= skipped;
        else this.payloadRemaining -= skipped;
        position += skipped;
        continue;
      }
      const copied = Math.min(available, frameHeaderBytes - this.headerBytes);
      this.header.set(chunk.subarray(position, position + copied), this.headerBytes);
      this.headerBytes += copied;
      position += copied;
      if (this.headerBytes < frameHeaderBytes) break;
      this.headerBytes = 0;
      const frame = this.frame;
      frame.length = this.header.readUIntBE(0, 3);
      frame.type = this.header[3] as number;
      frame.flags = this.header[4] as number;
      frame.streamId = this.header.readUInt32BE(5) & 0x7fffffff;
      frame.offset = chunkOffset + position - frameHeaderBytes;
      this.payloadRemaining = frame.length;
      this.stopped = this.onFrame(frame);
    }
    return this.stopped;
  }
}

/**
 * The client → server frames of one connection against `FrameLimits` and the
 * RFC's header block rules (RFC 9113 §6.10: nothing may interleave a block).
 */
export class InboundFrameGuard {
  readonly scanner: FrameHeaderScanner;
  /** The highest stream id the client opened: the GOAWAY's last stream id. */
  lastStreamId = 0;
  /** Stream id of the unfinished header block, 0 when none. */
  private blockStreamId = 0;
  private blockContinuationFrames = 0;
  private blockBytes = 0;
  private readonly resets = new ResetAllowance();

  constructor(
    private readonly limits: FrameLimits,
    /** Called for each PING the client sends (not for acks); may answer with a violation (keepalive enforcement). */
    private readonly onPing: () => Violation | undefined = () => undefined,
  ) {
    this.scanner = new FrameHeaderScanner(connectionPrefaceBytes, (frame) => this.check(frame));
  }

  scan(chunk: Uint8Array): Violation | undefined {
    return this.scanner.scan(chunk);
  }

  private check(frame: FrameHeader): Violation | undefined {
    if (frame.length > this.limits.frameBytesMax) {
      return { code: http2ErrorCode.frameSizeError, debug: `frame of ${frame.length} bytes over ${this.limits.frameBytesMax}` };
    }
    if (this.blockStreamId !== 0) return this.continueBlock(frame);
    if (frame.type === frameType.continuation) return { code: http2ErrorCode.protocolError, debug: "CONTINUATION without HEADERS" };
    if (frame.type === frameType.headers) {
      if (frame.streamId > this.lastStreamId) this.lastStreamId = frame.streamId;
      if ((frame.flags & flagEndHeaders) === 0) {
        this.blockStreamId = frame.streamId;
        this.blockContinuationFrames = 0;
        this.blockBytes = frameHeaderBytes + frame.length;
      }
      return undefined;
    }
    if (frame.type === frameType.ping && (frame.flags & flagAck) === 0) return this.onPing();
    if (frame.type === frameType.rstStream) return this.resets.onReset();
    return undefined;
  }

  private continueBlock(frame: FrameHeader): Violation | undefined {
    if (frame.type !== frameType.continuation || frame.streamId !== this.blockStreamId) {
      return { code: http2ErrorCode.protocolError, debug: "header block interrupted" };
    }
    this.blockContinuationFrames += 1;
    this.blockBytes += frameHeaderBytes + frame.length;
    if (this.blockContinuationFrames > this.limits.headerBlockContinuationFramesMax) {
      return { code: http2ErrorCode.enhanceYourCalm, debug: "too many CONTINUATION frames" };
    }
    if (this.blockBytes > this.limits.headerBlockBytesMax) {
      return { code: http2ErrorCode.protocolError, debug: "header block too large" };
    }
    if ((frame.flags & flagEndHeaders) !== 0) this.blockStreamId = 0;
    return undefined;
  }
}

/** The streams a client may still reset now: a token bucket refilled at `resetStreamsPerSecond`. */
export class ResetAllowance {
  private allowance = resetStreamsBurstMax;
  private atMs = performance.now();

  /** One more reset; a violation once the allowance is spent. */
  onReset(): Violation | undefined {
    const nowMs = performance.now();
    this.allowance = Math.min(resetStreamsBurstMax, this.allowance + ((nowMs - this.atMs) * resetStreamsPerSecond) / 1000);
    this.atMs = nowMs;
    this.allowance -= 1;
    return this.allowance < 0 ? { code: http2ErrorCode.enhanceYourCalm, debug: "too many stream resets" } : undefined;
  }
}

/** A GOAWAY frame (RFC 9113 §6.8). */
export function encodeGoaway(lastStreamId: number, code: number, debug: string): Buffer {
  const debugBytes = Buffer.from(debug);
  const frame = Buffer.alloc(frameHeaderBytes + 8 + debugBytes.length);
  frame.writeUIntBE(8 + debugBytes.length, 0, 3);
  frame[3] = frameType.goaway;
  frame.writeUInt32BE(lastStreamId & 0x7fffffff, frameHeaderBytes);
  frame.writeUInt32BE(code, frameHeaderBytes + 4);
  debugBytes.copy(frame, frameHeaderBytes + 8);
  return frame;
}
