// The HTTP/2 authority rewriter (runtime/node/h2-authority.ts) in front of the
// runtime's own HTTP/2 server (nghttp2 on Node, Bun's on Bun): header blocks
// from node:http2's client and built by hand (every HPACK representation,
// Huffman or not, table size updates, CONTINUATION, padding, priority) reach
// the server with every `:authority` valid and every other header intact, over
// many requests of one connection, however the bytes are cut into chunks.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as http from "node:http";
import { createHash } from "node:crypto";
import { AuthorityFrameRewriter } from "../../runtime/node/h2-authority.ts";
import { huffmanDecode, huffmanEncode } from "../../runtime/node/hpack-huffman.ts";
import { validAuthority, writeInteger } from "../../runtime/node/hpack-authority.ts";
import { listenHttp, type Listener } from "../../runtime/node/http-listener.ts";

const text = new TextEncoder();
const bytesOf = (value: string) => text.encode(value);

// ---- a small HPACK encoder and frame builder for hand-made input ----

type Field =
  | { kind: "indexed"; index: number }
  | { kind: "size"; bytes: number }
  | { kind: "incremental" | "without" | "never"; name: string | number; value: string; huffman?: boolean };

function encodeString(value: string, huffman: boolean): Uint8Array {
  const raw = bytesOf(value);
  const data = huffman ? huffmanEncode(raw) : raw;
  const output = new Uint8Array(6 + data.length);
  const at = writeInteger(output, 0, data.length, 7, huffman ? 0x80 : 0);
  output.set(data, at);
  return output.subarray(0, at + data.length);
}

function encodeBlock(fields: Field[]): Buffer {
  const parts: Uint8Array[] = [];
  for (const field of fields) {
    const head = new Uint8Array(8);
    if (field.kind === "indexed") {
      parts.push(head.subarray(0, writeInteger(head, 0, field.index, 7, 0x80)));
      continue;
    }
    if (field.kind === "size") {
      parts.push(head.subarray(0, writeInteger(head, 0, field.bytes, 5, 0x20)));
      continue;
    }
    const [prefixBits, pattern] = field.kind === "incremental" ? [6, 0x40] : field.kind === "never" ? [4, 0x10] : [4, 0x00];
    const nameIndex = typeof field.name === "number" ? field.name : 0;
    parts.push(head.subarray(0, writeInteger(head, 0, nameIndex, prefixBits, pattern)));
    if (typeof field.name === "string") parts.push(encodeString(field.name, field.huffman ?? false));
    parts.push(encodeString(field.value, field.huffman ?? false));
  }
  return Buffer.concat(parts);
}

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

interface BlockFraming {
  padding?: number;
  priority?: boolean;
  /** Cut the block at these offsets into HEADERS + CONTINUATION frames. */
  cuts?: number[];
}

function headerFrames(streamId: number, block: Buffer, framing: BlockFraming = {}): Buffer {
  const cuts = [0, ...(framing.cuts ?? []), block.length];
  const frames: Buffer[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const fragment = block.subarray(cuts[i], cuts[i + 1]);
    const last = i + 2 === cuts.length;
    if (i > 0) {
      frames.push(frame(0x9, last ? 0x4 : 0, streamId, fragment));
      continue;
    }
    let flags = 0x1 | (last ? 0x4 : 0); // END_STREAM: these requests have no body
    const prefix: number[] = [];
    if (framing.padding !== undefined) {
      flags |= 0x8;
      prefix.push(framing.padding);
    }
    if (framing.priority === true) {
      flags |= 0x20;
      prefix.push(0, 0, 0, 0, 15); // no dependency, weight 16
    }
    const padding = Buffer.alloc(framing.padding ?? 0);
    frames.push(frame(0x1, flags, streamId, Buffer.concat([Buffer.from(prefix), fragment, padding])));
  }
  return Buffer.concat(frames);
}

const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(0x4, 0, 0, new Uint8Array(0))]);

// ---- the server under test ----

