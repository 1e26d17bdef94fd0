// Scorecard D5 on a real process (issue 25, "fatal means exit"): when the WAL's
// fdatasync starts failing under a running member, the write is not
// acknowledged, the process logs one line and exits non-zero within a second,
// as etcd does (a fatal log), so a supervisor restarts it; after the restart
// every acknowledged write is there. Before, it stayed up answering "server
// stopped" with /livez at 200.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { connect } from "./history.ts";
import { startEdgetcd, tempDir } from "../support/processes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** etcd exits at its fatal log; a second is generous for ours. */
const exitAfterFailureMsMax = 1000;
const fatalLine = /"error":"storage failure: EIO: i\/o error, fdatasync[^\n]*"msg":"storage failure; exiting"/;

test("D5: a failing WAL fdatasync: the write is not acknowledged, the process exits non-zero within a second, restarts with every acknowledged write", { timeout: 120_000 }, async () => {
  const root = tempDir("edgetcd-fatal-exit");
  const dataDir = join(root, "data");
  const trigger = join(root, "break-the-disk");
  const server = await startEdgetcd({ dataDir, env: { EDGETCD_TEST_DISK: `fail-datasync-when:${trigger}` } });
  const exited = new Promise<{ code: number | null; signal: string | null; atMs: number }>((resolve) =>
    server.process.once("exit", (code, signal) => resolve({ code, signal, atMs: performance.now() })),
  );
  try {
    const { kv } = connect(server.endpoint);
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      await kv.put({ key: encoder.encode(`k${i}`), value: encoder.encode(`v${i}`) });
      acknowledged.push(`k${i}`);
    }
    writeFileSync(trigger, "");
    const failedAtMs = performance.now();
    const outcome = await kv.put({ key: encoder.encode("after"), value: encoder.encode("x") }).then(
      () => "acknowledged",
      (error: unknown) => `failed: ${String(error)}`,
    );
    assert.notEqual(outcome, "acknowledged", "a write whose fdatasync failed was acknowledged");
    const exit = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(resolve, 10_000))]);
    assert.ok(exit !== undefined, `the process did not exit after the fdatasync failure; output:\n${server.output().slice(-3000)}`);
    assert.equal(exit.signal, null);
    assert.equal(exit.code, 1, server.output().slice(-3000));
    assert.ok(exit.atMs - failedAtMs < exitAfterFailureMsMax, `exited ${Math.round(exit.atMs - failedAtMs)} ms after the failure`);
    const output = server.output();
    assert.match(output, fatalLine);
    // Nothing after the fatal line: no "ready", no shutdown chatter.
    const afterFatal = output.slice(output.search(fatalLine));
    assert.equal(afterFatal.trim().split("\n").length, 1, afterFatal);

    // A supervisor restarts it (the disk is fine again): every acknowledged write is there.
    const restarted = await startEdgetcd({ dataDir });
    try {
      const { kv: again } = connect(restarted.endpoint);
      for (const key of acknowledged) {
        const response = await again.range({ key: encoder.encode(key) });
        assert.equal(decoder.decode(response.kvs[0]?.value), `v${key.slice(1)}`, key);
      }
    } finally {
      await restarted.stop();
    }
  } finally {
    await server.kill();
  }
});

test("D5: a disk that fails from the start (a restart on an existing data dir): exit 1 at once, the fatal line last", { timeout: 120_000 }, async () => {
  const root = tempDir("edgetcd-fatal-start");
  const dataDir = join(root, "data");
  const first = await startEdgetcd({ dataDir });
  await connect(first.endpoint).kv.put({ key: encoder.encode("k"), value: encoder.encode("v") });
  await first.stop();
  // Opening an existing WAL syncs nothing: the first failing fdatasync is the
  // new term's empty entry, written after the server object exists and while
  // the client listeners come up (a failure there was once lost, and the
  // member said ready and stayed up). It may land before or after "ready".
  const trigger = join(root, "break-the-disk");
  writeFileSync(trigger, "");
  let output = "";
  let exitCode: number | null | undefined;
  await startEdgetcd({ dataDir, env: { EDGETCD_TEST_DISK: `fail-datasync-when:${trigger}` }, readyTimeoutMs: 15_000 }).then(
    async (started) => {
      const exited = new Promise<void>((resolve) => started.process.once("exit", () => resolve()));
      if (started.process.exitCode === null) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      exitCode = started.process.exitCode;
      output = started.output();
      await started.kill();
    },
    (failure: unknown) => {
      output = String(failure);
      exitCode = /exited with 1 before ready/.test(output) ? 1 : undefined;
    },
  );
  assert.equal(exitCode, 1, output);
  assert.match(output, fatalLine, output);
  const afterFatal = output.slice(output.search(fatalLine));
  assert.equal(afterFatal.trim().split("\n").length, 1, afterFatal);
});
