// The `edgetcd` server command, runtime-neutral. A composition root in
// runtime/<name>/main.ts builds the Host and calls runEdgetcd.
import { createClientApi, type ClientApi } from "../api/client-api.ts";
import { CorsFlagError, parseCorsFlag, type CorsPolicy } from "../api/cors.ts";
import type { Logger, PeerNetwork, PeerTlsConfig, Runtime } from "../ports.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import { ConfigError, type LogLevel, type ServerConfig } from "../server/config.ts";
import { serverConfigFromFlags } from "./server-config.ts";
import type { ClientTlsSettings } from "../server/client-tls.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { startServer } from "../server/bootstrap.ts";
import { clusterVersion, serverVersion } from "../version.ts";
import { EtcdMetrics } from "../server/metrics.ts";
import type { Registry } from "prom-client";
import { FlagError, parseFlags } from "./flags.ts";
import { JwtTokens, type JwtKey } from "../auth/jwt-tokens.ts";
import { parseAuthTokenOption, type JwtTokenOptions } from "../auth/token-options.ts";
import { AuthTokens } from "../auth/tokens.ts";
import { bindPeerListeners, type PreboundPeers } from "./prebound-peers.ts";
import { usageText, versionText, type BuildInfo } from "./usage.ts";
import { GatewayUsageError, gatewayUsage, parseGatewayArgs, type GatewayOptions } from "./gateway.ts";
import { SnapshotUsageError, parseSnapshotArgs, restoreSnapshot, snapshotUsage } from "./snapshot.ts";

export interface Host {
  runtime: Runtime;
  /** How members reach each other over their peer URLs. */
  peerNetwork: PeerNetwork;
  /** The peer network with peer TLS (--peer-cert-file …); reads the files, throws if one is missing or bad. */
  peerNetworkWithTls(tls: PeerTlsConfig, logger: Logger): PeerNetwork;
  /** Fault injection in test builds only (EDGETCD_CRASH_POINT, read by the composition root). */
  crashPoints?: CrashPoints;
  /** Throws when an output cannot be opened (a file path in a missing directory). */
  createLogger(settings: { level: LogLevel; outputs: readonly string[] }): Logger;
  /** edgetcd's version, commit and runtime, for --version and the start line. */
  build: BuildInfo;
  /** Test builds only (EDGETCD_TEST_WAL_SEGMENT_BYTES): small WAL segments, so tests see several. */
  walSegmentBytesMax?: number;
  /** Binds a client URL; it serves once given the API (requests before that wait). Bound before the data dir is touched. */
  bindClients(url: URL, options: ClientListenerOptions): Promise<ClientListener & { serve(api: ClientApi): void }>;
  /** The registry /metrics reads (the process's own metrics are in it); etcd's are added to it. */
  metricsRegistry: Registry;
  metricsText(): Promise<string>;
  /** The keys of --auth-token jwt (PEM files: certificates and PKCS#1/SEC1/PKCS#8 keys); throws naming a missing or unusable file. */
  loadJwtKeys(options: Pick<JwtTokenOptions, "signMethod" | "publicKeyPath" | "privateKeyPath">): Promise<{ signKey?: JwtKey; verifyKey: JwtKey }>;
  onShutdownSignal(handler: (signal: string) => void): void;
  /** `edgetcd gateway start`: the TCP proxy (src/cli/gateway.ts); calls `onEndpointDown` when a dial fails. */
  startGateway(options: GatewayOptions, onEndpointDown: (endpoint: string, error: string) => void): Promise<{ port: number; close(): Promise<void> }>;
  write(stream: "stdout" | "stderr", text: string): void;
  exit(code: number): void;
}

