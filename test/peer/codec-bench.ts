// Measures the hand-packed peer codec against cbor-x (records, and positional
// arrays) for the message shapes that dominate peer traffic. Not a test: run
// with `node --import tsx test/peer/codec-bench.ts` (or `bun test/peer/codec-bench.ts`).
import { Decoder, Encoder } from "cbor-x";
import { decodeMessages, encodeMessages } from "../../src/peer/codec.ts";
import { EntryType, type Message, MessageType } from "../../src/raft/types.ts";

function app(entryCount: number, entryBytes: number): Message {
  const entries = [];
  for (let i = 0; i < entryCount; i++) {
    entries.push({ term: 7, index: 100_000 + i, type: EntryType.Normal, data: new Uint8Array(entryBytes).fill(i & 0xff) });
  }
  return { type: MessageType.App, to: 2, from: 1, term: 7, logTerm: 7, index: 99_999, entries, commit: 99_990, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

function heartbeat(i: number): Message {
  return { type: MessageType.Heartbeat, to: 2, from: 1, term: 7, logTerm: 0, index: 0, entries: [], commit: 99_990 + i, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

const records = new Encoder({ useRecords: true });
const recordsDecoder = new Decoder({ useRecords: true });
const arrays = new Encoder({ useRecords: false });

function toArrays(messages: Message[]): unknown[] {
  return messages.map((m) => [m.type, m.to, m.from, m.term, m.logTerm, m.index, m.commit, m.reject, m.rejectHint, m.context, m.entries.map((e) => [e.term, e.index, e.type, e.data])]);
}
function fromArrays(value: unknown[]): Message[] {
  return (value as unknown[][]).map((m) => ({
    type: m[0] as number, to: m[1] as number, from: m[2] as number, term: m[3] as number, logTerm: m[4] as number, index: m[5] as number,
    commit: m[6] as number, reject: m[7] as boolean, rejectHint: m[8] as number, context: m[9] as Uint8Array,
    entries: (m[10] as unknown[][]).map((e) => ({ term: e[0] as number, index: e[1] as number, type: e[2] as number, data: e[3] as Uint8Array })),
  }));
}

const codecs = {
  "hand-packed": { encode: (m: Message[]) => encodeMessages(m), decode: (b: Uint8Array) => decodeMessages(b) },
  "cbor-x records": { encode: (m: Message[]) => records.encode(m) as Uint8Array, decode: (b: Uint8Array) => recordsDecoder.decode(b) as Message[] },
  "cbor-x arrays": { encode: (m: Message[]) => arrays.encode(toArrays(m)) as Uint8Array, decode: (b: Uint8Array) => fromArrays(arrays.decode(b) as unknown[]) },
};

const cases: [string, Message[]][] = [
  ["App, 256 entries x 100 B", [app(256, 100)]],
  ["App, 64 entries x 1 KiB", [app(64, 1024)]],
  ["64 heartbeats", Array.from({ length: 64 }, (_, i) => heartbeat(i))],
];

const budgetMs = 300;
for (const [label, batch] of cases) {
  for (const [name, codec] of Object.entries(codecs)) {
    const encoded = codec.encode(batch);
    let rounds = 0;
    let start = performance.now();
    while (performance.now() - start < budgetMs) {
      for (let i = 0; i < 50; i++) codec.encode(batch);
      rounds += 50;
    }
    const encodeUs = ((performance.now() - start) * 1000) / rounds;
    rounds = 0;
    start = performance.now();
    while (performance.now() - start < budgetMs) {
      for (let i = 0; i < 50; i++) codec.decode(encoded);
      rounds += 50;
    }
    const decodeUs = ((performance.now() - start) * 1000) / rounds;
    console.log(`${label.padEnd(28)} ${name.padEnd(15)} ${String(encoded.length).padStart(7)} B  encode ${encodeUs.toFixed(1).padStart(7)} us  decode ${decodeUs.toFixed(1).padStart(7)} us`);
  }
}
