// Sits between an HTTP/2 client's socket and our HTTP/2 server (nghttp2 on
// Node, Bun's own on Bun) and makes every `:authority` the server sees valid;
// see hpack-authority.ts for why. Only the client → server bytes are read
// here; the server's writes go to the socket unchanged. h2-connection.ts puts
// it in front of the server, behind the frame guard (h2-frame-guard.ts), which
// bounds how many frames and bytes a header block held here may take.
//
// Frames other than HEADERS/CONTINUATION are forwarded as they arrive, without
// copying. A header block is read where it lies when one frame in one chunk
// holds it (the usual case), and forwarded unchanged unless an authority had to
// be rewritten; then it is sent again as HEADERS (+ CONTINUATION) without padding.
// Anything we cannot parse switches the connection to plain pass-through, so the
// server sees the client's own bytes and answers with its own error.
import { AuthorityHeaderRewriter } from "./hpack-authority.ts";

const connectionPrefaceBytes = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const frameHeaderBytes = 9;
const frameTypeHeaders = 0x1;
const frameTypeContinuation = 0x9;
const flagEndStream = 0x1;
const flagEndHeaders = 0x4;
const flagPadded = 0x8;
const flagPriority = 0x20;
const priorityBytes = 5;
/** SETTINGS_MAX_FRAME_SIZE's initial value: every HTTP/2 peer accepts frames this large. */
const frameBytesMaxDefault = 16384;
/** A header block larger than this is not decoded; the connection is passed through unchanged. */
const headerBlockBytesMax = 1 << 20;
const empty = Buffer.alloc(0);

/** The client → server byte stream of one HTTP/2 connection, preface included. */
export class AuthorityFrameRewriter {
  private readonly headers = new AuthorityHeaderRewriter();
  private prefaceRemaining = connectionPrefaceBytes;
  /** Payload bytes left of a frame we forward as it is. */
  private forwardRemaining = 0;
  private passThrough = false;
  /** A frame header split across chunks. */
  private readonly splitHeader = Buffer.alloc(frameHeaderBytes);
  private splitHeaderBytes = 0;
  /** A HEADERS or CONTINUATION frame being copied from several chunks (header included). */
  private collecting: Buffer | null = null;
  private collectedBytes = 0;
  /** Whole frames of an unfinished header block, forwarded unchanged if the block needs no rewrite. */
  private heldFrames: Buffer[] = [];
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private blockStreamId = 0;
  private blockFlags = 0;
  private blockPriority: Buffer | null = null;
  private readonly output: Buffer[] = [];
  /** Header blocks read whole so far: passed on unchanged, and rewritten. */
  blocksUnchanged = 0;
  blocksRewritten = 0;

  /** True once something could not be parsed: from then on bytes pass through unread. */
  get gaveUp(): boolean {
    return this.passThrough;
  }

