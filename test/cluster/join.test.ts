// Growing a running cluster the etcd way: `etcdctl member add`, then start the
// new member with --initial-cluster-state existing. It finds its id and the
// cluster id from the others, catches up (here past a compacted log, so by
// snapshot), publishes its name and client URL, and serves; a learner joins,
// catches up and is promoted.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { etcdctlAsync, freePort, startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";
import { clientsOf, electionMs, eventually, heartbeatMs, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const snapshotFlags = ["--snapshot-count", "40", "--experimental-snapshot-catchup-entries", "10"];

interface MemberListJson {
  members: Array<{ ID: number | string; name: string; peerURLs: string[]; clientURLs?: string[]; isLearner?: boolean }>;
}

async function memberList(endpoint: string): Promise<MemberListJson> {
  const listed = await etcdctlAsync(endpoint, ["member", "list", "-w", "json"]);
  assert.equal(listed.status, 0, listed.stderr);
  return JSON.parse(listed.stdout) as MemberListJson;
}

describe("joining a running cluster", () => {
  let cluster: TestCluster;
  const joined: RunningServer[] = [];
  before(async () => {
    cluster = await startCluster(3, { extraArgs: snapshotFlags });
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all(joined.map((server) => server.kill()));
    await cluster?.stopAll();
  });

  async function startJoiner(name: string, peerPort: number, clientPort: number): Promise<RunningServer> {
    const initialCluster = [
      ...cluster.members.map((member) => `${member.name}=http://127.0.0.1:${member.peerPort}`),
      `${name}=http://127.0.0.1:${peerPort}`,
    ].join(",");
    const server = await startEdgetcd({
      dataDir: join(tempDir("edgetcd-join"), name),
      clientPort,
      peerPort,
      extraArgs: [
        "--name", name,
        "--initial-cluster", initialCluster,
        "--initial-cluster-state", "existing",
        "--initial-cluster-token", "test-cluster",
        "--heartbeat-interval", String(heartbeatMs),
        "--election-timeout", String(electionMs),
        ...snapshotFlags,
      ],
    });
    joined.push(server);
    return server;
  }

  test("member add, then a member started with --initial-cluster-state existing catches up and serves", async () => {
    const endpoints = cluster.endpoints().join(",");
    const { kv } = clientsOf(cluster.members[0] as ClusterMember);
    // Enough writes that the log is compacted: the new member needs a snapshot.
    for (let i = 0; i < 120; i++) await kv.put({ key: bytes(`join/${i}`), value: bytes(`v${i}`) });

    const peerPort = await freePort();
    const clientPort = await freePort();
    const added = await etcdctlAsync(endpoints, ["member", "add", "m4", `--peer-urls=http://127.0.0.1:${peerPort}`]);
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /Member +[0-9a-f]+ added to cluster +[0-9a-f]+/);
    assert.match(added.stdout, /ETCD_INITIAL_CLUSTER_STATE="existing"/);

    const server = await startJoiner("m4", peerPort, clientPort);
    const target = (await kv.put({ key: bytes("join/last"), value: bytes("z") })).header?.revision ?? 0n;
    const joiner = clientsOf(server);
    await eventually("the new member applied every write", async () => {
      const range = await joiner.kv.range({ key: bytes("join/"), rangeEnd: bytes("join0"), serializable: true });
      return range.count === 121n && (range.header?.revision ?? 0n) >= target;
    });
    assert.match(server.output(), /applied snapshot from the leader/);

    // Same cluster id, its own member id, its name and client URL published through the log.
    const status = await joiner.maintenance.status({});
    const leaderStatus = await clientsOf(cluster.members[0] as ClusterMember).maintenance.status({});
    assert.equal(status.header?.clusterId, leaderStatus.header?.clusterId);
    await eventually("m4 published its name and client URL", async () => {
      const list = await memberList(endpoints);
      const m4 = list.members.find((member) => member.peerURLs.includes(`http://127.0.0.1:${peerPort}`));
      return m4?.name === "m4" && (m4.clientURLs ?? []).includes(`http://127.0.0.1:${clientPort}`);
    });
    // It is a voter taking part: linearizable reads and writes through it work.
    const put = await joiner.kv.put({ key: bytes("join/from-m4"), value: bytes("4") });
    const read = await clientsOf(cluster.members[1] as ClusterMember).kv.range({ key: bytes("join/from-m4") });
    assert.equal(read.count, 1n);
    assert.ok((read.header?.revision ?? 0n) >= (put.header?.revision ?? 0n));
    // Every member applies the write (a follower may be a moment behind), then all hash alike.
    const servers = [...cluster.members, server];
    const revision = put.header?.revision ?? 0n;
    for (const member of servers) {
      await eventually(`member on ${member.clientPort} applied revision ${revision}`, async () => {
        const range = await clientsOf(member).kv.range({ key: bytes("join/from-m4"), serializable: true });
        return (range.header?.revision ?? 0n) >= revision;
      });
    }
    const hashes = await Promise.all(servers.map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision })).hash));
    assert.equal(new Set(hashes).size, 1, `equal HashKV: ${hashes.join(", ")}`);
  });

  test("a learner joins, catches up, refuses linearizable reads, and is promoted", async () => {
    const endpoints = cluster.endpoints().join(",");
    const peerPort = await freePort();
    const clientPort = await freePort();
    const added = await etcdctlAsync(endpoints, ["member", "add", "m5", "--learner", `--peer-urls=http://127.0.0.1:${peerPort}`]);
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /Member +[0-9a-f]+ added to cluster +[0-9a-f]+/);
    const id = /Member +([0-9a-f]+) added/.exec(added.stdout)?.[1] as string;
    const server = await startJoiner("m5", peerPort, clientPort);
    const learner = clientsOf(server);
    const target = (await clientsOf(cluster.members[0] as ClusterMember).kv.put({ key: bytes("learner/x"), value: bytes("1") })).header
      ?.revision ?? 0n;
    await eventually("the learner caught up", async () => {
      const range = await learner.kv.range({ key: bytes("learner/x"), serializable: true });
      return range.count === 1n && (range.header?.revision ?? 0n) >= target;
    });
    await assert.rejects(learner.kv.range({ key: bytes("learner/x") }), /rpc not supported for learner/);
    await eventually("promote succeeds once the learner is in sync", async () => {
      const promoted = await etcdctlAsync(endpoints, ["member", "promote", id]);
      return promoted.status === 0 && /promoted in cluster/.test(promoted.stdout);
    });
    const list = await memberList(endpoints);
    assert.equal(list.members.length, 5);
    assert.ok(list.members.every((member) => member.isLearner !== true), "no learner left");
    await eventually("the promoted member serves linearizable reads", async () => {
      const range = await learner.kv.range({ key: bytes("learner/x") }, { timeoutMs: 2000 });
      return range.count === 1n;
    });
  });

  test("a removed member stops by itself, as etcd does, and the rest keep serving", async () => {
    const endpoints = cluster.endpoints().join(",");
    const victim = joined[0] as RunningServer;
    const list = await memberList(endpoints);
    const record = list.members.find((member) => (member.clientURLs ?? []).includes(victim.endpoint) || member.name === "m4");
    assert.ok(record !== undefined, "m4 is listed");
    const hexId = BigInt(record.ID).toString(16);
    const exited = new Promise<number | null>((resolve) => {
      if (victim.process.exitCode !== null) resolve(victim.process.exitCode);
      else victim.process.once("exit", (code) => resolve(code));
    });
    const removed = await etcdctlAsync(endpoints, ["member", "remove", hexId]);
    assert.equal(removed.status, 0, removed.stderr);
    const code = await Promise.race([exited, sleep(10_000).then(() => "still running" as const)]);
    assert.equal(code, 0, "the removed member exits with status 0");
    assert.match(victim.output(), /the member has been permanently removed from the cluster/);
    const put = await etcdctlAsync(endpoints, ["put", "after-remove", "1"]);
    assert.equal(put.status, 0, put.stderr);
    assert.equal((await memberList(endpoints)).members.length, 4);
  });
});
