// Ports first (issue 25): every listener is bound before the data dir is
// created or touched, as etcd binds first. A port in use fails the start at
// once, non-zero, naming the address, and creates nothing.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, startEdgetcd, tempDir } from "../support/processes.ts";
import { connect } from "../reliability/history.ts";

/** Start to exit on a taken port; the process start itself (tsx on Node) is most of it. */
const refusalMsMax = 10_000;

async function occupy(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return server;
}

async function refusedStart(options: Parameters<typeof startEdgetcd>[0]): Promise<{ error: string; elapsedMs: number }> {
  const startedMs = performance.now();
  const error = await startEdgetcd({ ...options, readyTimeoutMs: 30_000 }).then(
    async (server) => {
      await server.kill();
      return "it started";
    },
    (failure: unknown) => String(failure),
  );
  return { error, elapsedMs: performance.now() - startedMs };
}

for (const taken of ["client", "peer"] as const) {
  test(`a ${taken} port in use: exit 1 at once naming it, and no data dir is created`, { timeout: 60_000 }, async () => {
    const dataDir = join(tempDir("edgetcd-ports-first"), "data");
    const port = await freePort();
    const holder = await occupy(port);
    try {
      const peerPort = taken === "peer" ? port : await freePort();
      // A peer port is bound by a member of a cluster (a single member runs no peer transport).
      const otherPeer = `http://127.0.0.1:${await freePort()}`;
      const { error, elapsedMs } = await refusedStart({
        dataDir,
        ...(taken === "client" ? { clientPort: port } : { peerPort }),
        extraArgs: [
          "--initial-cluster",
          taken === "peer" ? `default=http://127.0.0.1:${peerPort},other=${otherPeer}` : `default=http://127.0.0.1:${peerPort}`,
        ],
      });
      assert.match(error, /exited with 1 before ready/, error);
      assert.match(error, new RegExp(`"error":"listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}"[^\\n]*"msg":"failed to listen"`), error);
      assert.ok(elapsedMs < refusalMsMax, `refused after ${Math.round(elapsedMs)} ms`);
      assert.equal(existsSync(dataDir), false, "the data dir was created before the ports were bound");
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
}

test("with its ports free a member starts and serves (requests bound early wait for the API)", { timeout: 60_000 }, async () => {
  const dataDir = join(tempDir("edgetcd-ports-first"), "data");
  const server = await startEdgetcd({ dataDir });
  try {
    const response = await connect(server.endpoint).kv.put({ key: new TextEncoder().encode("k"), value: new TextEncoder().encode("v") });
    assert.ok(response.header !== undefined);
  } finally {
    await server.stop();
  }
});
