// etcd's JSON gateway beyond KV, beside etcd 3.4: lease routes (an int64 ID
// past 2^53 sent as a JSON number must name the same lease), the streaming
// routes (keep-alive and watch answer line by line with {"result":…}), lock.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type RunningServer, etcdBesideEdgetcd } from "../support/processes.ts";

const base64 = (text: string) => Buffer.from(text).toString("base64");

async function post(server: RunningServer, path: string, body: string): Promise<string> {
  const response = await fetch(`http://${server.endpoint}${path}`, { method: "POST", body, signal: AbortSignal.timeout(10_000) });
  return response.text();
}

/** Reads a streaming gateway answer until `lines` lines arrived, then hangs up. */
async function streamLines(server: RunningServer, path: string, body: string, lines: number, whileOpen?: () => Promise<void>): Promise<unknown[]> {
  const abort = new AbortController();
  const response = await fetch(`http://${server.endpoint}${path}`, { method: "POST", body, signal: abort.signal });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  let started = false;
  while (text.split("\n").filter((line) => line.trim() !== "").length < lines) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
    if (!started && whileOpen !== undefined) {
      started = true;
      await whileOpen();
    }
  }
  abort.abort();
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as unknown);
}

/** The shape of a JSON answer: keys, recursively, without values that differ between servers. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, shape(inner)]).sort());
  return typeof value;
}

describe("the JSON gateway's lease, watch and lock routes, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd();

  test("lease grant, keep-alive (a stream) and time-to-live with an ID past 2^53 as a JSON number", async () => {
    for (const server of [servers.etcd, servers.edgetcd]) {
      const id = "7587862637417283123";
      const granted = JSON.parse(await post(server, "/v3/lease/grant", `{"ID":${id},"TTL":60}`)) as { ID: string; TTL: string };
      assert.equal(granted.ID, id, server.kind);
      const [kept] = (await streamLines(server, "/v3/lease/keepalive", `{"ID":${id}}`, 1)) as Array<{ result: { ID: string; TTL: string } }>;
      assert.equal(kept?.result.ID, id, server.kind);
      assert.equal(kept?.result.TTL, "60", server.kind);
      const ttl = JSON.parse(await post(server, "/v3/kv/lease/timetolive", `{"ID":${id}}`)) as { grantedTTL: string };
      assert.equal(ttl.grantedTTL, "60", server.kind);
    }
  });

  test("a watch streams its created answer and then each event, line by line", async () => {
    const results = await Promise.all(
      [servers.etcd, servers.edgetcd].map((server) =>
        streamLines(server, "/v3/watch", JSON.stringify({ create_request: { key: base64("gw/watched") } }), 2, async () => {
          await post(server, "/v3/kv/put", JSON.stringify({ key: base64("gw/watched"), value: base64("v") }));
        }),
      ),
    );
    const [fromEtcd, fromEdgetcd] = results as [unknown[], unknown[]];
    assert.equal(fromEdgetcd.length, 2);
    assert.deepEqual(shape(fromEdgetcd), shape(fromEtcd));
  });

  test("lock and unlock", async () => {
    for (const server of [servers.etcd, servers.edgetcd]) {
      const locked = JSON.parse(await post(server, "/v3/lock/lock", JSON.stringify({ name: base64("gw-lock") }))) as { key: string };
      assert.match(Buffer.from(locked.key, "base64").toString(), /^gw-lock\//, server.kind);
      const unlocked = JSON.parse(await post(server, "/v3/lock/unlock", JSON.stringify({ key: locked.key }))) as { header: unknown };
      assert.ok(unlocked.header, server.kind);
    }
  });
});
