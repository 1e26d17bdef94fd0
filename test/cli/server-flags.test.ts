// The server's flags as an operator meets them, on real processes: where logs
// go, what --help and --version print, refused flags and bad log levels
// stopping the start before anything is created, and the WAL in --wal-dir,
// purged down to --max-wals without losing what replay needs.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, repoRoot, startEdgetcd, tempDir } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

const root = tempDir("edgetcd-server-flags");
after(() => rmSync(root, { recursive: true, force: true }));
const edgetcd = join(repoRoot, "bin/edgetcd");
const env = { ...process.env, EDGETCD_RUNTIME: runtimeName };

function run(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(edgetcd, args, { env, encoding: "utf8", timeout: 60_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** A member on free ports whose stdout and stderr are kept apart, stopped once `until` is seen. */
async function runUntil(args: string[], until: (stdout: string, stderr: string) => boolean): Promise<{ stdout: string; stderr: string }> {
  const client = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(edgetcd, ["--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `default=${peer}`, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, 30_000);
    let seen = false;
    const check = () => {
      if (seen || !until(stdout, stderr)) return;
      seen = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
    };
    child.stdout.on("data", (chunk: Buffer) => ((stdout += chunk.toString()), check()));
    child.stderr.on("data", (chunk: Buffer) => ((stderr += chunk.toString()), check()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (seen) resolve({ stdout, stderr });
      else reject(new Error(`exited with ${code}; stdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });
}

const ready = "ready to serve client requests";

async function put(endpoint: string, key: string, value: string): Promise<void> {
  const base64 = (text: string) => Buffer.from(text).toString("base64");
  const response = await fetch(`http://${endpoint}/v3/kv/put`, { method: "POST", body: JSON.stringify({ key: base64(key), value: base64(value) }) });
  assert.equal(response.status, 200, await response.text());
}

async function count(endpoint: string, prefix: string): Promise<number> {
  const base64 = (text: string) => Buffer.from(text).toString("base64");
  const rangeEnd = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const response = await fetch(`http://${endpoint}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: base64(prefix), range_end: base64(rangeEnd), count_only: true }) });
  return Number(((await response.json()) as { count?: string }).count ?? 0);
}

const walFiles = (dir: string) => readdirSync(dir).filter((name) => name.endsWith(".wal")).sort();

describe("server flags", () => {
  test("logs go to stderr by default, stdout untouched (etcd's default)", async () => {
    const { stdout, stderr } = await runUntil(["--data-dir", join(root, "stderr")], (_, err) => err.includes(ready));
    assert.equal(stdout, "");
    assert.match(stderr, /"level":"info".*"msg":"ready to serve client requests"/);
  });

  test("--log-outputs: stdout, or a file (appended, created 0600) beside stderr", async () => {
    const onStdout = await runUntil(["--data-dir", join(root, "stdout"), "--log-outputs", "stdout"], (out) => out.includes(ready));
    assert.equal(onStdout.stderr, "");
    const file = join(root, "edgetcd.log");
    const both = await runUntil(["--data-dir", join(root, "file"), "--log-outputs", `stderr,${file}`], (_, err) => err.includes(ready));
    assert.equal(both.stdout, "");
    assert.match(readFileSync(file, "utf8"), /ready to serve client requests/);
    assert.equal(spawnSync("stat", ["-c", "%a", file], { encoding: "utf8" }).stdout.trim(), "600");
  });

  test("--log-level debugg is refused before anything is created, in etcd's words", () => {
    const dataDir = join(root, "bad-level");
    const result = run(["--data-dir", dataDir, "--log-level", "debugg"]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /unknown level "debugg"/);
    assert.equal(existsSync(dataDir), false);
  });

  test("--log-outputs in a missing directory stops the start", () => {
    const result = run(["--data-dir", join(root, "bad-output"), "--log-outputs", join(root, "no/such/dir/e.log")]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot open --log-outputs/);
  });

  test("a test-only variable (EDGETCD_MUTANT, EDGETCD_TEST_DISK) stops the production server; only the test root reads it", () => {
    const dataDir = join(root, "mutant");
    for (const variable of ["EDGETCD_MUTANT=ack-before-fsync", "EDGETCD_TEST_DISK=lose-unsynced"]) {
      const [name, value] = variable.split("=") as [string, string];
      const result = spawnSync(edgetcd, ["--data-dir", dataDir], { env: { ...env, [name]: value }, encoding: "utf8", timeout: 60_000 });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`${name} is read only by the test build`));
      assert.equal(existsSync(dataDir), false);
    }
    // The test root (EDGETCD_ROOT=test) does read it: an unknown mutant is its own error.
    const testRoot = spawnSync(edgetcd, ["--data-dir", dataDir], { env: { ...env, EDGETCD_ROOT: "test", EDGETCD_MUTANT: "no-such-mutant" }, encoding: "utf8", timeout: 60_000 });
    assert.notEqual(testRoot.status, 0);
    assert.match(testRoot.stderr, /EDGETCD_MUTANT: unknown mutant "no-such-mutant"/);
  });

  test("refused flags exit non-zero naming the flag; warned ones start and say why", async () => {
    for (const args of [["--config-file", "/tmp/etcd.yaml"], ["--unsafe-no-fsync"], ["--enable-v2"]]) {
      const dataDir = join(root, "refused");
      const result = run(["--data-dir", dataDir, ...args]);
      assert.equal(result.status, 1, args.join(" "));
      assert.match(result.stderr, new RegExp(`${args[0]} is not supported by edgetcd: `));
      assert.equal(existsSync(dataDir), false, "nothing created");
    }
    const { stderr } = await runUntil(["--data-dir", join(root, "warned"), "--enable-pprof", "--max-snapshots", "3"], (_, err) => err.includes(ready));
    assert.match(stderr, /"level":"warn".*--enable-pprof is accepted for etcd compatibility and ignored/);
    assert.match(stderr, /--max-snapshots is accepted for etcd compatibility and ignored: edgetcd writes no snapshot files/);
  });

  test("--help groups every flag with a description and edgetcd's default data dir", () => {
    const result = run(["--help"]);
    assert.equal(result.status, 0);
    for (const group of ["Member:", "Clustering:", "Security:", "Auth:", "Profiling and monitoring:", "Logging:", "Experimental:"]) {
      assert.match(result.stdout, new RegExp(`^${group}$`, "m"));
    }
    assert.match(result.stdout, /--data-dir '\$\{name\}\.edgetcd'\n {4}\S/);
    assert.doesNotMatch(result.stdout, /--data-dir ''/);
    assert.match(result.stdout, /--log-level 'info'\n {4}.*debug, info, warn, error, panic or fatal/);
    assert.match(result.stdout, /--config-file ''\n.*\n {4}\[refused\] configuration files/);
    // Every flag line is followed by its description.
    for (const match of result.stdout.matchAll(/^ {2}--[a-z].*\n(.*)$/gm)) assert.match(match[1] as string, /^ {4}\S/);
  });

  test("--version: edgetcd's version, the etcd API version, the commit, the runtime", () => {
    const result = run(["--version"]);
    assert.equal(result.status, 0);
    const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
    assert.match(result.stdout, new RegExp(`^edgetcd Version: ${version.replaceAll(".", "\\.")}$`, "m"));
    assert.match(result.stdout, /^etcd API Version: 3\.\d+\.\d+/m);
    assert.match(result.stdout, /^Git SHA: ([0-9a-f]{40}|unknown)$/m);
    assert.match(result.stdout, new RegExp(`^Runtime: ${runtimeName} v?\\d+\\.\\d+`, "m"));
  });

  test("--wal-dir: the WAL lands there, not in the data dir, and a restart replays it", async () => {
    const dataDir = join(root, "wal-dir-data");
    const walDir = join(root, "wal-dir-wal");
    const extraArgs = ["--wal-dir", walDir];
    let server = await startEdgetcd({ dataDir, extraArgs });
    try {
      for (let i = 0; i < 20; i++) await put(server.endpoint, `k/${i}`, `v${i}`);
    } finally {
      await server.kill();
    }
    assert.ok(walFiles(walDir).length >= 1);
    assert.equal(existsSync(join(dataDir, "member", "wal")), false);
    server = await startEdgetcd({ dataDir, extraArgs, clientPort: server.clientPort });
    try {
      assert.equal(await count(server.endpoint, "k/"), 20);
    } finally {
      await server.kill();
    }
  });

  test("a data dir whose member/wal holds the log is refused with an empty --wal-dir", async () => {
    const dataDir = join(root, "wal-moved");
    const server = await startEdgetcd({ dataDir });
    await put(server.endpoint, "a", "1");
    await server.kill();
    await assert.rejects(
      startEdgetcd({ dataDir, extraArgs: ["--wal-dir", join(root, "wal-moved-elsewhere")] }),
      /holds no WAL but .*member\/wal does/,
    );
  });

  test("--max-wals: released segments beyond the count are purged, replay keeps every write; 0 keeps all", async () => {
    // Small segments (a test-build knob) and frequent snapshots, so many segments come and go.
    const testEnv = { EDGETCD_TEST_WAL_SEGMENT_BYTES: "4096" };
    const value = "x".repeat(200);
    const writes = 300;
    for (const maxWals of [3, 0]) {
      const dataDir = join(root, `max-wals-${maxWals}`);
      const walDir = join(dataDir, "member", "wal");
      const extraArgs = ["--max-wals", String(maxWals), "--snapshot-count", "40"];
      let server = await startEdgetcd({ dataDir, extraArgs, env: testEnv });
      try {
        for (let i = 0; i < writes; i++) await put(server.endpoint, `k/${i}`, value);
      } finally {
        await server.kill();
      }
      const files = walFiles(walDir);
      const lastSequence = parseInt((files[files.length - 1] as string).slice(0, 16), 16);
      assert.ok(lastSequence >= 10, `only ${lastSequence + 1} segments were written`);
      if (maxWals === 0) {
        assert.equal(files.length, lastSequence + 1, "every segment kept");
      } else {
        // At most the count, plus the segments cut since the last snapshot (not yet released).
        assert.ok(files.length <= maxWals + 4, `${files.length} segments kept: ${files.join(" ")}`);
        assert.ok(files.length < lastSequence + 1, "old segments purged");
        assert.ok(!files.includes(`${"0".repeat(16)}-${"0".repeat(16)}.wal`), "the first segment is gone");
      }
      server = await startEdgetcd({ dataDir, extraArgs, env: testEnv, clientPort: server.clientPort });
      try {
        assert.equal(await count(server.endpoint, "k/"), writes);
      } finally {
        await server.kill();
      }
    }
  });
});
