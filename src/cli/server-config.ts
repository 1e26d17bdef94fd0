// etcd's flags, as parsed (./flags.ts), to the server's configuration
// (src/server/config.ts): URLs, the initial cluster, logging, TLS, auth tokens,
// durations in Go's syntax. Commands build the config; the server only reads it.
import { parseAuthTokenOption } from "../auth/token-options.ts";
import { parseDurationMs, type ParsedFlags } from "./flags.ts";
import type { PeerTlsConfig } from "../ports.ts";
import { ClientTlsError, clientTlsFromFlags, type ClientTlsSettings } from "../server/client-tls.ts";
import { bcryptCostMax, bcryptCostMin, ConfigError, defaultQuotaBackendBytes, logLevels, type LogLevel, type ServerConfig } from "../server/config.ts";

function urls(flag: string, text: string): URL[] {
  if (text === "") return [];
  return text.split(",").map((item) => {
    try {
      const url = new URL(item.trim());
      if (url.protocol !== "http:" && url.protocol !== "https:" && url.protocol !== "unix:") throw new Error(url.protocol === "unixs:" ? "unixs" : "scheme");
      return url;
    } catch (error) {
      // etcd's unixs:// is TLS over a unix socket: refused rather than served in plain text.
      if (error instanceof Error && error.message === "unixs") throw new ConfigError(`unsupported URL "${item}" for --${flag}: unixs:// (TLS over a unix socket) is not implemented; use https:// or unix://`);
      throw new ConfigError(`unexpected URL "${item}" for --${flag}: URLs must be http(s)://host:port or unix://path`);
    }
  });
}

function parseInitialCluster(text: string): Map<string, string[]> {
  const cluster = new Map<string, string[]>();
  if (text === "") return cluster;
  for (const item of text.split(",")) {
    const equals = item.indexOf("=");
    if (equals <= 0) throw new ConfigError(`--initial-cluster: "${item}" is not name=url`);
    const name = item.slice(0, equals);
    cluster.set(name, [...(cluster.get(name) ?? []), item.slice(equals + 1)]);
  }
  return cluster;
}

/**
 * etcd 3.4 validates these at start (embed/config_logging.go): one of its
 * levels (it panics with `unknown level "debugg"`), "default" alone, anything
 * else stderr, stdout or a file path.
 */
function logSettings(get: (name: string) => string): Pick<ServerConfig, "logLevel" | "logOutputs" | "startWarnings"> {
  const startWarnings: string[] = [];
  const logger = get("logger");
  if (logger === "capnslog") {
    startWarnings.push("--logger=capnslog is deprecated (etcd 3.5 removed it); edgetcd logs as --logger=zap does");
  } else if (logger !== "zap") {
    throw new ConfigError(`error verifying flags, unknown logger option "${logger}". See 'edgetcd --help'.`);
  }
  const level = get("debug") === "true" ? "debug" : get("log-level");
  if (!(logLevels as readonly string[]).includes(level)) {
    throw new ConfigError(`error verifying flags, unknown level "${level}" for --log-level (supported: ${logLevels.join(", ")}). See 'edgetcd --help'.`);
  }
  const outputs = get("log-outputs").split(",");
  if (outputs.includes("default") && outputs.length > 1) {
    throw new ConfigError(`error verifying flags, multi logoutput for "default" is not supported yet. See 'edgetcd --help'.`);
  }
  if (outputs.some((output) => output === "")) {
    throw new ConfigError(`error verifying flags, --log-outputs has an empty output. See 'edgetcd --help'.`);
  }
  return {
    logLevel: level as LogLevel,
    logOutputs: [...new Set(outputs.map((output) => (output === "default" ? "stderr" : output)))],
    startWarnings,
  };
}

/**
 * The --peer-* TLS flags, checked as etcd 3.4 checks them (embed/etcd.go,
 * pkg/transport/listener.go): an https peer URL needs a certificate and key
 * (or --peer-auto-tls); one without the other is an error; the allowed CN and
 * hostname exclude each other. Given with only http URLs they serve nothing
 * (etcd warns and ignores them for those URLs) but are still shown when
 * dialling an https peer.
 *
 * --peer-auto-tls (embed/config.go PeerSelfCert): with no certificate or key
 * given, a self-signed certificate for the peer listen hosts replaces the
 * whole peer TLS setting, so the CA, client-cert-auth, allowed CN/hostname and
 * CRL flags do nothing (etcd drops them silently; edgetcd says so); with a
 * certificate given it is ignored with etcd's warning.
 */
