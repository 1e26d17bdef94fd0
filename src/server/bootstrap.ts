// The node's start, in order: take the data dir's lock, open or create the
// WAL (a new member derives its identity, or asks the cluster for it when it
// joins), open the backend (checked) and recover a received snapshot, build
// the MVCC store and member store, then the peer transport (only current
// members, or members vouched for, are heard) and the Raft log, and last the
// server over them all, which begins replaying from the consistent index.

import { create } from "@bufbuild/protobuf";
import { AlarmRequestSchema, AlarmRequest_AlarmAction, AlarmType } from "../gen/etcdserverpb/rpc_pb.ts";
import { peerPostVia } from "../peer/lease-forward.ts";
import { CorruptionCheck } from "./corruption.ts";
import { hashKvRoute } from "../peer/hashkv.ts";
import { adoptEtcdDataDir } from "./etcd-adopt.ts";
import type { Logger, PeerFetch, PeerNetwork, Runtime, Digest } from "../ports.ts";
import { AuthTokens } from "../auth/tokens.ts";
import { SimpleTokens } from "../auth/simple-tokens.ts";
import { LogLimiter } from "../log-limiter.ts";
import { MvccStore } from "../mvcc/store.ts";
import type { MembershipOf } from "../peer/admission.ts";
import { leaseRoute } from "../peer/lease-forward.ts";
import { withPeerRoutes } from "../peer/routes.ts";
import { snapshotBytesMaxFor } from "../peer/limits.ts";
import { PeerTransport } from "../peer/transport.ts";
import { SenderVouching, withVouching } from "../peer/vouching.ts";
import type { ConfState, Entry } from "../raft/types.ts";
import { Backend } from "../storage/backend.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import { Wal } from "../storage/wal/wal.ts";
import { clusterVersion, serverVersion } from "../version.ts";
import { KvApplier } from "./apply-kv.ts";
import { initialClusterOf } from "./cluster-bootstrap.ts";
import { requestTimeoutMs, type ServerConfig } from "./config.ts";
import { takeDataDir } from "./data-dir.ts";
import { EtcdServer } from "./etcd-server.ts";
import { clusterIdOf, decodeMemberMetadata, encodeMemberMetadata, etcdMemberIdOf, memberIdOf, type MemberIdentity } from "./identity.ts";
import { joinIdentity, membersRoute, peerUrlsListedBy } from "./join.ts";
import { MemberStore } from "./members.ts";
import type { MetricHooks } from "./metrics.ts";
import { quotaBytesMaxRecommended, quotaBytesOf } from "./quota.ts";
import { RaftLog } from "./raft-log.ts";
import { SnapshotFiles } from "./snapshot-files.ts";

export interface StartOptions {
peerNetwork?: PeerNetwork;
crashPoints?: CrashPoints;
/** A storage failure: the process host exits at once (etcd's fatal log), after the one line fail() logs. */
onFatal?: (reason: string) => void;
/** --auth-token: simple tokens when not given. */
tokens?: AuthTokens;
/** etcd's disk metrics (src/server/metrics.ts). */
metrics?: MetricHooks;
}

