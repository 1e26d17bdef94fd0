// The client matrix (issue 21): one scripted scenario (KV with errors, txn,
// watch with resume, leases with expiry, lock, election, maintenance,
// compaction errors) run by four real etcd clients against etcd 3.4 and
// edgetcd in the same test; the transcripts the two servers give must be
// equal. A difference from etcd fails the test.
//
// - the `etcd3` npm package (grpc-js), in this process: clients/etcd3-npm.ts
// - python-etcd3 (grpcio, Debian's python3-etcd3): clients/python-etcd3.py
// - etcd3gw (JSON gateway, Debian's python3-etcd3gw): clients/python-etcd3gw.py
// - Go clientv3 (etcd 3.4's, Debian's golang-etcd-server-dev), with the
//   server-side Lock and Election services: clients/go-clientv3/main.go
//
// Each client does what its API allows and writes the outcome of every step,
// normalized (no lease or member IDs; revisions relative to the scenario's
// first), errors as that client shows them to a program: its error class or
// identity, gRPC code or HTTP status, and text. The two servers run the same
// client at once; the clients run one after another, each under a prefix of
// its own, since each ends by compacting the whole store. The expectations
// below check etcd's transcript holds the steps that matter, so a client that
// did nothing cannot pass.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { etcd3Scenario, type Step } from "./clients/etcd3-npm.ts";
import { etcdBesideEdgetcd, repoRoot, type RunningServer } from "../support/processes.ts";

const run = promisify(execFile);
const clientsDir = join(repoRoot, "test/compat/clients");

/** Debian's Python, which has python3-etcd3 and python3-etcd3gw (a pyenv `python3` on PATH has neither). */
const debianPython = "/usr/bin/python3";

/**
 * The Go client, built once per version of its source into /tmp (a few
 * seconds with a warm GOCACHE, more on a fresh machine) and reused by later
 * runs; built under a temporary name and renamed, so two runs building at
 * once never run a half-written binary.
 */
