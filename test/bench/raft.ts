// npm run bench:raft [-- --batch 64 --entries 50000 --runs 5 --bytes 128]
// Throughput of the Raft core alone: 3 RawNodes over MemoryStorage and an
// in-memory transport that delivers everything at once; the leader gets
// `batch` proposals per cycle. No disk, no encoding: this is the ceiling the
// core puts on the server. Prints the median over runs of entries committed
// per second and Ready cycles per second.

import { bootstrapStorage, type MemoryStorage } from "../../src/raft/memory-storage.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { testRaftConfig } from "../raft/test-node.ts";
import { type Message, StateType } from "../../src/raft/types.ts";

interface Options {
  batch: number;
  entries: number;
  runs: number;
  bytes: number;
}

function parseOptions(argv: string[]): Options {
  const integer = (name: string, fallback: number) => {
    const index = argv.indexOf(name);
    const value = index < 0 ? fallback : Number(argv[index + 1]);
    if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} needs a positive integer`);
    return value;
  };
  return { batch: integer("--batch", 64), entries: integer("--entries", 50_000), runs: integer("--runs", 5), bytes: integer("--bytes", 128) };
}

interface Member {
  id: number;
  raft: RawNode;
  storage: MemoryStorage;
  applied: number;
}

/** Seeded so every run elects the same way; the core needs injected randomness. */
function lcg(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 4294967296) * bound);
  };
}

function createCluster(): Member[] {
  const voters = [1, 2, 3];
  return voters.map((id) => {
    const storage = bootstrapStorage({ voters, learners: [] });
    const raft = new RawNode(testRaftConfig(id, storage, { preVote: true, checkQuorum: true, randomInt: lcg(id) }));
    return { id, raft, storage, applied: 1 };
  });
}

/** Handles one Ready per node with work; returns the messages to deliver and the cycles done. */
function cycle(members: Member[], outbox: Message[]): number {
  let cycles = 0;
  for (const member of members) {
    if (!member.raft.hasReady()) continue;
    const ready = member.raft.ready();
    cycles++;
    for (const message of ready.messages) outbox.push(message);
    if (ready.snapshot !== undefined) member.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) member.storage.append(ready.entries);
    if (ready.hardState !== undefined) member.storage.setHardState(ready.hardState);
    for (const message of ready.messagesAfterPersist) outbox.push(message);
    const last = ready.committedEntries.at(-1);
    if (last !== undefined) member.applied = last.index;
    member.raft.advance(ready);
  }
  return cycles;
}

function deliver(members: Member[], outbox: Message[]): void {
  const messages = outbox.splice(0);
  for (const message of messages) members[message.to - 1]?.raft.step(message);
}

function runOnce(options: Options): { entriesPerSecond: number; cyclesPerSecond: number } {
  const members = createCluster();
  const outbox: Message[] = [];
  const leader = members[0] as Member;
  leader.raft.campaign();
  for (let i = 0; i < 100 && leader.raft.status().softState.state !== StateType.Leader; i++) {
    cycle(members, outbox);
    deliver(members, outbox);
  }
  for (let i = 0; i < 10; i++) {
    cycle(members, outbox);
    deliver(members, outbox);
  }
  const data = new Uint8Array(options.bytes).fill(7);
  const startIndex = leader.applied;
  const target = startIndex + options.entries;
  let cycles = 0;
  let proposed = 0;
  const started = performance.now();
  while (leader.applied < target) {
    if (proposed < options.entries) {
      for (let i = 0; i < options.batch; i++) leader.raft.propose(data);
      proposed += options.batch;
    }
    cycles += cycle(members, outbox);
    deliver(members, outbox);
    // Keep memory flat: compact what every member applied.
    const compactIndex = Math.min(...members.map((member) => member.applied)) - 1;
    if (compactIndex - leader.storage.firstIndex() > 20_000) {
      for (const member of members) if (compactIndex >= member.storage.firstIndex()) member.storage.compact(compactIndex);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return { entriesPerSecond: (leader.applied - startIndex) / seconds, cyclesPerSecond: cycles / seconds };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const options = parseOptions(process.argv.slice(2));
const results = [];
runOnce({ ...options, entries: Math.min(options.entries, 5000) }); // warm-up for the JIT
for (let run = 0; run < options.runs; run++) results.push(runOnce(options));
const entries = median(results.map((r) => r.entriesPerSecond));
const cycles = median(results.map((r) => r.cyclesPerSecond));
console.log(
  `raft core, 3 nodes, in-memory transport, batch ${options.batch} x ${options.bytes} B, ${options.entries} entries, ${options.runs} runs: ` +
    `median ${Math.round(entries).toLocaleString("en-US")} entries/s, ${Math.round(cycles).toLocaleString("en-US")} Ready cycles/s ` +
    `(runs: ${results.map((r) => Math.round(r.entriesPerSecond)).join(", ")})`,
);