export async function startServer(runtime: Runtime, config: ServerConfig, logger: Logger, options: StartOptions = {}): Promise<EtcdServer> {
  const { fs } = runtime;
  const { crashPoints } = options;
  const memberDir = fs.join(config.dataDir, "member");
  // --wal-dir puts the log on its own disk; <data-dir>/member/wal is then not used (as in etcd).
  const walDir = config.walDir ?? fs.join(memberDir, "wal");
  const { metrics } = options;
  const walOptions = {
    crashPoints,
    ...(metrics === undefined
      ? {}
      : { observeFsync: (seconds: number) => metrics.observeFsync(seconds), countWritten: (bytes: number) => metrics.countWalWritten(bytes) }),
    segmentFilesMax: config.maxWals,
    ...(config.walSegmentBytesMax === undefined ? {} : { segmentBytesMax: config.walSegmentBytesMax }),
  };
  const snapDir = fs.join(memberDir, "snap");
  // Locked before anything in the data dir is read or written: one process per data dir.
  const lock = await takeDataDir(fs, logger, config.dataDir, memberDir, [snapDir]);
  try {
    let identity: MemberIdentity;
    let wal: Wal;
    let entries: Entry[] = [];
    let hardState: { term: number; vote: number; commit: number } | undefined;
    let walSnapshot: { index: number; term: number } | undefined;
    let createdWal = false;
    // An etcd data dir (its backend is bbolt): taken over, then started as a new member.
    await adoptEtcdDataDir(runtime, logger, { walDir, snapDir });
    if (config.walDir !== undefined && !(await fs.exists(walDir)) && (await fs.exists(fs.join(memberDir, "wal")))) {
      // A second log beside the first would start this member over on top of its old database.
      throw new Error(`--wal-dir ${walDir} holds no WAL but ${fs.join(memberDir, "wal")} does: move that directory to ${walDir} first`);
    }
    if (await fs.exists(walDir)) {
      const opened = await Wal.open(fs, walDir, walOptions);
      wal = opened.wal;
      identity = decodeMemberMetadata(opened.metadata);
      entries = opened.entries;
      hardState = opened.hardState;
      walSnapshot = opened.snapshot;
      logger.info("recovered WAL", { entries: entries.length, "member-id": identity.memberId.toString(16) });
    } else {
      identity =
        config.initialClusterState === "existing" && config.initialCluster.size > 1
          ? await joinIdentity(config, {
              fetch: options.peerNetwork?.fetch ?? noPeerNetwork,
              timeoutMs: requestTimeoutMs(config) * 2,
              nowMs: () => runtime.clock.nowMs(),
              sleep: (ms) => new Promise((resolve) => runtime.clock.setTimer(ms, () => resolve(undefined))),
            })
          : await newIdentity(config, runtime.digest);
      wal = await Wal.create(fs, walDir, encodeMemberMetadata(identity), walOptions);
      createdWal = true;
      logger.info("created new WAL", { "member-id": identity.memberId.toString(16) });
    }

    // quick_check at start: a damaged backend stops the member instead of serving wrong data.
    const backend = Backend.open(runtime.sqlite, fs.join(snapDir, "db"), {
      crashPoints,
      verify: true,
      ...(metrics === undefined ? {} : { observeCommit: (seconds: number) => metrics.observeBackendCommit(seconds) }),
    });
    if (createdWal && backend.consistentIndex() > 0) {
      // A new member on a backend that already holds data (a restored
      // snapshot, an adopted etcd dir, etcd-import.ts): its log starts with a
      // snapshot at the backend's index, so a member that joins later is sent
      // that backend instead of entries, which would not hold the data.
      walSnapshot = { index: backend.consistentIndex(), term: backend.consistentTerm() };
      hardState = { term: walSnapshot.term, vote: 0, commit: walSnapshot.index };
      await wal.saveSnapshot(walSnapshot);
      await wal.save(hardState, [], { sync: true });
      logger.info("starting from the backend's data", { "snapshot-index": walSnapshot.index });
    }
    const snapshotFiles = new SnapshotFiles(fs, snapDir, crashPoints);
    if (await snapshotFiles.recover(backend, walSnapshot?.index ?? 0)) {
      logger.info("recovered backend from a received snapshot", { "snapshot-index": walSnapshot?.index });
    }
    const store = new MvccStore(backend, { compactionBatchLimit: config.compactionBatchLimit, crashPoints });
    const applier = new KvApplier(store);
    const members = new MemberStore(backend);
    if (members.size === 0) {
      const initial = identity.initialMembers ?? [{ id: identity.memberId, name: identity.name, peerUrls: identity.peerUrls }];
      for (const member of initial) {
        members.put({ id: member.id, name: member.name, peerUrls: member.peerUrls, clientUrls: [], isLearner: member.isLearner ?? false });
      }
    }
    const applied = backend.consistentIndex();
    let server: EtcdServer | undefined;
    // A failed save before the server exists is not lost: it fails the server as soon as there is one.
    let fatalBeforeServer: unknown;
    let transport: PeerTransport | undefined;
    let raftLog: RaftLog | undefined;
    // One member or many, the log is Raft (a single voter commits what it has
    // persisted itself), so a member started alone can grow into a cluster.
    // Without a peer network (in-process tests) it stays alone: nothing to send.
    const network = options.peerNetwork;
    if (network !== undefined) {
      // Peer requests are taken only from current members, as applied here (issue 24).
      const appliedMembershipOf: MembershipOf = (id) => (members.get(id) !== undefined ? "member" : members.isRemoved(id) ? "removed" : "unknown");
      // A sender added to the cluster but not yet applied here is admitted on a known member's word (vouching.ts).
      const vouching = new SenderVouching({
        clock: runtime.clock,
        logger,
        lookup: (id) =>
          peerUrlsListedBy(
            members.all().filter((member) => member.id !== identity.memberId).flatMap((member) => member.peerUrls),
            identity.clusterId,
            id,
            network.fetch,
          ),
        onVouched: (id, peerUrls) => transport?.addPeer(id, peerUrls),
        onLapsed: (id) => {
          if (members.get(id) === undefined) transport?.removePeer(id);
        },
      });
      const membershipOf = withVouching(appliedMembershipOf, vouching);
      const admission = {
        localId: identity.memberId,
        clusterId: identity.clusterId,
        membershipOf,
        logger,
        refusalLog: new LogLimiter(() => runtime.clock.nowMs()),
      };
      transport = new PeerTransport({
        localId: identity.memberId,
        clusterId: identity.clusterId,
        // Lease renewals forwarded by followers arrive on the peer port too.
        // The peer port's own routes beside Raft's, in one table.
        network: withPeerRoutes(network, [
          membersRoute(() => server),
          leaseRoute(() => server, admission),
          hashKvRoute(() => server, admission),
        ]),
        membershipOf,
        limits: { snapshotBytesMax: snapshotBytesMaxFor(quotaBytesOf(config.quotaBackendBytes) ?? quotaBytesMaxRecommended) },
        clock: runtime.clock,
        random: runtime.random,
        logger,
        version: { server: serverVersion, cluster: clusterVersion },
        onMessages: (messages) => {
          for (const message of messages) raftLog?.step(message);
        },
        onUnreachable: (id) => raftLog?.reportUnreachable(id),
        onSnapshotStatus: (id, ok) => raftLog?.reportSnapshot(id, ok),
        ...(metrics === undefined
          ? {}
          : {
              onRoundTrip: (to: number, seconds: number) => metrics.observePeerRoundTrip(to, seconds),
              onSnapshotDuration: (direction: "send" | "receive", peer: number, seconds: number) => metrics.observeSnapshotDuration(direction, peer, seconds),
            }),
        // Believed only from a member this member's own log knows: a vouched
        // or unknown peer cannot talk it into stopping.
        onRemoved: (by) => {
          if (appliedMembershipOf(by) === "member") server?.removedBy(by);
        },
      });
    }
    const log: RaftLog = new RaftLog({
      id: identity.memberId,
      wal,
      clock: runtime.clock,
      random: runtime.random,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      electionTimeoutMs: config.electionTimeoutMs,
      requestTimeoutMs: requestTimeoutMs(config),
      preVote: config.preVote,
      restored: {
        hardState,
        entries,
        confState: confStateOf(members),
        ...(walSnapshot === undefined
          ? {}
          : { snapshot: { metadata: { ...walSnapshot, confState: confStateOf(members) }, data: new Uint8Array(0) } }),
      },
      applied,
      catchUpEntries: config.snapshotCatchUpEntries,
      ...(crashPoints === undefined ? {} : { crashPoints }),
      logger,
      send: (messages) => {
        if (transport === undefined) return;
        if (server === undefined) transport.send(messages);
        else server.fromLog.send(messages, transport);
      },
      persistSnapshot: (snapshot) => snapshotFiles.persistIncoming(snapshot.data),
      apply: (committed, snapshot) => server?.fromLog.apply(committed, snapshot),
      onLeaderChange: (leader) => {
        logger.info("raft leader changed", { leader: leader.toString(16) });
        // etcd counts a change to a known leader (etcd_server_leader_changes_seen_total).
        if (leader !== 0) server?.fromLog.leaderChanged();
      },
      fatal: (error) => (server === undefined ? (fatalBeforeServer ??= error) : server.fromLog.fatal(error)),
    });
    raftLog = log;
    if (transport !== undefined) {
      await transport.start(config.listenPeerUrls);
      transport.setPeers(members.all());
    }
    server = new EtcdServer(
      config,
      runtime,
      logger,
      identity,
      wal,
      backend,
      store,
      applier,
      log,
      members,
      transport,
      snapshotFiles,
      crashPoints,
      () => lock.release(),
      options.peerNetwork?.fetch ?? noPeerNetwork,
      options.tokens ?? defaultTokens(runtime, config),
    );
    // The only voter needs nobody's vote: it leads at once rather than after
    // an election timeout (etcd advances its ticks to the same end).
    const { voters } = confStateOf(members);
    // Replay goes on from the backend's consistent index.
    server.begin({ applied, onFatal: options.onFatal, failedBefore: fatalBeforeServer, campaign: voters.length === 1 && voters[0] === identity.memberId });
    if (network !== undefined) {
      const serving = server;
      serving.corruptionCheck = new CorruptionCheck({
        memberId: identity.memberId,
        clusterId: identity.clusterId,
        post: peerPostVia(network.fetch),
        clock: runtime.clock,
        logger,
        // Best effort at start: a peer that cannot answer soon is skipped, not waited for.
        timeoutMs: Math.min(requestTimeoutMs(config), corruptCheckPeerTimeoutMs),
        peers: () => members.all().filter((member) => member.id !== identity.memberId),
        isLeader: () => serving.isLeader,
        localHash: (revision) => serving.hashKV(revision),
        raiseCorrupt: async (memberId) => {
          await serving.alarm(create(AlarmRequestSchema, { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: BigInt(memberId), alarm: AlarmType.CORRUPT }));
        },
      });
      serving.corruptionCheck.start(config.corruptCheckIntervalMs);
    }
    return server;
  } catch (error) {
    await lock.release();
    throw error;
  }
}

