// `edgetcd gateway start`: etcd's L4 gateway (etcdmain/gateway.go), a TCP
// proxy in front of a cluster's client URLs. Each connection goes to one
// endpoint picked at random among those not marked down; an endpoint that
// refuses a dial is marked down for --retry-delay and the next is tried.
// Flags may come before or after `start`, as etcd's command line takes them.
// DNS discovery (--discovery-srv …) is not built and is refused.
import { parseDurationMs } from "./flags.ts";

export interface GatewayOptions {
  endpoints: Array<{ host: string; port: number }>;
  listenHost: string;
  listenPort: number;
  retryDelayMs: number;
}

export class GatewayUsageError extends Error {}

export const gatewayUsage = `start the gateway

Usage:
  edgetcd gateway start [flags]

Flags:
      --endpoints strings       comma separated etcd cluster endpoints (default [127.0.0.1:2379])
  -h, --help                    help for start
      --listen-addr string      listen address (default "127.0.0.1:23790")
      --retry-delay duration    duration of delay before retrying failed endpoints (default 1m0s)
`;

const refusedFlags = new Set(["discovery-srv", "discovery-srv-name", "insecure-discovery", "trusted-ca-file"]);

/** `host:port` or `[v6]:port`; undefined when it is not one. */
function hostPort(text: string): { host: string; port: number } | undefined {
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  return match === null || port > 65535 ? undefined : { host: match[1] as string, port };
}

/** An endpoint, with any scheme stripped as etcd's gateway strips it. */
function endpointOf(text: string): { host: string; port: number } {
  const endpoint = hostPort(text.replace(/^[a-z][a-z0-9+.-]*:\/\//i, ""));
  if (endpoint === undefined || endpoint.host === "") throw new GatewayUsageError(`error parsing endpoint "${text}"`);
  return endpoint;
}

/** The arguments after `gateway`: "help" for a help request, else the options. */
export function parseGatewayArgs(args: readonly string[]): GatewayOptions | "help" {
  let command: string | undefined;
  const values = new Map<string, string>();
  for (let index = 0; index < args.length; index++) {
    const argument = args[index] as string;
    if (argument === "-h" || argument === "--help") return "help";
    if (!argument.startsWith("-")) {
      if (command !== undefined) throw new GatewayUsageError(`unexpected argument "${argument}"`);
      command = argument;
      continue;
    }
    const body = argument.replace(/^--?/, "");
    const equals = body.indexOf("=");
    const name = equals >= 0 ? body.slice(0, equals) : body;
    if (refusedFlags.has(name)) throw new GatewayUsageError(`--${name}: DNS discovery is not supported by edgetcd's gateway; list the members with --endpoints`);
    if (!["endpoints", "listen-addr", "retry-delay"].includes(name)) throw new GatewayUsageError(`unknown flag: --${name}`);
    const value = equals >= 0 ? body.slice(equals + 1) : args[++index];
    if (value === undefined) throw new GatewayUsageError(`flag needs an argument: --${name}`);
    values.set(name, value);
  }
  if (command === undefined) return "help";
  if (command !== "start") throw new GatewayUsageError(`unknown command "${command}" for "edgetcd gateway"`);
  const endpoints = (values.get("endpoints") ?? "127.0.0.1:2379")
    .split(",")
    .filter((endpoint) => endpoint !== "")
    .map(endpointOf);
  if (endpoints.length === 0) throw new GatewayUsageError("no endpoints given");
  const listenText = values.get("listen-addr") ?? "127.0.0.1:23790";
  const listen = hostPort(listenText);
  if (listen === undefined) throw new GatewayUsageError(`failed to validate listen address: ${listenText}`);
  const retryText = values.get("retry-delay") ?? "1m0s";
  const retryDelayMs = parseDurationMs(retryText);
  if (retryDelayMs === undefined) throw new GatewayUsageError(`invalid argument "${retryText}" for "--retry-delay" flag: time: invalid duration "${retryText}"`);
  return { endpoints, listenHost: listen.host === "" ? "0.0.0.0" : listen.host, listenPort: listen.port, retryDelayMs };
}
