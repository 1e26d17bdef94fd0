// etcdctl 3.4 commands that dial every member on its own (`endpoint status |
// health | hashkv --cluster`, or several `http://` endpoints) send
// `:authority: http://127.0.0.1:port`; edgetcd must answer them as etcd does,
// on a real 3-member cluster of the runtime under test, with the same JSON
// shapes as a real 3-member etcd 3.4 cluster.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../support/cluster.ts";
import { etcdctlAsync, type CommandResult } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

interface StatusEntry {
  Endpoint: string;
  Status: { header: { member_id: number; raft_term: number }; leader: number };
}
interface HealthEntry {
  endpoint: string;
  health: boolean;
  error?: string;
}
interface HashEntry {
  Endpoint: string;
  HashKV: { header: { member_id: number }; hash: number; compact_revision: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The keys and value types of a JSON value, for comparing outputs whose values differ. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shapeOf);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([key, inner]) => [key, shapeOf(inner)]));
  }
  return typeof value;
}

function parsed<T>(result: CommandResult, what: string): T {
  assert.equal(result.status, 0, `${what}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

describe(`etcdctl --cluster against a 3-member edgetcd cluster (${runtimeName})`, () => {
  let cluster: TestCluster;
  let etcd: TestCluster;
  let urls: string[];

  before(
    async () => {
      [cluster, etcd] = await Promise.all([startCluster(3, { runtime: runtimeName }), startCluster(3, { kind: "etcd" })]);
      urls = cluster.endpoints().map((endpoint) => `http://${endpoint}`);
      // A leader, seen through plain host:port endpoints (never affected by the
      // bug), and every member's client URL published (`--cluster` dials the
      // URLs of `member list`; a member publishes its own after it starts).
      const deadline = Date.now() + 20_000;
      for (;;) {
        const status = await etcdctlAsync(cluster.endpoints().join(","), ["endpoint", "status", "-w", "json"]);
        const members = await etcdctlAsync(cluster.endpoints()[0] as string, ["member", "list", "-w", "json"]);
        if (status.status === 0 && members.status === 0) {
          const entries = JSON.parse(status.stdout) as StatusEntry[];
          const listed = (JSON.parse(members.stdout) as { members?: Array<{ clientURLs?: string[] }> }).members ?? [];
          const hasLeader = entries.length === 3 && entries.every((entry) => entry.Status.leader !== 0);
          if (hasLeader && listed.length === 3 && listed.every((member) => member.clientURLs?.length === 1)) break;
        }
        if (Date.now() > deadline) throw new Error(`no leader or unpublished members: ${status.stderr}${members.stdout}`);
        await sleep(100);
      }
    },
    { timeout: 60_000 },
  );

  after(async () => {
    await Promise.all([cluster?.stopAll(), etcd?.stopAll()]);
  });

  test("endpoint status --cluster -w json, from every member: all three answer, exactly one is the leader", async () => {
    for (const url of urls) {
      const entries = parsed<StatusEntry[]>(await etcdctlAsync(url, ["endpoint", "status", "--cluster", "-w", "json"]), url);
      assert.deepEqual(entries.map((entry) => entry.Endpoint).sort(), [...urls].sort());
      const leaders = entries.filter((entry) => entry.Status.leader === entry.Status.header.member_id);
      assert.equal(leaders.length, 1, `one leader flag: ${JSON.stringify(entries)}`);
      assert.equal(new Set(entries.map((entry) => entry.Status.leader)).size, 1, "every member names the same leader");
      assert.equal(new Set(entries.map((entry) => entry.Status.header.member_id)).size, 3, "three members");
    }
  });

  test("endpoint status -w table with several http:// endpoints", async () => {
    const result = await etcdctlAsync(urls.join(","), ["endpoint", "status", "-w", "table"]);
    assert.equal(result.status, 0, result.stderr);
    for (const url of urls) assert.match(result.stdout, new RegExp(`\\| ${url} \\|`));
    assert.equal(result.stdout.match(/\|\s+true\s+\|\s+false\s+\|/g)?.length, 1, `one leader row:\n${result.stdout}`);
    assert.doesNotMatch(result.stdout + result.stderr, /PROTOCOL_ERROR/);
  });

  test("endpoint health --cluster: healthy on each member", async () => {
    const entries = parsed<HealthEntry[]>(await etcdctlAsync(urls[0] as string, ["endpoint", "health", "--cluster", "-w", "json"]), "health");
    assert.deepEqual(entries.map((entry) => entry.endpoint).sort(), [...urls].sort());
    for (const entry of entries) assert.equal(entry.health, true, JSON.stringify(entry));
    const plain = await etcdctlAsync(urls[1] as string, ["endpoint", "health", "--cluster"]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal((plain.stdout + plain.stderr).match(/is healthy: successfully committed proposal/g)?.length, 3);
  });

  test("endpoint hashkv --cluster: every member answers, with one hash once writes have settled", async () => {
    for (let i = 0; i < 5; i++) {
      const put = await etcdctlAsync(urls[i % 3] as string, ["put", `hashkv/${i}`, `value-${i}`]);
      assert.equal(put.status, 0, put.stderr);
    }
    const deadline = Date.now() + 10_000;
    for (;;) {
      const entries = parsed<HashEntry[]>(await etcdctlAsync(urls[2] as string, ["endpoint", "hashkv", "--cluster", "-w", "json"]), "hashkv");
      assert.deepEqual(entries.map((entry) => entry.Endpoint).sort(), [...urls].sort());
      if (new Set(entries.map((entry) => entry.HashKV.hash)).size === 1) break;
      // A follower may not have applied the last put yet.
      assert.ok(Date.now() < deadline, `hashes never agreed: ${JSON.stringify(entries)}`);
      await sleep(100);
    }
  });

  test("the JSON of status, health and hashkv --cluster has etcd's shape", async () => {
    const etcdUrl = `http://${etcd.endpoints()[0]}`;
    for (const target of [etcdUrl, urls[0] as string]) {
      const put = await etcdctlAsync(target, ["put", "shape", "1"]);
      assert.equal(put.status, 0, put.stderr);
    }
    for (const command of ["status", "health", "hashkv"]) {
      const args = ["endpoint", command, "--cluster", "-w", "json"];
      const deadline = Date.now() + 10_000;
      for (;;) {
        // etcd's members may still be publishing their URLs or electing: retry its side only.
        const expected = await etcdctlAsync(etcdUrl, args);
        if (expected.status === 0 && (JSON.parse(expected.stdout) as unknown[]).length === 3) {
          const got = parsed<unknown[]>(await etcdctlAsync(urls[0] as string, args), command);
          assert.deepEqual(shapeOf(got), shapeOf(JSON.parse(expected.stdout)), command);
          break;
        }
        assert.ok(Date.now() < deadline, `etcd never answered ${command}: ${expected.stderr}`);
        await sleep(200);
      }
    }
  });
});