function peerTlsSettings(get: (name: string) => string, listenPeerUrls: readonly URL[], warn: (message: string) => void): PeerTlsConfig | undefined {
  const certFile = get("peer-cert-file");
  const keyFile = get("peer-key-file");
  const autoTls = get("peer-auto-tls") === "true";
  const https = listenPeerUrls.find((url) => url.protocol === "https:");
  const authFlags = ["peer-trusted-ca-file", "peer-cert-allowed-cn", "peer-cert-allowed-hostname", "peer-crl-file"];
  if (certFile === "" && keyFile === "") {
    if (autoTls) {
      const ignored = [...authFlags.filter((name) => get(name) !== ""), ...(get("peer-client-cert-auth") === "true" ? ["peer-client-cert-auth"] : [])];
      if (ignored.length > 0) {
        warn(`ignoring ${ignored.map((name) => `--${name}`).join(", ")} with --peer-auto-tls: self-signed peer certificates are not verified (encryption only, as etcd)`);
      }
      return {
        certFile: undefined,
        keyFile: undefined,
        autoTlsHosts: listenPeerUrls.map((url) => url.hostname.replace(/^\[|\]$/g, "")),
        trustedCaFile: undefined,
        clientCertAuth: false,
        allowedCn: undefined,
        allowedHostname: undefined,
        crlFile: undefined,
      };
    }
    if (https !== undefined) {
      throw new ConfigError(`TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url ${https.href} with HTTPS scheme`);
    }
    const stray = authFlags.find((name) => get(name) !== "");
    // Without a certificate etcd has no peer TLS at all; a CA or CN given alone would be a quiet no-op.
    if (stray !== undefined || get("peer-client-cert-auth") === "true") {
      throw new ConfigError(`--${stray ?? "peer-client-cert-auth"} needs --peer-cert-file and --peer-key-file`);
    }
    return undefined;
  }
  if (certFile === "" || keyFile === "") {
    throw new ConfigError(`KeyFile and CertFile must both be present[key: ${keyFile}, cert: ${certFile}]`);
  }
  if (autoTls) warn("ignoring peer auto TLS since certs given");
  const allowedCn = get("peer-cert-allowed-cn") || undefined;
  const allowedHostname = get("peer-cert-allowed-hostname") || undefined;
  if (allowedCn !== undefined && allowedHostname !== undefined) {
    throw new ConfigError(`AllowedCN and AllowedHostname are mutually exclusive (cn="${allowedCn}", hostname="${allowedHostname}")`);
  }
  return {
    certFile,
    keyFile,
    autoTlsHosts: undefined,
    trustedCaFile: get("peer-trusted-ca-file") || undefined,
    clientCertAuth: get("peer-client-cert-auth") === "true",
    allowedCn,
    allowedHostname,
    crlFile: get("peer-crl-file") || undefined,
  };
}

