// Member and cluster ids derived as etcd 3.4 derives them: the same flags give
// etcd's cluster id exactly, and a member id that is the low 53 bits of
// etcd's (Raft node ids stay exact JS numbers; see src/server/identity.ts).
// Checked against values etcd 3.4 printed, and against a real etcd started
// with the same flags on the same URLs, one after the other.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hostDigest } from "../../runtime/node/digest.ts";
import { clusterIdOf, etcdMemberIdOf, memberIdOf } from "../../src/server/identity.ts";
import { etcdctlAsync, freePort, startEdgetcd, startEtcd } from "../support/processes.ts";

const digest = hostDigest;
const low53 = (id: bigint) => Number(id & ((1n << 53n) - 1n));

/** The header's ids from etcdctl's JSON, read as text (a uint64 is past what a JSON number keeps). */
async function idsOf(endpoint: string): Promise<{ cluster: bigint; member: bigint }> {
  const result = await etcdctlAsync(endpoint, ["get", "x", "-w", "json"]);
  assert.equal(result.status, 0, result.stderr);
  return { cluster: BigInt(/"cluster_id":(\d+)/.exec(result.stdout)?.[1] ?? "0"), member: BigInt(/"member_id":(\d+)/.exec(result.stdout)?.[1] ?? "0") };
}

describe("member and cluster ids as etcd derives them", () => {
  test("values etcd 3.4 printed, and the cluster id etcd's e2e expects", async () => {
    // `etcdctl snapshot restore --name r1 --initial-cluster r1=http://127.0.0.1:23802` (token etcd-cluster) logged these.
    const member = await etcdMemberIdOf(["http://127.0.0.1:23802"], "etcd-cluster", digest);
    assert.equal(member, 0x2943212f5e2cf73n);
    assert.equal(await memberIdOf(["http://127.0.0.1:23802"], "etcd-cluster", digest), low53(member));
    assert.equal(await clusterIdOf([member], digest), 0x70f9cf875eabdc0bn);
    // etcd's e2e TestCtlV3GetFormat (one member testname0, peer auto-TLS, token "new") expects this cluster_id in its protobuf output.
    const cluster = await clusterIdOf([await etcdMemberIdOf(["https://localhost:20001"], "new", digest)], digest);
    const varint: number[] = [];
    for (let rest = cluster; ; rest >>= 7n) {
      if (rest < 0x80n) {
        varint.push(Number(rest));
        break;
      }
      varint.push(Number((rest & 0x7fn) | 0x80n));
    }
    assert.deepEqual(varint, [0x93, 0xe7, 0xf6, 0x93, 0xd4, 0xc5, 0x86, 0xe1, 0x34]);
  });

  test("the same flags on the same URLs: etcd's cluster id, and the low 53 bits of its member id", { timeout: 60_000 }, async () => {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const etcd = await startEtcd({ clientPort, peerPort });
    const fromEtcd = await idsOf(etcd.endpoint);
    await etcd.kill();
    const edgetcd = await startEdgetcd({ clientPort, peerPort });
    try {
      const fromEdgetcd = await idsOf(edgetcd.endpoint);
      assert.equal(fromEdgetcd.cluster, fromEtcd.cluster);
      assert.equal(fromEdgetcd.member, BigInt(low53(fromEtcd.member)));
    } finally {
      await edgetcd.kill();
    }
  });
});
