// One member of the whole-node simulation: the real EtcdServer over a
// simulated runtime (clock, random, file system, peer network), which the
// simulator can start, crash and restart from its data directory.

import type { Clock, Logger, Runtime, SqliteDriver, Timer } from "../../src/ports.ts";
import { parseFlags } from "../../src/cli/flags.ts";
import { type ServerConfig } from "../../src/server/config.ts";
import { serverConfigFromFlags } from "../../src/cli/server-config.ts";
import { startServer } from "../../src/server/bootstrap.ts";
import type { EtcdServer } from "../../src/server/etcd-server.ts";
import type { Backend } from "../../src/storage/backend.ts";
import type { SimClock } from "../../runtime/sim/clock.ts";
import { type CrashKind, SimFileSystem } from "../../runtime/sim/file-system.ts";
import { simPasswordHasher } from "../../runtime/sim/password-hasher.ts";
import type { SimPeerHub } from "../../runtime/sim/peer-network.ts";
import type { Prng } from "../../runtime/sim/prng.ts";
import { simRandom } from "../../runtime/sim/random.ts";
import { hostDigest } from "../../runtime/node/digest.ts";
import type { FileSystem } from "../../src/ports.ts";
import type { Trace } from "./trace.ts";

export const heartbeatMs = 50;
export const electionTimeoutMs = 500;
export const snapshotCount = 30;
export const snapshotCatchUpEntries = 5;

/**
 * The clock of one incarnation of a member: the simulator's clock, but every
 * timer dies with the incarnation (a crashed process runs nothing more), and a
 * timer that throws is reported (it would crash a real process).
 */
class IncarnationClock implements Clock {
  private readonly timers = new Set<Timer>();
  private alive = true;

  constructor(
    private readonly base: SimClock,
    private readonly onThrow: (error: unknown) => void,
  ) {}

  nowMs(): number {
    return this.base.nowMs();
  }

  wallMs(): number {
    return this.base.wallMs();
  }

  private guarded(fn: () => void): () => void {
    return () => {
      if (!this.alive) return;
      try {
        fn();
      } catch (error) {
        this.onThrow(error);
      }
    };
  }

  setTimer(ms: number, fn: () => void): Timer {
    const handle: Timer = {
      cancel: () => {
        inner.cancel();
        this.timers.delete(handle);
      },
    };
    const run = this.guarded(fn);
    const inner = this.base.setTimer(ms, () => {
      this.timers.delete(handle);
      run();
    });
    this.timers.add(handle);
    return handle;
  }

  setInterval(ms: number, fn: () => void): Timer {
    const inner = this.base.setInterval(ms, this.guarded(fn));
    const handle: Timer = {
      cancel: () => {
        inner.cancel();
        this.timers.delete(handle);
      },
    };
    this.timers.add(handle);
    return handle;
  }

  kill(): void {
    this.alive = false;
    for (const timer of [...this.timers]) timer.cancel();
  }
}

export interface MemberCounters {
  snapshotsInstalled: number;
  leaderChanges: number;
}

export interface MemberEnvironment {
  clock: SimClock;
  hub: SimPeerHub;
  random: Prng;
  trace: Trace;
  realFs: FileSystem;
  sqlite: SqliteDriver;
  rootDir: string;
  /** An fdatasync of the WAL takes a random time in [0, diskSyncMsMax] ms. */
  diskSyncMsMax: number;
  counters: MemberCounters;
  /** Runs a real asynchronous call after every earlier one (see SimFileSystem). */
  serialize<T>(call: () => Promise<T>): Promise<T>;
  /** A programmer error inside a member (a timer threw): a violation. */
  onCrashBug(member: SimMember, error: unknown): void;
}

export type MemberState = "down" | "starting" | "up" | "removed";

export class SimMember {
  readonly fs: SimFileSystem;
  readonly dataDir: string;
  readonly peerUrl: string;
  server: EtcdServer | undefined;
  state: MemberState = "down";
  incarnation = 0;
  private clock: IncarnationClock | undefined;
  /** Operations sent to this incarnation that have not answered. */
  requestsInFlight = 0;

  constructor(
    readonly name: string,
    readonly endpoint: number,
    private readonly env: MemberEnvironment,
  ) {
    this.dataDir = `${env.rootDir}/${name}`;
    this.peerUrl = `http://${name}:2380`;
    const snapDir = `${this.dataDir}/member/snap`;
    this.fs = new SimFileSystem(env.realFs, (path) => path === snapDir || path.startsWith(`${snapDir}/`), (call) => env.serialize(call));
  }

