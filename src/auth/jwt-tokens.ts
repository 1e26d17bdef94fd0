// etcd's jwt tokens (auth/jwt.go, etcd 3.4): claims {username, revision, exp},
// signed with --auth-token's key and method. Nothing is registered: any member
// holding the key verifies a token, and its revision lets the auth store refuse
// one older than the last auth change ("revision of auth store is old").
// The keys come in as key objects, loaded by the runtime (runtime/node/jwt-keys.ts).
import { jwtVerify, SignJWT, type CryptoKey, type KeyObject } from "jose";
import type { Clock } from "../ports.ts";
import type { JwtSignMethod } from "./token-options.ts";

export type JwtKey = CryptoKey | KeyObject;

export interface JwtTokensOptions {
  signMethod: JwtSignMethod;
  /** Absent: verify-only (etcd's mode with only pub-key): this member accepts tokens but cannot log anyone in. */
  signKey?: JwtKey;
  verifyKey: JwtKey;
  ttlMs: number;
  /** Wall time stamps `exp` and judges it, as etcd's time.Now. */
  clock: Pick<Clock, "wallMs">;
}

/**
 * etcd 3.4's jwt-go (v3.2) accepts a token through the second its exp names
 * (now <= exp); jose refuses from that second on (exp <= now), unless given a
 * tolerance of one second. Our tokens carry no nbf or iat for it to widen.
 */
const expToleranceSeconds = 1;

export class JwtTokens {
  private constructor(private readonly options: JwtTokensOptions) {}

  /**
   * Checks that the keys fit the method and, with both, that they are one
   * pair, by signing and verifying a probe; a member with a wrong key would
   * hand out tokens no member accepts.
   */
  static async start(options: JwtTokensOptions): Promise<JwtTokens> {
    const tokens = new JwtTokens(options);
    if (options.signKey === undefined) return tokens;
    let probe: string;
    try {
      probe = await tokens.sign("probe", 0);
    } catch (error) {
      throw new Error(`auth: the private key does not fit sign-method ${options.signMethod}: ${(error as Error).message}`);
    }
    if ((await tokens.verify(probe)) === undefined) throw new Error("auth: public and private keys don't match");
    return tokens;
  }

  get verifyOnly(): boolean {
    return this.options.signKey === undefined;
  }

  async sign(username: string, revision: number): Promise<string> {
    const { signKey, signMethod, ttlMs, clock } = this.options;
    if (signKey === undefined) throw new Error("auth: token signing attempted with verify-only key");
    const exp = Math.floor((clock.wallMs() + ttlMs) / 1000);
    // Claims in the order Go's encoding/json writes etcd's map (sorted keys).
    return new SignJWT({ exp, revision, username }).setProtectedHeader({ alg: signMethod, typ: "JWT" }).sign(signKey);
  }

  /** The claims of a token this cluster signed and that has not expired; undefined for anything else. */
  async verify(token: string): Promise<{ username: string; revision: number } | undefined> {
    const { verifyKey, signMethod, clock } = this.options;
    try {
      const { payload } = await jwtVerify(token, verifyKey, {
        algorithms: [signMethod], // etcd: a token of another method is refused ("invalid signing method")
        currentDate: new Date(clock.wallMs()),
        clockTolerance: expToleranceSeconds,
        requiredClaims: ["exp"],
      });
      const { username, revision } = payload;
      if (typeof username !== "string" || typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 0) return undefined;
      return { username, revision };
    } catch {
      return undefined; // forged, expired, malformed: all the same to the caller
    }
  }
}
