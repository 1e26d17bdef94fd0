// `npm start` and `npm run start:bun` deliver SIGTERM and SIGINT to the
// server. npm forwards the signal to its script's child, which was `sh -c`:
// the shell died and left the server orphaned and serving (issue 25). The
// scripts now `exec` the server. Ctrl-C reaches the whole process group and is
// forwarded by npm as well: the server takes the two as one request and
// stops gracefully (no "exiting now").
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { freePort, killGroup, portIsClosed, repoRoot, tempDir, waitForGroupGone } from "../support/processes.ts";

/** Start to ready through npm (npm itself takes about a second). */
const readyTimeoutMs = 30_000;
/** From the signal to every process of the group gone: a lone member stops at once. */
const goneTimeoutMs = 10_000;

/** `npm run <script> -- <a lone member's flags>` in its own process group, once ready. */
async function startThroughNpm(script: string): Promise<{ pid: number; clientPort: number; output: () => string; exited: Promise<number | null> }> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    "npm",
    ["run", "--silent", script, "--",
      "--data-dir", join(tempDir("npm-signals"), "data"),
      "--listen-client-urls", client, "--advertise-client-urls", client,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `default=${peer}`],
    { cwd: repoRoot, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  const pid = child.pid;
  assert.ok(pid !== undefined);
  let output = "";
  // "close", not "exit": the server shares npm's pipes, and its last lines may still be unread at npm's exit.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(pid);
      reject(new Error(`not ready through npm; output:\n${output}`));
    }, readyTimeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to serve client requests")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then(() => reject(new Error(`npm exited before ready; output:\n${output}`)));
  });
  return { pid, clientPort, output: () => output, exited };
}

async function assertNothingLeft(started: { pid: number; clientPort: number; output: () => string; exited: Promise<number | null> }): Promise<void> {
  const left = await waitForGroupGone(started.pid, goneTimeoutMs);
  // A failing test must not leave its server running.
  killGroup(started.pid);
  assert.deepEqual(left, [], `processes left behind:\n${left.map((p) => `${p.pid} ${p.command}`).join("\n")}\noutput:\n${started.output()}`);
  assert.ok(await portIsClosed(started.clientPort), "the client port is closed");
  await started.exited;
  assert.match(started.output(), /received signal; shutting down/);
  assert.doesNotMatch(started.output(), /exiting now/, "one graceful stop, not the second signal's exit");
}

describe("signals through npm", () => {
  test("SIGTERM to `npm start` stops the server: no process left, port closed", { timeout: 60_000 }, async () => {
    const started = await startThroughNpm("start");
    process.kill(started.pid, "SIGTERM");
    await assertNothingLeft(started);
  });

  test("Ctrl-C (SIGINT to the whole group) under `npm start`: one graceful stop, nothing left", { timeout: 60_000 }, async () => {
    const started = await startThroughNpm("start");
    process.kill(-started.pid, "SIGINT");
    await assertNothingLeft(started);
  });

  test("SIGTERM to `npm run start:bun` stops the server: no process left, port closed", { timeout: 60_000 }, async () => {
    const started = await startThroughNpm("start:bun");
    process.kill(started.pid, "SIGTERM");
    await assertNothingLeft(started);
  });
});
