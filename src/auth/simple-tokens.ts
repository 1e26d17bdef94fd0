// etcd's simple tokens (auth/simple_token.go, etcd 3.4): "<16 random letters>.<raft
// index of the Authenticate entry>". The proposing member draws the letters; every
// member registers the same token when it applies the entry, so any member accepts
// it. A token lives --auth-token-ttl seconds past its last use and dies with the
// process: nothing is persisted, as in etcd, and clients log in again.
import { assert } from "../errors.ts";
import type { Clock, Random } from "../ports.ts";

/** etcd's --auth-token-ttl default (simpleTokenTTLDefault), used too when the flag is 0. */
export const simpleTokenTtlSecondsDefault = 300;
/** Tokens held at most; a login burst past it drops the tokens closest to expiry rather than growing memory. */
export const simpleTokensMax = 100_000;
/** Letters of the random part (etcd's defaultSimpleTokenLength). */
export const simpleTokenPrefixLength = 16;
const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

interface Entry {
  username: string;
  expiresAtMs: number;
}

/** The raft index a simple token names (the caller waits until it is applied, as etcd's isValidSimpleToken), or undefined if malformed. */
export function simpleTokenIndex(token: string): number | undefined {
  const match = /^[A-Za-z]+\.(\d{1,15})$/.exec(token);
  return match === null ? undefined : Number(match[1]);
}

export class SimpleTokens {
  /**
   * token → entry, in order of expiry: every insert and every use re-inserts
   * with the expiry now + TTL on the monotonic clock.
   * Invariant: expiresAtMs never decreases along the map's order, so the first
   * entry is the next to expire.
   */
  private readonly tokens = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly tokensMax: number;
  private enabled = false;
  private sweepTimer: { cancel(): void } | undefined;

  constructor(
    private readonly clock: Pick<Clock, "nowMs" | "setTimer">,
    private readonly random: Pick<Random, "int">,
    options: { ttlSeconds?: number; tokensMax?: number } = {},
  ) {
    const ttlSeconds = options.ttlSeconds ?? 0;
    this.ttlMs = (ttlSeconds > 0 ? ttlSeconds : simpleTokenTtlSecondsDefault) * 1000;
    this.tokensMax = options.tokensMax ?? simpleTokensMax;
    assert(this.tokensMax >= 1, "simple tokens: tokensMax is at least 1");
  }

  /** The random part of a new token; the proposing member draws it and puts it in the Authenticate entry. */
  newPrefix(): string {
    let prefix = "";
    for (let i = 0; i < simpleTokenPrefixLength; i++) prefix += letters[this.random.int(letters.length)];
    return prefix;
  }

  /**
   * The token of an applied Authenticate entry, registered for `username`
   * while auth is enabled (etcd registers nothing while it is disabled).
   */
  assign(prefix: string, index: number, username: string): string {
    const token = `${prefix}.${index}`;
    if (!this.enabled) return token;
    // Raft indexes are unique: a second login at one index is a bug (etcd panics).
    assert(!this.tokens.has(token), `simple token ${token} is already assigned`);
    if (this.tokens.size >= this.tokensMax) this.tokens.delete(this.tokens.keys().next().value as string);
    this.tokens.set(token, { username, expiresAtMs: this.clock.nowMs() + this.ttlMs });
    this.armSweep();
    return token;
  }

  /** The user of a live token, or undefined. A use pushes its expiry back a full TTL (etcd's resetSimpleToken). */
  info(token: string): string | undefined {
    const entry = this.tokens.get(token);
    if (entry === undefined) return undefined;
    const nowMs = this.clock.nowMs();
    this.tokens.delete(token);
    if (entry.expiresAtMs <= nowMs) return undefined;
    entry.expiresAtMs = nowMs + this.ttlMs;
    this.tokens.set(token, entry); // to the back: the order stays the order of expiry
    return entry.username;
  }

  /** Forgets every token of `username` (deleted, password changed, as etcd). */
  invalidateUser(username: string): void {
    for (const [token, entry] of this.tokens) if (entry.username === username) this.tokens.delete(token);
  }

  enable(): void {
    this.enabled = true;
  }

  /** Auth disabled: every token is forgotten. */
  disable(): void {
    this.enabled = false;
    this.tokens.clear();
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
  }

  /** The member is stopping: no timer left behind (tokens die with the process anyway). */
  stop(): void {
    this.disable();
  }

  /** Tokens held now (for tests and metrics). */
  get size(): number {
    return this.tokens.size;
  }

  /** One timer, at the first token's expiry; a timer that finds it refreshed re-arms for the new first one. */
  private armSweep(): void {
    if (this.sweepTimer !== undefined) return;
    const first = this.tokens.values().next().value as Entry | undefined;
    if (first === undefined) return;
    this.sweepTimer = this.clock.setTimer(Math.max(0, first.expiresAtMs - this.clock.nowMs()), () => {
      this.sweepTimer = undefined;
      this.sweep();
      this.armSweep();
    });
  }

  private sweep(): void {
    const nowMs = this.clock.nowMs();
    for (const [token, entry] of this.tokens) {
      if (entry.expiresAtMs > nowMs) return;
      this.tokens.delete(token);
    }
  }
}
