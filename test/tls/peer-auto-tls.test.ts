// --peer-auto-tls (etcd 3.4's default e2e configuration): a 3-member cluster on
// https://127.0.0.1 peer URLs with no peer certificate files elects a leader
// and replicates (etcdctl put on one member, get on another). Each member
// serves a self-signed certificate made in memory and dials its peers without
// verifying theirs, as etcd does; the peer port really speaks TLS (a plaintext
// HTTP/2 client is not answered, a TLS one that skips verification is).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { clientsOf, leaderOf, sleep, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { etcdctl } from "../support/processes.ts";
import { runtimeTitle } from "../support/runtime.ts";

async function peerVersion(url: string, options: http2.SecureClientSessionOptions = {}): Promise<string> {
  const session = http2.connect(url, options);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no answer in 5 s")), 5000);
      session.on("error", (error) => reject(error));
      const request = session.request({ ":method": "GET", ":path": "/version" });
      request.on("error", (error) => reject(error));
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        clearTimeout(timer);
        resolve(body);
      });
    });
  } finally {
    session.destroy();
  }
}

describe(`peer auto TLS on ${runtimeTitle}`, { timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let leader: ClusterMember;

  before(async () => {
    cluster = await startCluster(3, { peerScheme: "https", argsFor: () => ["--peer-auto-tls"] });
    leader = await leaderOf(cluster, 20_000);
  });
  after(async () => {
    await cluster?.stopAll();
  });

  test("the members elect a leader and replicate over self-signed https peer URLs (put on one, get on another)", async () => {
    const put = etcdctl(`127.0.0.1:${leader.clientPort}`, ["put", "over-auto-tls", "yes"]);
    assert.equal(put.status, 0, put.stderr);
    const other = cluster.members.find((member) => member !== leader) as ClusterMember;
    let got = "";
    for (let attempt = 0; attempt < 50 && !got.includes("yes"); attempt++) {
      got = etcdctl(`127.0.0.1:${other.clientPort}`, ["get", "over-auto-tls", "--consistency=s"]).stdout;
      if (!got.includes("yes")) await sleep(100);
    }
    assert.equal(got, "over-auto-tls\nyes\n");
    const linearizable = etcdctl(`127.0.0.1:${other.clientPort}`, ["get", "over-auto-tls"]);
    assert.equal(linearizable.stdout, "over-auto-tls\nyes\n", linearizable.stderr);
    const members = await clientsOf(other).cluster.memberList({});
    assert.equal(members.members.length, 3);
    for (const member of members.members) assert.match(member.peerURLs[0] ?? "", /^https:\/\/127\.0\.0\.1:/);
  });

  test("the peer port speaks TLS with a self-signed certificate, not plaintext", async () => {
    const url = `https://127.0.0.1:${leader.peerPort}`;
    // Unverified, as the members dial each other: answered.
    assert.match(await peerVersion(url, { rejectUnauthorized: false }), /etcdserver/);
    // Verified against the default roots: the self-signed certificate is not trusted.
    await assert.rejects(peerVersion(url), /self[- ]signed|certificate|verify/i);
    // Plaintext HTTP/2 to the same port: no version is answered (the session fails or ends empty).
    const plaintext = await peerVersion(`http://127.0.0.1:${leader.peerPort}`).catch((error: Error) => `refused: ${error.message}`);
    assert.doesNotMatch(plaintext, /etcdserver/);
  });
});
