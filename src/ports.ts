// The ports: the small interfaces through which src/ reaches the outside world.
// runtime/node, runtime/bun and runtime/sim implement them; nothing in src/
// imports node:* or bun:* directly (see ../shared/design.md).

/** An open file. Positions and sizes are in bytes. */
export interface FileHandle {
  /** Writes all of `data` at the end of the file. Not durable until `datasync`. */
  append(data: Uint8Array): Promise<void>;
  /** Writes all of `data` at `position`. Not durable until `datasync`. */
  writeAt(data: Uint8Array, position: number): Promise<void>;
  /** Reads up to `length` bytes at `position`; shorter only at end of file. */
  readAt(position: number, length: number): Promise<Uint8Array>;
  size(): Promise<number>;
  /** fdatasync(2): the file's data (and size) reach the disk. */
  datasync(): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

export type OpenMode =
  | "read" // existing file, read only
  | "append" // create if missing, writes go to the end
  | "readwrite"; // create if missing, positional reads and writes

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  readFile(path: string): Promise<Uint8Array>;
  exists(path: string): Promise<boolean>;
  /** Creates the directory and its parents; no error if it exists. */
  mkdirp(path: string): Promise<void>;
  /** Names (not paths) of the entries of a directory, sorted. */
  list(dir: string): Promise<string[]>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** Removes a directory tree; no error if missing. */
  removeAll(path: string): Promise<void>;
  size(path: string): Promise<number>;
  /** The permission bits (mode & 0o777) of an existing file or directory; etcd warns about a data dir wider than 0700. */
  permissions(path: string): Promise<number>;
  /** fsync(2) of a directory, so created, renamed and removed entries are durable. */
  syncDir(path: string): Promise<void>;
  /**
   * Takes an exclusive lock on `path` for this process (one node per data dir).
   * Rejects at once if another process holds it, naming the holder when it can.
   * Released by `release` or by the death of the process (an OS file lock on
   * Node and Bun), so a crash never leaves a lock behind.
   */
  lock(path: string): Promise<{ release(): Promise<void> }>;
  join(...parts: string[]): string;
}

/** A value SQLite can bind or return. */
export type SqliteValue = number | bigint | string | Uint8Array | null;
export type SqliteRow = Record<string, SqliteValue>;

export interface SqliteStatement {
  run(...params: SqliteValue[]): { changes: number };
  get(...params: SqliteValue[]): SqliteRow | undefined;
  all(...params: SqliteValue[]): SqliteRow[];
}

/**
 * The smallest slice of SQLite the backend needs; node:sqlite (Node, Deno)
 * and bun:sqlite (Bun) both fit it. BLOBs come back as Uint8Array.
 */
export interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

export interface SqliteDriver {
  open(path: string): SqliteDatabase;
  /**
   * Whether SQLite itself raised `error` (a file it refuses, say), as against
   * the driver failing to load: each driver marks its errors its own way.
   */
  raisedBySqlite(error: unknown): boolean;
}

export interface Clock {
  /** Monotonic milliseconds, for timeouts and latencies. */
  nowMs(): number;
  /** Wall-clock milliseconds since the epoch, for logs and tokens. */
  wallMs(): number;
  setTimer(ms: number, fn: () => void): Timer;
  setInterval(ms: number, fn: () => void): Timer;
}

export interface Timer {
  cancel(): void;
}

export interface Random {
  /** A uniformly random integer in [0, bound). */
  int(bound: number): number;
  bytes(length: number): Uint8Array;
}

/** Everything a node needs from its runtime, built by a composition root. */
export interface Runtime {
  name: "node" | "bun" | "deno" | "sim";
  fs: FileSystem;
  sqlite: SqliteDriver;
  clock: Clock;
  random: Random;
  passwords: PasswordHasher;
  /** SHA digests: member and cluster ids, the snapshot checksum. */
  digest: Digest;
}

/** A SHA digest of `data`. A port, so the simulator keeps it deterministic instead of patching a global. */
export interface Digest {
  (algorithm: "SHA-1" | "SHA-256", data: Uint8Array): Promise<Uint8Array>;
  /** A digest fed piece by piece (a snapshot streamed from disk). */
  incremental(algorithm: "SHA-256"): IncrementalDigest;
}

export interface IncrementalDigest {
  update(data: Uint8Array): void;
  /** The digest of everything given; the object is spent. */
  digest(): Uint8Array;
}

