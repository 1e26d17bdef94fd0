import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FrameReader, FrameTooLargeError, frameHeaderBytes, keepaliveFrame, sealFrame } from "../../src/peer/framing.ts";

function frame(payload: number[]): Uint8Array {
  const framed = new Uint8Array(frameHeaderBytes + payload.length);
  framed.set(payload, frameHeaderBytes);
  return sealFrame(framed);
}

function readAll(reader: FrameReader): number[][] {
  const frames: number[][] = [];
  for (let next = reader.next(); next !== undefined; next = reader.next()) frames.push([...next]);
  return frames;
}

describe("peer framing", () => {
  test("frames split at every byte across chunks come out whole and in order", () => {
    const stream = new Uint8Array([...frame([1, 2, 3]), ...keepaliveFrame, ...frame(Array.from({ length: 300 }, (_, i) => i & 0xff)), ...frame([9])]);
    for (let cut = 0; cut <= stream.length; cut++) {
      for (const step of [1, 7]) {
        const reader = new FrameReader(1024);
        const frames: number[][] = [];
        reader.push(stream.subarray(0, cut));
        frames.push(...readAll(reader));
        for (let at = cut; at < stream.length; at += step) {
          reader.push(stream.subarray(at, Math.min(stream.length, at + step)));
          frames.push(...readAll(reader));
        }
        assert.equal(frames.length, 4, `cut ${cut} step ${step}`);
        assert.deepEqual(frames[0], [1, 2, 3]);
        assert.deepEqual(frames[1], []);
        assert.equal(frames[2]?.length, 300);
        assert.deepEqual(frames[3], [9]);
        assert.equal(reader.queue.available, 0);
      }
    }
  });

  test("a frame inside one chunk is a view, not a copy", () => {
    const chunk = frame([5, 6, 7, 8]);
    const reader = new FrameReader(1024);
    reader.push(chunk);
    const payload = reader.next();
    assert.equal(payload?.buffer, chunk.buffer);
  });

  test("a frame over the limit is refused from its header alone", () => {
    const reader = new FrameReader(10);
    reader.push(frame(new Array(11).fill(0)).subarray(0, 4));
    assert.throws(() => reader.next(), FrameTooLargeError);
  });
});
