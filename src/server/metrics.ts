// etcd's metrics on /metrics, by etcd's names, help, labels and buckets, so its
// alerts and dashboards work unchanged (etcdserver/metrics.go, mvcc/metrics.go,
// wal/metrics.go, mvcc/backend/metrics.go, go-grpc-prometheus). Counters that
// change on the hot path are plain numbers kept by their owners (the applier,
// the server, the WAL through its hooks) and read at each scrape; only the
// latency histograms are observed as they happen.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { MvccCounts } from "./apply-kv.ts";
import type { PeerTraffic } from "../peer/transport.ts";

/** etcd's peer round-trip buckets: 0.1 ms doubling to 3.2768 s (prometheus.ExponentialBuckets(0.0001, 2, 16)). */
const roundTripBuckets = Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i);
/** etcd's snapshot send and receive buckets: 0.1 s doubling, 10 of them. */
const snapshotBuckets = Array.from({ length: 10 }, (_, i) => 0.1 * 2 ** i);

/** etcd's disk histograms: 1 ms doubling to 8.192 s (prometheus.ExponentialBuckets(0.001, 2, 14)). */
const diskBuckets = Array.from({ length: 14 }, (_, i) => 0.001 * 2 ** i);

/** What the server reports at each scrape (EtcdServer.metricsView). */
export interface MetricsView {
  memberId: number;
  leader: number;
  isLeader: boolean;
  isLearner: boolean;
  committedIndex: number;
  appliedIndex: number;
  pendingProposals: number;
  quotaBytes: number;
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
  liveKeys: number;
  currentRevision: number;
  compactRevision: number;
  mvcc: Readonly<MvccCounts>;
  stats: Readonly<{
    leaderChanges: number;
    proposalsFailed: number;
    leasesExpired: number;
    healthChecksPassed: number;
    healthChecksFailed: number;
    clientGrpcReceivedBytes: number;
    clientGrpcSentBytes: number;
  }>;
  /** The peer transport's traffic; undefined without one (in-process tests). */
  peerTraffic: PeerTraffic | undefined;
}

export interface MetricsSource {
  metricsView(): MetricsView;
}

type View = MetricsView;

export interface EtcdMetricsOptions {
  serverVersion: string;
  clusterVersion: string;
}

/** The hooks storage (WalOptions, BackendOptions) and the peer transport call. */
export interface MetricHooks {
  observeFsync(seconds: number): void;
  countWalWritten(bytes: number): void;
  observeBackendCommit(seconds: number): void;
  observePeerRoundTrip(to: number, seconds: number): void;
  observeSnapshotDuration(direction: "send" | "receive", peer: number, seconds: number): void;
}

export class EtcdMetrics implements MetricHooks {
  private server: MetricsSource | undefined;
  private view: View | undefined;
  private readonly walFsync: Histogram;
  private readonly snapshotDurations: Record<"send" | "receive", Histogram>;
  private readonly backendCommit: Histogram;
  private readonly peerRoundTrip: Histogram<"To">;
  /** Every peer seen active: etcd_network_active_peers goes to 0 for one that went away. */
  private readonly peersSeen = new Set<number>();
  private walWrittenBytes = 0;

