// `edgetcd gateway start` as etcd 3.4's e2e TestGateway drives it: flags
// before the subcommand, "ready to proxy client requests", then etcdctl
// through the gateway; a dead endpoint in the list is skipped. The command
// line refuses what edgetcd does not run: `grpc-proxy`, and stray words
// (which used to start a default member).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { etcdctlAsync, freePort, repoRoot, startEdgetcd, type RunningServer } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

const edgetcd = join(repoRoot, "bin/edgetcd");
const env = { ...process.env, EDGETCD_RUNTIME: runtimeName };

describe("edgetcd gateway", () => {
  let member: RunningServer | undefined;
  let gateway: ChildProcess | undefined;
  let gatewayEndpoint = "";
  let output = "";
  before(async () => {
    member = await startEdgetcd();
    const dead = await freePort();
    const listen = await freePort();
    gatewayEndpoint = `127.0.0.1:${listen}`;
    gateway = spawn(edgetcd, ["gateway", `--endpoints=http://127.0.0.1:${dead},http://${member.endpoint}`, "start", "--listen-addr", gatewayEndpoint, "--retry-delay", "1m"], { env, stdio: ["ignore", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line:\n${output}`)), 30_000);
      const take = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("ready to proxy client requests")) {
          clearTimeout(timer);
          resolve();
        }
      };
      gateway?.stdout?.on("data", take);
      gateway?.stderr?.on("data", take);
      gateway?.once("exit", (code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
    });
  }, { timeout: 60_000 });
  after(async () => {
    gateway?.kill("SIGTERM");
    await member?.stop();
  });

  test("etcdctl puts and gets through the gateway, past a dead endpoint", async () => {
    for (let n = 0; n < 4; n++) {
      const put = await etcdctlAsync(gatewayEndpoint, ["put", `foo${n}`, "bar"]);
      assert.equal(put.stdout, "OK\n", put.stderr);
    }
    const got = await etcdctlAsync(gatewayEndpoint, ["get", "foo3", "--print-value-only"]);
    assert.equal(got.stdout, "bar\n");
    const direct = await etcdctlAsync((member as RunningServer).endpoint, ["get", "foo0", "--print-value-only"]);
    assert.equal(direct.stdout, "bar\n");
  });

  test("grpc-proxy is refused with a clear error, and so is a word edgetcd does not know", () => {
    const proxy = spawnSync(edgetcd, ["grpc-proxy", "start"], { env, encoding: "utf8", timeout: 30_000 });
    assert.equal(proxy.status, 2);
    assert.match(proxy.stderr, /grpc-proxy is not supported/);
    const stray = spawnSync(edgetcd, ["foo"], { env, encoding: "utf8", timeout: 30_000 });
    assert.equal(stray.status, 1);
    assert.match(stray.stderr, /error verifying flags, 'foo' is not a valid flag/);
  });

  test("gateway flags are checked: a bad endpoint and DNS discovery are refused before listening", () => {
    const bad = spawnSync(edgetcd, ["gateway", "start", "--endpoints", "nonsense"], { env, encoding: "utf8", timeout: 30_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /error parsing endpoint "nonsense"/);
    const srv = spawnSync(edgetcd, ["gateway", "start", "--discovery-srv", "example.com"], { env, encoding: "utf8", timeout: 30_000 });
    assert.equal(srv.status, 1);
    assert.match(srv.stderr, /DNS discovery is not supported/);
  });
});
