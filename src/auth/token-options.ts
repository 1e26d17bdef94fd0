// --auth-token as etcd 3.4 reads it (auth/store.go decomposeOpts, auth/options.go):
//   simple
//   jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>,ttl=<Go duration, 5m>
// etcd answers every bad spec with "auth: invalid auth options" after logging
// the reason; here the message starts with etcd's text and says the reason too,
// since it stops the member at start.

/** The methods etcd 3.4 can use: golang-jwt's, less "none" and EdDSA, which its key loading refuses. */
export const jwtSignMethods = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"] as const;
export type JwtSignMethod = (typeof jwtSignMethods)[number];

/** etcd's DefaultTTL for jwt tokens. */
export const jwtTtlMsDefault = 5 * 60 * 1000;

const knownJwtOptions = ["sign-method", "pub-key", "priv-key", "ttl"];

export interface JwtTokenOptions {
  kind: "jwt";
  signMethod: JwtSignMethod;
  publicKeyPath?: string;
  /** For HS256/384/512 the file's bytes are the shared secret, as in etcd. */
  privateKeyPath?: string;
  ttlMs: number;
  /** Options etcd does not know: it warns about them and goes on. */
  unknownOptions: string[];
}

export type AuthTokenOptions = { kind: "simple" } | JwtTokenOptions;

const invalidOptions = "auth: invalid auth options";

export function parseAuthTokenOption(spec: string): AuthTokenOptions {
  const [type, ...pairs] = spec.split(",");
  const options = new Map<string, string>();
  for (const pair of pairs) {
    const parts = pair.split("=");
    if (parts.length !== 2) throw new Error(`${invalidOptions}: --auth-token option ${JSON.stringify(pair)} is not name=value`);
    const [name, value] = parts as [string, string];
    if (options.has(name)) throw new Error(`${invalidOptions}: --auth-token option ${JSON.stringify(name)} is given twice`);
    options.set(name, value);
  }
  // etcd ignores the options of a simple token.
  if (type === "simple") return { kind: "simple" };
  if (type === "jwt") return parseJwtOptions(options);
  throw new Error(`${invalidOptions}: unknown token type ${JSON.stringify(type)} (--auth-token is "simple" or "jwt,…")`);
}

function parseJwtOptions(options: Map<string, string>): JwtTokenOptions {
  const signMethod = options.get("sign-method") ?? "";
  if (!(jwtSignMethods as readonly string[]).includes(signMethod)) {
    throw new Error(`auth: invalid auth signature method ${JSON.stringify(signMethod)} (--auth-token sign-method is one of ${jwtSignMethods.join(", ")})`);
  }
  const ttl = options.get("ttl") ?? "";
  const ttlMs = ttl === "" ? jwtTtlMsDefault : parseGoDurationMs(ttl);
  // etcd takes a zero or negative ttl and then refuses every token it signs.
  if (ttlMs === undefined || !(ttlMs > 0)) throw new Error(`${invalidOptions}: --auth-token ttl ${JSON.stringify(ttl)} is not a positive duration such as 5m, 30s or 1h30m`);
  const publicKeyPath = nonEmpty(options.get("pub-key"));
  const privateKeyPath = nonEmpty(options.get("priv-key"));
  const isHmac = signMethod.startsWith("HS");
  if (isHmac ? privateKeyPath === undefined : privateKeyPath === undefined && publicKeyPath === undefined) {
    throw new Error(`auth: missing key data (--auth-token needs ${isHmac ? "priv-key, the shared secret," : "pub-key, priv-key or both"} for ${signMethod})`);
  }
  return {
    kind: "jwt",
    signMethod: signMethod as JwtSignMethod,
    ...(publicKeyPath === undefined ? {} : { publicKeyPath }),
    ...(privateKeyPath === undefined ? {} : { privateKeyPath }),
    ttlMs,
    unknownOptions: [...options.keys()].filter((name) => !knownJwtOptions.includes(name)),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

const goDurationUnitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration ("300ms", "1.5h", "1h30m", "-5m", "0"), in milliseconds; undefined if malformed. */
export function parseGoDurationMs(text: string): number | undefined {
  const sign = text.startsWith("-") ? -1 : 1;
  let rest = text.replace(/^[-+]/, "");
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let totalMs = 0;
  while (rest !== "") {
    const match = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    if (match === null || (match[1] === "" && (match[2] ?? "") === "")) return undefined;
    totalMs += Number(`${match[1] || "0"}.${match[2] || "0"}`) * (goDurationUnitMs[match[3] as string] as number);
    rest = rest.slice(match[0].length);
  }
  return sign * totalMs;
}
