// Issue 24: the Raft core never dies on a message from the network. Seeded
// random and mutated messages go to RawNodes in every role (follower,
// pre-candidate, candidate, leader, learner); nothing may throw, in step or in
// carrying out the Ready after it. Then a cluster under messages that no
// correct member sends (each must be refused) and ordinary network faults
// keeps one leader per term and one entry per index, and still commits.
//
// CI runs a few seconds' worth; EDGETCD_FUZZ_ITERATIONS=<seeds> runs more,
// EDGETCD_FUZZ_SEED=<seed> replays one. A failure names its seed.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeConfChange } from "../../src/raft/raw-node.ts";
import { EntryType, type Entry, type Message, MessageType, type NodeId, type Snapshot, StateType } from "../../src/raft/types.ts";
import { type HostileCluster as Cluster, HostileCluster, type HostileNode, Prng, seedsFromEnvironment } from "./hostile-cluster.ts";

const unknownId = 99;

function withSeed(seed: number, body: () => void): void {
  try {
    body();
  } catch (error) {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    throw new Error(`seed ${seed} failed (replay: EDGETCD_FUZZ_SEED=${seed} node --import tsx --test test/raft/hostile-messages.test.ts)\n${detail}`);
  }
}

function describeMessage(m: Message): string {
  return JSON.stringify(m, (_, value: unknown) => (value instanceof Uint8Array ? `bytes(${value.length})` : value));
}

// --- generators --------------------------------------------------------------

/** A number near `near`, or one of the values that break code: 0, huge, negative, fractional, NaN. */
function number(prng: Prng, near: number): number {
  return prng.pick([0, 1, near, near + 1, Math.max(0, near - 1), near + prng.int(8), 2 ** 52, 2 ** 53, Number.MAX_SAFE_INTEGER, -1, 1.5, Number.NaN]);
}

function entries(prng: Prng, after: number, term: number): Entry[] {
  const count = prng.pick([0, 0, 1, 2, 4]);
  const contiguous = prng.chance(0.7);
  return Array.from({ length: count }, (_, offset) => {
    const type = prng.pick([EntryType.Normal, EntryType.Normal, EntryType.ConfChange, 7 as EntryType]);
    const data =
      type === EntryType.ConfChange && prng.chance(0.6)
        ? encodeConfChange({ type: prng.int(5), nodeId: prng.pick([0, 1, 2, 3, 4, 5, unknownId]), context: new Uint8Array(0) })
        : prng.bytes(prng.int(12));
    return { term: contiguous ? term : number(prng, term), index: contiguous ? after + 1 + offset : number(prng, after), type, data };
  });
}

function snapshot(prng: Prng, index: number, term: number): Snapshot {
  const ids = () => [0, 1, 2, 3, 4, unknownId].filter(() => prng.chance(0.4));
  return { metadata: { index: number(prng, index), term: number(prng, term), confState: { voters: ids(), learners: ids() } }, data: prng.bytes(4) };
}

/** Anything at all, with fields near the target's state often enough to get past the first checks. */
function randomMessage(prng: Prng, target: HostileNode): Message {
  const status = target.raft.status();
  const term = status.hardState.term;
  const lastIndex = target.storage.lastIndex();
  const index = number(prng, lastIndex);
  const m: Message = {
    type: prng.chance(0.9) ? prng.int(19) : prng.int(256),
    to: prng.chance(0.9) ? target.id : number(prng, target.id),
    from: prng.pick([0, target.id, 1, 2, 3, 4, unknownId, status.softState.lead]),
    term: prng.chance(0.7) ? prng.pick([term, term + 1, Math.max(0, term - 1)]) : number(prng, term),
    logTerm: number(prng, term),
    index,
    entries: entries(prng, index, term),
    commit: number(prng, status.hardState.commit),
    reject: prng.chance(0.3),
    rejectHint: number(prng, index),
    context: prng.bytes(prng.int(6)),
  };
  if (prng.chance(0.3)) m.snapshot = snapshot(prng, lastIndex, term);
  return m;
}

