// Every flag of etcd 3.4 (plus the few later ones edgetcd serves), each with
// what edgetcd does with it. No flag is silently ignored:
//   implemented  it does what etcd's does (a test covers it);
//   refused      setting it (to anything but its default) stops the start with
//                a message naming the flag: it asks for security, durability or
//                a mode of operation edgetcd does not have, and running without
//                it would be a quiet lie;
//   warned       setting it logs a warning and it is ignored: tuning or
//                observability whose absence changes no answer and loses no data.
// test/cli/etcd-help-coverage.test.ts fails when real `etcd --help` lists a
// flag that has no row here.
//
// Descriptions are edgetcd's own words; facts (defaults, accepted values) are
// etcd's.

export type FlagKind = "string" | "int" | "uint" | "bool" | "duration";

export type FlagStatus =
  | { kind: "implemented" }
  | { kind: "refused"; reason: string }
  | { kind: "warned"; reason: string };

/** The sections of `--help`, in etcd's order. */
export const flagGroups = [
  "Member",
  "Clustering",
  "Security",
  "Auth",
  "Profiling and monitoring",
  "Logging",
  "v2 proxy",
  "Experimental",
  "Unsafe",
  "Deprecated",
] as const;
export type FlagGroup = (typeof flagGroups)[number];

export interface FlagDefinition {
  name: string;
  kind: FlagKind;
  /** The default as parsed; "" for none. */
  defaultValue: string;
  /** The default as `--help` shows it, when it is not the value itself. */
  defaultShown?: string;
  group: FlagGroup;
  description: string;
  status: FlagStatus;
  /** Left out of `--help` (etcd hides these too, or they are aliases). */
  hidden?: boolean;
}

const implemented: FlagStatus = { kind: "implemented" };
const refused = (reason: string): FlagStatus => ({ kind: "refused", reason });
const warned = (reason: string): FlagStatus => ({ kind: "warned", reason });

const noTls = refused("TLS is not served yet (issue 13); edgetcd would run in plain text");
const noV2 = refused("the v2 API is not served; edgetcd serves etcd's v3 API only");
const noProxy = warned("only read in v2 proxy mode, which edgetcd does not have (--proxy is refused)");
const noDiscovery = refused("discovery is not implemented; bootstrap with --initial-cluster");

type Row = [name: string, kind: FlagKind, defaultValue: string, description: string, status?: FlagStatus, extra?: Partial<FlagDefinition>];

function group(name: FlagGroup, rows: Row[]): FlagDefinition[] {
  return rows.map(([flagName, kind, defaultValue, description, status = implemented, extra = {}]) => ({
    name: flagName,
    kind,
    defaultValue,
    group: name,
    description,
    status,
    ...extra,
  }));
}

