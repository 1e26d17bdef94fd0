// `--cors` on the client port, as etcd 3.4 reads it: "*" (the default) lets
// every origin in, a list lets in only its origins, and every OPTIONS request
// is answered by the server itself. Connect and gRPC-Web replies carry the
// headers a browser needs to read them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { freePort, startEdgetcd, type RunningServer } from "../support/processes.ts";

const connectHeaders = { "content-type": "application/json", "connect-protocol-version": "1" };

function headerList(response: Response, name: string): string[] {
  return (response.headers.get(name) ?? "").split(",").map((item) => item.trim().toLowerCase()).filter((item) => item !== "");
}

async function preflight(base: string, origin: string): Promise<Response> {
  return await fetch(`${base}/etcdserverpb.KV/Range`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
  });
}

describe("--cors with a list of origins", () => {
  let server: RunningServer;
  let base: string;
  let allowed: string;
  const refused = "http://127.0.0.1:1";
  before(async () => {
    allowed = `http://127.0.0.1:${await freePort()}`;
    server = await startEdgetcd({ extraArgs: ["--cors", `http://localhost:9,${allowed}`] });
    base = `http://${server.endpoint}`;
  }, { timeout: 60_000 });
  after(async () => {
    await server?.stop();
  });

  test("a preflight from an allowed origin is answered with that origin and the Connect and gRPC-Web request headers", async () => {
    const response = await preflight(base, allowed);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "");
    assert.equal(response.headers.get("access-control-allow-origin"), allowed);
    assert.ok(headerList(response, "access-control-allow-methods").includes("post"));
    for (const name of ["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"]) {
      assert.ok(headerList(response, "access-control-allow-headers").includes(name), name);
    }
    assert.ok(headerList(response, "vary").includes("origin"));
  });

  test("a preflight from any other origin gets no CORS headers, so the browser refuses", async () => {
    for (const origin of [refused, "http://localhost:10", "null"]) {
      const response = await preflight(base, origin);
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      assert.equal(response.headers.get("access-control-allow-origin"), null, origin);
      assert.equal(response.headers.get("access-control-allow-headers"), null, origin);
    }
  });

  test("a Connect call from an allowed origin carries allow-origin and exposes the gRPC status headers", async () => {
    const put = await fetch(`${base}/etcdserverpb.KV/Put`, {
      method: "POST",
      headers: { ...connectHeaders, origin: allowed },
      body: JSON.stringify({ key: btoa("cors"), value: btoa("yes") }),
    });
    assert.equal(put.status, 200);
    assert.ok((await put.json()).header.revision);
    assert.equal(put.headers.get("access-control-allow-origin"), allowed);
    for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
      assert.ok(headerList(put, "access-control-expose-headers").includes(name), name);
    }
  });

  test("a gRPC-Web call from an allowed origin gets the headers; from a refused one the reply has none", async () => {
    const emptyRangeFrame = new Uint8Array([0, 0, 0, 0, 2, 0x0a, 0]); // RangeRequest{key: ""}
    for (const [origin, expected] of [[allowed, allowed], [refused, null]] as const) {
      const response = await fetch(`${base}/etcdserverpb.KV/Range`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", origin },
        body: emptyRangeFrame,
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      assert.equal(response.headers.get("access-control-allow-origin"), expected, origin);
    }
  });

  test("the JSON gateway follows the same policy", async () => {
    const response = await fetch(`${base}/v3/kv/range`, { method: "POST", headers: { origin: allowed }, body: JSON.stringify({ key: btoa("cors") }) });
    assert.equal(response.status, 200);
    assert.equal((await response.json()).count, "1");
    assert.equal(response.headers.get("access-control-allow-origin"), allowed);
  });
});

describe("--cors default and bad values", () => {
  test("by default every origin is allowed with \"*\", as in etcd", { timeout: 60_000 }, async () => {
    const server = await startEdgetcd();
    try {
      const base = `http://${server.endpoint}`;
      const response = await preflight(base, "http://anywhere.example:8080");
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      assert.equal(response.headers.get("vary"), null);
      const health = await fetch(`${base}/health`, { headers: { origin: "http://other.example:1" } });
      assert.equal(health.status, 200);
      assert.equal(health.headers.get("access-control-allow-origin"), "*");
    } finally {
      await server.stop();
    }
  });

  test("an origin that is not scheme://host:port stops the server at start", { timeout: 150_000 }, async () => {
    const values = ["example.com", "ftp://example.com:21", "http://example.com:80/path", "http://example.com"];
    // The process exits at once on a bad flag; the long ready timeout only matters on a loaded machine.
    const start = (value: string) => startEdgetcd({ extraArgs: ["--cors", value], readyTimeoutMs: 120_000 });
    await Promise.all(values.map((value) => assert.rejects(start(value), /flag -cors/, value)));
  });
});