export function serverConfigFromFlags(flags: ParsedFlags): ServerConfig {
  const get = (name: string) => flags.values.get(name) ?? "";
  const [refusal] = flags.refusals;
  if (refusal !== undefined) throw new ConfigError(`error verifying flags, ${refusal}. See 'edgetcd --help'.`);
  const integer = (name: string) => Number(get(name));
  const name = get("name");
  const state = get("initial-cluster-state");
  if (state !== "new" && state !== "existing") {
    throw new ConfigError(`invalid value "${state}" for flag -initial-cluster-state: must be new or existing`);
  }
  const heartbeatIntervalMs = integer("heartbeat-interval");
  const electionTimeoutMs = integer("election-timeout");
  if (heartbeatIntervalMs <= 0 || electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw new ConfigError(
      `--election-timeout[${electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${heartbeatIntervalMs}ms]`,
    );
  }
  const initialAdvertisePeerUrls = get("initial-advertise-peer-urls").split(",");
  const initialCluster = parseInitialCluster(get("initial-cluster"));
  if (initialCluster.size === 0) initialCluster.set(name, initialAdvertisePeerUrls);
  const listenClientUrls = urls("listen-client-urls", get("listen-client-urls"));
  const listenClientHttpUrls = urls("listen-client-http-urls", get("listen-client-http-urls"));
  const listenMetricsUrls = urls("listen-metrics-urls", get("listen-metrics-urls"));
  const logging = logSettings(get);
  let clientTls: ClientTlsSettings | undefined;
  try {
    clientTls = clientTlsFromFlags({
      listenUrls: [...listenClientUrls, ...listenClientHttpUrls, ...listenMetricsUrls],
      get,
      warn: (message) => logging.startWarnings.push(message),
    });
  } catch (error) {
    if (error instanceof ClientTlsError) throw new ConfigError(error.message);
    throw error;
  }
  const authToken = get("auth-token") || "simple";
  try {
    parseAuthTokenOption(authToken);
  } catch (error) {
    throw new ConfigError(`--auth-token ${authToken}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const bcryptCost = integer("bcrypt-cost");
  if (!Number.isInteger(bcryptCost) || bcryptCost < bcryptCostMin || bcryptCost > bcryptCostMax) {
    throw new ConfigError(`--bcrypt-cost must be between ${bcryptCostMin} and ${bcryptCostMax}, got ${get("bcrypt-cost")}`);
  }
  return {
    name,
    authToken,
    authTokenTtlSeconds: integer("auth-token-ttl"),
    bcryptCost,
    clientCertAuth: get("client-cert-auth") === "true",
    dataDir: get("data-dir") || `${name}.edgetcd`,
    walDir: get("wal-dir") || undefined,
    maxWals: integer("max-wals"),
    listenClientUrls,
    listenClientHttpUrls,
    listenMetricsUrls,
    metrics: get("metrics"),
    advertiseClientUrls: get("advertise-client-urls").split(","),
    clientTls,
    listenPeerUrls: urls("listen-peer-urls", get("listen-peer-urls")),
    initialAdvertisePeerUrls,
    peerTls: peerTlsSettings(get, urls("listen-peer-urls", get("listen-peer-urls")), (message) => logging.startWarnings.push(message)),
    initialCluster,
    initialClusterState: state,
    initialClusterToken: get("initial-cluster-token"),
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount: integer("snapshot-count"),
    snapshotCatchUpEntries: integer("experimental-snapshot-catchup-entries"),
    preVote: get("pre-vote") === "true",
    maxRequestBytes: integer("max-request-bytes"),
    maxConcurrentStreams: integer("max-concurrent-streams"),
    grpcKeepaliveMinTimeMs: parseDurationMs(get("grpc-keepalive-min-time")) ?? 5000,
    grpcKeepaliveIntervalMs: parseDurationMs(get("grpc-keepalive-interval")) ?? 7_200_000,
    grpcKeepaliveTimeoutMs: parseDurationMs(get("grpc-keepalive-timeout")) ?? 20_000,
    maxTxnOps: integer("max-txn-ops"),
    quotaBackendBytes: integer("quota-backend-bytes") || defaultQuotaBackendBytes,
    backendBatchIntervalMs: parseDurationMs(get("backend-batch-interval")) || 100,
    backendBatchLimit: integer("backend-batch-limit") || 10_000,
    compactionBatchLimit: integer("experimental-compaction-batch-limit"),
    watchProgressNotifyIntervalMs: parseDurationMs(get("experimental-watch-progress-notify-interval")) ?? 600_000,
    initialCorruptCheck: get("experimental-initial-corrupt-check") === "true",
    corruptCheckIntervalMs: parseDurationMs(get("experimental-corrupt-check-time")) ?? 300_000,
    // etcd 3.4 fixes the interval at 5 minutes (a Go setting its own tests change); edgetcd takes it as a flag.
    leaseCheckpointIntervalMs:
      get("experimental-enable-lease-checkpoint") === "true"
        ? (parseDurationMs(get("experimental-lease-checkpoint-interval")) ?? 300_000)
        : undefined,
    ...logging,
  };
}