export const flagDefinitions: readonly FlagDefinition[] = [
  ...group("Member", [
    ["name", "string", "default", "This member's name, unique in the cluster; used in --initial-cluster."],
    ["data-dir", "string", "", "Where this member keeps its WAL, snapshots and database.", implemented, { defaultShown: "${name}.edgetcd" }],
    ["wal-dir", "string", "", "Keep the WAL in this directory instead of <data-dir>/member/wal (for example on its own disk)."],
    ["snapshot-count", "uint", "100000", "Applied entries after which the member snapshots and releases older WAL."],
    ["heartbeat-interval", "uint", "100", "Milliseconds between a leader's heartbeats."],
    ["election-timeout", "uint", "1000", "Milliseconds a follower waits without hearing from a leader before it campaigns; at least 5 heartbeats."],
    [
      "initial-election-tick-advance",
      "bool",
      "true",
      "Start with the election clock advanced so a lone restarted member campaigns sooner.",
      warned("edgetcd always starts its election clock from zero"),
    ],
    ["listen-peer-urls", "string", "http://localhost:2380", "URLs to accept other members' Raft traffic on."],
    ["listen-client-urls", "string", "http://localhost:2379", "URLs to serve clients on (gRPC, gRPC-Web, Connect, the JSON gateway, /health, /metrics)."],
    ["listen-client-http-urls", "string", "", "URLs to serve the HTTP/1.1 routes on, apart from gRPC (from etcd 3.5.8)."],
    [
      "max-snapshots",
      "uint",
      "5",
      "Snapshot files to keep, oldest deleted first (0: keep all).",
      // etcd's <term>-<index>.snap files hold Raft metadata and the v2 store;
      // edgetcd records the same metadata in the WAL, so no such files pile up.
      warned("edgetcd writes no snapshot files to purge: a snapshot is the database (member/snap/db) plus a WAL record"),
    ],
    ["max-wals", "uint", "5", "WAL segment files to keep, oldest deleted first once a snapshot covers them (0: keep all)."],
    ["quota-backend-bytes", "int", "0", "Raise a NOSPACE alarm when the database grows past this many bytes (0: 2 GiB)."],
    ["backend-batch-interval", "duration", "", "Longest time a database write batch stays open before it commits (default 100ms)."],
    ["backend-batch-limit", "int", "0", "Most changes in one database write batch before it commits (0: 10000)."],
    ["max-txn-ops", "uint", "128", "Most operations one transaction may hold."],
    ["max-request-bytes", "uint", "1572864", "Largest client request accepted, in bytes."],
    ["max-concurrent-streams", "uint", "4294967295", "Most HTTP/2 streams a client connection may open at once (edgetcd holds it to 1000).", implemented, { defaultShown: "math.MaxUint32" }],
    ["grpc-keepalive-min-time", "duration", "5s", "A client pinging more often than this is disconnected."],
    ["grpc-keepalive-interval", "duration", "2h", "How often the server pings a silent client (0: never)."],
    ["grpc-keepalive-timeout", "duration", "20s", "How long a pinged client has to answer before it is disconnected (0: no limit)."],
  ]),
  ...group("Clustering", [
    ["initial-advertise-peer-urls", "string", "http://localhost:2380", "This member's peer URLs as the other members should dial them."],
    ["initial-cluster", "string", "", "The founding members as name=peer-url,...", implemented, { defaultShown: "default=http://localhost:2380" }],
    ["initial-cluster-state", "string", "new", "'new' to found a cluster, 'existing' to join one (after 'member add')."],
    ["initial-cluster-token", "string", "etcd-cluster", "A name unique to this cluster, mixed into its ids so two clusters never mistake each other's members."],
    ["advertise-client-urls", "string", "http://localhost:2379", "This member's client URLs as clients should dial them (listed by 'member list')."],
    ["discovery", "string", "", "Bootstrap through a discovery service URL.", noDiscovery],
    ["discovery-fallback", "string", "proxy", "What to do when discovery fails: 'exit' or 'proxy'.", warned("only read with --discovery, which is refused")],
    ["discovery-proxy", "string", "", "HTTP proxy for the discovery service.", noDiscovery],
    ["discovery-srv", "string", "", "Bootstrap from DNS SRV records of this domain.", noDiscovery],
    ["discovery-srv-name", "string", "", "Suffix of the DNS SRV name looked up.", noDiscovery],
    [
      "strict-reconfig-check",
      "bool",
      "true",
      "Refuse a member change that would leave the cluster without a quorum of started members.",
      warned("edgetcd does not check member changes against started members yet"),
    ],
    ["pre-vote", "bool", "false", "Ask for votes in a trial round first, so a member cut off from the rest cannot depose the leader."],
    [
      "auto-compaction-retention",
      "string",
      "0",
      "Compact history automatically: an age (periodic) or a revision count (revision); 0 off.",
      warned("automatic compaction is not implemented; compact with 'etcdctl compact' or the Compact RPC"),
    ],
    [
      "auto-compaction-mode",
      "string",
      "periodic",
      "How --auto-compaction-retention is read: 'periodic' or 'revision'.",
      warned("automatic compaction is not implemented; compact with 'etcdctl compact' or the Compact RPC"),
    ],
    ["enable-v2", "bool", "false", "Serve etcd's v2 API as well.", noV2],
  ]),
  ...group("Security", [
    ["cert-file", "string", "", "TLS certificate for the https client URLs."],
    ["key-file", "string", "", "TLS key for the https client URLs."],
    ["client-cert-auth", "bool", "false", "Demand a client certificate signed by --trusted-ca-file."],
    ["client-crl-file", "string", "", "Revoked client certificates (PEM or DER CRL)."],
    ["client-cert-allowed-hostname", "string", "", "Hostname a client certificate must carry."],
    ["trusted-ca-file", "string", "", "CA that signs client certificates; when set, a client certificate is demanded (as etcd 3.4)."],
    ["auto-tls", "bool", "false", "Serve clients TLS with a self-signed certificate (made in memory at start)."],
    ["peer-cert-file", "string", "", "TLS certificate for the peer port (https peer URLs), also shown when dialling peers."],
    ["peer-key-file", "string", "", "TLS key for the peer port."],
    ["peer-client-cert-auth", "bool", "false", "Demand a certificate from members dialling the peer port."],
    ["peer-trusted-ca-file", "string", "", "CA that signs peer certificates (both ways); when set, a certificate is demanded."],
    ["peer-cert-allowed-cn", "string", "", "Common name a peer certificate must carry."],
    ["peer-cert-allowed-hostname", "string", "", "Hostname a peer certificate must carry."],
    ["peer-auto-tls", "bool", "false", "Serve peers TLS with a self-signed certificate (made in memory at start); peers are not verified."],
    ["peer-crl-file", "string", "", "Revoked peer certificates."],
    ["cipher-suites", "string", "", "TLS 1.2 cipher suites allowed on client TLS, Go's names, comma-separated (unknown names refused)."],
    ["cors", "string", "*", "Origins browsers may call from, comma-separated ('*' or empty: any)."],
    [
      "host-whitelist",
      "string",
      "*",
      "Host headers accepted on plain-text HTTP ('*' or empty: any).",
      refused("Host header checks are not implemented; edgetcd would answer every host"),
    ],
  ]),
  ...group("Auth", [
    ["auth-token", "string", "simple", "Kind of auth token: 'simple' or 'jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...'."],
    ["bcrypt-cost", "uint", "10", "bcrypt cost of stored password hashes (4 to 31)."],
    ["auth-token-ttl", "uint", "300", "Seconds an unused simple auth token lives."],
  ]),
  ...group("Profiling and monitoring", [
    ["enable-pprof", "bool", "false", "Serve runtime profiles at /debug/pprof/.", warned("there are no Go profiles to serve; profile with the runtime's own tools")],
    ["metrics", "string", "basic", "Which metrics /metrics exports: 'basic' or 'extensive' (adds grpc_server_handling_seconds)."],
    ["listen-metrics-urls", "string", "", "Extra URLs serving only /metrics and /health (https ones with the client TLS flags)."],
  ]),
  ...group("Logging", [
    ["logger", "string", "zap", "'zap' for JSON lines (the only logger; 'capnslog' is accepted with a warning, as etcd 3.5 dropped it)."],
    ["log-outputs", "string", "default", "Where logs go, comma-separated: 'default' (stderr), 'stderr', 'stdout' or file paths."],
    ["log-level", "string", "info", "Least severe level logged: debug, info, warn, error, panic or fatal."],
  ]),
  ...group("v2 proxy", [
    ["proxy", "string", "off", "Run as a v2 proxy: 'off', 'readonly' or 'on'.", refused("the v2 proxy is not served; edgetcd runs only as a member")],
    ["proxy-failure-wait", "uint", "5000", "Milliseconds the proxy holds an endpoint as failed.", noProxy],
    ["proxy-refresh-interval", "uint", "30000", "Milliseconds between the proxy's endpoint refreshes.", noProxy],
    ["proxy-dial-timeout", "uint", "1000", "Milliseconds the proxy waits to connect (0: no limit).", noProxy],
    ["proxy-write-timeout", "uint", "5000", "Milliseconds the proxy waits for a write (0: no limit).", noProxy],
    ["proxy-read-timeout", "uint", "0", "Milliseconds the proxy waits for a read (0: no limit).", noProxy],
  ]),
  ...group("Experimental", [
    // On by default here (etcd's default is off): a member whose data differ
    // from its peers' is found (src/server/corruption.ts).
    ["experimental-initial-corrupt-check", "bool", "true", "Compare this member's data with its peers' before serving (on by default here; etcd's default is off)."],
    ["experimental-corrupt-check-time", "duration", "5m0s", "The leader compares members' data hashes this often, raising CORRUPT for one that differs (0: never; etcd's default is 0)."],
    ["experimental-enable-v2v3", "string", "", "Serve v2 requests from the v3 store under this prefix.", noV2],
    [
      "experimental-backend-bbolt-freelist-type",
      "string",
      "array",
      "bbolt's free-list kind: 'array' or 'map'.",
      warned("the backend is SQLite, not bbolt: there is no free list to choose"),
    ],
    ["experimental-enable-lease-checkpoint", "bool", "false", "The leader records leases' remaining TTLs in the log, so a new leader does not renew them in full."],
    ["experimental-lease-checkpoint-interval", "duration", "5m", "How often lease TTLs are checkpointed (edgetcd's; etcd 3.4 fixes it at 5m)."],
    [
      "experimental-enable-lease-checkpoint-persist",
      "bool",
      "false",
      "Keep checkpointed remaining TTLs in the database across restarts.",
      warned("checkpointed TTLs are kept in memory only"),
      { hidden: true },
    ],
    ["experimental-compaction-batch-limit", "int", "1000", "Most revisions a compaction deletes in one batch."],
    ["experimental-snapshot-catchup-entries", "uint", "5000", "Entries kept in memory behind a snapshot so a slightly slow follower needs no snapshot (from etcd 3.5.14)."],
    [
      "experimental-peer-skip-client-san-verification",
      "bool",
      "false",
      "Skip the SAN check of peer certificates.",
      noTls,
    ],
    ["experimental-watch-progress-notify-interval", "duration", "10m", "How often idle watchers that asked for progress are told the current revision (0: never)."],
    [
      "experimental-warning-apply-duration",
      "duration",
      "100ms",
      "Log a warning when applying a request takes longer than this.",
      warned("slow applies are not logged"),
    ],
  ]),
  ...group("Unsafe", [
    [
      "force-new-cluster",
      "bool",
      "false",
      "Restart this member as a one-member cluster, dropping the others (disaster recovery).",
      refused("forced recovery is not implemented; without it the member would start with its old membership"),
    ],
    [
      "unsafe-no-fsync",
      "bool",
      "false",
      "Skip fsync: acknowledged writes may be lost on a crash.",
      refused("edgetcd always syncs its WAL; it will not pretend to skip it"),
      { hidden: true },
    ],
  ]),
  ...group("Deprecated", [
    ["config-file", "string", "", "A YAML file of etcd's settings.", refused("configuration files are not read; pass flags or ETCD_* variables")],
    ["debug", "bool", "false", "Same as --log-level=debug."],
    [
      "log-package-levels",
      "string",
      "",
      "Per-package levels for capnslog (e.g. 'etcdserver=DEBUG').",
      warned("edgetcd has one log level (--log-level)"),
    ],
    ["version", "bool", "false", "Print edgetcd's version, the etcd API it serves, the runtime and the commit, then exit.", implemented, { hidden: true }],
    ["help", "bool", "false", "Print this help and exit.", implemented, { hidden: true }],
    ["h", "bool", "false", "Print this help and exit.", implemented, { hidden: true }],
  ]),
];
