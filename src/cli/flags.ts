// etcd's command line, flag for flag. Parsing follows Go's `flag` package as
// etcd uses it: `-name`, `--name`, `--name=value`, `--name value` (not for
// booleans), booleans as `--flag` or `--flag=false`; an unknown flag fails with
// etcd's message and exit code 2. Every flag also reads `ETCD_<NAME>` from the
// environment (dashes become underscores); a command-line flag wins.

export type FlagKind = "string" | "int" | "bool" | "duration";

export interface FlagDefinition {
  name: string;
  kind: FlagKind;
  /** etcd's default, as etcd prints it. */
  defaultValue: string;
  /** False: accepted for compatibility, warned about, and ignored. */
  supported: boolean;
}

function flag(name: string, kind: FlagKind, defaultValue: string, supported = true): FlagDefinition {
  return { name, kind, defaultValue, supported };
}

/** etcd 3.4's server flags (plus 3.5's listen-client-http-urls). */
export const flagDefinitions: readonly FlagDefinition[] = [
  flag("config-file", "string", "", false),
  flag("name", "string", "default"),
  flag("data-dir", "string", ""),
  flag("wal-dir", "string", ""),
  flag("snapshot-count", "int", "100000"),
  flag("heartbeat-interval", "int", "100"),
  flag("election-timeout", "int", "1000"),
  flag("initial-election-tick-advance", "bool", "true"),
  flag("listen-peer-urls", "string", "http://localhost:2380"),
  flag("listen-client-urls", "string", "http://localhost:2379"),
  flag("listen-client-http-urls", "string", ""),
  flag("max-snapshots", "int", "5"),
  flag("max-wals", "int", "5"),
  flag("quota-backend-bytes", "int", "0"),
  flag("backend-batch-interval", "duration", "0"),
  flag("backend-batch-limit", "int", "0"),
  flag("max-txn-ops", "int", "128"),
  flag("max-request-bytes", "int", "1572864"),
  // Held to at most 1000 streams per connection by the listener (runtime/node/transport-limits.ts).
  flag("max-concurrent-streams", "int", "4294967295"),
  flag("grpc-keepalive-min-time", "duration", "5s"),
  flag("grpc-keepalive-interval", "duration", "2h"),
  flag("grpc-keepalive-timeout", "duration", "20s"),
  flag("initial-advertise-peer-urls", "string", "http://localhost:2380"),
  flag("initial-cluster", "string", ""),
  flag("initial-cluster-state", "string", "new"),
  flag("initial-cluster-token", "string", "etcd-cluster"),
  flag("advertise-client-urls", "string", "http://localhost:2379"),
  flag("discovery", "string", "", false),
  flag("discovery-fallback", "string", "proxy", false),
  flag("discovery-proxy", "string", "", false),
  flag("discovery-srv", "string", "", false),
  flag("discovery-srv-name", "string", "", false),
  flag("strict-reconfig-check", "bool", "true"),
  flag("pre-vote", "bool", "false"),
  flag("auto-compaction-retention", "string", "0", false),
  flag("auto-compaction-mode", "string", "periodic", false),
  flag("enable-v2", "bool", "false", false),
  flag("cert-file", "string", "", false),
  flag("key-file", "string", "", false),
  flag("client-cert-auth", "bool", "false", false),
  flag("client-crl-file", "string", "", false),
  flag("client-cert-allowed-hostname", "string", "", false),
  flag("trusted-ca-file", "string", "", false),
  flag("auto-tls", "bool", "false", false),
  flag("peer-cert-file", "string", "", false),
  flag("peer-key-file", "string", "", false),
  flag("peer-client-cert-auth", "bool", "false", false),
  flag("peer-trusted-ca-file", "string", "", false),
  flag("peer-cert-allowed-cn", "string", "", false),
  flag("peer-cert-allowed-hostname", "string", "", false),
  flag("peer-auto-tls", "bool", "false", false),
  flag("peer-crl-file", "string", "", false),
  flag("cipher-suites", "string", "", false),
  flag("cors", "string", "*"),
  flag("host-whitelist", "string", "*", false),
  flag("auth-token", "string", "simple", false),
  flag("bcrypt-cost", "int", "10", false),
  flag("auth-token-ttl", "int", "300", false),
  flag("enable-pprof", "bool", "false", false),
  flag("metrics", "string", "basic"),
  flag("listen-metrics-urls", "string", "", false),
  flag("logger", "string", "capnslog"),
  flag("log-outputs", "string", "default"),
  flag("log-level", "string", "info"),
  flag("proxy", "string", "off", false),
  flag("proxy-failure-wait", "int", "5000", false),
  flag("proxy-refresh-interval", "int", "30000", false),
  flag("proxy-dial-timeout", "int", "1000", false),
  flag("proxy-write-timeout", "int", "5000", false),
  flag("proxy-read-timeout", "int", "0", false),
  flag("experimental-initial-corrupt-check", "bool", "false", false),
  flag("experimental-corrupt-check-time", "duration", "0s", false),
  flag("experimental-enable-v2v3", "string", "", false),
  flag("experimental-backend-bbolt-freelist-type", "string", "array", false),
  flag("experimental-enable-lease-checkpoint", "bool", "false"),
  flag("experimental-lease-checkpoint-interval", "duration", "5m"),
  flag("experimental-compaction-batch-limit", "int", "1000"),
  // etcd 3.5.14's: entries kept in memory behind a snapshot for slow followers.
  flag("experimental-snapshot-catchup-entries", "int", "5000"),
  flag("experimental-peer-skip-client-san-verification", "bool", "false", false),
  flag("experimental-watch-progress-notify-interval", "duration", "10m", false),
  flag("experimental-warning-apply-duration", "duration", "100ms", false),
  flag("force-new-cluster", "bool", "false", false),
  flag("debug", "bool", "false"),
  flag("log-package-levels", "string", "", false),
  flag("version", "bool", "false"),
  flag("help", "bool", "false"),
  flag("h", "bool", "false"),
];