async function runGateway(host: Host, args: readonly string[]): Promise<void> {
  let options;
  try {
    options = parseGatewayArgs(args);
  } catch (error) {
    if (!(error instanceof GatewayUsageError)) throw error;
    host.write("stderr", `Error: ${error.message}\n${gatewayUsage}`);
    host.exit(1);
    return;
  }
  if (options === "help") {
    host.write("stdout", gatewayUsage);
    host.exit(0);
    return;
  }
  const logger = host.createLogger({ level: "info", outputs: ["stderr"] });
  let gateway;
  try {
    gateway = await host.startGateway(options, (endpoint, error) => logger.warn("failed to dial endpoint; marked down", { endpoint, error, "retry-delay-ms": options.retryDelayMs }));
  } catch (error) {
    logger.error("failed to listen", { address: `${options.listenHost}:${options.listenPort}`, error: error instanceof Error ? error.message : String(error) });
    host.exit(1);
    return;
  }
  const started = gateway;
  host.onShutdownSignal((signal) => {
    logger.info("received signal; shutting down", { signal });
    void started.close().then(() => host.exit(0));
  });
  logger.info("ready to proxy client requests", {
    address: `${options.listenHost}:${started.port}`,
    endpoints: options.endpoints.map((endpoint) => `${endpoint.host}:${endpoint.port}`),
  });
}

async function runSnapshot(host: Host, args: readonly string[]): Promise<void> {
  let options;
  try {
    options = parseSnapshotArgs(args);
  } catch (error) {
    if (!(error instanceof SnapshotUsageError)) throw error;
    host.write("stderr", `Error: ${error.message}\n${snapshotUsage}`);
    host.exit(1);
    return;
  }
  if (options === "help") {
    host.write("stdout", snapshotUsage);
    host.exit(0);
    return;
  }
  const logger = host.createLogger({ level: "info", outputs: ["stderr"] });
  try {
    await restoreSnapshot(host.runtime, logger, options);
  } catch (error) {
    host.write("stderr", `Error: ${error instanceof Error ? error.message : String(error)}\n`);
    host.exit(1);
    return;
  }
  host.exit(0);
}

export interface ClientListener {
  port: number;
  /** Graceful stop, first step: no new connections, no new streams on open ones (HTTP/2 GOAWAY); open requests go on. */
  stopAccepting?(): void;
  /** Closes every connection at once. */
  close(): Promise<void>;
}

/** What one client listener serves, and etcd's transport flags it holds connections to. */
export interface ClientListenerOptions {
  http: boolean;
  grpc: boolean;
  /** A --listen-metrics-urls listener: /metrics and /health only. */
  metricsOnly?: boolean;
  transport: Pick<ServerConfig, "maxConcurrentStreams" | "grpcKeepaliveMinTimeMs" | "grpcKeepaliveIntervalMs" | "grpcKeepaliveTimeoutMs">;
  /** Serve TLS with these settings (an https URL); undefined for plain text. */
  tls?: ClientTlsSettings;
}

