// `npm run cluster` (runtime/node/cluster.ts) through npm, as a developer runs
// it: a taken port is refused before any member starts (it used to start the
// others and still advertise the missing one); --size and --base-port place
// the members; `restart infra2` on stdin restarts that member alone; SIGTERM
// to npm stops every member and leaves no process (it used to leave all three
// serving). Members run under the runtime running the tests.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { clientsOf, type ClusterMember } from "../support/cluster.ts";
import { killGroup, portIsClosed, repoRoot, tempDir, waitForGroupGone } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

/** Five members starting at once on two cores, through npm and tsx. */
const readyTimeoutMs = 90_000;
/** A refused start must not get as far as starting a member. */
const refusalTimeoutMs = 15_000;
/** Every member's graceful stop, from the signal to the group gone (the launcher's own bound is 15 s). */
const goneTimeoutMs = 20_000;

/** A request may meet a leader change right after the start or the restart: etcd's "leader changed", retried. */
const putAttemptsMax = 25;

/** `count` consecutive loopback ports, all free now. */
async function freePortRange(count: number): Promise<number> {
  for (;;) {
    const base = 20_000 + 2 * Math.floor(Math.random() * 15_000);
    const servers: Server[] = [];
    let free = true;
    for (let port = base; port < base + count && free; port++) {
      const server = createServer();
      free = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen(port, "127.0.0.1", () => resolve(true));
      });
      if (free) servers.push(server);
    }
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    if (free) return base;
  }
}

interface Launcher {
  pid: number;
  output: () => string;
  send(line: string): void;
  /** Resolves when `text` has appeared in the output `times` times in all. */
  waitFor(text: string, times?: number, timeoutMs?: number): Promise<void>;
  closed: Promise<number | null>;
}

function launch(args: string[]): Launcher {
  const child = spawn("npm", ["run", "--silent", "cluster", "--", "--runtime", runtimeName, ...args], {
    cwd: repoRoot,
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const pid = child.pid;
  assert.ok(pid !== undefined);
  let output = "";
  const waiting = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const check of waiting) check();
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  // "close": every member shares these pipes, so this waits for their last lines too.
  const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    pid,
    output: () => output,
    send: (line) => void child.stdin.write(`${line}\n`),
    closed,
    waitFor: (text, times = 1, timeoutMs = readyTimeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (output.split(text).length - 1 < times) return;
          waiting.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`no "${text}" (×${times}) within ${timeoutMs} ms; output:\n${output.slice(-6000)}`));
        }, timeoutMs);
        waiting.add(check);
        check();
      }),
  };
}

describe("npm run cluster", () => {
  test("a taken port is refused before any member starts", { timeout: 60_000 }, async () => {
    const basePort = await freePortRange(6);
    const dataRoot = tempDir("cluster-launcher");
    // infra2's peer port
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(basePort + 3, "127.0.0.1", resolve));
    const launcher = launch(["--size", "3", "--base-port", String(basePort), "--data-root", dataRoot]);
    try {
      const code = await Promise.race([launcher.closed, new Promise<"late">((resolve) => setTimeout(() => resolve("late"), refusalTimeoutMs))]);
      assert.notEqual(code, "late", `still running; output:\n${launcher.output()}`);
      assert.notEqual(code, 0);
      assert.match(launcher.output(), new RegExp(`port ${basePort + 3} \\(infra2 peer\\) in use; nothing started`));
      assert.doesNotMatch(launcher.output(), /infra\d \|/, "no member started");
      for (const name of ["infra1", "infra2", "infra3"]) assert.ok(!existsSync(join(dataRoot, `${name}.edgetcd`)), `no data dir for ${name}`);
      assert.deepEqual(await waitForGroupGone(launcher.pid, 1000), []);
    } finally {
      killGroup(launcher.pid);
      blocker.close();
    }
  });

  test("--size 5 --base-port: five members at the right ports; `restart infra2` restarts it alone; SIGTERM to npm leaves nothing", { timeout: 240_000 }, async () => {
    const size = 5;
    const basePort = await freePortRange(2 * size);
    const launcher = launch(["--size", String(size), "--base-port", String(basePort), "--data-root", tempDir("cluster-launcher")]);
    try {
      await launcher.waitFor("cluster | ready; endpoints:");
      const expected = Array.from({ length: size }, (_, i) => ({
        name: `infra${i + 1}`,
        client: `http://127.0.0.1:${basePort + 2 * i}`,
        peer: `http://127.0.0.1:${basePort + 2 * i + 1}`,
      }));
      assert.match(launcher.output(), new RegExp(`endpoints: ${expected.map((m) => m.client.slice("http://".length)).join(",")}`));
      // Members the launcher runs, not the test: only their ports matter to clientsOf.
      const memberAt = (i: number): ClusterMember => ({ name: `infra${i + 1}`, clientPort: basePort + 2 * i, peerPort: basePort + 2 * i + 1, dataDir: "", server: undefined });
      const infra1 = memberAt(0);
      const infra2 = memberAt(1);
      // Client URLs are published through the log shortly after the start.
      let listed: Array<{ name: string; client: string; peer: string }> = [];
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        // Linearizable: may meet "leader changed" while the first election settles.
        const members = await clientsOf(infra1).cluster.memberList({}).then((response) => response.members, () => []);
        listed = members.map((m) => ({ name: m.name, client: m.clientURLs[0] ?? "", peer: m.peerURLs[0] ?? "" })).sort((a, b) => a.name.localeCompare(b.name));
        if (listed.length === size && listed.every((m) => m.client !== "")) break;
      }
      assert.deepEqual(listed, expected);

      // Retried while the leadership settles (five members just elected one,
      // infra2 handed it over, or the restarted infra2 has not heard from the leader yet).
      const retried = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await call();
          } catch (error) {
            if (attempt >= putAttemptsMax) throw new Error(`${what}: ${String(error)}; output:\n${launcher.output().slice(-8000)}`);
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }
      };
      const bytes = (text: string) => new TextEncoder().encode(text);
      const put = (key: string) => retried(`put ${key}`, () => clientsOf(infra1).kv.put({ key: bytes(key), value: bytes("v") }));
      await put("before-restart");
      launcher.send("restart infra2");
      await launcher.waitFor("infra2 | exited (0)");
      await launcher.waitFor("cluster | infra2 ready");
      assert.equal(launcher.output().split("exited (").length - 1, 1, "only infra2 was stopped");
      await put("after-restart");
      const range = await retried("range on infra2", () => clientsOf(infra2).kv.range({ key: bytes("after-restart") }));
      assert.equal(range.count, 1n, "the restarted infra2 serves the cluster's data");

      process.kill(launcher.pid, "SIGTERM");
      const left = await waitForGroupGone(launcher.pid, goneTimeoutMs);
      assert.deepEqual(left, [], `left behind:\n${left.map((p) => `${p.pid} ${p.command}`).join("\n")}`);
      await launcher.closed;
      for (const member of expected) assert.ok(await portIsClosed(Number(new URL(member.client).port)), `${member.name} client port closed`);
      assert.equal(launcher.output().split("received signal; shutting down").length - 1, size + 1, "each member stopped gracefully (infra2 twice)");
    } finally {
      killGroup(launcher.pid);
    }
  });
});
