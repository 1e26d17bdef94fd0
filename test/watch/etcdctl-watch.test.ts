// The real etcdctl 3.4 watches a real etcd 3.4 and edgetcd while the same
// writes are made to both; every watch prints exactly the same thing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { etcdctlAsync, startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

interface RunningWatch {
  /** Stops etcdctl (if still running) and returns what it printed. */
  finish(): Promise<{ stdout: string; stderr: string }>;
}

function etcdctlWatch(endpoint: string, args: string[], input?: string): RunningWatch {
  const child = spawn("etcdctl", [`--endpoints=${endpoint}`, "--dial-timeout=5s", "watch", ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  if (input !== undefined) child.stdin.write(input);
  return {
    async finish() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      return { stdout, stderr };
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const writes: string[][] = [
  ["put", "foo", "1"],
  ["put", "foo/a", "2"],
  ["put", "bar", "3"],
  ["put", "foo", "4"],
  ["del", "foo"],
  ["put", "foo", "5"],
  ["del", "foo", "--prefix"],
  ["put", "zz", "6"],
];

const txn = 'value("bar") = "3"\n\nput foo/t1 x\nput foo/t2 y\ndel bar\n\nput nope 1\n\n';

/** Runs the scenario on one server and returns every watch's output. */
async function scenario(server: RunningServer): Promise<Record<string, { stdout: string; stderr: string }>> {
  const run = (args: string[], input?: string) => etcdctlAsync(server.endpoint, args, input);
  await run(["put", "seed", "0"]); // revision 2
  await run(["put", "foo", "0"]); // revision 3
  const live = {
    prefix: etcdctlWatch(server.endpoint, ["foo", "--prefix"]),
    single: etcdctlWatch(server.endpoint, ["foo", "--prev-kv"]),
    range: etcdctlWatch(server.endpoint, ["bar", "foo0"]),
    fromRev: etcdctlWatch(server.endpoint, ["foo", "--prefix", "--rev", "2", "--prev-kv"]),
    all: etcdctlWatch(server.endpoint, ["--prefix", ""]),
    interactive: etcdctlWatch(server.endpoint, ["-i"], "watch foo --prefix\nwatch zz\n"),
  };
  await sleep(1000);
  for (const args of writes) await run(args);
  await run(["txn"], txn);
  await sleep(800);
  const outputs: Record<string, { stdout: string; stderr: string }> = {};
  for (const [name, watch] of Object.entries(live)) outputs[name] = await watch.finish();
  // Late watchers, started below and at the compact revision, and a progress request.
  await run(["compaction", "6"]);
  const late = {
    belowCompact: etcdctlWatch(server.endpoint, ["foo", "--prefix", "--rev", "5"]),
    atCompact: etcdctlWatch(server.endpoint, ["foo", "--prefix", "--rev", "6", "--prev-kv"]),
    progress: etcdctlWatch(server.endpoint, ["-i"], "watch zz\nprogress\n"),
  };
  await sleep(1200);
  for (const [name, watch] of Object.entries(late)) outputs[name] = await watch.finish();
  return outputs;
}

describe("etcdctl watch on etcd 3.4 and edgetcd", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("--prefix, --rev, --prev-kv, ranges, interactive watch and progress print the same", async () => {
    const [expected, actual] = await Promise.all([scenario(etcd), scenario(edgetcd)]);
    for (const [name, want] of Object.entries(expected)) {
      const got = actual[name]!;
      assert.equal(got.stdout, want.stdout, `${name}: stdout`);
      assert.equal(got.stderr, want.stderr, `${name}: stderr`);
    }
    // The scenario really exercised something.
    assert.match(expected.fromRev!.stdout, /DELETE/);
    assert.match(expected.belowCompact!.stderr + expected.belowCompact!.stdout, /compacted/);
    assert.match(expected.progress!.stdout, /progress notify: \d+/);
  });
});
