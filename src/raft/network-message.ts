// Checks on a message from the network before the Raft core steps it.
//
// The core's own invariants are assertions: a throw inside `step` means a bug
// of ours and stops the member. A message from another process is not ours:
// a peer with a bug, a replayed frame or a forger can send anything, and
// nothing it sends may reach one of those assertions. So every message from
// the network passes here first, and one that no correct member could have
// sent in our state (a shape no encoder makes, an acknowledgement of entries
// the leader never had, a snapshot that names no voter) is dropped with the
// reason, which the caller logs.
//
// What cannot be told apart from a correct member is let through: without
// peer TLS a forger that knows the leader's id and term can write entries,
// as it can into etcd. The transport admits only current members as senders;
// these checks hold whoever got past it.
import { decodeConfChange } from "./conf-change-codec.ts";
import type { Progress } from "./progress.ts";
import { EntryType, MessageType, NONE, StateType, type Entry, type Message, type NodeId, type Snapshot } from "./types.ts";

/**
 * The largest term and index taken from the network. A real cluster stays far
 * below (2^52 is one election a millisecond for 140,000 years), and the
 * margin keeps `term + 1` and `index + entries` exact in a JS number.
 */
export const termMax = 2 ** 52;
export const indexMax = 2 ** 52;

/** Types another member sends; local ones (Hup, Beat, Unreachable, SnapStatus, CheckQuorum) never come from the network. */
const networkTypes: ReadonlySet<number> = new Set([
  MessageType.Prop,
  MessageType.App,
  MessageType.AppResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.Snap,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.TransferLeader,
  MessageType.TimeoutNow,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
]);

/** What a leader sends to a follower: a member that lags behind a membership change may not know the sender yet. */
const leaderTypes: ReadonlySet<number> = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap]);

/** The part of the state machine the checks read. */
export interface LocalRaftView {
  readonly id: NodeId;
  readonly term: number;
  readonly lead: NodeId;
  readonly state: StateType;
  readonly progress: ReadonlyMap<NodeId, Progress>;
  readonly log: { lastIndex(): number };
}

/** Why `m` must not be stepped, or undefined when it may. */
export function networkMessageProblem(m: Message, raft: LocalRaftView): string | undefined {
  return shapeProblem(m, raft) ?? senderProblem(m, raft) ?? contentProblem(m, raft);
}

function shapeProblem(m: Message, raft: LocalRaftView): string | undefined {
  if (!networkTypes.has(m.type)) return `message type ${m.type} is not sent between members`;
  for (const field of ["to", "from"] as const) {
    if (!isCount(m[field], Number.MAX_SAFE_INTEGER)) return `${field} ${m[field]} is not a member id`;
  }
  for (const field of ["logTerm", "index", "commit", "rejectHint"] as const) {
    if (!isCount(m[field], indexMax)) return `${field} ${m[field]} is out of range`;
  }
  if (!isCount(m.term, termMax)) return `term ${m.term} is out of range`;
  if (m.from === NONE) return "from is 0";
  if (m.from === raft.id) return "from is this member";
  if (m.to !== raft.id) return `to ${m.to} is not this member`;
  // A forwarded proposal or read carries term 0, which `step` reads as "no
  // term to compare"; on any other type term 0 would skip the term rules.
  const forwarded = m.type === MessageType.Prop || m.type === MessageType.ReadIndex;
  if (forwarded && m.term !== 0) return "a forwarded proposal or read carries a term";
  if (!forwarded && m.term === 0) return "term 0";
  return undefined;
}

function senderProblem(m: Message, raft: LocalRaftView): string | undefined {
  if (raft.progress.has(m.from)) return undefined;
  // etcd-io/raft: a leader ignores members it has no progress for. A follower
  // still takes a leader's messages, so that a member that missed the addition
  // of the new leader can catch up and learn of it. At a lower term too: the
  // core then only answers with its own term (state-machine.ts), which makes
  // that leader step down; a member whose term rose while it was cut off
  // would otherwise refuse the new leader for good.
  if (leaderTypes.has(m.type) && raft.state !== StateType.Leader) return undefined;
  // A leader that applied its own removal hands over with TimeoutNow (state-machine.ts, stepDownAfterRemoval).
  if (m.type === MessageType.TimeoutNow && m.from === raft.lead && m.term === raft.term) return undefined;
  return `from ${m.from.toString(16)} is not in the configuration`;
}