interface Seen {
  authority: string | undefined;
  path: string | undefined;
  test: string | undefined;
  other: string | undefined;
}

let listener: Listener;
const seen = new Map<string, Seen>();
const waiters = new Map<string, () => void>();

before(async () => {
  listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    handleHttp2: (request, response) => {
      const headers = request.headers;
      const path = String(headers[":path"]);
      const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value.join(",") : value);
      if (path.startsWith("/slow/")) return slowExchange(request, response);
      seen.set(path, {
        authority: one(headers[":authority"]),
        path,
        test: one(headers["x-test"]),
        other: one(headers["x-other"]),
      });
      response.end("ok");
      waiters.get(path)?.();
    },
  });
});

after(async () => {
  await listener.close();
});

const bulk = Buffer.alloc(4 << 20);
for (let offset = 0; offset < bulk.length; offset += 4) bulk.writeUInt32LE((offset * 2654435761) >>> 0, offset);

/** Reads a body slowly, answers with its SHA-256 and a 4 MiB body: backpressure both ways. */
function slowExchange(request: http2.Http2ServerRequest | http.IncomingMessage, response: http2.Http2ServerResponse | http.ServerResponse): void {
  const hash = createHash("sha256");
  request.on("data", (chunk: Buffer) => {
    hash.update(chunk);
    request.pause();
    setTimeout(() => request.resume(), 1);
  });
  request.on("end", () => {
    response.setHeader("x-digest", hash.digest("hex"));
    response.end(bulk);
  });
}