  /** Returns the bytes to hand the server for this chunk (possibly empty, possibly the chunk itself). */
  transform(chunk: Buffer): Buffer {
    if (this.passThrough) return chunk;
    const output = this.output;
    output.length = 0;
    let forwardedFrom = 0; // chunk[forwardedFrom, position) goes to the server as it is
    let position = 0;
    while (position < chunk.length) {
      const available = chunk.length - position;
      if (this.prefaceRemaining > 0) {
        const skipped = Math.min(available, this.prefaceRemaining);
        this.prefaceRemaining -= skipped;
        position += skipped;
        continue;
      }
      if (this.forwardRemaining > 0) {
        const skipped = Math.min(available, this.forwardRemaining);
        this.forwardRemaining -= skipped;
        position += skipped;
        continue;
      }
      if (this.collecting !== null) {
        const copied = Math.min(available, this.collecting.length - this.collectedBytes);
        chunk.copy(this.collecting, this.collectedBytes, position, position + copied);
        this.collectedBytes += copied;
        position += copied;
        forwardedFrom = position;
        if (this.collectedBytes < this.collecting.length) continue;
        const frame = this.collecting;
        this.collecting = null;
        this.heldFrames.push(frame);
        const outcome = this.finishFrame(frame);
        if (outcome === "invalid") {
          this.giveUp(chunk.subarray(position));
          return this.joinOutput(chunk);
        }
        if (outcome === "unchanged") output.push(...this.heldFrames);
        if (outcome === "rewritten") output.push(this.rewritten);
        if (outcome !== "awaiting") this.heldFrames = [];
        continue;
      }
      // A frame header, read where it lies or gathered from several chunks.
      let header: Buffer = chunk;
      let headerAt = position;
      if (this.splitHeaderBytes > 0 || available < frameHeaderBytes) {
        if (forwardedFrom < position) output.push(chunk.subarray(forwardedFrom, position));
        const copied = Math.min(available, frameHeaderBytes - this.splitHeaderBytes);
        chunk.copy(this.splitHeader, this.splitHeaderBytes, position, position + copied);
        this.splitHeaderBytes += copied;
        position += copied;
        forwardedFrom = position;
        if (this.splitHeaderBytes < frameHeaderBytes) break;
        this.splitHeaderBytes = 0;
        header = this.splitHeader;
        headerAt = 0;
      } else {
        position += frameHeaderBytes;
      }
      const fromSplit = header === this.splitHeader;
      const length = header.readUIntBE(headerAt, 3);
      const type = header[headerAt + 3] as number;
      const flags = header[headerAt + 4] as number;
      const awaitingContinuation = this.heldFrames.length > 0;
      if (!awaitingContinuation && type !== frameTypeHeaders && type !== frameTypeContinuation) {
        if (fromSplit) output.push(Buffer.from(this.splitHeader));
        this.forwardRemaining = length;
        continue;
      }
      if (awaitingContinuation !== (type === frameTypeContinuation) || length > headerBlockBytesMax) {
        // Out of order or too large: not ours to judge.
        if (fromSplit) {
          this.giveUp(Buffer.from(this.splitHeader), chunk.subarray(position));
        } else {
          if (forwardedFrom < headerAt) output.push(chunk.subarray(forwardedFrom, headerAt));
          this.giveUp(chunk.subarray(headerAt));
        }
        return this.joinOutput(chunk);
      }
      if (!fromSplit && type === frameTypeHeaders && flags & flagEndHeaders && length <= chunk.length - position) {
        // The usual case: a whole header block in one frame in this chunk.
        const outcome = this.finishFrame(chunk.subarray(headerAt, position + length));
        if (outcome === "invalid") {
          if (forwardedFrom < headerAt) output.push(chunk.subarray(forwardedFrom, headerAt));
          this.giveUp(chunk.subarray(headerAt));
          return this.joinOutput(chunk);
        }
        position += length;
        if (outcome === "rewritten") {
          if (forwardedFrom < headerAt) output.push(chunk.subarray(forwardedFrom, headerAt));
          output.push(this.rewritten);
          forwardedFrom = position;
        }
        continue;
      }
      if (!fromSplit && forwardedFrom < headerAt) output.push(chunk.subarray(forwardedFrom, headerAt));
      this.collecting = Buffer.allocUnsafe(frameHeaderBytes + length);
      header.copy(this.collecting, 0, headerAt, headerAt + frameHeaderBytes);
      this.collectedBytes = frameHeaderBytes;
      forwardedFrom = position;
    }
    if (forwardedFrom < position) output.push(chunk.subarray(forwardedFrom, position));
    return this.joinOutput(chunk);
  }

  private joinOutput(chunk: Buffer): Buffer {
    const output = this.output;
    const only = output[0];
    if (output.length === 1 && only !== undefined) {
      const wholeChunk = only.buffer === chunk.buffer && only.byteOffset === chunk.byteOffset && only.length === chunk.length;
      return wholeChunk ? chunk : only;
    }
    if (output.length === 0) return empty;
    return Buffer.concat(output);
  }

  /** The frames of the block finishFrame last reported as "rewritten". */
  private rewritten: Buffer = empty;

