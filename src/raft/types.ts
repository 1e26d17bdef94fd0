// The data the Raft core exchanges with its caller. Shaped after etcd-io/raft's
// raftpb: plain values, no IO. Node ids, terms and indexes are JS numbers
// (safe integers); ids are below 2^53.

export type NodeId = number;

/** No node: used for "no leader", "no vote". */
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  /** A membership change (ConfChange in `data`, encoded by the caller's codec). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Empty for the leader's no-op entry of its term. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** Opaque to Raft: the application state (for edgetcd, a reference to the backend image). */
  data: Uint8Array;
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  /** Kept for etcd parity: the member's URLs change, the configuration does not. */
  UpdateNode = 2,
  AddLearnerNode = 3,
}

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to Raft (edgetcd puts the member's attributes here). */
  context: Uint8Array;
}

export enum MessageType {
  Hup = 0, // local: start an election
  Beat = 1, // local: leader sends heartbeats
  Prop = 2, // proposal (local, or forwarded by a follower)
  App = 3, // append entries
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  Snap = 7, // install snapshot
  Heartbeat = 8,
  HeartbeatResp = 9,
  Unreachable = 10, // local: transport could not reach `from`
  SnapStatus = 11, // local: snapshot sent (reject=false) or failed (reject=true)
  CheckQuorum = 12, // local
  TransferLeader = 13,
  TimeoutNow = 14,
  ReadIndex = 15,
  ReadIndexResp = 16,
  PreVote = 17,
  PreVoteResp = 18,
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** Term of the entry at `index` (App: the entry before `entries`). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** On a rejected AppResp: the follower's hint of where its log may match. */
  rejectHint: number;
  /** ReadIndex request context; heartbeat context for read-only confirmation. */
  context: Uint8Array;
}

export interface ReadState {
  /** The commit index at which the read with `requestCtx` may be served. */
  index: number;
  requestCtx: Uint8Array;
}

export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export interface SoftState {
  lead: NodeId;
  state: StateType;
}

/**
 * One batch of work for the caller. Carry it out in this order (the order of
 * etcd's raft loop), then call `advance(ready)`:
 *  1. If `snapshot`, persist it (before entries).
 *  2. Persist `hardState` (if present) and append `entries` to stable storage;
 *     if `mustSync`, fdatasync before going on.
 *  3. Send `messages` (may be sent before step 2 completes, e.g. the leader's
 *     appends to followers in parallel with its own write) and, only after
 *     step 2 is durable, `messagesAfterPersist`.
 *  4. Apply `committedEntries` in order (and the snapshot, if any).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  mustSync: boolean;
}

/** Why a proposal was refused; the server maps each to etcd's error. */
export enum ProposalDropReason {
  NoLeader = "no-leader",
  TransferInProgress = "leader-transfer-in-progress",
  ConfChangePending = "conf-change-pending",
  NotVoter = "not-voter",
}

export class ProposalDroppedError extends Error {
  constructor(readonly reason: ProposalDropReason) {
    super(`raft proposal dropped: ${reason}`);
    this.name = "ProposalDroppedError";
  }
}

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be < electionTick. */
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Bytes of entries in one App message (limit on batching). */
  maxSizePerMsg: number;
  /** Appends in flight per follower in the replicate state. */
  maxInflightMsgs: number;
  /** "safe": confirm leadership by a heartbeat round; "lease": trust the lease (needs checkQuorum). */
  readOnlyOption: "safe" | "lease";
  /** Injected randomness for election timeouts: an integer in [0, bound). */
  randomInt: (bound: number) => number;
  /** Stable storage as seen by Raft (what the caller has persisted). */
  storage: RaftStorage;
  /** Last applied index on restart. */
  applied?: number;
}

/** Read access to what the caller has persisted; etcd-io/raft's Storage interface. */
export interface RaftStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxBytes (at least one entry). Throws CompactedError / UnavailableError. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}