function requestSeen(path: string, timeoutMs = 10_000): Promise<Seen> {
  const known = seen.get(path);
  if (known !== undefined) return Promise.resolve(known);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server never saw ${path}`)), timeoutMs);
    waiters.set(path, () => {
      clearTimeout(timer);
      resolve(seen.get(path) as Seen);
    });
  });
}

async function rawConnection(): Promise<net.Socket> {
  const socket = net.connect(listener.port, "127.0.0.1");
  socket.setNoDelay(true);
  socket.on("data", () => undefined); // the server's frames are not our subject
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return socket;
}

let pathCounter = 0;
const freshPath = (label: string) => `/${label}/${++pathCounter}`;

/** A request block: table size updates (which must come first), fixed pseudo-headers, then the fields under test. */
function requestFields(path: string, authority: Field[], extra: Field[] = []): Field[] {
  const sizeUpdates = extra.filter((field) => field.kind === "size");
  return [
    ...sizeUpdates,
    { kind: "indexed", index: 2 }, // :method GET
    { kind: "indexed", index: 6 }, // :scheme http
    { kind: "without", name: 4, value: path }, // :path
    ...authority,
    ...extra.filter((field) => field.kind !== "size"),
  ];
}

describe("hand-built header blocks through the rewriter to the real HTTP/2 server", () => {
  test("every representation of :authority, Huffman and not, over many requests of one connection", async () => {
    const socket = await rawConnection();
    socket.write(preface);
    const bad = "http://127.0.0.1:2379";
    const expected = "127.0.0.1:2379";
    let streamId = 1;
    const check = async (label: string, authority: Field[], wanted: string, framing?: BlockFraming, extra?: Field[]) => {
      const path = freshPath(label);
      socket.write(headerFrames(streamId, encodeBlock(requestFields(path, authority, extra)), framing));
      streamId += 2;
      const got = await requestSeen(path);
      assert.equal(got.authority, wanted, label);
      return got;
    };
    for (const huffman of [false, true]) {
      // Literal, incremental indexing, indexed name (static 1): grpc-go's first request.
      await check(`incremental-${huffman}`, [{ kind: "incremental", name: 1, value: bad, huffman }], expected);
      // The entry just added is index 62; the server's copy holds the rewritten value.
      await check(`indexed-${huffman}`, [{ kind: "indexed", index: 62 }], expected);
      await check(`literal-name-${huffman}`, [{ kind: "incremental", name: ":authority", value: "https://h.example:443/x?y", huffman }], "h.example:443");
      await check(`indexed-again-${huffman}`, [{ kind: "indexed", index: 62 }], "h.example:443");
      await check(`older-entry-${huffman}`, [{ kind: "indexed", index: 63 }], expected);
      await check(`without-${huffman}`, [{ kind: "without", name: 1, value: bad, huffman }], expected);
      await check(`never-${huffman}`, [{ kind: "never", name: ":authority", value: bad, huffman }], expected);
      await check(`valid-${huffman}`, [{ kind: "without", name: 1, value: "10.0.0.1:2379", huffman }], "10.0.0.1:2379");
      // Indexed name from the dynamic table (entry 62 is an :authority entry).
      await check(`dynamic-name-${huffman}`, [{ kind: "incremental", name: 62, value: "http://[::1]:2379", huffman }], "[::1]:2379");
      await check(`dynamic-name-indexed-${huffman}`, [{ kind: "indexed", index: 62 }], "[::1]:2379");
    }
    // Other headers in the dynamic table keep their positions and values.
    const got = await check("custom", [{ kind: "indexed", index: 62 }], "[::1]:2379", undefined, [
      { kind: "incremental", name: "x-test", value: "first", huffman: true },
      { kind: "incremental", name: "x-other", value: "second" },
    ]);
    assert.deepEqual([got.test, got.other], ["first", "second"]);
    const again = await check("custom-indexed", [{ kind: "indexed", index: 64 }], "[::1]:2379", undefined, [
      { kind: "indexed", index: 63 },
      { kind: "indexed", index: 62 },
    ]);
    assert.deepEqual([again.test, again.other], ["first", "second"]);
    // A Huffman-coded value whose plain rewrite takes more bytes than the original.
    const long = `https://${"a".repeat(300)}:1`;
    await check("grows", [{ kind: "incremental", name: 1, value: long, huffman: true }], `${"a".repeat(300)}:1`);
    await check("grows-indexed", [{ kind: "indexed", index: 62 }], `${"a".repeat(300)}:1`);
    socket.destroy();
  });

  test("dynamic table size updates and eviction keep both tables in step", async () => {
    const socket = await rawConnection();
    socket.write(preface);
    let streamId = 1;
    const send = (label: string, fields: Field[], framing?: BlockFraming) => {
      const path = freshPath(label);
      socket.write(headerFrames(streamId, encodeBlock(requestFields(path, [], fields)), framing));
      streamId += 2;
      return requestSeen(path);
    };
    // A 256-byte table: the bad authority entry (10 + 21 + 32 = 63 bytes; the
    // server's rewritten copy 56) and x-test (6 + 50 + 32 = 88).
    const a = "a".repeat(50);
    const b = "b".repeat(70);
    let got = await send("resize", [
      { kind: "size", bytes: 256 },
      { kind: "incremental", name: 1, value: "http://127.0.0.1:2379" },
      { kind: "incremental", name: "x-test", value: a },
    ]);
    assert.deepEqual([got.authority, got.test], ["127.0.0.1:2379", a]);
    // x-other (7 + 70 + 32 = 109): the client's table (63 + 88 + 109 > 256)
    // evicts the authority entry, the server's (56 + 88 + 109 = 253) keeps it;
    // the indexes the client uses still mean the same entries on both sides.
    got = await send("evict", [
      { kind: "without", name: 1, value: "http://r2:1" },
      { kind: "incremental", name: "x-other", value: b },
      { kind: "indexed", index: 63 }, // x-test
    ]);
    assert.deepEqual([got.authority, got.test, got.other], ["r2:1", a, b]);
    // 67 more bytes (server: 59): the client evicts x-test, the server its old authority.
    got = await send("evict-more", [
      { kind: "incremental", name: 1, value: "https://evicted.example:1" },
      { kind: "indexed", index: 63 }, // x-other
    ]);
    assert.deepEqual([got.authority, got.test, got.other], ["evicted.example:1", undefined, b]);
    got = await send("after-evict", [
      { kind: "indexed", index: 62 }, // :authority evicted.example:1
      { kind: "indexed", index: 63 }, // x-other
    ]);
    assert.deepEqual([got.authority, got.test, got.other], ["evicted.example:1", undefined, b]);
    // Size 0 empties the table, then back to 4096 with a fresh entry.
    got = await send("empty", [
      { kind: "size", bytes: 0 },
      { kind: "size", bytes: 4096 },
      { kind: "incremental", name: ":authority", value: "http://fresh:1", huffman: true },
    ]);
    assert.equal(got.authority, "fresh:1");
    got = await send("fresh-indexed", [{ kind: "indexed", index: 62 }]);
    assert.equal(got.authority, "fresh:1");
    // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
    got = await send("too-large", [
      { kind: "incremental", name: 1, value: "http://after:2" },
      { kind: "incremental", name: "x-test", value: "c".repeat(5000) },
    ]);
    assert.deepEqual([got.authority, got.test], ["after:2", "c".repeat(5000)]);
    got = await send("after-too-large", [{ kind: "incremental", name: 1, value: "http://after:3" }]);
    assert.equal(got.authority, "after:3");
    got = await send("after-too-large-indexed", [{ kind: "indexed", index: 62 }]);
    assert.equal(got.authority, "after:3");
    socket.destroy();
  });

  test("padding, priority and CONTINUATION frames, with blocks above the frame size", async () => {
    const socket = await rawConnection();
    socket.write(preface);
    let streamId = 1;
    const send = (label: string, fields: Field[], framing: BlockFraming) => {
      const path = freshPath(label);
      const block = encodeBlock(requestFields(path, [], fields));
      const cuts = (framing.cuts ?? []).filter((cut) => cut < block.length);
      socket.write(headerFrames(streamId, block, { ...framing, cuts }));
      streamId += 2;
      return requestSeen(path);
    };
    const authority: Field = { kind: "incremental", name: 1, value: "http://127.0.0.1:2379", huffman: true };
    let got = await send("padded", [authority], { padding: 17 });
    assert.equal(got.authority, "127.0.0.1:2379");
    got = await send("priority", [authority], { priority: true, padding: 3 });
    assert.equal(got.authority, "127.0.0.1:2379");
    got = await send("continuation", [authority, { kind: "without", name: "x-test", value: "t" }], { cuts: [5, 12, 13, 30] });
    assert.deepEqual([got.authority, got.test], ["127.0.0.1:2379", "t"]);
    got = await send("continuation-unchanged", [{ kind: "without", name: 1, value: "127.0.0.1:1" }, { kind: "without", name: "x-test", value: "u" }], { cuts: [3, 20], padding: 2 });
    assert.equal(got.test, "u");
    // A 30 000-byte block: the rewritten copy must be cut again at 16 384 bytes.
    const big = "z".repeat(30_000);
    got = await send("big", [authority, { kind: "without", name: "x-other", value: big }], { cuts: [10_000, 20_000], priority: true });
    assert.deepEqual([got.authority, got.other], ["127.0.0.1:2379", big]);
    socket.destroy();
  });

  test("bytes cut anywhere: one byte at a time, across frame headers and inside blocks", async () => {
    const socket = await rawConnection();
    const requests: Buffer[] = [];
    const paths: string[] = [];
    for (let i = 0; i < 4; i++) {
      const path = freshPath("bytewise");
      paths.push(path);
      const authority: Field = i === 0 ? { kind: "incremental", name: 1, value: "http://127.0.0.1:2379", huffman: true } : { kind: "indexed", index: 62 };
      const block = encodeBlock(requestFields(path, [authority], [{ kind: "without", name: "x-test", value: `n${i}` }]));
      requests.push(headerFrames(1 + 2 * i, block, i === 2 ? { cuts: [4], padding: 1 } : {}));
      requests.push(frame(0x8, 0, 0, Buffer.from([0, 0, 1, 0]))); // a WINDOW_UPDATE between them
    }
    const all = Buffer.concat([preface, ...requests]);
    for (let offset = 0; offset < all.length; offset++) {
      socket.write(all.subarray(offset, offset + 1));
      if (offset % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    for (const [i, path] of paths.entries()) {
      const got = await requestSeen(path);
      assert.deepEqual([got.authority, got.test], ["127.0.0.1:2379", `n${i}`]);
    }
    socket.destroy();
  });
});