export async function runEdgetcd(host: Host, argv: readonly string[], env: Record<string, string | undefined>): Promise<void> {
  // etcd's subcommands come first on the command line (etcdmain.Main).
  if (argv[0] === "gateway") return await runGateway(host, argv.slice(1));
  if (argv[0] === "snapshot") return await runSnapshot(host, argv.slice(1));
  if (argv[0] === "grpc-proxy") {
    host.write("stderr", "edgetcd: grpc-proxy is not supported (etcd's gRPC proxy is not built); point clients at the members, or use `edgetcd gateway start`\n");
    host.exit(2);
    return;
  }
  let flags;
  try {
    flags = parseFlags(argv, env);
  } catch (error) {
    if (error instanceof FlagError) {
      host.write("stderr", `${error.message}\n${usage()}`);
      host.exit(2);
      return;
    }
    throw error;
  }
  if (flags.rest.length > 0) {
    // etcd refuses words it does not know rather than start without them.
    host.write("stderr", `edgetcd: error verifying flags, '${flags.rest[0]}' is not a valid flag. See 'edgetcd --help'.\n`);
    host.exit(1);
    return;
  }
  if (flags.values.get("help") === "true" || flags.values.get("h") === "true") {
    host.write("stdout", usage());
    host.exit(0);
    return;
  }
  if (flags.values.get("version") === "true") {
    host.write("stdout", versionText(host.build, { serverVersion, clusterVersion }));
    host.exit(0);
    return;
  }
  let config;
  let cors: CorsPolicy;
  try {
    config = serverConfigFromFlags(flags);
    if (host.walSegmentBytesMax !== undefined) config.walSegmentBytesMax = host.walSegmentBytesMax;
    cors = parseCorsFlag(flags.values.get("cors") ?? "*");
  } catch (error) {
    if (error instanceof ConfigError || error instanceof CorsFlagError) {
      host.write("stderr", `edgetcd: ${error.message}\n`);
      host.exit(1);
      return;
    }
    throw error;
  }
  let logger: Logger;
  try {
    logger = host.createLogger({ level: config.logLevel, outputs: config.logOutputs });
  } catch (error) {
    host.write("stderr", `edgetcd: cannot open --log-outputs ${config.logOutputs.join(",")}: ${error instanceof Error ? error.message : String(error)}\n`);
    host.exit(1);
    return;
  }
  for (const warning of [...config.startWarnings, ...flags.warnings]) logger.warn(warning);
  logger.info("starting edgetcd", {
    name: config.name,
    "data-dir": config.dataDir,
    "wal-dir": config.walDir ?? "",
    version: host.build.version,
    "etcd-api-version": serverVersion,
    "git-sha": host.build.gitCommit,
    runtime: host.build.runtime,
  });

  // Every listener is bound before the data dir is touched, as etcd does: a
  // port in use fails the start at once and creates nothing.
  const listeners: Array<ClientListener & { serve(api: ClientApi): void }> = [];
  const separateHttp = config.listenClientHttpUrls.length > 0;
  let peers: PreboundPeers;
  // etcd serves TLS on https URLs only; an http URL stays plain text whatever the TLS flags.
  const tlsFor = (url: URL) => (url.protocol === "https:" && config.clientTls !== undefined ? { tls: config.clientTls } : {});
  try {
    for (const url of config.listenClientUrls) {
      listeners.push(await host.bindClients(url, { grpc: true, http: !separateHttp, transport: config, ...tlsFor(url) }));
    }
    for (const url of config.listenClientHttpUrls) {
      listeners.push(await host.bindClients(url, { grpc: false, http: true, transport: config, ...tlsFor(url) }));
    }
    for (const url of config.listenMetricsUrls) {
      listeners.push(await host.bindClients(url, { grpc: false, http: true, metricsOnly: true, transport: config, ...tlsFor(url) }));
    }
    // Every member serves its peer URLs, a single one too (a member added later reaches it there).
    const peerNetwork = config.peerTls === undefined ? host.peerNetwork : host.peerNetworkWithTls(config.peerTls, logger);
    peers = await bindPeerListeners(peerNetwork, config.listenPeerUrls);
  } catch (error) {
    logger.error("failed to listen", { error: error instanceof Error ? error.message : String(error) });
    await Promise.all(listeners.map((listener) => listener.close()));
    host.exit(1);
    return;
  }

  let server: EtcdServer;
  const metrics = new EtcdMetrics(host.metricsRegistry, { serverVersion, clusterVersion });
  try {
    const tokens = await authTokensOf(host, config, logger);
    server = await startServer(host.runtime, config, logger, {
      ...(tokens === undefined ? {} : { tokens }),
      metrics,
      peerNetwork: peers.network,
      ...(host.crashPoints === undefined ? {} : { crashPoints: host.crashPoints }),
      // Fatal means exit, as in etcd: no cleanup that could hang on a broken
      // disk, no "ready" after it; the kernel drops the data-dir lock.
      onFatal: () => host.exit(1),
    });
  } catch (error) {
    logger.error("failed to start", { error: error instanceof Error ? error.message : String(error) });
    host.exit(1);
    return;
  }
  await peers.closeUntaken();
  if (config.initialCorruptCheck && server.corruptionCheck !== undefined) {
    // Before clients are served, as etcd's: data that differ from the peers' are not served.
    try {
      await server.corruptionCheck.initial();
    } catch (error) {
      logger.error("failed to start", { error: error instanceof Error ? error.message : String(error) });
      await server.stop().catch(() => undefined);
      host.exit(1);
      return;
    }
  }
  metrics.attach(server);
  const metricsText = () => {
    metrics.refresh();
    return host.metricsText();
  };
  const api = createClientApi(server, { metricsText, cors, metricsRegistry: host.metricsRegistry, productVersion: host.build.version });
  for (const listener of listeners) listener.serve(api);
  // The handlers are in place before "ready" is said: a supervisor that
  // signals as soon as it reads it must get a graceful stop, not the default
  // action (death without a word).
  let stopping = false;
  const shutDown = async (exitCode: number, graceful: boolean) => {
    if (stopping) return;
    stopping = true;
    if (graceful) {
      // etcd's order: no new clients, then the leader hands over (etcd's
      // Stop → TransferLeadership), then what was accepted is answered.
      for (const listener of listeners) listener.stopAccepting?.();
      await server.transferLeadershipForStop();
      await server.waitForInFlight();
    }
    await Promise.all(listeners.map((listener) => listener.close()));
    await server.stop();
    host.exit(exitCode);
  };
  let firstSignalMs: number | undefined;
  host.onShutdownSignal(async (signal) => {
    const nowMs = host.runtime.clock.nowMs();
    // Ctrl-C under `npm start` arrives twice within milliseconds: from the
    // terminal to the whole process group, and forwarded by npm. Only a later
    // one is the operator asking again.
    if (firstSignalMs !== undefined && nowMs - firstSignalMs < repeatedSignalWindowMs) return;
    firstSignalMs ??= nowMs;
    if (stopping) {
      // An operator who signals again does not want to wait for the handover.
      logger.warn("received another signal while stopping; exiting now", { signal });
      host.exit(exitCodeAfterSignal[signal] ?? 1);
      return;
    }
    logger.info("received signal; shutting down", { signal });
    await shutDown(0, true);
  });
  server.onHalt = (reason, exitCode) => {
    logger.info("stopping", { reason });
    // A storage failure or this member's removal: nothing to hand over or wait for.
    void shutDown(exitCode, false);
  };
  // etcd's order: a cluster member is ready once its attributes are
  // published through Raft (its ReadyNotify). Clients are served meanwhile.
  await server.published;
  if (stopping) return;
  // etcd says this once the cluster version is known to the member; here it
  // is fixed (src/version.ts), known once the member has caught up to its own
  // publish. Tools wait for the line (etcd's e2e waits for a joined member's).
  logger.info("enabled capabilities for version", { "cluster-version": clusterVersion.split(".").slice(0, 2).join(".") });
  logger.info("ready to serve client requests", {
    "listen-client-urls": config.listenClientUrls.map(String),
    "member-id": server.identity.memberId.toString(16),
    "cluster-id": server.identity.clusterId.toString(16),
  });
}

/** A signal this soon after the first is the same request delivered twice, not a second one. */
const repeatedSignalWindowMs = 500;

/** The shell's convention for a process ended by a signal: 128 + its number. */
const exitCodeAfterSignal: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

function usage(): string {
  return usageText();
}

/**
 * --auth-token jwt,…: keys read and checked against each other before the
 * member starts, so a bad key stops the start rather than every login.
 * Undefined for simple tokens (the server's default).
 */
async function authTokensOf(host: Host, config: ServerConfig, logger: Logger): Promise<AuthTokens | undefined> {
  const options = parseAuthTokenOption(config.authToken);
  if (options.kind === "simple") return undefined;
  for (const name of options.unknownOptions) logger.warn("unknown JWT option", { option: name });
  const keys = await host.loadJwtKeys(options);
  const jwt = await JwtTokens.start({
    signMethod: options.signMethod,
    ...(keys.signKey === undefined ? {} : { signKey: keys.signKey }),
    verifyKey: keys.verifyKey,
    ttlMs: options.ttlMs,
    clock: host.runtime.clock,
  });
  return new AuthTokens({ kind: "jwt", jwt });
}