function contentProblem(m: Message, raft: LocalRaftView): string | undefined {
  if (leaderTypes.has(m.type) && m.term === raft.term && raft.lead !== NONE && raft.lead !== m.from) {
    return `a second leader ${m.from.toString(16)} in term ${m.term}`;
  }
  switch (m.type) {
    case MessageType.Prop:
      if (m.entries.length === 0) return "a proposal without entries";
      return entriesProblem(m.entries);
    case MessageType.App:
      return appendProblem(m);
    case MessageType.AppResp:
      return appendResponseProblem(m, raft);
    case MessageType.Snap:
      return m.snapshot === undefined ? "a snapshot message without a snapshot" : snapshotProblem(m.snapshot, m.term);
    case MessageType.Vote:
    case MessageType.PreVote:
      if (m.logTerm > m.term) return `a candidate's last term ${m.logTerm} beyond its term ${m.term}`;
      return undefined;
    case MessageType.TimeoutNow:
      // Only our leader hands leadership over; anyone else would force an election.
      if (m.term !== raft.term || m.from !== raft.lead) return "TimeoutNow not from the current leader";
      return undefined;
    default:
      return undefined;
  }
}

function appendProblem(m: Message): string | undefined {
  if (m.index + m.entries.length > indexMax) return "entries beyond the largest index";
  let previousTerm = m.logTerm;
  for (const [offset, entry] of m.entries.entries()) {
    // A leader sends a contiguous run of its log: indexes follow on, terms never go down nor past its own.
    if (entry.index !== m.index + 1 + offset) return `entry index ${entry.index} does not follow ${m.index + offset}`;
    if (!isCount(entry.term, termMax) || entry.term < previousTerm || entry.term > m.term) {
      return `entry ${entry.index} has term ${entry.term} (after ${previousTerm}, leader's ${m.term})`;
    }
    previousTerm = entry.term;
  }
  return entriesProblem(m.entries);
}

function entriesProblem(entries: readonly Entry[]): string | undefined {
  for (const entry of entries) {
    if (entry.type === EntryType.Normal) continue;
    if (entry.type !== EntryType.ConfChange) return `entry type ${entry.type}`;
    // A conf change that does not decode would stop every member that applies it.
    try {
      decodeConfChange(entry.data);
    } catch {
      return "a conf change entry that does not decode";
    }
  }
  return undefined;
}

function appendResponseProblem(m: Message, raft: LocalRaftView): string | undefined {
  if (raft.state !== StateType.Leader || m.term !== raft.term) return undefined;
  // A follower holds only what this leader sent it, so it never acknowledges
  // past our last index; taken, such a match would send entries we do not have.
  if (m.index > raft.log.lastIndex()) return `index ${m.index} beyond our last index ${raft.log.lastIndex()}`;
  if (m.reject && m.rejectHint > m.index) return `reject hint ${m.rejectHint} beyond the rejected index ${m.index}`;
  return undefined;
}

function snapshotProblem(snapshot: Snapshot, term: number): string | undefined {
  const { index, term: snapshotTerm, confState } = snapshot.metadata;
  if (!isCount(index, indexMax) || index === 0) return `snapshot index ${index}`;
  if (!isCount(snapshotTerm, termMax) || snapshotTerm === 0 || snapshotTerm > term) return `snapshot term ${snapshotTerm} (leader's ${term})`;
  if (confState.voters.length === 0) return "a snapshot without voters";
  const ids = new Set<NodeId>();
  for (const id of [...confState.voters, ...confState.learners]) {
    if (!isCount(id, Number.MAX_SAFE_INTEGER) || id === NONE || ids.has(id)) return `snapshot member id ${id}`;
    ids.add(id);
  }
  return undefined;
}

function isCount(value: number, max: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= max;
}