function confStateOf(members: MemberStore): ConfState {
  const all = members.all();
  return { voters: all.filter((m) => !m.isLearner).map((m) => m.id), learners: all.filter((m) => m.isLearner).map((m) => m.id) };
}


/** How long the corruption checks wait for a peer's hash before going on without it. */
const corruptCheckPeerTimeoutMs = 2000;

async function newIdentity(config: ServerConfig, digest: Digest): Promise<MemberIdentity> {
  if (config.initialCluster.size > 1) {
    const initial = await initialClusterOf(config, digest);
    return {
      name: config.name,
      memberId: initial.self.id,
      clusterId: initial.clusterId,
      peerUrls: initial.self.peerUrls,
      initialMembers: initial.members,
    };
  }
  const memberId = await memberIdOf(config.initialAdvertisePeerUrls, config.initialClusterToken, digest);
  const clusterId = await clusterIdOf([await etcdMemberIdOf(config.initialAdvertisePeerUrls, config.initialClusterToken, digest)], digest);
  return { name: config.name, memberId, clusterId, peerUrls: config.initialAdvertisePeerUrls };
}


/** --auth-token simple (etcd's default): tokens registered on every member, expiring after --auth-token-ttl unused. */
function defaultTokens(runtime: Runtime, config: ServerConfig): AuthTokens {
  return new AuthTokens({ kind: "simple", simple: new SimpleTokens(runtime.clock, runtime.random, { ttlSeconds: config.authTokenTtlSeconds }) });
}


/** The peer requests of a member started without a peer network (in-process, alone): there is nobody to ask. */
const noPeerNetwork: PeerFetch = () => Promise.reject(new Error("this member has no peer network"));


/** etcd's request timeout: 5 s plus two election timeouts. */