/** A real message with one to three fields changed. */
function mutated(prng: Prng, original: Message, target: HostileNode): Message {
  const m: Message = { ...original, to: target.id, entries: original.entries.map((entry) => ({ ...entry })) };
  for (let change = prng.between(1, 3); change > 0; change--) {
    const field = prng.pick(["type", "from", "term", "logTerm", "index", "commit", "rejectHint", "reject", "entries", "snapshot"] as const);
    if (field === "type") m.type = prng.int(19);
    else if (field === "reject") m.reject = !m.reject;
    else if (field === "entries") m.entries = entries(prng, m.index, m.term);
    else if (field === "snapshot") m.snapshot = snapshot(prng, m.index, m.term);
    else m[field] = number(prng, m[field]);
  }
  return m;
}

/** A message no correct member sends in the target's state: the checks must refuse it. */
function refusable(prng: Prng, cluster: Cluster, target: HostileNode): Message {
  const status = target.raft.status();
  const term = status.hardState.term;
  const lead = status.softState.lead;
  const members = [...cluster.voters, ...cluster.learners].filter((id) => id !== target.id);
  const base: Message = {
    type: MessageType.Heartbeat,
    to: target.id,
    from: prng.pick(members),
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
  const kinds: Array<() => Message> = [
    () => ({ ...base, from: 0 }),
    () => ({ ...base, from: target.id }),
    () => ({ ...base, to: prng.pick(members) }),
    () => ({ ...base, type: prng.pick([MessageType.Hup, MessageType.Beat, MessageType.Unreachable, MessageType.SnapStatus, MessageType.CheckQuorum, 19 as MessageType, 200 as MessageType]) }),
    () => ({ ...base, term: 0 }),
    () => ({ ...base, term: prng.pick([2 ** 53, -1, 1.5, Number.NaN]) }),
    () => ({ ...base, commit: prng.pick([-1, 0.5, Number.NaN, 2 ** 60]) }),
    // A term from nowhere: anything but a leader's message, from an id outside the configuration.
    () => ({
      ...base,
      from: unknownId,
      term: term + 1000,
      type: prng.pick([MessageType.Vote, MessageType.PreVote, MessageType.AppResp, MessageType.HeartbeatResp, MessageType.VoteResp, MessageType.ReadIndexResp]),
    }),
    () => ({ ...base, type: MessageType.Prop, term: 0, entries: [] }),
    () => ({ ...base, type: MessageType.App, from: lead === 0 || lead === target.id ? base.from : lead, entries: [{ term, index: 7, type: EntryType.Normal, data: new Uint8Array(1) }], index: 2 }),
    () => ({ ...base, type: MessageType.TimeoutNow, from: members.find((id) => id !== lead) ?? 0 }),
    () => ({ ...base, type: MessageType.Snap, snapshot: { metadata: { index: 1000, term, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) } }),
  ];
  if (status.softState.state === StateType.Leader) {
    // The crash of issue 24: an acknowledgement past the leader's last index.
    kinds.push(() => ({ ...base, type: MessageType.AppResp, index: target.storage.lastIndex() + 1 + prng.int(1000) }));
    kinds.push(() => ({ ...base, type: MessageType.AppResp, reject: true, index: 1, rejectHint: 5 + prng.int(1000) }));
  }
  return prng.pick(kinds)();
}

// --- tests -------------------------------------------------------------------

function electedCluster(prng: Prng, checkSafety: boolean, preVote: boolean): HostileCluster {
  const cluster = new HostileCluster(prng, { voters: [1, 2, 3], learners: [4], preVote, checkQuorum: prng.chance(0.5), checkSafety });
  cluster.node(1).raft.campaign();
  cluster.processReady(cluster.node(1));
  assert.ok(cluster.settle(), "a leader is elected");
  cluster.run(200);
  return cluster;
}

describe("hostile Raft messages", () => {
  test("random and mutated messages to every role never throw", () => {
    const roles = new Set<string>();
    let delivered = 0;
    let stepped = 0;
    for (const seed of seedsFromEnvironment(40, 1)) {
      withSeed(seed, () => {
        const prng = new Prng(seed);
        const cluster = electedCluster(prng, false, seed % 2 === 0);
        // Node 3 campaigns and nobody hears it: a pre-candidate (with pre-vote) or a candidate.
        const campaigner = cluster.node(3);
        campaigner.raft.campaign();
        cluster.processReady(campaigner, false);
        const ids = [...cluster.nodes.keys()];
        for (let i = 0; i < 400; i++) {
          const target = cluster.node(prng.pick(ids));
          roles.add(cluster.role(target.id));
          const original = cluster.queue.length > 0 && prng.chance(0.5) ? prng.pick(cluster.queue) : undefined;
          const m = original === undefined ? randomMessage(prng, target) : mutated(prng, original, target);
          try {
            if (target.raft.step(m) === undefined) stepped++;
            cluster.processReady(target);
          } catch (error) {
            throw new Error(`node ${target.id} (${cluster.role(target.id)}) threw on ${describeMessage(m)}: ${String(error)}`, { cause: error });
          }
          delivered++;
          if (i % 8 === 0) cluster.run(6, { dropChance: 0.1, duplicateChance: 0.1 });
        }
      });
    }
    // Enough get past the checks to exercise the core itself, not only the checks.
    assert.ok(stepped > delivered / 10, `${stepped} of ${delivered} messages reached the core`);
    console.log(`hostile messages: ${stepped} of ${delivered} messages reached the core`);
    for (const role of ["Follower", "PreCandidate", "Candidate", "Leader", "learner"]) assert.ok(roles.has(role), `no message went to a ${role}`);
  });

  test("member ids up to 2^53 pass the checks (edgetcd's ids are 56-bit hashes below it)", () => {
    const ids = [Number.MAX_SAFE_INTEGER, 2 ** 52 + 7, 0x15a73b4f6bf291];
    const cluster = new HostileCluster(new Prng(7), { voters: ids, learners: [], preVote: true, checkQuorum: true, checkSafety: true });
    const first = cluster.node(ids[0] as NodeId);
    first.raft.campaign();
    cluster.processReady(first);
    assert.ok(cluster.settle(), "a leader is elected");
    assert.ok(cluster.propose("big"));
    cluster.settle();
    for (const node of cluster.nodes.values()) assert.ok(node.applied.has("big"), `node ${node.id} applied`);
  });

  test("messages no member sends are refused; a cluster under them keeps its invariants and commits", () => {
    for (const seed of seedsFromEnvironment(15, 1001)) {
      withSeed(seed, () => {
        const prng = new Prng(seed);
        const cluster = electedCluster(prng, true, seed % 2 === 1);
        const ids = [...cluster.nodes.keys()];
        for (let round = 0; round < 600; round++) {
          cluster.run(3, { dropChance: 0.05, duplicateChance: 0.05 });
          const target = cluster.node(prng.pick(ids));
          const m = refusable(prng, cluster, target);
          const reason = target.raft.step(m);
          assert.notEqual(reason, undefined, `stepped, not refused: ${describeMessage(m)} at node ${target.id} (${cluster.role(target.id)})`);
          cluster.processReady(target);
        }
        // Healed: a leader, and a last proposal applied everywhere.
        assert.ok(cluster.settle(), "a leader after the attack");
        const final = `final-${seed}`;
        for (let attempt = 0; attempt < 50 && ![...cluster.nodes.values()].every((node) => node.applied.has(final)); attempt++) {
          cluster.propose(final);
          cluster.settle();
          for (const node of cluster.nodes.values()) cluster.tick(node);
          cluster.settle();
        }
        for (const node of cluster.nodes.values()) assert.ok(node.applied.has(final), `node ${node.id} applied the last proposal`);
      });
    }
  });
});
