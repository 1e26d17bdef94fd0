// The peer transport: carries Raft messages between the members of one
// cluster over the PeerNetwork port (HTTP/2). etcd's rafthttp is the model:
// a long-lived stream per direction for messages, a separate request per
// snapshot, bounded per-peer queues that drop (and report the peer
// unreachable) rather than block Raft. See README.md in this folder.
import { clusterVersion, serverVersion } from "../version.ts";
import type { Clock, Logger, PeerListener, PeerNetwork, Random, Timer } from "../ports.ts";
import { type Message, MessageType, type NodeId } from "../raft/types.ts";
import { LogLimiter } from "../log-limiter.ts";
import type { MembershipOf } from "./admission.ts";
import { defaultPeerLimits, type PeerLimits } from "./limits.ts";
import { PeerLink } from "./peer-link.ts";
import { PeerReceiver } from "./receiver.ts";

export interface PeerTransportOptions {
  localId: NodeId;
  clusterId: bigint;
  network: PeerNetwork;
  clock: Clock;
  random: Random;
  logger?: Logger;
  limits?: Partial<PeerLimits>;
  /**
   * The live member set: requests and messages are taken only from current
   * members (admission.ts). Read on every request and frame, so it follows
   * member add and remove as they are applied.
   */
  membershipOf: MembershipOf;
  /** Answered on GET /version of the peer port. */
  version?: { server: string; cluster: string };
  /** Received messages, in order per sender; hand them to raft.step. */
  onMessages: (messages: Message[]) => void;
  /** A peer could not be reached or a message to it was dropped; raft.reportUnreachable. */
  onUnreachable?: (id: NodeId) => void;
  /** A snapshot was delivered (true) or not (false); raft.reportSnapshot. */
  onSnapshotStatus?: (id: NodeId, ok: boolean) => void;
  /**
   * Peer `by` answered this member's stream request with 410 "removed member".
   * Whether to believe it (is `by` a current member?) is the caller's call.
   */
  onRemoved?: (by: NodeId) => void;
  /** A keep-alive ping's round trip to a peer (etcd_network_peer_round_trip_time_seconds). */
  onRoundTrip?: (to: NodeId, seconds: number) => void;
  /** A snapshot sent to or received from a peer ended, after `seconds` (etcd_network_snapshot_*_total_duration_seconds). */
  onSnapshotDuration?: (direction: "send" | "receive", peer: NodeId, seconds: number) => void;
}

/** Counts per peer. */
type PerPeer = ReadonlyMap<NodeId, number>;

/** What etcd_network_peer_* report, kept as plain counts (read at each scrape). */
export interface PeerTraffic {
  /** Message bytes sent to each peer. */
  sentBytes: ReadonlyMap<NodeId, number>;
  /** Message bytes received from each peer. */
  receivedBytes: ReadonlyMap<NodeId, number>;
  /** The peers whose stream is up now. */
  activePeers: NodeId[];
  /** Messages to each peer dropped (queue full, or its stream down). */
  sentFailures: PerPeer;
  /** Frames or snapshots from each peer refused, and its streams lost. */
  receivedFailures: PerPeer;
  /** Times each peer's stream went down after being up. */
  disconnected: PerPeer;
  snapshotSend: { success: PerPeer; failures: PerPeer; inflight: PerPeer };
  snapshotReceive: { success: PerPeer; failures: PerPeer; inflight: PerPeer };
}