/** bcrypt, off the event loop (a worker pool), so an Authenticate burst does not stall other requests. */
export interface PasswordHasher {
  /** A bcrypt hash ("$2a$…"/"$2b$…") of `password` at `cost` (etcd's --bcrypt-cost, 4..31). */
  hash(password: string, cost: number): Promise<string>;
  /** Whether `password` matches the bcrypt `hash`. A malformed hash is false, never a throw. */
  verify(password: string, hash: string): Promise<boolean>;
  /** Ends the workers (the member is stopping). */
  close(): Promise<void>;
}

/** Structured logging (JSON lines like etcd's zap logger). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * The peer network: HTTP/2 between edgetcd nodes, cleartext (h2c) or TLS (https URLs).
 * `src/peer` carries Raft messages over it; runtime/node implements it with
 * node:http2 (Bun reuses that). Headers are lower-case.
 */
export interface PeerNetwork {
  /** Serves `handler` on `url` (http://host:port; port 0 picks a free one). */
  listen(url: URL, handler: PeerRequestHandler): Promise<PeerListener>;
  /**
   * One session (one connection) to a peer's URL, dialled at once. Never
   * throws: a failure to connect closes the session and fails its streams.
   */
  connect(url: string): PeerSession;
  /**
   * A one-off HTTP request to a peer URL (GET /members, lease forwarding), over
   * TLS with this member's peer certificate when the URL is https.
   */
  fetch: PeerFetch;
}

export type PeerFetch = (url: URL | string, init?: RequestInit) => Promise<Response>;

/**
 * etcd's peer TLS flags (--peer-*): file paths, read by the runtime. The
 * certificate and key serve https peer URLs and are shown when dialling one.
 */
export interface PeerTlsConfig {
  /** PEM files; undefined with --peer-auto-tls (the runtime generates a self-signed pair in memory). */
  certFile: string | undefined;
  keyFile: string | undefined;
  /**
   * --peer-auto-tls with no certificate given: the hosts of the self-signed
   * certificate. As in etcd 3.4 this encrypts but does not authenticate:
   * https peers are dialled without verifying their certificate, and no
   * certificate is asked of members dialling in.
   */
  autoTlsHosts: string[] | undefined;
  /** --peer-trusted-ca-file: verifies peers both ways; when set, a dialling peer must show a certificate it signed. */
  trustedCaFile: string | undefined;
  /** --peer-client-cert-auth: a dialling peer must show a certificate the trusted CA signed. */
  clientCertAuth: boolean;
  /** --peer-cert-allowed-cn: a verified certificate must carry this CommonName. */
  allowedCn: string | undefined;
  /** --peer-cert-allowed-hostname: a verified certificate must be valid for this host name or IP. */
  allowedHostname: string | undefined;
  /** --peer-crl-file: certificates revoked by the CA. */
  crlFile: string | undefined;
}

export interface PeerListener {
  /** The URL actually bound (with the chosen port when asked for port 0). */
  readonly url: URL;
  /** Stops accepting and drops every open connection. */
  close(): Promise<void>;
}

export type PeerRequestHandler = (request: PeerIncomingRequest) => void;

/** A request arriving on the peer port; its body may stream for as long as the connection lives. */
export interface PeerIncomingRequest {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  header(name: string): string | undefined;
  /** The request body as it arrives; ends when the sender ends it, throws if the stream is reset. */
  readonly body: AsyncIterable<Uint8Array>;
  /** Sends the response head now, so a streaming request is accepted before its body ends. */
  respond(status: number, headers?: Record<string, string>): void;
  /** Ends the response (sending the head first if needed). */
  end(body?: Uint8Array): void;
  /** Resets the stream. */
  abort(): void;
}

export interface PeerSession {
  /** Opens a POST whose body is written through the returned stream. */
  request(path: string, headers: Record<string, string>): PeerOutgoingStream;
  /** An HTTP/2 PING; resolves when the peer acknowledges it, rejects if the session fails. */
  ping(): Promise<void>;
  /** Resolves when the session is gone, closed by either side or failed. */
  readonly closed: Promise<void>;
  close(): void;
}

export interface PeerOutgoingStream {
  /** The response head. Rejects if the stream or session fails first. */
  readonly response: Promise<{ status: number; headers: Record<string, string> }>;
  /** Queues bytes; false when the stream's buffer is full: await `drained()` before writing more. */
  write(chunk: Uint8Array): boolean;
  /** Resolves when the stream can take more; rejects if it closes first. */
  drained(): Promise<void>;
  end(): void;
  /** Resolves when the stream is closed, whatever the reason (never rejects). */
  readonly closed: Promise<void>;
  abort(): void;
}
