// Length-prefixed frames on a byte stream: [length: u32 big-endian][payload].
// A frame of length 0 is a keepalive. Reading takes views of the network's
// chunks where a frame lies inside one chunk, and copies only across chunks.

export const frameHeaderBytes = 4;

/** Writes the length prefix into the first 4 bytes of `frame` (reserved by the encoder). */
export function sealFrame(frame: Uint8Array): Uint8Array {
  const length = frame.length - frameHeaderBytes;
  new DataView(frame.buffer, frame.byteOffset, frameHeaderBytes).setUint32(0, length);
  return frame;
}

export const keepaliveFrame = new Uint8Array(frameHeaderBytes);

export class FrameTooLargeError extends Error {
  override name = "FrameTooLargeError";
}

export class FrameCorruptError extends Error {
  override name = "FrameCorruptError";
}

/** A queue of received chunks that hands out exact byte ranges. */
export class ByteQueue {
  private readonly chunks: Uint8Array[] = [];
  private head = 0; // bytes already consumed from chunks[0]
  available = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.length;
  }

  /** The next `length` bytes (a view when they lie in one chunk), or undefined if not yet here. */
  take(length: number): Uint8Array | undefined {
    if (length > this.available) return undefined;
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= length) {
      const view = first.subarray(this.head, this.head + length);
      this.consume(length);
      return view;
    }
    const out = new Uint8Array(length);
    this.copyInto(out, 0, length);
    return out;
  }

  /** Moves up to `length` bytes into `target` at `offset`; returns how many. */
  copyInto(target: Uint8Array, offset: number, length: number): number {
    let copied = 0;
    while (copied < length) {
      const chunk = this.chunks[0];
      if (chunk === undefined) break;
      const count = Math.min(length - copied, chunk.length - this.head);
      target.set(chunk.subarray(this.head, this.head + count), offset + copied);
      copied += count;
      this.consume(count);
    }
    return copied;
  }

  /** The big-endian u32 at the front, without consuming it. */
  peekUint32(): number | undefined {
    if (this.available < 4) return undefined;
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= 4) {
      const at = this.head;
      return ((first[at] ?? 0) * 0x1000000 + (((first[at + 1] ?? 0) << 16) | ((first[at + 2] ?? 0) << 8) | (first[at + 3] ?? 0)));
    }
    const bytes = new Uint8Array(4);
    let offset = 0;
    for (const chunk of this.chunks) {
      const start = chunk === first ? this.head : 0;
      for (let i = start; i < chunk.length && offset < 4; i++) bytes[offset++] = chunk[i] ?? 0;
      if (offset === 4) break;
    }
    return new DataView(bytes.buffer).getUint32(0);
  }

  /** The byte `offset` bytes from the front, without consuming anything. */
  peekByte(offset: number): number | undefined {
    if (offset >= this.available) return undefined;
    let at = this.head + offset;
    for (const chunk of this.chunks) {
      if (at < chunk.length) return chunk[at];
      at -= chunk.length;
    }
    return undefined;
  }

  private consume(length: number): void {
    this.available -= length;
    this.head += length;
    while (this.chunks.length > 0 && this.head >= (this.chunks[0]?.length ?? 0)) {
      this.head -= this.chunks[0]?.length ?? 0;
      this.chunks.shift();
    }
  }
}

/** Splits a byte stream into frame payloads; keepalives come out as empty payloads. */
export class FrameReader {
  readonly queue = new ByteQueue();

  /**
   * `leadingByte`, when given, is the byte every non-empty payload starts with
   * (the codec's version). A frame that starts otherwise means the stream lost
   * its framing (bytes lost or corrupted on the way), and its length is noise:
   * waiting for that many bytes could stall the stream for as long as it lives.
   */
  constructor(
    private readonly frameBytesMax: number,
    private readonly leadingByte?: number,
  ) {}

  push(chunk: Uint8Array): void {
    this.queue.push(chunk);
  }

  /** The next whole frame's payload, or undefined until more bytes arrive. */
  next(): Uint8Array | undefined {
    const length = this.queue.peekUint32();
    if (length === undefined) return undefined;
    if (length > this.frameBytesMax) throw new FrameTooLargeError(`peer frame of ${length} bytes exceeds ${this.frameBytesMax}`);
    if (length > 0 && this.leadingByte !== undefined) {
      const first = this.queue.peekByte(frameHeaderBytes);
      if (first !== undefined && first !== this.leadingByte) {
        throw new FrameCorruptError(`peer frame starts with byte ${first}, not ${this.leadingByte}: the stream lost its framing`);
      }
    }
    if (this.queue.available < frameHeaderBytes + length) return undefined;
    this.queue.take(frameHeaderBytes);
    return length === 0 ? new Uint8Array(0) : this.queue.take(length);
  }
}
