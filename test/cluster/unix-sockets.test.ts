// etcd's unix:// URLs: a member listens on (and its peers dial) a unix socket
// named by the URL's host, port included (unix://etcd.unix:1 is the file
// etcd.unix:1, relative to the working directory), for the peer and the client
// port alike (etcd's TestEtcdUnixPeers). A socket file left by a killed member
// is replaced at the next start; a live one, or another kind of file, is not.
// unixs:// (TLS over a unix socket) is refused at start.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { etcdctl, repoRoot, tempDir } from "../support/processes.ts";
import { serverRuntimes } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

interface Member {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(cwd: string, args: string[]): Member {
  const child = spawn(join(repoRoot, "bin/edgetcd"), args, {
    cwd,
    env: { ...process.env, EDGETCD_RUNTIME: serverRuntimes()[0] ?? runtimeName },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function ready(member: Member): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!member.output().includes("ready to serve client requests")) {
    if (member.child.exitCode !== null) throw new Error(`exited ${member.child.exitCode}:\n${member.output()}`);
    if (Date.now() > deadline) throw new Error(`not ready:\n${member.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stop(member: Member, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (member.child.exitCode === null && member.child.signalCode === null) member.child.kill(signal);
  await member.exited;
}

const isSocket = (path: string) => existsSync(path) && lstatSync(path).isSocket();

describe("unix:// peer and client URLs", () => {
  test("one member on unix sockets: etcdctl through the client socket; a socket left by kill -9 is replaced at the next start", { timeout: 60_000 }, async () => {
    const dir = tempDir("unix-one");
    const args = [
      "--name", "e1",
      "--data-dir", "data",
      "--listen-peer-urls", "unix://etcd.unix:1",
      "--initial-advertise-peer-urls", "unix://etcd.unix:1",
      "--initial-cluster", "e1=unix://etcd.unix:1",
      "--listen-client-urls", "unix://client.unix:2",
      "--advertise-client-urls", "unix://client.unix:2",
    ];
    let member = start(dir, args);
    try {
      await ready(member);
      assert.ok(isSocket(join(dir, "etcd.unix:1")) && isSocket(join(dir, "client.unix:2")));
      const endpoint = `unix://${join(dir, "client.unix:2")}`;
      assert.equal(etcdctl(endpoint, ["put", "k", "over a unix socket"]).status, 0);
      await stop(member, "SIGKILL");
      assert.ok(isSocket(join(dir, "client.unix:2")), "kill -9 leaves the socket file");
      member = start(dir, args);
      await ready(member);
      assert.equal(etcdctl(endpoint, ["get", "k", "--print-value-only"]).stdout.trim(), "over a unix socket");
      // A second member on the same live socket is refused.
      const second = start(dir, [...args.slice(0, 2), "--data-dir", "data2", ...args.slice(4)]);
      assert.notEqual(await second.exited, 0);
      assert.match(second.output(), /address already in use/);
      await stop(member);
      assert.ok(!existsSync(join(dir, "client.unix:2")) && !existsSync(join(dir, "etcd.unix:1")), "a stopped member removes its sockets");
    } finally {
      await stop(member, "SIGKILL");
    }
  });

  test("three members whose peers meet on unix sockets replicate", { timeout: 90_000 }, async () => {
    const dir = tempDir("unix-three");
    const cluster = [1, 2, 3].map((n) => `m${n}=unix://peer${n}.unix:0`).join(",");
    const members = [1, 2, 3].map((n) =>
      start(dir, [
        "--name", `m${n}`,
        "--data-dir", `data${n}`,
        "--listen-peer-urls", `unix://peer${n}.unix:0`,
        "--initial-advertise-peer-urls", `unix://peer${n}.unix:0`,
        "--initial-cluster", cluster,
        "--listen-client-urls", `unix://client${n}.unix:0`,
        "--advertise-client-urls", `unix://client${n}.unix:0`,
      ]),
    );
    try {
      await Promise.all(members.map(ready));
      const endpoint = (n: number) => `unix://${join(dir, `client${n}.unix:0`)}`;
      assert.equal(etcdctl(endpoint(1), ["put", "shared", "from m1"]).status, 0);
      assert.equal(etcdctl(endpoint(3), ["get", "shared", "--print-value-only", "--consistency=l"]).stdout.trim(), "from m1");
      const list = etcdctl(endpoint(2), ["member", "list"]).stdout;
      for (const n of [1, 2, 3]) assert.match(list, new RegExp(`m${n}, unix://peer${n}\\.unix:0`));
    } finally {
      await Promise.all(members.map((member) => stop(member, "SIGKILL")));
    }
  });

  test("a file that is not a socket is left alone, and the start fails; unixs:// is refused", { timeout: 30_000 }, async () => {
    const dir = tempDir("unix-refused");
    writeFileSync(join(dir, "busy.unix:1"), "not a socket");
    const onFile = start(dir, ["--data-dir", "data", "--listen-peer-urls", "unix://busy.unix:1", "--initial-advertise-peer-urls", "unix://busy.unix:1", "--initial-cluster", "default=unix://busy.unix:1", "--listen-client-urls", "unix://c.unix:1", "--advertise-client-urls", "unix://c.unix:1"]);
    assert.notEqual(await onFile.exited, 0);
    assert.ok(existsSync(join(dir, "busy.unix:1")) && !lstatSync(join(dir, "busy.unix:1")).isSocket());
    const tls = start(dir, ["--data-dir", "data2", "--listen-client-urls", "unixs://c2.unix:1", "--advertise-client-urls", "unixs://c2.unix:1"]);
    assert.notEqual(await tls.exited, 0);
    assert.match(tls.output(), /unixs:\/\/ \(TLS over a unix socket\) is not implemented/);
  });
});