function bump(counts: Map<NodeId, number>, peer: NodeId, by = 1): void {
  counts.set(peer, (counts.get(peer) ?? 0) + by);
}

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export class PeerTransport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly sentBytes = new Map<NodeId, number>();
  private readonly receivedBytes = new Map<NodeId, number>();
  private readonly sentFailures = new Map<NodeId, number>();
  private readonly receivedFailures = new Map<NodeId, number>();
  private readonly disconnected = new Map<NodeId, number>();
  private readonly snapshotSend = { success: new Map<NodeId, number>(), failures: new Map<NodeId, number>(), inflight: new Map<NodeId, number>() };
  private readonly snapshotReceive = { success: new Map<NodeId, number>(), failures: new Map<NodeId, number>(), inflight: new Map<NodeId, number>() };
  private readonly listeners: PeerListener[] = [];
  private readonly receiver: PeerReceiver;
  private readonly limits: PeerLimits;
  private readonly logger: Logger;
  private maintenanceTimer: Timer | undefined;
  private stopped = false;

  constructor(private readonly options: PeerTransportOptions) {
    this.limits = { ...defaultPeerLimits, ...options.limits };
    this.logger = options.logger ?? silentLogger;
    this.receiver = new PeerReceiver({
      localId: options.localId,
      clusterId: options.clusterId,
      clock: options.clock,
      logger: this.logger,
      limits: this.limits,
      version: options.version ?? { server: serverVersion, cluster: clusterVersion },
      membershipOf: options.membershipOf,
      refusalLog: new LogLimiter(() => options.clock.nowMs()),
      deliver: (messages) => {
        if (!this.stopped) options.onMessages(messages);
      },
      countReceived: (from, bytes) => bump(this.receivedBytes, from, bytes),
      countReceiveFailure: (from) => bump(this.receivedFailures, from),
      snapshotStarted: (from) => bump(this.snapshotReceive.inflight, from),
      snapshotEnded: (from, ok, seconds) => this.snapshotEnded(this.snapshotReceive, "receive", from, ok, seconds),
    });
  }

  /** Serves the peer port on each URL (port 0 picks a free port; see `listenUrls`). */
  async start(listenUrls: URL[]): Promise<void> {
    for (const url of listenUrls) this.listeners.push(await this.options.network.listen(url, this.receiver.handle));
    const { clock } = this.options;
    this.maintenanceTimer = clock.setInterval(this.limits.keepaliveIntervalMs, () => {
      const nowMs = clock.nowMs();
      for (const link of this.links.values()) link.keepalive(nowMs);
      this.receiver.dropIdleStreams(nowMs);
    });
  }

  traffic(): PeerTraffic {
    const activePeers = [...this.links.values()].filter((link) => link.isActive()).map((link) => link.id);
    return {
      sentBytes: this.sentBytes,
      receivedBytes: this.receivedBytes,
      activePeers,
      sentFailures: this.sentFailures,
      receivedFailures: this.receivedFailures,
      disconnected: this.disconnected,
      snapshotSend: this.snapshotSend,
      snapshotReceive: this.snapshotReceive,
    };
  }

  private snapshotEnded(
    counts: { success: Map<NodeId, number>; failures: Map<NodeId, number>; inflight: Map<NodeId, number> },
    direction: "send" | "receive",
    peer: NodeId,
    ok: boolean,
    seconds: number,
  ): void {
    bump(counts.inflight, peer, -1);
    bump(ok ? counts.success : counts.failures, peer);
    this.options.onSnapshotDuration?.(direction, peer, seconds);
  }

  /** The URLs actually listened on. */
  get listenUrls(): URL[] {
    return this.listeners.map((listener) => listener.url);
  }

  addPeer(id: NodeId, urls: string[]): void {
    if (this.stopped || this.links.has(id) || id === this.options.localId) return;
    this.links.set(id, new PeerLink(id, urls, this.linkContext()));
  }

  updatePeer(id: NodeId, urls: string[]): void {
    const link = this.links.get(id);
    if (link === undefined) return this.addPeer(id, urls);
    link.updateUrls(urls);
  }

  /**
   * Makes the peers exactly `members` (this member left out): new ones are
   * added, moved ones get their URLs, and those no longer listed go.
   */
  setPeers(members: readonly { id: NodeId; peerUrls: string[] }[]): void {
    const listed = new Set<NodeId>();
    for (const member of members) {
      if (member.id === this.options.localId) continue;
      listed.add(member.id);
      this.updatePeer(member.id, member.peerUrls);
    }
    for (const id of [...this.links.keys()]) if (!listed.has(id)) this.removePeer(id);
  }

  removePeer(id: NodeId): void {
    this.links.get(id)?.stop();
    this.links.delete(id);
  }

  /**
   * Queues messages for their peers and returns at once. Messages sent in one
   * turn of the event loop leave as one frame per peer. A message for a peer
   * whose queue is full is dropped and the peer reported unreachable (etcd does
   * the same); Raft recovers by retrying from the peer's progress.
   */
  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    const dropped = new Set<NodeId>();
    for (const message of messages) {
      const link = this.links.get(message.to);
      if (link === undefined) {
        this.logger.debug("dropped message to an unknown peer", { to: message.to.toString(16), type: MessageType[message.type] });
        continue;
      }
      if (message.type === MessageType.Snap) {
        link.sendSnapshot(message);
        continue;
      }
      if (link.enqueue(message)) continue;
      bump(this.sentFailures, message.to);
      if (!dropped.has(message.to)) {
        dropped.add(message.to);
        this.logger.warn("dropped internal Raft message since sending buffer is full", {
          "remote-peer-id": message.to.toString(16),
          "message-type": MessageType[message.type],
          "remote-peer-active": link.isActive(),
        });
      }
    }
    for (const id of dropped) this.reportUnreachable(id);
  }

  /** Monotonic ms (Clock.nowMs) since the stream to the peer is up, undefined while it is down. */
  activeSince(id: NodeId): number | undefined {
    return this.links.get(id)?.activeSince();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.maintenanceTimer?.cancel();
    for (const link of this.links.values()) link.stop();
    this.links.clear();
    this.receiver.stop();
    await Promise.all(this.listeners.map((listener) => listener.close()));
    this.listeners.length = 0;
  }

  private linkContext() {
    const { localId, clusterId, network, clock, random } = this.options;
    return {
      localId,
      clusterId,
      network,
      clock,
      random,
      logger: this.logger,
      limits: this.limits,
      reportUnreachable: (id: NodeId) => this.reportUnreachable(id),
      reportSnapshot: (id: NodeId, ok: boolean) => {
        if (!this.stopped) this.options.onSnapshotStatus?.(id, ok);
      },
      reportRemoved: (by: NodeId) => {
        if (!this.stopped) this.options.onRemoved?.(by);
      },
      countSent: (to: NodeId, bytes: number) => bump(this.sentBytes, to, bytes),
      countSendFailures: (to: NodeId, messages: number) => bump(this.sentFailures, to, messages),
      countDisconnected: (peer: NodeId) => bump(this.disconnected, peer),
      snapshotStarted: (to: NodeId) => bump(this.snapshotSend.inflight, to),
      snapshotEnded: (to: NodeId, ok: boolean, seconds: number) => this.snapshotEnded(this.snapshotSend, "send", to, ok, seconds),
      observeRoundTrip: (to: NodeId, seconds: number) => this.options.onRoundTrip?.(to, seconds),
    };
  }

  private reportUnreachable(id: NodeId): void {
    if (!this.stopped) this.options.onUnreachable?.(id);
  }
}
