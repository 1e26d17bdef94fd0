// Answers whose form clients depend on, byte for byte beside etcd 3.4:
// unknown gRPC services and methods (HTTP 200, trailers-only grpc-status 12,
// grpc-go's message), grpc-message text of etcd's errors (not
// percent-encoded beyond the gRPC spec), and the JSON gateway's status codes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { etcdBesideEdgetcd } from "../support/processes.ts";

interface GrpcAnswer {
  status: number | undefined;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
}

/** One gRPC call with one message (empty by default); grpc-status and grpc-message from headers (trailers-only) or trailers. */
function grpcCall(endpoint: string, path: string, message: Uint8Array = new Uint8Array(0)): Promise<GrpcAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${endpoint}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const answer: GrpcAnswer = { status: undefined, grpcStatus: undefined, grpcMessage: undefined };
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) answer.grpcStatus = String(headers["grpc-status"]);
      if (headers["grpc-message"] !== undefined) answer.grpcMessage = String(headers["grpc-message"]);
    };
    stream.on("response", (headers) => {
      answer.status = Number(headers[":status"]);
      take(headers);
    });
    stream.on("trailers", take);
    stream.on("data", () => {});
    stream.on("end", () => {
      session.close();
      resolve(answer);
    });
    stream.on("error", reject);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.end(frame);
  });
}

async function gateway(endpoint: string, path: string, method: string, body?: string): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`http://${endpoint}${path}`, { method, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: compared as text
  }
  return { status: response.status, json };
}

describe("answers on the wire, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd();

  test("an unknown service or method is HTTP 200 with grpc-status 12 and grpc-go's message", async () => {
    for (const path of ["/etcdserverpb.KV/RangeStream", "/etcdserverpb.Nope/Range", "/etcdserverpb.Maintenance/Nothing"]) {
      const [want, got] = await Promise.all([grpcCall(servers.etcd.endpoint, path), grpcCall(servers.edgetcd.endpoint, path)]);
      assert.equal(want.grpcStatus, "12", path);
      assert.deepEqual(got, want, path);
    }
  });

  test("grpc-message carries etcd's text as etcd sends it", async () => {
    // A lease that does not exist: etcd's "etcdserver: requested lease not found".
    // LeaseRevokeRequest { ID: 1 }: field 1, varint 1.
    const revoke = (endpoint: string) => grpcCall(endpoint, "/etcdserverpb.Lease/LeaseRevoke", new Uint8Array([0x08, 0x01]));
    const [want, got] = await Promise.all([revoke(servers.etcd.endpoint), revoke(servers.edgetcd.endpoint)]);
    assert.equal(want.grpcMessage, "etcdserver: requested lease not found");
    assert.deepEqual(got, want);
  });

  test("the gateway: /v3/maintenance/hash is Hash, another method is 405, a bad field is 400 code 3", async () => {
    const cases: Array<[string, string, string | undefined]> = [
      ["/v3/maintenance/hash", "POST", "{}"],
      ["/v3/kv/range", "GET", undefined],
      ["/v3/kv/range", "POST", '{"key":"not base64!"}'],
    ];
    for (const [path, method, body] of cases) {
      const [want, got] = await Promise.all([gateway(servers.etcd.endpoint, path, method, body), gateway(servers.edgetcd.endpoint, path, method, body)]);
      assert.equal(got.status, want.status, `${method} ${path}`);
      if (path === "/v3/maintenance/hash") {
        // The hashes differ (different databases); the shape must not.
        assert.deepEqual(Object.keys(got.json as object).sort(), Object.keys(want.json as object).sort());
      } else if (typeof want.json === "object") {
        assert.equal((got.json as { code: number }).code, (want.json as { code: number }).code, `${method} ${path}`);
      } else {
        assert.equal(got.json, want.json, `${method} ${path}`);
      }
    }
  });
});

describe("the gateway's headers, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd();

  test("a call the server took carries grpc-gateway's Grpc-Metadata-Content-Type; a body that does not decode does not", async () => {
    const header = async (endpoint: string, path: string, body: string) => {
      const response = await fetch(`http://${endpoint}${path}`, { method: "POST", body, signal: AbortSignal.timeout(5000) });
      const value = response.headers.get("grpc-metadata-content-type");
      await response.body?.cancel();
      return `${path} ${response.status} ${value ?? "none"}`;
    };
    const cases: Array<[string, string]> = [
      ["/v3/kv/range", '{"key":"YQ=="}'],
      ["/v3/kv/range", '{"key":"!!"}'],
      ["/v3/watch", '{"create_request":{"key":"YQ=="}}'],
    ];
    const want = await Promise.all(cases.map(([path, body]) => header(servers.etcd.endpoint, path, body)));
    const got = await Promise.all(cases.map(([path, body]) => header(servers.edgetcd.endpoint, path, body)));
    assert.deepEqual(got, want);
    assert.deepEqual(want, ["/v3/kv/range 200 application/grpc", "/v3/kv/range 400 none", "/v3/watch 200 application/grpc"]);
  });
});