describe("node:http2's own client through the rewriter", () => {
  test("many requests on one session, valid and invalid authorities, a changing dynamic table", async () => {
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    const authorities = ["http://127.0.0.1:2379", "127.0.0.1:2379", "https://node.example:443/some/path", "http://[::1]:23790"];
    const wanted = ["127.0.0.1:2379", "127.0.0.1:2379", "node.example:443", "[::1]:23790"];
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) {
      const path = freshPath("node-client");
      const authority = authorities[i % authorities.length] as string;
      const extra = `value-${i % 13}-${"q".repeat(i % 50)}`;
      pending.push(
        new Promise<void>((resolve, reject) => {
          const stream = session.request({ ":path": path, ":authority": authority, "x-test": extra, "x-other": `o${i}` });
          stream.on("error", reject);
          stream.resume();
          stream.on("end", () => {
            const got = seen.get(path);
            try {
              assert.deepEqual(got, { authority: wanted[i % wanted.length], path, test: extra, other: `o${i}` });
              resolve();
            } catch (error) {
              reject(error);
            }
          });
          stream.end();
        }),
      );
    }
    await Promise.all(pending);
    // A header list above the frame size: the client sends CONTINUATION frames.
    const path = freshPath("node-client-large");
    const large = "L".repeat(40_000);
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":path": path, ":authority": "http://127.0.0.1:2379", "x-test": large });
      stream.on("error", reject);
      stream.resume();
      stream.on("end", () => resolve());
      stream.end();
    });
    assert.deepEqual([seen.get(path)?.authority, seen.get(path)?.test], ["127.0.0.1:2379", large]);
    session.close();
  });
});

