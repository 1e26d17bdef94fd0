// The pieces of a Host that Node and Bun share (both implement node:http2,
// node:net and process), parameterised by the runtime's ports.
import { openSync } from "node:fs";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Host } from "../../src/cli/edgetcd.ts";
import type { Logger, Runtime } from "../../src/ports.ts";
import type { LogLevel } from "../../src/server/config.ts";
import { buildInfo } from "./build-info.ts";
import { bindClientApi } from "./client-server.ts";
import { startTcpGateway } from "./tcp-gateway.ts";
import { nodePeerNetwork, nodePeerNetworkDialing, nodePeerNetworkWithTls } from "./peer-network.ts";
import { loadPeerTls } from "./peer-tls.ts";
import { loadJwtKeys } from "./jwt-keys.ts";
import { LogLimiter } from "../../src/log-limiter.ts";
import type { CrashPoints } from "../../src/storage/crash-points.ts";
import type { PeerDialer } from "./peer-network.ts";

/**
 * What a test composition root (runtime/test/) adds: a runtime wrapped with
 * faults or a mutant, peers dialled through a fault proxy, crash points, small
 * WAL segments. The production roots pass none.
 */
export interface HostTestFaults {
  runtime?: Runtime;
  peerDialer?: PeerDialer;
  crashPoints?: CrashPoints;
  walSegmentBytesMax?: number;
}

/** The environment variables only a test root (runtime/test/) reads. */
export const testOnlyVariables = ["EDGETCD_MUTANT", "EDGETCD_TEST_DISK", "EDGETCD_CRASH_POINT", "EDGETCD_TEST_PEER_DIAL", "EDGETCD_TEST_WAL_SEGMENT_BYTES"] as const;

/**
 * A production root exits (status 2) when one of them is set: asked for a
 * fault or a mutant it does not have, it says so rather than run as if it
 * had it. The test harness starts the test root instead (EDGETCD_ROOT=test).
 */
export function refuseTestVariables(env: Record<string, string | undefined>): void {
  const set = testOnlyVariables.filter((name) => env[name] !== undefined && env[name] !== "");
  if (set.length === 0) return;
  process.stderr.write(`edgetcd: ${set.join(", ")} ${set.length === 1 ? "is" : "are"} read only by the test build (EDGETCD_ROOT=test in a checkout); unset ${set.length === 1 ? "it" : "them"} to run this server\n`);
  process.exit(2);
}

export function createHost(runtime: Runtime, faults: HostTestFaults = {}): Host {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const { peerDialer } = faults;
  return {
    runtime: faults.runtime ?? runtime,
    peerNetwork: peerDialer === undefined ? nodePeerNetwork : nodePeerNetworkDialing(peerDialer),
    peerNetworkWithTls(tls, logger) {
      // Anyone who reaches the peer port can fail a handshake: one line a second per kind.
      const refusals = new LogLimiter(() => performance.now());
      return nodePeerNetworkWithTls(loadPeerTls(tls), peerDialer, {
        onRefused: (reason, remoteAddress) => refusals.warn(logger, "rejected peer connection", { error: reason, "remote-addr": remoteAddress }),
        onRefusedByPeer: (reason, remoteAddress) =>
          refusals.warn(logger, "peer rejected this member's certificate", { error: reason, "remote-addr": remoteAddress }),
      });
    },
    ...(faults.crashPoints === undefined ? {} : { crashPoints: faults.crashPoints }),
    createLogger: (settings) => createLogger(settings),
    build: buildInfo(),
    ...(faults.walSegmentBytesMax === undefined ? {} : { walSegmentBytesMax: faults.walSegmentBytesMax }),
    bindClients: (url, options) => bindClientApi(url, options),
    loadJwtKeys: (options) => loadJwtKeys(options),
    metricsRegistry: registry,
    metricsText: () => registry.metrics(),
    startGateway: (options, onEndpointDown) => startTcpGateway(options, onEndpointDown),
    onShutdownSignal(handler) {
      for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => handler(signal));
    },
    write: (stream, text) => void process[stream].write(text),
    exit: (code) => process.exit(code),
  };
}

/** etcd's levels as pino's: zap's panic and fatal both log only what stops the process. */
const pinoLevels: Record<LogLevel, pino.Level> = { debug: "debug", info: "info", warn: "warn", error: "error", panic: "fatal", fatal: "fatal" };

/**
 * JSON lines shaped like etcd's zap output: level, ts, msg, then fields. To
 * stderr by default, as etcd's. Writes are synchronous, so the line that
 * explains an exit is on disk or in the pipe before the process ends.
 */
export function createLogger(settings: { level: LogLevel; outputs: readonly string[] } = { level: "info", outputs: ["stderr"] }): Logger {
  const level = pinoLevels[settings.level];
  const streams = settings.outputs.map((output) => ({ level, stream: destination(output) }));
  const logger = pino(
    {
      level,
      messageKey: "msg",
      base: undefined,
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    streams.length === 1 ? (streams[0] as { stream: pino.DestinationStream }).stream : pino.multistream(streams),
  );
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
  };
}

/** "stderr", "stdout" or a file path, appended to (created 0600 if missing: logs may name keys). */
function destination(output: string): pino.DestinationStream {
  if (output === "stderr") return pino.destination({ dest: 2, sync: true });
  if (output === "stdout") return pino.destination({ dest: 1, sync: true });
  // Opened here, synchronously, so a path that cannot be written stops the start.
  return pino.destination({ dest: openSync(output, "a", 0o600), sync: true });
}
