// The real etcdctl 3.4 drives leases on a real etcd 3.4 and on edgetcd with
// one script (outputs equal once lease ids and member ids are masked); then,
// on edgetcd: keys of a lease whose keep-alive stopped vanish within TTL + one
// election timeout, all in one revision; `lease keep-alive` keeps them past
// their TTL; a restart keeps the lease table (TTLs reset to the full TTL).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { etcdctlAsync, startEdgetcd, startEtcd, type CommandResult, type RunningServer } from "../support/processes.ts";

const heartbeatMs = 100;
const electionMs = 1000;
// Min TTL with these timings: ceil(15 ticks x 100 ms) = 2 s, as on etcd.
const timing = ["--heartbeat-interval", String(heartbeatMs), "--election-timeout", String(electionMs)];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** etcd lists a lease's keys in Go map order (random): compare them sorted. */
function sortList(list: string, separator: string): string {
  return list.split(separator).sort().join(separator);
}

function mask(result: CommandResult): string {
  return `${result.status}|${result.stdout}|${result.stderr.replace(/^\{"level".*\n/gm, "")}`
    .replace(/"(ID|id|lease|cluster_id|member_id|raft_term)":-?\d+/g, '"$1":0')
    .replace(/\b[0-9a-f]{16}\b/g, "<id>")
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_, keys: string) => `attached keys([${sortList(keys, " ")}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_, keys: string) => `"keys":[${sortList(keys, ",")}]`)
    .replace(/remaining\(\d+s\)/g, "remaining(Ns)")
    .replace(/"ttl":(\d+),"granted-ttl"/g, '"ttl":N,"granted-ttl"');
}

/** The id etcdctl printed in "lease <id> granted with TTL(...)". */
function grantedId(result: CommandResult): string {
  const match = /lease ([0-9a-f]+) granted/.exec(result.stdout);
  assert.ok(match, `no lease id in ${result.stdout}${result.stderr}`);
  return match[1] as string;
}

async function script(server: RunningServer): Promise<string[]> {
  const run = (...args: string[]) => etcdctlAsync(server.endpoint, args);
  const out: string[] = [];
  const minimal = await run("lease", "grant", "0");
  out.push(mask(minimal));
  out.push(mask(await run("lease", "revoke", grantedId(minimal))));
  const grant = await run("lease", "grant", "100");
  out.push(mask(grant));
  const id = grantedId(grant);
  out.push(mask(await run("lease", "grant", "9000000001")));
  out.push(mask(await run("put", "--lease", id, "k2", "v")));
  out.push(mask(await run("put", "--lease", id, "k1", "v")));
  out.push(mask(await run("put", "k3", "v")));
  out.push(mask(await run("lease", "timetolive", id)));
  out.push(mask(await run("lease", "timetolive", "--keys", id)));
  out.push(mask(await run("lease", "timetolive", "--keys", id, "-w", "json")));
  out.push(mask(await run("lease", "keep-alive", "--once", id)));
  out.push(mask(await run("lease", "list")));
  out.push(mask(await run("lease", "timetolive", "1234")));
  out.push(mask(await run("lease", "revoke", "1234")));
  out.push(mask(await run("lease", "keep-alive", "--once", "1234")));
  out.push(mask(await run("put", "--lease", "1234", "x", "y")));
  out.push(mask(await run("put", "k3", "--ignore-lease")));
  out.push(mask(await run("put", "k2", "v2", "--ignore-lease")));
  out.push(mask(await run("get", "k2", "-w", "json")));
  out.push(mask(await run("lease", "revoke", id)));
  out.push(mask(await run("get", "k", "--prefix", "-w", "json")));
  out.push(mask(await run("lease", "timetolive", id)));
  out.push(mask(await run("lease", "list")));
  return out;
}

describe("etcdctl lease", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd({ extraArgs: timing }), startEdgetcd({ extraArgs: timing })]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("grant, put --lease, timetolive, keep-alive --once, list, revoke print the same on etcd 3.4 and edgetcd", async () => {
    const [expected, actual] = await Promise.all([script(etcd), script(edgetcd)]);
    for (let i = 0; i < expected.length; i++) assert.equal(actual[i], expected[i], `step ${i}`);
  });

  test("keys of a lease whose keep-alive stops vanish within TTL + one election timeout, in one revision", { timeout: 60_000 }, async () => {
    const run = (...args: string[]) => etcdctlAsync(edgetcd.endpoint, args);
    const ttlSeconds = 2;
    const id = grantedId(await run("lease", "grant", String(ttlSeconds)));
    for (const key of ["exp/c", "exp/a", "exp/b"]) assert.equal((await run("put", "--lease", id, key, "v")).status, 0);
    await run("put", "other", "v");
    const before = JSON.parse((await run("get", "exp/", "--prefix", "-w", "json")).stdout) as { header: { revision: number }; count: number };
    assert.equal(before.count, 3);

    // `lease keep-alive` renews every TTL/3: the keys outlive their TTL while it runs.
    const keeper = spawn("etcdctl", [`--endpoints=${edgetcd.endpoint}`, "lease", "keep-alive", id], {
      env: { ...process.env, ETCDCTL_API: "3" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let renewals = "";
    keeper.stdout.on("data", (chunk: Buffer) => (renewals += chunk.toString()));
    await sleep(ttlSeconds * 1000 + 1500);
    const exited = new Promise((resolve) => keeper.once("exit", resolve));
    keeper.kill("SIGKILL");
    await exited;
    const stoppedAt = Date.now();
    assert.ok((renewals.match(/keepalived with TTL\(2\)/g) ?? []).length >= 3, renewals);
    assert.equal(JSON.parse((await run("get", "exp/", "--prefix", "-w", "json")).stdout).count, 3);

    let goneAt = 0;
    while (Date.now() - stoppedAt < 10_000) {
      const now = JSON.parse((await run("get", "exp/", "--prefix", "-w", "json")).stdout) as { count?: number };
      if ((now.count ?? 0) === 0) {
        goneAt = Date.now();
        break;
      }
      await sleep(50);
    }
    assert.ok(goneAt > 0, "keys still there 10 s after the keep-alive stopped");
    // The keep-alive's last renewal came at most TTL/3 before it stopped, and
    // etcdctl's get takes a few ms to start: the bound is generous on both sides.
    assert.ok(goneAt - stoppedAt <= ttlSeconds * 1000 + electionMs, `gone ${goneAt - stoppedAt} ms after the keep-alive stopped`);
    const afterRevoke = JSON.parse((await run("get", "other", "-w", "json")).stdout) as { header: { revision: number } };
    assert.equal(afterRevoke.header.revision, before.header.revision + 1, "the three deletes share one revision");
    assert.match((await run("lease", "timetolive", id)).stdout, /already expired/);
  });
});

describe("leases across a restart", () => {
  test("the lease table and attachments survive; the TTL restarts in full; revoke still deletes the keys", { timeout: 120_000 }, async () => {
    let server = await startEdgetcd({ extraArgs: timing });
    try {
      const run = (...args: string[]) => etcdctlAsync(server.endpoint, args);
      const id = grantedId(await run("lease", "grant", "100"));
      await run("put", "--lease", id, "kept", "v");
      await sleep(2100);
      assert.match((await run("lease", "timetolive", id)).stdout, /remaining\(9[0-7]s\)/);
      await server.stop();
      server = await startEdgetcd({ extraArgs: timing, dataDir: server.dataDir, clientPort: server.clientPort });
      // Full TTL again (plus the election timeout a new leader adds), as etcd does without checkpoints.
      assert.match((await run("lease", "timetolive", "--keys", id)).stdout, /granted with TTL\(100s\), remaining\((99|100)s\), attached keys\(\[kept\]\)/);
      assert.match((await run("lease", "list")).stdout, new RegExp(`found 1 leases\\n${id}\\n`));
      assert.match((await run("lease", "revoke", id)).stdout, /revoked/);
      assert.equal(JSON.parse((await run("get", "kept", "-w", "json")).stdout).count ?? 0, 0);
    } finally {
      await server.stop();
    }
  });
});
