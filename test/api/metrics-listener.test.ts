// /health as etcd 3.4 answers it, byte for byte, on the client port and on a
// --listen-metrics-urls listener (which serves /metrics and /health only),
// and --metrics extensive's grpc_server_handling_seconds, side by side with
// etcd 3.4: the same requests to both, the same answers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdBesideEdgetcd, etcdctl, freePort, startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const metricsPorts = new Map<RunningServer["kind"], number>();

async function withMetricsListener(kind: RunningServer["kind"]): Promise<RunningServer> {
  const port = await freePort();
  metricsPorts.set(kind, port);
  const extraArgs = ["--listen-metrics-urls", `http://127.0.0.1:${port}`, "--metrics", "extensive"];
  return kind === "etcd" ? await startEtcd({ extraArgs }) : await startEdgetcd({ extraArgs });
}

/** Status, the headers a client reads, and the body of one request. */
async function answer(base: string, path: string, method = "GET"): Promise<string> {
  const response = await fetch(`${base}${path}`, { method });
  const headers = ["content-type", "x-content-type-options", "allow"].map((name) => `${name}=${response.headers.get(name) ?? ""}`).join(" ");
  return `${method} ${path}: ${response.status} ${headers} ${JSON.stringify(await response.text())}`;
}

async function answers(server: RunningServer): Promise<string[]> {
  const client = `http://${server.endpoint}`;
  const metrics = `http://127.0.0.1:${metricsPorts.get(server.kind)}`;
  return [
    await answer(client, "/health"),
    await answer(client, "/health?exclude=NOSPACE"),
    await answer(client, "/health", "POST"),
    await answer(metrics, "/health"),
    await answer(metrics, "/health", "PUT"),
    await answer(metrics, "/version"),
    await answer(metrics, "/v3/kv/range", "POST"),
  ];
}

describe("/health and --listen-metrics-urls, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd({ etcd: () => withMetricsListener("etcd"), edgetcd: () => withMetricsListener("edgetcd") });

  test("the same status, headers and bytes from the client port's /health and the metrics listener", async () => {
    const [want, got] = await Promise.all([answers(servers.etcd), answers(servers.edgetcd)]);
    assert.deepEqual(got, want);
    // Not vacuous: the answers etcd gives are the ones expected.
    assert.match(want[0] as string, /^GET \/health: 200 content-type=text\/plain; charset=utf-8 .*"\{\\"health\\":\\"true\\"\}"$/);
    assert.match(want[2] as string, /^POST \/health: 405 .*allow=GET "Method Not Allowed\\n"$/);
    assert.match(want[5] as string, /^GET \/version: 404 .*"404 page not found\\n"$/);
  });

  test("the metrics listener serves /metrics with --metrics extensive's handling-time histogram", async () => {
    for (const server of [servers.etcd, servers.edgetcd]) {
      assert.equal(etcdctl(server.endpoint, ["put", "metrics-key", "v"]).status, 0);
      const response = await fetch(`http://127.0.0.1:${metricsPorts.get(server.kind)}/metrics`);
      assert.equal(response.status, 200, server.kind);
      const text = await response.text();
      const lines = text.split("\n").filter((line) => line.includes("grpc_server_handling_seconds") || line.startsWith("etcd_server_health")).join("\n");
      assert.match(lines, /^# TYPE grpc_server_handling_seconds histogram$/m, server.kind);
      // Every method's series from zero, and the put counted in its +Inf bucket.
      assert.match(lines, /^grpc_server_handling_seconds_bucket\{grpc_method="Alarm",grpc_service="etcdserverpb\.Maintenance",grpc_type="unary",le="0\.005"\} 0$/m, server.kind);
      assert.match(lines, /^grpc_server_handling_seconds_bucket\{grpc_method="Put",grpc_service="etcdserverpb\.KV",grpc_type="unary",le="\+Inf"\} 1$/m, server.kind);
      assert.match(lines, /^grpc_server_handling_seconds_count\{grpc_method="Put",grpc_service="etcdserverpb\.KV",grpc_type="unary"\} 1$/m, server.kind);
      // /health was asked above: etcdhttp's counters.
      assert.match(lines, /^etcd_server_health_success [1-9]/m, server.kind);
    }
  });
});
