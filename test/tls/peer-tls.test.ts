// Peer TLS (issue 13): a 3-member cluster whose peer URLs are https, with
// --peer-client-cert-auth, --peer-trusted-ca-file, --peer-crl-file and
// --peer-cert-allowed-cn, elects a leader and replicates (etcdctl put on one
// member, get on another). An outsider who reaches the peer port with no
// certificate, one from another CA, a revoked one, or a valid one whose CN is
// not allowed cannot deliver a forged Raft message even in the leader's name:
// the connection is refused before any HTTP is read, no member's term moves,
// and HashKV is equal on every member afterwards. (Over plaintext the same
// forged heartbeat is admitted: test/abuse/peer-port.test.ts.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { encodeMessages } from "../../src/peer/codec.ts";
import { peerPaths, peerRequestHeaders } from "../../src/peer/headers.ts";
import { MessageType, type Message } from "../../src/raft/types.ts";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { etcdctl } from "../support/processes.ts";
import { runtimeTitle } from "../support/runtime.ts";
import { makeTestPki, type CertFiles, type TestPki } from "./peer-certs.ts";

/** The CommonName every member's certificate carries (--peer-cert-allowed-cn takes one name). */
const memberCommonName = "member";

function forgedHeartbeat(from: number, to: number, term: number): Message {
  return { type: MessageType.Heartbeat, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

function frameOf(payload: Uint8Array): Uint8Array {
  const framed = new Uint8Array(4 + payload.length);
  new DataView(framed.buffer).setUint32(0, payload.length);
  framed.set(payload, 4);
  return framed;
}

type Outcome = { status: number } | { refused: string };

/**
 * One request over TLS to a peer port, showing `identity` (or no certificate).
 * The server's certificate is trusted (the attacker knows the CA); what is
 * tested is whether the server takes the attacker.
 */
async function peerRequest(peerPort: number, ca: string, identity: CertFiles | undefined, path: string, headers: Record<string, string>, body?: Uint8Array): Promise<Outcome> {
  const session = http2.connect(`https://127.0.0.1:${peerPort}`, {
    ca: readFileSync(ca),
    ...(identity === undefined ? {} : { cert: readFileSync(identity.cert), key: readFileSync(identity.key) }),
  });
  try {
    return await new Promise<Outcome>((resolve) => {
      session.on("error", (error) => resolve({ refused: error.message }));
      session.on("close", () => resolve({ refused: "session closed" }));
      const request = session.request({ ":method": body === undefined ? "GET" : "POST", ":path": path, ...headers }, { endStream: body === undefined });
      request.on("error", (error) => resolve({ refused: error.message }));
      request.on("response", (head) => resolve({ status: Number(head[":status"]) }));
      if (body !== undefined) request.end(body);
      setTimeout(() => resolve({ refused: "no answer in 5 s" }), 5000);
    });
  } finally {
    session.destroy();
  }
}

describe(`peer TLS on ${runtimeTitle}`, { timeout: 300_000 }, () => {
  let pki: TestPki;
  let cluster: TestCluster;
  let leader: ClusterMember;
  let follower: ClusterMember;
  const memberIds = new Map<ClusterMember, number>();
  let clusterId = 0n;

  before(async () => {
    pki = makeTestPki();
    cluster = await startCluster(3, {
      peerScheme: "https",
      argsFor: (member) => {
        const own = pki.issue(member.name, memberCommonName);
        return [
          "--peer-cert-file", own.cert,
          "--peer-key-file", own.key,
          "--peer-trusted-ca-file", pki.ca,
          "--peer-client-cert-auth",
          "--peer-crl-file", pki.crl,
          "--peer-cert-allowed-cn", memberCommonName,
        ];
      },
    });
    leader = await leaderOf(cluster, 20_000);
    follower = cluster.members.find((member) => member !== leader) as ClusterMember;
    for (const member of cluster.members) {
      const status = await clientsOf(member).maintenance.status({});
      memberIds.set(member, Number(status.header?.memberId));
      clusterId = status.header?.clusterId ?? 0n;
    }
  });
  after(async () => {
    await cluster?.stopAll();
  });

  const idOf = (member: ClusterMember) => memberIds.get(member) as number;
  const termOf = async (member: ClusterMember) => Number((await clientsOf(member).maintenance.status({})).raftTerm);

  test("the members elect a leader and replicate over https peer URLs (etcdctl put on one, get on another)", async () => {
    const put = etcdctl(`127.0.0.1:${leader.clientPort}`, ["put", "over-tls", "yes"]);
    assert.equal(put.status, 0, put.stderr);
    const other = cluster.members.find((member) => member !== leader) as ClusterMember;
    let got = "";
    for (let attempt = 0; attempt < 50 && !got.includes("yes"); attempt++) {
      got = etcdctl(`127.0.0.1:${other.clientPort}`, ["get", "over-tls", "--consistency=s"]).stdout;
      if (!got.includes("yes")) await sleep(100);
    }
    assert.equal(got, "over-tls\nyes\n");
    const linearizable = etcdctl(`127.0.0.1:${other.clientPort}`, ["get", "over-tls"]);
    assert.equal(linearizable.stdout, "over-tls\nyes\n", linearizable.stderr);
  });

  test("lease questions a follower forwards to the leader travel over peer TLS (leaseTimeToLive, keep-alive)", async () => {
    const granted = await clientsOf(leader).lease.leaseGrant({ TTL: 60n });
    const answer = await clientsOf(follower).lease.leaseTimeToLive({ ID: granted.ID });
    assert.ok(answer.TTL > 0n && answer.TTL <= 60n, `TTL ${answer.TTL}`);
    const keptAlive = etcdctl(`127.0.0.1:${follower.clientPort}`, ["lease", "keep-alive", "--once", granted.ID.toString(16)]);
    assert.equal(keptAlive.status, 0, keptAlive.stderr);
    assert.match(keptAlive.stdout, /keepalived with TTL\(60\)/);
  });

  test("a member's own certificate is taken (the refusals below are about the certificate, not the client)", async () => {
    const outcome = await peerRequest(follower.peerPort, pki.ca, pki.issue("control", memberCommonName), peerPaths.probing, {});
    assert.deepEqual(outcome, { status: 200 });
  });

  const attackers: Array<[string, (pki: TestPki) => CertFiles | undefined]> = [
    ["no certificate", () => undefined],
    ["a certificate of another CA", (p) => p.otherCa],
    ["a revoked certificate (--peer-crl-file)", (p) => p.revoked],
    ["a CA-signed certificate whose CN is not allowed (--peer-cert-allowed-cn)", (p) => p.issue("intruder", "intruder")],
  ];
  for (const [name, identityOf] of attackers) {
    test(`a peer with ${name} cannot deliver a forged heartbeat in the leader's name, nor ask GET /members`, async () => {
      const identity = identityOf(pki);
      const term = await termOf(follower);
      const forged = frameOf(encodeMessages([forgedHeartbeat(idOf(leader), idOf(follower), term + 1000)]));
      const headers = peerRequestHeaders(idOf(leader), idOf(follower), clusterId);
      for (const member of [follower, leader]) {
        const outcome = await peerRequest(member.peerPort, pki.ca, identity, peerPaths.stream, headers, forged);
        assert.ok("refused" in outcome, `${member.name} answered ${JSON.stringify(outcome)}`);
        const members = await peerRequest(member.peerPort, pki.ca, identity, "/members", {});
        assert.ok("refused" in members, `${member.name} answered GET /members: ${JSON.stringify(members)}`);
      }
      await sleep(500);
      for (const member of cluster.members) assert.ok((await termOf(member)) < term + 1000, `${member.name} took the forged term`);
      assert.equal((await leaderOf(cluster)).name, leader.name, "the leader did not change");
    });
  }

  test("afterwards every member is alive and HashKV is equal on every member", async () => {
    for (const member of cluster.members) assert.equal(member.server?.process.exitCode, null, `${member.name} died`);
    await clientsOf(leader).kv.put({ key: new TextEncoder().encode("last"), value: new TextEncoder().encode("1") });
    const revision = (await clientsOf(leader).kv.range({ key: new TextEncoder().encode("last") })).header?.revision ?? 0n;
    const hashes: number[] = [];
    for (const member of cluster.members) {
      for (let attempt = 0; attempt < 50; attempt++) {
        const current = (await clientsOf(member).kv.range({ key: new TextEncoder().encode("last"), serializable: true })).header?.revision ?? 0n;
        if (current >= revision) break;
        await sleep(100);
      }
      hashes.push((await clientsOf(member).maintenance.hashKV({ revision })).hash);
    }
    assert.equal(new Set(hashes).size, 1, `HashKV differs: ${hashes.join(", ")}`);
  });
});