  config(initialCluster: string, state: "new" | "existing"): ServerConfig {
    const flags = parseFlags(
      [
        `--name=${this.name}`,
        `--data-dir=${this.dataDir}`,
        `--listen-peer-urls=${this.peerUrl}`,
        `--initial-advertise-peer-urls=${this.peerUrl}`,
        `--listen-client-urls=http://${this.name}:2379`,
        `--advertise-client-urls=http://${this.name}:2379`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        "--initial-cluster-token=sim-cluster",
        `--heartbeat-interval=${heartbeatMs}`,
        `--election-timeout=${electionTimeoutMs}`,
        `--snapshot-count=${snapshotCount}`,
        `--experimental-snapshot-catchup-entries=${snapshotCatchUpEntries}`,
        "--pre-vote=true",
        "--backend-batch-interval=50ms",
      ],
      {},
    );
    return serverConfigFromFlags(flags);
  }

  /** Starts a new incarnation; resolves when the server is up (or the start failed). */
  start(config: ServerConfig): Promise<void> {
    this.incarnation++;
    const incarnation = this.incarnation;
    this.state = "starting";
    const clock = new IncarnationClock(this.env.clock, (error) => this.env.onCrashBug(this, error));
    this.clock = clock;
    const random = simRandom(this.env.random.fork());
    const runtime: Runtime = { name: "sim", fs: this.fs, sqlite: rollingBackOnClose(this.env.sqlite), clock, random, passwords: simPasswordHasher(random), digest: hostDigest };
    const network = this.env.hub.networkFor(this.endpoint, () => incarnation === this.incarnation);
    const diskRandom = this.env.random.fork();
    const syncMsMax = this.env.diskSyncMsMax;
    this.fs.syncLatency = () => new Promise((resolve) => clock.setTimer(diskRandom.int(syncMsMax + 1), resolve));
    return startServer(runtime, config, this.logger(), { peerNetwork: network }).then(
      (server) => {
        if (incarnation !== this.incarnation) {
          // Crashed while starting: this process no longer exists.
          backendOf(server).crash();
          return;
        }
        this.server = server;
        this.state = "up";
        server.onHalt = (reason) => this.halted(incarnation, reason);
        const status = server.status();
        this.env.trace.add(
          `${this.name} up (incarnation ${incarnation}): applied ${status.raftAppliedIndex}, last index ${status.raftIndex}, revision ${server.header().revision}`,
        );
      },
      (error: unknown) => {
        if (incarnation !== this.incarnation) return;
        this.state = "down";
        this.clock?.kill();
        this.env.trace.add(`${this.name} failed to start: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  }

  private halted(incarnation: number, reason: string): void {
    if (incarnation !== this.incarnation) return;
    this.env.trace.add(`${this.name} halted: ${reason}`);
    const server = this.server;
    this.server = undefined;
    this.clock?.kill();
    this.env.hub.crashEndpoint(this.endpoint);
    this.state = reason.includes("removed") ? "removed" : "down";
    if (server !== undefined) void server.stop().catch(() => {});
  }

  /** The process dies at once: no more timers, connections reset, the open backend batch lost. */
  crash(kind: CrashKind): void {
    this.incarnation++;
    this.clock?.kill();
    this.env.hub.crashEndpoint(this.endpoint);
    if (this.server !== undefined) backendOf(this.server).crash();
    this.fs.crash(kind);
    this.server = undefined;
    if (this.state !== "removed") this.state = "down";
  }

  private logger(): Logger {
    const { trace, counters } = this.env;
    const line = (level: string, message: string, fields?: Record<string, unknown>) =>
      trace.add(`${this.name} ${level} ${message}${fields === undefined ? "" : ` ${JSON.stringify(fields, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`}`);
    return {
      debug() {},
      info: (message, fields) => {
        if (message === "sending database snapshot") {
          // Logged by the server and by the peer link alike; the simulator counts snapshots on the wire.
        } else if (message === "applied snapshot from the leader") counters.snapshotsInstalled++;
        else if (message === "raft leader changed") counters.leaderChanges++;
        else return;
        line("info", message, fields);
      },
      warn: (message, fields) => line("warn", message, fields),
      error: (message, fields) => line("error", message, fields),
    };
  }
}

/** The backend inside a server: the simulator reaches in to lose its open batch on a crash. */
function backendOf(server: EtcdServer): Backend {
  return (server as unknown as { backend: Backend }).backend;
}

/**
 * Closing rolls back first. A crash closes the backend's connection in the
 * middle of its batch transaction; bun:sqlite's close() waits for the prepared
 * statements to be finalized before it really closes, so without an explicit
 * rollback the dead incarnation would keep the write lock and the restarted
 * one would find the database locked.
 */
function rollingBackOnClose(driver: SqliteDriver): SqliteDriver {
  return {
    ...driver,
    open(path) {
      const db = driver.open(path);
      return {
        exec: (sql) => db.exec(sql),
        prepare: (sql) => db.prepare(sql),
        close: () => {
          try {
            db.exec("ROLLBACK");
          } catch {
            // No transaction open: a clean close.
          }
          db.close();
        },
      };
    },
  };
}
