// One port, every protocol: gRPC (HTTP/2), gRPC-Web and Connect (JSON and
// binary, over HTTP/1.1 and HTTP/2), etcd's JSON gateway and health routes.
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { KV, Maintenance } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);
const base64 = (value: string) => Buffer.from(value).toString("base64");

describe("protocols on the client port", () => {
  let edgetcd: RunningServer;
  before(async () => {
    edgetcd = await startEdgetcd();
  }, { timeout: 120_000 });
  after(async () => {
    await edgetcd?.stop();
  });

  const transports: Array<[string, (baseUrl: string) => Transport]> = [
    ["gRPC over HTTP/2", (baseUrl) => createGrpcTransport({ baseUrl })],
    ["gRPC-Web over HTTP/1.1", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/2", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
    ["Connect JSON over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
    ["Connect binary over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true })],
    ["Connect JSON over HTTP/2", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false })],
  ];

  for (const [name, makeTransport] of transports) {
    test(`${name}: put, get, status, and etcd's errors`, async () => {
      const transport = makeTransport(`http://${edgetcd.endpoint}`);
      const kv = createClient(KV, transport);
      const key = `proto/${name}`;
      const put = await kv.put({ key: bytes(key), value: bytes("v1") });
      const range = await kv.range({ key: bytes(key) });
      assert.equal(range.kvs.length, 1);
      assert.equal(text(range.kvs[0]!.value), "v1");
      assert.equal(range.kvs[0]!.modRevision, put.header!.revision);
      const status = await createClient(Maintenance, transport).status({});
      assert.equal(status.leader, status.header!.memberId);
      await assert.rejects(kv.range({ key: bytes(key), revision: 1_000_000n }), /required revision is a future revision/);
    });
  }

  test("the JSON gateway answers like etcd's", async () => {
    // Fresh servers, so both histories (and revisions) are the same.
    const [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
    try {
      const call = async (server: RunningServer, path: string, body: object) => {
        const response = await fetch(`http://${server.endpoint}${path}`, { method: "POST", body: JSON.stringify(body) });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      for (const server of [etcd, edgetcd]) await call(server, "/v3/kv/put", { key: base64("gw/a"), value: base64("1") });
      const requests: Array<[string, object]> = [
        ["/v3/kv/put", { key: base64("gw/b"), value: base64("2"), prev_kv: true }],
        ["/v3/kv/put", { key: base64("gw/a"), value: base64("3"), prev_kv: true }],
        ["/v3/kv/range", { key: base64("gw/"), range_end: base64("gw0") }],
        ["/v3/kv/range", { key: base64("gw/"), range_end: base64("gw0"), count_only: true }],
        ["/v3/kv/range", { key: base64("gw/"), revision: "100000" }],
        ["/v3/kv/deleterange", { key: base64("gw/b"), prev_kv: true }],
        ["/v3/kv/range", { key: "" }],
      ];
      const strip = (value: unknown): unknown =>
        JSON.parse(JSON.stringify(value, (key, item) => (["cluster_id", "member_id", "raft_term"].includes(key) ? "<id>" : item)));
      for (const [path, body] of requests) {
        const expected = await call(etcd, path, body);
        const actual = await call(edgetcd, path, body);
        assert.equal(actual.status, expected.status, `${path} ${JSON.stringify(body)}: HTTP status`);
        assert.deepEqual(strip(actual.body), strip(expected.body), `${path} ${JSON.stringify(body)}: body`);
      }
    } finally {
      await Promise.all([etcd.stop(), edgetcd.stop()]);
    }
  });

  test("health, readiness and version endpoints", async () => {
    const health = await fetch(`http://${edgetcd.endpoint}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { health: string }).health, "true");
    assert.equal((await fetch(`http://${edgetcd.endpoint}/livez`)).status, 200);
    assert.equal((await fetch(`http://${edgetcd.endpoint}/readyz`)).status, 200);
    const version = (await (await fetch(`http://${edgetcd.endpoint}/version`)).json()) as Record<string, string>;
    // The version policy (src/version.ts): an etcd 3.4 at or past the gates clients apply.
    const [major, minor, patch] = (version.etcdserver ?? "").split(".").map(Number) as [number, number, number];
    assert.deepEqual([major, minor], [3, 4]);
    // Kubernetes sends watch progress requests only to 3.4.31 or later (edgetcd serves them).
    assert.ok(patch >= 31, `etcdserver ${version.etcdserver}`);
    assert.equal(version.etcdcluster, "3.4.0");
    // edgetcd's own version beside etcd's two fields.
    const ownVersion = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
    assert.equal(version.edgetcd, ownVersion);
    const metrics = await (await fetch(`http://${edgetcd.endpoint}/metrics`)).text();
    assert.match(metrics, /process_cpu_seconds_total/);
  });
});
