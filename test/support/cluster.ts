// A real 3-member edgetcd cluster on loopback, for cluster tests.
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Cluster, KV, Lease, Maintenance, Watch } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Election } from "../../src/gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { dialMapFor, startLinks, type Links } from "./peer-proxy.ts";
import { freePort, serverRuntimes, startEdgetcd, startEtcd, tempDir, type RunningServer, type StartOptions } from "./processes.ts";
import type { RuntimeName } from "./runtime.ts";

export interface ClusterMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  server: RunningServer | undefined;
  /** More environment for this member's next starts (e.g. EDGETCD_CRASH_POINT). */
  env?: Record<string, string>;
  /** More flags for this member's next starts (e.g. --initial-cluster-state existing after a member replace). */
  extraArgs?: string[];
}

export interface TestCluster {
  members: ClusterMember[];
  endpoints(): string[];
  start(member: ClusterMember): Promise<void>;
  stopAll(): Promise<void>;
  /** The fault-injecting peer proxies, when started with `proxies: true`. */
  links: Links | undefined;
}

/** Timing small enough for tests (etcd's defaults are 100 ms / 1000 ms). */
export const heartbeatMs = 50;
export const electionMs = 500;

export interface ClusterOptions {
  /** Which server: edgetcd (default) or the real etcd 3.4. */
  kind?: "edgetcd" | "etcd";
  /** edgetcd's runtime: one for all, or one per member in order (a mixed cluster). */
  runtime?: RuntimeName | readonly RuntimeName[];
  heartbeatMs?: number;
  electionMs?: number;
  /** More flags for every member. */
  extraArgs?: string[];
  /** Members dial each other through test/support/peer-proxy.ts (see `links`). */
  proxies?: boolean;
  /** How long each member may take to be ready (startProcess's default otherwise). */
  readyTimeoutMs?: number;
  /** "https": peer URLs (listen, advertise, --initial-cluster) are https; give the --peer-* flags in `argsFor`. */
  peerScheme?: "http" | "https";
  /** More flags for one member (its own peer certificate, say). */
  argsFor?: (member: ClusterMember) => string[];
}

export async function startCluster(size = 3, options: ClusterOptions = {}): Promise<TestCluster> {
  const root = tempDir("edgetcd-cluster");
  const members: ClusterMember[] = [];
  for (let i = 1; i <= size; i++) {
    members.push({
      name: `m${i}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      dataDir: join(root, `m${i}`),
      server: undefined,
    });
  }
  const peerScheme = options.peerScheme ?? "http";
  const initialCluster = members.map((m) => `${m.name}=${peerScheme}://127.0.0.1:${m.peerPort}`).join(",");
  const links = options.proxies === true ? await startLinks(members) : undefined;
  const runtimes = options.runtime ?? serverRuntimes();
  const runtimeOf = (member: ClusterMember) => (typeof runtimes === "string" ? runtimes : runtimes[members.indexOf(member) % runtimes.length]);
  const start = async (member: ClusterMember) => {
    const starter = options.kind === "etcd" ? startEtcd : (start: StartOptions) => startEdgetcd({ ...start, runtime: runtimeOf(member) });
    member.server = await starter({
      dataDir: member.dataDir,
      clientPort: member.clientPort,
      peerPort: member.peerPort,
      readyTimeoutMs: options.readyTimeoutMs,
      env: {
        ...(links === undefined ? {} : { EDGETCD_TEST_PEER_DIAL: dialMapFor(links, member.name, members) }),
        ...member.env,
      },
      extraArgs: [
        "--name", member.name,
        "--initial-cluster", initialCluster,
        "--initial-cluster-token", "test-cluster",
        "--heartbeat-interval", String(options.heartbeatMs ?? heartbeatMs),
        "--election-timeout", String(options.electionMs ?? electionMs),
        // The last of a repeated flag wins: these replace the http peer URLs startProcess gives.
        ...(peerScheme === "http" ? [] : peerUrlArgs(`${peerScheme}://127.0.0.1:${member.peerPort}`)),
        ...(options.argsFor?.(member) ?? []),
        ...(options.extraArgs ?? []),
        ...(member.extraArgs ?? []),
      ],
    });
  };
  const started = await Promise.allSettled(members.map(start));
  const failed = started.find((result) => result.status === "rejected");
  if (failed !== undefined) {
    // Nobody gets a cluster to stop: stop what did start, or it keeps the test process alive.
    await Promise.all(members.map((m) => m.server?.kill()));
    await links?.close();
    throw failed.reason;
  }
  return {
    members,
    endpoints: () => members.map((m) => `127.0.0.1:${m.clientPort}`),
    start,
    stopAll: async () => {
      await Promise.all(members.map((m) => m.server?.kill()));
      await links?.close();
    },
    links,
  };
}

const peerUrlArgs = (url: string) => ["--listen-peer-urls", url, "--initial-advertise-peer-urls", url];

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function clientsAt(clientPort: number) {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${clientPort}` });
  return {
    kv: createClient(KV, transport),
    lease: createClient(Lease, transport),
    lock: createClient(Lock, transport),
    election: createClient(Election, transport),
    maintenance: createClient(Maintenance, transport),
    watch: createClient(Watch, transport),
    cluster: createClient(Cluster, transport),
  };
}

export type MemberClients = ReturnType<typeof clientsAt>;

// One HTTP/2 connection per server process, not one per call: leaderOf and the
// catch-up loops poll. A restarted member is a new process, so it gets a new one.
const clientsByServer = new WeakMap<RunningServer, MemberClients>();

/** gRPC clients of a cluster member (or of a lone server). */
export function clientsOf(target: ClusterMember | RunningServer): MemberClients {
  const server = "server" in target ? target.server : target;
  if (server === undefined) return clientsAt(target.clientPort);
  let clients = clientsByServer.get(server);
  if (clients === undefined) {
    clients = clientsAt(target.clientPort);
    clientsByServer.set(server, clients);
  }
  return clients;
}

/** The member that reports itself leader, polling every running member. */
export async function leaderOf(cluster: TestCluster, timeoutMs = 10_000): Promise<ClusterMember> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const member of cluster.members) {
      if (member.server === undefined) continue;
      try {
        const status = await clientsOf(member).maintenance.status({}, { timeoutMs: 500 });
        if (status.leader !== 0n && status.leader === status.header?.memberId) return member;
      } catch {
        // down, or no leader yet
      }
    }
    await sleep(50);
  }
  throw new Error(`no leader within ${timeoutMs} ms`);
}

/** Polls `check` every 100 ms until it is true (a throw counts as not yet); fails naming `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(100);
  }
}
