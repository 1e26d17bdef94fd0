// --max-concurrent-streams and the JSON gateway, beside etcd 3.4 (its
// TestV3Curl_MaxStreams_*): etcd's gateway is one gRPC connection to its own
// server, so with N streams allowed, N watches through the gateway leave a
// range behind them waiting, and N - 1 do not. When a watch ends its slot is
// free again.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdBesideEdgetcd, type RunningServer } from "../support/processes.ts";

const streamsMax = 3;

interface OpenWatch {
  close(): Promise<void>;
}

/** A watch through /v3/watch, open until closed; resolves once its creation is answered. */
async function openWatch(server: RunningServer): Promise<OpenWatch> {
  const abort = new AbortController();
  const body = JSON.stringify({ create_request: { key: Buffer.from("foo").toString("base64"), start_revision: 1 } });
  const response = await fetch(`http://${server.endpoint}/v3/watch`, { method: "POST", body, signal: abort.signal });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /"created":true/);
  return {
    async close() {
      abort.abort();
      await reader.cancel().catch(() => undefined);
    },
  };
}

/** A range through the gateway: its revision, or "timed out" when no answer came within `ms`. */
async function range(server: RunningServer, ms: number): Promise<string> {
  try {
    const response = await fetch(`http://${server.endpoint}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: Buffer.from("foo").toString("base64") }),
      signal: AbortSignal.timeout(ms),
    });
    const answer = (await response.json()) as { header?: { revision?: string } };
    return `${response.status} revision ${answer.header?.revision === undefined ? "none" : "given"}`;
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
    throw error;
  }
}

async function scenario(server: RunningServer): Promise<string[]> {
  const seen: string[] = [];
  const watches: OpenWatch[] = [];
  for (let i = 0; i < streamsMax - 1; i++) watches.push(await openWatch(server));
  seen.push(`below the limit: ${await range(server, 3000)}`);
  watches.push(await openWatch(server));
  seen.push(`at the limit: ${await range(server, 1500)}`);
  await (watches.pop() as OpenWatch).close();
  seen.push(`one watch closed: ${await range(server, 3000)}`);
  await Promise.all(watches.map((watch) => watch.close()));
  return seen;
}

describe("--max-concurrent-streams holds the JSON gateway's calls, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd({ extraArgs: ["--max-concurrent-streams", String(streamsMax)] });

  test(`${streamsMax} watches through the gateway hold a range back; ${streamsMax - 1} do not`, { timeout: 60_000 }, async () => {
    const want = await scenario(servers.etcd);
    const got = await scenario(servers.edgetcd);
    assert.deepEqual(got, want);
    assert.deepEqual(want, ["below the limit: 200 revision given", "at the limit: timed out", "one watch closed: 200 revision given"]);
  });
});
