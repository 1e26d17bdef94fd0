// The server's configuration, derived from etcd's flags (src/cli/flags.ts).
import type { PeerTlsConfig } from "../ports.ts";
import type { ClientTlsSettings } from "./client-tls.ts";

export interface ServerConfig {
  name: string;
  dataDir: string;
  /** --wal-dir: a dedicated WAL directory; undefined means <data-dir>/member/wal. */
  walDir: string | undefined;
  /** --max-wals: WAL segment files kept (0: all); only segments a snapshot covers are deleted. */
  maxWals: number;
  /** Test builds only: WAL segments cut at this size instead of etcd's 64 MiB (set by the composition root, never by a flag). */
  walSegmentBytesMax?: number;
  listenClientUrls: URL[];
  /** 3.5.8+: a separate listener for HTTP/1.1 traffic (gateway, health, metrics). */
  listenClientHttpUrls: URL[];
  /** Listeners serving only /metrics and /health (https ones with the client TLS settings). */
  listenMetricsUrls: URL[];
  /** --metrics: 'extensive' adds grpc_server_handling_seconds; anything else is etcd's basic set. */
  metrics: string;
  advertiseClientUrls: string[];
  /** TLS for the https client URLs (src/server/client-tls.ts); undefined when every client URL is http. */
  clientTls: ClientTlsSettings | undefined;
  listenPeerUrls: URL[];
  initialAdvertisePeerUrls: string[];
  /** --peer-cert-file and the other --peer-* TLS flags; undefined when no peer certificate is given (plaintext peers). */
  peerTls: PeerTlsConfig | undefined;
  initialCluster: Map<string, string[]>;
  initialClusterState: "new" | "existing";
  initialClusterToken: string;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  snapshotCount: number;
  /** Entries kept in memory behind a snapshot so a slightly slow follower needs no snapshot. */
  snapshotCatchUpEntries: number;
  preVote: boolean;
  maxRequestBytes: number;
  /** --max-concurrent-streams: HTTP/2 streams per client connection (the listener caps it; see runtime/node/transport-limits.ts). */
  maxConcurrentStreams: number;
  /** --grpc-keepalive-min-time: a client pinging more often than this is sent GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"); 0 off. */
  grpcKeepaliveMinTimeMs: number;
  /** --grpc-keepalive-interval: the server pings a silent client this often; 0 off. */
  grpcKeepaliveIntervalMs: number;
  /** --grpc-keepalive-timeout: a client that does not answer a ping within this is disconnected. */
  grpcKeepaliveTimeoutMs: number;
  maxTxnOps: number;
  /** 0 means etcd's default of 2 GiB. */
  quotaBackendBytes: number;
  backendBatchIntervalMs: number;
  backendBatchLimit: number;
  compactionBatchLimit: number;
  /** Period of watch progress notifications (etcd's default 10 minutes); 0 turns them off. */
  watchProgressNotifyIntervalMs: number;
  /** --experimental-initial-corrupt-check (on by default here): compare HashKV with the peers before serving. */
  initialCorruptCheck: boolean;
  /** --experimental-corrupt-check-time (5 minutes by default here): the leader compares members' HashKV this often; 0 turns it off. */
  corruptCheckIntervalMs: number;
  /** --experimental-enable-lease-checkpoint: the leader checkpoints remaining TTLs every this many ms; undefined when off. */
  leaseCheckpointIntervalMs: number | undefined;
  logLevel: LogLevel;
  /** Where log lines go: "stderr", "stdout" or file paths (etcd's --log-outputs, "default" read as stderr). */
  logOutputs: string[];
  /** Things to log once the logger exists (a deprecated --logger value). */
  startWarnings: string[];
  /** --auth-token: "simple", or "jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…" (parsed by src/auth/token-options.ts). */
  authToken: string;
  /** --auth-token-ttl: seconds an unused simple token lives. */
  authTokenTtlSeconds: number;
  /** --bcrypt-cost for stored password hashes. */
  bcryptCost: number;
  /** --client-cert-auth: a request without a token runs as its verified client certificate's CommonName. */
  clientCertAuth: boolean;
}

/** bcrypt's cost bounds (golang.org/x/crypto/bcrypt MinCost, MaxCost). */
export const bcryptCostMin = 4;
export const bcryptCostMax = 31;

/** etcd's --log-level values (its zap levels; panic and fatal log only what stops the process). */
export const logLevels = ["debug", "info", "warn", "error", "panic", "fatal"] as const;
export type LogLevel = (typeof logLevels)[number];

export const defaultQuotaBackendBytes = 2 * 1024 * 1024 * 1024;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** etcd's request timeout: 5 s plus two election timeouts. */
export function requestTimeoutMs(config: Pick<ServerConfig, "electionTimeoutMs">): number {
  return 5000 + 2 * config.electionTimeoutMs;
}
