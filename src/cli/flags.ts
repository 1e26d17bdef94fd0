// etcd's command line, flag for flag. Parsing follows Go's `flag` package as
// etcd uses it: `-name`, `--name`, `--name=value`, `--name value` (not for
// booleans), booleans as `--flag` or `--flag=false`; an unknown flag fails with
// etcd's message and exit code 2. Every flag also reads `ETCD_<NAME>` from the
// environment (dashes become underscores); a command-line flag wins.

import { flagDefinitions, type FlagDefinition } from "./flag-table.ts";

export { flagDefinitions, flagGroups, type FlagDefinition, type FlagGroup, type FlagKind, type FlagStatus } from "./flag-table.ts";

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
  /** Warned flags that were set, and environment variables not used: log each at start. */
  warnings: string[];
  /** Refused flags set to something other than their default: the start must stop (see flag-table.ts). */
  refusals: string[];
  /** Positional arguments after the flags. */
  rest: string[];
}

/** Parses argv (without the program name) and the environment the way etcd does. */
export function parseFlags(argv: readonly string[], env: Record<string, string | undefined>): ParsedFlags {
  const values = new Map<string, string>();
  const explicit = new Set<string>();
  const warnings: string[] = [];
  const refusals: string[] = [];
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
    if (!values.has(definition.name)) {
      values.set(definition.name, definition.defaultValue);
      continue;
    }
    if (!explicit.has(definition.name)) continue;
    const { status } = definition;
    // Setting a refused flag to its default asks for nothing edgetcd lacks
    // (`--client-cert-auth=false`, `--cert-file=''` from a generated unit file).
    if (status.kind === "refused" && values.get(definition.name) !== definition.defaultValue) {
      refusals.push(`--${definition.name} is not supported by edgetcd: ${status.reason}`);
    } else if (status.kind === "warned") {
      warnings.push(`flag --${definition.name} is accepted for etcd compatibility and ignored: ${status.reason}`);
    }
  }
  return { values, explicit, warnings, refusals, rest: argv.slice(index) };
}

function checkValue(definition: FlagDefinition, value: string, message: string): string {
  switch (definition.kind) {
    case "bool":
      if (!/^(1|0|t|f|true|false|TRUE|FALSE|True|False)$/.test(value)) throw new FlagError(message);
      return /^(1|t|true|TRUE|True)$/.test(value) ? "true" : "false";
    case "int":
      if (!/^-?\d+$/.test(value)) throw new FlagError(message);
      return value;
    case "uint":
      // Go's flag.Uint: no sign, so `--max-wals -1` is a parse error.
      if (!/^\d+$/.test(value)) throw new FlagError(`${message}: parse error`);
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