  constructor(
    private readonly registry: Registry,
    options: EtcdMetricsOptions,
  ) {
    const registers = [registry];
    this.walFsync = new Histogram({ name: "etcd_disk_wal_fsync_duration_seconds", help: "The latency distributions of fsync called by WAL.", buckets: diskBuckets, registers });
    this.backendCommit = new Histogram({
      name: "etcd_disk_backend_commit_duration_seconds",
      help: "The latency distributions of commit called by backend.",
      buckets: diskBuckets,
      registers,
    });
    const self = this;
    // A gauge in etcd, despite its name.
    new Gauge({ name: "etcd_disk_wal_write_bytes_total", help: "Total number of bytes written in WAL.", registers, collect() { this.set(self.walWrittenBytes); } });

    // etcdserver
    this.gaugeOf("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", (v) => (v.leader !== 0 ? 1 : 0));
    this.gaugeOf("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", (v) => (v.isLeader ? 1 : 0));
    this.gaugeOf("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", (v) => (v.isLearner ? 1 : 0));
    this.counterOf("etcd_server_leader_changes_seen_total", "The number of leader changes seen.", () => this.current()?.stats.leaderChanges ?? 0);
    this.gaugeOf("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", (v) => v.committedIndex);
    this.gaugeOf("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", (v) => v.appliedIndex);
    this.gaugeOf("etcd_server_proposals_pending", "The current number of pending proposals to commit.", (v) => v.pendingProposals);
    this.counterOf("etcd_server_proposals_failed_total", "The total number of failed proposals seen.", () => this.current()?.stats.proposalsFailed ?? 0);
    this.counterOf("etcd_server_lease_expired_total", "The total number of expired leases.", () => this.current()?.stats.leasesExpired ?? 0);
    // etcdhttp's, counted by /health.
    this.counterOf("etcd_server_health_success", "The total number of successful health checks", () => this.current()?.stats.healthChecksPassed ?? 0);
    this.counterOf("etcd_server_health_failures", "The total number of failed health checks", () => this.current()?.stats.healthChecksFailed ?? 0);
    this.gaugeOf("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", (v) => v.quotaBytes);
    const version = new Gauge({ name: "etcd_server_version", help: "Which version is running. 1 for 'server_version' label with current version.", labelNames: ["server_version"], registers });
    version.labels(options.serverVersion).set(1);
    const cluster = new Gauge({ name: "etcd_cluster_version", help: "Which version is running. 1 for 'cluster_version' label with current cluster version", labelNames: ["cluster_version"], registers });
    cluster.labels(options.clusterVersion.split(".").slice(0, 2).join(".")).set(1);
    new Gauge({
      name: "etcd_server_id",
      help: "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
      labelNames: ["server_id"],
      registers,
      collect() {
        const view = self.current();
        this.reset();
        if (view !== undefined) this.labels(view.memberId.toString(16)).set(1);
      },
    });

    // mvcc: etcd exports each counter twice, under etcd_ and (until 3.5) etcd_debugging_.
    for (const prefix of ["etcd", "etcd_debugging"]) {
      this.counterOf(`${prefix}_mvcc_range_total`, "Total number of ranges seen by this member.", () => this.current()?.mvcc.ranges ?? 0);
      this.counterOf(`${prefix}_mvcc_put_total`, "Total number of puts seen by this member.", () => this.current()?.mvcc.puts ?? 0);
      this.counterOf(`${prefix}_mvcc_delete_total`, "Total number of deletes seen by this member.", () => this.current()?.mvcc.deletes ?? 0);
      this.counterOf(`${prefix}_mvcc_txn_total`, "Total number of txns seen by this member.", () => this.current()?.mvcc.txns ?? 0);
      this.gaugeOf(`${prefix}_mvcc_db_total_size_in_bytes`, "Total size of the underlying database physically allocated in bytes.", (v) => v.dbSizeBytes);
    }
    this.gaugeOf("etcd_debugging_mvcc_keys_total", "Total number of keys.", (v) => v.liveKeys);
    this.gaugeOf("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", (v) => v.dbSizeInUseBytes);
    this.gaugeOf("etcd_debugging_mvcc_current_revision", "The current revision of store.", (v) => v.currentRevision);
    this.gaugeOf("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", (v) => v.compactRevision);
    this.gaugeOf("etcd_debugging_mvcc_total_put_size_in_bytes", "The total size of put kv pairs seen by this member.", (v) => v.mvcc.putBytes);

    // network: rafthttp's and v3rpc's, member ids in hex as etcd's types.ID prints them.
    this.peerRoundTrip = new Histogram({
      name: "etcd_network_peer_round_trip_time_seconds",
      help: "Round-Trip-Time histogram between peers",
      labelNames: ["To"],
      buckets: roundTripBuckets,
      registers,
    });
    new Gauge({
      name: "etcd_network_active_peers",
      help: "The current number of active peer connections.",
      labelNames: ["Local", "Remote"],
      registers,
      collect() {
        const view = self.current();
        this.reset();
        if (view?.peerTraffic === undefined) return;
        const active = new Set(view.peerTraffic.activePeers);
        for (const id of active) self.peersSeen.add(id);
        for (const id of self.peersSeen) this.labels(view.memberId.toString(16), id.toString(16)).set(active.has(id) ? 1 : 0);
      },
    });
    // One series per peer, read from the transport's counts at each scrape.
    const peerCounts = (read: (traffic: PeerTraffic) => ReadonlyMap<number, number>): Array<[string, number]> => {
      const traffic = self.current()?.peerTraffic;
      return traffic === undefined ? [] : [...read(traffic)].map(([id, count]) => [id.toString(16), count]);
    };
    type PeerRead = (traffic: PeerTraffic) => ReadonlyMap<number, number>;
    const perPeerCounter = (name: string, help: string, label: "To" | "From", read: PeerRead) =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [peer, count] of peerCounts(read)) this.labels(peer).inc(count);
        },
      });
    const perPeerGauge = (name: string, help: string, label: "To" | "From", read: PeerRead) =>
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [peer, count] of peerCounts(read)) this.labels(peer).set(count);
        },
      });
    perPeerCounter("etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To", (traffic) => traffic.sentBytes);
    perPeerCounter("etcd_network_peer_received_bytes_total", "The total number of bytes received from peers.", "From", (traffic) => traffic.receivedBytes);
    perPeerCounter("etcd_network_peer_sent_failures_total", "The total number of send failures from peers.", "To", (traffic) => traffic.sentFailures);
    perPeerCounter("etcd_network_peer_received_failures_total", "The total number of receive failures from peers.", "From", (traffic) => traffic.receivedFailures);
    perPeerCounter("etcd_network_snapshot_send_success", "Total number of successful snapshot sends", "To", (traffic) => traffic.snapshotSend.success);
    perPeerCounter("etcd_network_snapshot_send_failures", "Total number of snapshot send failures", "To", (traffic) => traffic.snapshotSend.failures);
    perPeerCounter("etcd_network_snapshot_receive_success", "Total number of successful snapshot receives", "From", (traffic) => traffic.snapshotReceive.success);
    perPeerCounter("etcd_network_snapshot_receive_failures", "Total number of snapshot receive failures", "From", (traffic) => traffic.snapshotReceive.failures);
    perPeerGauge("etcd_network_snapshot_send_inflights_total", "Total number of inflight snapshot sends", "To", (traffic) => traffic.snapshotSend.inflight);
    perPeerGauge("etcd_network_snapshot_receive_inflights_total", "Total number of inflight snapshot receives", "From", (traffic) => traffic.snapshotReceive.inflight);
    new Counter({
      name: "etcd_network_disconnected_peers_total",
      help: "The total number of disconnected peers.",
      labelNames: ["Local", "Remote"],
      registers,
      collect() {
        this.reset();
        const view = self.current();
        if (view?.peerTraffic === undefined) return;
        for (const [id, count] of view.peerTraffic.disconnected) this.labels(view.memberId.toString(16), id.toString(16)).inc(count);
      },
    });
    this.snapshotDurations = {
      send: new Histogram({ name: "etcd_network_snapshot_send_total_duration_seconds", help: "Total latency distributions of v3 snapshot sends", labelNames: ["To"], buckets: snapshotBuckets, registers }),
      receive: new Histogram({ name: "etcd_network_snapshot_receive_total_duration_seconds", help: "Total latency distributions of v3 snapshot receives", labelNames: ["From"], buckets: snapshotBuckets, registers }),
    };
    this.counterOf("etcd_network_client_grpc_sent_bytes_total", "The total number of bytes sent to grpc clients.", () => this.current()?.stats.clientGrpcSentBytes ?? 0);
    this.counterOf("etcd_network_client_grpc_received_bytes_total", "The total number of bytes received from grpc clients.", () => this.current()?.stats.clientGrpcReceivedBytes ?? 0);
  }

  /** Reads the server from now on (metrics before it exists read zero). */
  attach(server: MetricsSource): void {
    this.server = server;
  }

  observeFsync(seconds: number): void {
    this.walFsync.observe(seconds);
  }

  countWalWritten(bytes: number): void {
    this.walWrittenBytes += bytes;
  }

  observeBackendCommit(seconds: number): void {
    this.backendCommit.observe(seconds);
  }

  observePeerRoundTrip(to: number, seconds: number): void {
    this.peerRoundTrip.labels(to.toString(16)).observe(seconds);
  }

  observeSnapshotDuration(direction: "send" | "receive", peer: number, seconds: number): void {
    this.snapshotDurations[direction].labels(peer.toString(16)).observe(seconds);
  }

  /** One view per scrape: the gauges below all read the same one. */
  private current(): View | undefined {
    return this.view;
  }

  /** Called once per scrape, before the registry collects. */
  refresh(): void {
    this.view = this.server?.metricsView();
  }

  private gaugeOf(name: string, help: string, read: (view: View) => number): void {
    const self = this;
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const view = self.current();
        this.set(view === undefined ? 0 : read(view));
      },
    });
  }

  /** A counter whose total is kept elsewhere (read at each scrape). */
  private counterOf(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        const total = read();
        if (total > 0) this.inc(total);
      },
    });
  }
}
