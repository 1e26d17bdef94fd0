// How a member started with --initial-cluster-state existing finds itself in
// the cluster's member list: a member that has not applied the `member add`
// yet answers without it (test:long's member replace, L1 seed 2050: the new
// member exited with "not in the cluster's member list"), so the others are
// asked too; a member nobody added still fails, with etcd's hint.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseFlags } from "../../src/cli/flags.ts";
import { serverConfigFromFlags } from "../../src/cli/server-config.ts";
import { clusterIdHeader, joinIdentity } from "../../src/server/join.ts";

const config = serverConfigFromFlags(
  parseFlags(
    [
      "--name=m3",
      "--initial-cluster-state=existing",
      "--initial-cluster=m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380",
      "--initial-advertise-peer-urls=http://10.0.0.3:2380",
    ],
    {},
  ),
);

const old = [
  { id: 1, name: "m1", peerURLs: ["http://10.0.0.1:2380"], clientURLs: [] },
  { id: 2, name: "m2", peerURLs: ["http://10.0.0.2:2380"], clientURLs: [] },
];
const added = [...old, { id: 33, name: "", peerURLs: ["http://10.0.0.3:2380"], clientURLs: [] }];

/** A fake clock and a fetch whose member lists come from `listFor(host, call)`. */
function world(listFor: (host: string, call: number) => unknown[] | undefined) {
  let now = 0;
  let calls = 0;
  const asked: string[] = [];
  const fetch = (async (input: URL | string) => {
    const url = new URL(String(input));
    asked.push(url.hostname);
    const list = listFor(url.hostname, calls++);
    if (list === undefined) throw new TypeError("fetch failed");
    return new Response(JSON.stringify(list), { headers: { [clusterIdHeader]: "abc123" } });
  }) as typeof globalThis.fetch;
  return {
    asked,
    options: { timeoutMs: 10_000, fetch, nowMs: () => now, sleep: async (ms: number) => void (now += ms) },
  };
}

describe("joinIdentity", () => {
  test("a member that has not applied the add yet is passed over for one that has", async () => {
    const { options, asked } = world((host) => (host === "10.0.0.1" ? old : added));
    const identity = await joinIdentity(config, options);
    assert.equal(identity.memberId, 33);
    assert.equal(identity.clusterId, 0xabc123n);
    assert.deepEqual(asked, ["10.0.0.1", "10.0.0.2"]);
    assert.deepEqual((identity.initialMembers ?? []).map((member) => member.name), ["m1", "m2", "m3"]);
  });

  test("every member lags at first: the list is asked again until one lists us", async () => {
    const { options } = world((_, call) => (call < 4 ? old : added));
    const identity = await joinIdentity(config, options);
    assert.equal(identity.memberId, 33);
  });

  test("a member nobody added fails with etcd's hint once the grace has passed, not at the first answer", async () => {
    const { options, asked } = world(() => old);
    await assert.rejects(joinIdentity(config, options), /is not in the cluster's member list; add it first with 'etcdctl member add'/);
    assert.ok(asked.length > 2, `asked ${asked.length} times`);
  });

  test("no member answers: etcd's could-not-retrieve error at the deadline", async () => {
    const { options } = world(() => undefined);
    await assert.rejects(joinIdentity(config, options), /could not retrieve cluster information from the given URLs/);
  });
});