describe("bodies through the rewriter", () => {
  test("4 MiB each way, both ends reading slowly", async () => {
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    const { digest, body } = await new Promise<{ digest: string; body: Buffer }>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": freshPath("slow"), ":authority": "http://127.0.0.1:2379" });
      const parts: Buffer[] = [];
      let digest = "";
      stream.on("response", (headers) => (digest = String(headers["x-digest"])));
      stream.on("data", (chunk: Buffer) => {
        parts.push(chunk);
        stream.pause();
        setTimeout(() => stream.resume(), 1);
      });
      stream.on("end", () => resolve({ digest, body: Buffer.concat(parts) }));
      stream.on("error", reject);
      stream.end(bulk);
    });
    assert.equal(digest, createHash("sha256").update(bulk).digest("hex"), "the server read the upload intact");
    assert.ok(body.equals(bulk), "the client read the download intact");
    session.close();
  });
});

describe("the frame rewriter alone", () => {
  function build(): Buffer {
    const requests: Buffer[] = [preface];
    for (let i = 0; i < 30; i++) {
      const authority: Field =
        i % 5 === 0 ? { kind: "incremental", name: 1, value: `http://host-${i}:2379`, huffman: i % 2 === 0 } : { kind: "indexed", index: 62 };
      const block = encodeBlock(requestFields(`/chunks/${i}`, [authority], [{ kind: "incremental", name: "x-test", value: `v${i}`, huffman: true }]));
      requests.push(headerFrames(1 + 2 * i, block, i % 3 === 0 ? { cuts: [2, 9], padding: i % 4 } : {}));
      requests.push(frame(0x0, 0, 1 + 2 * i, Buffer.alloc(i * 37, i))); // DATA passes untouched
    }
    return Buffer.concat(requests);
  }

  test("the output does not depend on how the input is cut into chunks", () => {
    const input = build();
    const whole = new AuthorityFrameRewriter().transform(input);
    assert.ok(whole.length < input.length, "the authorities were rewritten");
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 50; round++) {
      const rewriter = new AuthorityFrameRewriter();
      const parts: Buffer[] = [];
      for (let offset = 0; offset < input.length; ) {
        const size = Math.max(1, Math.floor(random() * (round % 2 === 0 ? 20 : 400)));
        parts.push(Buffer.from(rewriter.transform(input.subarray(offset, offset + size))));
        offset += size;
      }
      assert.ok(Buffer.concat(parts).equals(whole), `round ${round} (seed 12345)`);
    }
  });

  test("a connection with valid authorities comes out byte for byte, chunk for chunk", () => {
    const block = encodeBlock(requestFields("/same", [{ kind: "without", name: 1, value: "127.0.0.1:2379" }]));
    const input = Buffer.concat([preface, headerFrames(1, block, { padding: 4, priority: true }), frame(0x0, 1, 1, Buffer.alloc(100))]);
    const rewriter = new AuthorityFrameRewriter();
    assert.equal(rewriter.transform(input), input, "the same buffer, not a copy");
  });

  test("malformed input is passed through unchanged from there on", () => {
    const rewriter = new AuthorityFrameRewriter();
    const broken = frame(0x1, 0x5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])); // an integer that never ends
    const later = headerFrames(3, encodeBlock(requestFields("/later", [{ kind: "without", name: 1, value: "http://x:1" }])));
    const input = Buffer.concat([preface, broken]);
    assert.ok(rewriter.transform(input).equals(input));
    assert.equal(rewriter.transform(later), later);
    // CONTINUATION without a HEADERS before it.
    const other = new AuthorityFrameRewriter();
    const stray = Buffer.concat([preface, frame(0x9, 0x4, 1, Buffer.from([0x82])), later]);
    assert.ok(other.transform(stray).equals(stray));
  });
});

