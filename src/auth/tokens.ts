// The token a client gets from Authenticate and sends with every request
// (gRPC metadata `token` or `authorization`), in etcd's two kinds:
//   simple  random letters + "." + the raft index of the Authenticate entry,
//           registered on every member when that entry is applied, so any
//           member accepts it; expires after --auth-token-ttl without use.
//   jwt     signed claims {username, revision, exp}: any member holding the
//           key verifies it, nothing is registered. A token whose revision is
//           older than the auth store's is refused ("revision of auth store is
//           old") and the client logs in again, as with etcd.
import type { AuthInfo, TokenInvalidation } from "./store.ts";

export interface SimpleTokenProvider {
  newPrefix(): string;
  assign(prefix: string, index: number, username: string): string;
  info(token: string): string | undefined;
  invalidateUser(username: string): void;
  enable(): void;
  disable(): void;
  stop(): void;
}

export interface JwtTokenProvider {
  sign(username: string, revision: number): Promise<string>;
  verify(token: string): Promise<{ username: string; revision: number } | undefined>;
}

export type TokenProvider = { kind: "simple"; simple: SimpleTokenProvider } | { kind: "jwt"; jwt: JwtTokenProvider };

/** Longest token looked at; a longer one is invalid without parsing it. */
export const tokenBytesMax = 8 * 1024;

export class AuthTokens implements TokenInvalidation {
  constructor(private readonly provider: TokenProvider) {}

  get kind(): "simple" | "jwt" {
    return this.provider.kind;
  }

  /** The random part of a simple token, chosen by the member that proposes the login. */
  newPrefix(): string {
    return this.provider.kind === "simple" ? this.provider.simple.newPrefix() : "";
  }

  /** An Authenticate entry applied on this member: a simple token is registered here (undefined for jwt). */
  assigned(prefix: string, index: number, username: string): string | undefined {
    return this.provider.kind === "simple" ? this.provider.simple.assign(prefix, index, username) : undefined;
  }

  /** The token to hand the client once its login was applied. */
  async issue(assigned: string | undefined, username: string, revision: number): Promise<string> {
    if (this.provider.kind === "simple") return assigned ?? "";
    return this.provider.jwt.sign(username, revision);
  }

  /** Who a token stands for, or undefined when it is not (or no longer) valid. */
  async info(token: string, currentRevision: number): Promise<AuthInfo | undefined> {
    if (token.length === 0 || token.length > tokenBytesMax) return undefined;
    if (this.provider.kind === "simple") {
      const username = this.provider.simple.info(token);
      return username === undefined ? undefined : { username, revision: currentRevision };
    }
    return this.provider.jwt.verify(token);
  }

  invalidateUser(username: string): void {
    if (this.provider.kind === "simple") this.provider.simple.invalidateUser(username);
  }

  enable(): void {
    if (this.provider.kind === "simple") this.provider.simple.enable();
  }

  disable(): void {
    if (this.provider.kind === "simple") this.provider.simple.disable();
  }

  stop(): void {
    if (this.provider.kind === "simple") this.provider.simple.stop();
  }
}
