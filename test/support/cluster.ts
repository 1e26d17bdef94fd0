// A real 3-member edgetcd cluster on loopback, for cluster tests.
import { join } from "node:path";
import { dialMapFor, startLinks, type Links } from "./peer-proxy.ts";
import { freePort, startEdgetcd, startEtcd, tempDir, type RunningServer, type StartOptions } from "./processes.ts";

export interface ClusterMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  server: RunningServer | undefined;
  /** More environment for this member's next starts (e.g. EDGETCD_CRASH_POINT). */
  env?: Record<string, string>;
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
  runtime?: "node" | "bun";
  heartbeatMs?: number;
  electionMs?: number;
  /** More flags for every member. */
  extraArgs?: string[];
  /** Members dial each other through test/support/peer-proxy.ts (see `links`). */
  proxies?: boolean;
  /** How long each member may take to be ready (startProcess's default otherwise). */
  readyTimeoutMs?: number;
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
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
  const links = options.proxies === true ? await startLinks(members) : undefined;
  const starter = options.kind === "etcd" ? startEtcd : (start: StartOptions) => startEdgetcd({ ...start, runtime: options.runtime });
  const start = async (member: ClusterMember) => {
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
        ...(options.extraArgs ?? []),
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
