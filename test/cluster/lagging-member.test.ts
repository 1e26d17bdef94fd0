// A member that missed the addition of a new member, which then became
// leader, catches up once it can hear from that leader again (issue 24).
// The lagging member M does not know the new member D, so it refused D's
// peer streams as "error sender not found"; with D leading, nobody else
// sends M the log that would teach it D, and with pre-vote and check-quorum
// M could never win an election either: M stayed behind forever. Now M asks
// the members it knows (GET /members on their peer port) whether D is one
// of them, and admits D when one vouches for it. Without pre-vote (the
// default), M's term rises while it is cut off; Raft then takes D's lower-term
// heartbeat only to answer it with M's term, so D steps down and a leader at a
// newer term emerges (it failed on Bun about 2 runs in 3 before that).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { PeerProxy } from "../support/peer-proxy.ts";
import { freePort, startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("a member lagging behind a membership change", () => {
  let cluster: TestCluster;
  let newcomer: RunningServer | undefined;
  let newcomerToLagging: PeerProxy | undefined;
  before(async () => {
    cluster = await startCluster(3, { proxies: true });
  }, { timeout: 120_000 });
  after(async () => {
    await newcomer?.kill();
    await newcomerToLagging?.close();
    await cluster?.stopAll();
  });

  test("catches up from a leader it did not know, once a known member vouches for it", { timeout: 120_000 }, async () => {
    const links = cluster.links;
    assert.ok(links !== undefined);
    const leader = await leaderOf(cluster);
    const lagging = cluster.members.find((member) => member !== leader) as ClusterMember;
    const others = cluster.members.filter((member) => member !== lagging);
    const { kv } = clientsOf(leader);
    for (let i = 0; i < 10; i++) await kv.put({ key: bytes(`lag/${i}`), value: bytes(`v${i}`) });

    // M hears nothing from the others, nor from the newcomer (its dials to M go through a black hole).
    links.isolate(lagging.name);
    newcomerToLagging = await PeerProxy.start(lagging.peerPort);
    newcomerToLagging.blackhole();
    const newcomerPeerPort = await freePort();
    const newcomerPeerUrl = `http://127.0.0.1:${newcomerPeerPort}`;
    const added = await clientsOf(leader).cluster.memberAdd({ peerURLs: [newcomerPeerUrl] });
    const newcomerId = added.member?.ID;
    assert.ok(newcomerId !== undefined);
    const initialCluster = [...cluster.members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`), `m4=${newcomerPeerUrl}`].join(",");
    newcomer = await startEdgetcd({
      dataDir: join(tempDir("edgetcd-lagging"), "m4"),
      peerPort: newcomerPeerPort,
      env: { EDGETCD_TEST_PEER_DIAL: JSON.stringify({ [`http://127.0.0.1:${lagging.peerPort}`]: newcomerToLagging.origin }) },
      extraArgs: [
        "--name", "m4",
        "--initial-cluster", initialCluster,
        "--initial-cluster-state", "existing",
        "--initial-cluster-token", "test-cluster",
        "--heartbeat-interval", "50",
        "--election-timeout", "500",
      ],
    });
    const newcomerClients = clientsOf(newcomer);
    let revision = (await kv.put({ key: bytes("lag/added"), value: bytes("x") })).header?.revision ?? 0n;
    await waitForRevision(newcomerClients, revision, "the newcomer", () => newcomer?.output() ?? "");

    // The newcomer leads; M has never applied its addition. (Leadership may
    // have moved while the newcomer started: check-quorum counts it.)
    const current = await leaderOf(cluster);
    if ((await newcomerClients.maintenance.status({})).leader !== newcomerId) {
      await clientsOf(current).maintenance.moveLeader({ targetID: newcomerId });
    }
    assert.equal((await newcomerClients.maintenance.status({})).leader, newcomerId, "the newcomer leads");
    revision = (await newcomerClients.kv.put({ key: bytes("lag/led"), value: bytes("y") })).header?.revision ?? 0n;

    links.heal();
    newcomerToLagging.pass();
    await waitForRevision(clientsOf(lagging), revision, "the lagging member", () => lagging.server?.output() ?? "");
    const hashes = await Promise.all(
      [...others, lagging].map(async (member) => (await clientsOf(member).maintenance.hashKV({ revision })).hash),
    );
    hashes.push((await newcomerClients.maintenance.hashKV({ revision })).hash);
    assert.equal(new Set(hashes).size, 1, `equal HashKV: ${hashes.join(", ")}`);
    assert.match(lagging.server?.output() ?? "", /vouched/, "the newcomer was admitted on another member's word");
  });
});

async function waitForRevision(clients: ReturnType<typeof clientsOf>, revision: bigint, who: string, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const range = await clients.kv.range({ key: bytes("lag/"), rangeEnd: bytes("lag0"), serializable: true }, { timeoutMs: 1000 });
      if ((range.header?.revision ?? 0n) >= revision) return;
    } catch {
      // starting up, or no leader yet
    }
    assert.ok(Date.now() < deadline, `${who} did not reach revision ${revision}; its log:\n${output().slice(-6000)}`);
    await sleep(100);
  }
}