  /** A complete HEADERS or CONTINUATION frame: note its fragment; at END_HEADERS rewrite the block. */
  private finishFrame(frame: Buffer): "awaiting" | "unchanged" | "rewritten" | "invalid" {
    const payload = frame.subarray(frameHeaderBytes);
    const flags = frame[4] as number;
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    let fragment = payload;
    if (frame[3] === frameTypeHeaders) {
      let start = 0;
      let padding = 0;
      if (flags & flagPadded) {
        padding = payload[0] ?? 0;
        start = 1;
      }
      this.blockPriority = null;
      if (flags & flagPriority) {
        this.blockPriority = payload.subarray(start, start + priorityBytes);
        start += priorityBytes;
      }
      if (start + padding > payload.length) return this.stopRewriting();
      fragment = payload.subarray(start, payload.length - padding);
      this.blockStreamId = streamId;
      this.blockFlags = flags;
    } else if (streamId !== this.blockStreamId) {
      return this.stopRewriting();
    }
    this.fragments.push(fragment);
    this.fragmentBytes += fragment.length;
    if (this.fragmentBytes > headerBlockBytesMax) return this.stopRewriting();
    if ((flags & flagEndHeaders) === 0) return "awaiting";
    const block = this.fragments.length === 1 ? (this.fragments[0] as Buffer) : Buffer.concat(this.fragments);
    this.fragments = [];
    this.fragmentBytes = 0;
    const result = this.headers.rewrite(block);
    if (result === null) return this.stopRewriting();
    if (result === block) {
      this.blocksUnchanged++;
      return "unchanged";
    }
    this.blocksRewritten++;
    this.rewritten = encodeHeaderFrames(this.blockStreamId, this.blockFlags & flagEndStream, this.blockPriority, result);
    return "rewritten";
  }

  private stopRewriting(): "invalid" {
    this.passThrough = true;
    return "invalid";
  }

  /** Forwards the held frames and then `rest` unchanged, and passes everything through from now on. */
  private giveUp(...rest: Buffer[]): void {
    this.passThrough = true;
    if (this.collecting !== null) this.heldFrames.push(this.collecting.subarray(0, this.collectedBytes));
    for (const frame of this.heldFrames) this.output.push(frame);
    for (const part of rest) if (part.length > 0) this.output.push(part);
    this.collecting = null;
    this.heldFrames = [];
    this.fragments = [];
  }
}

/** A header block as HEADERS then CONTINUATION frames of at most the default frame size, without padding. */
function encodeHeaderFrames(streamId: number, endStream: number, priority: Buffer | null, block: Uint8Array): Buffer {
  const firstCapacity = frameBytesMaxDefault - (priority === null ? 0 : priorityBytes);
  const continuationCount = Math.max(0, Math.ceil((block.length - firstCapacity) / frameBytesMaxDefault));
  const frames = Buffer.allocUnsafe((1 + continuationCount) * frameHeaderBytes + block.length + (priority?.length ?? 0));
  let offset = 0;
  let blockOffset = 0;
  for (let frameIndex = 0; frameIndex <= continuationCount; frameIndex++) {
    const first = frameIndex === 0;
    const capacity = first ? firstCapacity : frameBytesMaxDefault;
    const fragmentBytes = Math.min(capacity, block.length - blockOffset);
    const last = frameIndex === continuationCount;
    let flags = last ? flagEndHeaders : 0;
    if (first) flags |= endStream | (priority === null ? 0 : flagPriority);
    const payloadBytes = fragmentBytes + (first && priority !== null ? priorityBytes : 0);
    frames.writeUIntBE(payloadBytes, offset, 3);
    frames[offset + 3] = first ? frameTypeHeaders : frameTypeContinuation;
    frames[offset + 4] = flags;
    frames.writeUInt32BE(streamId, offset + 5);
    offset += frameHeaderBytes;
    if (first && priority !== null) offset += priority.copy(frames, offset);
    frames.set(block.subarray(blockOffset, blockOffset + fragmentBytes), offset);
    offset += fragmentBytes;
    blockOffset += fragmentBytes;
  }
  return frames;
}