const definitionsByName = new Map(flagDefinitions.map((definition) => [definition.name, definition]));

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

export interface ParsedFlags {
  /** Every flag's value as a string (defaults filled in). */
  values: Map<string, string>;
  /** Names set explicitly, by flag or environment. */
  explicit: Set<string>;
  warnings: string[];
  /** Positional arguments after the flags. */
  rest: string[];
}

/** Parses argv (without the program name) and the environment the way etcd does. */
export function parseFlags(argv: readonly string[], env: Record<string, string | undefined>): ParsedFlags {
  const values = new Map<string, string>();
  const explicit = new Set<string>();
  const warnings: string[] = [];
  let index = 0;
  for (; index < argv.length; index++) {
    const argument = argv[index] as string;
    if (argument === "--") {
      index++;
      break;
    }
    if (!argument.startsWith("-") || argument === "-") break;
    const body = argument.replace(/^--?/, "");
    const equals = body.indexOf("=");
    const name = equals >= 0 ? body.slice(0, equals) : body;
    const definition = definitionsByName.get(name);
    if (definition === undefined) throw new FlagError(`flag provided but not defined: -${name}`);
    let value: string;
    if (equals >= 0) value = body.slice(equals + 1);
    else if (definition.kind === "bool") value = "true";
    else {
      const next = argv[index + 1];
      if (next === undefined) throw new FlagError(`flag needs an argument: -${name}`);
      value = next;
      index++;
    }
    values.set(name, checkValue(definition, value, `invalid value "${value}" for flag -${name}`));
    explicit.add(name);
  }
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith("ETCD_") || value === undefined) continue;
    const name = variable.slice("ETCD_".length).toLowerCase().replaceAll("_", "-");
    const definition = definitionsByName.get(name);
    if (definition === undefined) {
      warnings.push(`unrecognized environment variable ${variable}=${value}`);
      continue;
    }
    if (explicit.has(name)) {
      warnings.push(`recognized environment variable ${variable}, but unused: shadowed by corresponding flag`);
      continue;
    }
    values.set(name, checkValue(definition, value, `invalid value "${value}" for ${variable}`));
    explicit.add(name);
  }
  for (const definition of flagDefinitions) {
    if (!values.has(definition.name)) values.set(definition.name, definition.defaultValue);
    else if (!definition.supported && explicit.has(definition.name) && values.get(definition.name) !== definition.defaultValue) {
      warnings.push(`flag --${definition.name} is accepted for etcd compatibility but not supported by edgetcd yet; ignored`);
    }
  }
  return { values, explicit, warnings, rest: argv.slice(index) };
}

function checkValue(definition: FlagDefinition, value: string, message: string): string {
  switch (definition.kind) {
    case "bool":
      if (!/^(1|0|t|f|true|false|TRUE|FALSE|True|False)$/.test(value)) throw new FlagError(message);
      return /^(1|t|true|TRUE|True)$/.test(value) ? "true" : "false";
    case "int":
      if (!/^-?\d+$/.test(value)) throw new FlagError(message);
      return value;
    case "duration":
      if (parseDurationMs(value) === undefined) throw new FlagError(message);
      return value;
    case "string":
      return value;
  }
}

/** Go duration syntax ("100ms", "1m30s", "0") to milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  if (text === "0" || text === "") return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (match === null) return undefined;
    total += Number(match[1]) * (units[match[2] as string] as number);
    rest = rest.slice(match[0].length);
  }
  return total;
}
