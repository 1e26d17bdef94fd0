// A cluster started as one member grows the etcd way (issue 19): the single
// member is a Raft voter of its own, serves its peer URL, and `etcdctl member
// add` plus a member started with --initial-cluster-state existing make it
// two, then three; the first member can then stop and the other two go on.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { etcdctlAsync, freePort, startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";
import { clientsOf, electionMs, eventually, heartbeatMs } from "../support/cluster.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const timing = ["--heartbeat-interval", String(heartbeatMs), "--election-timeout", String(electionMs)];
// A short log, so the members that join catch up by snapshot.
const snapshotFlags = ["--snapshot-count", "30", "--experimental-snapshot-catchup-entries", "10"];

describe("a cluster started as a single member", () => {
  const servers: RunningServer[] = [];
  const peers = new Map<string, number>();
  let first: RunningServer;
  before(async () => {
    const peerPort = await freePort();
    peers.set("default", peerPort);
    first = await startEdgetcd({ peerPort, extraArgs: [...timing, ...snapshotFlags] });
    servers.push(first);
  }, { timeout: 60_000 });
  after(async () => {
    await Promise.all(servers.map((server) => server.kill()));
  });

  async function join_(name: string): Promise<RunningServer> {
    const peerPort = await freePort();
    const clientPort = await freePort();
    const endpoints = servers.filter((server) => server.process.exitCode === null).map((server) => server.endpoint).join(",");
    const added = await etcdctlAsync(endpoints, ["member", "add", name, `--peer-urls=http://127.0.0.1:${peerPort}`]);
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /Member +[0-9a-f]+ added to cluster +[0-9a-f]+/);
    const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added.stdout)?.[1];
    assert.ok(initialCluster !== undefined, added.stdout);
    peers.set(name, peerPort);
    const server = await startEdgetcd({
      dataDir: join(tempDir("edgetcd-grow"), name),
      clientPort,
      peerPort,
      extraArgs: ["--name", name, "--initial-cluster", initialCluster, "--initial-cluster-state", "existing", ...timing, ...snapshotFlags],
    });
    servers.push(server);
    return server;
  }

  test("it serves its peer URL and is its own leader", async () => {
    const status = await clientsOf(first).maintenance.status({});
    assert.equal(status.leader, status.header?.memberId);
    const peerPort = peers.get("default") as number;
    const members = await fetch(`http://127.0.0.1:${peerPort}/members`);
    assert.equal(members.status, 200);
  });

  test("member add and a member started with --initial-cluster-state existing: two members, then three", async () => {
    const { kv } = clientsOf(first);
    // Past --snapshot-count: the joiners need the leader's snapshot.
    for (let i = 0; i < 60; i++) await kv.put({ key: bytes(`grow/${i}`), value: bytes(`v${i}`) });

    const second = await join_("m2");
    await eventually("m2 applied every write", async () => {
      const range = await clientsOf(second).kv.range({ key: bytes("grow/"), rangeEnd: bytes("grow0"), serializable: true });
      return range.count === 60n;
    });
    assert.match(second.output(), /applied snapshot from the leader/);
    // Two voters: a write needs both, and goes through either.
    const put = await clientsOf(second).kv.put({ key: bytes("grow/from-m2"), value: bytes("2") });
    const read = await kv.range({ key: bytes("grow/from-m2") });
    assert.equal(read.count, 1n);
    assert.ok((read.header?.revision ?? 0n) >= (put.header?.revision ?? 0n));

    const third = await join_("m3");
    await eventually("m3 applied every write", async () => {
      const range = await clientsOf(third).kv.range({ key: bytes("grow/"), rangeEnd: bytes("grow0"), serializable: true });
      return range.count === 61n;
    });
    const listed = await etcdctlAsync(first.endpoint, ["member", "list", "-w", "json"]);
    assert.equal(listed.status, 0, listed.stderr);
    const members = (JSON.parse(listed.stdout) as { members: Array<{ name: string; clientURLs?: string[] }> }).members;
    assert.deepEqual(members.map((member) => member.name).sort(), ["default", "m2", "m3"]);
    assert.ok(members.every((member) => (member.clientURLs ?? []).length === 1), "every member published its client URL");
  });

  test("the first member stops; the two it grew keep a quorum and serve", async () => {
    await first.kill();
    const [, second, third] = servers as [RunningServer, RunningServer, RunningServer];
    await eventually("a write through the remaining two", async () => {
      const put = await clientsOf(second).kv.put({ key: bytes("grow/after"), value: bytes("x") }, { timeoutMs: 2000 });
      return put.header !== undefined;
    });
    await eventually("m3 reads it linearizably", async () => {
      const range = await clientsOf(third).kv.range({ key: bytes("grow/after") }, { timeoutMs: 2000 });
      return range.count === 1n;
    });
  });
});
