// The pieces of a Host that Node and Bun share (both implement node:http2,
// node:net and process), parameterised by the runtime's ports.
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Host } from "../../src/cli/edgetcd.ts";
import type { Logger, Runtime } from "../../src/ports.ts";
import { serveClientApi } from "./client-server.ts";
import { nodePeerNetwork, nodePeerNetworkDialing } from "./peer-network.ts";
import { crashPointsFromEnv } from "../faults/crash-points.ts";
import { runtimeWithTestFaults } from "../faults/mutants.ts";
import { peerDialerFromEnv } from "../faults/peer-dial.ts";

export function createHost(runtime: Runtime): Host {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Test builds: EDGETCD_TEST_PEER_DIAL=<origin map> (absent in production: every peer at its own URL).
  const peerDialer = peerDialerFromEnv(process.env);
  return {
    // Test builds: EDGETCD_TEST_DISK=lose-unsynced, EDGETCD_MUTANT=<name> (absent in production: the runtime as is).
    runtime: runtimeWithTestFaults(runtime, process.env),
    peerNetwork: peerDialer === undefined ? nodePeerNetwork : nodePeerNetworkDialing(peerDialer),
    // Test builds: EDGETCD_CRASH_POINT=<name>:<n> (absent in production).
    crashPoints: crashPointsFromEnv(process.env),
    createLogger: (level) => createLogger(level),
    serveClients: (api, url, options) => serveClientApi(api, url, options),
    metricsText: () => registry.metrics(),
    onShutdownSignal(handler) {
      for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => handler(signal));
    },
    write: (stream, text) => void process[stream].write(text),
    exit: (code) => process.exit(code),
  };
}

/** JSON lines shaped like etcd's zap output: level, ts, msg, then fields. */
export function createLogger(level: string): Logger {
  const logger = pino({
    level: level === "warn" || level === "error" || level === "debug" ? level : "info",
    messageKey: "msg",
    base: undefined,
    timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
  });
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
  };
}