async function goClient(): Promise<string> {
  const sourceDir = join(clientsDir, "go-clientv3");
  const sourceHash = createHash("sha256").update(readFileSync(join(sourceDir, "main.go"))).digest("hex").slice(0, 16);
  const binary = `/tmp/edgetcd-client-matrix-go-${sourceHash}`;
  if (existsSync(binary)) return binary;
  const buildDir = mkdtempSync("/tmp/edgetcd-client-matrix-go-build-");
  try {
    await run("/usr/bin/go", ["build", "-o", join(buildDir, "client"), "."], {
      cwd: sourceDir,
      env: { ...process.env, GOPATH: "/usr/share/gocode", GO111MODULE: "off", GOCACHE: "/tmp/gocache", GOFLAGS: "" },
      timeout: 300_000,
    });
    renameSync(join(buildDir, "client"), binary);
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
  return binary;
}

/** Runs a client program that prints its transcript as its last line of output. */
async function transcriptOf(program: string, args: string[]): Promise<Step[]> {
  try {
    const { stdout } = await run(program, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout.trim().split("\n").pop() ?? "[]") as Step[];
  } catch (error) {
    const { stdout, stderr, message } = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${program} ${args.join(" ")} failed: ${message}\nstdout: ${stdout ?? ""}\nstderr: ${(stderr ?? "").slice(-4000)}`);
  }
}

interface Client {
  title: string;
  /** The scenario's keys live under /client-matrix/<name>/. */
  name: string;
  run(server: RunningServer, prefix: string): Promise<Step[]>;
  /** Steps of etcd's transcript that must hold these outcomes. */
  expected: Step[];
}

const leaseNotFound = "etcdserver: requested lease not found";
const compacted = "etcdserver: mvcc: required revision has been compacted";
const futureRevision = "etcdserver: mvcc: required revision is a future revision";
const watchEvents = [["PUT", "w/x", "1"], ["PUT", "w/x", "2"], ["DELETE", "w/x", ""]];

const clients: Client[] = [
  {
    title: "the etcd3 npm package (grpc-js)",
    name: "etcd3-npm",
    run: (server, prefix) => etcd3Scenario(server.endpoint, prefix),
    expected: [
      ["kv.get", { value: "value-a2", version: 2, createRevision: 1, modRevision: 4 }],
      ["kv.range.afterDelete", { a: "value-a2", c: "value-c" }],
      ["error.putWithMissingLease", { error: { class: "EtcdLeaseInvalidError", message: `Lease 5 NOT_FOUND: ${leaseNotFound} is expired or revoked` } }],
      ["txn.cas.failure", { succeeded: false, responses: 1, else: [["txn", "new"]] }],
      ["watch.events", watchEvents],
      ["watch.resume", watchEvents.slice(1)],
      ["lease.timeToLiveAfterRevoke", -1],
      ["lease.lost", { error: { class: "EtcdLeaseInvalidError", message: `Lease 5 NOT_FOUND: ${leaseNotFound} is expired or revoked` } }],
      ["lease.expiry.keyGone", true],
      ["lease.expiry.lost", { error: { class: "EtcdLeaseInvalidError", message: "Lease <lease> is expired or revoked" } }],
      ["lease.expiry.keptAlive", "still here"],
      ["lock.contended", { error: { class: "EtcdLockFailedError", message: "Failed to acquire a lock on lock" } }],
      ["election.observeChange", "second"],
      ["election.leaderAfterResign", "none"],
      ["compaction.getCompacted", { error: { class: "GRPCOutOfRangeError", message: `11 OUT_OF_RANGE: ${compacted}` } }],
      ["compaction.watchCompacted", { error: { class: "EtcdError", message: "Watcher canceled: " } }],
    ],
  },
  {
    title: "python-etcd3 (grpcio)",
    name: "python-etcd3",
    run: (server, prefix) => transcriptOf(debianPython, [join(clientsDir, "python-etcd3.py"), "127.0.0.1", String(server.clientPort), prefix]),
    expected: [
      ["kv.get", { value: "value-a2", version: 2, createRevision: 1, modRevision: 4 }],
      ["kv.range.afterDelete", [["a", "value-a2"], ["c", "value-c"]]],
      ["error.putWithMissingLease", { error: { type: "_InactiveRpcError", code: "NOT_FOUND", details: leaseNotFound } }],
      ["txn.cas.failure", { succeeded: false, responses: 1, else: [["txn", "new"]] }],
      ["watch.events", watchEvents],
      ["watch.resume", watchEvents.slice(1)],
      ["lease.keepAliveOnce", [5]],
      ["lease.expiry.grant", 2],
      ["lease.expiry.keyGone", true],
      ["lease.expiry.keepAlive", [0]],
      ["lock.contended", false],
      ["maintenance.status", { version: true, dbSize: true, leader: "default", raftIndex: true, raftTerm: true }],
      ["compaction.compactAgain", { error: { type: "_InactiveRpcError", code: "OUT_OF_RANGE", details: compacted } }],
    ],
  },
  {
    title: "etcd3gw (the JSON gateway)",
    name: "python-etcd3gw",
    run: (server, prefix) => transcriptOf(debianPython, [join(clientsDir, "python-etcd3gw.py"), "127.0.0.1", String(server.clientPort), prefix]),
    expected: [
      ["kv.get", { value: "value-a2", version: "2", createRevision: 1, modRevision: 4 }],
      ["kv.delete.missing", false],
      ["error.putWithMissingLease", { error: { type: "Etcd3Exception", reason: "Not Found", body: { error: leaseNotFound, message: leaseNotFound, code: 5 } } }],
      ["txn.cas.failure", false],
      ["watch.events", watchEvents],
      ["watch.resume", watchEvents.slice(1)],
      ["lease.keepAliveOnce", 5],
      ["lease.ttlAfterRevoke", -1],
      ["lease.expiry.keyGone", true],
      ["lease.expiry.keepAlive", -1],
      ["lock.contended", false],
      ["compaction.getCompacted", { error: { type: "Etcd3Exception", reason: "Bad Request", body: { error: compacted, message: compacted, code: 11 } } }],
      ["compaction.getFuture", { error: { type: "Etcd3Exception", reason: "Bad Request", body: { error: futureRevision, message: futureRevision, code: 11 } } }],
    ],
  },
  {
    title: "Go clientv3 (etcd 3.4's)",
    name: "go-clientv3",
    run: async (server, prefix) => transcriptOf(await goClient(), ["-endpoint", server.endpoint, "-prefix", prefix]),
    expected: [
      ["kv.get", { value: "value-a2", version: 2, createRevision: 1, modRevision: 4 }],
      ["kv.range.limitDescending", { count: 3, kvs: [["c", "value-c"], ["b", "value-b"]], more: true }],
      ["error.putWithMissingLease", { error: { code: "NotFound", identity: "rpctypes.ErrLeaseNotFound", message: leaseNotFound } }],
      ["txn.nested", { nestedSucceeded: true, succeeded: true }],
      ["watch.events", watchEvents],
      ["watch.resume", watchEvents.slice(1)],
      ["lease.expiry.grant", 2],
      ["lease.expiry.keyGone", true],
      ["lock.contended", { error: { code: "none", identity: "context.DeadlineExceeded", message: "context deadline exceeded" } }],
      ["lock.service.lock", true],
      ["election.leaderAfterProclaim", "second"],
      ["election.service.leader", "served"],
      ["election.service.leaderAfterResign", { error: { code: "Unknown", identity: "", message: "rpc error: code = Unknown desc = election: no leader" } }],
      ["compaction.getCompacted", { error: { code: "OutOfRange", identity: "rpctypes.ErrCompacted", message: compacted } }],
      ["compaction.compactFuture", { error: { code: "OutOfRange", identity: "rpctypes.ErrFutureRev", message: futureRevision } }],
    ],
  },
];

/** The steps where two transcripts differ, one line each (a step missing from one shows as undefined). */
function differences(fromEtcd: Step[], fromEdgetcd: Step[]): string[] {
  const edgetcdByName = new Map(fromEdgetcd);
  const lines: string[] = [];
  for (const [name, outcome] of fromEtcd) {
    const other = edgetcdByName.get(name);
    if (!edgetcdByName.has(name) || JSON.stringify(other) !== JSON.stringify(outcome)) {
      lines.push(`${name}: etcd ${JSON.stringify(outcome)}, edgetcd ${JSON.stringify(other)}`);
    }
  }
  const etcdNames = new Set(fromEtcd.map(([name]) => name));
  for (const [name, outcome] of fromEdgetcd) if (!etcdNames.has(name)) lines.push(`${name}: etcd undefined, edgetcd ${JSON.stringify(outcome)}`);
  return lines;
}

function fulfilled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

describe("the client matrix: one scenario, four real etcd clients, etcd 3.4 beside edgetcd", () => {
  const servers = etcdBesideEdgetcd();

  for (const client of clients) {
    test(client.title, { timeout: 120_000 }, async () => {
      const prefix = `/client-matrix/${client.name}/`;
      // Both runs end before the test does, failed or not: one left running would
      // compact the store under the next client's lock and watches.
      const [etcdRun, edgetcdRun] = await Promise.allSettled([client.run(servers.etcd, prefix), client.run(servers.edgetcd, prefix)]);
      const fromEtcd = fulfilled(etcdRun);
      const fromEdgetcd = fulfilled(edgetcdRun);
      const etcdByName = new Map(fromEtcd);
      for (const [name, outcome] of client.expected) {
        assert.deepEqual(etcdByName.get(name), outcome, `etcd 3.4's ${name} with ${client.title}`);
      }
      assert.deepEqual(differences(fromEtcd, fromEdgetcd), [], `${client.title}: ${fromEtcd.length} steps on etcd 3.4`);
      // Same steps in the same order, each with the same outcome.
      assert.deepEqual(fromEdgetcd, fromEtcd);
    });
  }
});
