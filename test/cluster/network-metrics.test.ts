// etcd's etcd_network_* metrics on a 3-member cluster, beside etcd 3.4's: the
// same series (names and label names), after the same put,
// and values that move: bytes sent to and received from each peer, active
// peer connections, round trips measured to each peer, and the bytes of gRPC
// messages read from and written to clients. Then, on edgetcd, the series
// that count trouble: a member stopped (disconnected peers, messages to it
// dropped) and caught up by a snapshot when it returns (snapshot sends and
// receives, their durations, nothing left in flight).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, startCluster, type TestCluster } from "../support/cluster.ts";
import { etcdctl } from "../support/processes.ts";

interface Series {
  /** Name and label names, member ids as "<id>": the shape etcd's dashboards query. */
  shape: string;
  value: number;
}

async function networkSeries(endpoint: string): Promise<Series[]> {
  const text = await (await fetch(`http://${endpoint}/metrics`)).text();
  const series: Series[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("etcd_network_")) continue;
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const [, name, labels = "", value] = match as unknown as [string, string, string | undefined, string];
    // Buckets are many and depend on the times measured; the histogram's count and sum carry its shape.
    if (name.endsWith("_bucket")) continue;
    // etcd counts bytes of a pipeline sender it names "0"; edgetcd has none.
    if (labels.includes('From="0"')) continue;
    const shape = `${name}{${labels.replace(/="[0-9a-f]+"/g, '="<id>"')}}`;
    series.push({ shape, value: Number(value) });
  }
  return series;
}

async function scenario(cluster: TestCluster): Promise<Series[]> {
  const [endpoint] = cluster.endpoints() as [string];
  assert.equal(etcdctl(endpoint, ["put", "network-metrics", "v".repeat(100)]).status, 0);
  assert.equal(etcdctl(endpoint, ["get", "network-metrics"]).status, 0);
  // Both servers measure round trips every few seconds (etcd's prober, edgetcd's keep-alive pings).
  await new Promise((resolve) => setTimeout(resolve, 6000));
  return networkSeries(endpoint);
}

/** Series that count failures: whether any happen while members start (a message sent before its peer listens) is timing, on either server. */
const timingDependent = /^etcd_network_(peer_sent_failures_total|peer_received_failures_total|disconnected_peers_total)\{/;

/** The distinct series shapes: how many peers a member sent to depends on who campaigned (a follower talks to the leader only). */
const shapes = (series: Series[]) => [...new Set(series.map((one) => one.shape).filter((shape) => !timingDependent.test(shape)))].sort();

describe("etcd_network_* on a 3-member cluster, beside etcd 3.4", () => {
  test("the same series, and values that count the traffic", { timeout: 120_000 }, async () => {
    const etcd = await startCluster(3, { kind: "etcd" });
    let want: Series[];
    try {
      want = await scenario(etcd);
    } finally {
      await etcd.stopAll();
    }
    const edgetcd = await startCluster(3);
    let got: Series[];
    try {
      got = await scenario(edgetcd);
    } finally {
      await edgetcd.stopAll();
    }
    assert.deepEqual(shapes(got), shapes(want));
    // Not vacuous: a connection to each of the two peers on both, and round trips measured to each.
    for (const side of [want, got]) {
      assert.equal(side.filter((one) => one.shape.startsWith("etcd_network_active_peers{")).length, 2);
      assert.equal(side.filter((one) => one.shape.startsWith("etcd_network_peer_round_trip_time_seconds_count{")).length, 2);
      assert.ok(side.some((one) => one.shape.startsWith("etcd_network_peer_sent_bytes_total{")));
    }
    for (const one of got) {
      if (one.shape.startsWith("etcd_network_active_peers")) assert.equal(one.value, 1, one.shape);
      if (/_bytes_total|round_trip_time_seconds_count/.test(one.shape)) assert.ok(one.value > 0, `${one.shape} ${one.value}`);
    }
  });
});

describe("etcd_network_* for trouble: a member stopped, then caught up by a snapshot", () => {
  test("disconnected peers, dropped messages, snapshot sends and receives", { timeout: 120_000 }, async () => {
    // A short log, so the member that comes back is sent a snapshot.
    const cluster = await startCluster(3, { extraArgs: ["--snapshot-count", "20", "--experimental-snapshot-catchup-entries", "5"] });
    try {
      const endpoints = cluster.endpoints().join(",");
      const victim = cluster.members[2];
      assert.ok(victim?.server !== undefined);
      const victimId = /"member_id":(\d+)/.exec(etcdctl(victim.server.endpoint, ["endpoint", "status", "-w", "json"]).stdout)?.[1] ?? "";
      const victimHex = BigInt(victimId).toString(16);
      await victim.server.stop();
      victim.server = undefined;
      for (let i = 0; i < 60; i++) assert.equal(etcdctl(endpoints, ["put", `k${i}`, "v"]).status, 0);
      await cluster.start(victim);
      const [first, second] = cluster.endpoints() as [string, string, string];
      const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? "NaN");
      let leaderText = "";
      await eventually("a snapshot was sent to the member that came back", async () => {
        for (const endpoint of [first, second]) {
          const text = await (await fetch(`http://${endpoint}/metrics`)).text();
          if (value(text, `etcd_network_snapshot_send_success{To="${victimHex}"}`) >= 1) leaderText = text;
        }
        return leaderText !== "";
      });
      assert.ok(value(leaderText, `etcd_network_disconnected_peers_total{Local="${/Local="([0-9a-f]+)"/.exec(leaderText)?.[1]}",Remote="${victimHex}"}`) >= 1, "the stop was counted as a disconnection");
      assert.ok(value(leaderText, `etcd_network_snapshot_send_total_duration_seconds_count{To="${victimHex}"}`) >= 1);
      assert.equal(value(leaderText, `etcd_network_snapshot_send_inflights_total{To="${victimHex}"}`), 0);
      assert.match(leaderText, /^# TYPE etcd_network_peer_sent_failures_total counter$/m);
      const victimText = await (await fetch(`http://${cluster.endpoints()[2]}/metrics`)).text();
      assert.match(victimText, /^etcd_network_snapshot_receive_success\{From="[0-9a-f]+"\} [1-9]/m);
      assert.match(victimText, /^etcd_network_snapshot_receive_total_duration_seconds_count\{From="[0-9a-f]+"\} [1-9]/m);
      assert.match(victimText, /^# TYPE etcd_network_snapshot_receive_total_duration_seconds histogram$/m);
    } finally {
      await cluster.stopAll();
    }
  });
});
