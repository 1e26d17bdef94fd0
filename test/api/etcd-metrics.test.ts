// /metrics carries etcd's own metrics (issue 15): the same operations through
// etcdctl against etcd 3.4 and edgetcd, side by side, give the same values on
// the series etcd's e2e suite, alerts and dashboards read, with etcd's types;
// the disk histograms fill as writes are synced and committed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { etcdctl, startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

/** The value of one series (`name` or `name{labels}` exactly as printed), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((row) => row.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function typeOf(text: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, "m").exec(text)?.[1];
}

/** etcdctl watch from revision 1, stopped once it printed the event: the client gives the stream up. */
async function watchOnceAndQuit(endpoint: string): Promise<void> {
  const child = spawn("etcdctl", [`--endpoints=${endpoint}`, "watch", "k", "--rev", "1"], { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("watch printed nothing")), 10_000);
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("PUT\nk\nv")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

const series = [
  "etcd_mvcc_put_total",
  "etcd_mvcc_delete_total",
  "etcd_debugging_mvcc_keys_total",
  "etcd_server_has_leader",
  "etcd_server_is_leader",
  'grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="DeleteRange",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  // etcd's e2e TestV3Metrics* reads this one, byte for byte.
  'grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
];

describe("etcd's metrics", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("the same operations give the same values as etcd 3.4, with etcd's types", async () => {
    const texts: string[] = [];
    for (const server of [etcd, edgetcd]) {
      assert.equal(etcdctl(server.endpoint, ["put", "k", "v"]).status, 0);
      for (const key of ["1", "2", "3"]) {
        assert.equal(etcdctl(server.endpoint, ["put", key, "v"]).status, 0);
        assert.equal(etcdctl(server.endpoint, ["del", key]).status, 0);
        await watchOnceAndQuit(server.endpoint);
      }
      // The server sees a watch's end a moment after its client went away.
      await new Promise((resolve) => setTimeout(resolve, 500));
      texts.push(await (await fetch(`http://${server.endpoint}/metrics`)).text());
    }
    const [reference, ours] = texts as [string, string];
    for (const name of series) {
      assert.notEqual(sample(reference, name), undefined, `etcd reports ${name}`);
      assert.equal(sample(ours, name), sample(reference, name), name);
    }
    for (const name of [
      "etcd_mvcc_put_total",
      "etcd_debugging_mvcc_keys_total",
      "etcd_server_proposals_committed_total",
      "etcd_server_proposals_applied_total",
      "etcd_server_proposals_pending",
      "etcd_server_proposals_failed_total",
      "etcd_server_leader_changes_seen_total",
      "etcd_server_quota_backend_bytes",
      "etcd_mvcc_db_total_size_in_bytes",
      "etcd_mvcc_db_total_size_in_use_in_bytes",
      "etcd_disk_wal_fsync_duration_seconds",
      "etcd_disk_backend_commit_duration_seconds",
      "etcd_disk_wal_write_bytes_total",
      "grpc_server_started_total",
      "grpc_server_handled_total",
      "grpc_server_msg_received_total",
      "grpc_server_msg_sent_total",
    ]) {
      assert.equal(typeOf(ours, name), typeOf(reference, name), `# TYPE of ${name}`);
    }
    // Labels name the running version and member, as etcd's do.
    assert.match(ours, /^etcd_server_version\{server_version="3\.\d+\.\d+"\} 1$/m);
    assert.match(ours, /^etcd_cluster_version\{cluster_version="3\.\d+"\} 1$/m);
    assert.match(ours, /^etcd_server_id\{server_id="[0-9a-f]+"\} 1$/m);
    // Every write was fdatasynced and committed: the histograms counted them, in etcd's buckets.
    assert.ok((sample(ours, "etcd_disk_wal_fsync_duration_seconds_count") ?? 0) >= 7);
    assert.ok((sample(ours, "etcd_disk_backend_commit_duration_seconds_count") ?? 0) >= 1);
    for (const text of [reference, ours]) assert.match(text, /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="8\.192"\} \d+$/m);
    assert.ok((sample(ours, "etcd_disk_wal_write_bytes_total") ?? 0) > 0);
    assert.equal(sample(ours, "etcd_server_proposals_pending"), 0);
    assert.equal(sample(ours, "etcd_server_proposals_committed_total"), sample(ours, "etcd_server_proposals_applied_total"));
  });
});
