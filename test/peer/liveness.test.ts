import assert from "node:assert/strict";
import * as net from "node:net";
import { after, describe, test } from "node:test";
import { connectAll, numbered, startPeer, type TestPeer, waitActive, waitFor } from "./support.ts";

const started: TestPeer[] = [];
const cleanups: (() => void)[] = [];
async function peer(...args: Parameters<typeof startPeer>): Promise<TestPeer> {
  const created = await startPeer(...args);
  started.push(created);
  return created;
}
after(async () => {
  for (const cleanup of cleanups) cleanup();
  await Promise.all(started.map((p) => p.transport.stop()));
});

/** A TCP relay to `target` that can be switched to swallow everything, like a paused or cut-off peer. */
async function blackholeProxy(target: string): Promise<{ url: string; blackhole(): void }> {
  const { hostname, port } = new URL(target);
  let swallowing = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => void (swallowing || upstream.write(chunk)));
    upstream.on("data", (chunk) => void (swallowing || client.write(chunk)));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.close();
    for (const socket of sockets) socket.destroy();
  });
  const address = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${address.port}`, blackhole: () => (swallowing = true) };
}

const livenessLimits = { keepaliveIntervalMs: 20, streamIdleTimeoutMs: 150 };

describe("peer liveness", () => {
  test("keepalives hold an idle stream open past the receiver's idle timeout", async () => {
    const [a, b] = [await peer(1, { limits: livenessLimits }), await peer(2, { limits: livenessLimits })];
    connectAll([a, b]);
    await waitActive(a, b);
    const since = a.transport.activeSince(2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(a.transport.activeSince(2), since);
    a.transport.send([numbered(1, 2, 7)]);
    await waitFor("message", () => b.received.length === 1);
  });

  test("a receiver drops a stream that went silent, and the sender reconnects", async () => {
    const a = await peer(11, { limits: { keepaliveIntervalMs: 60_000 } }); // sends no keepalives
    const b = await peer(12, { limits: livenessLimits });
    a.transport.addPeer(12, [b.url]);
    await waitActive(a, b);
    await waitFor("idle stream dropped", () => b.logs.some((log) => log.message === "dropped idle peer stream"));
    await waitFor("sender noticed", () => a.logs.some((log) => log.message === "peer became inactive"));
    await waitActive(a, b);
    a.transport.send([numbered(11, 12, 1)]);
    await waitFor("message after reconnect", () => b.received.length === 1);
  });

  test("a peer that stops answering is reported unreachable and inactive", async () => {
    const a = await peer(21, { limits: livenessLimits });
    const b = await peer(22, { limits: livenessLimits });
    const proxy = await blackholeProxy(b.url);
    a.transport.addPeer(22, [proxy.url]);
    await waitActive(a, b);
    proxy.blackhole();
    await waitFor("inactive", () => a.transport.activeSince(22) === undefined, 2000);
    assert.ok(a.unreachable.includes(22));
    assert.ok(a.logs.some((log) => log.message === "peer became inactive" && /ping/.test(String(log.fields?.reason))));
  });

  test("updatePeer moves to the new URL; removePeer stops delivery", async () => {
    const a = await peer(31);
    const b = await peer(32);
    const proxy = await blackholeProxy(b.url);
    a.transport.addPeer(32, [proxy.url]);
    await waitActive(a, b);
    proxy.blackhole();
    a.transport.updatePeer(32, [b.url]);
    await waitFor("active on the new URL", () => a.logs.some((log) => log.message === "peer became active" && log.fields?.url === b.url));
    a.transport.send([numbered(31, 32, 1)]);
    await waitFor("message", () => b.received.length === 1);
    a.transport.removePeer(32);
    assert.equal(a.transport.activeSince(32), undefined);
    a.transport.send([numbered(31, 32, 2)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(b.received.length, 1);
  });
});