describe("Huffman code and authority cleanup", () => {
  test("RFC 7541 C.4.1 and every byte value round-trip", () => {
    assert.equal(Buffer.from(huffmanEncode(bytesOf("www.example.com"))).toString("hex"), "f1e3c2e5f23a6ba0ab90f4ff");
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const encoded = huffmanEncode(all);
    const decoded = new Uint8Array(512);
    const length = huffmanDecode(encoded, 0, encoded.length, decoded);
    assert.deepEqual(decoded.subarray(0, length), all);
    assert.equal(huffmanDecode(encoded, 0, encoded.length, null), 256);
  });

  test("invalid Huffman strings are refused: EOS, or padding too long or not ones", () => {
    assert.equal(huffmanDecode(Uint8Array.from([0xff, 0xff, 0xff, 0xff]), 0, 4, null), -1); // EOS
    assert.equal(huffmanDecode(Uint8Array.from([0xff]), 0, 1, null), -1); // 8 bits of padding
    assert.equal(huffmanDecode(Uint8Array.from([0x00]), 0, 1, null), -1); // '0' (00000) then 000 padding
    assert.equal(huffmanDecode(Uint8Array.from([0x07]), 0, 1, null), 1); // '0' then 111 padding
  });

  test("authorities lose their scheme, path and forbidden characters", () => {
    const clean = (value: string) => new TextDecoder().decode(validAuthority(bytesOf(value)));
    assert.equal(clean("http://127.0.0.1:2379"), "127.0.0.1:2379");
    assert.equal(clean("https://[::1]:2379/"), "[::1]:2379");
    assert.equal(clean("unix://localhost:123"), "localhost:123");
    assert.equal(clean("host:1?query#frag"), "host:1");
    assert.equal(clean("ho st\t:1"), "host:1");
    assert.equal(clean("user@host:1"), "user@host:1");
    // grpc-go's authority for a unix socket endpoint is the socket's path.
    assert.equal(clean("/tmp/edgetcd/client.unix:2"), "client.unix:2");
    assert.equal(clean("/"), "l");
    assert.equal(clean("/run/"), "local");
  });
});
